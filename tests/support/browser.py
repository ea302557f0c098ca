"""Driving JupyterLab in headless Chromium: the flags, opening a notebook and running it."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page
from tests.support.lab import Lab

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


KERNEL_READY = """() => {
    const app = window.jupyterapp;
    const widget = app && app.shell && app.shell.currentWidget;
    const kernel = widget && widget.sessionContext && widget.sessionContext.session
        && widget.sessionContext.session.kernel;
    return Boolean(kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle');
}"""


def open_notebook(page: Page, lab: Lab, path: str, app: str = "lab") -> None:
    """Log in with the token and open ``path``; wait until this page is connected to its
    (possibly shared) kernel and the kernel is idle. Running cells before that makes
    JupyterLab start a new kernel that replaces the one another user shares."""
    page.goto(lab.notebook_url(path, app))
    page.locator(".jp-Notebook").first.wait_for(timeout=60_000)
    page.wait_for_function(KERNEL_READY, timeout=60_000)


def run_all(page: Page) -> None:
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")


def open_and_run(page: Page, lab: Lab, path: str) -> None:
    """Open ``path`` (waiting for its kernel, see :func:`open_notebook`) and run every cell."""
    open_notebook(page, lab, path)
    run_all(page)
