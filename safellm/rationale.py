"""Facts + note evidence → prompt → model → guards → Explanation.

The model sees the top contributions as lines `[F1] <label> = <value>; raises the risk (...)` and the
note chunks as `[N1] (<category>, <time>) <text>` (a `compact` prompt, v3: `; raises` alone, no
chart time, sentences already shown left out), each note's text fenced by a delimiter keyed by
a secret drawn per process (text inside it is data, never instructions, and a note cannot close
the fence it cannot guess). Prompts of answer format `prose` (v1) are answered in prose with inline
citations. Prompts of format `slots` (v2, v3) are answered with references to the facts — `{F1}`,
`{F1.label}`, `{F1.value}`, `{F1.dir}`, `{risk}` — that `render_slots` fills in from the Facts and
cites, so labels, values and directions are right by construction; on the local model a grammar
(`safellm.llm.grammar`) allows nothing else. The answer becomes `{text, citations}`; the guard step
(`GuardStep`) then decides what is shown: here a pass-through, filled in by the guard layer.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from safellm.errors import ContextOverflowError, LLMError
from safellm.explain.facts import Contribution, Facts, NoteEvidence, Prediction
from safellm.llm.base import ChatMessage, ChatModel, ChatRequest, ChatResponse, TokenSink
from safellm.llm.grammar import answer_grammar, answer_schema
from safellm.llm.prompts import Prompt
from safellm.tasks import task_spec
from safellm.text import sentences

DEFAULT_QUESTION = "Why is this patient at this risk?"
WITHDRAWN = "the model's answer failed the guard; the checked answer follows"
CITATION = re.compile(r"\[\s*([FN]\d+(?:\s*[,;]\s*[FN]\d+)*)\s*\]")
SLOT = re.compile(r"\{\s*(F\d+|risk)\s*(?:\.\s*(dir|label|value)\s*)?\}")
# a sentence of a raw answer: up to its end mark and the space after it
RAW_SENTENCE = re.compile(r".*?(?:[.!?](?=\s|$)\s*|$)", re.S)


class RationaleAnswer(BaseModel):
    text: str
    citations: list[str] = Field(description="Fact and note ids cited, in order of first use.")
    model_text: str | None = Field(
        default=None,
        description="The model's own text when it differs from `text` (a slot-based answer "
        "before its references were filled in).",
    )


class Violation(BaseModel):
    rule: str
    detail: str
    span: tuple[int, int] | None = None


class Repair(BaseModel):
    """One sentence of the model's answer that failed a check, and what became of it."""

    sentence: int = Field(ge=1, description="Its position in the model's answer, from 1.")
    original: str
    action: Literal["repaired", "dropped", "replaced"] = Field(
        description="repaired: regenerated alone and then passed; dropped: removed, the rest "
        "still covers the top facts; replaced: the grounded sentence for the facts it cited."
    )
    rules: list[str]
    text: str = Field(default="", description="What is shown in its place (empty: dropped).")


class GuardReport(BaseModel):
    passed: bool
    attempts: int = Field(ge=0, description="Model calls made (0: refused before asking).")
    fallback_used: bool = False
    violations: list[Violation] = Field(default_factory=list)
    repairs: list[Repair] = Field(
        default_factory=list, description="Sentences repaired, dropped or replaced."
    )
    notes_left_out: int = Field(
        default=0,
        ge=0,
        description="Note chunks left out of the prompt (the least relevant first) so that it "
        "and the answer fit the model's context window; the model could not cite them.",
    )

    @property
    def outcome(self) -> Literal["passed", "re-asked", "repaired", "fallback", "refused"]:
        """What the reader got: the model's answer (first time, after re-asking, or with some
        sentences repaired), the grounded fallback, or a refusal made before asking."""
        if self.fallback_used:
            return "fallback"
        if self.attempts == 0:
            return "refused"
        if self.repairs:
            return "repaired"
        return "re-asked" if self.attempts > 1 else "passed"

    @property
    def verdict(self) -> str:
        """The outcome in words, for a reader (the CLI, the chat's badge)."""
        return {
            "fallback": "fallback — the model's answer failed the checks; the grounded summary "
            "is shown",
            "refused": "refused — outside the scope of this patient's risk",
            "re-asked": f"passed after {self.attempts - 1} re-ask(s)",
            "repaired": f"passed after repairing {len(self.repairs)} sentence(s) "
            f"({', '.join(sorted({r.action for r in self.repairs}))})",
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
    tokens_per_s: float | None = Field(
        default=None,
        description="The model's decoding speed on the first draft: tokens after the first, "
        "per second after the first token.",
    )


def decode_rate(response: ChatResponse) -> float | None:
    """Tokens per second after the first token, when the adapter counted them."""
    n, total, first = response.completion_tokens, response.total_s, response.first_token_s
    if not n or n < 2 or total is None or first is None or total <= first:
        return None
    return (n - 1) / (total - first)


class Reask(Protocol):
    """Ask the model again, telling it `problems`: for the whole answer, or (`sentence` given)
    for that one sentence only, returning the rewritten sentence."""

    def __call__(
        self, problems: list[Violation], sentence: str | None = None
    ) -> RationaleAnswer: ...


class Screened(Protocol):
    facts: Facts
    refusal: RationaleAnswer | None
    violations: list[Violation]


class Gate(Protocol):
    """A token sink that passes on only what has been checked; `finish` at the end of the draft.
    `emitted` is the text passed on so far."""

    emitted: str

    def __call__(self, token: str) -> None: ...

    def whole(self) -> None:
        """What came so far ends a sentence: check it and pass it on now."""

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


def fact_lines(facts: Facts, compact: bool = False) -> str:
    """One line per fact; `compact`: its direction only, not its effect's size (the rank says
    that)."""
    return "\n".join(
        f"[{c.id}] {c.label} = {c.shown}; "
        + (c.direction if compact else _effect(c, facts.task, facts.prediction.space))
        for c in facts.contributions
    )


_FENCE_KEY = secrets.token_bytes(16)  # drawn once per process, never shown


def note_fence(notes: list[NoteEvidence]) -> str:
    """The delimiter of these notes' text: a keyed hash of them under a key drawn at random per
    process — unguessable by whoever writes a note, and the same for the same notes within a
    process (so a re-run of the same request, e.g. an eval's guarded run after its raw run, is
    the same prompt and reuses its cached answer)."""
    blob = "\x1f".join(f"{n.id}\x1e{n.text}" for n in notes).encode()
    return hmac.new(_FENCE_KEY, blob, hashlib.sha256).hexdigest()[:8]


def note_lines(notes: list[NoteEvidence], fence: str | None = None, compact: bool = False) -> str:
    """The note chunks as the model sees them; `fence` (a random tag) wraps each chunk's text in
    `<<note TAG>> ... <<end TAG>>`, so that text is marked as data the model must not obey.
    `compact`: no chart times, and a sentence shown in an earlier chunk is left out of a later
    one (notes copied forward repeat whole templates); what is shown of a chunk is still its
    own text, so whatever the model says of it holds for the whole chunk."""
    if not notes:
        return "(no notes charted before the prediction time)"
    seen: set[str] = set()

    def body(n: NoteEvidence) -> str:
        text = " ".join(n.text.split())
        if compact:
            kept = []
            for sentence in sentences(text):
                key = sentence.casefold()
                if key not in seen:
                    kept.append(sentence)
                seen.add(key)
            text = " ".join(kept) if kept else "(repeats the notes above)"
        return f"<<note {fence}>> {text} <<end {fence}>>" if fence else text

    def head(n: NoteEvidence) -> str:
        return f"({n.category})" if compact else f"({n.category}, {n.chart_time or 'undated'})"

    return "\n".join(f"[{n.id}] {head(n)} {body(n)}" for n in notes)


def risk_statement(facts: Facts) -> str:
    p = facts.prediction
    spec = task_spec(facts.task)
    what = "length of stay" if spec.in_days else "risk"
    return f"Predicted {what}: {spec.format_risk(p.risk)} (band: {p.band})."


def prompt_variables(
    facts: Facts,
    question: str,
    history: list[tuple[str, str]] | None = None,
    fence: str | None = None,
    compact: bool = False,
) -> dict[str, str]:
    v = {
        "task_label": task_spec(facts.task).label,
        "risk_statement": risk_statement(facts),
        "facts": fact_lines(facts, compact),
        "notes": note_lines(facts.notes, fence, compact),
        "question": question,
    }
    if history is not None:
        v["history"] = (
            "\n".join(f"Q: {q}\nA: {a}" for q, a in history) if history else "(nothing yet)"
        )
    return v


# ---------------------------------------------------------------------------------------- slots
def fact_phrase(c: Contribution) -> str:
    """`{F1}`: the fact's label and value, "Creatinine (last) of 2.4 mg/dL", "Diabetes: yes"."""
    value = c.shown
    if c.value is None or isinstance(c.value, str) or c.unit in ("yes/no", "category"):
        return f"{c.label}: {value}"
    return f"{c.label} of {value}"


def render_sentence(raw: str, facts: Facts) -> str:
    """One sentence of a slot-based answer, its references filled in from `facts` and the facts
    it refers to cited before its end mark (`... raises the risk [F1, F2].`). A reference to a
    fact that does not exist is cited as written, so the checker reports it."""
    by_id = {c.id: c for c in facts.contributions}
    used: list[str] = []

    def fill(m: re.Match[str]) -> str:
        ref, part = m.group(1), m.group(2)
        if ref == "risk":
            return task_spec(facts.task).format_risk(facts.prediction.risk)
        if ref not in used:
            used.append(ref)
        c = by_id.get(ref)
        if c is None:
            return ref
        if part == "dir":
            return c.direction
        if part == "label":
            return c.label
        if part == "value":
            return c.shown
        return fact_phrase(c)

    text = SLOT.sub(fill, raw)
    if SLOT.match(raw.lstrip()) and text.strip():
        lead = len(text) - len(text.lstrip())
        text = text[:lead] + text[lead].upper() + text[lead + 1 :]
    cited = set(citations(text))
    missing = [f for f in used if f not in cited]
    if not missing:
        return text
    body = text.rstrip()
    tail = text[len(body) :]
    mark = re.search(r"[.!?]$", body)
    cut = mark.start() if mark else len(body)
    return f"{body[:cut].rstrip()} [{', '.join(missing)}]{body[cut:]}{tail}"


def raw_sentences(text: str) -> list[str]:
    """The sentences of a raw answer, each with its end mark and the space after it."""
    return [m.group(0) for m in RAW_SENTENCE.finditer(text) if m.group(0)]


def render_slots(text: str, facts: Facts) -> str:
    """A slot-based answer as the reader sees it: every reference filled in and cited."""
    return "".join(render_sentence(s, facts) for s in raw_sentences(text))


class SlotSink:
    """A token sink that renders a streamed slot-based answer sentence by sentence (a sentence
    is passed on once its end mark and the space after it have come) — what it passes on adds
    up to `render_slots` of the whole answer. `whole` is called after each sentence passed on
    (a gate's `Gate.whole`: the sentence is checked and shown without waiting for the next)."""

    def __init__(
        self, facts: Facts, sink: TokenSink, whole: Callable[[], None] | None = None
    ) -> None:
        self.facts, self.sink, self.whole = facts, sink, whole
        self.buffer = ""

    def __call__(self, token: str) -> None:
        self.buffer += token
        while (m := re.search(r"[.!?]\s+(?=\S)", self.buffer)) is not None:
            piece, self.buffer = self.buffer[: m.end()], self.buffer[m.end() :]
            self.sink(render_sentence(piece, self.facts))
            if self.whole is not None:
                self.whole()

    def finish(self) -> None:
        if self.buffer:
            self.sink(render_slots(self.buffer, self.facts))
        self.buffer = ""


def citations(text: str) -> list[str]:
    """Ids cited inline (`[F1]`, `[F1, N2]`), unique, in order of first use."""
    seen: list[str] = []
    for group in CITATION.findall(text):
        for cid in re.split(r"\s*[,;]\s*", group):
            if cid not in seen:
                seen.append(cid)
    return seen


def answer_of(text: str, model_text: str | None = None) -> RationaleAnswer:
    text = text.strip()
    raw = model_text.strip() if model_text is not None and model_text.strip() != text else None
    return RationaleAnswer(text=text, citations=citations(text), model_text=raw)


def reask_request(
    base: ChatRequest,
    draft: str,
    problems: list[Violation],
    sentence: str | None = None,
    slots: bool = False,
) -> ChatRequest:
    """The same conversation, plus the rejected draft (as the model wrote it) and what was wrong
    with it: the whole answer to write again, or (`sentence`) one sentence to rewrite alone."""
    listed = "\n".join(f"- {v.detail}" for v in problems)
    form = (
        "with references such as {F1}, {F1.value} and {F1.dir} for the facts, never their "
        "values or labels in your own words"
        if slots
        else "with citations"
    )
    if sentence is None:
        ask = (
            f"Your answer broke the rules:\n{listed}\nWrite the answer again, fixing these "
            f"problems, using only the facts and notes above, {form}."
        )
    else:
        ask = (
            f"This sentence of your answer broke the rules:\n{sentence.strip()}\n{listed}\n"
            f"Write only this one sentence again, fixing these problems, using only the facts "
            f"and notes above, {form}."
        )
    msgs = [
        *base.messages,
        ChatMessage(role="assistant", content=draft),
        ChatMessage(role="user", content=ask),
    ]
    return base.model_copy(update={"messages": msgs, "grammar": None, "answer_schema": None})


# ----------------------------------------------------------------------------------- pipeline
def build_request(
    facts: Facts,
    prompt: Prompt,
    question: str | None = None,
    history: list[tuple[str, str]] | None = None,
) -> ChatRequest:
    """The chat request `explain` sends for `facts` (already screened) and `question`: the
    prompt's messages, and for a slot-based prompt the grammar and JSON schema of its answer.
    A model that prefetches (`safellm.llm.base.Prefetching`) can be handed it before the
    question comes, with the default question: all but the question's tokens are then ready."""
    q = (question or "").strip() or DEFAULT_QUESTION
    uses_history = "history" in prompt.spec.variables
    fence = note_fence(facts.notes) if prompt.spec.fence_notes else None
    variables = prompt_variables(
        facts, q, (history or []) if uses_history else None, fence, prompt.spec.compact
    )
    request = prompt.request(**variables)
    if prompt.spec.answer == "slots" and facts.contributions:
        ids = ([c.id for c in facts.contributions], [n.id for n in facts.notes])
        request = request.model_copy(
            update={
                "grammar": answer_grammar(*ids, chat=uses_history),
                "answer_schema": answer_schema(*ids, chat=uses_history),
            }
        )
    return request


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

    `max_tokens` overrides the prompt's own limit (benchmarks). A prompt that leaves the answer no
    room in the model's context window is asked again without its last (least relevant) note
    chunk, until it fits (`GuardReport.notes_left_out` says how many went). An `LLMError` of a
    model call (the first or a re-ask; a prompt that does not fit even without notes) is raised,
    unless `fallback` asks for the guard's answer instead (`guard.fallback`: the grounded fallback
    of the clinical guard, so the web layer never answers a failing model with a 500)."""
    started = time.perf_counter()
    guard = guard or PassThrough()
    q = (question or "").strip() or DEFAULT_QUESTION
    screened = guard.screen(q, facts)
    facts = screened.facts

    def make(
        answer: RationaleAnswer, report: GuardReport, first: ChatResponse | None
    ) -> Explanation:
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
            first_token_s=first.first_token_s if first is not None else None,
            tokens_per_s=decode_rate(first) if first is not None else None,
        )

    if screened.refusal is not None:
        if on_token is not None:
            on_token(screened.refusal.text)
        refused = GuardReport(passed=True, attempts=0, violations=screened.violations)
        return make(screened.refusal, refused, None)
    slots = prompt.spec.answer == "slots"
    calls = 1  # model calls made: the first (however often it was cut to fit), then re-asks
    left_out = 0

    def failed(exc: LLMError) -> Explanation:
        """The guard's grounded answer when a model call fails (`fallback`), else the error."""
        if not fallback:
            raise exc
        answer = guard.fallback(facts, exc)
        if on_token is not None:
            on_token(f"\n[{WITHDRAWN}]\n{answer.text}")
        failure = Violation(rule="llm.error", detail=f"{type(exc).__name__}: {exc}"[:300])
        report = GuardReport(
            passed=False,
            attempts=calls,
            fallback_used=True,
            violations=[failure],
            notes_left_out=left_out,
        )
        return make(answer, report, None)

    while True:  # a prompt too long for the model: the least relevant note out, and again
        request = build_request(facts, prompt, q, history)
        if max_tokens is not None:
            request = request.model_copy(update={"max_tokens": max_tokens})
        gate = guard.gate(facts, on_token) if on_token is not None else None
        sink = gate or on_token
        slot_sink = (
            SlotSink(facts, sink, gate.whole if gate is not None else None)
            if slots and sink is not None
            else None
        )
        try:
            first = model.chat(request, on_token=slot_sink or sink)
            break
        except ContextOverflowError as exc:
            if not facts.notes:
                return failed(exc)
            facts = facts.model_copy(update={"notes": facts.notes[:-1]})
            left_out += 1
        except LLMError as exc:
            return failed(exc)
    if slot_sink is not None:
        slot_sink.finish()
    if gate is not None:
        gate.finish()
    draft = answer_of(render_slots(first.text, facts) if slots else first.text, first.text)

    def reask(problems: list[Violation], sentence: str | None = None) -> RationaleAnswer:
        nonlocal calls
        calls += 1
        again = reask_request(request, first.text, problems, sentence, slots)
        if sentence is not None and slots and facts.contributions:
            ids = ([c.id for c in facts.contributions], [n.id for n in facts.notes])
            again = again.model_copy(
                update={
                    "grammar": answer_grammar(*ids, extra=0, chat=True),
                    "answer_schema": answer_schema(*ids, extra=0, chat=True),
                }
            )
        text = model.chat(again).text
        if sentence is not None:
            text = raw_sentences(text.strip())[0] if text.strip() else ""
        return answer_of(render_slots(text, facts) if slots else text, text)

    try:
        shown, report = guard(facts, draft, reask)
    except LLMError as exc:  # a re-ask failed (timed out, or too long for the context window)
        return failed(exc)
    if left_out:
        report = report.model_copy(update={"notes_left_out": left_out})
    if on_token is not None:
        streamed = (gate.emitted if gate is not None else draft.text).strip()
        if shown.text.startswith(streamed):
            on_token(shown.text[len(streamed) :])  # the rest (the disclaimer, say)
        else:
            on_token(f"\n[{WITHDRAWN}]\n{shown.text}")
    if screened.violations:
        report = report.model_copy(update={"violations": screened.violations + report.violations})
    if not report.fallback_used and draft.model_text is not None:
        shown = shown.model_copy(update={"model_text": draft.model_text})
    return make(shown, report, first)
