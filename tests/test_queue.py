"""The fair queue in front of the one model: FIFO under contention, the bound with its
Retry-After, positions while waiting, and a slot released however the served block ends."""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Callable

import pytest

from safellm.errors import QueueFullError
from safellm.queueing import FairQueue

TIMEOUT_S = 10


def wait_until(cond: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.002)


class Holder:
    """A thread that holds the queue's slot until `release()`."""

    def __init__(self, q: FairQueue) -> None:
        self.entered, self.go = threading.Event(), threading.Event()

        def hold() -> None:
            with q.enter():
                self.entered.set()
                self.go.wait(TIMEOUT_S)

        self.thread = threading.Thread(target=hold, daemon=True)
        self.thread.start()
        assert self.entered.wait(TIMEOUT_S)

    def release(self) -> None:
        self.go.set()
        self.thread.join(TIMEOUT_S)


def test_callers_are_served_in_arrival_order() -> None:
    q = FairQueue(max_waiting=20)
    holder = Holder(q)
    served: list[int] = []
    threads = []
    for i in range(12):

        def work(i: int = i) -> None:
            with q.enter():
                served.append(i)
                time.sleep(0.001)

        t = threading.Thread(target=work, daemon=True)
        t.start()
        threads.append(t)
        wait_until(lambda: q.waiting() == len(threads))  # queued before the next starts
    holder.release()
    for t in threads:
        t.join(TIMEOUT_S)
    assert served == list(range(12))
    assert q.idle() and q.waiting() == 0


def test_the_bound_refuses_with_a_retry_after() -> None:
    q = FairQueue(max_waiting=2, default_service_s=4.0)
    holder = Holder(q)
    waiters = []  # two callers waiting behind the holder
    for _ in range(2):

        def wait_in_line() -> None:
            with q.enter():
                pass

        t = threading.Thread(target=wait_in_line, daemon=True)
        t.start()
        waiters.append(t)
    wait_until(lambda: q.waiting() == 2)
    with pytest.raises(QueueFullError) as info, q.enter():
        pytest.fail("a third waiting caller must be refused")
    err = info.value
    assert err.retry_after_s == 12  # 4 s each: the two waiting and the one being served
    assert "2 questions are waiting" in str(err) and "12 s" in str(err)
    assert pickle.loads(pickle.dumps(err)).retry_after_s == 12
    assert q.waiting() == 2  # the refused caller left no ticket behind
    holder.release()
    for t in waiters:
        t.join(TIMEOUT_S)
    assert q.idle()
    with q.enter():  # room again
        assert not q.idle()


def test_no_waiting_room_refuses_while_busy_and_admits_when_free() -> None:
    q = FairQueue(max_waiting=0)
    with q.enter():  # free: served at once
        with pytest.raises(QueueFullError) as info, q.enter():
            pass
        assert info.value.retry_after_s >= 1
    with q.enter():
        pass


def test_positions_count_down_to_zero() -> None:
    q = FairQueue(max_waiting=5)
    holder = Holder(q)
    gates = [threading.Event() for _ in range(2)]
    threads = []
    for gate in gates:

        def ahead_of_me(gate: threading.Event = gate) -> None:
            with q.enter():
                gate.wait(TIMEOUT_S)

        t = threading.Thread(target=ahead_of_me, daemon=True)
        t.start()
        threads.append(t)
        wait_until(lambda: q.waiting() == len(threads))
    seen: list[int] = []
    served = threading.Event()

    def last() -> None:
        with q.enter(on_position=seen.append):
            served.set()

    t = threading.Thread(target=last, daemon=True)
    t.start()
    wait_until(lambda: seen == [3])  # the holder and two waiting ahead
    holder.release()
    wait_until(lambda: seen == [3, 2])
    gates[0].set()
    wait_until(lambda: seen == [3, 2, 1])
    assert not served.is_set()
    gates[1].set()
    assert served.wait(TIMEOUT_S)
    t.join(TIMEOUT_S)
    assert seen == [3, 2, 1, 0]


def test_a_caller_served_at_once_hears_no_position() -> None:
    q = FairQueue(max_waiting=1)
    seen: list[int] = []
    with q.enter(on_position=seen.append):
        pass
    assert seen == []


def test_an_exception_in_the_block_releases_the_slot() -> None:
    q = FairQueue(max_waiting=0)
    with pytest.raises(RuntimeError, match="boom"), q.enter():
        raise RuntimeError("boom")
    assert q.idle()
    with q.enter():  # not refused: the slot is free again
        pass


def test_a_failing_position_callback_leaves_the_queue_clean() -> None:
    q = FairQueue(max_waiting=3)
    holder = Holder(q)

    def broken(_ahead: int) -> None:
        raise ValueError("client went away")

    with pytest.raises(ValueError), q.enter(on_position=broken):
        pass
    assert q.waiting() == 0
    holder.release()
    assert q.idle()


def test_service_time_is_averaged_into_the_estimate() -> None:
    q = FairQueue(max_waiting=3, default_service_s=100.0, smoothing=0.5)
    with q.enter():
        pass
    assert q.service_s < 51  # (100 + ~0) / 2
    with q.enter(timed=False):
        time.sleep(0.05)
    assert q.service_s < 51  # untimed work leaves it
    assert q.retry_after_s() == pytest.approx(q.service_s, abs=1)


def test_enter_if_idle_never_waits() -> None:
    q = FairQueue(max_waiting=3)
    with q.enter_if_idle() as ours:
        assert ours and not q.idle()
        with q.enter_if_idle() as again:
            assert not again
    assert q.idle()


def test_a_negative_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="max_waiting"):
        FairQueue(max_waiting=-1)


def test_one_key_holds_at_most_its_share_and_others_still_get_in() -> None:
    q = FairQueue(max_waiting=8, per_owner=2)
    go = threading.Event()

    def wait_as(owner: str) -> threading.Thread:
        def run() -> None:
            with q.enter(owner=owner):
                go.wait(TIMEOUT_S)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    threads = [wait_as("a"), wait_as("a")]  # one served, one waiting: a's share
    wait_until(lambda: q.waiting() == 1)
    with (
        pytest.raises(QueueFullError, match="this key has 2 questions") as info,
        q.enter(owner="a"),
    ):
        pytest.fail("a third place for the same key must be refused")
    assert info.value.retry_after_s >= 1
    threads.append(wait_as("b"))  # another key still gets a place
    wait_until(lambda: q.waiting() == 2)
    go.set()
    for t in threads:
        t.join(TIMEOUT_S)
    assert q.idle()


def test_reserved_places_count_against_the_bound_and_the_share_before_any_work() -> None:
    """A crowd that arrives at once is refused while the admitted are still preparing: the
    places are reserved first (nobody has entered yet, so a mere look at the queue would have
    let every one of them through)."""
    q = FairQueue(max_waiting=3, per_owner=2)
    a1, a2 = q.reserve("a"), q.reserve("a")
    with pytest.raises(QueueFullError, match="this key has 2 questions"):
        q.reserve("a")
    b1 = q.reserve("b")
    with pytest.raises(QueueFullError, match="at most 3 may wait"):
        q.reserve("c")
    assert not q.idle()
    with q.enter_if_idle() as got:  # optional work does not jump ahead of a reserved question
        assert not got
    q.release(b1)
    q.release(b1)  # twice: nothing more
    c1 = q.reserve("c")
    for place in (a1, a2, c1):
        with q.enter(place=place):
            pass
    assert q.idle()


def test_a_reserved_place_is_taken_even_when_the_queue_filled_up_meanwhile() -> None:
    q = FairQueue(max_waiting=1)
    holder = Holder(q)
    place = q.reserve("a")  # the one waiting place
    with pytest.raises(QueueFullError):
        q.reserve("b")
    served = threading.Event()

    def run() -> None:
        with q.enter(place=place):
            served.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    wait_until(lambda: q.waiting() == 1)
    holder.release()
    assert served.wait(TIMEOUT_S)
    t.join(TIMEOUT_S)
    assert q.idle()


def test_an_unused_reservation_lapses() -> None:
    q = FairQueue(max_waiting=0)
    q.reserve("a", hold_s=0.05)  # its caller never comes back
    with pytest.raises(QueueFullError):
        q.reserve("b")
    time.sleep(0.1)
    assert q.idle()
    late = q.reserve("b")
    with q.enter(place=late):
        pass


def test_background_lowers_a_worker_threads_priority_only() -> None:
    """The threads that make Facts and run the model yield the cores to the event loop: their
    nice value rises (Linux: per thread); the main thread's is left alone; 0 changes nothing."""
    import os

    from safellm.queueing import background

    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    background(7)  # on the main thread: nothing
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before
    seen: dict[str, int] = {}

    def worker(nice: int, name: str) -> None:
        background(nice)
        seen[name] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    for nice, name in ((7, "lowered"), (0, "unchanged")):
        t = threading.Thread(target=worker, args=(nice, name))
        t.start()
        t.join(TIMEOUT_S)
    assert seen == {"lowered": max(7, main_before), "unchanged": main_before}
