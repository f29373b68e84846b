from __future__ import annotations

import pytest

from safellm.evals.mutations import KINDS, MUTATORS, mutants, mutation_test
from safellm.explain.facts import Facts
from safellm.guard.fallback import fallback_answer
from safellm.guard.guard import ClinicalGuard
from safellm.guard.policy import load_policy

FAKE_STYLE = (
    "The risk is driven up by Creatinine (last) of 2.4 mg/dL [F1], Albumin (lowest) of 2.7 g/dL "
    "[F3]. It is held down by Age of 44 years [F2]. The notes record: "
    '"Poor urine output overnight; creatinine trending up, nephrology consulted" [N1].'
)


@pytest.fixture(scope="module")
def guard() -> ClinicalGuard:
    def support(claim: str, evidence: str) -> tuple[float, float | None]:
        return 0.0, None  # only verbatim quotes are supported

    return ClinicalGuard(load_policy(), note_support=support)


def _flags(guard: ClinicalGuard):  # type: ignore[no-untyped-def]
    def flags(text: str, facts: Facts) -> list[str]:
        r = guard.review(text, facts)
        return sorted({v.rule for v in r.blocking + r.fixed})

    return flags


@pytest.mark.parametrize("kind", KINDS)
def test_every_mutation_changes_a_correct_rationale(kind: str, facts: Facts) -> None:
    for base in (fallback_answer(facts).text, FAKE_STYLE):
        changed = MUTATORS[kind](base, facts, 0)
        assert changed is not None and changed != base, (kind, base)


def test_mutations_are_specific(facts: Facts) -> None:
    base = fallback_answer(facts).text
    assert "lowers the risk [F1]" in MUTATORS["flip_direction"](base, facts, 0)  # type: ignore[operator]
    assert "3.6 mg/dL" in MUTATORS["change_number"](base, facts, 0)  # type: ignore[operator]
    dropped = MUTATORS["drop_citation"](base, facts, 0)
    assert dropped is not None and "[F1]" not in dropped and "[F2]" in dropped
    assert MUTATORS["invent_note_fact"](base, facts.model_copy(update={"notes": []}), 0) is None


def test_the_guard_catches_every_kind_and_flags_no_correct_rationale(
    guard: ClinicalGuard, facts: Facts
) -> None:
    bases = [(fallback_answer(facts).text, facts), (FAKE_STYLE, facts)]
    report = mutation_test(bases, _flags(guard))
    assert report.bases == 2 and report.mutants == len(mutants(bases)) == 16
    assert report.false_flag_rate == 0.0, report.false_flags
    assert report.detection_rate == 1.0, report.missed
    assert set(report.by_kind) == set(KINDS)


def test_a_blind_guard_scores_zero(facts: Facts) -> None:
    report = mutation_test([(FAKE_STYLE, facts)], lambda text, f: [])
    assert report.detection_rate == 0.0 and report.false_flag_rate == 0.0
    assert len(report.missed) == report.mutants
