"""What e2e tests share about the chat as a user sees it: notebooks on the test Lab,
kernels, and locators for the widget's parts."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from jupyter_client import BlockingKernelClient
from playwright.sync_api import Locator, Page, expect
from tests.support.lab import REPO, Lab

DEMO = REPO / "notebooks" / "demo.ipynb"
DOCS = REPO / "docs"
SLOW = 60_000


def api(lab: Lab, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"{lab.url}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {lab.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def put_notebook(lab: Lab, path: str, notebook: dict[str, Any]) -> str:
    api(
        lab,
        "PUT",
        f"api/contents/{path}",
        {"type": "notebook", "format": "json", "content": notebook},
    )
    return path


def code_notebook(*sources: str) -> dict[str, Any]:
    demo = json.loads(DEMO.read_text())
    cells = [
        {"cell_type": "code", "metadata": {}, "source": s, "outputs": [], "execution_count": None}
        for s in sources
    ]
    return {**demo, "cells": cells}


def kernel_client(lab: Lab, path: str) -> BlockingKernelClient:
    """A client on the kernel behind ``path``'s session (shared by every page that opened it)."""
    sessions = api(lab, "GET", "api/sessions")
    kernel_id = next(s["kernel"]["id"] for s in sessions if s["path"] == path)
    client = BlockingKernelClient(
        connection_file=str(lab.root / "home" / "runtime" / f"kernel-{kernel_id}.json")
    )
    client.load_connection_file()
    client.start_channels()
    client.wait_for_ready(timeout=30)
    return client


def kernel_eval(client: BlockingKernelClient, expression: str) -> Any:
    """Evaluate ``expression`` in the kernel and return its JSON value."""
    outputs: list[dict[str, Any]] = []
    reply = client.execute_interactive(
        f"import json as _json\nprint(_json.dumps({expression}))",
        timeout=30,
        output_hook=outputs.append,
    )
    assert reply["content"]["status"] == "ok", reply["content"]
    return json.loads(
        "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
    )


def users(page: Page) -> Locator:
    return page.get_by_role("list", name="Users").get_by_role("listitem")


def messages(page: Page) -> Locator:
    return page.get_by_role("log", name="Messages")


def message_box(page: Page) -> Locator:
    return page.get_by_role("textbox", name="Message")


def say(page: Page, text: str) -> None:
    box = message_box(page)
    expect(box).to_be_enabled(timeout=SLOW)
    box.fill(text)
    box.press("Enter")
    expect(box).to_have_value("")


def own_name(page: Page) -> str:
    me = users(page).filter(has_text="(you)")
    expect(me).to_have_count(1, timeout=SLOW)
    return me.locator(".nbchat-user-name").inner_text().strip()


def bodies(page: Page) -> list[str]:
    return [t.strip() for t in messages(page).locator(".nbchat-message-body").all_inner_texts()]


def article(page: Page, author: str, text: str) -> Locator:
    """A message in the page's log from ``author`` whose text contains ``text``."""
    return (
        messages(page).get_by_role("article", name=f"Message from {author}").filter(has_text=text)
    )


def connected(page: Page, peers: int = 1, present: int | None = None) -> None:
    """Wait until the page is linked to ``peers`` peers (and, if given, lists ``present`` users)."""
    if present is not None:
        expect(users(page)).to_have_count(present, timeout=SLOW)
    expect(page.get_by_role("status", name="Chat status")).to_have_text(
        f"Connected to {peers} {'peer' if peers == 1 else 'peers'}", timeout=SLOW
    )


#: Every entry of the room's local copy in this page's IndexedDB, as stored.
_STORED_ENTRIES = """() => new Promise((resolve, reject) => {
    const open = indexedDB.open('nbchat');
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
        const db = open.result;
        if (!db.objectStoreNames.contains('messages')) { db.close(); resolve([]); return; }
        const all = db.transaction('messages').objectStore('messages').getAll();
        all.onsuccess = () => { db.close(); resolve(all.result); };
        all.onerror = () => reject(all.error);
    };
})"""


def stored_entries(page: Page) -> list[dict[str, Any]]:
    """The log entries this page keeps in IndexedDB (its local copy of the room)."""
    return list(page.evaluate(_STORED_ENTRIES))


def set_theme(page: Page, theme: str) -> None:
    command = "([theme]) => window.jupyterapp.commands.execute('apputils:change-theme', {theme})"
    page.evaluate(command, [theme])
    light = "false" if "Dark" in theme else "true"
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'", timeout=SLOW)
    # Lab shows its splash screen while a theme loads.
    expect(page.locator("#jupyterlab-splash")).to_have_count(0, timeout=SLOW)


def screenshot(page: Page, name: str) -> None:
    """The notebook with the chat in view (file browser folded away so the analysis shows)."""
    if page.locator("#jp-left-stack").is_visible():
        page.evaluate("() => window.jupyterapp.commands.execute('application:toggle-left-area')")
        expect(page.locator("#jp-left-stack")).to_be_hidden()
    page.locator(".nbchat").first.scroll_into_view_if_needed()
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / name))


def room_notebook(lab: Lab, name: str, room: str) -> str:
    """A notebook that opens the chat in ``room``."""
    return put_notebook(
        lab, f"notebooks/{name}.ipynb", code_notebook("%load_ext nbchat", f"chat = %chat {room}")
    )
