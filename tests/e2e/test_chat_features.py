"""The everyday chat features (#12) as two users see them: real JupyterLab, real Chromium,
real WebRTC between the pages. One test function (the e2e suite's time budget is tight)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Locator, Page, expect
from tests.support.browser import open_and_run
from tests.support.lab import Lab
from tests.support.widgets import (
    SLOW,
    article,
    connected,
    message_box,
    messages,
    own_name,
    room_notebook,
    say,
    screenshot,
    set_theme,
)


def action(page: Page, message: Locator, name: str) -> Locator:
    """A button of the message's toolbar (shown on hover)."""
    message.hover()
    return message.get_by_role("toolbar").get_by_role("button", name=name, exact=True)


def test_typing_replies_edits_reactions_deletes_and_mentions(lab: Lab, new_user) -> None:
    path = room_notebook(lab, "e2e-chat-features", "e2e-chat-features-room")
    a, b = new_user(), new_user()
    open_and_run(a, lab, path)
    open_and_run(b, lab, path)
    for page in (a, b):
        connected(page, present=2)
    name_a, name_b = own_name(a), own_name(b)

    say(b, "Which sensor runs warm?\nDetails below")
    question = article(a, name_b, "Which sensor runs warm?")
    expect(question).to_be_visible(timeout=SLOW)
    say(b, "Also: lunch at noon")
    expect(article(a, name_b, "lunch at noon")).to_be_visible(timeout=SLOW)

    # B sees A typing; it goes when A sends.
    typing_b = b.get_by_role("status", name="Who is typing")
    message_box(a).press_sequentially("The harb")
    expect(typing_b).to_have_text(f"{name_a} is typing…", timeout=SLOW)

    # A replies to B's question: B sees the reply with the quoted original (first line).
    action(a, question, "Reply").click()
    expect(a.get_by_text("Replying to")).to_be_visible()
    message_box(a).fill("The harbour one, I think")
    message_box(a).press("Enter")
    reply_b = article(b, name_a, "The harbour one")
    expect(reply_b).to_be_visible(timeout=SLOW)
    quote = reply_b.get_by_role("button", name=f"Replying to {name_b}: Which sensor runs warm?")
    expect(quote).to_be_visible()
    expect(quote).not_to_contain_text("Details below")
    expect(typing_b).to_have_text("", timeout=SLOW)
    # The quote jumps to the original and highlights it.
    quote.click()
    expect(b.locator(".nbchat-row-highlight")).to_contain_text("Which sensor runs warm?")

    # A edits the reply (ArrowUp in the empty box edits the last own message): B sees the new
    # text and "edited".
    message_box(a).click()
    message_box(a).press("ArrowUp")
    expect(message_box(a)).to_have_value("The harbour one, I think", timeout=SLOW)
    message_box(a).fill("The harbour one, surely")
    message_box(a).press("Enter")
    edited_b = article(b, name_a, "The harbour one, surely")
    expect(edited_b).to_be_visible(timeout=SLOW)
    expect(edited_b).to_contain_text("(edited)")
    expect(article(b, name_a, "I think")).to_have_count(0)

    # A reacts to B's question: B sees the chip with count 1, not pressed (A's, not B's).
    action(a, question, "React").click()
    a.get_by_role("menuitemcheckbox", name="React with 👍").click()
    chip_b = article(b, name_b, "Which sensor runs warm?").get_by_role("button", name="👍 1")
    expect(chip_b).to_be_visible(timeout=SLOW)
    expect(chip_b).to_have_attribute("aria-pressed", "false")
    expect(article(a, name_b, "Which sensor").get_by_role("button", name="👍 1")).to_have_attribute(
        "aria-pressed", "true"
    )

    # A deletes another message of theirs: B sees "message deleted".
    say(a, "Oops, wrong room")
    oops_b = article(b, name_a, "Oops, wrong room")
    expect(oops_b).to_be_visible(timeout=SLOW)
    oops_a = article(a, name_a, "Oops, wrong room")
    action(a, oops_a, "Delete").click()
    oops_a.get_by_role("button", name="Confirm delete").click()
    expect(b.locator(".nbchat-deleted", has_text="message deleted")).to_be_visible(timeout=SLOW)
    expect(article(b, name_a, "Oops, wrong room")).to_have_count(0)

    # B mentions A through the autocomplete: A sees the mention highlighted, B does not.
    box_b = message_box(b)
    box_b.click()
    box_b.press_sequentially(f"thanks @{name_a.split()[-1][:3]}")
    option = b.get_by_role("listbox", name="Mention someone").get_by_role("option")
    expect(option).to_have_count(1)
    expect(option).to_contain_text(name_a)
    box_b.press("Enter")
    box_b.press_sequentially("for checking")
    box_b.press("Enter")
    expect(box_b).to_have_value("")
    mentioned = messages(a).get_by_role("article", name=f"Message from {name_b}, mentions you")
    expect(mentioned).to_contain_text("for checking", timeout=SLOW)
    expect(mentioned.locator("mark.nbchat-mention-self")).to_have_count(1)
    expect(messages(b).locator("mark.nbchat-mention-self")).to_have_count(0)

    # What users see, in both themes.
    article(a, name_a, "The harbour one").hover()
    screenshot(a, "chat-features.png")
    set_theme(a, "JupyterLab Dark")
    article(a, name_a, "The harbour one").hover()
    screenshot(a, "chat-features-dark.png")
    set_theme(a, "JupyterLab Light")

    # Unread: B scrolled up sees "N new messages ↓", which jumps to the bottom; in a hidden
    # tab the title counts them, and is restored when the tab shows again.
    say(b, "A long list:\n\n- one\n- two\n- three\n- four\n- five\n- six")
    expect(article(a, name_b, "A long list")).to_be_visible(timeout=SLOW)
    messages(b).evaluate("(log) => { log.scrollTop = 0; }")
    b.wait_for_function(
        "() => new Promise((r) => requestAnimationFrame("
        "() => requestAnimationFrame(() => r(true))))"
    )
    say(a, "first new one")
    say(a, "second new one")
    jump = b.get_by_role("button", name="2 new messages ↓")
    expect(jump).to_be_visible(timeout=SLOW)
    jump.click()
    expect(jump).to_have_count(0)
    expect(article(b, name_a, "second new one")).to_be_in_viewport()
    title = b.title()
    b.evaluate(
        "() => { Object.defineProperty(document, 'visibilityState',"
        " { value: 'hidden', configurable: true });"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )
    say(a, "while you were away")
    b.wait_for_function("(t) => document.title === '(1) ' + t", arg=title, timeout=SLOW)
    b.evaluate(
        "() => { delete document.visibilityState;"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )
    b.wait_for_function("(t) => document.title === t", arg=title)

    # Search the history: the match is marked and counted; export it as Markdown.
    b.get_by_role("button", name="Search messages").click()
    b.get_by_role("searchbox", name="Search messages").fill("harbour")
    expect(b.get_by_role("status", name="Search results")).to_have_text("1 of 1")
    expect(messages(b).locator("mark.nbchat-search-hit")).to_have_text("harbour")
    b.get_by_role("searchbox", name="Search messages").press("Escape")
    expect(messages(b).locator("mark.nbchat-search-hit")).to_have_count(0)
    b.get_by_role("button", name="Export the history").click()
    with b.expect_download() as download:
        b.get_by_role("menuitem", name="Markdown (.md)").click()
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    assert "The harbour one, surely" in exported
    assert "Oops, wrong room" not in exported
