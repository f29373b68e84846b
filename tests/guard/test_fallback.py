"""The grounded fallback passes every check for every unit of the demo and of a 1,000-patient
synthetic hospital, with the Facts of the tabular models and of the temporal model."""

from __future__ import annotations

from pathlib import Path

import pytest

from safellm.config import Settings
from safellm.guard.fallback import fallback_answer
from safellm.services.explanation import ExplanationService


def _all_pass(home: Path, tasks: tuple[str, ...], guard, risk_model: str = "tabular") -> int:  # type: ignore[no-untyped-def]
    service = ExplanationService(Settings(home=home, explain_notes=0, risk_model=risk_model))
    n = 0
    for task in tasks:
        td = service.task_data(task)
        explainer = service.explainer(task)
        for _, row in td.frame.iterrows():
            full = explainer.facts(row)
            facts = full.cut(6)
            assert facts.adds_up(), (task, row["hadm_id"], facts.gap)
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


def _synthetic_home(home: Path, patients: int, seed: int) -> Path:
    """`home` with a synthetic hospital built under `home/data` (no notes), models not trained."""
    from safellm.data.build import build_dataset
    from safellm.data.synthetic import synthesize

    synthesize(home / "hospital", patients, seed)
    build_dataset(home / "hospital", home / "data", notes=False)
    return home


@pytest.mark.slow
def test_fallback_passes_for_every_demo_unit(demo_home: Path, guard) -> None:  # type: ignore[no-untyped-def]
    assert _all_pass(demo_home, ("readmission", "icu_mortality", "los"), guard) == 89 + 114 + 119


@pytest.mark.slow
def test_fallback_passes_for_every_synthetic_admission(
    tmp_path_factory: pytest.TempPathFactory, guard
) -> None:  # type: ignore[no-untyped-def]
    from safellm.services.training import train_and_register

    home = _synthetic_home(tmp_path_factory.mktemp("syn1000"), patients=1000, seed=0)
    for task in ("readmission", "los"):
        train_and_register(task, home / "data", home, n_boot=20, log_mlflow=False)
    assert _all_pass(home, ("readmission", "los"), guard) > 1500


@pytest.mark.slow
def test_temporal_facts_pass_for_every_demo_unit(demo_temporal_home: Path, guard) -> None:  # type: ignore[no-untyped-def]
    """Event-level Facts (labels like "Creatinine high, last 24 h") rendered by the fallback
    template: no violation for any unit of either classification task."""
    n = _all_pass(demo_temporal_home, ("readmission", "icu_mortality"), guard, "temporal")
    assert n == 89 + 114


@pytest.mark.slow
def test_temporal_facts_pass_for_every_synthetic_admission(
    tmp_path_factory: pytest.TempPathFactory, guard
) -> None:  # type: ignore[no-untyped-def]
    from safellm.services.temporal_training import train_temporal_and_register

    home = _synthetic_home(tmp_path_factory.mktemp("syn600t"), patients=600, seed=3)
    train_temporal_and_register("readmission", home / "data", home, n_boot=20)
    assert _all_pass(home, ("readmission",), guard, "temporal") > 600
