"""The rationale pipeline: facts and notes into the prompt, citations out, the guard hook called."""

from __future__ import annotations

import pytest

from safellm.config import Settings
from safellm.errors import ContextOverflowError, LLMTimeoutError
from safellm.explain.facts import Facts
from safellm.llm.base import ChatRequest, ChatResponse, TokenSink
from safellm.llm.fake import FakeChatModel, grounded_answer
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


def test_a_compact_prompt_leaves_out_effect_sizes_times_and_repeated_sentences() -> None:
    """explain-risk v3: the same facts and directions, the same note ids and fences; no SHAP
    values or chart times; a sentence shown in an earlier chunk is left out of a later one, and
    what is shown of a chunk is its own text, so a claim about it holds for the whole chunk."""
    base = _facts()
    n1 = base.notes[0].model_copy(update={"text": "Lives alone. Poor urine output overnight."})
    n2 = n1.model_copy(
        update={"id": "N2", "text": "Poor urine output overnight.  Lives alone. Febrile."}
    )
    n3 = n1.model_copy(update={"id": "N3", "text": "Lives alone."})
    facts = base.model_copy(update={"notes": [n1, n2, n3]})
    fake = FakeChatModel()
    v3 = load_prompt(Settings().prompts_dir, "explain-risk", 3)
    explain(facts, fake, v3)
    explain(facts, fake, load_prompt(Settings().prompts_dir, "explain-risk", 2))
    compact, full = (r.messages[-1].content for r in fake.requests)
    assert "[F1] Creatinine (last) = 2.4 mg/dL; raises\n[F2] Age = 44 years; lowers\n" in compact
    assert "log-odds" not in compact and "2150-01-01" not in compact
    lines = {ln[:4]: ln for ln in compact.splitlines() if ln.startswith("[N")}
    assert "Lives alone. Poor urine output overnight." in lines["[N1]"]
    assert "Febrile." in lines["[N2]"] and "Lives alone" not in lines["[N2]"]
    assert "(repeats the notes above)" in lines["[N3]"] and "<<end " in lines["[N3]"]
    assert all(f"[{c.id}]" in full for c in facts.contributions)
    assert len(compact) < len(full) - 100
    # the fake model (a reader of fact lines) answers the same from either form
    answers = [grounded_answer(r) for r in fake.requests]
    assert answers[0] == answers[1] and "{F2} {F2.dir}" in answers[0]


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


class Window(FakeChatModel):
    """The fake model with a context window of `limit` characters of prompt (all messages)."""

    def __init__(self, limit: int, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.limit = limit
        self.sizes: list[int] = []

    def chat(self, request: ChatRequest, on_token: TokenSink | None = None) -> ChatResponse:
        size = sum(len(m.content) for m in request.messages)
        self.sizes.append(size)
        if size > self.limit:
            raise ContextOverflowError(f"the prompt ({size} chars) exceeds the context window")
        return super().chat(request, on_token=on_token)


class Grounded(PassThrough):
    """No checks, but a grounded answer to fall back on (as the clinical guard has)."""

    def fallback(self, facts: Facts, error: Exception | None = None) -> RationaleAnswer:
        return RationaleAnswer(text="Grounded summary [F1].", citations=["F1"])


def _many_notes(n: int) -> Facts:
    base = _facts()
    note = base.notes[0]
    notes = [
        note.model_copy(update={"id": f"N{i}", "note_id": i, "text": f"Note {i}: " + "words " * 40})
        for i in range(1, n + 1)
    ]
    return base.model_copy(update={"notes": notes})


def test_a_prompt_too_long_leaves_out_the_least_relevant_notes_until_it_fits() -> None:
    facts = _many_notes(6)
    sizes = Window(10**9)
    explain(facts, sizes, PROMPT)
    explain(facts.model_copy(update={"notes": facts.notes[:2]}), sizes, PROMPT)
    full, two = sizes.sizes
    model = Window((two + (full - two) // 4 + two) // 2)  # room for two notes, not three
    pieces: list[str] = []
    exp = explain(facts, model, PROMPT, on_token=pieces.append)
    assert [n.id for n in exp.facts.notes] == ["N1", "N2"]
    assert exp.guard.notes_left_out == 4 and not exp.guard.fallback_used
    assert len(model.sizes) == 5 and model.sizes[-1] == two  # N6, N5, N4, N3 out, one by one
    sent = model.requests[-1].messages[-1].content
    assert "Note 2:" in sent and "Note 3:" not in sent
    assert "".join(pieces).strip() == exp.rationale.text  # the failed tries streamed nothing
    assert "N3" not in exp.rationale.citations


def test_a_prompt_too_long_even_without_notes_is_a_clear_error_or_the_fallback() -> None:
    facts = _many_notes(3)
    with pytest.raises(ContextOverflowError, match="context window"):
        explain(facts, Window(10), PROMPT)
    exp = explain(facts, Window(10), PROMPT, guard=Grounded(), fallback=True)
    assert exp.guard.fallback_used and exp.guard.rules == ["llm.error"]
    assert exp.guard.notes_left_out == 3 and exp.rationale.text == "Grounded summary [F1]."


def test_a_failing_reask_falls_back_when_asked_to() -> None:
    class Timeout(FakeChatModel):
        def chat(self, request: ChatRequest, on_token: TokenSink | None = None) -> ChatResponse:
            if self.requests:
                raise LLMTimeoutError("no answer within 1 s")
            return super().chat(request, on_token=on_token)

    class Strict(Grounded):
        def __call__(self, facts, draft, reask):  # type: ignore[no-untyped-def]
            return reask([Violation(rule="direction", detail="wrong")]), GuardReport(
                passed=True, attempts=2
            )

    with pytest.raises(LLMTimeoutError):
        explain(_facts(), Timeout(), PROMPT, guard=Strict())
    exp = explain(_facts(), Timeout(), PROMPT, guard=Strict(), fallback=True)
    assert exp.guard.fallback_used and exp.guard.attempts == 2
    assert exp.guard.rules == ["llm.error"] and "no answer within 1 s" in str(exp.guard.violations)
