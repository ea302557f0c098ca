"""Real JupyterLab + real headless Chromium (Debian's ``chromium``) for end-to-end tests.

- ``lab``: one JupyterLab server per test session (subprocess, isolated dirs, a base
  URL with a space in it to catch escaping bugs, the repo's ``notebooks/`` copied into
  its root as ``notebooks/``).
- ``browser``: one Chromium per session; ``new_user()`` gives a fresh browser context
  = a fresh Jupyter identity, with the permissions WebRTC needs in a loopback sandbox.
- ``bg``: an asyncio loop on a thread for Python peers beside the browsers.

What tests call (``open_notebook``, ``run_all``, ``open_and_run``) is in
``tests/support/browser.py``.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from tests.support.browser import ARTIFACTS, CHROMIUM_ARGS
from tests.support.lab import Lab, make_lab
from tests.support.loop import BackgroundLoop


@pytest.fixture
def bg() -> Iterator[BackgroundLoop]:
    """An asyncio loop on a thread, for Python peers beside the (sync) browser tests."""
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    server = make_lab(tmp_path_factory.mktemp("lab"), {"alive_timeout": 8.0})
    server.start()
    yield server
    server.stop()
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(server.log_path, ARTIFACTS / "lab.log")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is required: apt-get install -y chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def new_user(browser: Browser) -> Iterator[Callable[..., Page]]:
    """Factory: ``new_user()`` → a Page in a fresh context (a new Jupyter identity)."""
    contexts: list[BrowserContext] = []

    def _new_user(color_scheme: str = "light", bypass_csp: bool = False) -> Page:
        context = browser.new_context(
            bypass_csp=bypass_csp,
            permissions=["microphone", "camera"],
            viewport={"width": 1280, "height": 900},
            color_scheme=color_scheme,  # type: ignore[arg-type]
        )
        context.set_default_timeout(30_000)
        contexts.append(context)
        return context.new_page()

    yield _new_user
    for context in contexts:
        try:
            context.close()
        except Exception:  # noqa: BLE001 - a test may already have closed it
            pass


@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """Replace pytest-jupyter's autouse loop: browser tests are sync, and its loop would
    otherwise be Playwright's own running loop, which it then tries to close."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()
