"""The server's certificates: it vouches that a peer's public key belongs to the Jupyter
user it bound the peer id to (docs/protocol.md §4, *Signed entries*).

The signing key lives in a file readable by its owner only, made on first use, so a
restart keeps every certificate issued so far checkable; several signaling processes
that share rooms (a Redis broker) must share the file too.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from ..core.signing import Certificate, b64decode, issue_cert, public_key
from ..protocol import Identity

__all__ = ["CertAuthority", "KeyRefused"]

log = logging.getLogger(__name__)

#: How many (room, peer id) → key bindings to remember (oldest forgotten first).
MAX_BINDINGS = 100_000


class KeyRefused(ValueError):
    """A certificate request the server will not sign; the message says why and
    ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key in ``path`` (PEM, PKCS#8), created with mode 0600 if absent."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return load_or_create_key(path)
        with os.fdopen(fd, "wb") as file:
            file.write(pem)
        log.info("nbchat: made a new certificate signing key in %s", path)
        return key
    loaded = load_pem_private_key(data, password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{path} holds no Ed25519 private key")
    return loaded


class CertAuthority:
    """Signs certificates with the server's key and refuses a second key for one peer id."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key = public_key(key)
        self._bound: OrderedDict[tuple[str, str], str] = OrderedDict()

    @classmethod
    def from_file(cls, path: str | Path) -> CertAuthority:
        return cls(load_or_create_key(Path(path)))

    def certify(self, room: str, peer: str, user: Identity, key: str) -> Certificate:
        """A certificate for ``key`` as peer ``peer`` of ``user`` in ``room``.

        The caller has checked that ``peer`` is bound to ``user``. A peer id keeps the
        first key it was certified with: a key swapped in later is refused.
        """
        try:
            raw = b64decode(key)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise KeyRefused("key must be an Ed25519 public key: 32 bytes in base64url")
        bound = self._bound.get((room, peer))
        if bound is not None and bound != key:
            raise KeyRefused(f"peer {peer} already has another key in this room", 409)
        self._bound[(room, peer)] = key
        self._bound.move_to_end((room, peer))
        while len(self._bound) > MAX_BINDINGS:
            self._bound.popitem(last=False)
        return issue_cert(self._key, room, peer, user, key)
