"""Sentence-level repair: a failing sentence is dropped, regenerated alone or replaced by its
grounded sentence; the whole-answer fallback only when nothing else works."""

from __future__ import annotations

from safellm.config import Settings
from safellm.explain.facts import Facts
from safellm.guard.guard import ClinicalGuard
from safellm.llm.fake import FakeChatModel
from safellm.llm.prompts import load_prompt
from safellm.rationale import explain

V2 = load_prompt(Settings().prompts_dir, "explain-risk", 2)
GOOD = "{F1} {F1.dir} the risk the most. {F2} {F2.dir} it. {F3} {F3.dir} it."


def test_a_passing_answer_is_shown_untouched(facts: Facts) -> None:
    exp = explain(facts, FakeChatModel(script=[GOOD]), V2, guard=ClinicalGuard())
    assert exp.guard.outcome == "passed" and exp.guard.repairs == []


def test_a_sentence_not_needed_for_the_top_facts_is_dropped(facts: Facts) -> None:
    fake = FakeChatModel(script=[GOOD + " The patient should get morphine [N1]."])
    exp = explain(facts, fake, V2, guard=ClinicalGuard())
    assert exp.guard.outcome == "repaired" and not exp.guard.fallback_used
    (r,) = exp.guard.repairs
    assert (r.action, r.sentence) == ("dropped", 4) and "dosing.order" in r.rules
    assert "morphine" not in exp.rationale.text and "[F3]" in exp.rationale.text
    assert len(fake.requests) == 1  # no model call needed


def test_a_sentence_carrying_a_top_fact_is_regenerated_alone(facts: Facts) -> None:
    f2 = facts.contributions[1]
    wrong = "raises" if f2.direction == "lowers" else "lowers"
    fake = FakeChatModel(
        script=[
            f"{{F1}} {{F1.dir}} the risk the most. {{F2}} {wrong} it. {{F3}} {{F3.dir}} it.",
            "{F2} {F2.dir} it.",
        ]
    )
    exp = explain(facts, fake, V2, guard=ClinicalGuard())
    (r,) = exp.guard.repairs
    assert r.action == "repaired" and r.rules == ["fact.direction"] and r.sentence == 2
    assert f"{f2.label} of {f2.shown} {f2.direction} it [F2]." in exp.rationale.text
    assert exp.guard.attempts == 2 and exp.guard.outcome == "repaired"
    again = fake.requests[1]
    assert "Write only this one sentence again" in again.messages[-1].content
    assert again.grammar is not None and "s1" not in again.grammar  # one free sentence


def test_a_sentence_that_fails_again_is_replaced_by_its_grounded_sentence(facts: Facts) -> None:
    f2 = facts.contributions[1]
    wrong = "raises" if f2.direction == "lowers" else "lowers"
    bad = f"{{F1}} {{F1.dir}} the risk the most. {{F2}} {wrong} it. {{F3}} {{F3.dir}} it."
    fake = FakeChatModel(script=[bad, f"{{F2}} {wrong} it."])
    exp = explain(facts, fake, V2, guard=ClinicalGuard())
    (r,) = exp.guard.repairs
    assert r.action == "replaced" and f"[{f2.id}]" in r.text and f2.direction in r.text
    assert exp.guard.passed and not exp.guard.fallback_used
    assert "sentence(s) (replaced)" in exp.guard.verdict


def test_the_whole_answer_falls_back_only_when_nothing_else_works(facts: Facts) -> None:
    """An answer that cites no fact at all has no sentence to repair: re-ask, then fall back."""
    fake = FakeChatModel(script=["The patient is quite unwell overall."])
    exp = explain(facts, fake, V2, guard=ClinicalGuard())
    assert exp.guard.fallback_used and exp.guard.outcome == "fallback"


def test_the_copied_v1_example_fails_and_is_dropped(facts: Facts) -> None:
    """The v1 prompt's worked example, copied as patient content by the small model on a fresh
    clone ("The nurses noted poor urine output overnight [N1]"), against a note that says nothing
    of urine: an unsupported concept; the rest of the answer stands."""
    note = facts.notes[0].model_copy(
        update={"text": "Ambulating in the hallway with physical therapy, tolerating diet."}
    )
    facts = facts.model_copy(update={"notes": [note]})
    guard = ClinicalGuard()
    copied = "The nurses noted poor urine output overnight [N1]."
    assert "fact.unsupported_concept" in {v.rule for v in guard.review(copied, facts).blocking}
    exp = explain(facts, FakeChatModel(script=[GOOD + " " + copied]), V2, guard=guard)
    assert [r.action for r in exp.guard.repairs] == [
        "dropped"
    ] and "urine" not in exp.rationale.text
    c = facts.contributions[0]
    true = f"{c.label} {c.direction} the risk [F1]. The nurses noted the patient walking with physical therapy [N1]."
    assert guard.review(true, facts).blocking == []
