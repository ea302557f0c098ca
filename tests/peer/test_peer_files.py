"""Two real aiortc peers share a figure and files peer to peer (in-process Jupyter server)."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from tests.support.peers import until

pytestmark = pytest.mark.timeout(120)


async def test_a_figure_and_a_file_go_peer_to_peer(connect: Any, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    async with connect("files") as a, connect("files") as b:
        assert await a.wait_for_peers(1) and await b.wait_for_peers(1)
        fig, ax = plt.subplots(figsize=(2, 2), dpi=50)
        ax.plot([1, 2, 1])
        sent = await a.send(fig)
        plt.close(fig)
        await until(lambda: any(m["id"] == sent["id"] for m in b.history))
        [got] = [m for m in b.history if m["id"] == sent["id"]]
        assert got["mime"] == sent["mime"]
        assert base64.b64decode(got["mime"]["image/png"]).startswith(b"\x89PNG")
        assert got["text"].startswith("<Figure size")

        data = os.urandom(250_000)  # 24 parts
        source = tmp_path / "sub dir" / "results.csv"
        source.parent.mkdir()
        source.write_bytes(data)
        card = await a.send_file(source)
        assert card["file"] == {
            "name": "results.csv",
            "size": 250_000,
            "type": "text/csv",
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        received = await b.wait_file(card["id"])
        assert (received.name, received.type, received.sender) == ("results.csv", "text/csv", a.id)
        assert received.data == data
        assert b.files[card["id"]] == received


async def test_a_file_over_the_limit_is_refused_and_a_stopped_share_fails_cleanly(
    connect: Any, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3_000_000))
    async with connect("files-stop") as a, connect("files-stop", max_file_bytes=1_000_000) as b:
        assert await a.wait_for_peers(1) and await b.wait_for_peers(1)
        with pytest.raises(ValueError, match=r"^“big.bin” is 3 MB; the limit is 1 MB$"):
            await b.send_file(big)
        card = await a.send_file(big)
        a.stop_sharing(card)  # before B's request arrives, or while the parts stream
        await until(lambda: any(m["id"] == card["id"] for m in b.history))
        with pytest.raises(ValueError):  # over B's limit: B never asks; "failed"
            await b.wait_file(card["id"], timeout=5)

    async with connect("files-stop2") as a, connect("files-stop2") as b:
        assert await a.wait_for_peers(1) and await b.wait_for_peers(1)
        card = await a.send_file(big)
        a.stop_sharing(card)
        with pytest.raises(ValueError, match="cancelled"):
            await b.wait_file(card["id"], timeout=20)
        assert card["id"] not in b.files


def test_after_a_dropped_link_only_the_missing_parts_are_asked_for() -> None:
    from nbchat.core.files import FILE_PART_BYTES, split_file
    from nbchat.peer.files import PeerFiles

    data = os.urandom(4 * FILE_PART_BYTES)
    card = {
        "name": "x.bin",
        "size": len(data),
        "type": "application/octet-stream",
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    sent: list[dict[str, Any]] = []
    files = PeerFiles(
        lambda peer, frame: sent.append(frame) or True,
        lambda peer: 0,
        lambda peer: True,
        lambda coro, name: coro.close(),
    )
    files.on_messages([{"id": "A:1", "author": "A", "file": card}], "S")  # type: ignore[list-item]
    parts = split_file(data)
    for index in (0, 1):
        files.on_frame(
            "A",
            {"type": "file-part", "file": "A:1", "index": index, "count": 4, "data": parts[index]},
        )
    files.on_link_closed("A")
    assert files.state("A:1") == "unavailable"
    files.on_link_open("A")
    assert sent == [
        {"type": "file-get", "file": "A:1"},
        {"type": "file-get", "file": "A:1", "from": 2},
    ]
    for index in (2, 3):
        files.on_frame(
            "A",
            {"type": "file-part", "file": "A:1", "index": index, "count": 4, "data": parts[index]},
        )
    assert files.received["A:1"].data == data
