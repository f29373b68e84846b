from __future__ import annotations

import re

import pytest

from safellm.explain.facts import Contribution, Facts, NoteEvidence, Prediction
from safellm.guard.checker import Checker
from safellm.guard.guard import ClinicalGuard
from safellm.guard.policy import load_policy
from safellm.llm.retrieval import EmbeddingSupport, HashEmbedder


@pytest.fixture(scope="session")
def policy():  # type: ignore[no-untyped-def]
    return load_policy()


@pytest.fixture
def facts() -> Facts:
    def c(
        i: int, feature: str, label: str, value: float | str | None, unit: str, shap: float
    ) -> Contribution:
        return Contribution(
            id=f"F{i}",
            feature=feature,
            label=label,
            value=value,
            unit=unit,
            shap=shap,
            direction="raises" if shap > 0 else "lowers",
            rank=i,
        )

    return Facts(
        task="readmission",
        subject_id=1,
        hadm_id=10,
        model="hgb",
        model_version="v1",
        prediction=Prediction(
            risk=0.4213, band="high", base_value=-2.0, space="log-odds", model_output=-0.32
        ),
        contributions=[
            c(1, "lab_creatinine_last", "Creatinine (last)", 2.4, "mg/dL", 0.61),
            c(2, "age", "Age", 44.0, "years", -0.30),
            c(3, "lab_albumin_min", "Albumin (lowest)", 2.7, "g/dL", 0.21),
            c(4, "discharge_location", "Discharge destination", "SNF", "category", 0.12),
        ],
        notes=[
            NoteEvidence(
                id="N1",
                note_id=5,
                category="Nursing",
                chart_time="2150-01-01 08:00",
                text="Poor urine output overnight; creatinine trending up, nephrology consulted.",
            ),
        ],
    )


def overlap_judge(claim: str, evidence: str) -> float:
    """A stand-in for the model judge: the share of the claim's longer words found in the note."""
    words = [w for w in re.findall(r"[a-z]+", claim.lower()) if len(w) > 3]
    ev = evidence.lower()
    return sum(w[:5] in ev for w in words) / max(len(words), 1)


@pytest.fixture
def support():  # type: ignore[no-untyped-def]
    return EmbeddingSupport(HashEmbedder(), judge=overlap_judge, ask_judge_below=0.79)


@pytest.fixture
def checker(policy, support) -> Checker:  # type: ignore[no-untyped-def]
    return Checker(policy, support)


@pytest.fixture
def guard(policy, support) -> ClinicalGuard:  # type: ignore[no-untyped-def]
    return ClinicalGuard(policy, support)
