"""The audit trail: appended, append-only, survives restarts, printed and exported by the CLI."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from safellm.audit import AuditLog, sha256
from safellm.cli import app
from safellm.explain.facts import Prediction, ranked
from safellm.rationale import Explanation, GuardReport, RationaleAnswer, Versions
from tests.samples import sample_facts


def _exp(hadm: int, text: str = "Creatinine raises the risk [F1].") -> Explanation:
    facts = sample_facts().model_copy(
        update={
            "subject_id": 7,
            "hadm_id": hadm,
            "prediction": Prediction(
                risk=0.3, band="high", base_value=-1, space="log-odds", model_output=-0.8
            ),
            "contributions": ranked(
                [("lab_creatinine_last", "Creatinine (last)", 2.0, "mg/dL", 0.4)]
            ),
            "notes": [],
        }
    )
    return Explanation(
        task="readmission",
        subject_id=7,
        hadm_id=hadm,
        question="Why is Mr Smith high risk?",
        prediction=facts.prediction,
        facts=facts,
        rationale=RationaleAnswer(text=text, citations=["F1"]),
        guard=GuardReport(passed=True, attempts=1),
        versions=Versions(
            risk_model="hgb@v1", prompt="explain-risk@v1", policy="clinical@v1", llm="fake"
        ),
        latency_s=0.25,
    )


def test_records_survive_a_restart_and_hold_no_text(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    _record(AuditLog(path), _exp(1), "key-a", "/v1/explain")
    _record(AuditLog(path), _exp(2), "key-b", "/v1/explain/stream")
    recs = AuditLog(path).records()
    assert [r.hadm_id for r in recs] == [1, 2] and recs[1].key_id == "key-b"
    assert recs[0].answer_sha256 == sha256("Creatinine raises the risk [F1].")
    raw = path.read_bytes()
    assert b"Smith" not in raw and b"Creatinine raises" not in raw


def test_the_trail_is_append_only(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    _record(AuditLog(path), _exp(1), "key-a", "/v1/explain")
    con = sqlite3.connect(path)
    for sql in ("UPDATE audit SET hadm_id = 9", "DELETE FROM audit"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            con.execute(sql)
    assert AuditLog(path).records()[0].hadm_id == 1


def test_cli_prints_and_exports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFELLM_HOME", str(tmp_path))
    empty = CliRunner().invoke(app, ["audit"])
    assert empty.exit_code == 0 and "no audit trail yet" in empty.output
    log = AuditLog(tmp_path / "audit.sqlite")
    for h in (11, 12, 13):
        _record(log, _exp(h), "key-a", "/v1/explain")
    res = CliRunner().invoke(app, ["audit", "--limit", "2", "--json"])
    assert res.exit_code == 0
    assert [json.loads(x)["hadm_id"] for x in res.stdout.splitlines()] == [12, 13]
    table = CliRunner().invoke(app, ["audit"])
    assert table.exit_code == 0 and "passed" in table.output
    out = tmp_path / "trail.csv"
    assert CliRunner().invoke(app, ["audit", "--export", str(out)]).exit_code == 0
    rows = list(csv.DictReader(out.open()))
    assert [int(r["hadm_id"]) for r in rows] == [11, 12, 13] and rows[0][
        "prompt"
    ] == "explain-risk@v1"
    jl = tmp_path / "trail.jsonl"
    assert CliRunner().invoke(app, ["audit", "--export", str(jl)]).exit_code == 0
    assert len(jl.read_text().splitlines()) == 3


def _record(log: AuditLog, exp: Explanation, key_id: str, route: str) -> None:
    """What the explanation use case appends for an explanation it served."""
    from safellm.services.explanation import Caller, audit_record

    log.append(audit_record(exp, Caller(key_id, route)))
