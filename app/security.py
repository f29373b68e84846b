"""API keys (constant-time comparison, ids and never keys in logs) and per-key rate limiting."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import deque


def key_id(key: str) -> str:
    """A short, stable id for a key: what logs and the audit trail carry instead of the key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


class KeyRing:
    def __init__(self, keys: list[str]) -> None:
        self._keys = [k.encode("utf-8") for k in keys if k]

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def check(self, presented: str) -> str | None:
        """The key id when `presented` is a configured key, else None. Every configured key is
        compared, each in constant time, so timing says nothing about which one matched."""
        given = presented.encode("utf-8")
        match = None
        for k in self._keys:
            if hmac.compare_digest(k, given):
                match = k
        return key_id(match.decode("utf-8")) if match is not None else None


class RateLimiter:
    """At most `per_minute` requests per key in any sliding 60-second window."""

    def __init__(self, per_minute: int, clock: object = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, who: str) -> tuple[bool, float]:
        """(allowed, seconds until the next request would be allowed)."""
        now = self.clock()  # type: ignore[operator]
        with self._lock:
            hits = self._hits.setdefault(who, deque())
            while hits and now - hits[0] >= 60.0:
                hits.popleft()
            if len(hits) >= self.per_minute:
                return False, 60.0 - (now - hits[0])
            hits.append(now)
            return True, 0.0
