"""Several signaling processes on one Redis vs one process: the same load, side by side.

Three setups of ``nbchat-signaling``, each fresh, under the load generator of
bench/run.py (bench/loadgen.mjs: C PeerJS sockets relaying OFFER frames to random
peers, measured at the receiver):

- ``local``: one process, the in-process broker (the default);
- ``redis1``: one process on Redis (every relay is local; the broker's fixed costs);
- ``redis2``: two processes on Redis, the clients split between them, so half of the
  relays cross processes (the generator reports same-process and cross-process
  latency apart);
- ``redis2same`` (not run by default): the same two processes, but every frame goes to
  a client on the sender's process: what two processes cost without the hop.

Per setup and phase: relays/s, p50/p99 latency (and for ``redis2`` same vs cross
process), CPU µs per relay summed over the server processes and per process, Redis's
CPU, lost frames. "Capacity" is what the measured CPU per relay allows when each
process has a core of its own: relays/s = relays / (CPU s of the busiest process),
per second of the phase. Prints a markdown table with ratios against ``local``.

    npm install --prefix bench
    python bench/redis_scale.py --clients 1000 --rates 2000 max --duration 10 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from run import ALIVE_S, LOADGEN, free_port, run_load, wait_for_quiet, wait_http

TOKEN = "bench-token"
SECRET = "bench-cookie-secret-" + "0" * 32
SETUPS = {
    "local": "1 process, in-process broker",
    "redis1": "1 process on Redis",
    "redis2": "2 processes on Redis",
    "redis2same": "2 processes on Redis, no relay crosses",
}


@contextmanager
def redis_server(core: str, tmp: Path) -> Iterator[tuple[int, str]]:
    sock = tmp / "redis.sock"
    proc = subprocess.Popen(
        [
            *(["taskset", "-c", core] if core else []),
            "redis-server",
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not sock.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)
    try:
        yield proc.pid, f"unix://{sock}"
    finally:
        proc.kill()
        proc.wait(10)


def _with_defaults(extra: tuple[str, ...]) -> list[str]:
    """The bench's settings, each overridden by an ``extra`` option of the same name."""
    defaults = [
        "--SignalingApp.concurrent_limit=100000",
        "--SignalingApp.max_connections_per_user=100000",
        "--SignalingApp.max_rooms_per_user=100000",
        "--SignalingApp.rate_limit=1000000",
        "--SignalingApp.rate_burst=1000000",
        f"--SignalingApp.alive_timeout={ALIVE_S}",
        "--log-level=WARN",
    ]
    given = {option.split("=", 1)[0] for option in extra}
    return [d for d in defaults if d.split("=", 1)[0] not in given] + list(extra)


@contextmanager
def signaling(core: str, broker: str, log_dir: Path, *extra: str) -> Iterator[tuple[int, str]]:
    """A fresh ``nbchat-signaling`` (limits lifted for one shared bench identity)."""
    port = free_port()
    log = open(log_dir / f"signaling-{port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            *(["taskset", "-c", core] if core else []),
            sys.executable,
            # NBCHAT_BENCH_PROFILE=DIR: each server writes a cProfile to DIR (on SIGTERM).
            *(
                ["-m", "cProfile", "-o", f"{os.environ['NBCHAT_BENCH_PROFILE']}/{port}.prof"]
                if os.environ.get("NBCHAT_BENCH_PROFILE")
                else []
            ),
            "-m",
            "nbchat.signaling",
            f"--port={port}",
            f"--token={TOKEN}",
            f"--SignalingApp.cookie_secret={SECRET}",
            *_with_defaults(extra),
            *([f"--broker={broker}"] if broker else []),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")},
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc, {})
        yield proc.pid, f"ws://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def run_setup(name: str, args: argparse.Namespace, phases: list[dict], log_dir: Path) -> list:
    cores = args.server_cores.split("/")
    with ExitStack() as stack:
        broker = ""
        aux: list[int] = []
        if name != "local":
            tmp = Path(tempfile.mkdtemp(prefix="nbchat-redis-bench-"))
            stack.callback(shutil.rmtree, tmp, True)
            rpid, broker = stack.enter_context(redis_server(args.redis_core, tmp))
            aux.append(rpid)
        count = 2 if name.startswith("redis2") else 1
        if name == "redis2same":  # the generator picks receivers on the sender's process
            os.environ["LOADGEN_LOCALITY"] = "same"
            stack.callback(os.environ.pop, "LOADGEN_LOCALITY", None)
        servers = [
            stack.enter_context(signaling(cores[i % len(cores)], broker, log_dir))
            for i in range(count)
        ]
        pids = [pid for pid, _ in servers]
        if args.scale_rates and count > 1:  # the same load per process as one process gets
            phases = [{**p, "rate": p["rate"] * count} for p in phases]
        urls = [url + "nbchat/peerjs?key=bench" for _, url in servers]
        headers = {"Authorization": f"token {TOKEN}"}
        # run_load passes pid and url through to the generator, which takes lists too.
        return run_load(
            pids if count > 1 else pids[0],  # type: ignore[arg-type]
            urls if count > 1 else urls[0],  # type: ignore[arg-type]
            headers,
            args.clients,
            phases,
            args.loadgen_core,
            **({"aux_pids": aux} if aux else {}),
        )


def capacity(phase: dict) -> float:
    """Relays/s the measured CPU allows with a core per process (the busiest one binds)."""
    busiest = max(phase.get("cpu_s_per_pid") or [phase["cpu_s"]])
    return phase["received"] / busiest if busiest else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--rates", nargs="+", default=["2000", "max"])
    ap.add_argument("--window", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument(
        "--setups", nargs="+", default=["local", "redis1", "redis2"], choices=list(SETUPS)
    )
    ap.add_argument(
        "--server-cores",
        default="0/1",
        help="taskset cores per server process, '/'-separated (process i gets item i)",
    )
    ap.add_argument("--redis-core", default="", help="taskset cores for redis-server")
    ap.add_argument(
        "--scale-rates",
        action="store_true",
        help="offer N× each open-loop rate to N processes (the same load per process): "
        "CPU per relay falls as a process gets busier, so compare at equal busyness",
    )
    ap.add_argument("--loadgen-core", default="1")
    ap.add_argument("--quiet-busy", type=float, default=0.15)
    ap.add_argument("--quiet-timeout", type=float, default=120.0)
    ap.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the bench (servers, Redis, generator inherit it) at this niceness; a "
        "negative one (root) lets it take the cores from other jobs for a cleaner measure",
    )
    args = ap.parse_args()
    if args.nice:
        os.nice(args.nice)
    if not LOADGEN.exists() or not (LOADGEN.parent / "node_modules").exists():
        sys.exit("run `npm install --prefix bench` first")
    phases = [
        {"rate": 0 if r == "max" else float(r), "duration": args.duration, "window": args.window}
        for r in args.rates
    ]
    phases.insert(0, {"rate": 1000.0, "duration": args.warmup, "warmup": True})
    log_dir = Path(tempfile.mkdtemp(prefix="nbchat-redis-bench-logs-"))
    results: dict[str, list[list[dict]]] = {}
    for rep in range(args.repeat):
        order = args.setups if rep % 2 == 0 else args.setups[::-1]
        for name in order:
            wait_for_quiet(args.quiet_busy, args.quiet_timeout)
            events = run_setup(name, args, phases, log_dir)
            ph = events[1:]
            results.setdefault(name, []).append(ph)
            print(
                f"[rep {rep + 1}] {SETUPS[name]}: "
                + "; ".join(
                    f"{p['msgs_per_s']:.0f}/s p99 {p['p99_ms']:.2f}ms "
                    f"{p['cpu_us_per_relay']:.1f}us/relay lost {p['lost'] + p['errors']}"
                    for p in ph
                ),
                file=sys.stderr,
                flush=True,
            )
    print(table(results, args))


def table(results: dict[str, list[list[dict]]], args: argparse.Namespace) -> str:
    names = [n for n in SETUPS if n in results]
    head = " | ".join(SETUPS[n] for n in names)
    ratios = " | ".join(f"{n}/local" for n in names if n != "local")
    rows = [
        f"| load | metric | {head} | {ratios} |",
        "|---|---|" + "---:|" * (len(names) + len(names) - 1),
    ]

    def row(load: str, metric: str, fmt: str, pick, agg=statistics.median) -> None:  # type: ignore[no-untyped-def]
        vals = {n: agg([pick(run) for run in results[n]]) for n in names}
        cells = " | ".join(f"{vals[n]:{fmt}}" for n in names)
        base = vals.get("local")
        rel = " | ".join((f"{vals[n] / base:.2f}" if base else "–") for n in names if n != "local")
        rows.append(f"| {load} | {metric} | {cells} | {rel} |")

    def per_relay(seconds: float, phase: dict) -> float:
        return seconds * 1e6 / max(1, phase["received"])

    for i, rate in enumerate(args.rates):
        load = f"{rate} msg/s" if rate != "max" else f"max ({args.window} in flight)"
        if args.scale_rates and rate != "max":
            load += " per process"

        def at(r: list[dict], i: int = i) -> dict:
            return r[i]

        row(load, "relayed msgs/s", ",.0f", lambda r: at(r)["msgs_per_s"])
        row(load, "capacity, a core per process (relays/s)", ",.0f", lambda r: capacity(at(r)))
        row(load, "p50 latency (ms)", ".2f", lambda r: at(r)["p50_ms"])
        row(load, "p99 latency (ms)", ".2f", lambda r: at(r)["p99_ms"])
        row(
            load,
            "p50 same process (ms)",
            ".2f",
            lambda r: at(r).get("p50_same_ms") or at(r)["p50_ms"],
        )
        row(
            load,
            "p50 across processes (ms)",
            ".2f",
            lambda r: at(r).get("p50_cross_ms") or float("nan"),
        )
        row(
            load,
            "p99 same process (ms)",
            ".2f",
            lambda r: at(r).get("p99_same_ms") or at(r)["p99_ms"],
        )
        row(
            load,
            "p99 across processes (ms)",
            ".2f",
            lambda r: at(r).get("p99_cross_ms") or float("nan"),
        )
        row(
            load,
            "server CPU per relay, all processes (µs)",
            ".1f",
            lambda r: at(r)["cpu_us_per_relay"],
        )
        row(
            load,
            "server CPU per relay, busiest process (µs)",
            ".1f",
            lambda r: per_relay(max(at(r).get("cpu_s_per_pid") or [at(r)["cpu_s"]]), at(r)),
        )
        row(
            load,
            "server kernel share of CPU (%)",
            ".0f",
            lambda r: 100 * sum(at(r).get("sys_s_per_pid") or [0]) / max(at(r)["cpu_s"], 1e-9),
        )
        row(
            load,
            "server wakeups (voluntary switches) per relay, all processes",
            ".3f",
            lambda r: at(r).get("wakeups", 0) / max(1, at(r)["received"]),
        )
        row(
            load,
            "server preemptions (involuntary switches) per relay",
            ".3f",
            lambda r: at(r).get("preempted", 0) / max(1, at(r)["received"]),
        )
        row(
            load,
            "redis-server CPU per relay (µs)",
            ".1f",
            lambda r: per_relay(at(r).get("aux_cpu_s", 0.0), at(r)),
        )
        row(
            load,
            "lost (sum over runs)",
            ",.0f",
            lambda r: at(r)["lost"] + at(r)["errors"] + at(r)["wrong_dst"],
            sum,
        )
        row(
            load,
            "load generator CPU per relay (µs)",
            ".1f",
            lambda r: per_relay(at(r).get("generator_cpu_s", 0.0), at(r)),
        )
        row(load, "CPU s used by other jobs (noise)", ".1f", lambda r: at(r)["other_cpu_s"])
    return "\n".join(rows)


if __name__ == "__main__":
    main()
