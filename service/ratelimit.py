"""Requests per token: a token bucket per caller, refilled at AUTOMODEL_API_RATE_PER_MINUTE.

A bucket holds a tenth of a minute's allowance (at least 10), so a page that loads a few things at once or a
client that sends a short burst is served, and a runaway loop is told to wait (429 with Retry-After).
"""

from __future__ import annotations

import threading
import time


class RateLimiter:
    def __init__(self, per_minute: int):
        self.per_minute = int(per_minute)
        self.capacity = max(10.0, self.per_minute / 10)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> float:
        """0 when the request may go ahead, else how many seconds to wait before the next one."""
        if self.per_minute <= 0:
            return 0.0
        rate = self.per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / rate
