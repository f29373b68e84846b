"""Sample values shared by the tests."""

from __future__ import annotations

from safellm.explain.facts import Contribution, Facts, NoteEvidence, Prediction


def sample_facts() -> Facts:
    """A made-up readmission patient: creatinine and albumin raise the risk, age lowers it, the
    discharge destination raises it a little; one nursing note."""

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
