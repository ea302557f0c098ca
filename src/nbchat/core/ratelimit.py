"""Per-connection limits on incoming data-channel frames (docs/protocol.md §4): pure, no I/O.

Mirrored by js/core/rateLimit.ts and pinned by tests/fixtures/ratelimit.json. Time is in
milliseconds from an injected clock, as in the browser.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

__all__ = [
    "FLOOD_WARNING_MS",
    "FRAME_RATE",
    "MESSAGE_RATE",
    "IncomingLimits",
    "Rate",
    "TokenBucket",
    "monotonic_ms",
]


class Rate(NamedTuple):
    rate: float  # tokens per second
    burst: float


#: Live chat messages are human-paced, and a bot's burst fits in the burst; other frames
#: (history batches, chunks, syncs) come in bursts when a link opens.
MESSAGE_RATE = Rate(20, 200)
FRAME_RATE = Rate(200, 2_000)
#: At most one warning per connection this often while it floods.
FLOOD_WARNING_MS = 5_000


def monotonic_ms() -> float:
    return time.monotonic() * 1000


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``."""

    def __init__(self, rate: float, burst: float, now: Callable[[], float] = monotonic_ms):
        self.rate = rate
        self.burst = burst
        self._now = now
        self._tokens = float(burst)
        self._last = now()

    def take(self) -> bool:
        """Take one token; False (and nothing taken) when the bucket is empty."""
        now = self._now()
        self._tokens = min(self.burst, self._tokens + ((now - self._last) / 1000) * self.rate)
        self._last = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class IncomingLimits:
    """The incoming limits of one connection, and a count of what it dropped."""

    def __init__(self, now: Callable[[], float] = monotonic_ms) -> None:
        self._now = now
        self._messages = TokenBucket(*MESSAGE_RATE, now=now)
        self._frames = TokenBucket(*FRAME_RATE, now=now)
        self._dropped = 0
        self._warned_at = -float("inf")

    def accept(self, is_message: bool) -> bool:
        """Whether to accept a frame; ``is_message`` for live ``message`` frames."""
        if (self._messages if is_message else self._frames).take():
            return True
        self._dropped += 1
        return False

    def report(self) -> int | None:
        """Frames dropped since the last report, when a report is due (else None)."""
        now = self._now()
        if self._dropped == 0 or now - self._warned_at < FLOOD_WARNING_MS:
            return None
        dropped, self._dropped, self._warned_at = self._dropped, 0, now
        return dropped
