"""Rich messages and shared files: the golden fixtures shared with js/ (rich_cases, files)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from nbchat.core import files, rich
from nbchat.core.frames import dumps
from nbchat.core.msglog import MessageLog, normalize_identity

FIXTURES = Path(__file__).parents[1] / "fixtures"
RICH = json.loads((FIXTURES / "rich_cases.json").read_text())
FILES = json.loads((FIXTURES / "files.json").read_text())


def by_name(cases: list[dict[str, Any]]) -> Any:
    return pytest.mark.parametrize("case", cases, ids=[c["name"] for c in cases])


@by_name(RICH["clean"])
def test_a_bundle_keeps_only_safe_entries(case: dict[str, Any]) -> None:
    limit = case.get("limit", rich.MAX_RICH_BYTES)
    result = rich.clean_mime(case["value"], limit)
    assert result == case["result"]
    if result is not None:
        assert list(result) == [t for t in rich.RICH_MIME_TYPES if t in result]


def test_sizes_best_types_and_errors() -> None:
    for case in RICH["size"]:
        assert rich.rich_size(case["mime"]) == case["size"]
    for case in RICH["best_type"]:
        assert rich.best_type(case["mime"]) == case["result"]
    for case in RICH["format_size"]:
        assert rich.format_size(case["size"]) == case["text"]
    for case in RICH["size_error"]:
        assert rich.size_error(case["what"], case["size"], case["limit"]) == case["text"]


def test_the_log_keeps_valid_rich_parts_and_always_the_text() -> None:
    case = RICH["messages"]
    log = MessageLog(case["self"]["peer_id"], normalize_identity(case["self"]["user"]))
    for raw in case["received"]:
        log.receive_direct(case["from"], normalize_identity(case["user"]), raw)
    assert log.messages == case["result"]
    assert dumps({"type": "history", "messages": log.messages}) == case["wire"]


def test_a_composed_message_carries_its_bundle_and_card() -> None:
    log = MessageLog("A", normalize_identity({"username": "alice"}))
    bundle = RICH["clean"][0]["result"]
    card = FILES["meta"][0]["result"]
    message = log.compose("fallback", 1.0, mime={**bundle, "x/evil": "1"}, file=card)
    assert message["mime"] == bundle
    assert message["file"] == card


@by_name(
    [
        {
            "name": c["name"] or "(empty)",
            **{k: v for k, v in c.items() if k != "name"},
            "file_name": c["name"],
        }
        for c in FILES["names"]
    ]
)
def test_file_names_are_cleaned(case: dict[str, Any]) -> None:
    assert files.clean_file_name(case["file_name"]) == case["result"]


@by_name(FILES["meta"])
def test_file_cards_are_validated(case: dict[str, Any]) -> None:
    assert (
        files.clean_file_meta(case["value"], case.get("limit", files.FILE_LIMIT_BYTES))
        == case["result"]
    )


def test_files_split_into_parts_and_back() -> None:
    for case in FILES["part_count"]:
        assert files.part_count(case["size"]) == case["count"]
    split = FILES["split"]
    data = bytes.fromhex(split["data_hex"])
    assert files.split_file(data) == split["parts"]
    assert hashlib.sha256(data).hexdigest() == split["sha256"]


@by_name(FILES["assemble"])
def test_parts_are_assembled_or_refused(case: dict[str, Any]) -> None:
    assembler = files.FileAssembler(case["size"])
    results = []
    for index, count, data in case["feeds"]:
        try:
            assembler.feed(index, count, data)
            results.append("ok")
        except files.InvalidPart as error:
            results.append(f"error: {error}")
    assert results == case["results"]
    assert (assembler.received, assembler.done) == (case["received"], case["done"])
    assert assembler.next_missing == case["next_missing"]
    if case["done"]:
        assert hashlib.sha256(assembler.result()).hexdigest() == case["sha256"]
