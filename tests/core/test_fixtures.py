"""The golden fixtures in tests/fixtures/ against the Python core; js/core/fixtures.test.ts
runs the same files against the TypeScript core, so a change on one side only fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nbchat.core import chunking, comm, files, frames, msglog, ratelimit, rich, session
from nbchat.core.chunking import ChunkAssembler, slice_text, split
from nbchat.core.frames import InvalidFrame, dumps, parse_chat_frame
from nbchat.core.ratelimit import IncomingLimits
from nbchat.core.session import InvalidSession, SessionConfig

FIXTURES = Path(__file__).parents[1] / "fixtures"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def named(cases: list[dict[str, Any]]) -> Any:
    return pytest.mark.parametrize("case", cases, ids=[c["name"] for c in cases])


CONSTANTS = load("core_constants.json")
FRAMES = load("chat_frames.json")
CHUNKING = load("chunking.json")
RATELIMIT = load("ratelimit.json")
SESSION = load("session.json")
COMM = load("comm.json")


def test_constants_are_the_ones_both_cores_hold() -> None:
    c = CONSTANTS
    assert c["frames"] == {
        "MAX_MESSAGE_BYTES": frames.MAX_MESSAGE_BYTES,
        "MAX_SAFE_INTEGER": frames.MAX_SAFE_INTEGER,
        "CHUNK_ID_MAX_LENGTH": frames.CHUNK_ID_MAX_LENGTH,
        "FILE_ID_MAX_LENGTH": frames.FILE_ID_MAX_LENGTH,
        "ChatFrameType": {m.name: m.value for m in frames.ChatFrameType},
    }
    assert c["chunking"] == {
        "CHUNK_THRESHOLD_BYTES": chunking.CHUNK_THRESHOLD_BYTES,
        "CHUNK_SLICE_BYTES": chunking.CHUNK_SLICE_BYTES,
        "MAX_CHUNKED_IN_FLIGHT": chunking.MAX_CHUNKED_IN_FLIGHT,
        "MAX_CHUNK_COUNT": chunking.MAX_CHUNK_COUNT,
        "max_chunked_bytes(65536)": chunking.max_chunked_bytes(65536),
        "max_chunked_bytes(4096)": chunking.max_chunked_bytes(4096),
    }
    assert c["ratelimit"] == {
        "MESSAGE_RATE": ratelimit.MESSAGE_RATE._asdict(),
        "FRAME_RATE": ratelimit.FRAME_RATE._asdict(),
        "FLOOD_WARNING_MS": ratelimit.FLOOD_WARNING_MS,
    }
    assert c["msglog"] == {
        "MAX_CLOCK_STEP": msglog.MAX_CLOCK_STEP,
        "MAX_TIME": msglog.MAX_TIME,
        "MAX_BEYOND_RANGES": msglog.MAX_BEYOND_RANGES,
    }
    assert c["session"] == {"ICE_TRANSPORT_POLICIES": list(session.ICE_TRANSPORT_POLICIES)}
    assert c["comm"] == {"CommType": {m.name: m.value for m in comm.CommType}}
    assert c["rich"] == {
        "RICH_MIME_TYPES": list(rich.RICH_MIME_TYPES),
        "RICH_LIMIT_BYTES": rich.RICH_LIMIT_BYTES,
        "MAX_RICH_BYTES": rich.MAX_RICH_BYTES,
    }
    assert c["files"] == {
        "FILE_LIMIT_BYTES": files.FILE_LIMIT_BYTES,
        "FILE_PART_BYTES": files.FILE_PART_BYTES,
        "MAX_FILE_NAME": files.MAX_FILE_NAME,
    }


def test_the_server_default_is_the_core_constant() -> None:
    from nbchat.server.settings import SignalingSettings

    assert SignalingSettings().max_message_bytes == frames.MAX_MESSAGE_BYTES


# --- chat frames ---------------------------------------------------------------------------


@named(FRAMES["parse"])
def test_chat_frame_parse(case: dict[str, Any]) -> None:
    assert parse_chat_frame(case["value"]) == case["parsed"]


@named(FRAMES["encode"])
def test_chat_frame_encode(case: dict[str, Any]) -> None:
    assert dumps(case["frame"]) == case["text"]
    assert frames.encode(case["frame"]) == case["text"].encode("utf-8")
    assert frames.decode(frames.encode(case["frame"])) == case["frame"]


# --- chunking ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CHUNKING["slice_text"], ids=lambda c: repr(c["text"]))
def test_slice_text(case: dict[str, Any]) -> None:
    assert slice_text(case["text"], case["budget"]) == case["slices"]


@named(CHUNKING["split"])
def test_split(case: dict[str, Any]) -> None:
    counter = iter(range(1, 1000))
    parts = split(case["frame"], lambda: f"c-B-{next(counter)}")
    assert [dumps(p) for p in parts] == [dumps(p) for p in case["frames"]]
    assert all(len(frames.encode(p)) <= chunking.CHUNK_THRESHOLD_BYTES for p in parts)


def _limits(case: dict[str, Any]) -> dict[str, int]:
    return dict(case.get("limits", {}))


@named(CHUNKING["reassembly"])
def test_reassembly(case: dict[str, Any]) -> None:
    assembler = ChunkAssembler(**_limits(case))
    for step in case["steps"]:
        try:
            whole = assembler.feed(step["chunk"])
        except InvalidFrame as error:
            assert step["result"] == {"error": str(error)}
        else:
            assert step["result"] == ("pending" if whole is None else {"frame": whole})
    assert assembler.pending == case["pending"]


# --- rate limits ---------------------------------------------------------------------------


@named(RATELIMIT["traces"])
def test_rate_limit_trace(case: dict[str, Any]) -> None:
    now = [case["steps"][0]["t"]]
    limits = IncomingLimits(now=lambda: now[0])
    for step in case["steps"]:
        now[0] = step["t"]
        if "report" in step:
            assert limits.report() == step["report"]
        else:
            is_message = step["kind"] == "message"
            accepted = sum(limits.accept(is_message) for _ in range(step["count"]))
            assert accepted == step["accepted"], step


# --- session config ------------------------------------------------------------------------


@named(SESSION["valid"])
def test_session_config_valid(case: dict[str, Any]) -> None:
    config = SessionConfig.from_json(case["config"])
    assert config.to_json() == case["parsed"]
    assert SessionConfig.from_json(config.to_json()) == config


@named(SESSION["invalid"])
def test_session_config_invalid(case: dict[str, Any]) -> None:
    with pytest.raises(InvalidSession):
        SessionConfig.from_json(case["config"])


# --- comm ----------------------------------------------------------------------------------


@named(COMM["from_browser"])
def test_comm_from_browser(case: dict[str, Any]) -> None:
    assert comm.parse_from_browser(case["value"]) == case["parsed"]


@named(COMM["from_kernel"])
def test_comm_from_kernel(case: dict[str, Any]) -> None:
    assert comm.parse_from_kernel(case["value"]) == case["parsed"]


@pytest.mark.parametrize("case", COMM["build"], ids=lambda c: c["builder"])
def test_comm_builders(case: dict[str, Any]) -> None:
    builder = getattr(comm, case["builder"])
    assert dumps(builder(*case["args"])) == case["text"]
