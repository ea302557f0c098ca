"""No page ever hands the browser an ICE server nobody configured (issue 9 §4).

peerjs probes WebRTC support at module load with its own defaults (Google STUN and
peerjs.com TURN); the build rewrites those away. These tests watch every
RTCPeerConnection a page creates, from before any page script runs.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import expect
from tests.support.browser import open_and_run
from tests.support.lab import REPO, Lab
from tests.support.rtc import RECORD_RTC_CONFIGS
from tests.support.widgets import SLOW, messages, room_notebook, say, users


def ice_hosts(config: dict[str, Any] | None) -> set[str]:
    """The host of every ICE server URL in an RTCConfiguration (``stun:h:p``, ``turn:h?…``)."""
    hosts = set()
    for server in (config or {}).get("iceServers") or []:
        urls = server.get("urls") or server.get("url") or []
        for url in [urls] if isinstance(urls, str) else urls:
            rest = re.sub(r"^[a-z]+:", "", url).split("?")[0]
            hosts.add(urlsplit("//" + rest).hostname or rest)
    return hosts


def test_the_bundle_names_no_public_ice_server() -> None:
    bundle = (REPO / "src" / "nbchat" / "static" / "widget.js").read_text()
    for name in ("stun.l.google.com", "peerjs.com"):
        assert name not in bundle


def test_no_peer_connection_is_given_an_unconfigured_ice_server(lab: Lab, new_user) -> None:
    path = room_notebook(lab, "ice-servers", "ice-servers-room")
    a, b = new_user(), new_user()
    for page in (a, b):
        page.add_init_script(RECORD_RTC_CONFIGS)
        open_and_run(page, lab, path)
    for page in (a, b):
        expect(users(page)).to_have_count(2, timeout=SLOW)
    say(a, "over a direct link")
    expect(messages(b)).to_contain_text("over a direct link", timeout=SLOW)

    configured: set[str] = set()  # the lab configures no ICE servers
    for page in (a, b):
        configs: list[dict[str, Any]] = page.evaluate("() => window.__configs")
        # The recorder saw peerjs's probe and the chat's own connection.
        assert len(configs) >= 2, configs
        assert any(c["config"] is not None and c["via"] == "constructor" for c in configs)
        for entry in configs:
            assert ice_hosts(entry["config"]) <= configured, entry
