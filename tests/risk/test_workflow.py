"""`safellm train` end to end on the MIMIC-III demo: metrics with CIs, plots, card, bundle, MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from safellm.cli import app
from safellm.explain.loader import tabular_explainer
from safellm.risk.registry import load_bundle
from safellm.risk.tracking import tracking_uri


@pytest.fixture(scope="module")
def trained(demo_build, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("home")
    res = CliRunner().invoke(
        app,
        [
            "train",
            "--task",
            "all",
            "--data",
            str(demo_build.out_dir),
            "--out",
            str(home),
            "--n-boot",
            "50",
        ],
    )
    assert res.exit_code == 0, res.output
    return home


@pytest.mark.slow
@pytest.mark.parametrize("task", ["readmission", "icu_mortality", "los"])
def test_training_writes_every_artifact(trained: Path, task: str) -> None:
    bundle = load_bundle(trained / "models", task)
    run_dir = trained / "runs" / bundle.meta.version
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for model, m in metrics["models"].items():
        names = (
            ["auroc", "auprc", "brier", "calibration_slope", "calibration_intercept"]
            if task != "los"
            else ["mae", "rmse", "r2"]
        )
        for n in names:
            est = m["metrics"][n]
            assert est["point"] is not None, (model, n)
            assert est["lo"] is not None and est["hi"] is not None and est["lo"] <= est["hi"]
        assert len(m["fold_params"]) == 5
    if task == "los":
        assert metrics["baseline"]["mae"]["point"] > 0
    pngs = sorted(p.name for p in run_dir.glob("*.png"))
    expected = {"fairness.png", "shap_beeswarm.png", "shap_waterfall_top.png"}
    expected |= (
        {"pr_curve.png", "calibration.png", "imbalance_pr.png", "imbalance_metrics.png"}
        if task != "los"
        else {"predicted_vs_observed.png"}
    )
    assert expected <= set(pngs)
    for p in pngs:
        assert (run_dir / p).stat().st_size > 5000
    card = (run_dir / "model_card.md").read_text()
    for heading in (
        "## Intended use",
        "## Data source",
        "## Cohort, prediction time and outcome",
        "## Performance",
        "## Fairness",
        "## Limitations",
    ):
        assert heading in card
    fair = (run_dir / "fairness.csv").read_text()
    assert "sex" in fair and "insurance" in fair and "ethnicity_group" in fair
    assert bundle.meta.data_hash and bundle.meta.code_version
    assert (bundle.path / "model_card.md").exists()
    # the bundle explains units with additive Facts, the prior-correction offset in the base value
    ex = tabular_explainer(bundle)
    frame = bundle.background.assign(subject_id=1, hadm_id=2, icustay_id=None)
    pipe = bundle.pipelines[bundle.meta.default_model]
    if task == "los":
        raw = pipe.predict(frame[ex.features])
        assert bundle.meta.offsets == {}
    else:
        raw = pipe.decision_function(frame[ex.features])
        assert set(bundle.meta.offsets) == {"logreg", "hgb"}
    offset = bundle.meta.offsets.get(bundle.meta.default_model, 0.0)
    for i in range(min(5, len(frame))):
        facts = ex.facts(frame.iloc[i])
        assert facts.contributions
        total = facts.prediction.base_value + sum(c.shap for c in facts.contributions)
        assert total == pytest.approx(float(raw[i]) + offset, abs=1e-6)
        assert facts.prediction.base_value == pytest.approx(ex.raw_base_value + offset)
    if task != "los":
        assert f"{bundle.meta.default_model} {offset:+.3f}" in card


@pytest.mark.slow
def test_mlflow_store_can_be_read_back(trained: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri(trained))
    for task in ("readmission", "icu_mortality", "los"):
        exp = client.get_experiment_by_name(f"safellm-{task}")
        assert exp is not None
        runs = client.search_runs([exp.experiment_id])
        assert len(runs) == 1
        run = runs[0]
        key = "hgb.auroc" if task != "los" else "hgb_reg.mae"
        assert key in run.data.metrics and f"{key}.lo" in run.data.metrics
        arts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "model_card.md" in arts and "metrics.json" in arts
