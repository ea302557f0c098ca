"""The Python message log at size: compose, live receive, sync queries, at N messages.

    python bench/msglog.py [--sizes 2500,10000,100000] [--ops 2000] [--compare main]

For each N, builds a log holding N messages (half composed here, half from 9 other
peers, interleaved as a live room writes them), then times, per operation (median and
p99 of ``--ops`` calls, in µs):

- ``compose``: our next message (the hot path of ``ChatPeer.send``);
- ``receive``: a live ``message`` frame from another peer (``receive_direct``);
- ``late``: a message that sorts 50 places before the end (a late arrival);
- ``have_for``: ``have(for_peer=P)``, the ``sync`` we send each peer every 15 s;
- ``missing_10``: ``missing_for`` a peer that lacks the last 10 messages;
- ``missing_0``: ``missing_for`` a peer that lacks nothing (every anti-entropy round).

With ``--compare REF`` the same measurements also run on the log at git revision REF
(exported with ``git archive`` into a temporary directory, in a subprocess), and the
table shows both. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPS = ["compose", "receive", "late", "have_for", "missing_10", "missing_0"]


def _timed(fn: Callable[[int], object], ops: int) -> tuple[float, float]:
    samples = []
    for i in range(ops):
        start = time.perf_counter_ns()
        fn(i)
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def measure(sizes: list[int], ops: int) -> dict[str, dict[str, list[float]]]:
    return {str(n): measure_size(n, ops) for n in sizes}


def measure_size(n: int, ops: int) -> dict[str, list[float]]:
    from nbchat.core.msglog import MessageLog, normalize_identity

    others = [f"peer{i}" for i in range(9)]
    users = {p: normalize_identity({"username": p}) for p in [*others, "me"]}
    log = MessageLog("me", users["me"])
    seqs = dict.fromkeys(others, 0)
    for i in range(n):
        if i % 2 == 0:
            log.compose(f"message {i}", 1_700_000_000_000 + i)
        else:
            peer = others[(i // 2) % len(others)]
            seqs[peer] += 1
            raw = {"seq": seqs[peer], "clock": log.clock + 1, "time": 1.7e12 + i, "text": "x"}
            log.receive_direct(peer, users[peer], raw)
    row: dict[str, list[float]] = {}

    def receive(i: int) -> None:
        seqs["peer0"] += 1
        raw = {"seq": seqs["peer0"], "clock": log.clock + 1, "time": 1.7e12, "text": "x"}
        log.receive_direct("peer0", users["peer0"], raw)

    def late(i: int) -> None:
        seqs["peer1"] += 1
        # About 50 places before the end (every message here raised the clock by one).
        raw = {"seq": seqs["peer1"], "clock": max(1, log.clock - 50), "time": 1.7e12}
        raw["text"] = "late"
        log.receive_direct("peer1", users["peer1"], raw)

    row["compose"] = list(_timed(lambda i: log.compose("hello", 1.7e12), ops))
    row["receive"] = list(_timed(receive, ops))
    row["late"] = list(_timed(late, ops))
    row["have_for"] = list(_timed(lambda i: log.have(for_peer="peer3"), ops))
    behind = log.have()
    behind["peer0"] -= 10
    row["missing_10"] = list(_timed(lambda i: log.missing_for(behind), min(ops, 200)))
    full = log.have()
    row["missing_0"] = list(_timed(lambda i: log.missing_for(full), min(ops, 200)))
    return row


def measure_at(ref: str, sizes: list[int], ops: int) -> dict[str, dict[str, list[float]]]:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "src"], check=True, capture_output=True
    ).stdout
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        env = {**os.environ, "PYTHONPATH": str(Path(tmp) / "src")}
        args = [sys.executable, __file__, "--json", "--ops", str(ops)]
        args += ["--sizes", ",".join(map(str, sizes))]
        out = subprocess.run(args, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="2500,10000,100000")
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--compare", metavar="REF", help="also measure the log at git REF")
    parser.add_argument("--json", action="store_true", help="print raw results as JSON")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.json:
        print(json.dumps(measure(sizes, args.ops)))
        return
    runs = {}
    if args.compare:
        runs[args.compare] = measure_at(args.compare, sizes, args.ops)
    runs["this tree"] = measure(sizes, args.ops)
    print("| code | N | " + " | ".join(f"{op} p50 / p99 µs" for op in OPS) + " |")
    print("|---|---:|" + "---:|" * len(OPS))
    for n in sizes:
        for name, result in runs.items():
            row = result[str(n)]
            cells = " | ".join(f"{row[op][0]:.1f} / {row[op][1]:.1f}" for op in OPS)
            print(f"| {name} | {n:,} | {cells} |")


if __name__ == "__main__":
    main()
