"""The 10,000-message room, opened and scrolled in real JupyterLab + headless Chromium, this
tree beside a baseline tree (another checkout with its widget built) in the same run.

Each side gets its own JupyterLab (its ``src`` first on the server's and kernel's
PYTHONPATH, so its server extension, kernel widget and bundled ``widget.js``) and its own
Python peer holding a room of N messages. Then, alternating baseline / this tree for
``--rounds`` rounds, a fresh browser context (empty IndexedDB) opens a notebook running
``%chat`` in that room and measures:

- **open** (a late joiner): chat shown → newest message visible, data link open → all N
  held (the newest row's index is N-1), as bench/browser_latency.py does;
- **reload**: chat shown → newest visible again, from the local copy;
- **scroll**: from the bottom to the top of the Messages log, ``--step`` pixels of
  ``scrollTop`` each animation frame (a fast wheel): the intervals between
  ``requestAnimationFrame`` callbacks (p50 / p99 / max, how many over 16.7 and 33.3 ms)
  and the time until the oldest message's row is on screen at scroll position 0.

A benchmark, not a test: it prints the machine's load, a markdown table of medians over the
rounds with ratios (this tree / baseline) and JSON.

    git worktree add --detach /tmp/nbchat-base c760bbb
    ln -s $PWD/node_modules /tmp/nbchat-base/ && (cd /tmp/nbchat-base && npm run build)
    npm run build
    PYTHONPATH=src python bench/history_scroll.py --baseline /tmp/nbchat-base --rounds 3
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.browser_latency import ALL_HELD, PROBE, fill_room, pct  # noqa: E402
from bench.run import machine_busy  # noqa: E402
from tests.support.browser import CHROMIUM_ARGS, open_notebook, run_all  # noqa: E402
from tests.support.lab import Lab, make_lab  # noqa: E402
from tests.support.loop import BackgroundLoop  # noqa: E402
from tests.support.widgets import code_notebook, put_notebook  # noqa: E402

ROOM = "bench-big-room"

#: Page side: scroll the Messages log from the bottom to the top, `step` px a frame, timing
#: every animation frame; done when the oldest row is mounted at scrollTop 0.
SCROLL = """([step, limit]) => new Promise((resolve) => {
  const log = document.querySelector('[role=log][aria-label=Messages]');
  log.scrollTop = log.scrollHeight;
  const frames = [];
  let start = null, last = null;
  const top = () =>
    log.scrollTop === 0 && log.querySelector('.nbchat-row[data-row-index="0"]') !== null;
  const tick = (now) => {
    if (start === null) { start = now; last = now; }
    else { frames.push(now - last); last = now; }
    if (top() || frames.length >= limit) {
      resolve({ frames, total: now - start, reached: top(), height: log.scrollHeight });
      return;
    }
    log.scrollTop = Math.max(0, log.scrollTop - step);
    requestAnimationFrame(tick);
  };
  // Two frames at the bottom first, so the measured ones start from a settled page.
  requestAnimationFrame(() => requestAnimationFrame(tick));
})"""


def side_lab(tmp: Path, tree: Path) -> Lab:
    lab = make_lab(tmp, {"alive_timeout": 60.0})
    # The side's sources first: its server extension, kernel widget and built widget.js.
    lab.env["PYTHONPATH"] = os.pathsep.join([str(tree / "src"), str(tree)])
    lab.start()
    return lab


def fill(loop: BackgroundLoop, lab: Lab, size: int) -> Any:
    """A Python peer (this tree's) in the room with `size` messages; it stays to answer."""
    return fill_room(loop, lab, ROOM, size)


def one_round(
    browser: Any, lab: Lab, path: str, size: int, step: int, profile: Path | None = None
) -> dict[str, Any]:
    newest = f"history {size - 1:06d}"
    context = browser.new_context(
        permissions=["microphone", "camera"], viewport={"width": 1280, "height": 900}
    )
    context.add_init_script(PROBE)
    context.add_init_script(f"window.__probe.watch = [{json.dumps(newest)}];")
    page = context.new_page()
    result: dict[str, Any] = {"busy_before": machine_busy(1.0)}
    try:
        open_notebook(page, lab, path)
        cdp = None
        if profile is not None:  # the CDP sampling profiler from %chat to all held
            cdp = page.context.new_cdp_session(page)
            cdp.send("Profiler.enable")
            cdp.send("Profiler.setSamplingInterval", {"interval": 200})
            cdp.send("Profiler.start")
        run_all(page)
        held = page.evaluate(ALL_HELD, [newest, size])
        if cdp is not None and profile is not None:
            opened = profile.with_name(profile.name.replace("scroll-", "open-"))
            opened.write_text(json.dumps(cdp.send("Profiler.stop")["profile"]))
            cdp.detach()
        probe = page.evaluate("() => window.__probe")
        link = probe["opens"][0]
        seen = probe["rowIndex"][newest]["first"]
        result["open_newest_ms"] = seen - probe["widget"]
        result["open_all_after_link_ms"] = held - link
        time.sleep(1)  # let the page settle (the local copy is written in idle time)
        if profile is not None:  # the CDP sampling profiler around the scroll
            cdp = page.context.new_cdp_session(page)
            cdp.send("Profiler.enable")
            cdp.send("Profiler.setSamplingInterval", {"interval": 200})
            cdp.send("Profiler.start")
        scroll = page.evaluate(SCROLL, [step, 20_000])
        if cdp is not None and profile is not None:
            profile.write_text(json.dumps(cdp.send("Profiler.stop")["profile"]))
            cdp.detach()
        frames = scroll["frames"]
        result["scroll"] = {
            "reached_top": scroll["reached"],
            "frames": len(frames),
            "to_top_ms": scroll["total"],
            "p50_ms": pct(frames, 50),
            "p99_ms": pct(frames, 99),
            "max_ms": max(frames),
            # A frame on time is 16.7 ms (60 Hz) give or take a fraction of a ms.
            "over_16_7": sum(1 for f in frames if f > 17.5),
            "over_33_3": sum(1 for f in frames if f > 34.2),
            "height_px": scroll["height"],
        }
        page.reload()
        open_notebook(page, lab, path)
        run_all(page)
        page.wait_for_function(
            f"() => window.__probe.rowIndex[{json.dumps(newest)}] !== undefined", timeout=120_000
        )
        probe = page.evaluate("() => window.__probe")
        result["reload_newest_ms"] = probe["rowIndex"][newest]["first"] - probe["widget"]
    finally:
        context.close()
    result["busy_after"] = machine_busy(1.0)
    return result


def median(rounds: list[dict[str, Any]], key: str) -> float:
    values = []
    for r in rounds:
        value: Any = r
        for part in key.split("."):
            value = value[part]
        values.append(float(value))
    return statistics.median(values)


ROWS = [
    ("open (late joiner): chat shown → newest visible", "open_newest_ms", "ms"),
    ("open: link open → all 10,000 held", "open_all_after_link_ms", "ms"),
    ("reload: chat shown → newest visible (local copy)", "reload_newest_ms", "ms"),
    ("scroll bottom → top: time to the oldest message", "scroll.to_top_ms", "ms"),
    ("scroll: frames", "scroll.frames", ""),
    ("scroll: frame interval p50", "scroll.p50_ms", "ms"),
    ("scroll: frame interval p99", "scroll.p99_ms", "ms"),
    ("scroll: longest frame", "scroll.max_ms", "ms"),
    ("scroll: frames over 16.7 ms", "scroll.over_16_7", ""),
    ("scroll: frames over 33.3 ms", "scroll.over_33_3", ""),
]


def table(results: dict[str, list[dict[str, Any]]], size: int) -> str:
    lines = ["| what (median of rounds) | baseline | this tree | ratio |", "|---|---:|---:|---:|"]
    for label, key, unit in ROWS:
        base, now = median(results["baseline"], key), median(results["current"], key)
        ratio = f"{now / base:.2f}" if base else "—"
        what = label.replace("10,000", f"{size:,}")
        lines.append(f"| {what} | {base:,.1f} {unit} | {now:,.1f} {unit} | {ratio} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="a checkout, widget built")
    parser.add_argument("--history", type=int, default=10_000, help="messages in the room")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side")
    parser.add_argument("--step", type=int, default=1500, help="scrollTop pixels per frame")
    parser.add_argument(
        "--profile", type=Path, help="write each side's open and scroll CPU profiles here"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    for tree in (args.baseline, REPO):
        if not (tree / "src" / "nbchat" / "static" / "widget.js").is_file():
            sys.exit(f"{tree}: build its widget first (npm run build)")

    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="nbchat-bigroom-"))
    loop = BackgroundLoop()
    labs: dict[str, Lab] = {}
    peers: list[Any] = []
    results: dict[str, list[dict[str, Any]]] = {"baseline": [], "current": []}
    busy_start = machine_busy(2.0)
    try:
        paths = {}
        for side, tree in (("baseline", args.baseline.resolve()), ("current", REPO)):
            labs[side] = side_lab(tmp / side, tree)
            peers.append(fill(loop, labs[side], args.history))
            paths[side] = put_notebook(
                labs[side],
                "notebooks/bench-big-room.ipynb",
                code_notebook("%load_ext nbchat", f"chat = %chat {ROOM}"),
            )
            print(f"  {side}: room of {args.history} filled", file=sys.stderr, flush=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS, headless=True
            )
            for n in range(args.rounds):
                for side in ("baseline", "current") if n % 2 == 0 else ("current", "baseline"):
                    prof = None
                    if args.profile is not None:
                        args.profile.mkdir(parents=True, exist_ok=True)
                        prof = args.profile / f"scroll-{side}-{n + 1}.cpuprofile"
                    r = one_round(browser, labs[side], paths[side], args.history, args.step, prof)
                    results[side].append(r)
                    print(f"  round {n + 1} {side}: {json.dumps(r)}", file=sys.stderr, flush=True)
            browser.close()
    finally:
        for peer in peers:
            loop.run(peer.leave())
        loop.close()
        for lab in labs.values():
            lab.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    busy = [r[k] for side in results.values() for r in side for k in ("busy_before", "busy_after")]
    print(
        f"\nmachine {busy_start:.0%} busy at the start; during the rounds "
        f"{min(busy):.0%}–{max(busy):.0%} (median {statistics.median(busy):.0%}); "
        f"{args.rounds} rounds per side, alternating; scroll step {args.step} px/frame\n"
    )
    print(table(results, args.history))
    print()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
