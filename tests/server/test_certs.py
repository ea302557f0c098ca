"""The server's certificate authority: its key file, and what it refuses to sign."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from nbchat.core.msglog import normalize_identity
from nbchat.core.signing import b64encode, generate_key, public_key, verify_cert
from nbchat.server.certs import CertAuthority, KeyRefused

ALICE = normalize_identity({"username": "alice", "display_name": "Alice"})


def test_the_key_file_is_made_private_once_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "nbchat" / "signing-key.pem"
    first = CertAuthority.from_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = CertAuthority.from_file(path)
    assert again.public_key == first.public_key
    # A certificate issued before a restart still verifies after it.
    cert = first.certify("room", "A", ALICE, public_key(generate_key()))
    assert verify_cert([again.public_key], cert, "room") is not None


def test_a_file_without_an_ed25519_key_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_text("not a key")
    with pytest.raises(ValueError):
        CertAuthority.from_file(path)


def test_one_peer_id_keeps_its_first_key(tmp_path: Path) -> None:
    authority = CertAuthority.from_file(tmp_path / "k.pem")
    key = public_key(generate_key())
    authority.certify("room", "A", ALICE, key)
    assert authority.certify("room", "A", ALICE, key)["key"] == key  # asking again is fine
    with pytest.raises(KeyRefused, match="already has another key"):
        authority.certify("room", "A", ALICE, public_key(generate_key()))
    # The same id in another room is another peer.
    authority.certify("other", "A", ALICE, public_key(generate_key()))


@pytest.mark.parametrize("key", ["", "abc", b64encode(b"x" * 31), b64encode(b"x" * 33), "!" * 43])
def test_what_is_not_a_public_key_is_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(KeyRefused, match="32 bytes"):
        CertAuthority.from_file(tmp_path / "k.pem").certify("room", "A", ALICE, key)
