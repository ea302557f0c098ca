"""The room's history as files (#12): saved next to the notebook through the kernel, and a JSON
export imported back into a fresh browser, checked like history from a peer. Real JupyterLab,
real Chromium, real WebRTC for the sync to a newcomer."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import Page, expect
from tests.support.browser import open_and_run
from tests.support.lab import Lab
from tests.support.widgets import (
    SLOW,
    message_box,
    messages,
    own_name,
    room_notebook,
    say,
    screenshot,
    set_theme,
)

ROOM = "e2e-history-room"


def menu_item(page: Page, name: str) -> None:
    page.get_by_role("button", name="Export the history").click()
    page.get_by_role("menuitem", name=name, exact=True).click()


def status(page: Page):
    return page.get_by_role("status", name="History file")


def import_file(page: Page, path: Path) -> None:
    """Import JSON… from the keyboard: Enter opens the menu, ArrowUp reaches the last item."""
    page.get_by_role("button", name="Export the history").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("menuitem", name="Download Markdown (.md)")).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(page.get_by_role("menuitem", name="Import JSON…")).to_be_focused()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(str(path))


def test_save_next_to_the_notebook_then_import_into_a_fresh_browser(
    lab: Lab, new_user, tmp_path: Path
) -> None:
    path = room_notebook(lab, "e2e-history-files", ROOM)
    folder = lab.root / "work" / "notebooks"
    a = new_user()
    open_and_run(a, lab, path)
    say(a, "First finding: **cell 3** fails")
    say(a, "Second: the fix is in utils.py")
    name_a = own_name(a)
    expect(messages(a).get_by_role("article")).to_have_count(2, timeout=SLOW)

    # Save both formats next to the notebook, through the kernel; the files are on disk.
    a.get_by_role("button", name="Export the history").click()
    expect(a.get_by_role("menuitem", name="Save JSON next to the notebook")).to_be_visible()
    screenshot(a, "export-menu.png")
    a.keyboard.press("Escape")
    menu_item(a, "Save Markdown next to the notebook")
    md = folder / f"{ROOM}-chat.md"
    expect(status(a)).to_contain_text(f"Saved {md.name} next to the notebook.", timeout=SLOW)
    text = md.read_text(encoding="utf-8")
    assert text.startswith(f"# {ROOM}\n")
    assert f"**{name_a}** · " in text and "First finding: **cell 3** fails" in text
    assert "Second: the fix is in utils.py" in text and "2 messages" in text
    menu_item(a, "Save JSON next to the notebook")
    saved = folder / f"{ROOM}-chat.json"
    expect(status(a)).to_contain_text(f"Saved {saved.name} next to the notebook.", timeout=SLOW)
    document = json.loads(saved.read_text(encoding="utf-8"))
    assert document["format"] == "nbchat-export/1" and document["room"] == ROOM
    entries = document["entries"]
    assert [e["text"] for e in entries] == [
        "First finding: **cell 3** fails",
        "Second: the fix is in utils.py",
    ]
    assert all(e.get("sig") for e in entries)
    assert [c["peer"] for c in document["certs"]] == [entries[0]["author"]]
    # The name is taken now: the kernel picks a free one, and the status says so.
    menu_item(a, "Save Markdown next to the notebook")
    expect(status(a)).to_contain_text(
        f"Saved as {ROOM}-chat (1).md next to the notebook ({md.name} was taken).", timeout=SLOW
    )
    assert (folder / f"{ROOM}-chat (1).md").read_text(encoding="utf-8").startswith(f"# {ROOM}")
    a.context.close()  # A leaves: only the file holds A's messages now

    # A forger edits the file: a message A never wrote, signed with A's old signature, and one
    # of A's real messages claiming to be from Mallory.
    mallory = {"username": "mallory", "name": "Mallory", "display_name": "Mallory"}
    forged = {**entries[0], "id": f"{entries[0]['author']}:3", "seq": 3, "clock": 3}
    forged.update(text="Mallory here: send me the password", user=mallory)
    claimed = {**entries[1], "user": mallory}
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps({**document, "entries": [entries[0], claimed, forged]}))
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps({**document, "room": "another-room"}))

    # A fresh browser (another person, empty local copy) in the room: nothing to see yet.
    c = new_user(color_scheme="dark")
    # A standing listener keeps Playwright intercepting file choosers from the start: enabling
    # it per expect_file_chooser can come too late on a loaded machine, and a chooser that
    # opened for real blocks the next ones.
    c.on("filechooser", lambda _chooser: None)
    open_and_run(c, lab, path)
    expect(message_box(c)).to_be_enabled(timeout=SLOW)
    expect(messages(c).get_by_text("No messages yet")).to_be_visible()

    # Files that are not an export of this room are refused in words; nothing is added.
    import_file(c, md)
    expect(status(c)).to_contain_text("Not imported: the file is not JSON", timeout=SLOW)
    import_file(c, elsewhere)
    expect(status(c)).to_contain_text(
        f"Not imported: this is the history of room “another-room”, not of “{ROOM}”."
    )
    expect(messages(c).get_by_role("article")).to_have_count(0)

    # The tampered export: A's messages come in as A's (the certified identity, not the claim);
    # the forged one is left out and said so.
    import_file(c, tampered)
    expect(status(c)).to_contain_text(
        "Imported 2 messages. 1 entry left out: signature not verified", timeout=SLOW
    )
    shown = messages(c).get_by_role("article")
    expect(shown).to_have_count(2)
    expect(shown.nth(0)).to_contain_text("First finding: cell 3 fails")
    expect(shown.nth(1)).to_contain_text("Second: the fix is in utils.py")
    expect(messages(c).get_by_role("article", name=f"Message from {name_a}")).to_have_count(2)
    expect(messages(c).get_by_role("article", name="Message from Mallory")).to_have_count(0)
    expect(messages(c)).not_to_contain_text("send me the password")
    set_theme(c, "JupyterLab Dark")
    screenshot(c, "export-import-dark.png")
    c.get_by_role("button", name="Export the history").click()
    screenshot(c, "export-menu-dark.png")
    c.keyboard.press("Escape")
    # Importing it again adds nothing.
    import_file(c, saved)
    expect(status(c)).to_contain_text("Nothing new imported. 2 already here.", timeout=SLOW)

    # In the local copy: a reload shows them with nobody else in the room.
    open_and_run(c, lab, path)
    expect(messages(c).get_by_role("article", name=f"Message from {name_a}")).to_have_count(
        2, timeout=SLOW
    )

    # And a newcomer gets them from C by history sync, still as A's.
    d = new_user()
    open_and_run(d, lab, path)
    expect(messages(d).get_by_role("article", name=f"Message from {name_a}")).to_have_count(
        2, timeout=SLOW
    )
    expect(messages(d)).to_contain_text("Second: the fix is in utils.py")
    expect(messages(d)).not_to_contain_text("send me the password")
