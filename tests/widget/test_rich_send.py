"""What Chat.send and ChatPeer.send post for rich objects (nbchat.mimebundle), without a browser."""

from __future__ import annotations

import base64
import json
from typing import Any

import matplotlib
import pandas as pd
import pytest

from nbchat import Chat
from nbchat.core.rich import rich_size
from nbchat.mimebundle import RichMessageTooBig, mime_bundle, rich_message

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402


def test_a_dataframe_goes_as_an_html_table_with_its_text_as_fallback() -> None:
    frame = pd.DataFrame({"city": ["Oslo", "Lima"], "temp": [3.5, 19.0]})
    text, mime = rich_message(frame)
    assert mime is not None and set(mime) == {"text/html", "text/plain"}
    assert "<table" in mime["text/html"] and "Oslo" in mime["text/html"]
    assert text == mime["text/plain"] == repr(frame)
    # A bot reads the table back.
    assert pd.read_html(__import__("io").StringIO(mime["text/html"]))[0]["city"].tolist() == [
        "Oslo",
        "Lima",
    ]


def test_a_styler_goes_as_html_too() -> None:
    styled = pd.DataFrame({"a": [1, 2]}).style.highlight_max()
    _text, mime = rich_message(styled)
    assert mime is not None and "<table" in mime["text/html"]


def test_a_matplotlib_figure_is_rendered_by_its_own_savefig_as_png() -> None:
    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=50)
    ax.plot([1, 3, 2])
    text, mime = rich_message(fig)
    plt.close(fig)
    assert mime is not None and set(mime) == {"image/png", "text/plain"}
    assert base64.b64decode(mime["image/png"]).startswith(b"\x89PNG\r\n\x1a\n")
    assert text.startswith("<Figure size")


def test_a_pil_image_goes_as_png() -> None:
    from PIL import Image

    _text, mime = rich_message(Image.new("RGB", (3, 3), "red"))
    assert mime is not None and "image/png" in mime


def test_latex_json_and_markdown() -> None:
    from IPython.display import JSON, Markdown, Math

    _text, mime = rich_message(Math(r"\int_0^1 x^2\,dx"))
    assert mime is not None and mime["text/latex"] == r"$\displaystyle \int_0^1 x^2\,dx$"
    _text, mime = rich_message(JSON({"a": [1, 2]}))
    assert mime is not None and json.loads(mime["application/json"]) == {"a": [1, 2]}
    # Markdown is what a plain message already is: no bundle.
    assert rich_message(Markdown("**bold**")) == ("**bold**", None)
    assert rich_message("plain *text*") == ("plain *text*", None)
    assert rich_message(42) == ("42", None)


def test_an_image_that_is_not_what_it_claims_is_not_sent_as_one() -> None:
    class Liar:
        def _repr_png_(self) -> bytes:
            return b"<html><script>alert(1)</script>"

        def _repr_html_(self) -> str:
            return "<b>fallback</b>"

    _text, mime = rich_message(Liar())
    assert mime is not None and set(mime) == {"text/html", "text/plain"}


def test_a_figure_over_the_limit_is_refused_with_a_clear_error() -> None:
    fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
    ax.imshow(__import__("numpy").random.default_rng(0).random((300, 400)))
    size = rich_size({"image/png": mime_bundle(fig)["image/png"], "text/plain": repr(fig)})
    with pytest.raises(RichMessageTooBig) as raised:
        rich_message(fig, limit=100_000)
    plt.close(fig)
    assert size > 100_000
    assert str(raised.value).startswith("figure is ")
    assert str(raised.value).endswith("; the limit is 100 KB — lower the dpi or the figure size")


def sent(chat: Chat, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    monkeypatch.setattr(chat, "_send", lambda msg, buffers=None: out.append(msg))
    return out


def test_chat_send_posts_the_bundle_through_the_comm(monkeypatch: pytest.MonkeyPatch) -> None:
    chat = Chat(room="rich")
    out = sent(chat, monkeypatch)
    chat._on_custom(chat, {"type": "claim", "peer_id": "p1", "replaces": "", "present": ["p1"]}, [])
    chat.send(pd.DataFrame({"a": [1]}))
    custom = [m["content"] for m in out if m.get("method") == "custom"]
    assert custom[-1]["type"] == "send" and custom[-1]["to"] == "p1"
    assert "<table" in custom[-1]["mime"]["text/html"]
    assert custom[-1]["text"] == repr(pd.DataFrame({"a": [1]}))


def test_chat_send_refuses_a_bundle_over_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    chat = Chat(room="rich", max_rich_bytes=200)
    out = sent(chat, monkeypatch)
    with pytest.raises(
        RichMessageTooBig, match=r"^table is .*; the limit is 200 bytes — send fewer rows"
    ):
        chat.send(pd.DataFrame({"a": range(50)}))
    assert not [m for m in out if m.get("method") == "custom"]


def test_chat_messages_carry_the_bundle_a_bot_reads_back() -> None:
    chat = Chat(room="rich")
    table = "<table><tr><th>a</th></tr><tr><td>1</td></tr></table>"
    message = {
        "id": "B:1",
        "author": "B",
        "time": 1,
        "text": "a\n1",
        "user": {"username": "b"},
        "mime": {"text/html": table, "text/plain": "a\n1"},
    }
    chat._on_custom(chat, {"type": "messages", "from": 0, "messages": [message], "done": True}, [])
    assert chat.messages[0]["mime"]["text/html"] == table


def test_chat_send_file_hands_the_bytes_to_the_browser_as_a_buffer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    chat = Chat(room="rich")
    out: list[tuple[dict[str, Any], Any]] = []
    monkeypatch.setattr(chat, "_send", lambda msg, buffers=None: out.append((msg, buffers)))
    chat._on_custom(chat, {"type": "claim", "peer_id": "p1", "replaces": "", "present": ["p1"]}, [])
    path = tmp_path / "results.csv"
    path.write_bytes(b"a,b\n1,2\n")
    chat.send_file(path)
    [(message, buffers)] = [(m, b) for m, b in out if m.get("method") == "custom"]
    assert message["content"] == {
        "type": "send_file",
        "name": "results.csv",
        "mime_type": "text/csv",
        "to": "p1",
    }
    assert [bytes(b) for b in buffers] == [b"a,b\n1,2\n"]


def test_a_received_file_is_saved_next_to_the_notebook_without_overwriting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    chat = Chat(room="rich")
    out: list[dict[str, Any]] = []
    monkeypatch.setattr(chat, "_send", lambda msg, buffers=None: out.append(msg))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.csv").write_bytes(b"old")
    request = {"type": "save_file", "request": "r1", "name": "../../data.csv"}
    chat._on_custom(chat, request, [memoryview(b"new,bytes\n")])
    chat._on_custom(chat, {**request, "request": "r2"}, [])
    replies = [m["content"] for m in out if m.get("method") == "custom"]
    assert replies == [
        {"type": "saved", "request": "r1", "path": "data (1).csv", "error": ""},
        {"type": "saved", "request": "r2", "path": "", "error": "no file came with the request"},
    ]
    assert (tmp_path / "data.csv").read_bytes() == b"old"
    assert (tmp_path / "data (1).csv").read_bytes() == b"new,bytes\n"
    assert not (tmp_path.parent / "data.csv").exists()


def test_a_terminal_ipython_shell_does_not_strip_a_table_to_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A terminal IPython computes only text/plain for display; a chat message still goes
    # out as a table (the object's own _repr_html_).
    from IPython.core.formatters import DisplayFormatter

    class TerminalShell:
        display_formatter = DisplayFormatter()

    TerminalShell.display_formatter.active_types = ["text/plain"]
    monkeypatch.setattr("IPython.get_ipython", lambda: TerminalShell())
    text, mime = rich_message(pd.DataFrame({"a": [1]}))
    assert mime is not None and "<table" in mime["text/html"] and "a" in text
