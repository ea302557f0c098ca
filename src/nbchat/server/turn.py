"""TURN REST credentials (coturn's ``--use-auth-secret``): short-lived, per user, no I/O.

A TURN server configured with a shared ``static-auth-secret`` accepts any username of the
form ``"<unix expiry>:<anything>"`` whose password is ``base64(HMAC-SHA1(secret,
username))``, until the expiry passes. The server mints one per session request, so a
browser never holds the secret and a leaked credential dies after ``ttl`` seconds.
See https://datatracker.ietf.org/doc/html/draft-uberti-behave-turn-rest-00 and coturn's
``turnserver(1)``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

__all__ = ["TURN_SCHEMES", "turn_ice_server", "turn_password", "turn_username"]

TURN_SCHEMES = ("turn:", "turns:")


def turn_username(user: str, now: float, ttl: float) -> str:
    """``"<expiry>:<user>"``, the expiry as whole unix seconds ``ttl`` from ``now``."""
    return f"{int(now + ttl)}:{user}"


def turn_password(secret: str, username: str) -> str:
    """``base64(HMAC-SHA1(secret, username))``, what coturn recomputes to check us."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def turn_ice_server(
    urls: list[str], secret: str, user: str, now: float, ttl: float
) -> dict[str, Any]:
    """An RTCIceServer dict for ``user``, valid for ``ttl`` seconds from ``now``."""
    username = turn_username(user, now, ttl)
    return {"urls": list(urls), "username": username, "credential": turn_password(secret, username)}
