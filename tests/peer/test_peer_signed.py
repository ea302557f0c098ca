"""Signed entries between real aiortc peers on a real Jupyter server: authorship holds
end to end, also for history relayed on behalf of someone who has left."""

from __future__ import annotations

from typing import Any

import pytest
from tests.support.peers import Inbox, connection_to, until

from nbchat.core.signing import entry_digest, generate_key, sign_entry

pytestmark = pytest.mark.timeout(120)


async def test_history_forged_for_a_departed_author_is_dropped_everywhere(connect: Any) -> None:
    room = "signed-history"
    async with connect(room) as mallory:
        async with connect(room) as alice:
            assert await alice.wait_for_peers(1)
            hello = await alice.send("hello, the numbers are final")
            await until(lambda: len(mallory.conversation) == 1)
        # Alice has left. Bob arrives and gets her message from Mallory's history,
        # vouched for by Alice's certificate: it shows as Alice's.
        async with connect(room) as bob:
            await until(lambda: len(bob.conversation) == 1)
            assert bob.conversation[0]["user"]["username"] == alice.user["username"]
            # Mallory now forges, in Alice's name: a new message, an edit and a delete of
            # hers, signed with a key that is not Alice's; and a message from an author
            # no server ever vouched for.
            wrong_key = generate_key()
            forged = [
                {"author": alice.id, "seq": 2, "clock": 9, "text": "wire me the money"},
                {"author": alice.id, "seq": 3, "clock": 10, "text": "wrong", "kind": "edit"},
                {"author": alice.id, "seq": 4, "clock": 11, "text": "", "kind": "delete"},
                {"author": "nobody", "seq": 1, "clock": 12, "text": "trust me"},
            ]
            for entry in forged:
                entry.update(time=1, user=alice.user)
                if "kind" in entry:
                    entry["target"] = hello["id"]
                entry["sig"] = sign_entry(wrong_key, mallory.config.key, entry)  # type: ignore[union-attr]
            # A replayed copy of Alice's real message, retargeted, fails too.
            replayed = {**hello, "seq": 5, "kind": "delete", "target": hello["id"]}
            inbox = Inbox(bob)
            link = await connection_to(mallory, bob.id)
            assert link.send({"type": "history", "messages": [*forged, replayed]})
            honest = await mallory.send("just me")
            await until(lambda: any(m["id"] == honest["id"] for m in inbox.items))
            assert [(s["id"], s["text"], s["deleted"], s["edited"]) for s in bob.conversation] == [
                (hello["id"], "hello, the numbers are final", False, None),
                (honest["id"], "just me", False, None),
            ]
            assert all(m["id"] != f"{alice.id}:2" for m in bob.history)


async def author_who_left(
    connect: Any, room: str, holder: Any, count: int
) -> tuple[Any, list[dict[str, Any]]]:
    """A peer that joined ``room``, said ``line 1`` … ``line {count}`` until ``holder`` held
    them all, and left: its entries now reach others only through ``holder``."""
    async with connect(room) as author:
        assert await author.wait_for_peers(1)
        sent = [await author.send(f"line {n}") for n in range(1, count + 1)]
        await until(lambda: len(holder.conversation) == count)
    return author, sent


async def test_signed_entries_go_on_the_wire_without_id_or_claimed_user(
    connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signed entry's frame leaves out ``id`` (author and seq make it) and ``user`` (the
    certificate names the author): live, and in a history answer for a peer that joins
    after the author left. The receivers still show the ids and the certified identity."""
    import copy

    from nbchat.peer import ChatPeer

    arrived: list[tuple[str, dict[str, Any]]] = []
    verified = ChatPeer._verified  # noqa: SLF001 (where a frame from the wire is first read)

    def recording(self: ChatPeer, connection: Any, frame: dict[str, Any]) -> Any:
        if frame.get("type") in ("message", "history"):
            arrived.append((self.id or "", copy.deepcopy(frame)))
        return verified(self, connection, frame)

    monkeypatch.setattr(ChatPeer, "_verified", recording)
    room = "signed-wire"
    async with connect(room) as bob:
        alice, sent = await author_who_left(connect, room, bob, 3)
        async with connect(room) as carol:
            await until(lambda: len(carol.conversation) == 3)
            expected = [(m["id"], alice.user["username"]) for m in sent]
            assert [(s["id"], s["user"]["username"]) for s in carol.conversation] == expected
            assert [(s["id"], s["user"]["username"]) for s in bob.conversation] == expected
            assert {who for who, _ in arrived} == {bob.id, carol.id}
    entries = [
        entry
        for _, frame in arrived
        for entry in ([frame["message"]] if frame["type"] == "message" else frame["messages"])
    ]
    assert len(entries) >= 6
    assert [sorted({"id", "user"} & set(entry)) for entry in entries] == [[]] * len(entries)


async def test_a_direct_message_without_a_valid_signature_is_dropped(connect: Any) -> None:
    async with connect("signed-direct") as a, connect("signed-direct") as b:
        assert await a.wait_for_peers(1) and await b.wait_for_peers(1)
        inbox = Inbox(a)
        link = await connection_to(b, a.id)
        unsigned = {"seq": 50, "clock": 50, "time": 1, "text": "unsigned", "user": b.user}
        assert link.send({"type": "message", "message": unsigned})
        honest = await b.send("signed")
        [got] = await inbox.wait(1)
        assert got["id"] == honest["id"] and got["sig"] == honest["sig"]
        assert [s["text"] for s in a.conversation] == ["signed"]


async def test_a_hash_chained_history_costs_one_check_and_a_tampered_entry_in_it_is_dropped(
    connect: Any,
) -> None:
    room = "signed-chain"
    async with connect(room) as mallory:
        alice, sent = await author_who_left(connect, room, mallory, 6)
        # Alice's entries are chained: each names the digest of the one before.
        assert "prev" not in sent[0]
        assert (
            [m["prev"] for m in sent[1:]]
            == [
                entry_digest(alice.config.key, m)  # type: ignore[union-attr]
                for m in sent[:-1]
            ]
        )
        # Alice has left. Bob gets her six entries from Mallory's answer: one chained run,
        # one signature checked.
        async with connect(room) as bob:
            await until(lambda: len(bob.conversation) == 6)
            assert [s["user"]["username"] for s in bob.conversation] == [alice.user["username"]] * 6
            assert bob._certs is not None and bob._certs.checks == 1  # noqa: SLF001
        # Mallory alters the third entry of her copy. Carol, alone with her, gets the run
        # with it: that entry is dropped, the entries before and after it are kept.
        mallory.history[2]["text"] = "wire me the money"
        async with connect(room) as carol:
            await until(lambda: len(carol.conversation) == 5)
            honest = await mallory.send("just me")
            await until(lambda: len(carol.conversation) == 6)
            assert [s["text"] for s in carol.conversation] == [
                *(f"line {n}" for n in (1, 2, 4, 5, 6)),
                honest["text"],
            ]
            book = carol._certs  # noqa: SLF001 (what the peer checked)
            assert book is not None and book.refused == {"bad_signature": 1}
            # The run 1–3 fails at 3, then 1 and 2 are checked one by one; 4–6 is one run;
            # Mallory's own message is one more.
            assert book.checks == 5


async def test_an_authors_certificate_rides_in_its_first_entrys_frame_once_per_link(
    connect: Any,
) -> None:
    """No ``certs`` frame ahead of the entries (a packet and its acknowledgement per link an
    author's first entry crosses, on aiortc, which sends each frame in a packet of its own):
    the certificate goes in the entry's frame, the first time on that link."""
    import json

    async with connect("signed-carried") as a, connect("signed-carried") as b:
        assert await a.wait_for_peers(1) and await b.wait_for_peers(1)
        link = await connection_to(a, b.id)
        assert link.channel is not None
        on_wire: list[dict[str, Any]] = []
        send = link.channel.send

        def recording(data: bytes | str) -> None:
            frame = json.loads(data)
            if frame.get("type") in ("message", "history", "certs"):
                on_wire.append(frame)
            send(data)

        link.channel.send = recording  # type: ignore[method-assign]
        inbox = Inbox(b)
        first, second = await a.send("one"), await a.send("two")
        got = await inbox.wait(2)
        assert [m["id"] for m in got] == [first["id"], second["id"]]
        assert [f["type"] for f in on_wire] == ["message", "message"]
        assert [c["peer"] for c in on_wire[0]["certs"]] == [a.id]
        assert "certs" not in on_wire[1]
        assert [m["user"]["username"] for m in got] == [a.user["username"]] * 2
