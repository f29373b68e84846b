"""The meaning check of `fact.unsupported_concept`: a sentence citing only facts whose words beyond
the features, numbers and generic words of an effect are about none of the facts it cites, by the
packaged embedder, fails; fair readings of the fact pass; the check is off without an embedder."""

from __future__ import annotations

import pytest

from safellm.guard.checker import Checker
from safellm.guard.policy import load_policy
from safellm.llm.retrieval import EmbeddingSupport, MiniLMEmbedder
from tests.guard.test_concepts import demo_facts


@pytest.fixture(scope="module")
def checker() -> Checker:
    return Checker(load_policy(), EmbeddingSupport(MiniLMEmbedder()))


OFF_FACTS = [
    # words the concept lexicon does not know, about nothing the cited fact shows
    "Age of 76 years raises the risk the most, because the rent is overdue and the landlord called [F1].",
    "Creatinine (last) of 2.4 mg/dL raises the risk, because the family moved house last winter [F2].",
]
FAIR = [
    "Age of 76 years raises the risk the most [F1].",
    "Age of 76 years raises the risk the most, as older patients recover more slowly [F1].",
    "Creatinine (last) of 2.4 mg/dL raises the risk, which points to impaired kidney function [F2].",
    "Congestive heart failure raises the risk, since fluid overload often returns after discharge [F4].",
]


@pytest.mark.parametrize("text", OFF_FACTS)
def test_words_about_none_of_the_cited_facts_fail(checker: Checker, text: str) -> None:
    found = [v for v in checker.check(text, demo_facts()) if v.rule == "fact.unsupported_concept"]
    assert found, text
    assert "is about none of the cited facts" in found[0].detail, found[0].detail
    # the span is the sentence, so a repair regenerates just it
    assert found[0].span == (0, len(text))


@pytest.mark.parametrize("text", FAIR)
def test_fair_readings_of_the_fact_pass(checker: Checker, text: str) -> None:
    assert checker.check(text, demo_facts()) == [], text


def test_generic_and_fact_words_leave_no_residual(checker: Checker) -> None:
    body = "Age of 76 years raises the predicted risk the most, more than any other factor"
    assert checker.residual(body, demo_facts(), []) == ""
    body = "Creatinine (last) of 2.4 mg/dL raises the risk, after a fall at home"
    assert checker.residual(body, demo_facts(), []) == "fall home"


def test_the_meaning_check_needs_an_embedder() -> None:
    text = OFF_FACTS[0]
    assert Checker(load_policy(), None).check(text, demo_facts()) == []


def test_a_sentence_citing_a_note_is_left_to_the_note_check(checker: Checker) -> None:
    facts = demo_facts()
    note = facts.notes[0].id
    text = f"The notes say the rent is overdue and the landlord called [{note}]."
    assert not [
        v
        for v in checker.check(text, facts)
        if v.rule == "fact.unsupported_concept" and "cited facts" in v.detail
    ]
