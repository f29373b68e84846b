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


# ----------------------------------------------------------------------------- the hash chain
def _trail(tmp_path: Path, n: int = 4) -> AuditLog:
    log = AuditLog(tmp_path / "audit.sqlite")
    for h in range(1, n + 1):
        _record(log, _exp(h), "key-a", "/v1/explain")
    return log


def _tamper(path: Path, *sql: str) -> None:
    """What someone with the file does: drop the triggers, then change rows."""
    con = sqlite3.connect(path)
    con.execute("DROP TRIGGER audit_no_update")
    con.execute("DROP TRIGGER audit_no_delete")
    for s in sql:
        con.execute(s)
    con.commit()
    con.close()


def test_an_untouched_chain_verifies_across_restarts(tmp_path: Path) -> None:
    log = _trail(tmp_path, 2)
    _record(AuditLog(tmp_path / "audit.sqlite"), _exp(3), "key-b", "/chat")  # a restart
    check = AuditLog(tmp_path / "audit.sqlite").verify()
    assert check.intact and check.rows == check.chained == 3, check.problems
    recs = log.records()
    assert recs[0].prev_hash == "0" * 64
    assert [r.prev_hash for r in recs[1:]] == [r.row_hash for r in recs[:-1]]


@pytest.mark.parametrize(
    ("sql", "found"),
    [
        (["UPDATE audit SET hadm_id = 99 WHERE id = 2"], "row 2: its content does not match"),
        (["UPDATE audit SET guard_passed = 0 WHERE id = 4"], "row 4: its content does not match"),
        (["DELETE FROM audit WHERE id = 2"], "row 3: does not follow row 1"),
        (["DELETE FROM audit WHERE id = 1"], "row 2: does not follow the start"),
        (["DELETE FROM audit WHERE id = 4"], "row 4, the last one written, is gone"),
        (  # the end cut off, and the id counter set back to hide it: the head still tells
            ["DELETE FROM audit WHERE id = 4", "UPDATE sqlite_sequence SET seq = 3"],
            "row 4, the last one written, is gone",
        ),
        (  # rows 2 and 3 swapped (ids kept)
            [
                "UPDATE audit SET id = -2 WHERE id = 2",
                "UPDATE audit SET id = 2 WHERE id = 3",
                "UPDATE audit SET id = 3 WHERE id = -2",
            ],
            "row 2: does not follow row 1",
        ),
        (  # a copy of row 4 appended as row 5
            [
                "INSERT INTO audit SELECT 5, at, key_id, route, task, subject_id, hadm_id, "
                "icustay_id, risk_model, prompt, policy, llm, guard_passed, fallback_used, "
                "attempts, violations, latency_ms, answer_sha256, question_sha256, request_id, outcome, "
                "prev_hash, row_hash FROM audit WHERE id = 4"
            ],
            "row 5: does not follow row 4",
        ),
    ],
    ids=[
        "edit",
        "edit-outcome",
        "delete",
        "delete-first",
        "cut-end",
        "cut-end-hidden",
        "swap",
        "copy",
    ],
)
def test_verify_finds_each_kind_of_tampering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sql: list[str], found: str
) -> None:
    _trail(tmp_path)
    monkeypatch.setenv("SAFELLM_HOME", str(tmp_path))
    ok = CliRunner().invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0 and "4 rows, chain intact" in ok.output
    _tamper(tmp_path / "audit.sqlite", *sql)
    check = AuditLog(tmp_path / "audit.sqlite").verify()
    assert not check.intact and any(found in p for p in check.problems), check.problems
    res = CliRunner().invoke(app, ["audit", "verify"])
    assert res.exit_code == 1 and found in " ".join(res.output.split())


def test_a_rewritten_chain_fails_without_the_key(tmp_path: Path) -> None:
    log = _trail(tmp_path, 2)
    assert not AuditLog(tmp_path / "audit.sqlite", key=b"x" * 64).verify().intact
    assert log.verify().intact


def test_trail_key_and_head_are_private(tmp_path: Path) -> None:
    log = _trail(tmp_path, 1)
    for p in (log.path, log.key_path, log.head_path):
        assert p.stat().st_mode & 0o777 == 0o600, p


def test_a_trail_from_before_chaining_opens_and_chains_on(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    con = sqlite3.connect(path)  # the first version's table, one row in it
    con.executescript(
        "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, "
        "key_id TEXT NOT NULL, route TEXT NOT NULL, task TEXT NOT NULL, subject_id INTEGER, "
        "hadm_id INTEGER, icustay_id INTEGER, risk_model TEXT, prompt TEXT, policy TEXT, "
        "llm TEXT, guard_passed INTEGER NOT NULL, fallback_used INTEGER NOT NULL, "
        "attempts INTEGER NOT NULL, violations TEXT NOT NULL, latency_ms REAL NOT NULL, "
        "answer_sha256 TEXT NOT NULL, question_sha256 TEXT);"
        "INSERT INTO audit (at, key_id, route, task, guard_passed, fallback_used, attempts, "
        "violations, latency_ms, answer_sha256) VALUES ('t', 'k', '/v1/explain', "
        "'readmission', 1, 0, 1, '[]', 5.0, 'aa');"
    )
    con.commit()
    con.close()
    log = AuditLog(path)
    _record(log, _exp(2), "key-a", "/v1/explain")
    check = log.verify()
    assert check.intact and (check.rows, check.chained) == (2, 1), check.problems
    assert [r.row_hash is None for r in log.records()] == [True, False]


def test_the_key_file_made_by_racing_writers_is_whole_and_the_same_for_all(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The first appends of a new trail, at once from several threads (a crowd of questions
    on a fresh server): one key file, complete before anyone reads it, the same key for all."""
    import threading

    for round_ in range(20):
        path = tmp_path / f"r{round_}" / "audit.sqlite"
        logs = [AuditLog(path) for _ in range(8)]
        start = threading.Barrier(len(logs))
        keys: list[bytes] = []
        errors: list[Exception] = []

        def read(
            log: AuditLog,
            start: threading.Barrier = start,
            keys: list[bytes] = keys,
            errors: list[Exception] = errors,
        ) -> None:
            start.wait()
            try:
                keys.append(log.key)
            except Exception as exc:  # the race's failure, reported below
                errors.append(exc)

        threads = [threading.Thread(target=read, args=(log,)) for log in logs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert len(set(keys)) == 1 and len(keys[0]) == 64
        assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []
