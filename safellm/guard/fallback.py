"""The grounded fallback: a rationale rendered from the Facts alone by a fixed template. It names
each of the top facts with its label, value (as displayed: `Contribution.shown`, rounded to the
catalogue's decimals) and direction and cites it, so it passes the checker by construction (a test
runs it over every admission of the demo and of a synthetic hospital)."""

from __future__ import annotations

from safellm.explain.facts import Contribution, Facts
from safellm.rationale import RationaleAnswer, citations
from safellm.tasks import task_spec


def _fact(c: Contribution) -> str:
    return f"{c.label} ({c.shown})"


def grounded_sentence(c: Contribution, facts: Facts) -> str:
    """One fact in a sentence that passes the checker by construction (what a failing sentence
    of a model's answer is replaced by)."""
    return f"{_fact(c)} {c.direction} {task_spec(facts.task).outcome} [{c.id}]."


def fallback_answer(facts: Facts, top: int = 3) -> RationaleAnswer:
    p = facts.prediction
    spec = task_spec(facts.task)
    if spec.in_days:
        lead = f"The model predicts a stay of {spec.format_risk(p.risk)} ({p.band} band)."
    else:
        lead = f"The model estimates a risk of {spec.format_risk(p.risk)} ({p.band} band)."
    parts = [lead]
    shown = facts.contributions[:top]
    what = spec.outcome
    for i, c in enumerate(shown):
        if i == 0:
            parts.append(
                f"The largest contribution is {_fact(c)}, which {c.direction} {what} [{c.id}]."
            )
        else:
            parts.append(f"{_fact(c)} {c.direction} {what} [{c.id}].")
    if not shown:
        parts.append("No single fact moves this prediction away from the average.")
    text = " ".join(parts)
    return RationaleAnswer(text=text, citations=citations(text))
