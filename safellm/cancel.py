"""Giving up on work nobody waits for: a `CancelToken` is set when a request's client leaves, or
expires at its deadline; the queue and the model's token loop check it, so a generation stops
between two tokens and a waiting question leaves the queue.

    token = CancelToken(deadline_s=120)
    ...                       # on a worker thread: token.check() raises Cancelled once set
    token.cancel()            # from the front end, when its client disconnected
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from safellm.errors import Cancelled

_current = threading.local()


class CancelToken:
    """Set by `cancel()` (reason "cancelled"), or expired `deadline_s` after it was made
    (reason "timed_out")."""

    def __init__(self, deadline_s: float | None = None) -> None:
        self._event = threading.Event()
        self._reason = "cancelled"
        self.deadline = None if deadline_s is None else time.monotonic() + deadline_s

    def cancel(self, reason: str = "cancelled") -> None:
        if not self._event.is_set():
            self._reason = reason
            self._event.set()

    @property
    def reason(self) -> str | None:
        """Why the work must stop ("cancelled", "timed_out"), or None while it may go on."""
        expired = self.deadline is not None and time.monotonic() >= self.deadline
        if expired and not self._event.is_set():
            self.cancel("timed_out")
        return self._reason if self._event.is_set() else None

    def check(self) -> None:
        """Raise `Cancelled` once the work must stop."""
        reason = self.reason
        if reason is not None:
            what = "its deadline passed" if reason == "timed_out" else "its client left"
            raise Cancelled(f"the request was given up: {what}", reason)


@contextmanager
def cancelling(token: CancelToken) -> Iterator[None]:
    """Make `token` the one `check_current` looks at on this thread, for the `with` block (a
    model's own loops, such as a local model's prompt evaluation, check it)."""
    before = getattr(_current, "token", None)
    _current.token = token
    try:
        yield
    finally:
        _current.token = before


def check_current() -> None:
    """Raise `Cancelled` when the work on this thread was given up (nothing when no token)."""
    token = getattr(_current, "token", None)
    if token is not None:
        token.check()


def cancelled_in(exc: BaseException) -> Cancelled | None:
    """The `Cancelled` that `exc` is, or was raised while handling (a library that wraps what a
    callback raised keeps it as the cause or context), if any."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, Cancelled):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None
