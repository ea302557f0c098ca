"""Files peer to peer: how fast a shared file travels, browser → browser, browser → Python
peer, and Python peer → Python peer.

    python bench/file_transfer.py [--sizes 10,40] [--runs 3]

Starts a JupyterLab (tests/support/lab.py) and headless Chromium (Debian's ``chromium``),
like the end-to-end tests. A browser user drops a file on the chat; the time is from the
drop to the other user's card saying "Received" (every part in, SHA-256 checked, blob URL
made), so it includes hashing on both sides. Prints a markdown table (median of runs).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402
from tests.e2e.test_rich import DROP  # noqa: E402
from tests.support.browser import CHROMIUM_ARGS, open_and_run  # noqa: E402
from tests.support.lab import make_lab  # noqa: E402
from tests.support.loop import BackgroundLoop  # noqa: E402
from tests.support.widgets import messages, room_notebook, users  # noqa: E402

from nbchat.peer import ChatPeer  # noqa: E402

MB = 1_000_000


#: In the receiver's page: the wall-clock ms at which the card of ``name`` turned complete.
WATCH_COMPLETE = """(name) => new Promise((resolve) => new MutationObserver((_m, observer) => {
    const card = document.querySelector(`[role=group][aria-label="File ${name}"]`);
    if (card && card.dataset.state === 'complete') { observer.disconnect(); resolve(Date.now()); }
}).observe(document.body, {subtree: true, childList: true, attributes: true}))"""


def browser_to_browser(a: Page, b: Page, size: int, name: str) -> float:
    """Seconds from the card's post (its message time, after the sender hashed the file) to
    the receiver's card turning complete (every part in, SHA-256 checked)."""
    payload = base64.b64encode(os.urandom(size)).decode()
    b.evaluate("(name) => { window.__done = null; }", name)
    b.evaluate(f"(name) => {{ ({WATCH_COMPLETE})(name).then((t) => window.__done = t); }}", name)
    a.evaluate(DROP, [payload, name, "application/octet-stream"])
    card = messages(b).get_by_role("group", name=f"File {name}")
    expect(card).to_have_attribute("data-state", "complete", timeout=300_000)
    b.wait_for_function("() => window.__done !== null")
    done = b.evaluate("() => window.__done")
    posted = card.locator("xpath=ancestor::*[@role='article']").locator("time").first
    sent = b.evaluate("(t) => Date.parse(t.getAttribute('datetime'))", posted.element_handle())
    return (done - sent) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,40", help="file sizes in MB")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(float(s) * MB) for s in args.sizes.split(",")]
    rows: list[tuple[str, int, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        lab = make_lab(Path(tmp))
        lab.start()
        bg = BackgroundLoop()
        try:
            with sync_playwright() as p:
                chromium = p.chromium.launch(
                    executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS, headless=True
                )
                contexts = [
                    chromium.new_context(permissions=["microphone", "camera"]) for _ in range(2)
                ]
                a, b = (c.new_page() for c in contexts)
                path = room_notebook(lab, "bench-files", "bench-files")
                for page in (a, b):
                    open_and_run(page, lab, path)
                for page in (a, b):
                    expect(users(page)).to_have_count(2, timeout=60_000)
                for size in sizes:
                    times = [
                        browser_to_browser(a, b, size, f"b2b-{size}-{run}.bin")
                        for run in range(args.runs)
                    ]
                    rows.append(("browser → browser", size, statistics.median(times)))

                peer = ChatPeer(lab.url, "bench-files", token=lab.token)
                bg.run(peer.join())
                expect(users(a)).to_have_count(3, timeout=60_000)
                for size in sizes:
                    times = []
                    for run in range(args.runs):
                        name = f"b2p-{size}-{run}.bin"
                        started = time.perf_counter()
                        a.evaluate(DROP, [base64.b64encode(os.urandom(size)).decode(), name, ""])

                        async def arrived(name: str = name) -> None:
                            while not any(f.name == name for f in peer.files.values()):
                                await asyncio.sleep(0.005)

                        bg.run(arrived(), timeout=300)
                        times.append(time.perf_counter() - started)
                    rows.append(("browser → Python peer", size, statistics.median(times)))
                bg.run(peer.leave())
                chromium.close()

            async def python_pair(size: int) -> float:
                async with (
                    ChatPeer(lab.url, "bench-py", token=lab.token) as x,
                    ChatPeer(lab.url, "bench-py", token=lab.token) as y,
                ):
                    await x.wait_for_peers(1)
                    await y.wait_for_peers(1)
                    source = Path(tmp) / "bench.bin"
                    source.write_bytes(os.urandom(size))
                    started = time.perf_counter()
                    card = await x.send_file(source)
                    await y.wait_file(card["id"], timeout=300)
                    return time.perf_counter() - started

            for size in sizes:
                times = [bg.run(python_pair(size), timeout=400) for _ in range(args.runs)]
                rows.append(("Python peer → Python peer", size, statistics.median(times)))
        finally:
            bg.close()
            lab.stop()
    print("| path | file | time (median) | throughput |")
    print("|---|---:|---:|---:|")
    for label, size, seconds in rows:
        print(
            f"| {label} | {size / MB:.0f} MB | {seconds:.2f} s | {size / MB / seconds:.1f} MB/s |"
        )


if __name__ == "__main__":
    main()
