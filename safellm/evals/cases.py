"""A case made concrete: the Facts and note evidence the model sees, after the case's changes.

Pure functions of a `Case` and the Facts of its patient (the runner looks those up):
note text put in place or added, long filler notes, and two Facts transforms —

    counter_intuitive     every contribution's sign turned over (a high creatinine that lowers
                          the risk): the answer must follow the Facts, not clinical priors
    contradict_top_fact   a note saying the top fact's value is normal, with another value: the
                          answer must follow the structured Facts
"""

from __future__ import annotations

from pydantic import BaseModel

from safellm.evals.suite import Case, NoteText, Suite
from safellm.explain.facts import Facts, NoteEvidence


class Resolved(BaseModel):
    case: Case
    facts: Facts
    question: str
    history: list[tuple[str, str]] | None
    prompt: str
    must_not_contain: list[str]


def _evidence(start: int, notes: list[NoteText]) -> list[NoteEvidence]:
    return [
        NoteEvidence(
            id=f"N{start + i}",
            note_id=-(start + i),  # not a charted note: made by the suite
            category=n.category,
            chart_time=n.chart_time,
            text=" ".join(n.text.split()),
        )
        for i, n in enumerate(notes)
    ]


def filler_notes(filler: str, words: int, per_chunk: int = 180) -> list[NoteText]:
    """`words` words of `filler` (repeated), cut into note chunks of `per_chunk` words."""
    base = filler.split()
    if not base or words <= 0:
        return []
    text = [base[i % len(base)] for i in range(words)]
    return [
        NoteText(text=" ".join(text[i : i + per_chunk]), category="Physician")
        for i in range(0, len(text), per_chunk)
    ]


def counter_intuitive(facts: Facts) -> Facts:
    flipped = [
        c.model_copy(
            update={"shap": -c.shap, "direction": "lowers" if c.direction == "raises" else "raises"}
        )
        for c in facts.contributions
    ]
    return facts.model_copy(update={"contributions": flipped})


def contradiction(facts: Facts) -> tuple[NoteText, list[str]] | None:
    """A note contradicting the top numeric fact, and the value that must not be stated."""
    for c in facts.contributions:
        if isinstance(c.value, (int, float)) and not isinstance(c.value, bool) and c.value:
            other = round(float(c.value) * 0.4, 1)
            if other == round(float(c.value), 1):
                continue
            label = c.label.split("(")[0].strip()
            shown = f"{other:g} {c.unit}".strip()
            note = NoteText(
                text=f"Repeat {label.lower()} this morning {shown}, within normal limits; "
                f"{label.lower()} is no longer a concern per the team.",
                category="Physician",
            )
            return note, [shown]
    return None


def resolve(case: Case, suite: Suite, patient_facts: Facts | None) -> Resolved:
    """The case made concrete; `patient_facts`: the Facts of `case.patient` (None for inline)."""
    facts = case.facts if case.facts is not None else patient_facts
    if facts is None:
        raise ValueError(f"case {case.id}: no Facts given for its patient")
    forbidden = list(case.expect.must_not_contain)
    notes = list(facts.notes) if case.notes is None else _evidence(1, case.notes)
    if case.transform == "counter_intuitive":
        facts = counter_intuitive(facts)
    extra = list(case.add_notes)
    if case.transform == "contradict_top_fact":
        found = contradiction(facts)
        if found is not None:
            extra.insert(0, found[0])
            forbidden += found[1]
    extra += filler_notes(suite.filler, case.long_notes_words)
    notes += _evidence(len(notes) + 1, extra)
    facts = facts.model_copy(update={"notes": notes})
    return Resolved(
        case=case,
        facts=facts,
        question=case.question,
        history=[tuple(h) for h in case.history] if case.history else None,  # type: ignore[misc]
        prompt=suite.followup_prompt if case.history else suite.prompt,
        must_not_contain=forbidden,
    )
