"""Python peers through the nbchat extension: time to full mesh, latency, pair throughput.

    python bench/peer_mesh.py [--sizes 2,4,8,16] [--rounds 40] [--burst 5000]

Starts its own ``jupyter server`` (nbchat enabled, isolated dirs) on 127.0.0.1 and
runs every peer in this one asyncio process, so with many peers the numbers include
this process's own queueing; that is what one Python process hosting a mesh sees.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from nbchat.peer import ChatPeer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def jupyter_server(cpus: str | None, extra: list[str] = ()) -> Iterator[tuple[str, str]]:
    port, token = free_port(), secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "JUPYTER_PLATFORM_DIRS": "1",
        }
        # Enable nbchat explicitly, whether or not the install enabled it system-wide.
        (home / "config").mkdir()
        (home / "config" / "jupyter_server_config.json").write_text(
            json.dumps({"ServerApp": {"jpserver_extensions": {"nbchat": True}}})
        )
        args = [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={tmp}",
            "--ServerApp.log_level=WARN",
            *extra,
        ]
        if cpus:
            args = ["taskset", "-c", cpus, *args]
        log = (home / "server.log").open("wb")
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError((home / "server.log").read_text()[-4000:])
                try:
                    with urllib.request.urlopen(f"{url}api/status?token={token}", timeout=2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)  # polling a starting process
            yield url, token
        finally:
            proc.terminate()
            proc.wait(15)
            log.close()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def mesh_round(url: str, token: str, size: int, rounds: int) -> dict[str, float]:
    room = f"bench-{size}-{secrets.token_hex(3)}"
    async with contextlib.AsyncExitStack() as stack:
        start = time.perf_counter()
        peers = list(
            await asyncio.gather(
                *(stack.enter_async_context(ChatPeer(url, room, token=token)) for _ in range(size))
            )
        )
        ok = await asyncio.gather(*(p.wait_for_peers(size - 1, 120) for p in peers))
        mesh = time.perf_counter() - start
        if not all(ok):
            raise RuntimeError(f"mesh of {size} did not form: {[len(p.peers) for p in peers]}")

        received: dict[str, list[float]] = {}
        got = asyncio.Event()
        expected = size - 1

        async def listen(peer: ChatPeer) -> None:
            async for message in peer.messages():
                now = time.perf_counter()
                sent = float(message["text"].split()[1])
                received.setdefault(message["id"], []).append((now - sent) * 1000)
                if len(received[message["id"]]) == expected:
                    got.set()

        listeners = [asyncio.create_task(listen(p)) for p in peers]
        for i in range(rounds):
            got.clear()
            await peers[i % size].send(f"t {time.perf_counter()!r}")
            await asyncio.wait_for(got.wait(), 30)
        for task in listeners:
            task.cancel()
        latencies = [x for xs in received.values() for x in xs]
        return {
            "mesh_s": mesh,
            "p50_ms": statistics.median(latencies),
            "p99_ms": pct(latencies, 99),
            "samples": len(latencies),
        }


async def pair_throughput(url: str, token: str, count: int) -> float:
    room = f"bench-pair-{secrets.token_hex(3)}"
    # Back to back is a flood by definition: the receiver's rate limits are off here.
    async with (
        ChatPeer(url, room, token=token) as a,
        ChatPeer(url, room, token=token, rate_limit=False) as b,
    ):
        await a.wait_for_peers(1, 30)
        await b.wait_for_peers(1, 30)
        done = asyncio.Event()
        seen = 0

        async def listen() -> None:
            nonlocal seen
            async for _ in b.messages():
                seen += 1
                if seen == count:
                    done.set()

        listener = asyncio.create_task(listen())
        start = time.perf_counter()
        for i in range(count):
            await a.send(f"message {i} " + "x" * 64)
        await asyncio.wait_for(done.wait(), 120)
        elapsed = time.perf_counter() - start
        listener.cancel()
        return count / elapsed


async def run(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    with jupyter_server(args.server_cpus) as (url, token):
        rows = []
        for size in sizes:
            rows.append((size, await mesh_round(url, token, size, args.rounds)))
        rate = await pair_throughput(url, token, args.burst)
    print("| peers | connections | time to full mesh | latency p50 | latency p99 | samples |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size, r in rows:
        print(
            f"| {size} | {size * (size - 1) // 2} | {r['mesh_s'] * 1000:.0f} ms "
            f"| {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['samples']:.0f} |"
        )
    print()
    print(f"One pair, {args.burst} messages of ~80 bytes back to back: **{rate:,.0f} messages/s**")
    if args.json:
        print(json.dumps({"rows": rows, "pair_msgs_per_s": rate}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2,4,8,16")
    parser.add_argument("--rounds", type=int, default=40, help="messages per mesh size")
    parser.add_argument("--burst", type=int, default=5000, help="messages for pair throughput")
    parser.add_argument("--server-cpus", default=None, help="taskset CPU list for the server")
    parser.add_argument("--json", action="store_true")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
