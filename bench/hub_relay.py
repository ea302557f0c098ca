"""What the JupyterHub relay hop costs: signaling straight to ``nbchat-signaling`` vs
through a Jupyter server that relays to it (vs a plain Jupyter server serving it itself).

One run starts three servers (four with ``relay-nodelay``), all pinned to one core
(``--server-core``, default 0):

- **service**: ``python -m nbchat.signaling --port P --token T`` (token auth);
- **relay**: ``python -m jupyter_server`` with ``--NbChatApp.service_url=http://127.0.0.1:P/
  --NbChatApp.service_token=T``: its ``nbchat/...`` endpoints forward to the service (what
  every single-user server on a hub does);
- **jupyter**: a plain ``python -m jupyter_server`` with the extension serving signaling
  itself (the one-server deployment).

and measures, from Python asyncio clients (aiohttp) pinned to the other core, against
three targets: **direct** (the service), **relay** (the relaying Jupyter server, whose
upstream is that same service) and **jupyter** (the plain server):

1. **join**: ``GET nbchat/session?room=`` + ``GET nbchat/{key}/id`` + the signaling
   WebSocket ``nbchat/peerjs?key=&id=&token=`` until its ``OPEN`` frame (then closed);
   targets interleaved join by join, in alternating order;
2. **signaling round trip**: peers A and B connected through the target; A sends an
   ``OFFER`` (~1 KB SDP) to B, B answers with an ``ANSWER`` to A: time A→B→A, one frame in
   flight, in blocks of ``--block`` round trips with the targets interleaved block by block;
3. **server CPU per signaling frame** during (2): ``utime + stime`` from ``/proc/PID/stat``
   of each server process over its blocks / frames relayed (2 per round trip). With one
   frame in flight every frame pays a full event-loop wake-up, so these are upper bounds
   compared with bench/run.py's loaded numbers. A and B share one relaying server, so
   its CPU per frame covers both hops (the sender's server and the receiver's, two
   servers on a hub).

Medians over ``--repeat`` runs (fresh servers each) are printed as a markdown table with
the ratios to direct. docs/bench-hub.md has a run and its reading.

    .venv/bin/python bench/hub_relay.py --joins 50 --rtts 2000 --repeat 5 \
        --targets direct relay relay-nodelay jupyter

Auth: clients log in to each Jupyter server once with its token and send its login
cookie afterwards, like a browser (Jupyter makes a new anonymous user of every token
request). The service gets ``Authorization: token T`` on every request and socket, from
the clients (direct, with the service's cookie) and from the relay. With
``--one-user-per-token`` the service runs with one change made here
(``--serve-service``): its token maps to one fixed user, as a hub maps a server's API
token to its owner. Before commit 5c374ca the relay kept no service cookie, and the
stock token auth makes a new guest of every request without one, so through the relay
``GET id`` and the socket were two users and the socket got ``ID-TAKEN``; the run in
docs/bench-hub.md used this option for that reason. ``relay-nodelay`` is an experiment:
the relay with ``TCP_NODELAY`` set on the browser's socket (``--serve-jupyter-nodelay``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

# Shared with the signaling benchmark (this directory is on sys.path when run as a script).
from run import free_port, wait_for_quiet

TOKEN = "hub-relay-bench-" + secrets.token_hex(8)
JTOKEN = "hub-relay-jupyter-" + secrets.token_hex(8)
ROOM = "bench relay"
SDP = (
    "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "a=group:BUNDLE 0\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\n"
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n"
)
SDP = (SDP * 8)[:1000]  # ~1 KB, about what a data-channel offer is
# Lift the per-socket rate limit and per-user caps (every bench client is one user, and
# a round trip loop sends far more than a person), and nobody sends HEARTBEATs.
LIMITS = [
    "concurrent_limit=100000",
    "max_connections_per_user=100000",
    "max_rooms_per_user=100000",
    "rate_limit=1000000",
    "rate_burst=1000000",
    "alive_timeout=3600",
]
CHILDREN: list[subprocess.Popen[bytes]] = []


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- servers ------------------------------------------------------------------------------


def stop_children() -> None:
    while CHILDREN:
        proc = CHILDREN.pop()
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def spawn(args: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        # Its own process group: stop_children() ends it and anything it started.
        proc = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
        )
    CHILDREN.append(proc)
    return proc


def wait_http(
    url: str, proc: subprocess.Popen[bytes], headers: dict[str, str], log: Path, timeout: float = 60
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited early ({proc.returncode}):\n"
                f"{log.read_text(errors='replace')[-3000:]}"
            )
        try:
            return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5)
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{url}: HTTP {e.code} {e.read()[:500]!r}") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise TimeoutError(url)


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "NBCHAT_"))}
    env.update(
        {
            "HOME": str(home),
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "IPYTHONDIR": str(home / "ipython"),
            "JUPYTER_PLATFORM_DIRS": "1",
        }
    )
    return env


@dataclass
class Target:
    name: str
    base: str  # http://127.0.0.1:P/ (ends in /)
    pids: dict[str, int]  # processes whose CPU the target's frames cost: role -> pid
    headers: dict[str, str] = field(default_factory=dict)  # on every request and socket

    @property
    def ws_base(self) -> str:
        return "ws" + self.base[4:]


def cookie_of(resp: Any, prefix: str) -> str:
    for k, v in resp.headers.items():
        if k.lower() == "set-cookie" and v.startswith(prefix):
            return v.split(";", 1)[0]
    raise RuntimeError(f"no {prefix}… cookie in the login response")


def start_servers(
    core: str | None, tmp: Path, which: list[str], stock_auth: bool
) -> dict[str, Target]:
    pin = ["taskset", "-c", core] if core is not None else []
    py = sys.executable
    home = tmp / "home"
    (home / "work").mkdir(parents=True, exist_ok=True)
    env = clean_env(home)
    targets: dict[str, Target] = {}

    sport = free_port()
    slog = tmp / "service.log"
    entry = (
        ["-m", "nbchat.signaling"]
        if stock_auth
        else [str(Path(__file__).resolve()), "--serve-service"]
    )
    service = spawn(
        [
            *pin,
            py,
            *entry,
            "--port",
            str(sport),
            "--token",
            TOKEN,
            "--base-url",
            "/",
            "--log-level",
            "WARN",
            *[f"--SignalingApp.{x}" for x in LIMITS],
        ],
        env,
        slog,
        home,
    )
    sbase = f"http://127.0.0.1:{sport}/"
    auth = {"Authorization": f"token {TOKEN}"}
    resp = wait_http(sbase + "nbchat/session?room=login", service, auth, slog)
    # The header authenticates. With the stock token auth, the cookie keeps the same
    # (guest) identity across requests; with ours, the token is that identity.
    direct = {**auth, "Cookie": cookie_of(resp, "nbchat-signaling-user=")} if stock_auth else auth
    if "direct" in which:
        targets["direct"] = Target("direct", sbase, {"service": service.pid}, direct)

    def jupyter(name: str, extra: list[str]) -> Target:
        port = free_port()
        log = tmp / f"{name}.log"
        entry = (
            [str(Path(__file__).resolve()), "--serve-jupyter-nodelay"]
            if name == "relay-nodelay"
            else ["-m", "jupyter_server"]
        )
        proc = spawn(
            [
                *pin,
                py,
                *entry,
                "--no-browser",
                "--allow-root",
                f"--port={port}",
                "--ServerApp.ip=127.0.0.1",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={JTOKEN}",
                f"--ServerApp.root_dir={home / 'work'}",
                *extra,
            ],
            env,
            log,
            home,
        )
        base = f"http://127.0.0.1:{port}/"
        r = wait_http(
            base + "nbchat/session?room=login", proc, {"Authorization": f"token {JTOKEN}"}, log
        )
        # Jupyter makes a new anonymous user for every token request: log in once and send
        # the login cookie afterwards, like a browser (and like bench/run.py).
        return Target(name, base, {name: proc.pid}, {"Cookie": cookie_of(r, "username-")})

    for name in ("relay", "relay-nodelay"):
        if name in which:
            t = jupyter(
                name, [f"--NbChatApp.service_url={sbase}", f"--NbChatApp.service_token={TOKEN}"]
            )
            t.pids = {"relay": t.pids[name], "service": service.pid}
            targets[name] = t
    if "jupyter" in which:
        targets["jupyter"] = jupyter("jupyter", [f"--NbChatApp.{x}" for x in LIMITS])
    return targets


# ---- clients ------------------------------------------------------------------------------


class Peer:
    def __init__(self, target: Target, http: aiohttp.ClientSession) -> None:
        self.target = target
        self.http = http
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.id = ""

    async def join(self) -> tuple[float, float, float]:
        """(session, id, socket until OPEN) in seconds."""
        t, h = self.target, self.target.headers
        t0 = time.perf_counter()
        async with self.http.get(t.base + "nbchat/session", params={"room": ROOM}, headers=h) as r:
            if r.status != 200:
                raise RuntimeError(f"{t.name} session: {r.status} {await r.text()}")
            key = (await r.json(content_type=None))["key"]
        t1 = time.perf_counter()
        async with self.http.get(t.base + f"nbchat/{key}/id", headers=h) as r:
            if r.status != 200:
                raise RuntimeError(f"{t.name} id: {r.status} {await r.text()}")
            self.id = await r.text()
        t2 = time.perf_counter()
        self.ws = await self.http.ws_connect(
            t.ws_base + "nbchat/peerjs",
            params={"key": key, "id": self.id, "token": secrets.token_hex(8)},
            headers=h,
            autoping=True,
            max_msg_size=0,
        )
        msg = json.loads(await self.ws.receive_str())
        t3 = time.perf_counter()
        if msg.get("type") != "OPEN":
            raise RuntimeError(f"{t.name}: expected OPEN, got {msg}")
        return t1 - t0, t2 - t1, t3 - t2

    async def recv(self) -> dict[str, Any]:
        assert self.ws is not None
        while True:
            msg = json.loads(await self.ws.receive_str())
            if msg.get("type") in ("OFFER", "ANSWER"):
                return msg  # type: ignore[no-any-return]
            if msg.get("type") in ("ERROR", "EXPIRE", "ID-TAKEN"):
                raise RuntimeError(f"{self.target.name}: {msg}")

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


async def answerer(b: Peer) -> None:
    """B: answer every OFFER with an ANSWER of the same size to whoever sent it."""
    assert b.ws is not None
    while True:
        offer = await b.recv()
        p = offer["payload"]
        await b.ws.send_str(
            json.dumps(
                {
                    "type": "ANSWER",
                    "dst": offer["src"],
                    "payload": {
                        "sdp": {"type": "answer", "sdp": SDP},
                        "type": "data",
                        "connectionId": p["connectionId"],
                        "seq": p["seq"],
                    },
                }
            )
        )


async def round_trips(a: Peer, b: Peer, n: int, seq0: int) -> list[float]:
    assert a.ws is not None
    out = []
    for i in range(seq0, seq0 + n):
        frame = json.dumps(
            {
                "type": "OFFER",
                "dst": b.id,
                "payload": {
                    "sdp": {"type": "offer", "sdp": SDP},
                    "type": "data",
                    "connectionId": "dc_bench",
                    "label": "chat",
                    "reliable": True,
                    "serialization": "json",
                    "seq": i,
                },
            }
        )
        t0 = time.perf_counter()
        await a.ws.send_str(frame)
        answer = await a.recv()
        out.append(time.perf_counter() - t0)
        if answer["payload"]["seq"] != i or answer["src"] != b.id:
            raise RuntimeError(f"{a.target.name}: out of order answer {answer['payload']}")
    return out


async def measure(
    targets: dict[str, Target], joins: int, rtts: int, block: int, warmup: int
) -> dict[str, Any]:
    names = list(targets)
    res: dict[str, Any] = {
        n: {"session": [], "id": [], "ws": [], "join": [], "rtt": [], "cpu": {}, "frames": 0}
        for n in names
    }
    http = aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(), timeout=aiohttp.ClientTimeout(total=30)
    )
    try:
        # Joins: interleaved, alternating order; the first `warmup` of each not counted.
        for i in range(warmup + joins):
            for n in names if i % 2 == 0 else names[::-1]:
                p = Peer(targets[n], http)
                s, d, w = await p.join()
                await p.close()
                if i >= warmup:
                    r = res[n]
                    r["session"].append(s)
                    r["id"].append(d)
                    r["ws"].append(w)
                    r["join"].append(s + d + w)
        # Round trips: a pair per target, blocks interleaved in alternating order.
        pairs = {}
        for n in names:
            a, b = Peer(targets[n], http), Peer(targets[n], http)
            await a.join()
            await b.join()
            pairs[n] = (a, b, asyncio.create_task(answerer(b)))
            await round_trips(a, b, warmup * 10, 0)
        await asyncio.sleep(0.5)
        seq = 10**6
        for k in range((rtts + block - 1) // block):
            for n in names if k % 2 == 0 else names[::-1]:
                a, b, _ = pairs[n]
                pids = targets[n].pids
                c0 = {role: cpu_s(pid) for role, pid in pids.items()}
                times = await round_trips(a, b, min(block, rtts - k * block), seq)
                seq += len(times)
                c1 = {role: cpu_s(pid) for role, pid in pids.items()}
                r = res[n]
                r["rtt"].extend(times)
                r["frames"] += 2 * len(times)
                for role in pids:
                    r["cpu"][role] = r["cpu"].get(role, 0.0) + c1[role] - c0[role]
        for a, b, task in pairs.values():
            task.cancel()
            await a.close()
            await b.close()
    finally:
        await http.close()
    return res


# ---- report -------------------------------------------------------------------------------


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def summarize(run: dict[str, Any]) -> dict[str, dict[str, float]]:
    out = {}
    for n, r in run.items():
        ms = 1000.0
        row = {
            "join p50 (ms)": statistics.median(r["join"]) * ms,
            "join p95 (ms)": pct(r["join"], 95) * ms,
            "  GET session p50 (ms)": statistics.median(r["session"]) * ms,
            "  GET id p50 (ms)": statistics.median(r["id"]) * ms,
            "  socket to OPEN p50 (ms)": statistics.median(r["ws"]) * ms,
            "round trip A→B→A p50 (ms)": statistics.median(r["rtt"]) * ms,
            "round trip A→B→A p99 (ms)": pct(r["rtt"], 99) * ms,
        }
        us = 1e6 / max(1, r["frames"])
        total = 0.0
        for role in ("jupyter", "relay", "service"):
            if role in r["cpu"]:
                row[f"CPU per frame, {role} process (µs)"] = r["cpu"][role] * us
                total += r["cpu"][role] * us
        row["CPU per frame, all servers (µs)"] = total
        out[n] = row
    return out


def table(summaries: list[dict[str, dict[str, float]]], names: list[str]) -> str:
    metrics: list[str] = []
    for s in summaries:
        for n in names:
            metrics += [m for m in s[n] if m not in metrics]
    total = "CPU per frame, all servers (µs)"
    metrics = [m for m in metrics if m != total] + [total]
    head = {
        "direct": "direct (service)",
        "relay": "relay (Jupyter → service)",
        "relay-nodelay": "relay + TCP_NODELAY (patched)",
        "jupyter": "plain Jupyter",
    }
    cols = [head[n] for n in names]
    ratios = [f"{n}/direct" for n in names if n != "direct"] if "direct" in names else []
    rows = [
        "| metric | " + " | ".join(cols + ratios) + " |",
        "|---|" + "---:|" * (len(cols) + len(ratios)),
    ]
    for m in metrics:
        vals = {}
        for n in names:
            xs = [s[n][m] for s in summaries if m in s[n]]
            vals[n] = statistics.median(xs) if xs else None
        cells = ["—" if vals[n] is None else f"{vals[n]:.{1 if 'µs' in m else 2}f}" for n in names]
        for n in names:
            if n == "direct" or "direct" not in names:
                continue
            a, b = vals["direct"], vals[n]
            cells.append(f"{b / a:.2f}" if a and b is not None else "—")
        rows.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--joins", type=int, default=50, help="joins per target (after warm-up)")
    ap.add_argument("--rtts", type=int, default=1000, help="round trips per target")
    ap.add_argument("--block", type=int, default=100, help="round trips per interleaved block")
    ap.add_argument(
        "--warmup",
        type=int,
        default=5,
        help="uncounted joins per target (and 10x as many round trips)",
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs, each with fresh servers")
    ap.add_argument(
        "--targets",
        nargs="+",
        default=["direct", "relay", "jupyter"],
        choices=["direct", "relay", "relay-nodelay", "jupyter"],
        help="relay-nodelay: the relay with TCP_NODELAY on the browser socket "
        "(patched in this script, an experiment)",
    )
    ap.add_argument("--server-core", default="0", help="'' = no pinning")
    ap.add_argument("--client-core", default="1", help="'' = no pinning")
    ap.add_argument(
        "--quiet-busy",
        type=float,
        default=0.25,
        help="before each run, wait until all cores are at most this busy",
    )
    ap.add_argument("--quiet-timeout", type=float, default=60.0)
    ap.add_argument("--json", type=Path, help="also write the raw per-run summaries here")
    ap.add_argument(
        "--one-user-per-token",
        action="store_true",
        help="map the service's token to one user, as a hub does (needed "
        "before the relay kept the service's cookie, commit 5c374ca)",
    )
    args = ap.parse_args()
    if args.client_core:
        os.sched_setaffinity(0, {int(args.client_core)})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    summaries = []
    for rep in range(args.repeat):
        busy = wait_for_quiet(args.quiet_busy, args.quiet_timeout)
        tmp = Path(tempfile.mkdtemp(prefix="nbchat-hub-relay-"))
        try:
            targets = start_servers(
                args.server_core or None, tmp, args.targets, not args.one_user_per_token
            )
            time.sleep(1.0)  # let the servers finish starting up
            run = asyncio.run(measure(targets, args.joins, args.rtts, args.block, args.warmup))
        except BaseException:
            for log in sorted(tmp.glob("*.log")):
                tail = log.read_text(errors="replace")[-2000:]
                print(f"--- {log.name}\n{tail}", file=sys.stderr)
            raise
        finally:
            stop_children()
            shutil.rmtree(tmp, ignore_errors=True)
        s = summarize(run)
        summaries.append(s)
        brief = "; ".join(
            f"{n}: join {v['join p50 (ms)']:.2f} ms, rtt "
            f"{v['round trip A→B→A p50 (ms)']:.3f}/"
            f"{v['round trip A→B→A p99 (ms)']:.3f} ms, "
            f"{v['CPU per frame, all servers (µs)']:.0f} µs/frame"
            for n, v in s.items()
        )
        print(
            f"[rep {rep + 1}, machine {busy:.0%} busy before] {brief}", file=sys.stderr, flush=True
        )
    if args.json:
        args.json.write_text(json.dumps(summaries, indent=1))
    print(table(summaries, args.targets))


def serve_service(argv: list[str]) -> None:
    """``nbchat-signaling`` whose token maps to one user, as a hub maps a server's token to
    its owner. The stock token auth makes a new guest of every request that comes without
    its cookie, and the relay sends none: its ``GET id`` and its socket would be two
    different users, and the socket would get ID-TAKEN."""
    import hashlib

    from nbchat.server import standalone

    class OneUserPerToken(standalone._TokenAuth):
        def get_current_user(self) -> Any:
            if self._identity is None:
                scheme, _, presented = self.request.headers.get("Authorization", "").partition(" ")
                expected = self.settings["nbchat_token"]
                if scheme.lower() == "token" and secrets.compare_digest(
                    presented.strip().encode(), expected.encode()
                ):
                    name = "guest-" + hashlib.sha256(expected.encode()).hexdigest()[:12]
                    self._identity = standalone.anonymous_identity(name)
            return super().get_current_user()

    standalone._TokenAuth = OneUserPerToken  # type: ignore[misc]
    standalone.main(argv)


def serve_jupyter_nodelay(argv: list[str]) -> None:
    """``jupyter server`` whose relay sets TCP_NODELAY on the browser's socket (an
    experiment, not nbchat's code): without it the ``OPEN`` frame, written right after
    the 101 response, waits for the browser's delayed ACK of the 101 (Nagle)."""
    from jupyter_server.serverapp import main as jupyter_main

    from nbchat.server import relay

    stock_open = relay.SocketRelayHandler.open

    async def open_nodelay(self: Any, *args: Any, **kwargs: Any) -> None:
        self.set_nodelay(True)
        await stock_open(self, *args, **kwargs)

    relay.SocketRelayHandler.open = open_nodelay  # type: ignore[method-assign]
    sys.argv = ["jupyter-server", *argv]
    jupyter_main()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-service"]:
        serve_service(sys.argv[2:])
        sys.exit(0)
    if sys.argv[1:2] == ["--serve-jupyter-nodelay"]:
        serve_jupyter_nodelay(sys.argv[2:])
        sys.exit(0)
    try:
        main()
    finally:
        stop_children()
