"""API keys (constant-time comparison, ids and never keys in logs) and per-key rate limiting."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import deque
from typing import Any


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


class LoginThrottle:
    """Failed sign-ins slow down the next ones, per client or per user name (`who`): after
    `free` failures, each next try must wait 2, 4, 8 … seconds (at most `max_wait_s`) after the
    last failure; failures older than `window_s` are forgotten; a success clears them."""

    def __init__(
        self,
        free: int = 5,
        window_s: float = 900.0,
        max_wait_s: float = 300.0,
        clock: object = time.monotonic,
    ) -> None:
        self.free, self.window_s, self.max_wait_s = free, window_s, max_wait_s
        self.clock = clock
        self._failed: dict[str, tuple[int, float]] = {}  # who -> (failures, time of the last)
        self._lock = threading.Lock()

    def wait(self, who: str) -> float:
        """Seconds before `who` may try again (0: now)."""
        now = self.clock()  # type: ignore[operator]
        with self._lock:
            n, last = self._failed.get(who, (0, now))
            if now - last >= self.window_s:
                self._failed.pop(who, None)
                return 0.0
            if n < self.free:
                return 0.0
            return max(0.0, min(2.0 ** (n - self.free + 1), self.max_wait_s) - (now - last))

    def failed(self, who: str) -> None:
        now = self.clock()  # type: ignore[operator]
        with self._lock:
            if len(self._failed) > 10_000:  # bounded: forget the stale ones
                for k in [k for k, (_, t) in self._failed.items() if now - t >= self.window_s]:
                    del self._failed[k]
            n, last = self._failed.get(who, (0, now))
            self._failed[who] = (0 if now - last >= self.window_s else n) + 1, now

    def succeeded(self, who: str) -> None:
        with self._lock:
            self._failed.pop(who, None)


def header_timeout_protocol(seconds: float) -> type:
    """uvicorn's h11 protocol, closing a connection whose next request's headers are not
    complete `seconds` after it opened or after its last response (a slow-headers client
    otherwise holds the connection as long as it likes: any data it sends disarms uvicorn's
    keep-alive timer)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutH11(H11Protocol):
        _header_timer: Any = None
        _waiting_after: Any = None  # the request cycle before the awaited one

        def _arm(self) -> None:
            self._disarm()
            self._waiting_after = self.cycle
            self._header_timer = self.loop.call_later(seconds, self._too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _too_slow(self) -> None:
            self._header_timer = None
            if self.cycle is self._waiting_after and not self.transport.is_closing():
                self.transport.close()  # no new request began: its headers never came

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is not self._waiting_after:  # a request's headers are complete
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutH11
