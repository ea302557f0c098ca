"""ICE settings of NbChatApp (TURN with short-lived credentials, relay-only) and the part
of the session config they produce."""

from __future__ import annotations

import os
from typing import Any

from traitlets import Enum, Float, HasTraits, List, Unicode, default, validate

from .turn import TURN_SCHEMES, turn_ice_server

__all__ = ["IceSettings"]


class IceSettings(HasTraits):
    """Part of the signaling settings: ``NbChatApp.turn_urls`` (the Jupyter extension) or
    ``SignalingApp.turn_urls`` (the standalone service), etc."""

    turn_urls: List[str] = List(
        Unicode(),
        [],
        config=True,
        help=(
            "TURN server URLs (turn:host:port?transport=udp, turns:host:5349, ...). With "
            "turn_secret set, every session config gets one ICE server with these URLs and "
            "credentials minted for the requesting user that expire after turn_ttl."
        ),
    )
    turn_secret = Unicode(
        config=True,
        help=(
            "The TURN server's shared secret (coturn: --use-auth-secret "
            "--static-auth-secret=...). Defaults to the NBCHAT_TURN_SECRET environment "
            "variable. It never leaves the server: browsers get derived credentials only."
        ),
    )
    turn_ttl = Float(
        3600.0,
        config=True,
        help="Seconds a minted TURN credential stays valid (a connection made with it "
        "keeps working after that; a new session config gets a fresh one).",
    )
    ice_transport_policy = Enum(
        ["all", "relay"],
        "all",
        config=True,
        help=(
            "'relay' makes every peer use only TURN-relayed ICE candidates, so no peer "
            "learns another's IP addresses (needs turn_urls/turn_secret or a TURN entry in "
            "ice_servers). 'all' also allows direct host and STUN candidates."
        ),
    )

    @default("turn_secret")
    def _turn_secret_from_env(self) -> str:
        return os.environ.get("NBCHAT_TURN_SECRET", "")

    @validate("turn_urls")
    def _only_turn_urls(self, proposal: Any) -> list[str]:
        urls: list[str] = proposal["value"]
        wrong = [u for u in urls if not u.startswith(TURN_SCHEMES)]
        if wrong:
            raise ValueError(f"turn_urls must start with turn: or turns:, not {wrong}")
        return urls

    def session_ice(
        self, ice_servers: list[dict[str, Any]], user: str, now: float
    ) -> dict[str, Any]:
        """The session config's ICE keys for ``user`` at unix time ``now``."""
        servers = list(ice_servers)
        if self.turn_urls and not self.turn_secret and not getattr(self, "_warned", False):
            self._warned = True
            log = getattr(self, "log", None)
            if log is not None:
                log.warning(
                    "nbchat: turn_urls is set but turn_secret is not: no TURN server "
                    "is handed out (set NbChatApp.turn_secret or NBCHAT_TURN_SECRET)"
                )
        if self.turn_urls and self.turn_secret:
            servers.append(
                turn_ice_server(self.turn_urls, self.turn_secret, user, now, self.turn_ttl)
            )
        return {"ice_servers": servers, "ice_transport_policy": self.ice_transport_policy}
