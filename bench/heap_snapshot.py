"""Where the widget's JS heap goes with a big room: CDP heap snapshots of a late joiner.

A Python peer fills a room with N messages (default 10,000); a fresh browser context opens
a notebook running ``%chat`` in that room, the way ``bench/browser_latency.py``'s
``history()`` does. The page's heap (CDP ``Runtime.getHeapUsage`` after
``HeapProfiler.collectGarbage``) is read before ``%chat`` and 2 s after all N messages are
held; with ``--snapshot`` a heap snapshot is taken at both points and compared: the growth
by kind of node (self size and count; plain objects by their property names, strings and
arrays by what holds them, so one kind per message shows as a row of N), with the retainer
path of one example of each of the largest rows.

``--reload`` then reloads the page and measures again (the messages come back from the
local copy, IndexedDB, before the peer answers). ``--rounds R`` repeats the late join in R
fresh contexts on one filled room; ``--swap DIR`` alternates the widget under test with
another build (DIR/widget.js, made with ``npm run build`` in another checkout and copied
there) round by round, for a before/after in one sitting.

    PYTHONPATH=src python bench/heap_snapshot.py --history 10000 [--snapshot] [--rounds 3] \\
        [--reload] [--swap /tmp/widget-before] [--save DIR] [--top 40]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.browser_latency import ALL_HELD, PROBE, heap_mb  # noqa: E402
from bench.browser_latency import fill_room as browser_latency_fill  # noqa: E402
from tests.support.browser import CHROMIUM_ARGS, open_notebook, run_all  # noqa: E402
from tests.support.lab import make_lab  # noqa: E402
from tests.support.loop import BackgroundLoop  # noqa: E402
from tests.support.widgets import api, code_notebook, put_notebook  # noqa: E402

STATIC = REPO / "src" / "nbchat" / "static"


def take_snapshot(page: Any) -> dict[str, Any]:
    """A full heap snapshot of `page` (after a GC), parsed."""
    cdp = page.context.new_cdp_session(page)
    chunks: list[str] = []
    cdp.on("HeapProfiler.addHeapSnapshotChunk", lambda event: chunks.append(event["chunk"]))
    cdp.send("HeapProfiler.enable")
    cdp.send("HeapProfiler.collectGarbage")
    cdp.send("HeapProfiler.takeHeapSnapshot", {"reportProgress": False})
    cdp.detach()
    return json.loads("".join(chunks))


class Snapshot:
    """The nodes and edges of a V8 heap snapshot, with the keys to group nodes by."""

    def __init__(self, raw: dict[str, Any]) -> None:
        meta = raw["snapshot"]["meta"]
        self.strings: list[str] = raw["strings"]
        nf, ef = meta["node_fields"], meta["edge_fields"]
        self.node_types: list[str] = meta["node_types"][0]
        self.edge_types: list[str] = meta["edge_types"][0]
        self.nw, self.ew = len(nf), len(ef)
        self.nodes: list[int] = raw["nodes"]
        self.edges: list[int] = raw["edges"]
        self.n_type, self.n_name = nf.index("type"), nf.index("name")
        self.n_size, self.n_edges = nf.index("self_size"), nf.index("edge_count")
        self.e_type, self.e_name, self.e_to = (
            ef.index("type"),
            ef.index("name_or_index"),
            ef.index("to_node"),
        )
        count = len(self.nodes) // self.nw
        self.first_edge = [0] * (count + 1)
        for i in range(count):
            self.first_edge[i + 1] = (
                self.first_edge[i] + self.nodes[i * self.nw + self.n_edges] * self.ew
            )
        self.count = count
        self._retainers: list[list[tuple[int, int]]] | None = None

    def kind(self, i: int) -> str:
        return self.node_types[self.nodes[i * self.nw + self.n_type]]

    def name(self, i: int) -> str:
        return self.strings[self.nodes[i * self.nw + self.n_name]]

    def size(self, i: int) -> int:
        return self.nodes[i * self.nw + self.n_size]

    def out(self, i: int) -> list[tuple[str, str, int]]:
        """(edge type, edge name, target node) of node `i`'s edges."""
        found = []
        for e in range(self.first_edge[i], self.first_edge[i + 1], self.ew):
            kind = self.edge_types[self.edges[e + self.e_type]]
            raw = self.edges[e + self.e_name]
            name = str(raw) if kind in ("element", "hidden") else self.strings[raw]
            found.append((kind, name, self.edges[e + self.e_to] // self.nw))
        return found

    def group(self, i: int) -> str:
        kind, name = self.kind(i), self.name(i)
        if kind == "object" and name == "Object":
            props = sorted(n for t, n, _ in self.out(i) if t == "property")[:12]
            return f"Object {{{','.join(props)}}}"
        if kind in ("object", "closure", "regexp", "code", "native", "synthetic", "hidden"):
            return f"{kind} {name[:60]}"
        # Strings, arrays (a Map's or Set's table too), numbers: by what holds them.
        holder = self.holder(i)
        if kind in ("string", "concatenated string", "sliced string") and holder == "":
            return f"{kind} {re.sub(r'[0-9]+', 'N', name[:30])!r}"
        if kind in ("string", "concatenated string", "sliced string"):
            return f"{kind} held as {holder}"
        return f"{kind} {name[:30]} held as {holder}"

    def holder(self, i: int) -> str:
        """`.edge of owner` for the first strong retainer of `i` ("" without one)."""
        for n, e in self.retainers(i):
            kind = self.edge_types[self.edges[e + self.e_type]]
            if kind == "weak":
                continue
            raw = self.edges[e + self.e_name]
            label = "[]" if kind in ("element", "hidden") else f".{self.strings[raw]}"
            label = re.sub(r"^\.[0-9]+$", "[]", label)  # a hash table's slots
            owner = self.name(n)[:40] if self.kind(n) != "string" else "(string)"
            if self.kind(n) == "object" and owner == "Object":
                owner = (
                    "Object{"
                    + ",".join(sorted(x for t, x, _ in self.out(n) if t == "property")[:6])
                    + "}"
                )
            elif self.kind(n) == "array":
                owner = f"array {self.holder(n)}" if n != i else "array"
            return f"{label} of {owner}"
        return ""

    def groups(self) -> dict[str, tuple[int, int, int]]:
        """group → (self size, count, an example node)."""
        sizes: dict[str, list[int]] = defaultdict(lambda: [0, 0, -1])
        for i in range(self.count):
            row = sizes[self.group(i)]
            row[0] += self.size(i)
            row[1] += 1
            row[2] = i
        return {k: (v[0], v[1], v[2]) for k, v in sizes.items()}

    def retainers(self, i: int) -> list[tuple[int, int]]:
        if self._retainers is None:
            back: list[list[tuple[int, int]]] = [[] for _ in range(self.count)]
            for n in range(self.count):
                for e in range(self.first_edge[n], self.first_edge[n + 1], self.ew):
                    back[self.edges[e + self.e_to] // self.nw].append((n, e))
            self._retainers = back
        return self._retainers[i]

    def path(self, i: int, depth: int = 12) -> str:
        """One retainer chain of `i` (strong edges first, skipping the snapshot's roots)."""
        steps, seen = [], {i}
        for _ in range(depth):
            best = None
            for n, e in self.retainers(i):
                kind = self.edge_types[self.edges[e + self.e_type]]
                if kind == "weak" or n in seen:
                    continue
                raw = self.edges[e + self.e_name]
                label = f"[{raw}]" if kind in ("element", "hidden") else f".{self.strings[raw]}"
                best = (n, label)
                if kind not in ("hidden", "internal"):
                    break
            if best is None:
                break
            i, label = best
            seen.add(i)
            steps.append(f"{label} ← {self.kind(i)} {self.name(i)[:40]}")
            if self.kind(i) == "synthetic":
                break
        return " ".join(steps)


def compare(before: Snapshot, after: Snapshot, top: int) -> str:
    a, b = before.groups(), after.groups()
    rows = []
    for key, (size, count, example) in b.items():
        old = a.get(key, (0, 0, -1))
        rows.append((size - old[0], count - old[1], key, example))
    rows.sort(key=lambda r: -r[0])
    total = sum(r[0] for r in rows) + sum(-v[0] for k, v in a.items() if k not in b)
    out = [f"self size growth in all: {total / 1e6:+.2f} MB; largest rows:"]
    for grown, count, key, example in rows[:top]:
        out.append(f"{grown / 1e6:+7.2f} MB {count:+8d}  {key[:110]}")
        out.append(f"{'':27}{after.path(example)[:400]}")
    return "\n".join(out)


def fill_room(lab: Any, room: str, size: int) -> tuple[Any, Any]:
    """browser_latency's history holder, on a loop of its own."""
    loop = BackgroundLoop()
    return loop, browser_latency_fill(loop, lab, room, size)


def late_join(
    lab: Any, browser: Any, path: str, size: int, snapshot: bool, reload: bool
) -> dict[str, Any]:
    """A new user opens `path` (its own kernel: the widget's code is read when it starts);
    with `reload`, then reloads the page (the messages come back from the local copy)."""
    newest = f"history {size - 1:06d}"
    context = browser.new_context(
        permissions=["microphone", "camera"], viewport={"width": 1280, "height": 900}
    )
    context.add_init_script(PROBE)
    page = context.new_page()
    open_notebook(page, lab, path)
    result: dict[str, Any] = {"before_mb": heap_mb(page)}
    if snapshot:
        result["before"] = take_snapshot(page)
    run_all(page)
    held = page.evaluate(ALL_HELD, [newest, size])
    opens = page.evaluate("() => window.__probe.opens")
    result["all_after_link_ms"] = held - opens[0] if opens else None
    time.sleep(2)  # as history(): the local copy written, the page settled
    result["after_mb"] = heap_mb(page)
    if snapshot:
        result["after"] = take_snapshot(page)
    if reload:
        page.reload()
        open_notebook(page, lab, path)
        result["reload_before_mb"] = heap_mb(page)
        run_all(page)
        page.evaluate(ALL_HELD, [newest, size])
        time.sleep(2)
        result["reload_after_mb"] = heap_mb(page)
    context.close()
    for session in api(lab, "GET", "api/sessions"):
        if session["path"] == path:
            api(lab, "DELETE", f"api/sessions/{session['id']}")
    return result


def report(label: str, got: dict[str, Any], save: Path | None, top: int) -> None:
    before, after = got["before_mb"], got["after_mb"]
    took = got["all_after_link_ms"]
    timed = f"; all held {took:.0f} ms after the link opened" if took is not None else ""
    print(f"{label}: {before:.1f} → {after:.1f} MB (+{after - before:.2f}){timed}", flush=True)
    if "reload_after_mb" in got:
        before, after = got["reload_before_mb"], got["reload_after_mb"]
        print(f"{label} reloaded: {before:.1f} → {after:.1f} MB (+{after - before:.2f})")
    if "after" not in got:
        return
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
        for when in ("before", "after"):
            name = f"{label.replace(' ', '-')}-{when}.heapsnapshot"
            (save / name).write_text(json.dumps(got[when]))
    print(f"\n{label}: growth between the snapshots (before `%chat` → all held)")
    print(compare(Snapshot(got["before"]), Snapshot(got["after"]), top))
    print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", type=int, default=10_000, help="messages in the room")
    parser.add_argument("--rounds", type=int, default=1, help="late joins (fresh contexts)")
    parser.add_argument(
        "--snapshot", action="store_true", help="compare heap snapshots (last round)"
    )
    parser.add_argument(
        "--swap", type=Path, help="a folder with another build's widget.js, alternated"
    )
    parser.add_argument(
        "--reload", action="store_true", help="then reload (from the local copy) and measure"
    )
    parser.add_argument("--save", type=Path, help="save the snapshots (.heapsnapshot) here")
    parser.add_argument("--top", type=int, default=40, help="rows of the comparison")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="nbchat-heap-"))
    lab = make_lab(tmp, {"alive_timeout": 30.0})
    lab.start()
    widget = STATIC / "widget.js"
    ours = widget.read_bytes()
    heaps: dict[str, list[float]] = defaultdict(list)
    try:
        room = "bench-heap"
        loop, peer = fill_room(lab, room, args.history)
        cells = code_notebook("%load_ext nbchat", f"chat = %chat {room}")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS, headless=True
                )
                builds = [("this", ours)]
                if args.swap is not None:
                    builds.insert(0, ("swap", (args.swap / "widget.js").read_bytes()))
                for r in range(args.rounds):
                    for label, code in builds:
                        widget.write_bytes(code)
                        path = put_notebook(lab, f"notebooks/bench-heap-{r}-{label}.ipynb", cells)
                        snap = args.snapshot and r == args.rounds - 1
                        got = late_join(lab, browser, path, args.history, snap, args.reload)
                        heaps[label].append(got["after_mb"] - got["before_mb"])
                        if args.reload:
                            grown = got["reload_after_mb"] - got["reload_before_mb"]
                            heaps[f"{label} reloaded"].append(grown)
                        report(f"round {r + 1} {label}", got, args.save, args.top)
                browser.close()
        finally:
            widget.write_bytes(ours)
            loop.run(peer.leave())
            loop.close()
    finally:
        lab.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({k: [round(v, 2) for v in vs] for k, vs in heaps.items()}))


if __name__ == "__main__":
    main()
