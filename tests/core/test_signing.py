"""Signed log entries and the server's certificates: tests/fixtures/signing_cases.json
(js/core/signing.test.ts runs the same cases against WebCrypto)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nbchat.core import signing
from nbchat.core.msglog import MessageLog, normalize_identity

FIXTURE = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "signing_cases.json").read_text(encoding="utf-8")
)


def named(cases: list[dict[str, Any]]) -> Any:
    return pytest.mark.parametrize("case", cases, ids=[c["name"] for c in cases])


def private(name: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(signing.b64decode(FIXTURE["seeds"][name]))


def test_the_keys_are_rfc_8032_ed25519() -> None:
    # RFC 8032 §7.1 TEST 1: this secret key has this public key and signs "" as this.
    server = private("server")
    assert signing.b64decode(FIXTURE["public"]["server"]).hex() == (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    )
    assert server.sign(b"").hex().startswith("e5564300c360ac729086e2cc806e828a84877f1e")
    for name, key in FIXTURE["public"].items():
        assert signing.public_key(private(name)) == key


@named(FIXTURE["entries"])
def test_an_entry_is_signed_over_its_canonical_bytes(case: dict[str, Any]) -> None:
    entry = {k: v for k, v in case["entry"].items() if k != "sig"}
    assert signing.entry_bytes(case["room"], entry).decode("utf-8") == case["bytes"]
    assert signing.sign_entry(private("alice"), case["room"], entry) == case["entry"]["sig"]
    assert signing.verify_entry(FIXTURE["public"]["alice"], case["room"], case["entry"])


@named(FIXTURE["verify"])
def test_verify_entry(case: dict[str, Any]) -> None:
    key = FIXTURE["public"][case["key"]]
    assert signing.verify_entry(key, case["room"], case["entry"]) is case["valid"]


@named(FIXTURE["certs"])
def test_verify_cert(case: dict[str, Any]) -> None:
    keys = [FIXTURE["public"][n] for n in case.get("server_keys", ["server"])]
    verified = signing.verify_cert(keys, case["cert"], case["room"])
    assert (verified is not None) is case["valid"]
    if verified is not None:
        assert verified["user"] == normalize_identity(case["cert"]["user"])
        assert verified["key"] == case["cert"]["key"]


def test_the_certificate_bytes_are_pinned() -> None:
    cert = FIXTURE["certs"][0]["cert"]
    assert signing.cert_bytes(cert).decode("utf-8") == FIXTURE["cert_bytes"]


def test_a_signed_entry_survives_the_log_and_still_verifies() -> None:
    case = FIXTURE["entries"][1]
    log = MessageLog("Z", normalize_identity({"username": "zoe"}))
    added, rejected = log.receive_history([{**case["entry"], "user": {"username": "alice"}}])
    assert rejected == [] and added[0]["sig"] == case["entry"]["sig"]
    assert signing.verify_entry(FIXTURE["public"]["alice"], case["room"], added[0])


@pytest.mark.parametrize("text", ["", "a=", "a+b", "é", "a\n", "abcde", 5])
def test_b64decode_refuses_what_is_not_base64url(text: Any) -> None:
    if text == "":
        assert signing.b64decode(text) == b""
    else:
        with pytest.raises(ValueError):
            signing.b64decode(text)


@named(FIXTURE["book"])
def test_cert_book(case: dict[str, Any]) -> None:
    book = signing.CertBook(case["room"], [FIXTURE["public"]["server"]])
    for op in case["ops"]:
        if op["op"] == "learn":
            assert book.learn(op["certs"]) == op["learned"], op
        elif op["op"] == "verify":
            expected = normalize_identity(op["user"]) if op["user"] is not None else None
            assert book.verify(op["entry"]) == expected, op
        elif op["op"] == "certs_for":
            assert book.certs_for(op["peers"]) == op["certs"]
        else:
            assert book.refused == op["refused"]


CHAINS = FIXTURE["chains"]


def test_an_entry_digest_is_sha256_of_its_signed_bytes_and_signature() -> None:
    import hashlib

    entry = CHAINS["digest"]["entry"]
    raw = signing.entry_bytes("analysis", entry) + signing.b64decode(entry["sig"])
    expected = signing.b64encode(hashlib.sha256(raw).digest())
    assert signing.entry_digest("analysis", entry) == expected == CHAINS["digest"]["digest"]
    assert signing.entry_digest("analysis", {**entry, "sig": "short"}) is None


def test_prev_is_signed() -> None:
    # The second entry of the chain, its prev stripped or swapped: the signature fails.
    entry = CHAINS["cases"][0]["entries"][1]
    key = CHAINS["certs"][0]["key"]  # alice's, as her certificate says
    assert signing.verify_entry(key, "analysis", entry)
    assert not signing.verify_entry(
        key, "analysis", {k: v for k, v in entry.items() if k != "prev"}
    )
    assert not signing.verify_entry(key, "analysis", {**entry, "prev": "A" * 43})


@named(CHAINS["cases"])
def test_verify_all_follows_hash_chains(case: dict[str, Any]) -> None:
    book = signing.CertBook("analysis", [FIXTURE["public"]["server"]])
    assert book.learn(CHAINS["certs"]) == ["A", "M"]
    users = book.verify_all(case["entries"])
    assert [u is not None for u in users] == case["valid"]
    for entry, user in zip(case["entries"], users, strict=True):
        if user is not None:
            assert user["username"] == {"A": "alice", "M": "mallory"}[entry["author"]]
    assert book.checks == case["checks"]
    assert book.refused == case["refused"]


@named(CHAINS["cases"])
def test_verify_all_says_what_verify_says_one_by_one(case: dict[str, Any]) -> None:
    book = signing.CertBook("analysis", [FIXTURE["public"]["server"]])
    book.learn(CHAINS["certs"])
    one_by_one = [book.verify(e) is not None for e in case["entries"]]
    assert one_by_one == case["valid"]


def test_a_chained_entry_survives_the_log_and_a_bad_prev_is_refused() -> None:
    first, second = CHAINS["cases"][0]["entries"][:2]
    log = MessageLog("Z", normalize_identity({"username": "zoe"}))
    bad = {**first, "seq": 7, "clock": 7, "prev": "not a digest", "user": {"username": "a"}}
    added, rejected = log.receive_history(
        [{**m, "user": {"username": "alice"}} for m in (first, second)] + [bad]
    )
    assert [m.get("prev") for m in added] == [None, second["prev"]]
    assert len(rejected) == 1 and "prev" in str(rejected[0])
    book = signing.CertBook("analysis", [FIXTURE["public"]["server"]])
    book.learn(CHAINS["certs"])
    assert all(book.verify_all(added)) and book.checks == 1


def test_a_certificate_learned_again_is_not_checked_again_but_an_altered_one_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every link that forwards an author's first entry carries the author's certificate:
    # one server-signature check per certificate, not one per copy.
    checked: list[object] = []
    verify_cert = signing.verify_cert

    def counting(keys: Any, cert: object, room: str) -> Any:
        checked.append(cert)
        return verify_cert(keys, cert, room)

    monkeypatch.setattr(signing, "verify_cert", counting)
    book = signing.CertBook("analysis", [FIXTURE["public"]["server"]])
    alice = next(c for c in CHAINS["certs"] if c["peer"] == "A")
    assert book.learn([alice]) == ["A"]
    assert book.learn([dict(alice)]) == []
    assert len(checked) == 1 and book.refused == {}
    # The same signature over other words is checked, and refused.
    for altered in (
        {**alice, "user": {**alice["user"], "display_name": "Mallory"}},
        {**alice, "key": signing.public_key(private("mallory"))},
        {**alice, "room": "elsewhere"},
    ):
        assert book.learn([altered]) == []
    assert len(checked) == 4 and book.refused == {"bad_cert": 3}
    assert book.cert("A") == signing.verify_cert([FIXTURE["public"]["server"]], alice, "analysis")


@named(FIXTURE["wire"])
def test_a_signed_entry_goes_on_the_wire_without_id_or_user_an_unsigned_one_as_it_is(
    case: dict[str, Any],
) -> None:
    wire = signing.on_wire(case["entry"])
    assert wire == case["wire"]
    assert list(wire) == list(case["wire"])  # the entry's order, for the same bytes as JS
    assert signing.entry_bytes("r", wire) == signing.entry_bytes("r", case["entry"])
