"""What people feel, in real JupyterLab + real headless Chromium: nbchat's chat latency,
history and memory, measured the way a user meets them.

- **typed → other's log**: user A types a message and presses Enter; the time until the
  text is in user B's Messages log (p50 / p99), and until A sees its own (p50). Split into
  A's data-channel send → B's data-channel receive, and B's receive → B's DOM. Times are
  ``performance.timeOrigin + performance.now()`` in each page (one browser, one clock).
- **late joiner**: a Python peer fills a room with N messages (default 10,000); a new user
  opens a notebook running ``%chat`` in that room; time from the data link opening to the
  newest message visible, and to all N held (the newest row's index is N-1); also when the
  last history frame arrived, and the local copy's IndexedDB ``put``s before all was held
  (and their time on the page's thread).
- **reload**: the same user reloads; time from the widget appearing to the newest message
  visible (from the local copy), and whether that was before the link to a peer opened.
- **JS heap** (CDP ``Runtime.getHeapUsage`` after a GC): the page before ``%chat`` and
  with the N messages loaded.

With ``--jupyter-chat VENV`` it measures jupyterlab-chat the same way, side by side, in a
separate JupyterLab started from VENV (made with ``python -m venv VENV && VENV/bin/pip
install jupyterlab jupyterlab-chat==0.25.3``; without jupyter-collaboration that is its
default, WebSocket mode): the typed message in the other user's chat, the own message, a
``.chat`` file of N messages opened (chat panel shown → newest in the DOM) and reloaded,
and the page's JS heap.

A benchmark, not a test: it prints a markdown table and JSON. ``--typed-only`` runs only
the typed-message rows, ``--history-only`` only the late joiner and reload rows;
``--profile DIR`` runs CDP's sampling profiler in both pages while typing and prints, per
message, the functions' self and total time inside the measured spans (sender: Enter →
own message shown; receiver: frame received → shown), saving the ``.cpuprofile`` files
in DIR (read them with a build that keeps names, docs/benchmarks.md).

    PYTHONPATH=src python bench/browser_latency.py --messages 200 --history 10000 \\
        [--jupyter-chat /tmp/jchat-venv]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.run import wait_for_quiet  # noqa: E402
from tests.support.browser import CHROMIUM_ARGS, open_and_run, open_notebook, run_all  # noqa: E402
from tests.support.lab import make_lab  # noqa: E402
from tests.support.loop import BackgroundLoop  # noqa: E402
from tests.support.widgets import api, code_notebook, message_box, put_notebook  # noqa: E402

#: Installed in every page before JupyterLab loads: records, in one epoch-ms clock, when a
#: marked text leaves or arrives on a data channel, when it first shows in the Messages
#: log, when Enter goes down, when a data channel opens and when the chat widget appears.
PROBE = r"""
(() => {
  const t = () => performance.timeOrigin + performance.now();
  const probe = (window.__probe = { sent: {}, recv: {}, dom: {}, keys: [], opens: [], widget: null,
                                    watch: [], rowIndex: {} });
  const decoder = new TextDecoder();
  const marks = (data) => {
    let text = data;
    if (typeof data !== 'string') { try { text = decoder.decode(data); } catch (e) { return []; } }
    const found = text.match(/bench-\d+/g);
    return found ? found : [];
  };
  const send = RTCDataChannel.prototype.send;
  RTCDataChannel.prototype.send = function (data) {
    const now = t();
    for (const m of marks(data)) if (!(m in probe.sent)) probe.sent[m] = now;
    return send.call(this, data);
  };
  const desc = Object.getOwnPropertyDescriptor(RTCDataChannel.prototype, 'onmessage');
  Object.defineProperty(RTCDataChannel.prototype, 'onmessage', {
    configurable: true,
    get() { return desc.get.call(this); },
    set(fn) {
      if (!this.__probed) {
        this.__probed = true;
        this.addEventListener('message', (e) => {
          const now = t();
          for (const m of marks(e.data)) if (!(m in probe.recv)) probe.recv[m] = now;
        });
        this.addEventListener('open', () => probe.opens.push(t()));
        if (this.readyState === 'open') probe.opens.push(t());
      }
      desc.set.call(this, fn);
    },
  });
  window.addEventListener('keydown', (e) => { if (e.key === 'Enter') probe.keys.push(t()); }, true);
  // Timed when the observer runs (right after the DOM change), and looking only at what was
  // added or changed: a document-wide query on every mutation cost ~0.5 ms a message here,
  // most of it before the time was taken.
  const LOG = '[role=log][aria-label=Messages]';
  const seenBody = (body, now) => {
    const text = body.textContent;
    const m = text.match(/^bench-\d+/);
    if (m && !(m[0] in probe.dom)) probe.dom[m[0]] = now;
    for (const w of probe.watch) {
      if (text.startsWith(w)) {
        const row = body.closest('.nbchat-row');
        const index = row ? Number(row.dataset.rowIndex) : -1;
        const seen = probe.rowIndex[w] || (probe.rowIndex[w] = { first: null, firstIndex: null });
        if (seen.first === null) { seen.first = now; seen.firstIndex = index; }
      }
    }
  };
  const scan = (records) => {
    const now = t();
    if (probe.widget === null) {
      if (document.querySelector(LOG) === null) return;
      probe.widget = now;
    }
    for (const r of records) {
      const nodes = r.type === 'characterData' ? [r.target.parentElement] : r.addedNodes;
      for (const node of nodes) {
        if (node === null || node.nodeType !== 1) continue;
        if (node.closest('.nbchat-message-body') !== null) {
          if (node.closest(LOG) !== null) seenBody(node.closest('.nbchat-message-body'), now);
          continue;
        }
        const bodies = node.querySelectorAll('.nbchat-message-body');
        if (bodies.length === 0) continue;
        if (node.closest(LOG) === null && node.querySelector(LOG) === null) continue;
        for (const body of bodies) seenBody(body, now);
      }
    }
  };
  const start = () => new MutationObserver(scan).observe(
    document.body, { subtree: true, childList: true, characterData: true });
  if (document.body) start(); else document.addEventListener('DOMContentLoaded', start);
})();
"""

#: Counts the local copy's IndexedDB writes (``put``) and their time on the page's thread
#: (IndexedDB clones each value there), and the last history frame's arrival: what competes
#: with a late joiner's catch-up, and when the sender was done.
CATCH_UP_PROBE = r"""
(() => {
  const t = () => performance.timeOrigin + performance.now();
  const c = (window.__catchup = { puts: 0, putMs: 0, lastFrame: null });
  const put = IDBObjectStore.prototype.put;
  IDBObjectStore.prototype.put = function (...args) {
    const a = performance.now();
    try { return put.apply(this, args); } finally { c.puts += 1; c.putMs += performance.now() - a; }
  };
  const add = RTCDataChannel.prototype.addEventListener;
  RTCDataChannel.prototype.addEventListener = function (type, fn, ...rest) {
    if (type === 'message') add.call(this, type, () => { c.lastFrame = t(); });
    return add.call(this, type, fn, ...rest);
  };
  const desc = Object.getOwnPropertyDescriptor(RTCDataChannel.prototype, 'onmessage');
  Object.defineProperty(RTCDataChannel.prototype, 'onmessage', { configurable: true,
    get() { return desc.get.call(this); },
    set(fn) {
      desc.set.call(this, fn && ((e) => { c.lastFrame = t(); return fn.call(this, e); }));
    } });
})();
"""

#: A page-side wait for the newest message's row to have index `n - 1` (all `n` held).
ALL_HELD = """([text, n]) => new Promise((resolve) => {
  const step = () => {
    for (const row of document.querySelectorAll('.nbchat-row')) {
      if (row.textContent.includes(text) && Number(row.dataset.rowIndex) === n - 1) {
        return resolve(performance.timeOrigin + performance.now());
      }
    }
    requestAnimationFrame(step);
  };
  step();
})"""


#: The jupyter-chat probe: the same clock; a marked text counts as shown when a node holding
#: it is added to the chat's messages (its list is not windowed: every message is in the DOM).
JCHAT_PROBE = r"""
(() => {
  const t = () => performance.timeOrigin + performance.now();
  const probe = (window.__probe = { dom: {}, keys: [], watch: [], seen: {}, widget: null });
  window.addEventListener('keydown', (e) => { if (e.key === 'Enter') probe.keys.push(t()); }, true);
  const inLog = (node) => {
    const el = node.nodeType === 1 ? node : node.parentElement;
    const log = '.jp-chat-messages-container';
    return el !== null && (el.closest(log) !== null || el.querySelector(log) !== null);
  };
  const check = (node) => {
    if (!inLog(node)) return;  // not the typed text in the input or a "writing" notice
    const text = node.textContent || '';
    if (text.indexOf('bench-') >= 0) {
      for (const m of text.match(/bench-\d+/g) || []) if (!(m in probe.dom)) probe.dom[m] = t();
    }
    for (const w of probe.watch) {
      if (!(w in probe.seen) && text.indexOf(w) >= 0) probe.seen[w] = t();
    }
  };
  const start = () => new MutationObserver((records) => {
    if (probe.widget === null && document.querySelector('.jp-chat-messages-container')) {
      probe.widget = t();
    }
    for (const r of records) {
      for (const n of r.addedNodes) check(n);
      if (r.type === 'characterData') check(r.target);
    }
  }).observe(document.body, { subtree: true, childList: true, characterData: true });
  if (document.body) start(); else document.addEventListener('DOMContentLoaded', start);
})();
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def heap_mb(page: Any) -> float:
    cdp = page.context.new_cdp_session(page)
    cdp.send("HeapProfiler.collectGarbage")
    used = cdp.send("Runtime.getHeapUsage")["usedSize"]
    cdp.detach()
    return used / 1e6


def start_profile(page: Any) -> Any:
    """CDP's sampling profiler on `page` (every 100 µs), started now."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Profiler.enable")
    cdp.send("Profiler.setSamplingInterval", {"interval": 100})
    cdp.send("Profiler.start")
    return cdp


#: Run in a page just before the profiler stops: a named 30 ms busy loop whose first sample
#: ties the profile's clock to the page's (`performance.timeOrigin + performance.now()`).
CALIBRATE = """() => {
  const t = () => performance.timeOrigin + performance.now();
  const __nbchatCalibrate = () => { const t0 = t(); while (t() - t0 < 30); return t0; };
  return __nbchatCalibrate();
}"""


def stop_profile(
    page: Any, cdp: Any, out: Path, windows: list[tuple[float, float]], top: int = 30
) -> list[tuple[str, float, float]]:
    """Stop the profiler and save the `.cpuprofile` (open it in Chrome DevTools); return the
    `top` functions by self time and by total time, in ms per message, counting only samples
    inside `windows` (page-clock intervals: key down or frame received → in the DOM)."""
    mark = page.evaluate(CALIBRATE)
    profile = cdp.send("Profiler.stop")["profile"]
    cdp.detach()
    out.write_text(json.dumps(profile))
    nodes = {n["id"]: n for n in profile["nodes"]}
    parent = {c: n["id"] for n in profile["nodes"] for c in n.get("children", [])}

    def name(node: dict[str, Any]) -> str:
        frame = node["callFrame"]
        where = frame["url"].rsplit("/", 1)[-1].split("?")[0][:24]
        return f"{frame['functionName'] or '(anonymous)'} @ {where}:{frame['lineNumber'] + 1}"

    times, at = [], profile["startTime"]
    for delta in profile["timeDeltas"]:
        at += delta
        times.append(at / 1000)  # ms, profile clock
    offset = None
    for when, sample in zip(times, profile["samples"], strict=True):
        node: int | None = sample
        while node is not None and nodes[node]["callFrame"]["functionName"] != "__nbchatCalibrate":
            node = parent.get(node)
        if node is not None:
            offset = when - mark
            break
    if offset is None:
        return []
    spans = sorted((start + offset, end + offset) for start, end in windows)
    by_self: dict[str, float] = {}
    by_total: dict[str, float] = {}
    span = 0
    for i, (when, sample) in enumerate(zip(times, profile["samples"], strict=True)):
        while span < len(spans) and spans[span][1] < when:
            span += 1
        if span == len(spans):
            break
        if when < spans[span][0]:
            continue
        ms = (times[i + 1] - when) if i + 1 < len(times) else 0.0
        key = name(nodes[sample])
        by_self[key] = by_self.get(key, 0.0) + ms
        seen: set[str] = set()
        walk: int | None = sample
        while walk is not None:
            key = name(nodes[walk])
            if key not in seen:  # recursion counts once
                seen.add(key)
                by_total[key] = by_total.get(key, 0.0) + ms
            walk = parent.get(walk)
    n = max(1, len(windows))
    ranked = sorted(by_self.items(), key=lambda kv: -kv[1])[:top]
    by_incl = sorted(by_total.items(), key=lambda kv: -kv[1])[: top * 2]
    return [(k, v / n, by_total[k] / n) for k, v in ranked] + [
        ("— by total —", 0.0, 0.0),
        *((k, by_self.get(k, 0.0) / n, v / n) for k, v in by_incl),
    ]


def typed_latency(
    lab: Any, browser: Any, count: int, profile: Path | None = None
) -> dict[str, Any]:
    path = put_notebook(
        lab,
        "notebooks/bench-typed.ipynb",
        code_notebook("%load_ext nbchat", "chat = %chat bench-typed"),
    )
    pages = []
    for _ in range(2):
        context = browser.new_context(
            permissions=["microphone", "camera"], viewport={"width": 1280, "height": 900}
        )
        context.add_init_script(PROBE)
        pages.append(context.new_page())
    a, b = pages
    for page in pages:
        open_and_run(page, lab, path)
    for page in pages:
        page.get_by_text("Connected to 1 peer").wait_for(timeout=60_000)
    box = message_box(a)
    box.wait_for(state="visible")
    profilers: list[Any] = []
    for i in range(count + 10):  # the first 10 warm up
        if i == 10 and profile is not None:
            profilers = [start_profile(a), start_profile(b)]
        marker = f"bench-{i}"
        box.fill(marker)
        box.press("Enter")
        b.wait_for_function(f"() => '{marker}' in window.__probe.dom", timeout=30_000)
        a.wait_for_function(f"() => '{marker}' in window.__probe.dom", timeout=30_000)
        time.sleep(0.05)  # a human pace, and let both pages go idle between messages
    pa = a.evaluate("() => window.__probe")
    pb = b.evaluate("() => window.__probe")
    keys = pa["keys"][-(count + 10) :]
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        marks = [f"bench-{i}" for i in range(10, count + 10)]
        spans = {
            "sender: Enter → own message in the DOM": (
                a,
                [(keys[i], pa["dom"][m]) for i, m in enumerate(marks, 10)],
            ),
            "receiver: frame received → in the DOM": (
                b,
                [(pb["recv"][m], pb["dom"][m]) for m in marks],
            ),
        }
        for (what, (page, windows)), cdp in zip(spans.items(), profilers, strict=True):
            file = profile / f"{what.split(':')[0]}.cpuprofile"
            print(f"\n{what}: ms per message, self / total (samples in those spans only)")
            for fn, own, total in stop_profile(page, cdp, file, windows):
                print(f"  {own:7.3f} {total:7.3f}  {fn}")
    rows: dict[str, list[float]] = {"to_other": [], "own": [], "channel": [], "recv_to_dom": []}
    for i in range(10, count + 10):
        m = f"bench-{i}"
        rows["to_other"].append(pb["dom"][m] - keys[i])
        rows["own"].append(pa["dom"][m] - keys[i])
        rows["channel"].append(pb["recv"][m] - pa["sent"][m])
        rows["recv_to_dom"].append(pb["dom"][m] - pb["recv"][m])
    for page in pages:
        page.context.close()
    return {k: {"p50": pct(v, 50), "p99": pct(v, 99), "max": max(v)} for k, v in rows.items()}


def fill_room(loop: BackgroundLoop, lab: Any, room: str, size: int) -> Any:
    """A Python peer in ``room`` that has said ``size`` chat-line-sized messages; it stays
    (on ``loop``) to answer whoever joins."""
    from nbchat.peer import ChatPeer

    peer = ChatPeer(lab.url, room, token=lab.token)
    loop.run(peer.join())

    async def send_all() -> None:
        for i in range(size):
            await peer.send(
                f"history {i:06d} with some *markdown* in it, about as long as a chat line"
            )

    loop.run(send_all(), timeout=900)
    return peer


def history(lab: Any, browser: Any, size: int) -> dict[str, Any]:
    room = "bench-history"
    loop = BackgroundLoop()
    result: dict[str, Any] = {}
    peer = fill_room(loop, lab, room, size)
    try:
        newest = f"history {size - 1:06d}"
        path = put_notebook(
            lab,
            "notebooks/bench-history.ipynb",
            code_notebook("%load_ext nbchat", f"chat = %chat {room}"),
        )
        context = browser.new_context(
            permissions=["microphone", "camera"], viewport={"width": 1280, "height": 900}
        )
        context.add_init_script(PROBE)
        context.add_init_script(CATCH_UP_PROBE)
        context.add_init_script(f"window.__probe.watch = [{json.dumps(newest)}];")
        page = context.new_page()
        open_notebook(page, lab, path)
        result["heap_before_chat_mb"] = heap_mb(page)
        run_all(page)
        held = page.evaluate(ALL_HELD, [newest, size])
        probe = page.evaluate("() => window.__probe")
        link = probe["opens"][0]
        result["join_newest_after_link_ms"] = probe["rowIndex"][newest]["first"] - link
        result["join_newest_first_index"] = probe["rowIndex"][newest]["firstIndex"]
        result["join_all_after_link_ms"] = held - link
        catchup = page.evaluate("() => window.__catchup")
        result["join_last_frame_after_link_ms"] = (catchup["lastFrame"] or link) - link
        result["join_idb_puts_before_all_held"] = catchup["puts"]
        result["join_idb_put_ms_before_all_held"] = round(catchup["putMs"], 1)
        result["join_widget_to_link_ms"] = link - probe["widget"]
        time.sleep(2)  # let the local copy be written and the page settle
        result["heap_with_history_mb"] = heap_mb(page)

        page.reload()
        open_notebook(page, lab, path)
        run_all(page)
        page.wait_for_function(
            f"() => window.__probe.rowIndex[{json.dumps(newest)}] !== undefined", timeout=60_000
        )
        page.get_by_text("Connected to 1 peer").wait_for(timeout=60_000)
        probe = page.evaluate("() => window.__probe")
        seen = probe["rowIndex"][newest]["first"]
        result["reload_newest_after_widget_ms"] = seen - probe["widget"]
        result["reload_newest_before_link"] = not probe["opens"] or seen < probe["opens"][0]
        result["reload_link_after_widget_ms"] = (
            probe["opens"][0] - probe["widget"] if probe["opens"] else None
        )
        context.close()
    finally:
        loop.run(peer.leave())
        loop.close()
    return result


def jchat_lab(venv: Path, tmp: Path) -> Any:
    """A JupyterLab from ``venv`` (with jupyterlab-chat), isolated like the test Lab."""
    lab = make_lab(tmp)
    python = sys.executable
    sys.executable = str(venv / "bin" / "python")  # Lab.start runs `sys.executable -m jupyterlab`
    try:
        lab.start()
    finally:
        sys.executable = python
    return lab


def jchat_contents(lab: Any, path: str, text: str) -> None:
    api(lab, "PUT", f"api/contents/{path}", {"type": "file", "format": "text", "content": text})


def new_page(browser: Any, probe: str, *scripts: str) -> Any:
    context = browser.new_context(
        permissions=["microphone", "camera"], viewport={"width": 1280, "height": 900}
    )
    for script in (probe, *scripts):
        context.add_init_script(script)
    return context.new_page()


def jchat_typed(lab: Any, browser: Any, count: int) -> dict[str, Any]:
    jchat_contents(lab, "bench-typed.chat", json.dumps({"messages": [], "users": {}}))
    a, b = new_page(browser, JCHAT_PROBE), new_page(browser, JCHAT_PROBE)
    for page in (a, b):
        page.goto(lab.notebook_url("bench-typed.chat"))
    for page in (a, b):
        page.locator(".jp-chat-input-container textarea").first.wait_for(timeout=60_000)
    box = a.locator(".jp-chat-input-container textarea").first
    rows: dict[str, list[float]] = {"to_other": [], "own": []}
    for i in range(count + 10):  # the first 10 warm up
        marker = f"bench-{i}"
        box.fill(marker)
        box.press("Enter")
        b.wait_for_function(f"() => '{marker}' in window.__probe.dom", timeout=30_000)
        a.wait_for_function(f"() => '{marker}' in window.__probe.dom", timeout=30_000)
        time.sleep(0.05)
    pa, pb = a.evaluate("() => window.__probe"), b.evaluate("() => window.__probe")
    keys = pa["keys"][-(count + 10) :]
    for i in range(10, count + 10):
        rows["to_other"].append(pb["dom"][f"bench-{i}"] - keys[i])
        rows["own"].append(pa["dom"][f"bench-{i}"] - keys[i])
    for page in (a, b):
        page.context.close()
    return {k: {"p50": pct(v, 50), "p99": pct(v, 99), "max": max(v)} for k, v in rows.items()}


def jchat_history(lab: Any, browser: Any, size: int) -> dict[str, Any]:
    user = {"username": "bench", "name": "Bench", "display_name": "Bench", "initials": "B"}
    start = time.time() - size
    messages = [
        {
            "type": "msg",
            "id": f"bench-history-{i}",
            "sender": "bench",
            "time": start + i,
            "raw_time": False,
            "body": f"history {i:06d} with some *markdown*, as long as a chat line",
        }
        for i in range(size)
    ]
    content = json.dumps({"messages": messages, "users": {"bench": user}})
    jchat_contents(lab, "bench-history.chat", content)
    newest = f"history {size - 1:06d}"
    page = new_page(browser, JCHAT_PROBE, f"window.__probe.watch = [{json.dumps(newest)}];")
    result: dict[str, Any] = {}
    for phase in ("open", "reload"):
        if phase == "open":
            page.goto(lab.notebook_url("bench-history.chat"))
        else:
            page.reload()
        seen = f"() => {json.dumps(newest)} in window.__probe.seen"
        page.wait_for_function(seen, timeout=600_000)
        probe = page.evaluate("() => window.__probe")
        origin = page.evaluate("() => performance.timeOrigin")
        result[f"{phase}_newest_after_widget_ms"] = probe["seen"][newest] - probe["widget"]
        result[f"{phase}_newest_after_navigation_ms"] = probe["seen"][newest] - origin
        time.sleep(2)
        result[f"{phase}_heap_mb"] = heap_mb(page)
    page.context.close()
    return result


def table(typed: dict[str, Any], hist: dict[str, Any], size: int, jchat: dict[str, Any]) -> str:
    def pair(row: dict[str, float]) -> str:
        return f"{row['p50']:.1f} / {row['p99']:.1f} ms"

    heap0, heap1 = hist["heap_before_chat_mb"], hist["heap_with_history_mb"]
    where = "before" if hist["reload_newest_before_link"] else "after"
    jt, jh = jchat.get("typed"), jchat.get("history")
    widget_to_newest = hist["join_widget_to_link_ms"] + hist["join_newest_after_link_ms"]
    rows = [
        (
            "A presses Enter → text in B's Messages log, p50 / p99",
            pair(typed["to_other"]),
            pair(jt["to_other"]) if jt else "",
        ),
        (
            "A presses Enter → A sees its own message, p50 / p99",
            pair(typed["own"]),
            pair(jt["own"]) if jt else "",
        ),
        ("↳ data channel A→B, p50 / p99", pair(typed["channel"]), ""),
        ("↳ frame received → in B's DOM, p50 / p99", pair(typed["recv_to_dom"]), ""),
        (
            f"late joiner, {size:,} messages: chat shown → newest visible",
            f"{widget_to_newest:.0f} ms (link open after {hist['join_widget_to_link_ms']:.0f} ms)",
            f"{jh['open_newest_after_widget_ms']:.0f} ms" if jh else "",
        ),
        (
            "↳ link open → newest visible",
            f"{hist['join_newest_after_link_ms']:.0f} ms "
            f"(holding {hist['join_newest_first_index'] + 1} messages then)",
            "",
        ),
        (f"↳ link open → all {size:,} held", f"{hist['join_all_after_link_ms']:.0f} ms", ""),
        (
            "reload: chat shown → newest visible",
            f"{hist['reload_newest_after_widget_ms']:.0f} ms from the local copy ({where} the "
            f"link opened, {hist['reload_link_after_widget_ms']:.0f} ms after the chat showed)",
            f"{jh['reload_newest_after_widget_ms']:.0f} ms" if jh else "",
        ),
        (
            f"JS heap, whole page with {size:,} messages (nbchat: before `%chat` → after)",
            f"{heap0:.1f} → {heap1:.1f} MB (+{heap1 - heap0:.1f})",
            f"{jh['open_heap_mb']:.1f} MB" if jh else "",
        ),
    ]
    head = ["| what | nbchat | jupyter-chat 0.25.3 |", "|---|---|---|"]
    return "\n".join([*head, *(f"| {a} | {b} | {c} |" for a, b, c in rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200, help="typed messages timed")
    parser.add_argument("--history", type=int, default=10_000, help="messages in the big room")
    parser.add_argument("--jupyter-chat", type=Path, help="a venv with jupyterlab-chat")
    parser.add_argument(
        "--quiet", type=float, default=0.5, help="wait until the machine is this idle"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="profile both pages (CDP) while typing; .cpuprofile files into this folder",
    )
    parser.add_argument(
        "--typed-only", action="store_true", help="only the typed-message rows (no history)"
    )
    parser.add_argument(
        "--history-only", action="store_true", help="only the late joiner and reload rows"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")

    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="nbchat-bench-"))
    lab = make_lab(tmp, {"alive_timeout": 30.0})
    lab.start()
    try:
        busy = wait_for_quiet(args.quiet, 120)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS, headless=True
            )
            if args.history_only:
                hist = history(lab, browser, args.history)
                browser.close()
                lab.stop()
                print(f"\nmachine {busy:.0%} busy before the run")
                print(json.dumps({"history": hist}, indent=1))
                return
            typed = typed_latency(lab, browser, args.messages, args.profile)
            if args.typed_only:
                browser.close()
                lab.stop()
                print(f"\nmachine {busy:.0%} busy before the run; {args.messages} typed messages")
                print(json.dumps({"typed": typed}, indent=1))
                return
            hist = history(lab, browser, args.history)
            lab.stop()
            jchat: dict[str, Any] = {}
            if args.jupyter_chat is not None:
                other = jchat_lab(args.jupyter_chat, tmp / "jupyter-chat")
                try:
                    wait_for_quiet(args.quiet, 120)
                    jchat["typed"] = jchat_typed(other, browser, args.messages)
                    jchat["history"] = jchat_history(other, browser, args.history)
                finally:
                    other.stop()
            browser.close()
    finally:
        lab.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nmachine {busy:.0%} busy before the run; {args.messages} typed messages\n")
    print(table(typed, hist, args.history, jchat))
    print()
    print(json.dumps({"typed": typed, "history": hist, "jupyter_chat": jchat}, indent=1))


if __name__ == "__main__":
    main()
