"""Sharing the analysis: tables, figures and LaTeX from the kernel, and a Python peer's figure,
rendered for the other user (real JupyterLab, two real Chromium users, a real aiortc peer)."""

from __future__ import annotations

import base64
import time

from playwright.sync_api import Locator, Page, expect
from tests.support.browser import open_and_run
from tests.support.lab import Lab
from tests.support.loop import BackgroundLoop
from tests.support.widgets import (
    DOCS,
    SLOW,
    code_notebook,
    kernel_client,
    kernel_eval,
    messages,
    own_name,
    put_notebook,
    room_notebook,
    set_theme,
    users,
)

ROOM = "e2e-rich-room"

SHARE_CELL = r"""
import matplotlib
matplotlib.use("agg")
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Math

df = pd.DataFrame({"city": ["Oslo", "Lima", "Pune"], "temp": [3.5, 19.0, 27.25]})
chat.send(df)
fig, ax = plt.subplots(figsize=(3, 2), dpi=80)
ax.plot([1, 3, 2], color="tab:red")
ax.set_title("weekly temperature")
chat.send(fig)
chat.send(Math(r"\bar{t} = \frac{1}{n}\sum_{i=1}^{n} t_i"))
"""


def loaded_image(img: Locator) -> dict[str, object]:
    return img.evaluate(
        "(img) => ({src: img.getAttribute('src'), complete: img.complete, w: img.naturalWidth,"
        " h: img.naturalHeight})"
    )


def wait_loaded(img: Locator) -> dict[str, object]:
    expect(img).to_be_visible(timeout=SLOW)
    img.page.wait_for_function(
        "(img) => img.complete && img.naturalWidth > 0", arg=img.element_handle(), timeout=SLOW
    )
    return loaded_image(img)


def chat_shots(page: Page, name: str, first: Locator) -> None:
    """Screenshots of this page's chat (light and dark) with ``first`` at the top of the list."""
    first.evaluate(
        "(el) => { const log = el.closest('[role=log]'); const row = el.closest('.nbchat-row');"
        " log.scrollTop = row.offsetTop + row.getBoundingClientRect().top"
        " - row.getBoundingClientRect().top; }"
    )
    page.wait_for_function(
        "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(1))))"
    )
    DOCS.mkdir(exist_ok=True)
    chat = page.locator(".nbchat").first
    chat.screenshot(path=str(DOCS / f"{name}.png"))
    set_theme(page, "JupyterLab Dark")
    first.scroll_into_view_if_needed()
    chat.screenshot(path=str(DOCS / f"{name}-dark.png"))
    set_theme(page, "JupyterLab Light")


def figure_message(page: Page, author: str) -> Locator:
    return (
        messages(page)
        .get_by_role("article", name=f"Message from {author}")
        .locator("img.nbchat-rich-image")
    )


def test_a_table_a_figure_and_latex_from_the_kernel_render_for_the_other_user(
    lab: Lab, new_user, bg: BackgroundLoop
) -> None:
    from nbchat.peer import ChatPeer

    viewer_path = room_notebook(lab, "e2e-rich-viewer", ROOM)
    sharer_path = put_notebook(
        lab,
        "notebooks/e2e-rich-sharer.ipynb",
        code_notebook("%load_ext nbchat", f"chat = %chat {ROOM}", SHARE_CELL),
    )
    peer = ChatPeer(lab.url, ROOM, token=lab.token)
    bg.run(peer.join())
    try:
        a, b = new_user(), new_user()
        open_and_run(b, lab, viewer_path)
        open_and_run(a, lab, sharer_path)
        for page in (a, b):
            expect(users(page)).to_have_count(3, timeout=SLOW)
        name_a = own_name(a)

        # The DataFrame: a real table with its cells, for the other user.
        from_a = messages(b).get_by_role("article", name=f"Message from {name_a}")
        table = from_a.locator(".nbchat-rich-html table")
        expect(table).to_have_count(1, timeout=SLOW)
        expect(table.locator("th", has_text="city")).to_have_count(1)
        assert table.locator("tbody td").all_inner_texts() == [
            "Oslo",
            "3.50",
            "Lima",
            "19.00",
            "Pune",
            "27.25",
        ]

        # The figure: an <img> from a blob URL made in B's page, decoded (natural size > 0).
        image = wait_loaded(figure_message(b, name_a))
        assert str(image["src"]).startswith("blob:"), image
        assert 100 < int(image["w"]) < 400 and 50 < int(image["h"]) < 300, image

        # The LaTeX, shown as its source.
        latex = from_a.locator(".nbchat-rich-source[data-mime='text/latex'] code")
        expect(latex).to_have_text(r"$\displaystyle \bar{t} = \frac{1}{n}\sum_{i=1}^{n} t_i$")

        # The Python peer received the same three with their bundles ...
        def kinds() -> list[list[str]]:
            return [sorted(m.get("mime", {})) for m in peer.history if m["author"] != peer.id]

        deadline = time.monotonic() + 30
        while len([k for k in kinds() if k]) < 3:
            assert time.monotonic() < deadline, kinds()
            time.sleep(0.1)
        [png] = [m["mime"]["image/png"] for m in peer.history if "image/png" in m.get("mime", {})]
        assert base64.b64decode(png).startswith(b"\x89PNG\r\n\x1a\n")

        # ... and sends a figure of its own, which both browsers show.
        import matplotlib

        matplotlib.use("agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(2, 2), dpi=60)
        ax.bar(["a", "b"], [2, 3])
        bg.run(peer.send(fig))
        plt.close(fig)
        peer_name = peer.user["display_name"]
        for page in (a, b):
            image = wait_loaded(figure_message(page, peer_name))
            assert str(image["src"]).startswith("blob:") and int(image["w"]) > 0

        chat_shots(b, "rich-messages", table)

        # A bot in A's kernel reads the shared table back from chat.messages.
        kernel = kernel_client(lab, sharer_path)
        try:
            expression = (
                "[__import__('pandas').read_html(__import__('io').StringIO(m['mime']['text/html']))"
                "[0]['city'].tolist() for m in chat.messages if 'text/html' in m.get('mime', {})]"
            )
            deadline = time.monotonic() + 30
            while (tables := kernel_eval(kernel, expression)) == []:
                assert time.monotonic() < deadline, "the bundle never reached chat.messages"
                time.sleep(0.2)  # mirrored when the kernel is idle: poll its view
            assert tables == [["Oslo", "Lima", "Pune"]]
        finally:
            kernel.stop_channels()
    finally:
        bg.run(peer.leave())


DROP = """async ([b64, name, type]) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const data = new DataTransfer();
    data.items.add(new File([bytes], name, {type}));
    const target = document.querySelector('.nbchat');
    for (const kind of ['dragenter', 'dragover', 'drop']) {
        const init = {dataTransfer: data, bubbles: true, cancelable: true};
        target.dispatchEvent(new DragEvent(kind, init));
    }
}"""

#: Records every value the progress bar of a file card takes (installed before the card exists).
WATCH_PROGRESS = """(name) => {
    window.__progress = [];
    new MutationObserver(() => {
        for (const bar of document.querySelectorAll('[role=progressbar]')) {
            if (bar.getAttribute('aria-label') === `Progress of ${name}`) {
                const value = Number(bar.getAttribute('aria-valuenow'));
                if (window.__progress.at(-1) !== value) window.__progress.push(value);
            }
        }
    }).observe(document.body, {subtree: true, childList: true, attributes: true,
                               attributeFilter: ['aria-valuenow']});
}"""


def test_a_file_dropped_by_one_user_is_downloaded_by_the_other_byte_identical(
    lab: Lab, new_user, bg: BackgroundLoop
) -> None:
    import hashlib
    import os

    from nbchat.peer import ChatPeer

    room = "e2e-files-room"
    path = room_notebook(lab, "e2e-files", room)
    peer = ChatPeer(lab.url, room, token=lab.token)
    bg.run(peer.join())
    try:
        a, b = new_user(), new_user()
        for page in (a, b):
            open_and_run(page, lab, path)
        for page in (a, b):
            expect(users(page)).to_have_count(3, timeout=SLOW)
        name_a = own_name(a)

        # A drops a 3 MB CSV-ish file whose name tries to climb out of the downloads folder.
        data = os.urandom(3_000_000)
        b.evaluate(WATCH_PROGRESS, "report.csv")
        a.evaluate(DROP, [base64.b64encode(data).decode(), "../../etc/report.csv", "text/csv"])
        card = messages(b).get_by_role("group", name="File report.csv")
        expect(card).to_contain_text(f"3 MB · text/csv · from {name_a}", timeout=SLOW)
        download_link = card.get_by_role("link", name="Download report.csv")
        expect(download_link).to_be_visible(timeout=SLOW)
        with b.expect_download() as info:
            download_link.click()
        download = info.value
        assert download.suggested_filename == "report.csv"
        assert (
            hashlib.sha256(open(download.path(), "rb").read()).hexdigest()
            == hashlib.sha256(data).hexdigest()
        )
        assert str(download_link.get_attribute("href")).startswith("blob:")
        # Saved next to the notebook through its kernel, under the cleaned name.
        card.get_by_role("button", name="Save report.csv next to the notebook").click()
        expect(card).to_contain_text("Saved as report.csv", timeout=SLOW)
        assert (lab.root / "work" / "notebooks" / "report.csv").read_bytes() == data
        progress = b.evaluate("() => window.__progress")
        assert any(0 < value < 100 for value in progress), progress  # seen moving

        # The Python peer fetched it too, byte-identical.
        message_id = card.locator("xpath=ancestor::*[@data-message-id]").get_attribute(
            "data-message-id"
        )
        received = bg.run(peer.wait_file(message_id, timeout=30), timeout=40)
        assert received.data == data and received.name == "report.csv"

        # An image attached with the button is previewed inline (a blob URL made in B's page).
        import io

        from PIL import Image

        buffer = io.BytesIO()
        from PIL import ImageDraw

        picture = Image.new("RGB", (160, 80), "#e8f4f2")
        ImageDraw.Draw(picture).rectangle((20, 30, 60, 70), fill="teal")
        ImageDraw.Draw(picture).rectangle((80, 10, 120, 70), fill="#d9822b")
        picture.save(buffer, format="PNG")
        png = buffer.getvalue()
        with a.expect_file_chooser() as chooser:
            a.get_by_role("button", name="Attach a file").click()
        chooser.value.set_files({"name": "chart.png", "mimeType": "image/png", "buffer": png})
        preview = messages(b).get_by_role("group", name="File chart.png").locator("img")
        image = wait_loaded(preview)
        assert str(image["src"]).startswith("blob:") and image["w"] == 160

        # A Python peer's file arrives in the browsers the same way.
        upload = lab.root / "from-peer.txt"
        upload.write_bytes(b"hello from a script\n" * 1000)
        bg.run(peer.send_file(upload))
        peer_card = messages(a).get_by_role("group", name="File from-peer.txt")
        expect(peer_card.get_by_role("link", name="Download from-peer.txt")).to_be_visible(
            timeout=SLOW
        )

        chat_shots(b, "file-sharing", card)

        # A transfer cancelled midway: B stops it as soon as the bar moves; nothing is offered.
        big = os.urandom(10_000_000)
        b.evaluate(
            """(name) => new MutationObserver((_m, observer) => {
                const bar = document.querySelector(
                    `[role=progressbar][aria-label="Progress of ${name}"]`);
                if (bar && Number(bar.getAttribute('aria-valuenow')) > 0) {
                    observer.disconnect();
                    document.querySelector(`button[aria-label="Cancel ${name}"]`).click();
                }
            }).observe(document.body, {subtree: true, childList: true, attributes: true})""",
            "big.bin",
        )
        a.evaluate(DROP, [base64.b64encode(big).decode(), "big.bin", "application/octet-stream"])
        big_card = messages(b).get_by_role("group", name="File big.bin")
        expect(big_card).to_have_attribute("data-state", "cancelled", timeout=SLOW)
        expect(big_card.get_by_role("link")).to_have_count(0)
        expect(big_card).to_contain_text("Cancelled")
    finally:
        bg.run(peer.leave())
