"""Fair admission to one model: a strict first-come, first-served queue in front of one worker
slot, with a bound on how many may wait.

    queue = FairQueue(max_waiting=8)
    with queue.enter(on_position=lambda ahead: print(ahead, "ahead")):
        ...  # the model work; one block at a time, in the order the callers arrived

A plain `threading.Lock` wakes waiters in no particular order; here each caller holds a ticket in
a deque and only the ticket at its head may take the free slot. A caller that finds
`max_waiting` tickets waiting already gets `QueueFullError`, with a Retry-After estimate from a
moving average of recent service times. A caller that has to wait hears, through `on_position`,
how many are ahead of it (the one being served included) each time that number changes, and 0
when its turn comes.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from safellm.errors import QueueFullError

Position = Callable[[int], None]


class _Ticket:
    """One caller's place in the queue (compared by identity)."""

    __slots__ = ()


class FairQueue:
    """One worker slot, granted in arrival order; at most `max_waiting` callers wait for it.

    `default_service_s` seeds the moving average of seconds per served block (`smoothing` is the
    weight of the newest one) that the Retry-After estimate of a refusal is made from."""

    def __init__(
        self, max_waiting: int, *, default_service_s: float = 10.0, smoothing: float = 0.3
    ) -> None:
        if max_waiting < 0:
            raise ValueError(f"max_waiting must be >= 0, not {max_waiting}")
        if not 0 < smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], not {smoothing}")
        self.max_waiting = max_waiting
        self._smoothing = smoothing
        self._avg_s = default_service_s
        self._cond = threading.Condition()
        self._waiting: deque[_Ticket] = deque()
        self._serving: _Ticket | None = None

    # ------------------------------------------------------------------------------- state
    def idle(self) -> bool:
        """Whether no one is served and no one waits."""
        with self._cond:
            return self._serving is None and not self._waiting

    def waiting(self) -> int:
        """How many callers wait (the one being served not counted)."""
        with self._cond:
            return len(self._waiting)

    @property
    def service_s(self) -> float:
        """The moving average of seconds per served block."""
        with self._cond:
            return self._avg_s

    def retry_after_s(self) -> int:
        """Seconds until a newcomer would likely be served: the average service time for each
        waiting caller and the one being served (at least 1)."""
        with self._cond:
            return self._estimate_s()

    # ------------------------------------------------------------------------------- entry
    @contextmanager
    def enter(self, on_position: Position | None = None, *, timed: bool = True) -> Iterator[None]:
        """Hold the slot for the `with` block, once every earlier caller has had it.

        Raises `QueueFullError` at once when `max_waiting` callers wait already (and the slot is
        taken). `on_position(ahead)` is called, outside the queue's lock, whenever the number
        ahead changes while this caller waits, and with 0 when its turn comes; a caller served at
        once hears nothing. `timed=False` keeps the block out of the service-time average (work
        that returns before it is done, such as a prefetch). The slot is released however the
        block ends."""
        ticket = _Ticket()
        with self._cond:
            if (self._serving is not None or self._waiting) and len(
                self._waiting
            ) >= self.max_waiting:
                raise self._full()
            self._waiting.append(ticket)
        try:
            waited = self._wait_for_turn(ticket, on_position)
        except BaseException:
            with self._cond:
                if self._serving is ticket:
                    self._serving = None
                elif ticket in self._waiting:
                    self._waiting.remove(ticket)
                self._cond.notify_all()
            raise
        started = time.perf_counter()
        try:
            if waited and on_position is not None:
                on_position(0)
            yield
        finally:
            with self._cond:
                self._serving = None
                if timed:
                    elapsed = time.perf_counter() - started
                    self._avg_s += self._smoothing * (elapsed - self._avg_s)
                self._cond.notify_all()

    @contextmanager
    def enter_if_idle(self) -> Iterator[bool]:
        """Hold the slot for the `with` block (yielding True) only if no one is served or waits;
        otherwise yield False at once, holding nothing. Untimed: for optional work that must
        never make a caller wait behind more than itself."""
        ticket = _Ticket()
        with self._cond:
            if self._serving is not None or self._waiting:
                got = False
            else:
                self._serving, got = ticket, True
        if not got:
            yield False
            return
        try:
            yield True
        finally:
            with self._cond:
                self._serving = None
                self._cond.notify_all()

    # ----------------------------------------------------------------------------- helpers
    def _estimate_s(self) -> int:
        return max(1, math.ceil(self._avg_s * (len(self._waiting) + 1)))

    def _ahead(self, ticket: _Ticket) -> int:
        return self._waiting.index(ticket) + (self._serving is not None)

    def _wait_for_turn(self, ticket: _Ticket, on_position: Position | None) -> bool:
        """Block until `ticket` holds the slot; whether it had to wait. Positions are reported
        outside the lock, so a slow callback never holds up the queue."""
        reported: int | None = None
        while True:
            with self._cond:
                ahead = self._ahead(ticket)
                while ahead and (on_position is None or ahead == reported):
                    self._cond.wait()
                    ahead = self._ahead(ticket)
                if not ahead:  # at the head and the slot is free: only this ticket may take it
                    self._waiting.popleft()
                    self._serving = ticket
                    return reported is not None
            assert on_position is not None
            on_position(ahead)
            reported = ahead

    def _full(self) -> QueueFullError:
        n, wait_s = len(self._waiting), self._estimate_s()
        busy = (
            f"{n} question{'s are' if n != 1 else ' is'} waiting"
            if n
            else "it is answering another question"
        )
        return QueueFullError(
            f"the model is busy: {busy}; try again in about {wait_s} s "
            f"(at most {self.max_waiting} may wait: SAFELLM_QUEUE_MAX_WAITING)",
            retry_after_s=wait_s,
        )
