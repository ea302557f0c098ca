"""Two people in one notebook shared live by jupyter-collaboration (real JupyterLab with the
collaboration server and lab extensions, real Chromium, real WebRTC between the pages).

jupyter-collaboration is not installed in the project's venv (it would turn every other
test's Lab collaborative): ``./dev`` installs it beside it, into ``.collab/``, and only the
Lab this test starts loads it from there (see ``collaborative_env``)."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect
from tests.support.browser import ARTIFACTS, open_notebook
from tests.support.lab import COLLAB, Lab, collaborative_env, make_lab
from tests.support.widgets import (
    SLOW,
    api,
    bodies,
    code_notebook,
    messages,
    own_name,
    put_notebook,
    say,
    screenshot,
    users,
)

pytestmark = pytest.mark.skipif(
    not (COLLAB / "jupyter_collaboration").is_dir(),
    reason=f"jupyter-collaboration is not installed in {COLLAB} (./dev installs it there)",
)

ROOM = "e2e-collaboration-room"
READ_BACK = (
    "import json\n"
    "print(json.dumps([[m['user']['display_name'], m['text']] for m in chat.messages]))"
)


@pytest.fixture(scope="module")
def collab_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    server = make_lab(tmp_path_factory.mktemp("collab-lab"), {"alive_timeout": 8.0})
    server.env.update(collaborative_env())
    # Its store of document updates, in the test's directory rather than the current one.
    server.args.append(f"--SQLiteYStore.db_path={server.root / 'ystore.db'}")
    server.start()
    yield server
    server.stop()
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(server.log_path, ARTIFACTS / "collab-lab.log")


def run_cell(page: Page, index: int) -> None:
    """Run cell ``index`` as this person would (Shift+Enter in it): the kernel sees this
    page's session on the request. Resolves once the cell has run."""
    page.evaluate(
        """async (index) => {
            const panel = window.jupyterapp.shell.currentWidget;
            panel.content.activeCellIndex = index;
            await window.jupyterapp.commands.execute('notebook:run-cell');
        }""",
        index,
    )


def cell_output(page: Page, index: int) -> str:
    """The text cell ``index`` printed, as this page's (shared) notebook model holds it."""
    return str(
        page.evaluate(
            """(index) => {
                const panel = window.jupyterapp.shell.currentWidget;
                const outputs = panel.content.widgets[index].model.outputs.toJSON();
                return outputs.map((o) => [].concat(o.text || []).join('')).join('');
            }""",
            index,
        )
    )


def kernel_messages(page: Page, index: int, expected: int) -> list[list[str]]:
    """Run the read-back cell until the kernel's ``chat.messages`` holds ``expected`` messages
    (the owner browser mirrors the room when the kernel is idle); what it printed last."""
    deadline = time.monotonic() + 30
    while True:
        run_cell(page, index)
        # The last line: in a shared notebook another person's earlier run of this cell can
        # still be arriving in its outputs when ours is appended.
        lines = (cell_output(page, index) or "[]").strip().splitlines() or ["[]"]
        held: list[list[str]] = json.loads(lines[-1])
        if len(held) >= expected or time.monotonic() > deadline:
            return held
        page.wait_for_timeout(300)  # the mirror is debounced in the owner browser: ask again


def test_two_people_in_one_collaborative_notebook_stay_themselves(
    collab_lab: Lab, new_user
) -> None:
    lab = collab_lab
    path = put_notebook(
        lab,
        "notebooks/e2e-collaboration.ipynb",
        code_notebook(
            "%load_ext nbchat",
            f"chat = %chat {ROOM}",
            'chat.send("posted by the cell A ran")',
            'chat.send("posted by the cell B ran")',
            READ_BACK,
        ),
    )
    # The server really is collaborative: it hands out a shared document for the notebook.
    session: dict[str, Any] = api(
        lab,
        "PUT",
        f"api/collaboration/session/{quote(path, safe='')}",
        {"format": "json", "type": "notebook"},
    )
    assert session.get("fileId") and session.get("sessionId"), session

    a, b = new_user(), new_user()
    open_notebook(a, lab, path)
    open_notebook(b, lab, path)
    for page in (a, b):  # ... and so are both pages' notebooks (shared Y documents)
        assert page.evaluate("() => window.jupyterapp.shell.currentWidget.model.collaborative")

    # Only A runs the chat's cells. B gets the output live, but JupyterLab renders a widget
    # that someone else's run displayed only in a trusted notebook (jupyterlab#11435): until
    # then B sees the chat's text, which says what to do.
    run_cell(a, 0)
    run_cell(a, 1)
    expect(a.locator(".nbchat")).to_have_count(1, timeout=SLOW)
    fallback = b.locator(".jp-Cell").nth(1).locator(".jp-OutputArea-output")
    expect(fallback).to_contain_text(f"the chat of room '{ROOM}'", timeout=SLOW)
    expect(fallback).to_contain_text("Trust Notebook")
    expect(b.locator(".nbchat")).to_have_count(0)
    ARTIFACTS.mkdir(exist_ok=True)
    b.screenshot(path=str(ARTIFACTS / "collaboration-untrusted.png"))
    # Not in the room yet, B's `chat.send` cell is refused rather than posted as A.
    run_cell(b, 3)
    expect(b.locator(".jp-Cell").nth(3).locator(".jp-OutputArea-output")).to_contain_text(
        "shown in other people's browsers but not in yours", timeout=SLOW
    )
    b.evaluate("() => { window.jupyterapp.commands.execute('notebook:trust'); }")
    b.locator(".jp-Dialog").get_by_role("button", name="Trust").click()
    expect(b.locator(".nbchat")).to_have_count(1, timeout=SLOW)
    for page in (a, b):
        expect(users(page)).to_have_count(2, timeout=SLOW)
    name_a, name_b = own_name(a), own_name(b)
    assert name_a != name_b
    # Each lists the other as the other person, not as a second connection of itself.
    expect(users(a).filter(has_text=name_b)).not_to_contain_text("(you)")
    expect(users(b).filter(has_text=name_a)).not_to_contain_text("(you)")
    for page in (a, b):
        expect(page.locator(".nbchat-user-connections")).to_have_count(0)
        expect(page.get_by_role("status", name="Chat status")).to_have_text(
            "Connected to 1 peer", timeout=SLOW
        )

    def shown_as(page: Page, name: str, text: str) -> Any:
        log = messages(page).get_by_role("article", name=f"Message from {name}")
        return log.filter(has_text=text)

    # Typing: each message shows under its author's name in both browsers.
    say(a, "typed by A")
    expect(shown_as(b, name_a, "typed by A")).to_have_count(1, timeout=SLOW)
    say(b, "typed by B")
    expect(shown_as(a, name_b, "typed by B")).to_have_count(1, timeout=SLOW)

    # Cells: each posts as the person who ran it, whoever ran `%chat`.
    run_cell(a, 2)
    for page in (a, b):
        expect(shown_as(page, name_a, "posted by the cell A ran")).to_have_count(1, timeout=SLOW)
    run_cell(b, 3)
    for page in (a, b):
        expect(shown_as(page, name_b, "posted by the cell B ran")).to_have_count(1, timeout=SLOW)

    expected = [
        [name_a, "typed by A"],
        [name_b, "typed by B"],
        [name_a, "posted by the cell A ran"],
        [name_b, "posted by the cell B ran"],
    ]
    # The kernel's chat.messages, read back by a cell: each message once, in the order both
    # browsers show. B's run of the same cell shows B what A's saw (shared outputs).
    assert kernel_messages(a, 4, len(expected)) == expected
    assert kernel_messages(b, 4, len(expected)) == expected
    # (Its last line: the collaborative model can still hold A's own run above B's.)
    expect(a.locator(".jp-Cell").nth(4).locator(".jp-OutputArea-output").last).to_have_text(
        re.compile(re.escape(json.dumps(expected)) + r"\n?$")
    )
    texts = [text for _name, text in expected]
    for page in (a, b):
        assert bodies(page) == texts
    screenshot(b, "collaboration.png")
