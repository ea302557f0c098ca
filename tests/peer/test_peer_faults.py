"""Python peer under faults, without a browser: what a reconnect's roster may and may not mean."""

from __future__ import annotations

from typing import Any

from tests.support.fakes import CONFIG, FakeSession, presence_entry

from nbchat.core.session import SessionConfig
from nbchat.peer import PresenceEvent
from nbchat.peer.presence import PresenceClient


def test_a_fresh_roster_marks_the_changes_it_implies() -> None:
    """After a server restart the first roster lists only who is back so far: departures
    read from it are marked, so the peer keeps open links a while instead of dropping them."""
    events: list[PresenceEvent] = []
    client = PresenceClient(FakeSession(), SessionConfig.from_json(CONFIG), events.append)  # type: ignore[arg-type]
    key = CONFIG["key"]
    frame: dict[str, Any] = {
        "type": "ROSTER",
        "key": key,
        "peers": [presence_entry("a", "ua"), presence_entry("b", "ub")],
    }
    client._on_frame(frame)
    client._on_frame({"type": "USER_DISCONNECTED", "key": key, "peer": presence_entry("a", "ua")})
    client._on_frame({"type": "ROSTER", "key": key, "peers": [presence_entry("c", "uc")]})
    assert [(e.type, e.peer["peer_id"], e.from_roster) for e in events] == [
        ("USER_DISCONNECTED", "a", False),  # the server said so
        ("USER_DISCONNECTED", "b", True),  # inferred: b may only be slow to reconnect
        ("USER_CONNECTED", "c", True),
    ]
