"""Chat data-channel frames: peerjs-compatible JSON bytes and chunking (pure, no sockets)."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbchat.peer.frames import CHUNK_THRESHOLD, ChunkAssembler, InvalidFrame, decode, encode, split
from nbchat.peer.ice import parse_candidate, rtc_configuration


def test_encode_is_compact_utf8_like_json_stringify() -> None:
    frame = {"type": "message", "message": {"text": 'héllo ✓ "q"'}}
    assert encode(frame) == '{"type":"message","message":{"text":"héllo ✓ \\"q\\""}}'.encode()
    assert decode(encode(frame)) == frame
    assert decode(encode(frame).decode()) == frame  # text payloads are accepted too


@pytest.mark.parametrize("payload", [b"\xff\xfe", b"[1,2]", b"not json", "42"])
def test_decode_refuses_non_frames(payload: bytes | str) -> None:
    with pytest.raises(InvalidFrame):
        decode(payload)


def test_small_frames_are_not_chunked() -> None:
    frame = {"type": "message", "text": "x" * 100}
    assert split(frame) == [encode(frame)]


@settings(max_examples=40, deadline=None)
@given(st.text(min_size=0, max_size=60_000), st.randoms(use_true_random=False))
def test_big_frames_split_below_peerjs_limit_and_reassemble_in_any_order(
    text: str, rnd: random.Random
) -> None:
    frame = {"type": "history", "messages": [{"text": text}]}
    payloads = split(frame, chunk_id="c-1")
    if len(encode(frame)) < CHUNK_THRESHOLD:
        assert payloads == [encode(frame)]
        return
    assert all(len(p) < CHUNK_THRESHOLD for p in payloads)
    chunks = [decode(p) for p in payloads]
    assert {c["count"] for c in chunks} == {len(chunks)}
    rnd.shuffle(chunks)
    assembler = ChunkAssembler()
    results = [assembler.feed(c) for c in chunks]
    assert results[:-1] == [None] * (len(chunks) - 1)
    assert results[-1] == frame


def test_worst_case_escapes_still_fit() -> None:
    frame = {"type": "message", "text": '\x01"\\' * 20_000}  # each char escapes to 2-6 bytes
    payloads = split(frame)
    assert len(payloads) > 1 and all(len(p) < CHUNK_THRESHOLD for p in payloads)
    assembler = ChunkAssembler()
    out = [assembler.feed(decode(p)) for p in payloads]
    assert out[-1] == frame


@pytest.mark.parametrize(
    "chunk",
    [
        {"type": "chunk", "id": 5, "index": 0, "count": 2, "data": ""},
        {"type": "chunk", "id": "c", "index": 2, "count": 2, "data": ""},
        {"type": "chunk", "id": "c", "index": 0, "count": 0, "data": ""},
        {"type": "chunk", "id": "c", "index": 0, "count": 10**9, "data": ""},
        {"type": "chunk", "id": "c", "index": True, "count": 2, "data": ""},
        {"type": "chunk", "id": "c", "index": 0, "count": 2, "data": None},
    ],
)
def test_malformed_chunks_are_refused(chunk: dict[str, object]) -> None:
    with pytest.raises(InvalidFrame):
        ChunkAssembler().feed(chunk)


def test_assembler_limits_partial_frames_and_size() -> None:
    assembler = ChunkAssembler(max_partial=2, max_chars=10)
    assembler.feed({"id": "a", "index": 0, "count": 2, "data": "{"})
    assembler.feed({"id": "b", "index": 0, "count": 2, "data": "{"})
    with pytest.raises(InvalidFrame):
        assembler.feed({"id": "c", "index": 0, "count": 2, "data": "{"})
    with pytest.raises(InvalidFrame):
        assembler.feed({"id": "a", "index": 1, "count": 2, "data": "x" * 20})
    with pytest.raises(InvalidFrame):
        assembler.feed({"id": "b", "index": 1, "count": 3, "data": "}"})


def test_a_chunk_may_not_wrap_a_chunk() -> None:
    inner = json.dumps({"type": "chunk", "id": "x", "index": 0, "count": 1, "data": "{}"})
    with pytest.raises(InvalidFrame):
        ChunkAssembler().feed({"id": "o", "index": 0, "count": 1, "data": inner})


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
    from nbchat.core.sync import history_batches
    from nbchat.msglog import MessageLog, normalize_identity

    log = MessageLog("A", normalize_identity({"username": "a"}))
    texts = ["short"] * 300 + ["x" * 40_000] + ["medium " * 100] * 50
    messages = [log.compose(t, 0) for t in texts]
    batches = list(history_batches(messages))
    assert [m for b in batches for m in b] == messages
    for batch in batches:
        size = len(encode({"type": "history", "messages": batch}))
        assert size < CHUNK_THRESHOLD or len(batch) == 1
