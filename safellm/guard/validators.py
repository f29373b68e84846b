"""The clinical safety rules as guardrails-ai validators (registered locally: the Hub is gone).

    safellm/no-phi          names, MRN-like numbers, dates, phones, addresses, [** **] markers: fix by redaction
    safellm/no-dosing       doses and treatment orders
    safellm/on-topic        the question is about this patient's risk and its reasons
    safellm/no-injection    instructions hidden in a question or a note
    safellm/facts-grounded  every claim true to the Facts (the deterministic checker)
    safellm/disclaimer      the fixed disclaimer line ends the answer: fix by appending it

Each failure carries our violations in `FailResult.metadata["violations"]`. Each validator also
works in a `guardrails.Guard` of its own (`Guard().use(NoPHI(policy, on_fail="fix"))`); SafeLLM calls
them directly, in order, and runs its own re-ask and fallback (`safellm.guard.guard`), because
guardrails applies the fixes of several validators to the same input rather than in turn.
"""

from __future__ import annotations

from typing import Any

from safellm.config import apply_offline_switches

apply_offline_switches()  # before guardrails is imported: no telemetry export

from guardrails.validators import (  # noqa: E402
    ErrorSpan,
    FailResult,
    PassResult,
    ValidationResult,
    Validator,
    register_validator,
)

from safellm.explain.facts import Facts  # noqa: E402
from safellm.guard.checker import Checker  # noqa: E402
from safellm.guard.injection import ExemplarLibrary, InjectionDetector  # noqa: E402
from safellm.guard.policy import Policy  # noqa: E402
from safellm.rationale import Violation  # noqa: E402


def _fail(message: str, violations: list[Violation], fix: str | None = None) -> FailResult:
    spans = [
        ErrorSpan(start=v.span[0], end=v.span[1], reason=v.detail)
        for v in violations
        if v.span is not None
    ]
    return FailResult(
        error_message=message,
        fix_value=fix,
        error_spans=spans or None,
        metadata={"violations": [v.model_dump() for v in violations]},
    )


@register_validator(name="safellm/no-phi", data_type="string")
class NoPHI(Validator):
    def __init__(self, policy: Policy, on_fail: Any = None, **kw: Any) -> None:
        super().__init__(on_fail=on_fail, **kw)
        rule = policy.rule("phi.leak")
        self.patterns = rule.regexes()
        self.replacement = rule.replacement or "[redacted]"

    def _validate(self, value: Any, metadata: dict[str, Any]) -> ValidationResult:
        text = str(value)
        found: list[Violation] = []
        for kind, pat in self.patterns.items():
            for m in pat.finditer(text):
                found.append(
                    Violation(
                        rule="phi.leak", detail=f"{kind} in the answer", span=(m.start(), m.end())
                    )
                )
        if not found:
            return PassResult()
        fixed = text
        for pat in self.patterns.values():
            fixed = pat.sub(self.replacement, fixed)
        kinds = sorted({v.detail.split(" ")[0] for v in found})
        return _fail(f"PHI in the answer: {', '.join(kinds)}", found, fixed)


@register_validator(name="safellm/no-dosing", data_type="string")
class NoDosing(Validator):
    def __init__(self, policy: Policy, on_fail: Any = None, **kw: Any) -> None:
        super().__init__(on_fail=on_fail, **kw)
        self.patterns = policy.rule("dosing.order").regexes()

    def _validate(self, value: Any, metadata: dict[str, Any]) -> ValidationResult:
        text = str(value)
        found = [
            Violation(
                rule="dosing.order",
                detail=f"{kind}: '{m.group(0)}' — a rationale explains risk, it does not prescribe",
                span=(m.start(), m.end()),
            )
            for kind, pat in self.patterns.items()
            for m in pat.finditer(text)
        ]
        return _fail("dose or treatment order", found) if found else PassResult()


@register_validator(name="safellm/no-injection", data_type="string")
class NoInjection(Validator):
    """An instruction hidden in a question or a note: the policy's patterns and the exemplar
    library, on the text and on its undressed variants (`safellm.guard.injection`)."""

    def __init__(
        self,
        policy: Policy,
        library: ExemplarLibrary | None = None,
        on_fail: Any = None,
        **kw: Any,
    ) -> None:
        super().__init__(on_fail=on_fail, **kw)
        patterns = list(policy.rule("injection.instruction").regexes().values())
        self.detector = InjectionDetector(patterns, library)

    def _validate(self, value: Any, metadata: dict[str, Any]) -> ValidationResult:
        text = str(value)
        where = metadata.get("where", "text")
        hit = self.detector.find(text)
        if hit is None:
            return PassResult()
        dressed = "" if hit.variant == 0 else " (once undressed)"
        v = Violation(
            rule="injection.instruction",
            detail=f"instruction in the {where} ignored{dressed}, {hit.how}: '{hit.matched[:60]}'",
            span=None,
        )
        return _fail("embedded instruction", [v])


@register_validator(name="safellm/on-topic", data_type="string")
class OnTopic(Validator):
    """A question is out of scope when it matches one of the policy's `out_of_scope` patterns
    (another kind of request, a dose or order, PHI); anything else is answered from the facts."""

    def __init__(self, policy: Policy, checker: Checker, on_fail: Any = None, **kw: Any) -> None:
        super().__init__(on_fail=on_fail, **kw)
        rule = policy.rule("scope.question")
        self.out = list(rule.regexes("out_of_scope").values())
        self.checker = checker

    def _validate(self, value: Any, metadata: dict[str, Any]) -> ValidationResult:
        q = str(value)
        hit = next((m for p in self.out if (m := p.search(q))), None)
        if hit is None:
            return PassResult()
        v = Violation(
            rule="scope.question", detail=f"question out of scope: '{hit.group(0)}'", span=None
        )
        return _fail("question out of scope", [v])


@register_validator(name="safellm/facts-grounded", data_type="string")
class FactsGrounded(Validator):
    def __init__(self, checker: Checker, on_fail: Any = None, **kw: Any) -> None:
        super().__init__(on_fail=on_fail, **kw)
        self.checker = checker

    def _validate(self, value: Any, metadata: dict[str, Any]) -> ValidationResult:
        facts = metadata.get("facts")
        if not isinstance(facts, Facts):
            facts = Facts.model_validate(facts)
        found = self.checker.check(str(value), facts)
        if not found:
            return PassResult()
        rules = sorted({v.rule for v in found})
        return _fail(f"claims not true to the facts: {', '.join(rules)}", found)


@register_validator(name="safellm/disclaimer", data_type="string")
class HasDisclaimer(Validator):
    def __init__(self, policy: Policy, on_fail: Any = None, **kw: Any) -> None:
        super().__init__(on_fail=on_fail, **kw)
        self.line = policy.disclaimer

    def _validate(self, value: Any, metadata: dict[str, Any]) -> ValidationResult:
        text = str(value).rstrip()
        if " ".join(text.split()).endswith(" ".join(self.line.split())):
            return PassResult()
        v = Violation(rule="disclaimer", detail="the disclaimer line is missing")
        return _fail("disclaimer missing", [v], f"{text}\n\n{self.line}")


def violations_of(result: ValidationResult) -> list[Violation]:
    if isinstance(result, FailResult):
        return [Violation.model_validate(v) for v in (result.metadata or {}).get("violations", [])]
    return []
