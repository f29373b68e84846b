"""`safellm explain` on the MIMIC-III demo with the fake model, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from safellm.cli import app
from tests.samples import first_hadm


@pytest.fixture
def home(demo_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SAFELLM_HOME", str(demo_home))
    return demo_home


def _run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["explain", *args])


def test_explain_with_fake_model_is_deterministic(home: Path) -> None:
    args = [
        "--task",
        "readmission",
        "--hadm-id",
        str(first_hadm(home)),
        "--model",
        "fake",
        "--json",
    ]
    a, b = _run(*args), _run(*args)
    assert a.exit_code == 0, a.output
    ea, eb = json.loads(a.stdout), json.loads(b.stdout)
    assert ea["rationale"] == eb["rationale"]
    assert ea["rationale"]["citations"] and ea["rationale"]["citations"][0] == "F1"
    assert ea["hadm_id"] == first_hadm(home) and ea["versions"]["llm"] == "fake"
    ids = [c["id"] for c in ea["facts"]["contributions"]]
    assert ids == [f"F{i}" for i in range(1, len(ids) + 1)] and len(ids) <= 6


def test_explain_streams_to_the_terminal(home: Path) -> None:
    res = _run("--task", "readmission", "--hadm-id", str(first_hadm(home)), "--model", "fake")
    assert res.exit_code == 0, res.output
    assert "Rationale:" in res.output and "[F1]" in res.output and "citations: F1" in res.output


def test_icu_task_by_icustay(home: Path) -> None:
    icu = int(pd.read_parquet(home / "data" / "icu_mortality.parquet")["icustay_id"].iloc[0])
    res = _run("--task", "icu_mortality", "--icustay-id", str(icu), "--model", "fake", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["icustay_id"] == icu


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--task", "readmission", "--hadm-id", "1", "--model", "fake"],
            "not in the readmission cohort",
        ),
        (["--task", "sepsis", "--hadm-id", "1"], "unknown task 'sepsis'"),
        (["--task", "readmission", "--model", "fake"], "exactly one of hadm_id or icustay_id"),
        (
            ["--task", "readmission", "--hadm-id", "{hadm}", "--model", "gpt-nonsense-9"],
            "unknown model",
        ),
    ],
)
def test_bad_requests_are_clear_errors(home: Path, args: list[str], message: str) -> None:
    res = _run(*[a.format(hadm=first_hadm(home)) for a in args])
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split()) and "Traceback" not in res.output


def test_remote_model_without_network_is_a_clear_error(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A LiteLLM string is accepted; with the provider unreachable (a closed local port stands for
    no network) the command fails fast with the provider named, and no traceback."""
    monkeypatch.setenv("SAFELLM_LLM_API_BASE", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("SAFELLM_LLM_API_KEY", "sk-test")
    monkeypatch.setenv("SAFELLM_LLM_MAX_RETRIES", "0")
    res = _run(
        "--task",
        "readmission",
        "--hadm-id",
        str(first_hadm(home)),
        "--model",
        "openai/gpt-4o-mini",
        "--json",
    )
    flat = " ".join(res.output.split())
    assert res.exit_code == 2 and "provider openai" in flat and "cannot reach the provider" in flat
    assert "Traceback" not in res.output


def test_explain_with_the_temporal_model(demo_temporal_home: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SAFELLM_HOME", str(demo_temporal_home))
    hadm = first_hadm(demo_temporal_home)
    args = ["--task", "readmission", "--hadm-id", str(hadm), "--model", "fake", "--json"]
    res = _run(*args, "--risk-model", "temporal")
    assert res.exit_code == 0, res.output
    exp = json.loads(res.stdout)
    assert exp["versions"]["risk_model"].startswith("temporal@readmission-temporal-")
    assert exp["guard"]["passed"] or exp["guard"]["fallback_used"]
    labels = [c["label"] for c in exp["facts"]["contributions"]]
    assert labels and all("," in lab or lab.startswith(("Age", "Discharge")) for lab in labels)
    # the tabular model stays the default
    tab = json.loads(_run(*args).stdout)
    assert tab["versions"]["risk_model"].startswith("logreg@") or tab["versions"][
        "risk_model"
    ].startswith("hgb@")
    bad = _run(*args, "--risk-model", "lstm")
    assert bad.exit_code == 2 and "tabular or temporal" in bad.output
    los = _run("--task", "los", "--hadm-id", str(first_hadm(demo_temporal_home, "los")),
               "--model", "fake", "--risk-model", "temporal")  # fmt: skip
    assert los.exit_code == 2 and "not los" in los.output


def test_train_temporal_refuses_los_and_needs_events(tmp_path: Path, demo_build) -> None:  # type: ignore[no-untyped-def]
    res = CliRunner().invoke(app, ["train", "--task", "los", "--temporal"])
    assert res.exit_code == 2 and "not los" in res.output
    import shutil

    data = tmp_path / "data"
    shutil.copytree(demo_build.out_dir, data)
    (data / "events_readmission.parquet").unlink()  # a data folder built by an older version
    res = CliRunner().invoke(
        app, ["train", "--task", "readmission", "--temporal", "--data", str(data)]
    )
    assert res.exit_code == 2 and "rebuild the data" in res.output
