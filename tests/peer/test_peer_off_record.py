"""Off the record between real aiortc peers on a real Jupyter server: the switch is a
signed log entry every peer (and a late joiner) folds the same way, what is said while
off is shown but never exported, and no relay can strip the flag or forge a switch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.support.peers import Inbox, connection_to, signed, until, vouch

from nbchat.core.signing import generate_key, sign_entry

pytestmark = pytest.mark.timeout(120)


async def test_the_switch_reaches_everyone_and_nothing_said_off_is_exported(
    connect: Any, tmp_path: Path
) -> None:
    async with connect("otr") as ana, connect("otr") as bo:
        assert await ana.wait_for_peers(1) and await bo.wait_for_peers(1)
        kept = await ana.send("on the record")
        switch = await ana.off_the_record()
        assert switch is not None and switch["kind"] == "record" and switch["on"] is False
        assert await ana.off_the_record() is None  # already off: no second switch
        await until(lambda: bo.is_off_the_record)
        secret = await ana.send("between us")
        assert secret.get("off_record") is True  # flagged, and signed with the flag
        await until(lambda: any(s["id"] == secret["id"] for s in bo.conversation))
        answer = await bo.reply(secret["id"], "agreed")
        await bo.react(kept["id"], "👍")  # a reaction to a kept message stays kept
        assert answer.get("off_record") is True
        await until(lambda: len(ana.conversation) == 3)
        assert ana.off_record(answer["id"]) and bo.off_record(secret["id"])
        # Anyone may put it back on the record.
        back = await bo.off_the_record(False)
        assert back is not None
        await until(lambda: not ana.is_off_the_record)
        after = await ana.send("back on the record")
        assert "off_record" not in after
        await until(lambda: len(bo.conversation) == 4)
        # A late joiner gets the switches by history sync, folds the same state, and gets
        # what was said off the record while someone present holds it (in memory).
        async with connect("otr") as late:
            await until(lambda: len(late.conversation) == 4)
            assert not late.is_off_the_record
            assert [late.off_record(s["id"]) for s in late.conversation] == [
                False,
                True,
                True,
                False,
            ]
            for peer in (ana, bo, late):
                exported = json.loads(peer.export(tmp_path / f"{peer.id}.json").read_text("utf-8"))
                ids = [e["id"] for e in exported["entries"]]
                assert secret["id"] not in ids and answer["id"] not in ids
                assert kept["id"] in ids and after["id"] in ids and switch["id"] in ids
                markdown = peer.export(tmp_path / f"{peer.id}.md").read_text("utf-8")
                assert "between us" not in markdown and "agreed" not in markdown
                assert "on the record" in markdown and "👍" in markdown


async def test_a_stripped_flag_or_a_forged_switch_is_refused(connect: Any) -> None:
    room = "otr-hostile"
    async with connect(room) as mallory:
        async with connect(room) as ana:
            assert await ana.wait_for_peers(1)
            await ana.off_the_record()
            secret = await ana.send("between us")
            await until(lambda: len(mallory.conversation) == 1)
        # Ana has left. Bo arrives; Mallory relays him Ana's entries, tampered with.
        async with connect(room) as bo:
            await until(lambda: len(bo.conversation) == 1 and bo.is_off_the_record)
            assert bo.off_record(secret["id"])
            link = await connection_to(mallory, bo.id)
            stripped = {k: v for k, v in secret.items() if k != "off_record"}
            stripped.update(seq=7, clock=40)  # a fresh id: not a duplicate of the real one
            stripped["sig"] = secret["sig"]
            forged_switch = {
                "author": ana.id,
                "seq": 8,
                "clock": 41,
                "time": 1,
                "text": "",
                "user": ana.user,
                "kind": "record",
                "on": True,
            }
            forged_switch["sig"] = sign_entry(generate_key(), mallory.config.key, forged_switch)  # type: ignore[union-attr]
            replayed_on = {**secret, "seq": 9, "kind": "record", "on": True}  # Ana's sig, reused
            refused_before = dict(bo._certs.refused)
            inbox = Inbox(bo)
            assert link.send(
                {"type": "history", "messages": [stripped, forged_switch, replayed_on]}
            )
            # Mallory's own entries count only as hers: an unflagged message she signs while
            # the room is off is still off the record for Bo (his fold says so).
            vouch(mallory, link)
            sneaky = signed(
                mallory,
                {"seq": 50, "clock": 42, "time": 1, "text": "not flagged", "user": mallory.user},
            )
            sneaky_id = f"{mallory.id}:50"
            assert link.send({"type": "message", "message": sneaky})
            await until(lambda: any(m["id"] == sneaky_id for m in inbox.items))
            assert (
                bo._certs.refused.get("bad_signature", 0) - refused_before.get("bad_signature", 0)
                == 3
            )
            assert bo.is_off_the_record  # no forged switch turned it back on
            assert [s["id"] for s in bo.conversation] == [secret["id"], sneaky_id]
            assert bo.off_record(sneaky_id)
