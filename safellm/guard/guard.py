"""The clinical guard: screens the question and the notes before the model sees them, checks the
answer after, re-asks a bounded number of times, then falls back to the grounded template.

    screen(question, facts)   out-of-scope or injected question → polite refusal, no model call;
                              note chunks carrying instructions → dropped and flagged
    __call__(facts, draft, reask)
                              PHI redacted (fix); dosing, fact, citation and note violations →
                              re-ask with the violations listed, at most `max_reasks` times;
                              still failing → the grounded fallback; the disclaimer always ends it

Every violation found on the way (including the ones fixed or left behind by a re-ask) is in the
returned `GuardReport`, so the Explanation says exactly what was checked and what happened.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from safellm.explain.facts import Facts
from safellm.guard.checker import Checker, NoteSupport
from safellm.guard.fallback import fallback_answer
from safellm.guard.policy import Policy, load_policy
from safellm.guard.validators import (
    FactsGrounded,
    HasDisclaimer,
    NoDosing,
    NoInjection,
    NoPHI,
    OnTopic,
    violations_of,
)
from safellm.llm.base import TokenSink
from safellm.rationale import GuardReport, RationaleAnswer, Reask, Violation, citations

# the end of a sentence: its punctuation, any citations after it, then space before more text
SENTENCE_END = re.compile(r"[.!?](?:\s*\[\s*[FN]\d+(?:\s*[,;]\s*[FN]\d+)*\s*\])*\s+(?=\S)")


@dataclass
class Screening:
    facts: Facts
    refusal: RationaleAnswer | None = None
    violations: list[Violation] = field(default_factory=list)


class SentenceGate:
    """Streams a draft sentence by sentence, each only once the text so far passes the review;
    at the first failing sentence the stream stops (the guard then re-asks or falls back). So a
    reader never sees a sentence that failed a check."""

    def __init__(self, guard: ClinicalGuard, facts: Facts, sink: TokenSink) -> None:
        self.guard, self.facts, self.sink = guard, facts, sink
        self.buffer = ""
        self.emitted = ""
        self.closed = False

    def _pass(self, piece: str) -> bool:
        r = self.guard.review(self.emitted + piece, self.facts, partial=True)
        return not r.blocking and not r.fixed

    def __call__(self, token: str) -> None:
        if self.closed:
            return
        self.buffer += token
        while (m := SENTENCE_END.search(self.buffer)) is not None:
            piece = self.buffer[: m.end()]
            if not self._pass(piece):
                self.closed = True
                return
            self.sink(piece)
            self.emitted += piece
            self.buffer = self.buffer[m.end() :]

    def finish(self) -> None:
        if not self.closed and self.buffer.strip() and self._pass(self.buffer):
            self.sink(self.buffer)
            self.emitted += self.buffer
        self.buffer = ""
        self.closed = True


@dataclass
class Review:
    text: str  # after fixes (PHI redacted)
    blocking: list[Violation]  # need a re-ask or the fallback
    fixed: list[Violation]  # repaired in place


class ClinicalGuard:
    def __init__(
        self, policy: Policy | None = None, note_support: NoteSupport | None = None
    ) -> None:
        self.policy = policy or load_policy()
        self.policy_version = self.policy.label
        self.checker = Checker(self.policy, note_support)
        self.no_phi = NoPHI(self.policy)
        self.no_dosing = NoDosing(self.policy)
        self.no_injection = NoInjection(self.policy)
        self.on_topic = OnTopic(self.policy, self.checker)
        self.grounded = FactsGrounded(self.checker)
        self.disclaimer = HasDisclaimer(self.policy)

    # ---------------------------------------------------------------------------- before asking
    def screen(self, question: str, facts: Facts) -> Screening:
        found: list[Violation] = []
        injected = violations_of(self.no_injection.validate(question, {"where": "question"}))
        scope = violations_of(self.on_topic.validate(question, {}))
        kept = []
        for n in facts.notes:
            v = violations_of(self.no_injection.validate(n.text, {"where": f"note chunk {n.id}"}))
            if v:
                found += [x.model_copy(update={"span": None}) for x in v]
            else:
                kept.append(n)
        facts = facts.model_copy(update={"notes": kept})
        if injected or scope:
            found = injected + scope + found
            return Screening(facts, self.with_disclaimer(self.policy.refusal), found)
        return Screening(facts, None, found)

    # ----------------------------------------------------------------------------- after asking
    def gate(self, facts: Facts, sink: TokenSink) -> SentenceGate:
        return SentenceGate(self, facts, sink)

    def review(self, text: str, facts: Facts, partial: bool = False) -> Review:
        """`partial`: the beginning of an answer (streaming), not yet required to cite a fact."""
        fixed: list[Violation] = []
        phi = self.no_phi.validate(text, {})
        phi_v = violations_of(phi)
        if phi_v and self.policy.rule("phi.leak").on_fail == "fix":
            fixed += phi_v
            text = getattr(phi, "fix_value", None) or text
            phi_v = []
        blocking = phi_v
        if not partial and not any(c.startswith("F") for c in citations(text)):
            detail = "the answer cites no fact" if text.strip() else "the answer is empty"
            blocking.append(Violation(rule="citation.missing", detail=detail))
        blocking += violations_of(self.no_dosing.validate(text, {}))
        blocking += violations_of(self.grounded.validate(text, {"facts": facts}))
        blocking = [v for v in blocking if self.policy.rule(v.rule).on_fail != "flag"]
        return Review(text, blocking, fixed)

    def with_disclaimer(self, text: str) -> RationaleAnswer:
        res = self.disclaimer.validate(text, {})
        final = getattr(res, "fix_value", None) or text
        return RationaleAnswer(text=final, citations=citations(final))

    def __call__(
        self, facts: Facts, draft: RationaleAnswer, reask: Reask
    ) -> tuple[RationaleAnswer, GuardReport]:
        seen: list[Violation] = []
        answer, attempts = draft, 1
        while True:
            r = self.review(answer.text, facts)
            seen += r.fixed + r.blocking
            if not r.blocking:
                shown = self.with_disclaimer(r.text)
                return shown, GuardReport(passed=True, attempts=attempts, violations=seen)
            go_back = any(self.policy.rule(v.rule).on_fail == "fallback" for v in r.blocking)
            if go_back or attempts > self.policy.max_reasks:
                break
            try:
                answer = reask(r.blocking)
            except Exception as exc:  # the model failed on re-ask: fall back, say why
                seen.append(Violation(rule="fallback", detail=f"re-ask failed: {exc}"))
                break
            attempts += 1
        return self.fallback(facts), GuardReport(
            passed=False, attempts=attempts, fallback_used=True, violations=seen
        )

    def fallback(self, facts: Facts, error: Exception | None = None) -> RationaleAnswer:
        """The grounded fallback with the disclaimer (also what is shown when the model fails)."""
        return self.with_disclaimer(fallback_answer(facts).text)
