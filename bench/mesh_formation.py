"""Where the time goes when N Python peers join one room at once, in one process.

    python bench/mesh_formation.py [--size 16] [--runs 5] [--compare main] [--full-mesh]
                                   [--newcomer]

Starts one ``jupyter server`` (nbchat enabled, see peer_mesh.py), then for each run starts
``--size`` ChatPeers at once in one asyncio process and measures:

- **join**: until every ``ChatPeer.join()`` returned (session, id, signaling, presence);
- **links**: from then until every peer has an open data channel to every other one;
- **CPU** of this process over both (``time.process_time``: the peers, not the server);
- **connections** made (RTCPeerConnections; a full mesh needs N·(N−1) ends, more means
  dials that lost a tie-break or were dropped);
- per connection, the median time from its creation to: offer/answer sent (``sdp``),
  ICE completed (``ice``), DTLS connected (``dtls``) and the data channel open (``open``).

With ``--compare REF`` every run also runs on the peer code at git revision REF
(``git archive`` into a temporary directory, in a subprocess), alternating with this
tree, so both see the same machine load. ``--full-mesh`` makes the peers (of both trees)
link everyone to everyone (``ChatPeer(mesh_size=size, max_links=size - 1)``) instead of
the bounded overlay they use past MESH_SIZE peers. ``--newcomer`` times one peer joining a room of
``--size`` − 1 that has formed (join → every link of the room open, its CPU, its
connections): what a user who opens a notebook waits for. Prints a markdown table of
medians.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

PHASES = ["sdp", "ice", "dtls", "open"]


def _trace_connections(records: list[dict[str, Any]]) -> None:
    """Wrap DataConnection so each one records when it reached each phase."""
    from nbchat.peer import dataconnection, mesh

    original = dataconnection.DataConnection

    class Traced(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._bench: dict[str, float] = {"new": time.perf_counter()}
            records.append(self._bench)
            super().__init__(*args, **kwargs)
            pc, mark = self.pc, self._bench

            @pc.on("iceconnectionstatechange")
            def _ice() -> None:
                if pc.iceConnectionState == "completed":
                    mark.setdefault("ice", time.perf_counter())

            @pc.on("connectionstatechange")
            def _state() -> None:
                if pc.connectionState == "connected":
                    mark.setdefault("dtls", time.perf_counter())

        async def start(self) -> None:
            await super().start()
            self._bench["sdp"] = time.perf_counter()

        async def accept(self, sdp: dict[str, Any]) -> None:
            await super().accept(sdp)
            self._bench["sdp"] = time.perf_counter()

        def _attach(self, channel: Any) -> None:
            super()._attach(channel)
            mark = self._bench

            @channel.on("open")
            def _open() -> None:
                mark.setdefault("open", time.perf_counter())

            if channel.readyState == "open":
                mark.setdefault("open", time.perf_counter())

    mesh.DataConnection = Traced  # type: ignore[misc]


async def until(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("condition not met in time")
        await asyncio.sleep(0.005)


async def host_room(url: str, token: str, room: str, size: int, full_mesh: bool) -> None:
    """``size`` peers in ``room``, formed; says "ready", and leaves when stdin closes."""
    from nbchat.peer import ChatPeer

    options = {"mesh_size": size + 1, "max_links": size} if full_mesh else {}
    async with contextlib.AsyncExitStack() as stack:
        peers = await asyncio.gather(
            *(
                stack.enter_async_context(ChatPeer(url, room, token=token, **options))
                for _ in range(size)
            )
        )

        def formed() -> bool:
            return all(
                p._mesh is not None and p.peers == p._mesh.policy.wanted(list(p._presence.roster))
                for p in peers
                if p._presence is not None
            )

        await until(formed, 60)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def one_run(
    url: str,
    token: str,
    size: int,
    records: list[dict[str, Any]],
    full_mesh: bool,
    newcomer: bool = False,
    apart: bool = False,
) -> dict[str, Any]:
    import inspect

    from nbchat.peer import ChatPeer

    # Code from before the overlay has no mesh_size: it is always a full mesh. A full mesh
    # of N needs max_links >= N - 1 too: at the default bound (8) a peer refuses a call
    # from one its roster does not list yet, and that link then waits 20 s for a redial.
    takes_size = "mesh_size" in inspect.signature(ChatPeer).parameters
    options = {"mesh_size": size, "max_links": size - 1} if full_mesh and takes_size else {}
    records.clear()
    room = f"formation-{size}-{time.monotonic_ns()}"
    peers: list[Any] = []

    def formed() -> bool:
        for peer in peers:
            mesh, presence = peer._mesh, peer._presence
            if mesh is None or presence is None:
                return False
            if hasattr(mesh.policy, "wanted"):
                if peer.peers != mesh.policy.wanted(list(presence.roster)):
                    return False
            elif len(peer.peers) < len(peers) - 1:  # older code: always a full mesh
                return False
        return True

    async def until_formed() -> None:
        deadline = time.monotonic() + 60
        while not formed():
            if time.monotonic() > deadline:
                raise RuntimeError(f"no mesh: {[len(p.peers) for p in peers]}")
            await asyncio.sleep(0.005)

    async with contextlib.AsyncExitStack() as stack:

        def joining(n: int) -> Any:
            return asyncio.gather(
                *(
                    stack.enter_async_context(ChatPeer(url, room, token=token, **options))
                    for _ in range(n)
                )
            )

        host = None
        if newcomer and apart:  # the room in another process, as on other machines
            args = [sys.executable, __file__, "--host-room", url, token, room]
            args += ["--size", str(size - 1)] + (["--full-mesh"] if full_mesh else [])
            host = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
            )
            assert host.stdout is not None and host.stdin is not None
            if (await host.stdout.readline()).strip() != b"ready":
                raise RuntimeError("the room's process did not form its mesh")
            stack.push_async_callback(host.wait)
            stack.callback(host.stdin.close)
        elif newcomer:  # the room first, then one more peer joins it alone
            peers += await joining(size - 1)
            await until_formed()
        if newcomer:
            await asyncio.sleep(0.3)  # let the room's sync exchanges settle
            records.clear()
        cpu0, t0 = time.process_time(), time.perf_counter()
        peers += await joining(1 if newcomer else size)
        t1 = time.perf_counter()
        if host is not None:  # every link of the newcomer open, as the newcomer sees it
            await until(lambda: len(peers[0].users) == size and formed(), 60)
        else:
            await until_formed()
        cpu2, t2 = time.process_time(), time.perf_counter()
        opened = [r for r in records if "open" in r]
        phases = {
            phase: statistics.median(r[phase] - r["new"] for r in opened if phase in r) * 1000
            for phase in PHASES
        }
        return {
            "join_ms": (t1 - t0) * 1000,
            "links_ms": (t2 - t1) * 1000,
            "total_ms": (t2 - t0) * 1000,
            "cpu_ms": (cpu2 - cpu0) * 1000,
            "connections": len(records),
            "links": sum(len(p.peers) for p in peers) // (1 if host else 2),
            **{f"{k}_ms": v for k, v in phases.items()},
        }


def run_here(
    url: str, token: str, size: int, runs: int, full_mesh: bool, newcomer: bool, apart: bool
) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    _trace_connections(records)

    async def main() -> list[dict[str, Any]]:
        return [
            await one_run(url, token, size, records, full_mesh, newcomer, apart)
            for _ in range(runs)
        ]

    return asyncio.run(main())


def run_at(
    tree: Path, url: str, token: str, size: int, full_mesh: bool, newcomer: bool, apart: bool
) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    args = [sys.executable, __file__, "--child", url, token, "--size", str(size), "--runs", "1"]
    if full_mesh:
        args.append("--full-mesh")
    if newcomer:
        args.append("--newcomer")
    if apart:
        args.append("--apart")
    out = subprocess.run(args, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--compare", metavar="REF")
    parser.add_argument("--full-mesh", action="store_true", help="everyone links to everyone")
    parser.add_argument(
        "--newcomer", action="store_true", help="time one peer joining a formed room of size-1"
    )
    parser.add_argument(
        "--apart", action="store_true", help="--newcomer: the room in another process"
    )
    parser.add_argument("--child", nargs=2, metavar=("URL", "TOKEN"), help=argparse.SUPPRESS)
    parser.add_argument("--host-room", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.host_room:
        asyncio.run(host_room(*args.host_room, args.size, args.full_mesh))
        return
    if args.child:
        results = run_here(
            *args.child, args.size, args.runs, args.full_mesh, args.newcomer, args.apart
        )
        print(json.dumps(results))
        return
    from peer_mesh import jupyter_server

    with contextlib.ExitStack() as stack:
        trees = {"this tree": ROOT}
        if args.compare:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", args.compare, "src"],
                check=True,
                capture_output=True,
            ).stdout
            with tarfile.open(fileobj=BytesIO(archive)) as tar:
                tar.extractall(tmp, filter="data")
            trees = {args.compare: tmp, **trees}
        url, token = stack.enter_context(jupyter_server(None))
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for i in range(args.runs):
            for name, tree in trees.items():
                result = run_at(
                    tree, url, token, args.size, args.full_mesh, args.newcomer, args.apart
                )
                results[name].append(result)
                print(f"run {i + 1} {name}: {result}", file=sys.stderr)
    keys = ["total_ms", "join_ms", "links_ms", "cpu_ms", "links", "connections"]
    keys += [f"{p}_ms" for p in PHASES]
    what = f"a newcomer joins {args.size - 1} peers" if args.newcomer else f"{args.size} peers"
    if args.newcomer and args.apart:
        what += " of another process"
    print(f"{what}, medians of {args.runs} runs:\n")
    print(
        "| code | every link open | join | links | CPU | connections | "
        + " | ".join(f"→ {p}" for p in PHASES)
        + " |"
    )
    print("|---|" + "---:|" * (len(keys)))
    for name, rows in results.items():
        cells = [statistics.median(r[k] for r in rows) for k in keys]
        print(f"| {name} | " + " | ".join(f"{c:.0f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
