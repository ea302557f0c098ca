"""A late joiner's signature checks in real headless Chromium, this tree beside a baseline
tree: how long 10,000 signed entries take from arrival to delivery to the log.

Isolates the receive path of issue 13's "link open → all 10,000 held" from what else moves
it (the Python sender, the data channel, the render, other processes): `js/authorship.ts` of
each tree is bundled with a small driver (esbuild), a page signs N entries as one author
once, cuts them into newest-first `history` frames of `--batch` (the first preceded by the
`certs` frame, as a real sender's answer is) and then, per round, a fresh receiving
`Authorship` gets every frame as its own task (JSON text parsed on arrival, as the data
channel delivers it), optionally `--gap-ms` apart. Each delivered frame costs `--work-ms` of
busy main thread, standing for what the page does with it (log merge, local copy, render).
Measured: first entries delivered, all delivered (ms after the first frame arrived).

Variants, alternating round by round: `unsigned` (this tree in a room without server keys:
no checks, as before signed entries), `serial` (the `--baseline` tree, main before the
pipelined checks: a frame's checks start after the previous frame is delivered, on the
page's thread), `here` (this tree, pipelined, the page's thread) and `worker` (this tree,
pipelined, the page's Worker). A benchmark, not a test.

    git worktree add --detach /tmp/nbchat-serial c51a62c
    ln -s $PWD/node_modules /tmp/nbchat-serial/
    python bench/verify_catchup.py --baseline /tmp/nbchat-serial --rounds 5 --work-ms 0 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DRIVER = (Path(__file__).parent / "verify_catchup_driver.js").read_text()

VARIANTS = {
    "unsigned": ("const UNSIGNED = true;", "verifier: undefined"),
    "serial": ("", "verifier: undefined"),
    "here": ('import { verifyHere } from "TREE/js/core/signing";', "verifier: verifyHere"),
    "worker": (
        # The Worker whatever the core count (the widget uses it from 4 cores up).
        'import { workerVerifier } from "TREE/js/verifier";\nconst forced = workerVerifier(64);',
        "verifier: forced",
    ),
}
SIGNED = {
    "serial": "const UNSIGNED = false;",
    "here": "const UNSIGNED = false;",
    "worker": "const UNSIGNED = false;",
}


def bundle(tree: Path, variant: str, out: Path) -> str:
    imports, option = VARIANTS[variant]
    source = (
        DRIVER.replace("VERIFIER_IMPORT", imports + "\n" + SIGNED.get(variant, ""))
        .replace("VERIFIER_OPTION", option)
        .replace("TREE", str(tree))
    )
    entry = out / f"{variant}.ts"
    entry.write_text(source)
    target = out / f"{variant}.js"
    esbuild = ROOT / "node_modules" / ".bin" / "esbuild"
    subprocess.run(
        [str(esbuild), str(entry), "--bundle", "--format=iife", f"--outfile={target}"],
        check=True,
        capture_output=True,
    )
    return target.read_text()


def main() -> None:
    from playwright.sync_api import sync_playwright
    from tests.support.browser import CHROMIUM_ARGS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--baseline", type=Path, required=True, help="a checkout (node_modules linked)"
    )
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100, help="entries per history frame")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work-ms", type=float, nargs="+", default=[0.0, 3.0])
    parser.add_argument("--gap-ms", type=float, default=0.0, help="between frame arrivals")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        scripts = {
            "unsigned": bundle(ROOT, "unsigned", Path(tmp)),
            "serial": bundle(args.baseline.resolve(), "serial", Path(tmp)),
            "here": bundle(ROOT, "here", Path(tmp)),
            "worker": bundle(ROOT, "worker", Path(tmp)),
        }
        browser = pw.chromium.launch(
            executable_path=os.environ.get("NBCHAT_CHROMIUM", "/usr/bin/chromium"),
            args=CHROMIUM_ARGS,
        )
        pages = {}
        for name, script in scripts.items():
            page = browser.new_page()
            # A secure context (WebCrypto) without a server: localhost, answered here.
            page.route(
                "http://localhost:9/**",
                lambda route: route.fulfill(body="<html></html>", content_type="text/html"),
            )
            page.goto("http://localhost:9/")
            page.add_script_tag(content=script)
            pages[name] = page
        results: dict[str, dict[float, list[dict[str, Any]]]] = {
            v: {w: [] for w in args.work_ms} for v in pages
        }
        for _ in range(args.rounds):
            for work in args.work_ms:
                for name, page in pages.items():
                    r = page.evaluate(
                        "(a) => window.catchup(a)",
                        {
                            "n": args.entries,
                            "batch": args.batch,
                            "workMs": work,
                            "gapMs": args.gap_ms,
                        },
                    )
                    print(f"  {name} work {work} ms: {json.dumps(r)}", file=sys.stderr)
                    results[name][work].append(r)
        browser.close()

    lines = [
        f"{args.entries:,} entries in frames of {args.batch}, {args.rounds} rounds, "
        f"frames {args.gap_ms} ms apart; medians (ms after the first frame arrived)",
        "",
        "| work per frame | what | not signed | signed, checked in series (baseline) "
        "| pipelined, page thread | pipelined, Worker | ratios to not signed |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for work in args.work_ms:
        for key, label in (("first_ms", "first delivered"), ("all_ms", "all delivered")):
            med = {v: statistics.median(r[key] for r in results[v][work]) for v in pages}
            base = med["unsigned"]
            ratios = " / ".join(f"{med[v] / base:.2f}" for v in ("serial", "here", "worker"))
            lines.append(
                f"| {work:g} ms | {label} | {base:,.0f} | {med['serial']:,.0f} "
                f"| {med['here']:,.0f} | {med['worker']:,.0f} | {ratios} |"
            )
    print("\n".join(lines))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
