"""Sealed signaling payloads: the golden fixture shared with js/sealedSignaling.test.ts."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from nbchat.peer.sealed import (
    KDF_ITERATIONS,
    Sealer,
    SealError,
    associated_data,
    derive_room_key,
)

CASES = json.loads((Path(__file__).parents[1] / "fixtures" / "sealed_cases.json").read_text())


def _sealer(case: dict[str, Any]) -> Sealer:
    return Sealer(bytes.fromhex(case["key_hex"]))


@pytest.mark.parametrize("case", CASES["kdf"], ids=lambda c: c["name"])
def test_the_passphrase_and_room_key_derive_the_fixture_key(case: dict[str, Any]) -> None:
    assert case["iterations"] == KDF_ITERATIONS
    assert derive_room_key(case["passphrase"], case["room_key"]).hex() == case["key_hex"]


@pytest.mark.parametrize("case", CASES["seal"], ids=lambda c: c["name"])
def test_a_known_plaintext_seals_to_the_fixture_payload(case: dict[str, Any]) -> None:
    sealer = _sealer(case)
    iv = base64.b64decode(case["iv"])
    aad = associated_data(case["type"], case["src"], case["dst"])
    assert sealer.seal_bytes(case["plaintext"].encode(), aad, iv) == case["sealed"]
    payload = json.loads(case["plaintext"])
    assert sealer.seal(case["type"], case["src"], case["dst"], payload, iv) == case["sealed"]
    assert sealer.open(case["type"], case["src"], case["dst"], case["sealed"]) == payload


@pytest.mark.parametrize("case", CASES["open_fails"], ids=lambda c: c["name"])
def test_a_changed_or_foreign_payload_does_not_open(case: dict[str, Any]) -> None:
    with pytest.raises(SealError):
        _sealer(case).open(case["type"], case["src"], case["dst"], case["sealed"])


def test_every_seal_uses_a_fresh_iv() -> None:
    sealer = Sealer(bytes(32))
    a = sealer.seal("OFFER", "a", "b", {"x": 1})
    b = sealer.seal("OFFER", "a", "b", {"x": 1})
    assert a["iv"] != b["iv"] and a["data"] != b["data"]


def test_an_empty_passphrase_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        derive_room_key("", "room")
