"""`safellm fhir export` and `safellm fhir predict`: files a FHIR library reads back, the same
risk as the tables, and bad input as a message naming the field (exit 2, no traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from safellm.cli import app
from safellm.config import Settings
from safellm.services.explanation import ExplanationService


def test_export_then_predict(
    demo_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fhir.resources.R4B.bundle import Bundle

    monkeypatch.setenv("SAFELLM_HOME", str(demo_home))
    res = CliRunner().invoke(
        app,
        [
            "fhir",
            "export",
            "--hadm-id",
            "142345",
            "--hadm-id",
            "105331",
            "--out",
            str(tmp_path / "b"),
        ],
    )
    assert res.exit_code == 0, res.output
    files = sorted((tmp_path / "b").glob("*.json"))
    assert [f.name for f in files] == ["admission-105331.json", "admission-142345.json"]
    bundle = Bundle.model_validate_json(files[1].read_text())  # an independent FHIR reader
    assert bundle.type == "transaction" and all(e.request.method == "PUT" for e in bundle.entry)
    res = CliRunner().invoke(
        app, ["fhir", "predict", "--bundle", str(files[1]), "--task", "icu_mortality", "--json"]
    )
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)["facts"]
    svc = ExplanationService(Settings(home=demo_home, llm_model="fake"))
    want = svc.facts("icu_mortality", icustay_id=206504)
    assert got["prediction"]["risk"] == pytest.approx(want.prediction.risk, abs=1e-12)
    assert [c["feature"] for c in got["contributions"]] == [c.feature for c in want.contributions]


def test_predict_names_the_bad_field(
    demo_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFELLM_HOME", str(demo_home))
    CliRunner().invoke(app, ["fhir", "export", "--hadm-id", "142345", "--out", str(tmp_path)])
    path = tmp_path / "admission-142345.json"
    bundle = json.loads(path.read_text())
    lab = next(
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["id"].startswith("lab-") and "valueQuantity" in e["resource"]
    )
    lab["valueQuantity"]["unit"] = lab["valueQuantity"]["code"] = "mg/L"
    path.write_text(json.dumps(bundle))
    res = CliRunner().invoke(
        app, ["fhir", "predict", "--bundle", str(path), "--task", "readmission"]
    )
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "valueQuantity.unit" in res.output and "mg/L" in res.output
    path.write_text("{not json")
    res = CliRunner().invoke(
        app, ["fhir", "predict", "--bundle", str(path), "--task", "readmission"]
    )
    assert res.exit_code == 2 and "cannot read a JSON Bundle" in res.output


def test_export_of_an_unknown_admission_fails_cleanly(
    demo_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFELLM_HOME", str(demo_home))
    res = CliRunner().invoke(app, ["fhir", "export", "--hadm-id", "1", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "admission 1 is not in the data" in res.output
    assert not list(tmp_path.glob("*.json"))
