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
- **Hash chain**: an entry may carry ``prev``, the :func:`entry_digest` of its author's
  previous entry (``seq - 1``): SHA-256 over that entry's signed bytes followed by its 64
  signature bytes, base64url. ``prev`` is signed (appended to the signed array when
  present), so one valid signature vouches for every entry its chain reaches: a receiver
  given many entries of one author (:meth:`CertBook.verify_all`) sorts them by ``seq``,
  follows the links, and checks only the last signature of each unbroken run. A gap, a
  missing or mismatching ``prev`` splits a run; an altered entry breaks its link (its
  digest changes) and is checked on its own, as are entries without ``prev``.

Canonical bytes are the UTF-8 of a JSON array written as ``JSON.stringify`` writes it
(``frames.dumps``): fixed positions, so no key order is involved.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
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
    "entry_digest",
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


def on_wire(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    """An entry as a frame carries it. A signed one goes without ``id`` (the receiver makes
    it from ``author`` and ``seq``) and ``user`` (the receiver shows the identity in the
    author's certificate, never a claimed one): about a third of a short message's bytes.
    Receivers from before this rule make both the same way, so they take it too. An
    unsigned entry goes as it is."""
    if entry.get("sig") is None:
        return entry
    return {k: v for k, v in entry.items() if k != "id" and k != "user"}


def entry_bytes(room: str, entry: Mapping[str, Any]) -> bytes:
    """What an entry's author signs. An entry composed off the record has ``off_record``
    appended, then a chained entry its ``prev`` (each only when present, so every earlier
    signature stays valid; ``off_record`` is ``true``, ``prev`` a string, so the array reads
    one way only): a relay can neither strip nor add either."""
    fields = [_canonical(entry.get(f)) for f in ENTRY_FIELDS]
    if entry.get("off_record") is not None:
        fields.append(entry["off_record"])
    if entry.get("prev") is not None:
        fields.append(entry["prev"])
    return dumps([ENTRY_CONTEXT, room, *fields]).encode("utf-8")


def _signature(signature: object) -> bytes | None:
    """``signature`` decoded when it can be an Ed25519 signature (64 bytes), else None."""
    if not isinstance(signature, str):
        return None
    try:
        raw = b64decode(signature)
    except ValueError:
        return None
    return raw if len(raw) == 64 else None


def _digest(data: bytes, signature: bytes) -> str:
    return b64encode(hashlib.sha256(data + signature).digest())


def entry_digest(room: str, entry: Mapping[str, Any]) -> str | None:
    """What the author's next entry names as ``prev``: SHA-256 of this entry's signed bytes
    followed by its 64 raw signature bytes, base64url; None without a signature."""
    signature = _signature(entry.get("sig"))
    return None if signature is None else _digest(entry_bytes(room, entry), signature)


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
        #: Each held certificate's public key, decoded once.
        self._keys: dict[str, Ed25519PublicKey] = {}
        self.refused: dict[str, int] = {}
        #: Signatures checked (a chain's run costs one).
        self.checks = 0

    def _refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def learn(self, certs: Iterable[object]) -> list[str]:
        """Take certificates from a peer; return the peer ids newly vouched for."""
        learned: list[str] = []
        for raw in certs:
            if self._held_already(raw):
                continue
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

    def _held_already(self, raw: object) -> bool:
        """Whether ``raw`` is, byte for byte, a certificate already held: every link that
        forwards an author's first entry sends its certificate along, and one server
        signature check per certificate is enough."""
        if not isinstance(raw, Mapping):
            return False
        peer = raw.get("peer")
        held = self._certs.get(peer) if isinstance(peer, str) else None
        if held is None or raw.get("sig") != held["sig"] or raw.get("room") != self.room:
            return False
        try:
            return cert_bytes(raw) == cert_bytes(held)
        except (KeyError, TypeError, AttributeError):
            return False

    def cert(self, peer: str) -> Certificate | None:
        return self._certs.get(peer)

    def certs_for(self, peers: Iterable[str]) -> list[Certificate]:
        """The certificates held for ``peers`` (each once, in first-seen order)."""
        found = (self._certs.get(p) for p in dict.fromkeys(peers))
        return [c for c in found if c is not None]

    def verify(self, entry: Mapping[str, Any]) -> Identity | None:
        """The identity vouched for ``entry``, or None (dropped and counted)."""
        return self.verify_all([entry])[0]

    def verify_all(self, entries: Sequence[Mapping[str, Any]]) -> list[Identity | None]:
        """``verify`` for many entries at once, following hash chains: each entry's identity
        or None (dropped and counted), in the order given; ``checks`` counts the signatures
        actually checked.

        Per author, the entries sorted by ``seq`` fall into runs: the next entry (``seq + 1``)
        continues a run when its ``prev`` is this entry's digest. A run's last signature is
        checked; if it holds, the run holds (every entry of it is what the author signed, by
        the digests its signed ``prev`` chains through). If it fails, that entry is refused
        and the rest of the run is checked entry by entry."""
        users: list[Identity | None] = [None] * len(entries)
        prepared: dict[int, tuple[Certificate, bytes, bytes]] = {}
        by_author: dict[str, list[int]] = {}
        for i, entry in enumerate(entries):
            author = entry.get("author")
            cert = self._certs.get(author) if isinstance(author, str) else None
            if cert is None:
                self._refuse("unknown_author")
                continue
            signature = _signature(entry.get("sig"))
            if signature is None:
                self._refuse("bad_signature")
                continue
            prepared[i] = (cert, signature, entry_bytes(self.room, entry))
            by_author.setdefault(cert["peer"], []).append(i)
        runs: list[list[int]] = []
        for indices in by_author.values():
            indices.sort(key=lambda i: _seq(entries[i]) or 0)
            run = [indices[0]]
            for i in indices[1:]:
                last = run[-1]
                seq, prev = _seq(entries[last]), entries[i].get("prev")
                _, signature, data = prepared[last]
                linked = (
                    isinstance(prev, str)
                    and seq is not None
                    and _seq(entries[i]) == seq + 1
                    and prev == _digest(data, signature)
                )
                if not linked:
                    runs.append(run)
                    run = []
                run.append(i)
            runs.append(run)
        for run in runs:
            if self._check(prepared[run[-1]]):
                for i in run:
                    users[i] = prepared[i][0]["user"]
                continue
            self._refuse("bad_signature")
            for i in run[:-1]:
                if self._check(prepared[i]):
                    users[i] = prepared[i][0]["user"]
                else:
                    self._refuse("bad_signature")
        return users

    def _check(self, prepared: tuple[Certificate, bytes, bytes]) -> bool:
        cert, signature, data = prepared
        self.checks += 1
        try:
            key = self._keys.get(cert["peer"])
            if key is None:
                key = self._keys[cert["peer"]] = Ed25519PublicKey.from_public_bytes(
                    b64decode(cert["key"])
                )
            key.verify(signature, data)
        except (ValueError, InvalidSignature):
            return False
        return True


def _seq(entry: Mapping[str, Any]) -> int | None:
    seq = entry.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None
