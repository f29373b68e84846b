"""The audit trail: every explanation served, appended to an SQLite database under SAFELLM_HOME.

Append-only (triggers refuse UPDATE and DELETE), so it survives restarts and cannot be edited in
place. It holds ids, versions, the guard outcome, latency and hashes — never note text, questions
or answers themselves (the hash of the answer proves what was shown, given the answer).
"""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from safellm.rationale import Explanation

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at TEXT NOT NULL,
  key_id TEXT NOT NULL,
  route TEXT NOT NULL,
  task TEXT NOT NULL,
  subject_id INTEGER,
  hadm_id INTEGER,
  icustay_id INTEGER,
  risk_model TEXT,
  prompt TEXT,
  policy TEXT,
  llm TEXT,
  guard_passed INTEGER NOT NULL,
  fallback_used INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  violations TEXT NOT NULL,
  latency_ms REAL NOT NULL,
  answer_sha256 TEXT NOT NULL,
  question_sha256 TEXT
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
"""


class AuditRecord(BaseModel):
    id: int | None = None
    at: str
    key_id: str
    route: str
    task: str
    subject_id: int | None
    hadm_id: int | None
    icustay_id: int | None
    risk_model: str | None
    prompt: str | None
    policy: str | None
    llm: str | None
    guard_passed: bool
    fallback_used: bool
    attempts: int
    violations: list[str]
    latency_ms: float
    answer_sha256: str
    question_sha256: str | None


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as con:
            con.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def record(self, exp: Explanation, key_id: str, route: str) -> AuditRecord:
        rec = AuditRecord(
            at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            key_id=key_id,
            route=route,
            task=exp.task,
            subject_id=exp.subject_id,
            hadm_id=exp.hadm_id,
            icustay_id=exp.icustay_id,
            risk_model=exp.versions.risk_model,
            prompt=exp.versions.prompt,
            policy=exp.versions.policy,
            llm=exp.versions.llm,
            guard_passed=exp.guard.passed,
            fallback_used=exp.guard.fallback_used,
            attempts=exp.guard.attempts,
            violations=exp.guard.rules,
            latency_ms=round(exp.latency_s * 1000, 1),
            answer_sha256=sha256(exp.rationale.text),
            question_sha256=sha256(exp.question),
        )
        row = rec.model_dump(exclude={"id"})
        row["violations"] = json.dumps(row["violations"])
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._lock, self._connect() as con:
            cur = con.execute(f"INSERT INTO audit ({cols}) VALUES ({marks})", list(row.values()))
            rec.id = cur.lastrowid
        return rec

    def records(self, limit: int | None = None) -> list[AuditRecord]:
        """Newest last; the last `limit` records when given."""
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            if limit is None:
                rows = con.execute("SELECT * FROM audit ORDER BY id").fetchall()
            else:
                rows = con.execute(
                    "SELECT * FROM (SELECT * FROM audit ORDER BY id DESC LIMIT ?) ORDER BY id",
                    (int(limit),),
                ).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["violations"] = json.loads(d["violations"])
            out.append(AuditRecord.model_validate(d))
        return out

    def export(self, dest: Path) -> int:
        """Write every record to `dest` (.csv or .jsonl); returns the count."""
        recs = self.records()
        dest = Path(dest)
        tmp = dest.with_name(dest.name + ".tmp")
        if dest.suffix.lower() == ".csv":
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=list(AuditRecord.model_fields))
                w.writeheader()
                for r in recs:
                    w.writerow(r.model_dump() | {"violations": ";".join(r.violations)})
        else:
            tmp.write_text("".join(r.model_dump_json() + "\n" for r in recs), encoding="utf-8")
        tmp.replace(dest)
        return len(recs)
