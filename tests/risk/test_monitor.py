"""`safellm monitor` on a synthetic hospital split in two by patient: the halves do not drift; the
second half with two features shifted alerts on exactly those two. Concept drift: the second half
seen over two calendar years with outcomes drawn from the model's own risks does not alert on
performance; when the outcome model changes half-way, the second year's quarters, and only they,
alert."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from safellm.cli import app

SHIFTED = {"age": lambda s: s + 15, "lab_creatinine_last": lambda s: s * 2}


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from safellm.data.build import build_dataset
    from safellm.data.synthetic import synthesize
    from safellm.services.training import train_and_register

    root = tmp_path_factory.mktemp("monitor")
    synthesize(root / "hospital", 900, seed=3)
    build_dataset(root / "hospital", root / "all")
    frame = pd.read_parquet(root / "all" / "readmission.parquet")
    for name, keep in (("ref", 0), ("cur", 1), ("shifted", 1)):
        part = frame[frame["subject_id"] % 2 == keep].copy()
        if name == "shifted":
            for col, shift in SHIFTED.items():
                part[col] = shift(part[col])
        _write(root, name, part)
    train_and_register("readmission", root / "ref", root / "home", n_boot=20, log_mlflow=False)
    cur = frame[frame["subject_id"] % 2 == 1]
    for name, change in (("calendar", False), ("concept", True)):
        _write(root, name, over_two_years(cur, _risks(root, cur), change=change))
    return root


def _write(root: Path, name: str, part: pd.DataFrame) -> None:
    d = root / name
    d.mkdir()
    shutil.copy(root / "all" / "manifest.json", d / "manifest.json")
    part.to_parquet(d / "readmission.parquet")


def _risks(root: Path, part: pd.DataFrame) -> np.ndarray:
    """The registered model's risks for the units of `part` (as `safellm monitor` computes them)."""
    from safellm.explain.loader import tabular_explainer
    from safellm.risk.dataset import load_task
    from safellm.risk.registry import load_bundle

    _write(root, "scratch", part)
    explainer = tabular_explainer(load_bundle(root / "home" / "models", "readmission"))
    frame = load_task(root / "scratch", "readmission").frame
    shutil.rmtree(root / "scratch")
    return np.asarray(explainer.risk(explainer.attributions(frame)[1]))


CHANGE = pd.Timestamp("2102-01-01")


def over_two_years(part: pd.DataFrame, risk: np.ndarray, change: bool) -> pd.DataFrame:
    """A hospital whose outcomes follow the model: the batch's units in their order of
    prediction time, spread over the two calendar years 2101-2102 (the synthetic hospital spreads
    its patients over 87 shifted years), each readmitted with the model's predicted risk. With
    `change`, from 2102 on the outcome model changes: 40 % are readmitted whatever their history."""
    order = np.argsort(part["prediction_time"].to_numpy(), kind="stable")
    part, risk = part.iloc[order].copy(), risk[order]
    start = pd.Timestamp("2101-01-01")
    span = (pd.Timestamp("2102-12-31") - start) / max(len(part) - 1, 1)
    part["prediction_time"] = [start + i * span for i in range(len(part))]
    rng = np.random.default_rng(11)
    draw = rng.random(len(part))
    after = (part["prediction_time"] >= CHANGE).to_numpy() & change
    part["readmit_30d"] = np.where(after, draw < 0.4, draw < risk).astype("int32")
    return part


def _monitor(root: Path, current: str, monkeypatch: pytest.MonkeyPatch, *extra: str):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SAFELLM_HOME", str(root / "home"))
    out = root / f"report-{current}"
    res = CliRunner().invoke(
        app,
        [
            "monitor",
            "--task",
            "readmission",
            "--reference",
            str(root / "ref"),
            "--current",
            str(root / current),
            "--out",
            str(out),
            *extra,
        ],
    )
    return res, out


def test_an_unshifted_batch_raises_no_alert(hospital: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    res, out = _monitor(hospital, "cur", monkeypatch)
    assert res.exit_code == 0, res.output
    assert "No drift alert." in res.output
    report = json.loads((out / "drift.json").read_text())
    assert not report["alert"] and not report["prediction"]["alert"]
    assert report["quality"]["why"] == "no answers in the audit trail"


def test_a_shifted_batch_alerts_on_the_shifted_features_only(hospital: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    res, out = _monitor(hospital, "shifted", monkeypatch)
    assert res.exit_code == 1, res.output
    assert "ALERT" in res.output
    report = json.loads((out / "drift.json").read_text())
    assert {f["feature"] for f in report["features"] if f["alert"]} == set(SHIFTED)
    assert len(report["features"]) > 20  # every other feature was tested and did not alert
    html = (out / "drift.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "ALERT" in html


def test_bad_input_fails_clearly(hospital: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SAFELLM_HOME", str(hospital / "home"))
    res = CliRunner().invoke(app, ["monitor", "--current", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "build the data first" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["monitor", "--task", "wrong", "--current", str(tmp_path)])
    assert res.exit_code == 2 and "unknown task 'wrong'" in res.output


def test_the_fake_models_answers_are_not_monitored(tmp_path: Path) -> None:
    """Rows of tests and dry runs (the fake models) stay out of the explanation-quality drift."""
    from safellm.audit import AuditLog, AuditRecord, now
    from safellm.services.monitoring import audit_rows

    log = AuditLog(tmp_path / "audit.sqlite")
    for llm, task, fallback in (
        ("fake", "readmission", True),
        ("fake:hallucinate", "readmission", True),
        ("local:qwen2.5-coder-1.5b", "readmission", False),
        ("local:qwen2.5-coder-1.5b", "los", True),
    ):
        log.append(
            AuditRecord(
                at=now(),
                key_id="k",
                route="/v1/explain",
                task=task,
                subject_id=1,
                hadm_id=2,
                icustay_id=None,
                risk_model="m@v",
                prompt="p@v1",
                policy="clinical@v1",
                llm=llm,
                guard_passed=not fallback,
                fallback_used=fallback,
                attempts=1,
                violations=[],
                latency_ms=1.0,
                answer_sha256="0" * 64,
                question_sha256=None,
            )
        )
    rows = audit_rows(log, "readmission")
    assert [(passed, fallback) for _, passed, fallback in rows] == [(True, False)]


def test_outcomes_that_change_half_way_alert_on_the_later_periods_only(
    hospital: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    res, out = _monitor(hospital, "concept", monkeypatch, "--period", "quarter", "--n-boot", "200")
    assert res.exit_code == 1, res.output
    report = json.loads((out / "drift.json").read_text())
    perf = report["performance"]
    assert perf["period"] == "quarter" and perf["validation_auroc"] is not None
    windows = perf["windows"]
    assert len(windows) == 8 and all(w["auroc"] is not None for w in windows)
    before = [w for w in windows if pd.Timestamp(w["start"]) < CHANGE]
    after = [w for w in windows if pd.Timestamp(w["start"]) >= CHANGE]
    assert [w["alert"] for w in before] == [False] * 4, [w["why"] for w in before]
    assert [w["alert"] for w in after] == [True] * 4
    for w in after:  # 40 % readmitted against the model's lower risks: calibration in the large
        assert w["calibration_intercept"]["lo"] > 0
    assert any(a.startswith("performance: 4 of 8 quarters degraded") for a in report["alerts"])
    # the features and the predictions did not move: only the outcomes did
    assert not any(f["alert"] for f in report["features"]) and not report["prediction"]["alert"]
    assert "Performance per quarter" in res.output
    html = (out / "drift.html").read_text()
    assert "Performance per quarter" in html and html.count("data:image/png;base64,") >= 4


def test_the_same_two_years_without_the_change_do_not_alert_on_performance(
    hospital: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    res, out = _monitor(hospital, "calendar", monkeypatch, "--period", "quarter")
    report = json.loads((out / "drift.json").read_text())
    perf = report["performance"]
    assert len(perf["windows"]) == 8 and all(w["auroc"] is not None for w in perf["windows"])
    assert not perf["alert"], perf["why"]
    assert not any(w["alert"] for w in perf["windows"])
    assert res.exit_code == 0, res.output
