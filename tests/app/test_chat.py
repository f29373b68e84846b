"""The chat's handlers without a browser: the queue position shown while a question waits, and
the prefetch started when a patient is picked."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.chat import build_chat, queue_message
from safellm.audit import AuditLog
from safellm.config import Settings
from safellm.explain.facts import Facts
from safellm.guard.guard import ClinicalGuard
from safellm.guard.policy import load_policy
from safellm.llm.fake import FakeChatModel
from safellm.llm.retrieval import EmbeddingSupport, HashEmbedder
from safellm.services.explanation import ExplanationService
from tests.samples import PrefetchingFake, sample_facts

TIMEOUT_S = 30


@pytest.mark.parametrize(
    ("ahead", "shown"),
    [
        (3, "⏳ 3 questions ahead of yours…"),
        (1, "⏳ 1 question ahead of yours…"),
        (0, "⏳ Your question is next…"),
    ],
)
def test_queue_message(ahead: int, shown: str) -> None:
    assert queue_message(ahead) == shown


def _service(tmp_path: Path, model: FakeChatModel) -> ExplanationService:
    service = ExplanationService(
        Settings(home=tmp_path / "home", llm_model="fake", guard_judge=False),
        guard=ClinicalGuard(load_policy(), EmbeddingSupport(HashEmbedder())),
        models={"fake": model},
        audit=AuditLog(tmp_path / "audit.sqlite"),
    )

    def facts_of(task: str, row: Any, question: str | None = None) -> Facts:
        return sample_facts()

    service.facts_of = facts_of  # type: ignore[method-assign]
    return service


def _handler(service: ExplanationService, name: str) -> Callable[..., Any]:
    """The chat's event handler called `name` (no task listed: no data needed to build it)."""
    chat = build_chat(service, [])
    # one function, bound to every trigger of it (the Ask button and Enter in the question box)
    (fn,) = {f.fn for f in chat.fns.values() if getattr(f.fn, "__name__", "") == name}
    assert fn is not None
    return fn


def test_a_waiting_question_shows_its_place_until_the_answer_comes(tmp_path: Path) -> None:
    service = _service(tmp_path, FakeChatModel())
    ask = _handler(service, "ask")
    held, go = threading.Event(), threading.Event()

    def other_user() -> None:
        with service.queue.enter():
            held.set()
            go.wait(TIMEOUT_S)

    threading.Thread(target=other_user, daemon=True).start()
    assert held.wait(TIMEOUT_S)
    steps = ask("readmission", "10", "Why?", [], SimpleNamespace(username=None))
    history, _, _ = next(steps)
    assert history[-1] == {"role": "assistant", "content": "⏳ 1 question ahead of yours…"}
    go.set()
    history, _, _ = next(steps)
    assert history[-1]["content"] == "⏳ Your question is next…"
    shown = [h[-1]["content"] for h, _, _ in steps]
    assert shown and not any("⏳" in s for s in shown)
    assert "[F1]" in shown[-1] and "Could not answer" not in shown[-1]


def test_picking_a_patient_prefetches_its_prompt(tmp_path: Path) -> None:
    model = PrefetchingFake()
    pick = _handler(_service(tmp_path, model), "pick")
    head, *_ = pick("readmission", "10")
    assert "Predicted" in head
    assert model.done.wait(TIMEOUT_S)
    assert "Creatinine" in model.prefetched[0].messages[-1].content
