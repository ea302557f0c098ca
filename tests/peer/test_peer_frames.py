"""The Python peer's ICE helpers and history batches (the frame formats: tests/core/)."""

from __future__ import annotations

from typing import Any

import pytest

from nbchat.core.chunking import CHUNK_THRESHOLD_BYTES
from nbchat.core.frames import encode
from nbchat.peer.ice import parse_candidate, rtc_configuration


def test_browser_candidates_parse_for_aiortc() -> None:
    init = {
        "candidate": "candidate:1 1 udp 2113937151 7f0c1e1a-1c1b.local 54321 typ host generation 0",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
    }
    candidate = parse_candidate(init)
    assert candidate is not None
    assert (candidate.ip, candidate.port, candidate.type) == ("7f0c1e1a-1c1b.local", 54321, "host")
    assert (candidate.sdpMid, candidate.sdpMLineIndex) == ("0", 0)
    assert parse_candidate({"candidate": "", "sdpMid": "0"}) is None  # end of candidates
    assert parse_candidate({"candidate": "candidate:garbage"}) is None
    assert parse_candidate("nope") is None


def test_ice_configuration_is_only_what_the_server_says() -> None:
    assert rtc_configuration([]).iceServers == []
    config = rtc_configuration(
        [{"urls": "turn:turn.example:3478", "username": "u", "credential": "p"}, {"bad": 1}]
    )
    assert [(s.urls, s.username, s.credential) for s in config.iceServers] == [
        ("turn:turn.example:3478", "u", "p")
    ]


async def _offered_hosts(mode: str) -> list[str]:
    """The host candidates' addresses in a data-channel offer made with ``mode``."""
    from aiortc import RTCPeerConnection

    from nbchat.peer.ice import add_loopback_host_candidates

    pc = RTCPeerConnection(rtc_configuration([], loopback_candidate=mode))  # type: ignore[arg-type]
    try:
        pc.createDataChannel("dc_test", ordered=True)
        add_loopback_host_candidates(pc, mode)  # type: ignore[arg-type]
        await pc.setLocalDescription(await pc.createOffer())
        lines = [x for x in pc.localDescription.sdp.splitlines() if x.startswith("a=candidate:")]
        assert not any("typ srflx" in line or "typ relay" in line for line in lines)
        return [line.split()[4] for line in lines if "typ host" in line]
    finally:
        await pc.close()


async def test_an_offer_carries_a_loopback_candidate_only_where_it_is_needed() -> None:
    from aioice.ice import get_host_addresses

    own_ipv4 = get_host_addresses(use_ipv4=True, use_ipv6=False)
    auto = await _offered_hosts("auto")
    # With no address of its own (a loopback-only sandbox), 127.0.0.1 is the only way
    # to reach a peer on this host; next to one, it would only add ICE checks.
    assert ("127.0.0.1" in auto) == (not own_ipv4), auto
    assert set(own_ipv4) <= set(auto)
    assert "127.0.0.1" in await _offered_hosts("always")
    assert "127.0.0.1" not in await _offered_hosts("never")


def test_a_loopback_mode_that_does_not_exist_is_refused() -> None:
    with pytest.raises(ValueError, match="loopback_candidate"):
        rtc_configuration([], loopback_candidate="sometimes")  # type: ignore[arg-type]


async def test_connections_share_one_certificate_and_make_none_of_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiortc.rtcdtlstransport import RTCCertificate

    from nbchat.peer.dataconnection import DataConnection

    async def signal(*_: Any) -> None:
        return None

    made: list[object] = []
    original = RTCCertificate.generateCertificate.__func__  # type: ignore[attr-defined]

    def counting(cls: type) -> Any:
        made.append(cls)
        return original(cls)

    first = DataConnection("a", signal, rtc_configuration([]), lambda *_: None)
    monkeypatch.setattr(RTCCertificate, "generateCertificate", classmethod(counting))
    others = [DataConnection(p, signal, rtc_configuration([]), lambda *_: None) for p in "bcd"]
    try:
        assert made == []  # no key pair or certificate made per connection
        certificates = {id(c.pc._RTCPeerConnection__certificates[0]) for c in [first, *others]}
        assert len(certificates) == 1
        # Outside nbchat's connections aiortc makes its own certificate, as before.
        from aiortc import RTCPeerConnection

        plain = RTCPeerConnection(rtc_configuration([]))
        assert len(made) == 1
        await plain.close()
    finally:
        for connection in [first, *others]:
            await connection.close()


def test_history_batches_stay_small_enough_for_the_widget() -> None:
    from nbchat.core.msglog import MessageLog, normalize_identity
    from nbchat.core.sync import history_batches

    log = MessageLog("A", normalize_identity({"username": "a"}))
    texts = ["short"] * 300 + ["x" * 40_000] + ["medium " * 100] * 50
    messages = [log.compose(t, 0) for t in texts]
    batches = list(history_batches(messages))
    assert [m for b in batches for m in b] == messages
    for batch in batches:
        size = len(encode({"type": "history", "messages": batch}))
        assert size < CHUNK_THRESHOLD_BYTES or len(batch) == 1
