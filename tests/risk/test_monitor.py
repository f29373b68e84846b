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
