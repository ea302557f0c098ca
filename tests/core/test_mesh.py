"""Mesh policy: the golden cases shared with js/core/mesh.test.ts."""

from __future__ import annotations

import json
import random
import statistics
from collections import deque
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import pytest

from nbchat.core import mesh
from nbchat.core.mesh import LinkState, MeshPolicy, backoff_delay, overlay, ring_position

FIXTURE = json.loads((Path(__file__).parent.parent / "fixtures" / "mesh_cases.json").read_text())


def test_the_constants_are_the_shared_ones() -> None:
    assert {
        "DIAL_TIMEOUT_MS": mesh.DIAL_TIMEOUT_MS,
        "SILENT_LINK_MS": mesh.SILENT_LINK_MS,
        "REDIAL_BASE_MS": mesh.REDIAL_BASE_MS,
        "REDIAL_MAX_MS": mesh.REDIAL_MAX_MS,
        "MESH_SIZE": mesh.MESH_SIZE,
        "MAX_LINKS": mesh.MAX_LINKS,
        "RING_NEIGHBOURS": mesh.RING_NEIGHBOURS,
        "CHORDS": mesh.CHORDS,
        "CHORD_PROBE": mesh.CHORD_PROBE,
        "FORWARD_PARENTS": mesh.FORWARD_PARENTS,
    } == FIXTURE["constants"]


@pytest.mark.parametrize("case", FIXTURE["cases"], ids=lambda c: c["name"])
def test_mesh_case(case: dict[str, Any]) -> None:
    policy = MeshPolicy(case["self"])
    for number, step in enumerate(case["steps"]):
        op, where = step["op"], f"step {number}"
        if op == "roster":
            assert policy.dials_on_roster(step["present"], step["linked"]) == step["dials"], where
        elif op == "change":
            assert policy.dials_on_change(step["present"], step["linked"]) == step["dials"], where
        elif op == "repair":
            dials = policy.repair_dials(step["present"], step["linked"], step["redialing"])
            assert dials == step["dials"], where
        elif op == "incoming":
            existing = step["existing"]
            link = (
                None if existing is None else LinkState(existing["open"], existing["dialed_by_us"])
            )
            accept = policy.accept_incoming(
                step["caller"], link, step.get("present"), step.get("links", 0)
            )
            assert accept == step["accept"], where
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
        elif op == "ring_position":
            assert ring_position(step["id"], step["salt"]) == step["position"], where
        elif op == "overlay":
            links = overlay(step["present"], step["mesh_size"], step["max_links"])
            assert {p: sorted(q) for p, q in links.items()} == step["links"], where
        elif op == "prune":
            assert policy.prune(step["present"], step["linked"]) == step["close"], where
        elif op == "forward":
            to = policy.forward_to(step["author"], step["from"], step["linked"], step["present"])
            assert to == step["to"], where
        else:
            assert op == "backoff", op
            assert backoff_delay(step["attempt"], step["random"]) == step["delay"], where


# --- the overlay's properties, beyond the golden cases ------------------------------------


def _ids(rnd: random.Random, n: int) -> list[str]:
    return [f"{rnd.choice(['anon', 'user', 'x'])}-{rnd.getrandbits(40):x}" for _ in range(n)]


def _diameter(links: Mapping[str, Collection[str]], nodes: set[str]) -> int | None:
    """The longest shortest path among ``nodes`` over ``links``; None if not connected."""
    worst = 0
    for source in nodes:
        dist = {source: 0}
        queue = deque([source])
        while queue:
            node = queue.popleft()
            for other in links[node]:
                if other in nodes and other not in dist:
                    dist[other] = dist[node] + 1
                    queue.append(other)
        if len(dist) < len(nodes):
            return None
        worst = max(worst, *dist.values())
    return worst


@pytest.mark.parametrize("n", [10, 20, 50, 200])
def test_the_overlay_is_bounded_symmetric_connected_and_short(n: int) -> None:
    rnd = random.Random(n)
    for _ in range(5):
        peers = _ids(rnd, n)
        links = overlay(peers)
        assert set(links) == set(peers)
        assert all(len(q) <= mesh.MAX_LINKS for q in links.values())
        assert all(a in links[b] for a in links for b in links[a])
        assert all(len(q) >= 2 * mesh.RING_NEIGHBOURS for q in links.values())
        diameter = _diameter(links, set(peers))
        assert diameter is not None and diameter <= (5 if n <= 200 else 6)
        # Whatever a quarter leaving breaks, the survivors' own overlay is whole again.
        survivors = rnd.sample(peers, n - n // 4)
        assert _diameter(overlay(survivors), set(survivors)) is not None


def test_a_newcomer_moves_only_a_few_links() -> None:
    rnd = random.Random(7)
    peers = _ids(rnd, 200)
    before = {frozenset((a, b)) for a, q in overlay(peers).items() for b in q}
    changed = []
    for newcomer in _ids(rnd, 20):
        after = {frozenset((a, b)) for a, q in overlay([*peers, newcomer]).items() for b in q}
        changed.append(len(before ^ after))
    # ~800 links in the room; a newcomer needs ~8 of its own, and moves a few others.
    assert statistics.median(changed) <= 30


def test_every_peer_computes_the_same_overlay_from_its_own_roster() -> None:
    peers = _ids(random.Random(3), 40)
    wanted = {p: MeshPolicy(p).wanted([q for q in reversed(peers) if q != p]) for p in peers}
    assert all(a in wanted[b] for a in peers for b in wanted[a])
    assert wanted == {p: overlay(peers)[p] for p in peers}
