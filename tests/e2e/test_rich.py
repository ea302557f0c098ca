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
    SLOW,
    code_notebook,
    kernel_client,
    kernel_eval,
    messages,
    own_name,
    put_notebook,
    room_notebook,
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
