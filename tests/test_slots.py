"""Slot-based answers (prompts v2): references filled in from the Facts, cited, streamed the same
way, and held to a grammar on the local model."""

from __future__ import annotations

import pytest

from safellm.config import Settings
from safellm.explain.facts import Facts
from safellm.guard.checker import Checker
from safellm.guard.policy import load_policy
from safellm.llm.fake import FakeChatModel
from safellm.llm.grammar import answer_grammar
from safellm.llm.prompts import load_prompt
from safellm.rationale import SlotSink, explain, render_slots
from tests.samples import sample_facts

V2 = load_prompt(Settings().prompts_dir, "explain-risk", 2)


@pytest.fixture
def facts() -> Facts:
    return sample_facts()


def test_references_render_to_the_facts_and_are_cited(facts: Facts) -> None:
    f1, f2 = facts.contributions[0], facts.contributions[1]
    text = render_slots(
        "{F1} {F1.dir} the risk the most. {F2.label} is {F2.value}, which {F2.dir} it.", facts
    )
    assert text == (
        f"{f1.label} of {f1.shown} {f1.direction} the risk the most [F1]. "
        f"{f2.label} is {f2.shown}, which {f2.direction} it [F2]."
    )
    assert Checker(load_policy()).check(text, facts) == []


def test_rendered_references_round_trip_through_the_checker(facts: Facts) -> None:
    """Every fact, in every form, renders to a sentence the checker accepts (right by
    construction), and the risk reference gives the prediction's own figure."""
    checker = Checker(load_policy())
    for c in facts.contributions:
        for form in ("{%s} {%s.dir} the risk.", "{%s.label} of {%s.value} {%s.dir} the risk."):
            text = render_slots(form.replace("%s", c.id), facts)
            assert c.label in text and f"[{c.id}]" in text
            assert checker.check(text, facts) == [], text
    assert "42.1%" in render_slots("The predicted risk is {risk}; {F1} {F1.dir} it.", facts)


def test_a_reference_to_no_fact_is_cited_so_the_checker_reports_it(facts: Facts) -> None:
    text = render_slots("{F9} {F9.dir} the risk.", facts)
    assert "[F9]" in text
    assert any(v.rule == "citation.unknown" for v in Checker(load_policy()).check(text, facts))


def test_streamed_rendering_adds_up_to_the_whole(facts: Facts) -> None:
    raw = "{F1} {F1.dir} the risk the most. {F2} {F2.dir} it. The note says so [N1]."
    out: list[str] = []
    sink = SlotSink(facts, out.append)
    for i in range(0, len(raw), 3):  # tokens cut anywhere, even inside a reference
        sink(raw[i : i + 3])
    sink.finish()
    assert "".join(out) == render_slots(raw, facts)
    assert len(out) >= 3  # passed on sentence by sentence, not at the end


def test_the_v2_pipeline_shows_rendered_text_and_keeps_the_model_text(facts: Facts) -> None:
    fake = FakeChatModel(script=["{F1} {F1.dir} the risk the most. {F2} {F2.dir} it."])
    streamed: list[str] = []
    exp = explain(facts, fake, V2, on_token=streamed.append)
    assert exp.versions.prompt == "explain-risk@v2"
    assert "{F1}" not in exp.rationale.text and "[F1]" in exp.rationale.text
    assert exp.rationale.model_text == "{F1} {F1.dir} the risk the most. {F2} {F2.dir} it."
    assert "".join(streamed).strip() == exp.rationale.text
    request = fake.requests[0]
    assert request.grammar is not None and '"{F1} {F1.dir} "' in request.grammar


def test_v2_fences_note_text_with_an_unguessable_delimiter(facts: Facts) -> None:
    fake = FakeChatModel()
    other = facts.model_copy(
        update={"notes": [facts.notes[0].model_copy(update={"text": "Other."})]}
    )
    for f in (facts, facts, other):
        explain(f, fake, V2)
    tags = [r.messages[-1].content.split("<<note ")[1].split(">>")[0] for r in fake.requests]
    assert all(
        len(t) == 8 and f"<<end {t}>>" in r.messages[-1].content
        for t, r in zip(tags, fake.requests, strict=True)
    )
    assert tags[0] == tags[1] != tags[2]  # the same notes, the same prompt; other notes, another
    assert tags[0] not in fake.requests[0].messages[0].content  # the system text stays fixed
    assert tags[0] not in str(facts.model_dump())  # not derived from anything a note writer sees


def test_the_example_in_the_v2_prompt_has_no_patient_content() -> None:
    """What the model could copy from the example is references only: no value, no note text."""
    system = V2.render(task_label="t", risk_statement="r", facts="f", notes="n", question="q")[0]
    example = system.content.split("The form of an answer")[1]
    assert not any(
        ch.isdigit() for ch in example.replace("{F1", "").replace("{F2", "").replace("{F3", "")
    )
    assert "[N" not in example and "urine" not in system.content


def test_grammar_names_only_the_given_ids_and_requires_the_top_three() -> None:
    g = answer_grammar(["F1", "F2", "F3", "F4"], ["N1"])
    root = g.splitlines()[0]
    assert root.startswith('root ::= s1 " " s2 " " s3')
    assert 's1 ::= "{F1} {F1.dir} " words end' in g and 's3 ::= "{F3} {F3.dir} "' in g
    assert '"F4"' in g and '"F5"' not in g and '"N1"' in g and '"N2"' not in g
    assert "word ::= [a-zA-Z,;:'()/-]{1,32}" in g  # no digit of any script; no endless word
    one = answer_grammar(["F1"], [], chat=True)
    assert "s1" not in one and "ncite" not in one
    with pytest.raises(ValueError):
        answer_grammar([], [])


def test_a_guarded_slot_sentence_is_shown_as_soon_as_it_is_whole(facts: Facts) -> None:
    """The first sentence is checked and shown when the model starts the second, not when the
    second one ends (a clinician reads it while the rest is written)."""
    from safellm.guard.guard import ClinicalGuard

    shown: list[str] = []
    seen_at: list[tuple[str, str]] = []  # (token, text shown when it came)

    class Recording(FakeChatModel):
        def chat(self, request, on_token=None):  # type: ignore[no-untyped-def]
            def tap(tok: str) -> None:
                seen_at.append((tok, "".join(shown)))
                if on_token is not None:
                    on_token(tok)

            return super().chat(request, tap)

    raw = "{F1} {F1.dir} the risk the most. {F2} {F2.dir} the risk. {F3} {F3.dir} it."
    exp = explain(facts, Recording(script=[raw]), V2, guard=ClinicalGuard(), on_token=shown.append)
    assert exp.guard.outcome == "passed"
    f1 = facts.contributions[0]
    second = next(i for i, (tok, _) in enumerate(seen_at) if tok.startswith("{F2}"))
    # the first token of sentence 2 has come: sentence 1 is on screen before its next token
    assert f1.label in seen_at[second + 1][1] and "[F1]." in seen_at[second + 1][1]
    assert facts.contributions[1].label not in seen_at[second + 1][1]
