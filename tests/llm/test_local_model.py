"""The real packaged model, end to end, offline (assembled from its part packages, sha256-checked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from safellm.config import Settings
from safellm.errors import ContextOverflowError
from safellm.explain.facts import NoteEvidence
from safellm.llm.prompts import load_prompt
from safellm.llm.registry import get_model
from safellm.rationale import explain
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


def test_too_many_notes_overflow_the_context_clearly(demo_home: Path, tmp_path: Path) -> None:
    settings = Settings(home=demo_home, local_n_ctx=1024)
    service = ExplanationService(settings)
    facts = service.facts("readmission", first_hadm(demo_home))
    note = "Patient resting comfortably, vital signs stable, plan unchanged. " * 12
    many = [
        NoteEvidence(id=f"N{i}", note_id=i, category="Nursing", chart_time=None, text=note)
        for i in range(1, 21)
    ]
    with pytest.raises(ContextOverflowError, match=r"context window.*SAFELLM_LOCAL_N_CTX"):
        explain(
            facts.model_copy(update={"notes": many}),
            get_model("local", settings),
            load_prompt(settings.prompts_dir, "explain-risk"),
        )


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
    from safellm.llm.local import engine
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
