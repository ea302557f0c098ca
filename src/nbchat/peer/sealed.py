"""Sealed signaling: a room passphrase encrypts and authenticates OFFER/ANSWER/CANDIDATE.

The rules (identical in js/sealedSignaling.ts, pinned by tests/fixtures/sealed_cases.json):

- Room key: PBKDF2-HMAC-SHA256 over the passphrase (UTF-8 of its NFC form), salt
  ``"nbchat-room-key-v1|" + KEY`` (KEY = the room's PeerJS key from the session config),
  ``KDF_ITERATIONS`` iterations, 32 bytes → an AES-256-GCM key.
- A sealed frame keeps ``type`` and ``dst``; its ``payload`` becomes
  ``{"sealed": "nbchat-v1", "iv": B64(12 random bytes), "data": B64(ciphertext || tag)}``
  (standard base64 with padding). The plaintext is the UTF-8 JSON of the original payload.
- Associated data: ``"nbchat-sealed-v1|" + TYPE + "|" + SRC + "|" + DST`` in UTF-8, so a
  payload the server re-labels (another type), redirects (another dst) or re-attributes
  (another src) fails to open. Peer ids cannot contain ``|``.
- Only OFFER, ANSWER and CANDIDATE are sealed. LEAVE and EXPIRE carry nothing a peer acts
  on beyond the server's own word.
- A peer with a passphrase refuses unsealed OFFER/ANSWER/CANDIDATE payloads; a peer without
  one refuses sealed ones: no link forms, and the failure is reported.

Not covered: the server can still drop frames or replay a sealed payload to the same peer
with the same labels (it then starts a connection DTLS cannot complete: the fingerprint in it
is the original sender's), and it sees who talks to whom and when.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import unicodedata
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

__all__ = [
    "KDF_ITERATIONS",
    "Rejection",
    "SEALED_TYPES",
    "SEALED_VERSION",
    "SealError",
    "Sealer",
    "associated_data",
    "derive_room_key",
    "is_sealed",
    "open_frame",
    "seal_payload",
]

SEALED_VERSION = "nbchat-v1"
SEALED_TYPES = frozenset({"OFFER", "ANSWER", "CANDIDATE"})
#: OWASP's 2023 figure for PBKDF2-HMAC-SHA256; ~0.1 s in Python, ~0.2 s in a browser here,
#: paid once per join.
KDF_ITERATIONS = 600_000
SALT_PREFIX = "nbchat-room-key-v1|"
AAD_PREFIX = "nbchat-sealed-v1|"
IV_BYTES = 12


class SealError(ValueError):
    """A signaling payload that cannot be accepted: wrong passphrase, tampered, or unsealed."""


def derive_room_key(passphrase: str, room_key: str, iterations: int = KDF_ITERATIONS) -> bytes:
    """The 32-byte AES-GCM key everyone with ``passphrase`` in room ``room_key`` shares."""
    if not passphrase:
        raise ValueError("an empty passphrase protects nothing")
    kdf = PBKDF2HMAC(
        algorithm=hashes.SHA256(),
        length=32,
        salt=(SALT_PREFIX + room_key).encode("utf-8"),
        iterations=iterations,
    )
    return kdf.derive(unicodedata.normalize("NFC", passphrase).encode("utf-8"))


def associated_data(kind: str, src: str, dst: str) -> bytes:
    return f"{AAD_PREFIX}{kind}|{src}|{dst}".encode()


def is_sealed(payload: object) -> bool:
    return isinstance(payload, dict) and payload.get("sealed") == SEALED_VERSION


@dataclass(frozen=True)
class Sealer:
    """Seals and opens signaling payloads with one room key."""

    key: bytes

    @classmethod
    def for_room(cls, passphrase: str, room_key: str) -> Sealer:
        return cls(derive_room_key(passphrase, room_key))

    def seal_bytes(self, plaintext: bytes, aad: bytes, iv: bytes | None = None) -> dict[str, str]:
        iv = os.urandom(IV_BYTES) if iv is None else iv
        data = AESGCM(self.key).encrypt(iv, plaintext, aad)
        return {
            "sealed": SEALED_VERSION,
            "iv": base64.b64encode(iv).decode("ascii"),
            "data": base64.b64encode(data).decode("ascii"),
        }

    def open_bytes(self, sealed: object, aad: bytes) -> bytes:
        if not is_sealed(sealed):
            raise SealError("the payload is not sealed")
        assert isinstance(sealed, dict)
        iv_text, data_text = sealed.get("iv"), sealed.get("data")
        if not isinstance(iv_text, str) or not isinstance(data_text, str):
            raise SealError("a sealed payload needs iv and data strings")
        try:
            iv = base64.b64decode(iv_text, validate=True)
            data = base64.b64decode(data_text, validate=True)
        except (binascii.Error, ValueError) as error:
            raise SealError(f"bad base64 in a sealed payload: {error}") from None
        if len(iv) != IV_BYTES:
            raise SealError("a sealed payload's iv must be 12 bytes")
        try:
            return AESGCM(self.key).decrypt(iv, data, aad)
        except InvalidTag:
            raise SealError(
                "authentication failed (wrong passphrase, or changed in transit)"
            ) from None

    def seal(
        self, kind: str, src: str, dst: str, payload: dict[str, Any], iv: bytes | None = None
    ) -> dict[str, str]:
        plaintext = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        return self.seal_bytes(plaintext.encode("utf-8"), associated_data(kind, src, dst), iv)

    def open(self, kind: str, src: str, dst: str, sealed: object) -> dict[str, Any]:
        plaintext = self.open_bytes(sealed, associated_data(kind, src, dst))
        try:
            payload = json.loads(plaintext)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SealError(f"a sealed payload holds no JSON: {error}") from None
        if not isinstance(payload, dict):
            raise SealError("a sealed payload must hold a JSON object")
        return payload


def seal_payload(
    sealer: Sealer | None, kind: str, src: str, dst: str, payload: dict[str, Any]
) -> dict[str, Any]:
    """The payload to send for a frame of ``kind`` from ``src`` to ``dst``."""
    if sealer is None or kind not in SEALED_TYPES:
        return payload
    return sealer.seal(kind, src, dst, payload)


def open_frame(sealer: Sealer | None, self_id: str, frame: dict[str, Any]) -> dict[str, Any]:
    """A relayed frame with its payload opened; raise SealError if it must be refused."""
    kind, src, payload = frame.get("type"), frame.get("src"), frame.get("payload")
    if kind not in SEALED_TYPES or not isinstance(src, str) or not isinstance(kind, str):
        return frame
    if sealer is None:
        if is_sealed(payload):
            raise SealError("the peer sealed it with a room passphrase, and we have none")
        return frame
    if not is_sealed(payload):
        raise SealError("the peer sent it unsealed: it has no room passphrase")
    return {**frame, "payload": sealer.open(kind, src, self_id, payload)}


@dataclass(frozen=True)
class Rejection:
    """A peer's signaling we refused: nobody can tell from it whose passphrase is wrong."""

    peer_id: str
    type: str
    reason: str
