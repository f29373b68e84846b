"""The rationale pipeline: facts and notes into the prompt, citations out, the guard hook called."""

from __future__ import annotations

from safellm.config import Settings
from safellm.explain.facts import Facts
from safellm.llm.fake import FakeChatModel
from safellm.llm.prompts import load_prompt
from safellm.rationale import (
    GuardReport,
    PassThrough,
    RationaleAnswer,
    Violation,
    citations,
    explain,
    fact_lines,
)
from tests.samples import EXPLANATION_KEYS, sample_facts

PROMPT = load_prompt(Settings().prompts_dir, "explain-risk", 1)  # the prose answers of v1


def _facts() -> Facts:
    """The sample patient's first two facts and a short note, under the logistic model."""
    base = sample_facts()
    return base.model_copy(
        update={
            "model": "logreg",
            "prediction": base.prediction.model_copy(update={"risk": 0.42, "model_output": -0.3}),
            "contributions": base.contributions[:2],
            "notes": [base.notes[0].model_copy(update={"text": "Poor urine output overnight."})],
        }
    )


def test_citations_in_order_of_first_use() -> None:
    assert citations("A [F2]. B [F1, N1]. C [F2][N3] and [ F4 ; F1 ]. Not [X1] or [F].") == [
        "F2",
        "F1",
        "N1",
        "N3",
        "F4",
    ]


def test_the_prompt_carries_every_fact_and_note() -> None:
    fake = FakeChatModel()
    explain(_facts(), fake, PROMPT, question="Why so high?")
    user = fake.requests[0].messages[-1].content
    assert "[F1] Creatinine (last) = 2.4 mg/dL; raises the risk (+0.61 log-odds)" in user
    assert "[F2] Age = 44 years; lowers the risk (-0.30 log-odds)" in user
    assert "[N1] (Nursing, 2150-01-01 08:00) Poor urine output overnight." in user
    assert "Predicted risk: 42.0% (band: high)." in user and "Why so high?" in user
    assert fact_lines(_facts()).count("\n") == 1


def test_explanation_shape_and_determinism() -> None:
    a = explain(_facts(), FakeChatModel(), PROMPT)
    b = explain(_facts(), FakeChatModel(), PROMPT)
    assert a.rationale == b.rationale
    assert a.rationale.citations == ["F1", "F2", "N1"]
    assert a.guard == GuardReport(passed=True, attempts=1)
    assert a.versions.prompt == "explain-risk@v1" and a.versions.llm == "fake"
    assert a.versions.risk_model == "logreg@v1" and a.versions.policy == "none"
    assert a.question == "Why is this patient at this risk?"
    dumped = a.model_dump()
    for key in EXPLANATION_KEYS:
        assert key in dumped


def test_guard_hook_can_reask_with_the_violations() -> None:
    fake = FakeChatModel(script=["Age raises the risk [F2].", "Age lowers the risk [F2]."])

    class Strict(PassThrough):
        policy_version = "test@1"

        def __call__(self, facts, draft, reask):  # type: ignore[no-untyped-def]
            problem = Violation(rule="direction", detail="F2 lowers the risk, not raises")
            fixed = reask([problem])
            return fixed, GuardReport(passed=True, attempts=2, violations=[problem])

    exp = explain(_facts(), fake, PROMPT, guard=Strict())
    assert exp.rationale == RationaleAnswer(text="Age lowers the risk [F2].", citations=["F2"])
    assert exp.guard.attempts == 2 and exp.versions.policy == "test@1"
    second = fake.requests[1].messages
    assert second[-2].role == "assistant" and second[-2].content == "Age raises the risk [F2]."
    assert "F2 lowers the risk, not raises" in second[-1].content


def test_streams_tokens_to_the_sink() -> None:
    pieces: list[str] = []
    exp = explain(_facts(), FakeChatModel(), PROMPT, on_token=pieces.append)
    assert "".join(pieces).strip() == exp.rationale.text
