"""Soak: 1,000 signaling clients across 50 rooms joining and leaving for minutes.

Runs a real ``jupyter server`` with nbchat, drives it with ``bench/soak.mjs`` (Node +
``ws``) in rounds, and after each round, once everyone has left, reads the server's
``GET nbchat/stats`` and RSS. Pass: zero errors, zero lost frames, no state left
(rooms, clients, queued frames, subscribers, bindings), tasks and RSS back to where
they were after the first round (growth between later rounds means a leak).

    npm install --prefix bench
    python bench/soak.py --clients 1000 --rooms 50 --round 60 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from run import free_port, wait_http

BENCH = Path(__file__).resolve().parent
TOKEN = "soak-token"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def stats(base: str, cookie: str) -> dict[str, int]:
    req = urllib.request.Request(base + "nbchat/stats", headers={"Cookie": cookie})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def settle(base: str, cookie: str, timeout: float) -> dict[str, int]:
    """Wait until the server holds no room state (bindings expire after 5 s)."""
    deadline = time.monotonic() + timeout
    while True:
        s = stats(base, cookie)
        empty = not any(s[k] for k in ("rooms", "clients", "queued", "subscribers", "bindings"))
        if empty or time.monotonic() > deadline:
            return s
        time.sleep(0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--rooms", type=int, default=50)
    ap.add_argument("--round", type=float, default=60.0, help="seconds per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=float, default=2.0, help="OFFERs/s per client")
    ap.add_argument(
        "--life",
        type=float,
        nargs=2,
        default=[5.0, 15.0],
        metavar=("MIN", "MAX"),
        help="seconds each client stays before leaving (then it rejoins)",
    )
    args = ap.parse_args()

    port = free_port()
    home = Path(tempfile.mkdtemp(prefix="nbchat-soak-"))
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    log_path = home / "server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [
            "taskset",
            "-c",
            "0",
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            f"--IdentityProvider.token={TOKEN}",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.root_dir={home}",
            # every soak socket shares one login cookie (one Jupyter user): lift per-user caps
            "--NbChatApp.max_connections_per_user=100000",
            "--NbChatApp.max_rooms_per_user=100000",
            "--NbChatApp.concurrent_limit=100000",
            "--NbChatApp.id_reservation_timeout=5",
            "--NbChatApp.alive_timeout=10",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=home,
    )
    base = f"http://127.0.0.1:{port}/"
    rows = []
    try:
        resp = wait_http(
            base + "nbchat/session?room=soak", proc, {"Authorization": f"token {TOKEN}"}
        )
        cookie = next(
            v.split(";", 1)[0]
            for k, v in resp.headers.items()
            if k.lower() == "set-cookie" and v.startswith("username-")
        )
        baseline = rss_kib(proc.pid)
        print(f"server up, RSS {baseline / 1024:.1f} MiB", flush=True)
        for n in range(1, args.rounds + 1):
            cfg = {
                "base": f"ws://127.0.0.1:{port}/",
                "headers": {"Cookie": cookie},
                "clients": args.clients,
                "rooms": args.rooms,
                "duration": args.round,
                "rate": args.rate,
                "lifeMin": args.life[0],
                "lifeMax": args.life[1],
            }
            peak = 0
            gen = subprocess.Popen(
                ["taskset", "-c", "1", "node", str(BENCH / "soak.mjs"), json.dumps(cfg)],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert gen.stdout is not None
            done: dict[str, int] = {}
            for line in gen.stdout:
                event = json.loads(line)
                peak = max(peak, rss_kib(proc.pid))
                if event["event"] == "done":
                    done = event
            gen.wait()
            after = settle(base, cookie, timeout=30)
            rows.append(
                {
                    "round": n,
                    **done,
                    "peak_rss_mib": peak / 1024,
                    "rss_after_mib": rss_kib(proc.pid) / 1024,
                    **{f"left_{k}": v for k, v in after.items()},
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            for sample in done.get("errorSamples", []):
                print("  error:", sample, flush=True)
        server_errors = sum(
            1
            for line in log_path.read_text(errors="replace").splitlines()
            if "Traceback" in line or line.startswith("[E ")
        )
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()

    print(
        f"\nBaseline RSS before any client: {baseline / 1024:.1f} MiB; "
        f"server log errors/tracebacks: {server_errors}\n"
    )
    print(
        "| round | joins | leaves | frames sent | lost | errors | cross-room | peak RSS MiB "
        "| RSS after all left MiB | rooms/clients/queued/bindings left | tasks left |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['round']} | {r['joins']} | {r['leaves']} | {r['sent']} | {r['lost']} "
            f"| {r['errors']} | {r['crossRoom']} | {r['peak_rss_mib']:.1f} "
            f"| {r['rss_after_mib']:.1f} | {r['left_rooms']}/{r['left_clients']}/"
            f"{r['left_queued']}/{r['left_bindings']} | {r['left_tasks']} |"
        )
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
