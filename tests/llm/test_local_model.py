"""The real packaged model, end to end, offline (assembled from its part packages, sha256-checked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from safellm.config import Settings
from safellm.errors import ContextOverflowError
from safellm.explain.facts import NoteEvidence
from safellm.llm.base import ChatMessage, ChatRequest
from safellm.llm.local import engine
from safellm.llm.prompts import load_prompt
from safellm.llm.registry import get_model
from safellm.rationale import build_request, explain
from safellm.services.explanation import ExplanationService
from tests.samples import explain_json, first_hadm

pytestmark = [pytest.mark.llm, pytest.mark.slow]


def test_local_model_writes_a_cited_rationale(
    demo_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp = explain_json(demo_home, "local", monkeypatch)
    assert exp["versions"]["llm"] == "local:qwen2.5-coder-1.5b"
    assert len(exp["rationale"]["text"].split()) >= 10
    shown = {c["id"] for c in exp["facts"]["contributions"]}
    assert exp["rationale"]["citations"] and set(exp["rationale"]["citations"]) & shown


def test_too_many_notes_leave_out_the_least_relevant_then_overflow_clearly(
    demo_home: Path,
) -> None:
    settings = Settings(home=demo_home, local_n_ctx=1024)
    service = ExplanationService(settings)
    facts = service.facts("readmission", first_hadm(demo_home))
    note = "Patient resting comfortably, vital signs stable, plan unchanged. " * 12
    many = [
        NoteEvidence(id=f"N{i}", note_id=i, category="Nursing", chart_time=None, text=note)
        for i in range(1, 21)
    ]
    prompt = load_prompt(settings.prompts_dir, "explain-risk")
    model = get_model("local", settings)
    exp = explain(facts.model_copy(update={"notes": many}), model, prompt)
    kept = [n.id for n in exp.facts.notes]
    assert 0 < exp.guard.notes_left_out < 20 and kept == [f"N{i}" for i in range(1, len(kept) + 1)]
    assert exp.rationale.text.strip()
    # the prompt and its answer's room: one note more would not have fitted
    request = build_request(exp.facts, prompt, exp.question)
    eng = engine(model.spec)  # type: ignore[attr-defined]
    fits = len(eng.tokens([m.model_dump() for m in request.messages])) + request.max_tokens
    assert fits <= 1024
    more = build_request(facts.model_copy(update={"notes": many[: len(kept) + 1]}), prompt)
    too_long = len(eng.tokens([m.model_dump() for m in more.messages])) + more.max_tokens
    assert too_long > 1024
    # a prompt that leaves the answer too little room is refused before decoding, clearly
    # (decoding past the window failed inside llama.cpp and read "cannot reach the provider")
    near = ChatRequest(
        messages=[ChatMessage(role="user", content="Summarise: " + "stable " * 900)],
        max_tokens=320,
    )
    with pytest.raises(ContextOverflowError, match=r"and its answer.*SAFELLM_LOCAL_N_CTX"):
        model.chat(near)
    tiny = Settings(home=demo_home, local_n_ctx=512)
    with pytest.raises(ContextOverflowError, match=r"context window.*SAFELLM_LOCAL_N_CTX"):
        explain(facts.model_copy(update={"notes": many}), get_model("local", tiny), prompt)


def test_local_judge_tells_supported_from_invented(tmp_path: Path) -> None:
    from safellm.llm.local import LocalJudge

    judge = LocalJudge(Settings(home=tmp_path))
    note = "Poor urine output overnight; creatinine trending up, nephrology consulted."
    yes = judge("Nephrology was consulted because the creatinine was rising.", note)
    no = judge("The patient was intubated for respiratory failure.", note)
    assert 0.0 <= no < 0.42 <= yes <= 1.0


def test_a_cancelled_generation_stops_frees_the_model_and_changes_no_later_answer(
    demo_home: Path,
) -> None:
    """Cancelled during its prompt's evaluation, a local generation stops at the next piece
    (seconds, not the whole prompt); cancelled once its first sentence is shown, at its next
    token; the engine is free afterwards, and the answer that follows is the one a fresh engine
    gives (a partly evaluated prompt is reused in whole pieces only)."""
    import threading
    import time

    from safellm.cancel import CancelToken
    from safellm.errors import Cancelled
    from safellm.services.explanation import Caller

    settings = Settings(home=demo_home, guard_judge=False, prefetch=False)
    service = ExplanationService(settings)
    facts = service.facts("readmission", first_hadm(demo_home))
    eng = engine(service.model("local").spec)  # type: ignore[attr-defined]
    caller = Caller("k", "/test")

    eng.reset(states=True)  # the whole patient part to evaluate: ~20 s here
    token, seen = CancelToken(), []
    threading.Timer(2.0, token.cancel).start()
    started = time.perf_counter()
    with pytest.raises(Cancelled):
        service.explain_facts(facts, caller=caller, on_token=seen.append, cancel=token)
    assert time.perf_counter() - started < 10 and seen == []

    token, seen = CancelToken(), []

    def first_sentence_then_leave(text: str) -> None:
        seen.append(text)
        token.cancel()

    with pytest.raises(Cancelled):
        service.explain_facts(
            facts, caller=caller, on_token=first_sentence_then_leave, cancel=token
        )
    assert len(seen) == 1  # the first sentence only: the rest was never generated

    done, texts = threading.Event(), []

    def again() -> None:
        texts.append(service.explain_facts(facts, caller=caller).rationale.text)
        done.set()

    threading.Thread(target=again, daemon=True).start()
    assert done.wait(240), "the model stayed busy after a cancelled generation"
    eng.reset(states=True)
    fresh = service.explain_facts(facts, caller=caller).rationale.text
    assert "[F1]" in fresh and texts == [fresh]
    outcomes = [r.outcome for r in service.audit.records()][-4:]
    assert outcomes == ["cancelled", "cancelled", "delivered", "delivered"]
