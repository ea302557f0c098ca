"""Realm limits for unit tests: the settings' own defaults, with a few overridden."""

from __future__ import annotations

from typing import Any

from nbchat.server.realm import Limits
from nbchat.server.settings import SignalingSettings


def limits(**overrides: Any) -> Limits:
    return SignalingSettings(**overrides).limits()
