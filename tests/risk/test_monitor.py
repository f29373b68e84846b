"""`safellm monitor` on a synthetic hospital split in two by patient: the halves do not drift; the
second half with two features shifted alerts on exactly those two."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

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
        d = root / name
        d.mkdir()
        shutil.copy(root / "all" / "manifest.json", d / "manifest.json")
        part = frame[frame["subject_id"] % 2 == keep].copy()
        if name == "shifted":
            for col, shift in SHIFTED.items():
                part[col] = shift(part[col])
        part.to_parquet(d / "readmission.parquet")
    train_and_register("readmission", root / "ref", root / "home", n_boot=20, log_mlflow=False)
    return root


def _monitor(root: Path, current: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
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
