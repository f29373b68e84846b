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


def test_a_cancelled_generation_stops_and_frees_the_model(demo_home: Path) -> None:
    """Cancelled once its first sentence is shown, a local generation stops at its next token
    and leaves the engine free: the next request is answered (no lock left held by the
    abandoned stream)."""
    import threading

    from safellm.cancel import CancelToken
    from safellm.errors import Cancelled
    from safellm.services.explanation import Caller

    settings = Settings(home=demo_home, guard_judge=False, prefetch=False)
    service = ExplanationService(settings)
    facts = service.facts("readmission", first_hadm(demo_home))
    token, seen = CancelToken(), []

    def on_token(text: str) -> None:
        seen.append(text)
        token.cancel()

    with pytest.raises(Cancelled):
        service.explain_facts(facts, caller=Caller("k", "/test"), on_token=on_token, cancel=token)
    assert len(seen) == 1  # the first sentence only: the rest was never generated
    done = threading.Event()
    result: list[str] = []

    def again() -> None:
        result.append(service.explain_facts(facts, caller=Caller("k", "/test")).rationale.text)
        done.set()

    threading.Thread(target=again, daemon=True).start()
    assert done.wait(240), "the model stayed busy after a cancelled generation"
    assert "[F1]" in result[0]
    assert [r.outcome for r in service.audit.records()][-2:] == ["cancelled", "delivered"]
