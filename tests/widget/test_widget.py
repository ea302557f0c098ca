"""The kernel-side Chat widget and the %chat magic, without a browser."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nbchat import Chat
from nbchat.widget import default_room


def sent(chat: Chat, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    monkeypatch.setattr(chat, "_send", lambda msg, buffers=None: out.append(msg))
    return out


def claim(chat: Chat, peer_id: str, replaces: str = "", present: list[str] | None = None) -> None:
    chat._on_custom(
        chat,
        {
            "type": "claim",
            "peer_id": peer_id,
            "replaces": replaces,
            "present": present or [peer_id],
        },
        [],
    )


def test_default_room_is_the_notebook_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JPY_SESSION_NAME", "work/analysis.ipynb")
    assert default_room() == "work/analysis.ipynb"
    assert Chat().room == "work/analysis.ipynb"
    monkeypatch.delenv("JPY_SESSION_NAME")
    assert Chat().room == "default"
    assert Chat(room="team").room == "team"


def test_on_a_hub_with_the_chat_service_the_default_room_is_the_path_on_its_owners_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JPY_SESSION_NAME", "work/analysis.ipynb")
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    assert default_room() == "work/analysis.ipynb"  # a hub without nbchat's service
    monkeypatch.setenv("NBCHAT_SERVICE_URL", "http://127.0.0.1:8765/services/nbchat/")
    assert default_room() == "~alice/work/analysis.ipynb"
    assert Chat(room="team-standup").room == "team-standup"  # named rooms stay shared


def test_send_waits_for_an_owner_then_goes_to_it_only(monkeypatch: pytest.MonkeyPatch) -> None:
    chat = Chat(room="r")
    out = sent(chat, monkeypatch)
    chat.send("early")
    assert out == []
    claim(chat, "peerA")
    claim(chat, "peerB")  # a second browser does not steal a live owner
    chat.send("late")
    texts = [(m["content"]["text"], m["content"]["to"]) for m in out if m.get("method") == "custom"]
    assert texts == [("early", "peerA"), ("late", "peerA")]


def test_a_browser_takes_over_when_the_owner_left(monkeypatch: pytest.MonkeyPatch) -> None:
    chat = Chat(room="r")
    sent(chat, monkeypatch)
    claim(chat, "peerA")
    claim(chat, "peerB", replaces="peerA", present=["peerA", "peerB"])
    assert chat._owner == "peerA"
    claim(chat, "peerB", replaces="peerA", present=["peerB"])
    assert chat._owner == "peerB"


def test_send_renders_rich_objects_as_markdown(monkeypatch: pytest.MonkeyPatch) -> None:
    class Result:
        def _repr_markdown_(self) -> str:
            return "**42**"

    chat = Chat(room="r")
    out = sent(chat, monkeypatch)
    claim(chat, "p")
    chat.send(Result())
    assert out[-1]["content"]["text"] == "**42**"
    with pytest.raises(ValueError):
        chat.send("   ")


def test_on_message_fires_once_per_new_message_in_order() -> None:
    chat = Chat(room="r")
    got: list[str] = []
    chat.on_message(lambda m: got.append(m["id"]))
    chat.on_message(lambda m: 1 / 0)  # a broken callback does not stop the others
    m1 = {"id": "a:1", "author": "a", "time": 1, "text": "hi", "user": {}}
    m2 = {"id": "b:1", "author": "b", "time": 2, "text": "yo", "user": {}}
    chat.messages = [m1]
    chat.messages = [m1, m2]
    chat.messages = [m1, m2]
    assert got == ["a:1", "b:1"]


def test_magic_shows_a_chat_and_replaces_its_own_previous_one() -> None:
    from IPython.testing.globalipapp import get_ipython

    ip = get_ipython()
    ip.run_line_magic("load_ext", "nbchat")
    try:
        first = ip.run_line_magic("chat", "room-1")
        second = ip.run_line_magic("chat", "room-1")
        other = ip.run_line_magic("chat", "room-2")
        assert isinstance(first, Chat) and first.comm is None  # closed: replaced
        assert second.comm is not None and other.comm is not None
        assert other.room == "room-2"
    finally:
        ip.run_line_magic("unload_ext", "nbchat")
    assert "chat" not in ip.magics_manager.magics["line"]


def test_magic_relay_flag_asks_for_relay_only_and_keeps_the_room_name() -> None:
    from IPython.testing.globalipapp import get_ipython

    ip = get_ipython()
    ip.run_line_magic("load_ext", "nbchat")
    try:
        relayed = ip.run_line_magic("chat", "my  room --relay")
        assert (relayed.room, relayed.relay_only) == ("my  room", True)
        assert relayed.get_state()["relay_only"] is True  # synced to the browser
        plain = ip.run_line_magic("chat", "--relayed-room")
        assert (plain.room, plain.relay_only) == ("--relayed-room", False)
        assert Chat("r", relay_only=True).relay_only
    finally:
        ip.run_line_magic("unload_ext", "nbchat")


def test_the_owner_patches_messages_in_batches() -> None:
    chat = Chat(room="r")
    got: list[str] = []
    chat.on_message(lambda m: got.append(m["id"]))
    m = [
        {"id": f"a:{i}", "author": "a", "time": i, "text": str(i), "user": {}} for i in range(1, 5)
    ]
    patch = {"type": "messages", "from": 0, "messages": m[:2], "done": False}
    chat._on_custom(chat, patch, [])
    assert chat.messages == [] and got == []  # nothing until the batch is done
    chat._on_custom(chat, {"type": "messages", "from": 2, "messages": m[2:3], "done": True}, [])
    assert [x["id"] for x in chat.messages] == ["a:1", "a:2", "a:3"]
    # A late message inserted by the log's order replaces the tail from its index.
    late = {"id": "b:1", "author": "b", "time": 0, "text": "late", "user": {}}
    chat._on_custom(
        chat, {"type": "messages", "from": 1, "messages": [late, *m[1:4]], "done": True}, []
    )
    assert [x["id"] for x in chat.messages] == ["a:1", "b:1", "a:2", "a:3", "a:4"]
    assert got == ["a:1", "a:2", "a:3", "b:1", "a:4"]
    # A patch that does not fit what the kernel holds is dropped.
    chat._on_custom(chat, {"type": "messages", "from": 99, "messages": [late], "done": True}, [])
    assert len(chat.messages) == 5


def test_python_and_javascript_halves_share_one_version() -> None:
    import json
    from pathlib import Path

    import nbchat

    package = json.loads((Path(__file__).parents[2] / "package.json").read_text())
    assert package["version"] == nbchat.__version__


def test_magic_shows_the_chat_once_whether_assigned_or_bare(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from IPython.testing.globalipapp import get_ipython

    import nbchat.magics

    shown: list[object] = []
    monkeypatch.setattr(nbchat.magics, "display", shown.append)
    ip = get_ipython()
    ip.run_line_magic("load_ext", "nbchat")
    try:
        ip.run_cell("chat = %chat room-a", store_history=True)
        assert len(shown) == 1  # assigned: the magic displays it
        result = ip.run_cell("%chat room-b", store_history=True)
        assert len(shown) == 1  # bare: IPython displays the result, the magic does not
        assert isinstance(result.result, Chat) and result.result.room == "room-b"
    finally:
        ip.run_line_magic("unload_ext", "nbchat")


def test_the_passphrase_goes_to_a_browser_that_asks_and_is_never_a_trait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chat = Chat(room="r", passphrase="tea at five")
    out = sent(chat, monkeypatch)
    assert chat.has_passphrase
    state = chat.get_state()
    assert "tea at five" not in repr(state)  # what the notebook saves and the browsers sync
    chat._on_custom(chat, {"type": "passphrase?"}, [])
    replies = [m["content"] for m in out if m.get("method") == "custom"]
    assert replies == [{"type": "passphrase", "passphrase": "tea at five"}]
    plain = Chat(room="r")
    out_plain = sent(plain, monkeypatch)
    plain._on_custom(plain, {"type": "passphrase?"}, [])
    assert not plain.has_passphrase and out_plain == []
    with pytest.raises(ValueError, match="empty"):
        Chat(room="r", passphrase="")


def test_magic_asks_for_the_passphrase_without_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    from IPython.testing.globalipapp import get_ipython

    prompts: list[str] = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or "s3cret")
    ip = get_ipython()
    ip.run_line_magic("load_ext", "nbchat")
    try:
        chat = ip.run_line_magic("chat", "team room --passphrase")
        assert chat.room == "team room" and chat.has_passphrase
        assert prompts == ["Passphrase for room 'team room': "]
        assert "s3cret" not in repr(chat.get_state())
        assert not ip.run_line_magic("chat", "open-room").has_passphrase
    finally:
        ip.run_line_magic("unload_ext", "nbchat")


def posts(out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The custom messages a widget sent to its views."""
    return [m["content"] for m in out if m.get("method") == "custom"]


class Browsers:
    """Which browser (kernel session) the kernel is handling a request from."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.current = ""
        monkeypatch.setattr("nbchat.widget.frontend_session", lambda: self.current)

    def here(self, chat: Chat, session: str, peer_id: str) -> None:
        self.current = session
        chat._on_custom(chat, {"type": "here", "peer_id": peer_id}, [])

    def run(self, session: str, chat: Chat, text: str) -> None:
        self.current = session
        chat.send(text)


def test_a_cell_posts_as_the_browser_that_ran_it_not_as_the_owner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chat = Chat(room="shared-kernel")
    out = sent(chat, monkeypatch)
    browsers = Browsers(monkeypatch)
    browsers.here(chat, "ann-session", "peerAnn")
    claim(chat, "peerAnn")  # Ann's browser owns the widget
    browsers.here(chat, "bob-session", "peerBob")
    browsers.run("bob-session", chat, "from Bob's cell")
    browsers.run("ann-session", chat, "from Ann's cell")
    assert posts(out) == [
        {"type": "send", "text": "from Bob's cell", "to": "peerBob"},
        {"type": "send", "text": "from Ann's cell", "to": "peerAnn"},
    ]


def test_a_cell_from_a_browser_that_does_not_show_the_chat_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chat = Chat(room="shared-kernel")
    out = sent(chat, monkeypatch)
    browsers = Browsers(monkeypatch)
    browsers.here(chat, "ann-session", "peerAnn")
    claim(chat, "peerAnn")
    with pytest.raises(RuntimeError, match="shown in other people's browsers but not in yours"):
        browsers.run("carl-session", chat, "would have been Ann's")
    assert posts(out) == []


def test_what_a_browser_posts_before_its_view_is_in_waits_for_that_view(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chat = Chat(room="run-all")
    out = sent(chat, monkeypatch)
    browsers = Browsers(monkeypatch)
    browsers.current = "ann-session"
    chat._repr_mimebundle_()  # Ann's cell displays it (run all: the next cell runs at once)
    browsers.run("ann-session", chat, "first")
    browsers.here(chat, "ann-session", "")  # the view is in, still joining the room
    browsers.run("ann-session", chat, "second")
    assert out == []
    browsers.here(chat, "ann-session", "peerAnn")
    assert [m["text"] for m in posts(out)] == ["first", "second"]
    assert {m["to"] for m in posts(out)} == {"peerAnn"}


def test_a_shared_variable_posts_through_the_runners_own_chat_of_the_room(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ann ran `chat = %chat team`, then Bob did (his own widget); `chat` is whoever's ran last.
    anns, bobs = Chat(room="team"), Chat(room="team")
    out_ann, out_bob = sent(anns, monkeypatch), sent(bobs, monkeypatch)
    browsers = Browsers(monkeypatch)
    browsers.here(anns, "ann-session", "peerAnn")
    browsers.here(bobs, "bob-session", "peerBob")
    browsers.run("bob-session", anns, "Bob, through Ann's variable")
    assert out_ann == []
    assert posts(out_bob) == [
        {"type": "send", "text": "Bob, through Ann's variable", "to": "peerBob"}
    ]


def entry(
    author: str, seq: int, clock: int, user: str, text: str = "", **ext: Any
) -> dict[str, Any]:
    return {
        "id": f"{author}:{seq}",
        "author": author,
        "seq": seq,
        "clock": clock,
        "time": clock,
        "text": text,
        "user": {"username": user, "display_name": user.title()},
        **ext,
    }


def test_messages_show_edits_deletes_reactions_and_replies_and_callbacks_skip_amendments(
    tmp_path: Path,
) -> None:
    chat = Chat(room="r")
    got: list[str] = []
    chat.on_message(lambda m: got.append(m["id"]))
    log = [
        entry("A", 1, 1, "ana", "helo @bo"),
        entry("B", 1, 2, "bo", "yes", reply_to="A:1"),
        entry("A", 2, 3, "ana", "hello @bo", kind="edit", target="A:1"),
        entry("B", 2, 4, "bo", "", kind="react", target="A:1", emoji="👍", on=True),
        entry("B", 3, 5, "bo", "oops"),
        entry("B", 4, 6, "bo", "", kind="delete", target="B:3"),
        entry("B", 5, 7, "bo", "pwned", kind="edit", target="A:1"),  # not bo's to edit
    ]
    chat._on_custom(chat, {"type": "messages", "from": 0, "messages": log, "done": True}, [])
    shown = {m["id"]: m for m in chat.messages}
    assert list(shown) == ["A:1", "B:1", "B:3"] and got == ["A:1", "B:1", "B:3"]
    assert (shown["A:1"]["text"], shown["A:1"]["edited"]) == ("hello @bo", 3)
    assert shown["A:1"]["reactions"] == [{"emoji": "👍", "users": ["bo"]}]
    assert shown["A:1"]["mentions"] == ["bo"] and chat.mentions(shown["A:1"]) == ["bo"]
    assert shown["B:1"]["reply_to"] == "A:1"
    assert (shown["B:3"]["text"], shown["B:3"]["deleted"]) == ("", True)
    markdown = chat.export(tmp_path / "r.md").read_text(encoding="utf-8")
    assert "hello @bo" in markdown and "_message deleted_" in markdown and "👍 bo" in markdown
    exported = json.loads(chat.export(tmp_path / "r.json").read_text(encoding="utf-8"))
    assert exported["format"] == "nbchat-export/1" and len(exported["entries"]) == len(log)


def test_reply_edit_delete_and_react_go_to_the_browser_as_entry_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chat = Chat(room="r")
    out = sent(chat, monkeypatch)
    first = entry("A", 1, 1, "ana", "hi")
    chat._on_custom(chat, {"type": "messages", "from": 0, "messages": [first], "done": True}, [])
    claim(chat, "peerA")
    chat.reply("A:1", "hello back")
    chat.edit("A:1", "hi!")
    chat.delete("A:1")
    chat.react("A:1", "🎉")
    chat.react("A:1", "🎉", on=False)
    posted = [m["content"] for m in out if m.get("method") == "custom"]
    assert [(p["text"], p["fields"], p["to"]) for p in posted] == [
        ("hello back", {"reply_to": "A:1"}, "peerA"),
        ("hi!", {"kind": "edit", "target": "A:1"}, "peerA"),
        ("", {"kind": "delete", "target": "A:1"}, "peerA"),
        ("", {"kind": "react", "target": "A:1", "emoji": "🎉", "on": True}, "peerA"),
        ("", {"kind": "react", "target": "A:1", "emoji": "🎉", "on": False}, "peerA"),
    ]
    with pytest.raises(KeyError, match="no message 'Z:9'"):
        chat.edit("Z:9", "x")


def test_off_the_record_goes_to_the_browser_as_a_switch_and_reads_the_mirrored_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chat = Chat(room="r")
    out = sent(chat, monkeypatch)
    claim(chat, "peerA")
    assert chat.is_off_the_record is False
    chat.off_the_record()
    chat.off_the_record(False)
    posted = [m["content"] for m in out if m.get("method") == "custom"]
    assert [(p["text"], p["fields"]) for p in posted] == [
        ("", {"kind": "record", "on": False}),
        ("", {"kind": "record", "on": True}),
    ]
    # The owner browser mirrors only what is kept: the switches, never what was said off.
    log = [
        entry("A", 1, 1, "ana", "kept"),
        entry("B", 1, 3, "bo", kind="record", on=True),
        entry("A", 2, 2, "ana", kind="record", on=False),
    ]
    chat._on_custom(chat, {"type": "messages", "from": 0, "messages": log, "done": True}, [])
    assert chat.is_off_the_record is False  # bo's switch back on is the later one
    chat._on_custom(
        chat,
        {
            "type": "messages",
            "from": 3,
            "messages": [entry("A", 3, 4, "ana", kind="record", on=False)],
            "done": True,
        },
        [],
    )
    assert chat.is_off_the_record is True
    assert [m["id"] for m in chat.messages] == ["A:1"]  # switches are not messages


def test_only_the_owners_browser_writes_the_kernels_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two browsers show one widget (a shared kernel, or a notebook shared live): a patch
    from the one that does not own it (e.g. the previous owner, late) changes nothing."""
    chat = Chat(room="shared-notebook")
    sent(chat, monkeypatch)
    browsers = Browsers(monkeypatch)
    browsers.here(chat, "ann-session", "peerAnn")
    browsers.here(chat, "bob-session", "peerBob")
    browsers.current = "ann-session"
    claim(chat, "peerAnn")
    m = [{"id": f"a:{i}", "author": "a", "time": i, "text": str(i), "user": {}} for i in (1, 2)]
    chat._on_custom(chat, {"type": "messages", "from": 0, "messages": m, "done": True}, [])
    browsers.current = "bob-session"
    stale = {"id": "b:9", "author": "b", "time": 9, "text": "stale", "user": {}}
    chat._on_custom(chat, {"type": "messages", "from": 1, "messages": [stale], "done": True}, [])
    assert [x["id"] for x in chat.messages] == ["a:1", "a:2"]


def test_a_collaborator_who_sees_the_chat_as_text_learns_how_to_join(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chat = Chat(room="team")
    monkeypatch.setattr("nbchat.widget.frontend_session", lambda: "")
    bundle = chat._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    assert "Trust Notebook" in data["text/plain"]
    assert "%chat team" in data["text/plain"]
