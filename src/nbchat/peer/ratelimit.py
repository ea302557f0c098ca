"""Per-connection limits on incoming data-channel frames (as js/rateLimit.ts): pure, no I/O."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["FLOOD_WARNING_INTERVAL", "FRAME_RATE", "MESSAGE_RATE", "IncomingLimits", "TokenBucket"]

#: (per second, burst). Live chat messages are human-paced, and a bot's burst fits in the
#: burst; other frames (history batches, chunks, syncs) come in bursts when a link opens.
MESSAGE_RATE = (20.0, 200.0)
FRAME_RATE = (200.0, 2000.0)
#: At most one warning per connection this often (seconds) while it floods.
FLOOD_WARNING_INTERVAL = 5.0


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``."""

    def __init__(self, rate: float, burst: float, now: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self._now = now
        self._tokens = burst
        self._last = now()

    def take(self) -> bool:
        """Take one token; False (and nothing taken) when the bucket is empty."""
        now = self._now()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class IncomingLimits:
    """The incoming limits of one connection, and a count of what it dropped."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
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
        if self._dropped == 0 or now - self._warned_at < FLOOD_WARNING_INTERVAL:
            return None
        dropped, self._dropped, self._warned_at = self._dropped, 0, now
        return dropped
