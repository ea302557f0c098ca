"""A big room: N Python peers in several processes on the bounded overlay.

    python bench/big_room.py [--peers 200] [--procs 4] [--messages 40] [--interval 0.25]

Starts a ``jupyter server`` (nbchat enabled, see peer_mesh.py) and ``--procs`` worker
processes, each running its share of the peers (one asyncio loop per process). Then:

1. **formation**: until every peer's open links are exactly the overlay's for its roster
   (core/mesh.py), and everyone sees everyone;
2. **live round**: ``--messages`` messages, one every ``--interval`` s from a random peer;
   delivery latency = arrival in a peer's ``messages()`` − the sender's ``time.time()``
   (one machine, one clock), for every (message, receiver);
3. **kill**: one worker process is SIGKILLed (a quarter of the room with 4 processes: no
   goodbye, its sockets simply die), and the survivors send another round at once, while
   the overlay heals; the bench waits until every survivor holds every message, and
   until the overlay has formed again.

Reports formation and heal times, latency p50/p99/max per round, messages missing or
received twice (must be 0), and the most links any peer ever held (at most MAX_LINKS).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


# --- worker ---------------------------------------------------------------------------------


async def worker(url: str, token: str, room: str, count: int) -> None:
    from nbchat.peer import ChatPeer

    out = sys.stdout
    # peer id → [message id, round, latency in s]
    received: dict[str, list[tuple[str, str, float]]] = {}
    most_links = 0

    def say(kind: str, **fields: Any) -> None:
        out.write(json.dumps({"type": kind, **fields}) + "\n")
        out.flush()

    async with contextlib.AsyncExitStack() as stack:
        peers: list[ChatPeer] = []
        for start in range(0, count, 10):
            batch = [ChatPeer(url, room, token=token) for _ in range(min(10, count - start))]
            peers += await asyncio.gather(*(stack.enter_async_context(p) for p in batch))

        async def listen(peer: ChatPeer) -> None:
            mine = received.setdefault(peer.id, [])
            async for message in peer.messages():
                name, sent = message["text"].split()
                mine.append((message["id"], name[0], time.time() - float(sent)))

        for peer in peers:
            stack.callback(asyncio.get_running_loop().create_task(listen(peer)).cancel)

        async def status() -> None:
            nonlocal most_links
            while True:
                formed = 0
                unformed = []
                for peer in peers:
                    mesh, presence = peer._mesh, peer._presence
                    most_links = max(most_links, len(peer.peers))
                    if mesh and presence and peer.peers == mesh.policy.wanted(presence.roster):
                        formed += 1
                    elif mesh and presence:
                        wanted = mesh.policy.wanted(presence.roster)
                        pending = {c.peer for c in mesh.connections.values() if not c.open}
                        unformed.append(
                            [
                                peer.id,
                                sorted(wanted - peer.peers),
                                sorted(peer.peers - wanted),
                                sorted(pending),
                            ]
                        )
                say(
                    "status",
                    formed=formed,
                    users=min(len(p.users) for p in peers),
                    users_max=max(len(p.users) for p in peers),
                    held={p.id: [m["id"] for m in p.history] for p in peers},
                    most_links=most_links,
                    unformed=unformed[:3],
                )
                await asyncio.sleep(0.5)

        stack.callback(asyncio.get_running_loop().create_task(status()).cancel)
        say("ready", ids=[p.id for p in peers])
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().split():
            if line[0] == "send":
                peer = peers[int(line[1]) % len(peers)]
                await peer.send(f"{line[2]} {time.time()!r}")
            elif line[0] == "report":
                say("report", received=received, most_links=most_links)
            elif line[0] == "quit":
                break


# --- coordinator ------------------------------------------------------------------------------


class Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.ids: list[str] = []
        self.status: dict[str, Any] = {}
        self.report: dict[str, Any] | None = None
        self.alive = True
        self.ready = asyncio.Event()
        self.reported = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            event = json.loads(line)
            if event["type"] == "ready":
                self.ids = event["ids"]
                self.ready.set()
            elif event["type"] == "status":
                self.status = event
            elif event["type"] == "report":
                self.report = event
                self.reported.set()

    async def tell(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}\n".encode())
        await self.proc.stdin.drain()


def cpu_seconds(workers: list[Worker]) -> float:
    """CPU time (user + system) the live workers have used so far (Linux ``/proc``)."""
    total = 0
    for w in workers:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{w.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def until(predicate: Any, timeout: float) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.1)
    return time.monotonic() - start


async def coordinate(args: argparse.Namespace, url: str, token: str) -> dict[str, Any]:
    room = f"big-{os.getpid()}"
    per = [args.peers // args.procs + (i < args.peers % args.procs) for i in range(args.procs)]
    workers = []
    t0 = time.monotonic()
    for count in per:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--worker",
            url,
            token,
            room,
            str(count),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 26,  # status and report lines are long (every id every peer holds)
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        workers.append(Worker(proc))
    await asyncio.gather(*(w.ready.wait() for w in workers))
    joined = time.monotonic() - t0

    def formed(group: list[Worker], size: int) -> bool:
        return all(
            w.status.get("formed") == len(w.ids)
            and w.status.get("users") == w.status.get("users_max") == size
            for w in group
        )

    async def explain() -> None:  # what a slow phase waits for (stderr)
        while True:
            await asyncio.sleep(5)
            for w in workers:
                if not w.alive:
                    continue
                held = [len(ids) for ids in w.status.get("held", {}).values()]
                print(
                    f"waiting: users {w.status.get('users')}..{w.status.get('users_max')} "
                    f"held {min(held, default=0)}"
                    f"..{max(held, default=0)} unformed {w.status.get('unformed')}",
                    file=sys.stderr,
                )

    explaining = asyncio.get_running_loop().create_task(explain())
    formation = await until(lambda: formed(workers, args.peers), args.timeout) + joined
    rnd = random.Random(1)
    idle_cpu = None
    if args.settle:  # the room at rest: what the peers cost with nothing said
        before, t_settle = cpu_seconds(workers), time.monotonic()
        await asyncio.sleep(args.settle)
        idle_cpu = (cpu_seconds(workers) - before) / (time.monotonic() - t_settle)
    cpu_a, t_a = cpu_seconds(workers), time.monotonic()

    async def live_round(group: list[Worker], name: str) -> list[str]:
        ids = []
        for i in range(args.messages):
            sender = rnd.choice(group)
            index = rnd.randrange(len(sender.ids))
            await sender.tell(f"send {index} {name}{i}")
            ids.append(sender.ids[index])
            await asyncio.sleep(args.interval)
        return ids

    await live_round(workers, "a")

    def held_everything(group: list[Worker], count: int) -> bool:
        return all(len(ids) >= count for w in group for ids in w.status.get("held", {}).values())

    await until(lambda: held_everything(workers, args.messages), args.timeout)
    round_a_cpu = (cpu_seconds(workers) - cpu_a) / (time.monotonic() - t_a)

    # A quarter of the room (one of four processes) dies at once.
    victim = workers[-1]
    victim.proc.send_signal(signal.SIGKILL)
    victim.alive = False
    survivors = workers[:-1]
    size = args.peers - len(victim.ids)
    t_kill = time.monotonic()
    await live_round(survivors, "b")
    delivered = await until(lambda: held_everything(survivors, 2 * args.messages), args.timeout)
    try:
        healed: float | None = await until(lambda: formed(survivors, size), args.timeout)
        heal_time: float | None = time.monotonic() - t_kill
    except TimeoutError:
        healed = heal_time = None  # reported as such: the messages had all arrived
    explaining.cancel()
    for w in survivors:
        w.reported.clear()
        await w.tell("report")
    await asyncio.gather(*(w.reported.wait() for w in survivors))
    latencies: dict[str, list[float]] = {"a": [], "b": []}
    duplicates = 0
    for w in survivors:
        assert w.report is not None
        for got in w.report["received"].values():
            ids = [message_id for message_id, _, _ in got]
            duplicates += len(ids) - len(set(ids))
            for _, name, latency in got:
                latencies[name].append(latency * 1000)
    most_links = max(w.report["most_links"] for w in survivors if w.report)
    for w in survivors:
        await w.tell("quit")
    await asyncio.gather(*(w.proc.wait() for w in survivors))
    await victim.proc.wait()
    return {
        "peers": args.peers,
        "procs": args.procs,
        "formation_s": formation,
        "heal_s": heal_time,
        "delivered_after_kill_s": delivered,
        "healed_after_delivery_s": healed,
        "duplicates": duplicates,
        "most_links": most_links,
        "workers_cpu_idle": idle_cpu,
        "workers_cpu_round_a": round_a_cpu,
        "latency_ms": {
            k: {
                "p50": statistics.median(v),
                "p99": pct(v, 99),
                "max": max(v),
                "samples": len(v),
            }
            for k, v in latencies.items()
            if v
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peers", type=int, default=200)
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--messages", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument(
        "--settle", type=float, default=0, help="s to wait after formation (idle CPU is reported)"
    )
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        url, token, room, count = args.worker
        asyncio.run(worker(url, token, room, int(count)))
        return
    from peer_mesh import jupyter_server

    # Every bench peer is one Jupyter user: raise the per-user socket limit.
    extra = ["--NbChatApp.max_connections_per_user=100000", "--NbChatApp.max_rooms_per_user=100"]
    with jupyter_server(None, extra) as (url, token):
        result = asyncio.run(coordinate(args, url, token))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
