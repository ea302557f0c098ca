"""Verifiable authorship (docs/protocol.md §4.4): Ed25519 signatures on log entries and the
server's certificate binding a peer's public key to its Jupyter identity.

Mirrored by js/core/signing.ts (WebCrypto) and pinned by tests/fixtures/signing_cases.json.

- Every peer has an Ed25519 key pair. When the server binds a peer id to a user, it also
  issues a **certificate**: the room, the peer id, the user's identity and the peer's
  public key, signed with the server's own key. Peers learn the server's public key from
  their own server (the session config), so a certificate is checked offline, and still
  holds after its peer has left: history relayed on behalf of a departed author is as
  verifiable as a live message.
- Every log entry (message, reply, edit, delete, reaction) carries ``sig``: its author's
  signature over :func:`entry_bytes`, which covers the room and every field the entry
  says, so an entry cannot be altered, moved to another room or claimed by another key.
- The identity shown for an entry is the one in its author's certificate, never a
  ``user`` the entry claims.

Canonical bytes are the UTF-8 of a JSON array written as ``JSON.stringify`` writes it
(``frames.dumps``): fixed positions, so no key order is involved.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..protocol import Identity
from .frames import dumps
from .msglog import InvalidMessage, normalize_identity

__all__ = [
    "CERT_CONTEXT",
    "CertBook",
    "ENTRY_CONTEXT",
    "Certificate",
    "b64decode",
    "b64encode",
    "cert_bytes",
    "entry_bytes",
    "generate_key",
    "issue_cert",
    "public_key",
    "sign_entry",
    "verify_cert",
    "verify_entry",
]

ENTRY_CONTEXT = "nbchat-entry/1"
CERT_CONTEXT = "nbchat-cert/1"
#: The fields of a log entry a signature covers, in this order (absent ones as null).
ENTRY_FIELDS = (
    *("author", "seq", "clock", "time", "text", "mime", "file"),
    *("kind", "target", "reply_to", "emoji", "on"),
)
_B64URL = re.compile(r"^[A-Za-z0-9_-]*\Z")
_TO_STANDARD = str.maketrans("-_", "+/")
_IDENTITY_FIELDS = ("username", "name", "display_name", "initials", "color", "avatar_url")


class Certificate(TypedDict):
    """The server's word that ``key`` belongs to peer ``peer`` of ``user`` in ``room``."""

    room: str
    peer: str
    user: Identity
    key: str  # the peer's Ed25519 public key, base64url of its 32 raw bytes
    sig: str  # the server's signature over cert_bytes


def b64encode(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    """Inverse of :func:`b64encode`; ValueError for anything else."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    try:
        padded = text.translate(_TO_STANDARD) + "=" * (-len(text) % 4)
        return base64.b64decode(padded, validate=True)
    except binascii.Error as error:
        raise ValueError("not base64url") from error


def _canonical(value: Any) -> Any:
    """``value`` with every object's keys sorted (a MIME bundle or a file card may arrive
    with its keys in another order than its author wrote them)."""
    if isinstance(value, Mapping):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def entry_bytes(room: str, entry: Mapping[str, Any]) -> bytes:
    """What an entry's author signs. An entry composed off the record has ``off_record``
    appended (only then, so every earlier signature stays valid): a relay can neither strip
    the flag nor add it."""
    fields = [_canonical(entry.get(f)) for f in ENTRY_FIELDS]
    if entry.get("off_record") is not None:
        fields.append(entry["off_record"])
    return dumps([ENTRY_CONTEXT, room, *fields]).encode("utf-8")


def cert_bytes(cert: Mapping[str, Any]) -> bytes:
    """What the server signs for a certificate."""
    user = cert["user"]
    fields = [user.get(f) for f in _IDENTITY_FIELDS]
    return dumps([CERT_CONTEXT, cert["room"], cert["peer"], *fields, cert["key"]]).encode("utf-8")


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_key(private: Ed25519PrivateKey) -> str:
    """The base64url raw public key of ``private``."""
    return b64encode(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def _verify(key: str, signature: object, data: bytes) -> bool:
    if not isinstance(signature, str):
        return False
    try:
        raw_key, raw_signature = b64decode(key), b64decode(signature)
        if len(raw_key) != 32 or len(raw_signature) != 64:
            return False
        Ed25519PublicKey.from_public_bytes(raw_key).verify(raw_signature, data)
    except (ValueError, InvalidSignature):
        return False
    return True


def sign_entry(private: Ed25519PrivateKey, room: str, entry: Mapping[str, Any]) -> str:
    """The ``sig`` of an entry we author."""
    return b64encode(private.sign(entry_bytes(room, entry)))


def verify_entry(key: str, room: str, entry: Mapping[str, Any]) -> bool:
    """Whether ``entry['sig']`` is ``key``'s signature of this entry in this room."""
    return _verify(key, entry.get("sig"), entry_bytes(room, entry))


def issue_cert(
    server: Ed25519PrivateKey, room: str, peer: str, user: Identity, key: str
) -> Certificate:
    cert = Certificate(room=room, peer=peer, user=user, key=key, sig="")
    cert["sig"] = b64encode(server.sign(cert_bytes(cert)))
    return cert


def verify_cert(server_keys: Iterable[str], cert: object, room: str) -> Certificate | None:
    """The certificate if one of ``server_keys`` signed it for ``room``, else None."""
    if not isinstance(cert, Mapping):
        return None
    try:
        fields = (cert["room"], cert["peer"], cert["key"], cert["user"]["username"])
        data = cert_bytes(cert)
    except (KeyError, TypeError, AttributeError):
        return None
    if not all(isinstance(f, str) for f in fields) or cert["room"] != room:
        return None
    if not any(_verify(key, cert.get("sig"), data) for key in server_keys):
        return None
    try:
        identity = normalize_identity(cert["user"])
    except InvalidMessage:
        return None
    peer, key, sig = cert["peer"], cert["key"], cert["sig"]
    return Certificate(room=room, peer=peer, user=identity, key=key, sig=sig)


class CertBook:
    """The certificates one peer holds for a room, and the entries they vouch for.

    - A certificate counts if a server key signed it for this room. A peer id keeps the
      first one learned: another key for the same id later is refused (a key swapped
      mid-session), so nobody re-signs history under an id they did not hold.
    - An entry counts if its author's certificate is held and its ``sig`` verifies with
      that key; the identity to show is the certificate's, whatever ``user`` the entry
      claims. Anything else is dropped and counted by reason in ``refused``.
    """

    def __init__(self, room: str, server_keys: Iterable[str]) -> None:
        self.room = room
        self.server_keys = list(server_keys)
        self._certs: dict[str, Certificate] = {}
        self.refused: dict[str, int] = {}

    def _refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def learn(self, certs: Iterable[object]) -> list[str]:
        """Take certificates from a peer; return the peer ids newly vouched for."""
        learned: list[str] = []
        for raw in certs:
            cert = verify_cert(self.server_keys, raw, self.room)
            if cert is None:
                self._refuse("bad_cert")
                continue
            held = self._certs.get(cert["peer"])
            if held is None:
                self._certs[cert["peer"]] = cert
                learned.append(cert["peer"])
            elif held["key"] != cert["key"]:
                self._refuse("key_swap")
        return learned

    def cert(self, peer: str) -> Certificate | None:
        return self._certs.get(peer)

    def certs_for(self, peers: Iterable[str]) -> list[Certificate]:
        """The certificates held for ``peers`` (each once, in first-seen order)."""
        found = (self._certs.get(p) for p in dict.fromkeys(peers))
        return [c for c in found if c is not None]

    def verify(self, entry: Mapping[str, Any]) -> Identity | None:
        """The identity vouched for ``entry``, or None (dropped and counted)."""
        author = entry.get("author")
        cert = self._certs.get(author) if isinstance(author, str) else None
        if cert is None:
            self._refuse("unknown_author")
            return None
        if not verify_entry(cert["key"], self.room, entry):
            self._refuse("bad_signature")
            return None
        return cert["user"]
