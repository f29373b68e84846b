"""The audit trail: every explanation served, appended to an SQLite database under SAFELLM_HOME.

Append-only (triggers refuse UPDATE and DELETE), so it survives restarts and cannot be edited in
place. It holds ids, versions, the guard outcome, latency and hashes — never note text, questions
or answers themselves (the hash of the answer proves what was shown, given the answer).

A storage module: it knows records, not explanations. The explanation use case
(`safellm.services.explanation`) turns each Explanation it serves, from any front end, into a record.
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

from safellm.fsutil import atomic_open

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


def now() -> str:
    """The time a record is made: UTC, ISO 8601, milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


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

    def append(self, rec: AuditRecord) -> AuditRecord:
        """Store `rec`; returns it with its id."""
        rec = rec.model_copy()
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
        with atomic_open(dest, newline="") as fh:
            if dest.suffix.lower() == ".csv":
                w = csv.DictWriter(fh, fieldnames=list(AuditRecord.model_fields))
                w.writeheader()
                for r in recs:
                    w.writerow(r.model_dump() | {"violations": ";".join(r.violations)})
            else:
                fh.writelines(r.model_dump_json() + "\n" for r in recs)
        return len(recs)
