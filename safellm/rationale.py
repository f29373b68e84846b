"""Facts + note evidence → prompt → model → guards → Explanation.

The model sees the top contributions as lines `[F1] <label> = <value>; raises the risk (...)` and the
note chunks as `[N1] (<category>, <time>) <text>`, and answers in prose with inline citations. The
answer becomes `{text, citations}`; the guard step (`GuardStep`) then decides what is shown: here a
pass-through, filled in by the guard layer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from safellm.errors import LLMError
from safellm.explain.facts import Contribution, Facts, NoteEvidence, Prediction, shown_value
from safellm.llm.base import ChatMessage, ChatModel, ChatRequest, TokenSink
from safellm.llm.prompts import Prompt
from safellm.tasks import task_spec

DEFAULT_QUESTION = "Why is this patient at this risk?"
WITHDRAWN = "the model's answer failed the guard; the checked answer follows"
CITATION = re.compile(r"\[\s*([FN]\d+(?:\s*[,;]\s*[FN]\d+)*)\s*\]")


class RationaleAnswer(BaseModel):
    text: str
    citations: list[str] = Field(description="Fact and note ids cited, in order of first use.")


class Violation(BaseModel):
    rule: str
    detail: str
    span: tuple[int, int] | None = None


class GuardReport(BaseModel):
    passed: bool
    attempts: int = Field(ge=0, description="Model calls made (0: refused before asking).")
    fallback_used: bool = False
    violations: list[Violation] = Field(default_factory=list)

    @property
    def outcome(self) -> Literal["passed", "re-asked", "fallback", "refused"]:
        """What the reader got: the model's answer (first time or after re-asking), the grounded
        fallback, or a refusal made before asking."""
        if self.fallback_used:
            return "fallback"
        if self.attempts == 0:
            return "refused"
        return "re-asked" if self.attempts > 1 else "passed"

    @property
    def verdict(self) -> str:
        """The outcome in words, for a reader (the CLI, the chat's badge)."""
        return {
            "fallback": "fallback — the model's answer failed the checks; the grounded summary "
            "is shown",
            "refused": "refused — outside the scope of this patient's risk",
            "re-asked": f"passed after {self.attempts - 1} re-ask(s)",
            "passed": "passed every check",
        }[self.outcome]

    @property
    def rules(self) -> list[str]:
        """The rule ids found, each once, sorted."""
        return sorted({v.rule for v in self.violations})


class Versions(BaseModel):
    risk_model: str
    prompt: str
    policy: str
    llm: str


class Explanation(BaseModel):
    """The shape of DESIGN.md's Explanation (REST `/v1/explain`, `safellm explain --json`)."""

    task: str
    subject_id: int
    hadm_id: int
    icustay_id: int | None = None
    question: str
    prediction: Prediction
    facts: Facts
    rationale: RationaleAnswer
    guard: GuardReport
    versions: Versions
    latency_s: float
    first_token_s: float | None = None


Reask = Callable[[list[Violation]], RationaleAnswer]


class Screened(Protocol):
    facts: Facts
    refusal: RationaleAnswer | None
    violations: list[Violation]


class Gate(Protocol):
    """A token sink that passes on only what has been checked; `finish` at the end of the draft.
    `emitted` is the text passed on so far."""

    emitted: str

    def __call__(self, token: str) -> None: ...

    def finish(self) -> None: ...


class GuardStep(Protocol):
    """`screen` sees the question and the evidence before the model does (it may drop note
    chunks, or refuse); `gate` wraps a token sink so that a streamed draft is shown only as far
    as it passes (None: stream as it comes); `__call__` checks a draft and may re-ask
    (`reask(violations)`) or replace it, returning what to show; `fallback` is the answer shown
    instead of a model that failed (or re-raises `error` when the step has none)."""

    policy_version: str

    def screen(self, question: str, facts: Facts) -> Screened: ...

    def gate(self, facts: Facts, sink: TokenSink) -> Gate | None: ...

    def __call__(
        self, facts: Facts, draft: RationaleAnswer, reask: Reask
    ) -> tuple[RationaleAnswer, GuardReport]: ...

    def fallback(self, facts: Facts, error: Exception | None = None) -> RationaleAnswer: ...


class _Unscreened(BaseModel):
    facts: Facts
    refusal: RationaleAnswer | None = None
    violations: list[Violation] = Field(default_factory=list)


class PassThrough:
    """No checks: the draft is shown as it is."""

    policy_version = "none"

    def screen(self, question: str, facts: Facts) -> Screened:
        return _Unscreened(facts=facts)

    def gate(self, facts: Facts, sink: TokenSink) -> Gate | None:
        return None

    def __call__(
        self, facts: Facts, draft: RationaleAnswer, reask: Reask
    ) -> tuple[RationaleAnswer, GuardReport]:
        return draft, GuardReport(passed=True, attempts=1)

    def fallback(self, facts: Facts, error: Exception | None = None) -> RationaleAnswer:
        raise error or LLMError("no fallback: the answer is not guarded")


# ---------------------------------------------------------------------------------- rendering
def _effect(c: Contribution, task: str, space: str) -> str:
    what = task_spec(task).outcome
    scale = {"log-odds": "log-odds", "probability": "probability", "days": "days"}.get(
        space, "log-days"
    )
    return f"{c.direction} {what} ({c.shap:+.2f} {scale})"


def fact_lines(facts: Facts) -> str:
    return "\n".join(
        f"[{c.id}] {c.label} = {shown_value(c.value, c.unit)}; "
        f"{_effect(c, facts.task, facts.prediction.space)}"
        for c in facts.contributions
    )


def note_lines(notes: list[NoteEvidence]) -> str:
    if not notes:
        return "(no notes charted before the prediction time)"
    return "\n".join(
        f"[{n.id}] ({n.category}, {n.chart_time or 'undated'}) {' '.join(n.text.split())}"
        for n in notes
    )


def risk_statement(facts: Facts) -> str:
    p = facts.prediction
    spec = task_spec(facts.task)
    what = "length of stay" if spec.in_days else "risk"
    return f"Predicted {what}: {spec.format_risk(p.risk)} (band: {p.band})."


def prompt_variables(
    facts: Facts, question: str, history: list[tuple[str, str]] | None = None
) -> dict[str, str]:
    v = {
        "task_label": task_spec(facts.task).label,
        "risk_statement": risk_statement(facts),
        "facts": fact_lines(facts),
        "notes": note_lines(facts.notes),
        "question": question,
    }
    if history is not None:
        v["history"] = (
            "\n".join(f"Q: {q}\nA: {a}" for q, a in history) if history else "(nothing yet)"
        )
    return v


def citations(text: str) -> list[str]:
    """Ids cited inline (`[F1]`, `[F1, N2]`), unique, in order of first use."""
    seen: list[str] = []
    for group in CITATION.findall(text):
        for cid in re.split(r"\s*[,;]\s*", group):
            if cid not in seen:
                seen.append(cid)
    return seen


def answer_of(text: str) -> RationaleAnswer:
    text = text.strip()
    return RationaleAnswer(text=text, citations=citations(text))


def reask_request(
    base: ChatRequest, draft: RationaleAnswer, problems: list[Violation]
) -> ChatRequest:
    """The same conversation, plus the rejected draft and what was wrong with it."""
    listed = "\n".join(f"- {v.detail}" for v in problems)
    msgs = [
        *base.messages,
        ChatMessage(role="assistant", content=draft.text),
        ChatMessage(
            role="user",
            content="Your answer broke the rules:\n"
            f"{listed}\nWrite the answer again, fixing these problems, using only the facts "
            "and notes above, with citations.",
        ),
    ]
    return base.model_copy(update={"messages": msgs})


# ----------------------------------------------------------------------------------- pipeline
def explain(
    facts: Facts,
    model: ChatModel,
    prompt: Prompt,
    *,
    question: str | None = None,
    history: list[tuple[str, str]] | None = None,
    guard: GuardStep | None = None,
    on_token: TokenSink | None = None,
    max_tokens: int | None = None,
    fallback: bool = False,
) -> Explanation:
    """The rationale for `facts` (already cut to the contributions and notes the model may cite).

    `max_tokens` overrides the prompt's own limit (benchmarks). An `LLMError` of the first call is
    raised, unless `fallback` asks for the guard's answer instead (`guard.fallback`: the grounded
    fallback of the clinical guard, so the web layer never answers a failing model with a 500)."""
    started = time.perf_counter()
    guard = guard or PassThrough()
    q = (question or "").strip() or DEFAULT_QUESTION
    screened = guard.screen(q, facts)
    facts = screened.facts

    def make(answer: RationaleAnswer, report: GuardReport, first_s: float | None) -> Explanation:
        return Explanation(
            task=facts.task,
            subject_id=facts.subject_id,
            hadm_id=facts.hadm_id,
            icustay_id=facts.icustay_id,
            question=q,
            prediction=facts.prediction,
            facts=facts,
            rationale=answer,
            guard=report,
            versions=Versions(
                risk_model=f"{facts.model}@{facts.model_version}",
                prompt=prompt.version,
                policy=guard.policy_version,
                llm=model.name,
            ),
            latency_s=time.perf_counter() - started,
            first_token_s=first_s,
        )

    if screened.refusal is not None:
        if on_token is not None:
            on_token(screened.refusal.text)
        refused = GuardReport(passed=True, attempts=0, violations=screened.violations)
        return make(screened.refusal, refused, None)
    uses_history = "history" in prompt.spec.variables
    variables = prompt_variables(facts, q, (history or []) if uses_history else None)
    request = prompt.request(**variables)
    if max_tokens is not None:
        request = request.model_copy(update={"max_tokens": max_tokens})
    gate = guard.gate(facts, on_token) if on_token is not None else None
    try:
        first = model.chat(request, on_token=gate or on_token)
    except LLMError as exc:
        if not fallback:
            raise
        answer = guard.fallback(facts, exc)
        if on_token is not None:
            on_token(f"\n[{WITHDRAWN}]\n{answer.text}")
        failed = Violation(rule="llm.error", detail=f"{type(exc).__name__}: {exc}"[:300])
        report = GuardReport(passed=False, attempts=1, fallback_used=True, violations=[failed])
        return make(answer, report, None)
    if gate is not None:
        gate.finish()
    draft = answer_of(first.text)

    def reask(problems: list[Violation]) -> RationaleAnswer:
        again = model.chat(reask_request(request, draft, problems))
        return answer_of(again.text)

    shown, report = guard(facts, draft, reask)
    if on_token is not None:
        streamed = (gate.emitted if gate is not None else first.text).strip()
        if shown.text.startswith(streamed):
            on_token(shown.text[len(streamed) :])  # the rest (the disclaimer, say)
        else:
            on_token(f"\n[{WITHDRAWN}]\n{shown.text}")
    if screened.violations:
        report = report.model_copy(update={"violations": screened.violations + report.violations})
    return make(shown, report, first.first_token_s)
