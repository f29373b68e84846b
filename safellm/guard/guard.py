"""The clinical guard: screens the question and the notes before the model sees them, checks the
answer after, repairs failing sentences, re-asks a bounded number of times, then falls back to the
grounded template.

    screen(question, facts)   out-of-scope or injected question → polite refusal, no model call;
                              note chunks carrying instructions (patterns and exemplar similarity,
                              also once undressed: `safellm.guard.injection`) → dropped and flagged;
                              PHI in the kept chunks redacted before the model sees them
    __call__(facts, draft, reask)
                              PHI redacted (fix); dosing, fact, citation, note and obeyed-injection
                              violations → sentence by sentence (`repair`): a failing sentence is
                              dropped when the others still cite the top facts the answer cited,
                              else regenerated alone, else replaced by the grounded sentence of its
                              facts; when the failures are not sentence-bound, re-ask the whole
                              answer (at most `max_reasks` times); still failing → the grounded
                              fallback; the disclaimer always ends it

Every violation found on the way (including the ones fixed or left behind by a re-ask) is in the
returned `GuardReport`, and each repaired, dropped or replaced sentence in its `repairs`, so the
Explanation says exactly what was checked and what happened.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Literal

from safellm.explain.facts import Facts
from safellm.guard.checker import Checker, NoteSupport, sentences
from safellm.guard.concepts import ConceptLexicon
from safellm.guard.fallback import fallback_answer, grounded_sentence
from safellm.guard.injection import InjectionDetector, load_exemplars
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
from safellm.rationale import GuardReport, RationaleAnswer, Reask, Repair, Violation, citations

# the end of a sentence: its punctuation, any citations after it, then space before more text
SENTENCE_END = re.compile(r"[.!?](?:\s*\[\s*[FN]\d+(?:\s*[,;]\s*[FN]\d+)*\s*\])*\s+(?=\S)")
# sentences whose instruction check (`ClinicalGuard._obeyed`) is remembered, per guard
OBEYED_CACHE = 4096


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

    def _show(self, piece: str) -> None:
        """Pass `piece` on if the text shown so far with it passes the review; else stop."""
        r = self.guard.review(self.emitted + piece, self.facts, partial=True)
        if r.blocking or r.fixed:
            self.closed = True
            return
        self.sink(piece)
        self.emitted += piece

    def __call__(self, token: str) -> None:
        if self.closed:
            return
        self.buffer += token
        while not self.closed and (m := SENTENCE_END.search(self.buffer)) is not None:
            piece, self.buffer = self.buffer[: m.end()], self.buffer[m.end() :]
            self._show(piece)

    def whole(self) -> None:
        """What came so far ends with a whole sentence (its sender knows: a rendered slot-based
        sentence), so it is checked and passed on now, not when the next sentence begins."""
        if not self.closed and self.buffer.strip():
            piece, self.buffer = self.buffer, ""
            self._show(piece)

    def finish(self) -> None:
        if not self.closed and self.buffer.strip():
            self._show(self.buffer)
        self.buffer = ""
        self.closed = True


def _inside(span: tuple[int, int], text: str, piece: str) -> bool:
    """Whether `span` of `text` falls within (the first occurrence of) `piece`."""
    at = text.find(piece)
    return at >= 0 and at <= span[0] < at + len(piece)


@dataclass
class Review:
    text: str  # after fixes (PHI redacted)
    blocking: list[Violation]  # need a re-ask or the fallback
    fixed: list[Violation]  # repaired in place


class ClinicalGuard:
    def __init__(
        self,
        policy: Policy | None = None,
        note_support: NoteSupport | None = None,
        concepts: ConceptLexicon | None = None,
    ) -> None:
        """`concepts`: the checker's clinical concept lexicon (default: the curated one and the
        catalogue's; `safellm.guard.concepts.concept_lexicon(settings)` adds the MIMIC
        vocabularies)."""
        self.policy = policy or load_policy()
        self.policy_version = self.policy.label
        self.checker = Checker(self.policy, note_support, concepts)
        self.no_phi = NoPHI(self.policy)
        self.no_dosing = NoDosing(self.policy)
        self.no_injection = NoInjection(self.policy, load_exemplars())
        # an answer sentence carrying an instruction: the policy's patterns only (an answer
        # about the risk is close to the exemplars' words by design)
        self.obeyed = InjectionDetector(
            list(self.policy.rule("injection.instruction").regexes().values()), None
        )
        # each streamed sentence is reviewed again with every later one: its check is remembered
        self._instruction_in = functools.lru_cache(maxsize=OBEYED_CACHE)(self.obeyed.find)
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
                continue
            # PHI redacted before the model sees the chunk: nothing to repeat
            redacted = getattr(self.no_phi.validate(n.text, {}), "fix_value", None)
            if redacted:
                n = n.model_copy(update={"text": redacted})
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
        blocking += self._obeyed(text)
        blocking += violations_of(self.grounded.validate(text, {"facts": facts}))
        blocking = [v for v in blocking if self.policy.rule(v.rule).on_fail != "flag"]
        return Review(text, blocking, fixed)

    def _obeyed(self, text: str) -> list[Violation]:
        """Sentences of an answer that carry an instruction (a quoted injection, say)."""
        out = []
        for s in sentences(self.checker.strip_disclaimer(text)):
            hit = self._instruction_in(s.text)
            if hit is not None:
                out.append(
                    Violation(
                        rule="injection.obeyed",
                        detail=f"the sentence carries an instruction: '{hit.matched[:60]}'",
                        span=(s.start, s.end),
                    )
                )
        return out

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
            if go_back:
                break
            repaired = self.repair(facts, r, reask, budget=self.policy.max_reasks)
            if repaired is not None:
                text, repairs, calls, more = repaired
                seen += more
                shown = self.with_disclaimer(text)
                report = GuardReport(
                    passed=True, attempts=attempts + calls, violations=seen, repairs=repairs
                )
                return shown, report
            if attempts > self.policy.max_reasks:
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

    # ------------------------------------------------------------------------- sentence repair
    def repair(
        self, facts: Facts, review: Review, reask: Reask, budget: int
    ) -> tuple[str, list[Repair], int, list[Violation]] | None:
        """The answer with each failing sentence repaired alone: dropped when the other sentences
        still cite every top fact the answer cited, else regenerated alone with its violations
        (at most `budget` model calls in all) and kept if it then passes, else replaced by the
        grounded sentence of the facts it cited (or dropped, when it cited none). None when the
        failures are not sentence-bound (an answer citing nothing) or the result still fails:
        the caller then re-asks or falls back."""
        text = review.text
        parts = sentences(text)
        if not parts or any(v.span is None for v in review.blocking):
            return None
        failing: dict[int, list[Violation]] = {}
        for v in review.blocking:
            assert v.span is not None
            i = next((k for k, s in enumerate(parts) if s.start <= v.span[0] < s.end), None)
            if i is None:
                return None
            failing.setdefault(i, []).append(v)
        top = {c.id for c in facts.contributions[:3]}
        wanted = top & {c for s in parts for c in s.cited}
        kept: dict[int, str] = {i: s.text.strip() for i, s in enumerate(parts)}
        repairs: list[Repair] = []
        more: list[Violation] = []
        calls = 0

        def record(
            i: int, action: Literal["repaired", "dropped", "replaced"], text: str = ""
        ) -> None:
            """What became of failing sentence `i` (from 0), with the rules it failed."""
            rules = sorted({v.rule for v in failing[i]})
            original = parts[i].text.strip()
            repairs.append(
                Repair(sentence=i + 1, original=original, action=action, rules=rules, text=text)
            )

        for i in sorted(failing):
            s, problems = parts[i], failing[i]
            others = {c for k, t in kept.items() if k != i for c in citations(t)}
            if wanted <= others:
                del kept[i]
                record(i, "dropped")
                continue
            if calls < budget:
                calls += 1
                try:
                    again = reask(problems, s.text.strip()).text.strip()
                except Exception as exc:  # the model failed: replace the sentence instead
                    more.append(Violation(rule="fallback", detail=f"sentence re-ask failed: {exc}"))
                    again = ""
                if again:
                    trial = " ".join(kept[k] if k != i else again for k in sorted(kept))
                    r = self.review(trial, facts)
                    own = [v for v in r.blocking if v.span is None or _inside(v.span, trial, again)]
                    more += own
                    if not own and not r.fixed:
                        kept[i] = again
                        record(i, "repaired", again)
                        continue
            cited = [c for c in facts.contributions if c.id in s.cited]
            if cited:
                grounded = " ".join(grounded_sentence(c, facts) for c in cited)
                kept[i] = grounded
                record(i, "replaced", grounded)
            else:
                del kept[i]
                record(i, "dropped")
        final = " ".join(kept[k] for k in sorted(kept))
        check = self.review(final, facts)
        if check.blocking or check.fixed:
            return None
        return final, repairs, calls, more

    def fallback(self, facts: Facts, error: Exception | None = None) -> RationaleAnswer:
        """The grounded fallback with the disclaimer (also what is shown when the model fails)."""
        return self.with_disclaimer(fallback_answer(facts).text)
