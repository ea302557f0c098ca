"""The Python peer's ICE helpers and history batches (the frame formats: tests/core/)."""

from __future__ import annotations

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


async def test_offer_carries_a_loopback_host_candidate() -> None:
    from aiortc import RTCPeerConnection

    from nbchat.peer.ice import add_loopback_host_candidates

    pc = RTCPeerConnection(rtc_configuration([]))
    try:
        pc.createDataChannel("dc_test", ordered=True)
        add_loopback_host_candidates(pc)
        await pc.setLocalDescription(await pc.createOffer())
        lines = [x for x in pc.localDescription.sdp.splitlines() if x.startswith("a=candidate:")]
        assert any(" 127.0.0.1 " in line and "typ host" in line for line in lines), lines
        assert not any("typ srflx" in line or "typ relay" in line for line in lines)
    finally:
        await pc.close()


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
