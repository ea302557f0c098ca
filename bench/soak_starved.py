"""Soak under CPU starvation: the signaling server is frozen (SIGSTOP) and thawed (SIGCONT)
in bursts while clients join, relay and leave (bench/soak.mjs), alone or as two
processes sharing rooms through Redis. A busy or frozen server must not declare live
peers dead: pass = nothing lost, no errors (EXPIRE, ERROR), no state left.

    npm install --prefix bench
    python bench/soak_starved.py --clients 300 --rooms 20 --round 40 --stop 12 --every 16
    python bench/soak_starved.py --broker redis --stop 3 --every 8
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from redis_scale import TOKEN, redis_server, signaling
from soak import rss_kib, settle, stats

BENCH = Path(__file__).resolve().parent


def session_cookie(base: str) -> str:
    """The identity cookie every soak socket shares (limits are lifted for it)."""
    request = urllib.request.Request(
        base.replace("ws://", "http://") + "nbchat/session?room=soak",
        headers={"Authorization": f"token {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        return next(
            v.split(";", 1)[0]
            for k, v in r.headers.items()
            if k.lower() == "set-cookie" and v.startswith("nbchat-signaling-user=")
        )


def metric(base: str, cookie: str, name: str, prefix: bool = False) -> float:
    """A counter from /metrics (``prefix``: summed over its labels)."""
    request = urllib.request.Request(base + "metrics", headers={"Cookie": cookie})
    total = 0.0
    with urllib.request.urlopen(request, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " ") or (prefix and line.startswith(name + "{")):
                total += float(line.rsplit(" ", 1)[1])
    return total


def freezer(pids: list[int], stop: float, every: float, until: threading.Event) -> list[float]:
    """SIGSTOP every server for ``stop`` s, every ``every`` s, until ``until`` is set."""
    frozen: list[float] = []
    while not until.wait(max(every - stop, 0.1)):
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        t0 = time.monotonic()
        until.wait(stop)
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        frozen.append(time.monotonic() - t0)
    return frozen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", type=int, default=300)
    ap.add_argument("--rooms", type=int, default=20)
    ap.add_argument("--round", type=float, default=40.0, help="seconds of churn")
    ap.add_argument("--rate", type=float, default=2.0, help="OFFERs/s per client")
    ap.add_argument("--broker", choices=["none", "redis"], default="none")
    ap.add_argument("--alive-timeout", type=float, default=10.0)
    ap.add_argument("--expire-timeout", type=float, default=5.0)
    ap.add_argument("--stop", type=float, default=12.0, help="seconds frozen per burst")
    ap.add_argument("--every", type=float, default=16.0, help="seconds between bursts")
    ap.add_argument(
        "--polite",
        action="store_true",
        help="every client closes with a handshake (default: half kill their connection)",
    )
    args = ap.parse_args()

    log_dir = Path(tempfile.mkdtemp(prefix="nbchat-soak-starved-"))
    extra = (
        f"--SignalingApp.alive_timeout={args.alive_timeout}",
        f"--SignalingApp.expire_timeout={args.expire_timeout}",
        "--SignalingApp.id_reservation_timeout=5",
        "--log-level=INFO",
    )
    with ExitStack() as stack:
        broker = ""
        count = 1
        if args.broker == "redis":
            _, broker = stack.enter_context(redis_server("", log_dir))
            count = 2
        servers = [
            stack.enter_context(signaling("", broker, log_dir, *extra)) for _ in range(count)
        ]
        pids = [pid for pid, _ in servers]
        bases = [base for _, base in servers]
        cookie = session_cookie(bases[0])
        http = [b.replace("ws://", "http://") for b in bases]
        cfg = {
            "base": bases if count > 1 else bases[0],
            "headers": {"Cookie": cookie},
            "clients": args.clients,
            "rooms": args.rooms,
            "duration": args.round,
            "rate": args.rate,
            "abrupt": not args.polite,
        }
        done = threading.Event()
        frozen: list[float] = []
        thread = threading.Thread(
            target=lambda: frozen.extend(freezer(pids, args.stop, args.every, done)), daemon=True
        )
        thread.start()
        gen = subprocess.Popen(
            ["node", str(BENCH / "soak.mjs"), json.dumps(cfg)], stdout=subprocess.PIPE, text=True
        )
        assert gen.stdout is not None
        result: dict = {}
        for line in gen.stdout:
            event = json.loads(line)
            if event["event"] == "done":
                result = event
        gen.wait()
        done.set()
        thread.join()
        left = [settle(h, cookie, timeout=30) for h in http]
        relayed = sum(metric(h, cookie, "nbchat_relayed_frames_total") for h in http)
        refused = sum(metric(h, cookie, "nbchat_refused_frames_total", prefix=True) for h in http)
        logs = "".join(p.read_text(errors="replace") for p in log_dir.glob("signaling-*.log"))
        evicted = logs.count("evicting silent peer")
        reaped = logs.count("stopped answering")
        row = {
            "broker": args.broker,
            "processes": count,
            "bursts": len(frozen),
            "frozen_s": round(sum(frozen), 1),
            "longest_s": round(max(frozen, default=0), 1),
            **{k: result.get(k) for k in ("joins", "leaves", "sent", "lost", "errors")},
            "cross_room": result.get("crossRoom"),
            "relayed_by_server": int(relayed),
            "refused_by_server": refused,
            "evicted_live": evicted,
            "processes_reaped": reaped,
            "left": [{k: s[k] for k in ("rooms", "clients", "queued", "bindings")} for s in left],
            "rss_mib": [round(rss_kib(pid) / 1024, 1) for pid in pids],
            "tasks": [stats(h, cookie)["tasks"] for h in http],
        }
        print(json.dumps(row), flush=True)
        for sample in result.get("errorSamples", []):
            print("  error:", sample, flush=True)
        print(f"logs: {log_dir}")
    if not row["lost"] and not row["errors"]:
        shutil.rmtree(log_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
