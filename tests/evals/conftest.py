"""Eval tests: a tiny suite written per test, and Facts of a made-up patient."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from safellm.explain.facts import Contribution, Facts, NoteEvidence, Prediction

EVALS = Path(__file__).resolve().parents[2] / "evals"


@pytest.fixture
def facts() -> Facts:
    return Facts(
        task="readmission",
        subject_id=1,
        hadm_id=10,
        model="hgb",
        model_version="v1",
        prediction=Prediction(
            risk=0.42, band="high", base_value=-2.0, space="log-odds", model_output=-0.32
        ),
        contributions=[
            Contribution(
                id="F1",
                feature="lab_creatinine_last",
                label="Creatinine (last)",
                value=3.9,
                unit="mg/dL",
                shap=0.81,
                direction="raises",
                rank=1,
            ),
            Contribution(
                id="F2",
                feature="prior_adm_12m",
                label="Admissions in the previous 12 months",
                value=3,
                unit="admissions",
                shap=0.52,
                direction="raises",
                rank=2,
            ),
            Contribution(
                id="F3",
                feature="age",
                label="Age",
                value=44.0,
                unit="years",
                shap=-0.3,
                direction="lowers",
                rank=3,
            ),
        ],
        notes=[
            NoteEvidence(
                id="N1",
                note_id=7,
                category="Nursing/other",
                chart_time="2150-01-01 08:00",
                text="Poor urine output overnight; creatinine trending up, nephrology consulted.",
            ),
        ],
    )


def write_suite(path: Path, cases: list[dict[str, Any]], **extra: Any) -> Path:
    doc = {"name": "tiny", "version": 1, "changelog": "test", "cases": cases, **extra}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path
