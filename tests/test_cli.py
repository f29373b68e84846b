"""The `safellm` command: the demo path end to end on a small synthetic hospital, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from safellm.cli import app
from safellm.explain.facts import shown_value as _shown
from tests.samples import sample_facts


@pytest.mark.slow
@pytest.mark.llm
def test_demo_runs_the_whole_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SAFELLM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SAFELLM_SYNTHETIC_PATIENTS", "400")
    res = CliRunner().invoke(app, ["demo", "--n-boot", "20"])
    assert res.exit_code == 0, res.output
    home = tmp_path / "home"
    report = json.loads((home / "data" / "cohort_report.json").read_text())
    assert report["readmission"]["rows"] > 300 and report["readmission"]["positives"] > 10
    assert (home / "models" / "readmission" / "LATEST").exists()
    # the Facts table of the highest-risk patient, with ranked citations and directions
    assert "predicted" in res.output and "band high" in res.output
    assert "F1" in res.output and ("raises" in res.output or "lowers" in res.output)
    # then the packaged local model's rationale, streamed, with its citations and versions
    assert "Rationale:" in res.output and "llm local:qwen2.5-coder-1.5b" in res.output
    assert "prompt explain-risk@v3" in res.output
    assert "http://127.0.0.1:8000/chat" in res.output


def test_synth_writes_a_hospital(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["data", "synth", "--patients", "30", "--out", str(tmp_path / "h")]
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "h" / "ADMISSIONS.csv.gz").exists()


def test_synth_rejects_zero_patients(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["data", "synth", "--patients", "0", "--out", str(tmp_path / "h")]
    )
    assert res.exit_code == 2 and "Invalid value" in res.output
    assert not (tmp_path / "h").exists()


def test_train_without_built_data_says_what_to_run(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["train", "--task", "readmission", "--data", str(tmp_path)])
    assert res.exit_code == 2
    assert "safellm data build" in res.output and "Traceback" not in res.output


def test_train_rejects_an_unknown_task() -> None:
    res = CliRunner().invoke(app, ["train", "--task", "sepsis"])
    assert res.exit_code == 2 and "unknown task 'sepsis'" in res.output


def test_values_are_shown_as_clinicians_read_them() -> None:
    assert _shown(None, "mg/dL") == "not measured"
    assert _shown(1.0, "yes/no") == "yes" and _shown(0.0, "yes/no") == "no"
    assert _shown(7.8, "mg/dL") == "7.8 mg/dL"
    assert _shown("SNF", "category") == "SNF"


def test_facts_table_shows_values_as_displayed_and_all_other_features() -> None:
    """Values rounded by the catalogue's precision; the contributions not listed summed in a last
    row, so the column adds up from the base value to the model output."""
    from safellm.cli.console import out
    from safellm.cli.explain import print_facts

    full = sample_facts()
    age = full.contributions[1].model_copy(update={"value": 86.6645})
    full = full.model_copy(
        update={"contributions": [full.contributions[0], age, *full.contributions[2:]]}
    )
    with out.capture() as cap:
        print_facts(full.cut(2))
    text = " ".join(cap.get().split())
    assert "2.4 mg/dL" in text and "87 years" in text and "86.66" not in text
    assert "all other features (2)" in text and "+0.330" in text  # 0.21 + 0.12
    with out.capture() as cap:
        print_facts(full, top=8)
    assert "all other features" not in cap.get()
