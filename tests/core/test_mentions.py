"""Mentions and the typing indicator: tests/fixtures/mentions.json (js/core/mentions.test.ts
runs the same cases)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nbchat.core.mentions import TypingTracker, mentions, typing_label

FIXTURE = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "mentions.json").read_text(encoding="utf-8")
)


@pytest.mark.parametrize("case", FIXTURE["mentions"], ids=[c["name"] for c in FIXTURE["mentions"]])
def test_mentions(case: dict[str, Any]) -> None:
    assert mentions(case["text"], FIXTURE["usernames"]) == case["expect"]


@pytest.mark.parametrize(
    "case", FIXTURE["labels"], ids=[str(len(c["names"])) for c in FIXTURE["labels"]]
)
def test_typing_label(case: dict[str, Any]) -> None:
    assert typing_label(case["names"]) == case["label"]


@pytest.mark.parametrize("case", FIXTURE["tracker"], ids=[c["name"] for c in FIXTURE["tracker"]])
def test_typing_tracker(case: dict[str, Any]) -> None:
    tracker = TypingTracker()
    for op in case["ops"]:
        if op["op"] == "typing":
            changed = tracker.typing(op["peer"], op["name"], op["now"], op.get("on", True))
            assert changed == op.get("changed", changed), op
        elif op["op"] == "stopped":
            changed = tracker.stopped(op["peer"])
            assert changed == op.get("changed", changed), op
        elif op["op"] == "names":
            assert tracker.names(op["now"]) == op["expect"], op
        else:
            assert tracker.next_change() == op["expect"], op
