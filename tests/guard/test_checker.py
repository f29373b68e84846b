"""The deterministic checker, rule by rule: a true sentence passes; the same sentence made false
fails with the right rule id."""

from __future__ import annotations

import pytest

from safellm.guard.checker import Checker, sentences

TRUE = "A last creatinine of 2.4 mg/dL raises the risk [F1]."


def rules(checker, text, facts) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted({v.rule for v in checker.check(text, facts)})


@pytest.mark.parametrize(
    "text",
    [
        TRUE,
        "The largest contribution is the last creatinine (2.4 mg/dL), which raises the risk [F1].",
        "An age of 44 years lowers the risk [F2], while a lowest albumin of 2.7 g/dL raises it [F3].",
        "The model estimates a 42% risk of readmission within 30 days.",
        "The predicted probability is 0.42.",
        "Discharge to a SNF raises the risk [F4].",
        "Creatinine does not lower the risk here [F1].",
        "The second largest factor is age [F2].",
        "Nurses noted poor urine output overnight and nephrology was consulted [N1].",
        "The creatinine contribution is +0.61 log-odds [F1].",
    ],
)
def test_true_sentences_pass(checker, facts, text) -> None:  # type: ignore[no-untyped-def]
    assert checker.check(text, facts) == []


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("A last creatinine of 2.4 mg/dL lowers the risk [F1].", "fact.direction"),
        ("A last creatinine of 2.4 mg/dL is protective [F1].", "fact.direction"),
        ("An age of 44 years increases the risk [F2].", "fact.direction"),
        ("A last creatinine of 3.9 mg/dL raises the risk [F1].", "fact.number"),
        ("An age of 57 years lowers the risk [F2].", "fact.number"),
        ("A high lactate raises the risk [F1].", "fact.feature"),
        ("The strongest factor is age [F2].", "fact.rank"),
        ("The main driver is the lowest albumin [F3].", "fact.rank"),
        ("The model estimates a 70% risk of readmission.", "fact.risk"),
        ("A last creatinine of 2.4 mg/dL raises the risk [F7].", "citation.unknown"),
        ("An age of 44 years lowers the risk [F1].", "citation.mismatch"),
        ("A last creatinine of 2.4 mg/dL raises the risk.", "citation.missing"),
        (
            "The patient was intubated for airway protection and extubated after ventilator weaning [N1].",
            "note.unsupported",
        ),
    ],
)
def test_false_sentences_fail_with_the_right_rule(checker, facts, text, rule) -> None:  # type: ignore[no-untyped-def]
    assert rule in rules(checker, text, facts)


def test_violations_carry_spans_and_details(checker, facts) -> None:  # type: ignore[no-untyped-def]
    text = "The risk is high. A last creatinine of 3.9 mg/dL raises the risk [F1]."
    (v,) = checker.check(text, facts)
    assert v.rule == "fact.number" and text[v.span[0] : v.span[1]].startswith("3.9")
    assert "3.9" in v.detail


def test_sentences_keep_trailing_citations_and_decimals() -> None:
    s = sentences("Creatinine of 2.4 mg/dL raises it. [F1] Age lowers it [F2]. Done!")
    assert [x.text for x in s] == [
        "Creatinine of 2.4 mg/dL raises it. [F1]",
        "Age lowers it [F2].",
        "Done!",
    ]
    assert s[0].cited == ["F1"] and s[1].cited == ["F2"]


def test_disclaimer_is_not_checked(checker, facts, policy) -> None:  # type: ignore[no-untyped-def]
    assert checker.check(f"{TRUE}\n\n{policy.disclaimer}", facts) == []


def test_rank_claims_are_checked_against_the_cited_fact(checker, facts) -> None:  # type: ignore[no-untyped-def]
    """Two statistics of one lab: the cited id, not the lab's name, decides which fact is meant."""
    second = facts.contributions[1].model_copy(
        update={
            "feature": "lab_creatinine_max",
            "label": "Creatinine (highest)",
            "value": 3.0,
            "unit": "mg/dL",
        }
    )
    two = facts.model_copy(update={"contributions": [facts.contributions[0], second]})
    assert "fact.rank" in rules(
        checker, "The strongest factor is the highest creatinine [F2].", two
    )
    assert checker.check("The strongest factor is the last creatinine [F1].", two) == []


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        # a value written right after a feature must be that feature's (here: the age)
        ("Creatinine (last) of 44 years [F1] is high.", "fact.number"),
        ("Age (2.4 mg/dL) lowers the risk [F2].", "fact.number"),
        # each citation of a list cites what is named just before it
        (
            "The risk is driven up by Age of 44 years [F1], Creatinine (last) of 2.4 mg/dL [F2].",
            "citation.mismatch",
        ),
        # "X ..., which lowers the risk": the relative clause speaks of X
        (
            "The largest is Creatinine (last) (2.4 mg/dL), which lowers the risk [F1].",
            "fact.direction",
        ),
        ("The risk is driven up by Age of 44 years [F2].", "fact.direction"),
    ],
)
def test_values_citations_and_relative_clauses_are_bound(checker, facts, text, rule) -> None:  # type: ignore[no-untyped-def]
    assert rule in {v.rule for v in checker.check(text, facts)}, checker.check(text, facts)


@pytest.mark.parametrize(
    "text",
    [
        "The risk is driven up by Creatinine (last) of 2.4 mg/dL [F1], Albumin (lowest) of "
        "2.7 g/dL [F3]. It is held down by Age of 44 years [F2].",
        "The largest contribution is Creatinine (last) (2.4 mg/dL), which raises the risk [F1].",
        "Creatinine (last) and Albumin (lowest) both raise the risk [F1][F3].",
    ],
)
def test_correct_bound_values_pass(checker, facts, text) -> None:  # type: ignore[no-untyped-def]
    assert checker.check(text, facts) == []


def test_a_verbatim_quote_of_the_cited_note_is_supported(policy, facts) -> None:  # type: ignore[no-untyped-def]
    never = Checker(policy, lambda claim, evidence: (0.0, 0.0))
    quote = 'The notes record: "creatinine trending up, nephrology consulted" [N1].'
    assert never.check(quote, facts) == []
    altered = 'The notes record: "creatinine trending down, nephrology consulted" [N1].'
    assert [v.rule for v in never.check(altered, facts)] == ["note.unsupported"]
    framed = (
        "Because the kidneys are failing and dialysis is planned, the notes record: "
        '"creatinine trending up" [N1].'
    )
    assert [v.rule for v in never.check(framed, facts)] == ["note.unsupported"]


def test_a_value_is_checked_against_the_cited_fact_of_a_shared_concept(checker) -> None:  # type: ignore[no-untyped-def]
    """Temporal Facts can hold the same lab twice (two windows): the value written after it must
    be the cited fact's, not the other one's."""
    from safellm.explain.facts import ranked
    from tests.samples import sample_facts

    facts = sample_facts().model_copy(
        update={
            "contributions": ranked(
                [
                    ("lab_sodium", "Sodium normal, earlier this stay", 136.0, "mEq/L", -0.4),
                    ("lab_sodium", "Sodium normal, last 24 h", 139.0, "mEq/L", -0.2),
                ]
            )
        }
    )
    assert checker.check("Sodium of 136 mEq/L lowers the risk [F1].", facts) == []
    assert checker.check("Sodium of 139 mEq/L lowers the risk [F2].", facts) == []
    wrong = checker.check("Sodium of 139 mEq/L lowers the risk [F1].", facts)
    assert [v.rule for v in wrong] == ["fact.number"] and "136" in wrong[0].detail
