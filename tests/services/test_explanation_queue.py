"""The explanation use case with several users at once: one model behind a fair queue (queue
positions streamed, a full queue refused), and the background prefetch of a patient's prompt."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from safellm.audit import AuditLog
from safellm.config import Settings
from safellm.errors import QueueFullError
from safellm.explain.facts import Facts
from safellm.guard.guard import ClinicalGuard
from safellm.guard.policy import load_policy
from safellm.llm.base import ChatRequest, ChatResponse, Prefetching, TokenSink
from safellm.llm.fake import FakeChatModel
from safellm.llm.retrieval import EmbeddingSupport, HashEmbedder
from safellm.services.explanation import Ask, Caller, Event, ExplanationService
from tests.samples import PrefetchingFake, sample_facts

TIMEOUT_S = 20
CALLER = Caller("k-test", "test")


class GatedFake(FakeChatModel):
    """The fake model, holding each answer until `go` is set (`started` says one has begun)."""

    def __init__(self) -> None:
        super().__init__()
        self.started, self.go = threading.Event(), threading.Event()

    def chat(self, request: ChatRequest, on_token: TokenSink | None = None) -> ChatResponse:
        self.started.set()
        assert self.go.wait(TIMEOUT_S), "the test never released the model"
        return super().chat(request, on_token)


def make_service(tmp_path: Path, model: FakeChatModel, **settings: object) -> ExplanationService:
    return ExplanationService(
        Settings(home=tmp_path / "home", llm_model="fake", guard_judge=False, **settings),  # type: ignore[arg-type]
        guard=ClinicalGuard(load_policy(), EmbeddingSupport(HashEmbedder())),
        models={"fake": model},
        audit=AuditLog(tmp_path / "audit.sqlite"),
    )


def collect(events: Iterator[Event]) -> tuple[list[Event], threading.Thread]:
    """Drain `events` on a thread; the list fills as they come."""
    got: list[Event] = []
    thread = threading.Thread(target=lambda: got.extend(events), daemon=True)
    thread.start()
    return got, thread


@pytest.fixture
def facts() -> Facts:
    return sample_facts()


# ---------------------------------------------------------------------------------- queue
def test_a_second_stream_hears_its_place_then_its_answer(tmp_path: Path, facts: Facts) -> None:
    model = GatedFake()
    service = make_service(tmp_path, model)
    first, t1 = collect(service.stream(facts, caller=CALLER))
    assert model.started.wait(TIMEOUT_S)  # the first question holds the model
    second = service.stream(facts, caller=CALLER)
    head = next(second)
    assert (head.kind, head.ahead) == ("queued", 1)
    assert service.queue.waiting() == 1
    model.go.set()
    rest = list(second)
    t1.join(TIMEOUT_S)
    kinds = [e.kind for e in rest]
    assert rest[0].kind == "queued" and rest[0].ahead == 0  # its turn: "your question is next"
    assert "queued" not in kinds[1:] and kinds.count("token") >= 3 and kinds[-1] == "done"
    assert [e.kind for e in first if e.kind == "queued"] == []  # served at once: no position
    assert first[-1].kind == "done" and rest[-1].explanation is not None
    assert service.queue.idle()


def test_a_full_queue_refuses_with_retry_after(tmp_path: Path, facts: Facts) -> None:
    model = GatedFake()
    service = make_service(tmp_path, model, queue_max_waiting=0)
    first, t1 = collect(service.stream(facts, caller=CALLER))
    assert model.started.wait(TIMEOUT_S)
    with pytest.raises(QueueFullError) as info:
        service.explain_facts(facts, caller=CALLER)
    assert info.value.retry_after_s > 0 and "busy" in str(info.value)
    streamed = list(service.stream(facts, caller=CALLER))  # a stream says it as its error event
    assert [e.kind for e in streamed] == ["error"]
    assert isinstance(streamed[0].error, QueueFullError)
    model.go.set()
    t1.join(TIMEOUT_S)
    assert first[-1].kind == "done"
    assert len(service.audit.records()) == 1  # refused questions are not explanations served
    assert service.explain_facts(facts, caller=CALLER).guard.passed  # free again


# ------------------------------------------------------------------------------- prefetch
def test_prefetch_hands_the_model_the_request_explain_sends(tmp_path: Path, facts: Facts) -> None:
    model = PrefetchingFake()
    assert isinstance(model, Prefetching)
    service = make_service(tmp_path, model)
    assert service.prefetch(facts) is True
    assert model.done.wait(TIMEOUT_S)
    service.explain_facts(facts, caller=CALLER)
    (prefetched,), asked = model.prefetched, model.requests[0]
    assert prefetched.messages == asked.messages
    assert prefetched.grammar == asked.grammar
    # another question: everything before the question is the same prompt
    model.requests.clear()
    service.explain_facts(facts, caller=CALLER, ask=Ask("Why is creatinine so important?"))
    other = model.requests[0].messages
    assert other[:-1] == prefetched.messages[:-1]
    before = prefetched.messages[-1].content.rpartition("Question:")[0]
    assert before and other[-1].content.startswith(before)
    assert service.queue.idle()


def test_prefetch_unit_makes_the_facts_in_the_background(tmp_path: Path, facts: Facts) -> None:
    model = PrefetchingFake()
    service = make_service(tmp_path, model)
    gate, asked = threading.Event(), []

    def slow_facts(
        task: str,
        hadm_id: int | None = None,
        icustay_id: int | None = None,
        question: str | None = None,
    ) -> Facts:
        asked.append((task, hadm_id, icustay_id))
        assert gate.wait(TIMEOUT_S)
        return facts

    service.facts = slow_facts  # type: ignore[method-assign]
    assert service.prefetch_unit("readmission", hadm_id=10) is True  # returns before the facts
    assert not model.done.is_set()
    assert service.prefetch_unit("readmission", hadm_id=11) is False  # one at a time
    gate.set()
    assert model.done.wait(TIMEOUT_S)
    assert asked == [("readmission", 10, None)] and len(model.prefetched) == 1
    deadline = time.monotonic() + TIMEOUT_S
    while service._prefetching and time.monotonic() < deadline:
        time.sleep(0.01)
    assert service.prefetch(facts) is True  # that one done: the next may start


def test_no_prefetch_for_a_model_that_cannot(tmp_path: Path, facts: Facts) -> None:
    service = ExplanationService(
        Settings(home=tmp_path / "home", llm_model="fake", guard_judge=False),
        models={"fake": FakeChatModel()},
        audit=AuditLog(tmp_path / "audit.sqlite"),
    )
    assert service.prefetch(facts) is False
    assert service.prefetch_unit("readmission", hadm_id=10) is False
    assert service._guard is None  # nothing was built for nothing


def test_no_prefetch_when_switched_off(tmp_path: Path, facts: Facts) -> None:
    model = PrefetchingFake()
    service = ExplanationService(
        Settings(home=tmp_path / "home", llm_model="fake", guard_judge=False, prefetch=False),
        models={"fake": model},
        audit=AuditLog(tmp_path / "audit.sqlite"),
    )
    assert service.prefetch(facts) is False
    assert service.prefetch_unit("readmission", hadm_id=10) is False
    assert service._guard is None and model.prefetched == []


def test_no_prefetch_while_the_model_is_busy(tmp_path: Path, facts: Facts) -> None:
    model = PrefetchingFake()
    service = make_service(tmp_path, model)
    with service.queue.enter():
        assert service.prefetch(facts) is False
    assert model.prefetched == []
