"""Stand-ins for unit tests of the Python peer: a session config, a user, and just enough
of a ServerSession to build clients without a network."""

from __future__ import annotations

from typing import Any

from yarl import URL

USER = {
    "username": "u1",
    "name": "U One",
    "display_name": "U One",
    "initials": "U",
    "color": None,
    "avatar_url": None,
}
CONFIG = {
    "room": "notebooks/a b.ipynb",
    "key": "notebooks-a-b-ipynb-0123456789abcdef",
    "path": "/a%40b/nbchat/",
    "ice_servers": [],
    "user": USER,
    "ping_interval": 5000,
    "alive_timeout": 60000,
    "max_message_bytes": 65536,
    "version": "0.1.0",
}


class FakeSession:
    """Just enough of ServerSession to build a PresenceClient without a network."""

    def ws_url(self, path: str, query: dict[str, str]) -> URL:
        return URL("ws://127.0.0.1:1" + path)


def presence_entry(peer_id: str, username: str) -> dict[str, Any]:
    return {"peer_id": peer_id, "user": {**USER, "username": username}}
