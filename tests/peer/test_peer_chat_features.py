"""Replies, edits, deletes, reactions, mentions, typing and export between real aiortc
peers on a real Jupyter server: what one peer does, every peer shows the same way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.support.peers import Inbox, connection_to, until

from nbchat.peer import ChatPeer, NbChatError

pytestmark = pytest.mark.timeout(120)


def shown(peer: ChatPeer) -> list[tuple[str, str, bool, bool, list[Any], str | None]]:
    return [
        (s["id"], s["text"], s["edited"] is not None, s["deleted"], s["reactions"], s["reply_to"])
        for s in peer.conversation
    ]


async def test_replies_edits_reactions_and_deletes_show_the_same_everywhere(connect: Any) -> None:
    async with connect("features") as a, connect("features") as b:
        assert await a.wait_for_peers(1) and await b.wait_for_peers(1)
        question = await a.send("lunch at 12?")
        typo = await a.send("wrong room, sorry")
        await until(lambda: len(b.conversation) == 2)
        answer = await b.reply(question["id"], "yse")
        await b.edit(answer["id"], "yes")
        await until(lambda: len(a.conversation) == 3)
        await a.react(answer["id"], "👍")
        await b.react(answer["id"], "👍")
        await b.react(answer["id"], "🎉")
        await b.react(answer["id"], "🎉", on=False)
        await a.delete(typo["id"])
        expected = [
            (question["id"], "lunch at 12?", False, False, [], None),
            (typo["id"], "", False, True, [], None),
            (
                answer["id"],
                "yes",
                True,
                False,
                [{"emoji": "👍", "users": sorted([a.user["username"], b.user["username"]])}],
                question["id"],
            ),
        ]
        await until(lambda: shown(a) == expected and shown(b) == expected)
        # Amendments are log entries: a late joiner gets them by history sync.
        async with connect("features") as late:
            await until(lambda: shown(late) == expected)


async def test_nobody_edits_or_deletes_another_users_message(connect: Any) -> None:
    async with connect("own-only") as a, connect("own-only") as b:
        assert await a.wait_for_peers(1) and await b.wait_for_peers(1)
        original = await a.send("the numbers are final")
        await until(lambda: len(b.conversation) == 1)
        with pytest.raises(NbChatError, match="only edit your own"):
            await b.edit(original["id"], "the numbers are wrong")
        with pytest.raises(NbChatError, match="only delete your own"):
            await b.delete(original["id"])
        # A hostile peer skips the check and sends the amendments anyway.
        inbox = Inbox(a)
        link = await connection_to(b, a.id)
        forged = [
            {"seq": 90, "clock": 50, "time": 1, "text": "pwned", "kind": "edit"},
            {"seq": 91, "clock": 51, "time": 1, "text": "", "kind": "delete"},
        ]
        for entry in forged:
            entry.update(target=original["id"], user=b.user)
            assert link.send({"type": "message", "message": entry})
        honest = await b.send("sorry, that was not me")
        await until(lambda: any(m["id"] == honest["id"] for m in inbox.items))
        state = a.message(original["id"])
        assert (state["text"], state["edited"], state["deleted"]) == (
            "the numbers are final",
            None,
            False,
        )


async def test_mentions_typing_and_export(connect: Any, tmp_path: Path) -> None:
    async with connect("calls") as a, connect("calls") as b:
        assert await a.wait_for_peers(1) and await b.wait_for_peers(1)
        inbox = Inbox(a)
        await b.set_typing()
        await until(lambda: a.typing == [b.user["display_name"]])
        call = await b.send(f"@{a.user['username']} can you rerun cell 4?")
        [got] = await inbox.wait(1)
        assert a.typing == []  # a message ends its author's typing
        assert a.mentions_me(got) and not b.mentions_me(got)
        assert a.mentions(got) == [a.user["username"]]
        await a.reply(call["id"], "done")
        await a.react(call["id"], "✅")
        await until(lambda: len(b.conversation) == 2 and b.conversation[0]["reactions"] != [])
        markdown = b.export(tmp_path / "calls.md").read_text(encoding="utf-8")
        assert "can you rerun cell 4?" in markdown and "done" in markdown
        assert f"✅ {a.user['username']}" in markdown and "> ↪ **" in markdown
        exported = b.export(tmp_path / "calls.json")
        document = json.loads(exported.read_text(encoding="utf-8"))
        assert document["format"] == "nbchat-export/1" and len(document["entries"]) == 3
        assert {c["peer"] for c in document["certs"]} == {e["author"] for e in document["entries"]}
        before = shown(b)
    # A forger adds an entry the author never signed and makes another claim to be Mallory.
    first = document["entries"][0]
    mallory = {"username": "mallory", "name": "Mallory", "display_name": "Mallory"}
    forged = {**first, "id": f"{first['author']}:9", "seq": 9, "clock": 9, "text": "wire money"}
    tampered = tmp_path / "tampered.json"
    entries = [{**first, "user": mallory}, *document["entries"][1:], forged]
    tampered.write_text(json.dumps({**document, "entries": entries}), encoding="utf-8")
    # Everyone has left; a newcomer alone in the room loads the export: the forged entry is
    # left out, the claimed author replaced by the certified one.
    async with connect("calls") as alone:
        assert alone.import_history(tampered) == 3
        assert shown(alone) == before
        assert alone.import_history(exported) == 0
        with pytest.raises(ValueError, match="not 'elsewhere'"):
            async with connect("elsewhere") as other:
                other.import_history(exported)
