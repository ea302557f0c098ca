"""Chunking and frame encoding (pure): properties beyond tests/fixtures/chunking.json."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbchat.core.chunking import CHUNK_THRESHOLD_BYTES, ChunkAssembler, split
from nbchat.core.frames import InvalidFrame, decode, encode


def _no_id() -> str:
    raise AssertionError("a small frame needs no chunk id")


def _chunk(chunk_id: str, index: int, count: int, data: str) -> dict[str, object]:
    return {"type": "chunk", "id": chunk_id, "index": index, "count": count, "data": data}


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
    frame = {"type": "message", "message": {"text": "x" * 100}}
    assert split(frame, _no_id) == [frame]


@settings(max_examples=40, deadline=None)
@given(st.text(min_size=0, max_size=60_000), st.randoms(use_true_random=False))
def test_big_frames_split_below_peerjs_limit_and_reassemble_in_any_order(
    text: str, rnd: random.Random
) -> None:
    frame = {"type": "history", "messages": [{"text": text}]}
    parts = split(frame, lambda: "c-1")
    if len(encode(frame)) < CHUNK_THRESHOLD_BYTES:
        assert parts == [frame]
        return
    assert all(len(encode(p)) <= CHUNK_THRESHOLD_BYTES for p in parts)
    chunks = [decode(encode(p)) for p in parts]
    assert {c["count"] for c in chunks} == {len(chunks)}
    rnd.shuffle(chunks)
    assembler = ChunkAssembler()
    results = [assembler.feed(c) for c in chunks]
    assert results[:-1] == [None] * (len(chunks) - 1)
    assert results[-1] == frame


def test_worst_case_escapes_still_fit() -> None:
    frame = {"type": "message", "message": {"text": '\x01"\\' * 20_000}}  # 2-6 bytes each
    parts = split(frame, lambda: "c-1")
    assert len(parts) > 1 and all(len(encode(p)) <= CHUNK_THRESHOLD_BYTES for p in parts)
    assembler = ChunkAssembler()
    out = [assembler.feed(decode(encode(p))) for p in parts]
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
    assembler = ChunkAssembler(max_pending=2, max_bytes=10)
    assembler.feed(_chunk("a", 0, 2, "{"))
    assembler.feed(_chunk("b", 0, 2, "{"))
    with pytest.raises(InvalidFrame, match="in flight"):
        assembler.feed(_chunk("c", 0, 2, "{"))
    with pytest.raises(InvalidFrame, match="too big"):
        assembler.feed(_chunk("a", 1, 2, "x" * 20))
    with pytest.raises(InvalidFrame, match="count changed"):
        assembler.feed(_chunk("b", 1, 3, "}"))
    assert assembler.pending == 0


def test_a_chunk_may_not_wrap_a_chunk() -> None:
    inner = json.dumps({"type": "chunk", "id": "x", "index": 0, "count": 1, "data": "{}"})
    with pytest.raises(InvalidFrame):
        ChunkAssembler().feed(_chunk("o", 0, 1, inner))
