"""Signaling benchmark: npm `peer` (PeerServer 1.0.2) vs nbchat's server extension, one run.

Each server runs alone, pinned to one core; the Node generator (bench/loadgen.mjs) runs
pinned to the other. For each client count a fresh server is started, C sockets connect,
then every load phase relays OFFER frames to random peers. Repeats alternate the order
of the servers; the table shows medians. Prints a markdown table (ratios nbchat/PeerServer).

    npm install --prefix bench
    python bench/run.py --clients 1000 5000 --rates 2000 max --duration 10 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PEER_BIN = BENCH / "node_modules" / "peer" / "dist" / "bin" / "peerjs.js"
LOADGEN = BENCH / "loadgen.mjs"
TOKEN = "bench-token"
ALIVE_S = 3600  # no HEARTBEATs are sent: keep both servers from evicting idle bench peers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(
    url: str, proc: subprocess.Popen[bytes], headers: dict[str, str], timeout: float = 60
) -> urllib.response.addinfourl:  # type: ignore[name-defined]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early ({proc.returncode}) for {url}")
        try:
            return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise TimeoutError(url)


@contextmanager
def peer_server(core: str) -> Iterator[tuple[int, str, dict[str, str]]]:
    port = free_port()
    proc = subprocess.Popen(
        [
            "taskset",
            "-c",
            core,
            "node",
            str(PEER_BIN),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--path",
            "/x",
            "--concurrent_limit",
            "100000",
            "--alive_timeout",
            str(ALIVE_S * 1000),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/x/", proc, {})
        yield proc.pid, f"ws://127.0.0.1:{port}/x/peerjs?key=peerjs", {}
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def jupyter_server(
    core: str, log_dir: Path, *args: str, prefix: str = "nbchat-bench-"
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A Jupyter server with nbchat pinned to ``core``, in a home of its own, with the
    bench's token and generous nbchat limits (``args`` add or override settings); its log
    goes to ``log_dir``. Yields the process and its port once ``/api/status`` answers."""
    port = free_port()
    home = Path(tempfile.mkdtemp(prefix=prefix))
    env = dict(os.environ)
    env.update(
        {
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "IPYTHONDIR": str(home / "ipython"),
            "JUPYTER_PLATFORM_DIRS": "1",
        }
    )
    log = open(log_dir / f"jupyter-{port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            "taskset",
            "-c",
            core,
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            f"--IdentityProvider.token={TOKEN}",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.root_dir={home}",
            "--NbChatApp.concurrent_limit=100000",
            "--NbChatApp.max_connections_per_user=100000",
            "--NbChatApp.max_rooms_per_user=100000",
            f"--NbChatApp.alive_timeout={ALIVE_S}",
            *args,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=home,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/api/status", proc, {"Authorization": f"token {TOKEN}"})
        yield proc, port
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def login_cookie(proc: subprocess.Popen[bytes], port: int) -> str:
    """A fresh Jupyter user's login cookie (``username-…=…``), from a token request."""
    url = f"http://127.0.0.1:{port}/nbchat/session?room=bench"
    resp = wait_http(url, proc, {"Authorization": f"token {TOKEN}"})
    for k, v in resp.headers.items():
        if k.lower() == "set-cookie" and v.startswith("username-"):
            return str(v.split(";", 1)[0])
    raise RuntimeError("no login cookie in the session response")


@contextmanager
def nbchat_server(core: str, log_dir: Path) -> Iterator[tuple[int, str, dict[str, str]]]:
    rates = ("--NbChatApp.rate_limit=1000000", "--NbChatApp.rate_burst=1000000")
    with jupyter_server(core, log_dir, *rates) as (proc, port):
        # All bench sockets share this one login cookie, hence one Jupyter user.
        cookie = login_cookie(proc, port)
        yield proc.pid, f"ws://127.0.0.1:{port}/nbchat/peerjs?key=bench", {"Cookie": cookie}


def machine_busy(seconds: float) -> float:
    """Busy fraction of all cores over ``seconds``."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        return sum(v), v[3] + v[4]

    t0, i0 = sample()
    time.sleep(seconds)
    t1, i1 = sample()
    return 1 - (i1 - i0) / max(1, t1 - t0)


def wait_for_quiet(max_busy: float, timeout: float) -> float:
    """The machine is shared: wait (up to ``timeout`` s) until others leave it mostly idle."""
    deadline = time.monotonic() + timeout
    while True:
        busy = machine_busy(2.0)
        if busy <= max_busy or time.monotonic() >= deadline:
            return busy
        print(f"  machine {busy:.0%} busy, waiting for quiet", file=sys.stderr, flush=True)


def run_load(
    pid: int,
    url: str,
    headers: dict[str, str],
    clients: int,
    phases: list[dict[str, float]],
    core: str,
    aux_pids: list[int] | None = None,
) -> list[dict[str, float]]:
    """Run bench/loadgen.mjs; ``pid`` and ``url`` may be lists (several server processes,
    bench/redis_scale.py); ``aux_pids`` (e.g. redis-server) get their CPU reported apart."""
    cfg = {"url": url, "headers": headers, "clients": clients, "pid": pid, "phases": phases}
    if aux_pids:
        cfg["auxPids"] = aux_pids
    out = subprocess.run(
        [*(["taskset", "-c", core] if core else []), "node", str(LOADGEN), json.dumps(cfg)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode:
        raise RuntimeError(f"loadgen failed ({out.returncode}):\n{out.stderr[-3000:]}")
    if out.stderr.strip():
        print(out.stderr.strip()[-2000:], file=sys.stderr)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


SERVERS = {"peer": "PeerServer", "nbchat": "nbchat"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument(
        "--rates",
        nargs="+",
        default=["2000", "max"],
        help="offered OFFER frames/s per phase; 'max' = closed loop",
    )
    ap.add_argument("--window", type=int, default=1000, help="in-flight frames for 'max'")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds at 1000 msg/s, not reported")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--servers", nargs="+", default=list(SERVERS), choices=list(SERVERS))
    ap.add_argument("--server-core", default="0")
    ap.add_argument("--loadgen-core", default="1")
    ap.add_argument("--json", type=Path, help="also write raw results here")
    ap.add_argument(
        "--quiet-busy",
        type=float,
        default=0.15,
        help="before each server run, wait until all cores are at most this busy",
    )
    ap.add_argument("--quiet-timeout", type=float, default=120.0)
    args = ap.parse_args()
    if not PEER_BIN.exists():
        sys.exit("run `npm install --prefix bench` first")

    phases = [
        {"rate": 0 if r == "max" else float(r), "duration": args.duration, "window": args.window}
        for r in args.rates
    ]
    phases.insert(0, {"rate": 1000.0, "duration": args.warmup, "warmup": True})
    log_dir = Path(tempfile.mkdtemp(prefix="nbchat-bench-logs-"))
    # results[(server, clients)] = list of runs; a run = (connected, [phase, ...])
    results: dict[tuple[str, int], list[tuple[dict, list[dict]]]] = {}
    for rep in range(args.repeat):
        order = args.servers if rep % 2 == 0 else args.servers[::-1]
        for clients in args.clients:
            for name in order:
                wait_for_quiet(args.quiet_busy, args.quiet_timeout)
                ctx = (
                    peer_server(args.server_core)
                    if name == "peer"
                    else nbchat_server(args.server_core, log_dir)
                )
                with ctx as (pid, url, headers):
                    events = run_load(pid, url, headers, clients, phases, args.loadgen_core)
                connected = events[0]
                ph = events[1:]
                results.setdefault((name, clients), []).append((connected, ph))
                summary = ", ".join(
                    f"{p['msgs_per_s']:.0f}/s p99 {p['p99_ms']:.2f}ms "
                    f"{p['cpu_us_per_relay']:.1f}us lost {p['lost']} "
                    f"(others used {p['other_cpu_s']:.1f} CPU s)"
                    for p in ph
                )
                rss = (connected["rss_connected_kib"] - connected["rss_before_kib"]) / clients
                print(
                    f"[rep {rep + 1}] {SERVERS[name]:10s} C={clients}: "
                    f"{rss:.1f} KiB/client; {summary}",
                    file=sys.stderr,
                    flush=True,
                )
    if args.json:
        args.json.write_text(
            json.dumps({f"{k[0]}:{k[1]}": v for k, v in results.items()}, indent=1)
        )
    print(table(results, args))


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def table(results: dict, args: argparse.Namespace) -> str:
    rows = [
        "| clients | load | metric | PeerServer | nbchat | nbchat/PeerServer |",
        "|---:|---|---|---:|---:|---:|",
    ]

    def row(c: int, load: str, metric: str, fmt: str, pick, agg=med) -> None:  # type: ignore[no-untyped-def]
        vals = {}
        for name in ("peer", "nbchat"):
            runs = results.get((name, c))
            vals[name] = agg([pick(r) for r in runs]) if runs else float("nan")
        a, b = vals["peer"], vals["nbchat"]
        ratio = b / a if a else (1.0 if b == a else float("inf"))
        rows.append(f"| {c:,} | {load} | {metric} | {a:{fmt}} | {b:{fmt}} | {ratio:.2f} |")

    for c in args.clients:
        row(
            c,
            "idle",
            "RSS per connected client (KiB)",
            ",.1f",
            lambda r, c=c: (r[0]["rss_connected_kib"] - r[0]["rss_before_kib"]) / c,
        )
        row(c, "idle", "server CPU to connect all (s)", ".2f", lambda r: r[0]["connect_cpu_s"])
        for i, rate in enumerate(args.rates):
            load = f"{rate} msg/s offered" if rate != "max" else f"max ({args.window} in flight)"
            row(c, load, "relayed msgs/s", ",.0f", lambda r, i=i: r[1][i]["msgs_per_s"])
            row(c, load, "p50 latency (ms)", ".2f", lambda r, i=i: r[1][i]["p50_ms"])
            row(c, load, "p99 latency (ms)", ".2f", lambda r, i=i: r[1][i]["p99_ms"])
            row(
                c,
                load,
                "lost (sum over runs)",
                ",.0f",
                lambda r, i=i: r[1][i]["lost"] + r[1][i]["errors"] + r[1][i]["wrong_dst"],
                sum,
            )
            row(c, load, "server CPU (s)", ".2f", lambda r, i=i: r[1][i]["cpu_s"])
            row(
                c,
                load,
                "server CPU per relay (µs)",
                ".1f",
                lambda r, i=i: r[1][i]["cpu_us_per_relay"],
            )
            row(
                c,
                load,
                "CPU s used by other jobs (noise)",
                ".1f",
                lambda r, i=i: r[1][i]["other_cpu_s"],
            )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
