"""Reconnect storm: 5,000 signaling clients drop at once and reconnect, PeerServer vs nbchat.

Each server runs alone, pinned to one core; the Node generator (bench/storm.mjs) runs
pinned to the other. C clients connect (64 handshakes in flight) across several rooms,
then every client kills its TCP connection and reconnects at once with the same PeerJS
id and token (``--inflight`` handshakes at a time, 0 = all at once). Reported: the
server's CPU seconds (utime + stime from /proc) from the drop until the last client got
its OPEN, wall time, failed attempts (retried), RSS. Repeats alternate the order of the
servers; the table shows medians and the ratios nbchat/PeerServer. nbchat runs twice:
as configured by default, and with ``--NbChatApp.auth_cache_seconds=0`` (every socket
takes Jupyter's full request path: the cost before nbchat.server.fastpath).

nbchat runs with Jupyter's real auth: ``--users`` logins with the server token each get
their own login cookie (a different Jupyter user), and every socket presents its user's
cookie plus the ``Origin`` a browser sends (or, for ``--python-users`` of them, the
``Authorization: token`` header the Python peer sends), and the PeerJS ``id``/``token``
in the query.

    npm install --prefix bench
    python bench/reconnect_storm.py --clients 5000 --rooms 50 --users 50 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # noqa: E402
    PEER_BIN,
    TOKEN,
    jupyter_server,
    login_cookie,
    peer_server,
    wait_for_quiet,
)

BENCH = Path(__file__).resolve().parent
STORM = BENCH / "storm.mjs"


@contextmanager
def nbchat_server(
    core: str, log_dir: Path, users: int, extra: list[str], python_users: int = 0
) -> Iterator[tuple[int, str, list[dict[str, str]]]]:
    with jupyter_server(core, log_dir, *extra, prefix="nbchat-storm-") as (proc, port):
        origin = f"http://127.0.0.1:{port}"
        headers = []
        for u in range(users):
            if u < python_users:
                # As nbchat.peer.session presents itself: the cookie and the token header.
                headers.append(
                    {"Cookie": login_cookie(proc, port), "Authorization": f"token {TOKEN}"}
                )
            else:  # as a browser: the cookie and the page's Origin
                headers.append({"Cookie": login_cookie(proc, port), "Origin": origin})
        yield proc.pid, f"ws://127.0.0.1:{port}/nbchat/peerjs?key=", headers


def run_storm(cfg: dict, core: str) -> list[dict]:
    out = subprocess.run(
        ["taskset", "-c", core, "node", str(STORM), json.dumps(cfg)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.stderr.strip():
        print(out.stderr.strip()[-2000:], file=sys.stderr)
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or len(events) < 2:
        raise RuntimeError(f"storm failed ({out.returncode}): {events}")
    return events


SERVERS = {"peer": "PeerServer", "nbchat": "nbchat", "nbchat-nocache": "nbchat, no auth cache"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", type=int, default=5000)
    ap.add_argument("--rooms", type=int, default=50)
    ap.add_argument("--users", type=int, default=50, help="Jupyter users (login cookies)")
    ap.add_argument(
        "--python-users",
        type=int,
        default=10,
        help="of the users, how many connect as the Python peer does (cookie + "
        "Authorization header) rather than as a browser (cookie + Origin)",
    )
    ap.add_argument("--inflight", type=int, default=0, help="handshakes at a time; 0 = all")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--servers", nargs="+", default=list(SERVERS), choices=list(SERVERS))
    ap.add_argument("--server-core", default="0")
    ap.add_argument("--loadgen-core", default="1")
    ap.add_argument("--quiet-busy", type=float, default=0.3)
    ap.add_argument("--quiet-timeout", type=float, default=60.0)
    ap.add_argument("--json", type=Path, help="also write raw results here")
    ap.add_argument(
        "--nbchat-arg",
        action="append",
        default=[],
        help="extra argument for the Jupyter server (repeatable)",
    )
    args = ap.parse_args()
    if not PEER_BIN.exists():
        sys.exit("run `npm install --prefix bench` first")
    log_dir = Path(tempfile.mkdtemp(prefix="nbchat-storm-logs-"))
    results: dict[str, list[dict]] = {}
    for rep in range(args.repeat):
        order = args.servers if rep % 2 == 0 else args.servers[::-1]
        for name in order:
            busy = wait_for_quiet(args.quiet_busy, args.quiet_timeout)
            if name == "peer":
                ctx = peer_server(args.server_core)
            else:
                extra = list(args.nbchat_arg)
                if name == "nbchat-nocache":  # Jupyter's full path for every socket
                    extra.append("--NbChatApp.auth_cache_seconds=0")
                ctx = nbchat_server(args.server_core, log_dir, args.users, extra, args.python_users)
            with ctx as (pid, url, headers):
                cfg = {
                    "url": url,
                    "rooms": args.rooms if name != "peer" else 1,
                    "roomPrefix": "room" if name != "peer" else "",
                    "headers": headers if isinstance(headers, list) else [headers],
                    "clients": args.clients,
                    "inflight": args.inflight,
                    "pid": pid,
                }
                connected, storm = run_storm(cfg, args.loadgen_core)
            storm["connect_cpu_s"] = connected["connect_cpu_s"]
            storm["busy_before"] = busy
            results.setdefault(name, []).append(storm)
            print(
                f"[rep {rep + 1}] {SERVERS[name]:22s} storm: {storm['cpu_s']:.2f} CPU s "
                f"({storm['cpu_settled_s']:.2f} settled), {storm['wall_s']:.2f} s wall, "
                f"{storm['failures']} failed attempts {storm['failure_kinds']}, "
                f"RSS {storm['rss_after_kib'] / 1024:.1f} MiB, others used "
                f"{storm['other_cpu_s']:.1f} CPU s; first connect {connected['connect_cpu_s']:.2f}"
                f" CPU s",
                file=sys.stderr,
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(table(results, args))


def table(results: dict[str, list[dict]], args: argparse.Namespace) -> str:
    rows = [
        f"| {args.clients:,} clients, reconnect storm | PeerServer | nbchat "
        "| nbchat, auth cache off | nbchat/PeerServer | cache off/PeerServer |",
        "|---|---:|---:|---:|---:|---:|",
    ]

    def ratio(b: float, a: float) -> str:
        return f"{b / a:.2f}" if a else ("1.00" if b == a else "inf")

    def row(metric: str, fmt: str, pick, agg=statistics.median) -> None:  # type: ignore[no-untyped-def]
        a, b, c = (agg([pick(r) for r in results.get(n, [])] or [float("nan")]) for n in SERVERS)
        rows.append(
            f"| {metric} | {a:{fmt}} | {b:{fmt}} | {c:{fmt}} | {ratio(b, a)} | {ratio(c, a)} |"
        )

    row("server CPU until all are OPEN (s)", ".2f", lambda r: r["cpu_s"])
    row("server CPU per reconnect (ms)", ".3f", lambda r: r["cpu_s"] * 1000 / args.clients)
    row("server CPU incl. 1 s after (s)", ".2f", lambda r: r["cpu_settled_s"])
    row("wall time until all are OPEN (s)", ".2f", lambda r: r["wall_s"])
    row("failed attempts (sum, retried)", ",.0f", lambda r: r["failures"], sum)
    row("RSS after (MiB)", ".1f", lambda r: r["rss_after_kib"] / 1024)
    row("server CPU for the first connect (s)", ".2f", lambda r: r["connect_cpu_s"])
    row("CPU s used by other jobs (noise)", ".1f", lambda r: r["other_cpu_s"])
    return "\n".join(rows)


if __name__ == "__main__":
    main()
