"""Mesh policy: the golden cases shared with js/core/mesh.test.ts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nbchat.core import mesh
from nbchat.core.mesh import LinkState, MeshPolicy, backoff_delay

FIXTURE = json.loads((Path(__file__).parent.parent / "fixtures" / "mesh_cases.json").read_text())


def test_the_constants_are_the_shared_ones() -> None:
    assert {
        "DIAL_TIMEOUT_MS": mesh.DIAL_TIMEOUT_MS,
        "SILENT_LINK_MS": mesh.SILENT_LINK_MS,
        "REDIAL_BASE_MS": mesh.REDIAL_BASE_MS,
        "REDIAL_MAX_MS": mesh.REDIAL_MAX_MS,
    } == FIXTURE["constants"]


@pytest.mark.parametrize("case", FIXTURE["cases"], ids=lambda c: c["name"])
def test_mesh_case(case: dict[str, Any]) -> None:
    policy = MeshPolicy(case["self"])
    for number, step in enumerate(case["steps"]):
        op, where = step["op"], f"step {number}"
        if op == "roster":
            assert policy.dials_on_roster(step["present"], step["linked"]) == step["dials"], where
        elif op == "repair":
            dials = policy.repair_dials(step["present"], step["linked"], step["redialing"])
            assert dials == step["dials"], where
        elif op == "incoming":
            existing = step["existing"]
            link = (
                None if existing is None else LinkState(existing["open"], existing["dialed_by_us"])
            )
            assert policy.accept_incoming(step["caller"], link) == step["accept"], where
        elif op == "lost":
            delay = policy.on_link_lost(
                step["peer"],
                was_open=step["was_open"],
                silent=step["silent"],
                present=step["present"],
                random=step["random"],
            )
            assert delay == step["delay"], where
        elif op == "open":
            policy.on_link_open(step["peer"])
        elif op == "forget":
            policy.forget(step["peer"])
        else:
            assert op == "backoff", op
            assert backoff_delay(step["attempt"], step["random"]) == step["delay"], where
