"""Fair admission to one model: a strict first-come, first-served queue in front of one worker
slot, with a bound on how many may wait.

    queue = FairQueue(max_waiting=8)
    with queue.enter(on_position=lambda ahead: print(ahead, "ahead")):
        ...  # the model work; one block at a time, in the order the callers arrived

A caller that must prepare its work first (the Facts of a question) reserves its place before
(`reserve`), so that a crowd arriving at once is refused before any of it is prepared, and then
hands the place to `enter(place=...)`; an unused place is given back with `release`, or lapses
after `hold_s`.

A plain `threading.Lock` wakes waiters in no particular order; here each caller holds a ticket in
a deque and only the ticket at its head may take the free slot. A caller that finds
`max_waiting` tickets waiting already gets `QueueFullError`, with a Retry-After estimate from a
moving average of recent service times. A caller that has to wait hears, through `on_position`,
how many are ahead of it (the one being served included) each time that number changes, and 0
when its turn comes.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from safellm.cancel import CancelToken
from safellm.errors import QueueFullError

Position = Callable[[int], None]
CANCEL_POLL_S = 0.25  # how often a waiting caller looks at its cancel token


def background(nice: int) -> None:
    """Lower the calling thread's CPU priority to `nice` (Linux sets it per thread; threads it
    starts inherit it). Never the main thread, never raised back: the worker threads that make
    Facts and run the model then leave the cores to the server's event loop (/health,
    predictions, refusals) whenever it has something to do, and take all of them otherwise."""
    if nice <= 0 or threading.current_thread() is threading.main_thread():
        return
    if not hasattr(os, "setpriority"):  # not on this platform
        return
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError:  # not allowed here: the work runs at the priority it has
        pass


class _Ticket:
    """One caller's place in the queue (compared by identity), whose it is, and until when a
    reserved place is kept (`reserve`)."""

    __slots__ = ("expires", "owner")

    def __init__(self, owner: str | None = None, expires: float = math.inf) -> None:
        self.owner = owner
        self.expires = expires


Place = _Ticket  # what `reserve` gives and `enter(place=...)` / `release` take


class FairQueue:
    """One worker slot, granted in arrival order; at most `max_waiting` callers wait for it.

    `default_service_s` seeds the moving average of seconds per served block (`smoothing` is the
    weight of the newest one) that the Retry-After estimate of a refusal is made from."""

    def __init__(
        self,
        max_waiting: int,
        *,
        per_owner: int = 0,
        default_service_s: float = 10.0,
        smoothing: float = 0.3,
    ) -> None:
        """`per_owner`: at most this many places (waiting or served) for one owner (an API
        key), so one key cannot fill the queue; 0: no such share."""
        if max_waiting < 0:
            raise ValueError(f"max_waiting must be >= 0, not {max_waiting}")
        if not 0 < smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], not {smoothing}")
        self.max_waiting = max_waiting
        self.per_owner = per_owner
        self._smoothing = smoothing
        self._avg_s = default_service_s
        self._cond = threading.Condition()
        self._waiting: deque[_Ticket] = deque()
        self._serving: _Ticket | None = None
        self._reserved: list[_Ticket] = []  # places held by callers still preparing their work

    # ------------------------------------------------------------------------------- state
    def idle(self) -> bool:
        """Whether no one is served, waits or holds a reserved place."""
        with self._cond:
            self._lapse()
            return self._serving is None and not self._waiting and not self._reserved

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
    def enter(
        self,
        on_position: Position | None = None,
        *,
        timed: bool = True,
        cancel: CancelToken | None = None,
        owner: str | None = None,
        place: Place | None = None,
    ) -> Iterator[None]:
        """Hold the slot for the `with` block, once every earlier caller has had it.

        Raises `QueueFullError` at once when `max_waiting` callers wait already (and the slot is
        taken). `on_position(ahead)` is called, outside the queue's lock, whenever the number
        ahead changes while this caller waits, and with 0 when its turn comes; a caller served at
        once hears nothing. `timed=False` keeps the block out of the service-time average (work
        that returns before it is done, such as a prefetch). The slot is released however the
        block ends. A set `cancel` token takes a waiting caller out of the queue (`Cancelled`).
        An `owner` that holds `per_owner` places already gets `QueueFullError` at once too. A
        `place` from `reserve` (not yet lapsed or released) is taken without those checks."""
        with self._cond:
            if place is not None and place in self._reserved:
                self._reserved.remove(place)
                ticket = place
            else:
                ticket = _Ticket(owner if place is None else place.owner)
                self._refuse_if_full(ticket.owner)
            self._waiting.append(ticket)
        try:
            waited = self._wait_for_turn(ticket, on_position, cancel)
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
            self._lapse()
            if self._serving is not None or self._waiting or self._reserved:
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

    def reserve(self, owner: str | None = None, hold_s: float = 60.0) -> Place:
        """A place in the queue for work still being prepared, counted at once against the
        bound and the owner's share (`QueueFullError` as `enter` would raise it): hand it to
        `enter(place=...)`, or give it back with `release`. Unused, it lapses after `hold_s`."""
        with self._cond:
            self._refuse_if_full(owner)
            place = _Ticket(owner, time.monotonic() + hold_s)
            self._reserved.append(place)
            return place

    def release(self, place: Place | None) -> None:
        """Give back a reserved place that will not be used (nothing if it was used, lapsed or
        released already)."""
        if place is None:
            return
        with self._cond:
            if place in self._reserved:
                self._reserved.remove(place)
                self._cond.notify_all()

    # ----------------------------------------------------------------------------- helpers
    def _lapse(self) -> None:
        """Drop reserved places past their time (their caller never came back)."""
        if self._reserved:
            now = time.monotonic()
            self._reserved = [p for p in self._reserved if p.expires > now]

    def _refuse_if_full(self, owner: str | None) -> None:
        self._lapse()
        queued = len(self._waiting) + len(self._reserved)
        if (self._serving is not None or queued) and queued >= self.max_waiting:
            raise self._full()
        if owner is not None and self.per_owner:
            held = [t for t in (self._serving, *self._waiting, *self._reserved) if t is not None]
            mine = sum(t.owner == owner for t in held)
            if mine >= self.per_owner:
                raise QueueFullError(
                    f"this key has {mine} questions in the queue already (at most "
                    f"{self.per_owner}: SAFELLM_QUEUE_PER_KEY); try again in about "
                    f"{self._estimate_s()} s",
                    self._estimate_s(),
                )

    def _estimate_s(self) -> int:
        return max(1, math.ceil(self._avg_s * (len(self._waiting) + len(self._reserved) + 1)))

    def _ahead(self, ticket: _Ticket) -> int:
        return self._waiting.index(ticket) + (self._serving is not None)

    def _wait_for_turn(
        self, ticket: _Ticket, on_position: Position | None, cancel: CancelToken | None
    ) -> bool:
        """Block until `ticket` holds the slot; whether it had to wait. Positions are reported
        outside the lock, so a slow callback never holds up the queue; `cancel` is looked at
        every `CANCEL_POLL_S` while waiting."""
        reported: int | None = None
        while True:
            with self._cond:
                ahead = self._ahead(ticket)
                while ahead and (on_position is None or ahead == reported):
                    if cancel is not None:
                        cancel.check()
                    self._cond.wait(CANCEL_POLL_S if cancel is not None else None)
                    ahead = self._ahead(ticket)
                if not ahead:  # at the head and the slot is free: only this ticket may take it
                    self._waiting.popleft()
                    self._serving = ticket
                    return reported is not None
            assert on_position is not None
            on_position(ahead)
            reported = ahead

    def _full(self) -> QueueFullError:
        n, wait_s = len(self._waiting) + len(self._reserved), self._estimate_s()
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
