"""The grounded fallback passes every check for every unit of the demo and of a 1,000-patient
synthetic hospital."""

from __future__ import annotations

from pathlib import Path

import pytest

from safellm.config import Settings
from safellm.guard.fallback import fallback_answer
from safellm.service import ExplanationService


def _all_pass(home: Path, tasks: tuple[str, ...], guard) -> int:  # type: ignore[no-untyped-def]
    service = ExplanationService(Settings(home=home, explain_notes=0))
    n = 0
    for task in tasks:
        td = service.task_data(task)
        explainer = service.explainer(task)
        for _, row in td.frame.iterrows():
            full = explainer.facts(row)
            facts = full.model_copy(update={"contributions": full.contributions[:6]})
            text = fallback_answer(facts).text
            review = guard.review(text, facts)
            assert review.blocking == [] and review.fixed == [], (
                task,
                row["hadm_id"],
                text,
                review,
            )
            n += 1
    return n


@pytest.mark.slow
def test_fallback_passes_for_every_demo_unit(demo_home: Path, guard) -> None:  # type: ignore[no-untyped-def]
    assert _all_pass(demo_home, ("readmission", "icu_mortality", "los"), guard) == 89 + 114 + 119


@pytest.mark.slow
def test_fallback_passes_for_every_synthetic_admission(
    tmp_path_factory: pytest.TempPathFactory, guard
) -> None:  # type: ignore[no-untyped-def]
    from safellm.data.build import build_dataset
    from safellm.data.synthetic import synthesize
    from safellm.risk.workflow import train_and_register

    home = tmp_path_factory.mktemp("syn1000")
    synthesize(home / "hospital", 1000, 0)
    build_dataset(home / "hospital", home / "data", notes=False)
    for task in ("readmission", "los"):
        train_and_register(task, home / "data", home, n_boot=20, log_mlflow=False)
    assert _all_pass(home, ("readmission", "los"), guard) > 1500
