"""The audit trail: every explanation served, appended to an SQLite database under SAFELLM_HOME
(or to PostgreSQL, shared by several API replicas, when SAFELLM_AUDIT_URL is set: `safellm.pgstore`).

Append-only (triggers refuse UPDATE and DELETE), so it survives restarts and cannot be edited in
place. It holds ids, versions, the guard outcome, latency and hashes — never note text, questions
or answers themselves (the hash of the answer proves what was shown, given the answer).

Tamper-evident: each row carries an HMAC-SHA256 of its content and of the row before it (a hash
chain), keyed by a secret the database does not hold (`SAFELLM_AUDIT_KEY`, else a key file made
beside the database, mode 600). A row deleted, edited, inserted or moved breaks the chain, and
a head file (the last row's id and hash) shows rows cut off the end; `AuditLog.verify` (`safellm
audit verify`) finds each. Whoever holds the key could rewrite the chain: keep the key elsewhere
for protection against the host's own administrators. The database, key and head are mode 600.

A storage module: it knows records, not explanations. The explanation use case
(`safellm.services.explanation`) turns each Explanation it serves, from any front end, into a record.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

from safellm.errors import ConfigError
from safellm.fsutil import atomic_open, atomic_write_text

if TYPE_CHECKING:
    from safellm.config import Settings

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
  question_sha256 TEXT,
  request_id TEXT,
  outcome TEXT,
  prev_hash TEXT,
  row_hash TEXT
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
"""
# columns added since the first version (a trail made before gets them, empty, on opening)
ADDED = {"request_id": "TEXT", "outcome": "TEXT", "prev_hash": "TEXT", "row_hash": "TEXT"}
GENESIS = "0" * 64  # what the first chained row follows
CUT_OFF = "row {id}, the last one written, is gone or changed (rows were cut off the end)"


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
    request_id: str | None = None
    # "delivered" (an answer was given), "cancelled" (its client left) or "timed_out" (its
    # deadline passed): the two last were given up and carry no answer hash
    outcome: str | None = "delivered"
    prev_hash: str | None = None  # the row before's row_hash (GENESIS for the first)
    row_hash: str | None = None  # None: written before the trail was chained


class AuditCheck(BaseModel):
    """What `AuditLog.verify` found: rows in all, how many are chained (the rest were written
    before chaining), and every break of the chain; intact when there is none."""

    rows: int
    chained: int
    problems: list[str]

    @property
    def intact(self) -> bool:
        return not self.problems


def digest(key: bytes, rec: AuditRecord) -> str:
    """The row's hash: HMAC-SHA256 over the hash it follows and its content (id included)."""
    body = rec.model_dump(exclude={"row_hash"})
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, blob.encode("utf-8"), hashlib.sha256).hexdigest()


def _private(path: Path) -> None:
    """Readable and writable by the owner only."""
    if path.exists():
        os.chmod(path, 0o600)


def now() -> str:
    """The time a record is made: UTC, ISO 8601, milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class AuditTrail(Protocol):
    """What every trail offers (SQLite here, PostgreSQL in `safellm.pgstore`)."""

    @property
    def location(self) -> str: ...

    def append(self, rec: AuditRecord) -> AuditRecord: ...

    def records(self, limit: int | None = None) -> list[AuditRecord]: ...

    def export(self, dest: Path) -> int: ...

    def verify(self) -> AuditCheck: ...


class AuditLog:
    """The SQLite trail."""

    def __init__(self, path: Path, key: bytes | None = None) -> None:
        """The trail at `path`; `key`: the chain's secret (default: the key file beside the
        database, made on first use)."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self.key_path = self.path.with_name(self.path.name + ".key")
        self._key = key
        self._lock = threading.Lock()
        with self._connect() as con:
            con.executescript(SCHEMA)
            have = {row[1] for row in con.execute("PRAGMA table_info(audit)")}
            for col, kind in ADDED.items():
                if col not in have:
                    con.execute(f"ALTER TABLE audit ADD COLUMN {col} {kind}")
        _private(self.path)

    @classmethod
    def of(cls, settings: Settings) -> AuditLog:
        """The trail at `settings.audit_path`, chained with `settings.audit_key` (or the key
        file)."""
        key = settings.audit_key
        return cls(settings.audit_path, key=key.get_secret_value().encode() if key else None)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    @property
    def key(self) -> bytes:
        """The chain's secret: the one given, else the key file's (made now, mode 600, when
        there is none)."""
        if self._key is None:
            if not self.key_path.is_file():
                # written whole to a private temporary file, then linked into place: a reader
                # (another thread or process) sees no key file or a complete one, never a part
                tmp = self.key_path.with_name(f".{self.key_path.name}.{secrets.token_hex(8)}")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    with os.fdopen(fd, "w") as fh:
                        fh.write(secrets.token_hex(32) + "\n")
                    with suppress(FileExistsError):  # another one made it first: theirs counts
                        os.link(tmp, self.key_path)
                finally:
                    tmp.unlink(missing_ok=True)
            text = self.key_path.read_text(encoding="utf-8").strip()
            if len(text) < 32:
                raise ConfigError(f"the audit key file {self.key_path} is empty or truncated")
            self._key = text.encode("utf-8")
        return self._key

    def append(self, rec: AuditRecord) -> AuditRecord:
        """Store `rec`, chained to the last row; returns it with its id and hashes."""
        key = self.key
        with self._lock, self._connect() as con:
            con.execute("BEGIN IMMEDIATE")  # no other writer between reading the last row and ours
            last = con.execute("SELECT row_hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
            seq = con.execute("SELECT seq FROM sqlite_sequence WHERE name = 'audit'").fetchone()
            rec = rec.model_copy(
                update={
                    "id": (seq[0] if seq else 0) + 1,
                    "prev_hash": last[0] if last and last[0] else GENESIS,
                    "row_hash": None,
                }
            )
            rec.row_hash = digest(key, rec)
            row = rec.model_dump()
            row["violations"] = json.dumps(row["violations"])
            cols = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            con.execute(f"INSERT INTO audit ({cols}) VALUES ({marks})", list(row.values()))
        # the head: a row at least this far on must exist unchanged (a lower bound when two
        # processes append at once, so a stale head is never a false alarm)
        atomic_write_text(self.head_path, json.dumps({"id": rec.id, "row_hash": rec.row_hash}))
        _private(self.head_path)
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
        return write_records(self.records(), dest)

    @property
    def location(self) -> str:
        return str(self.path)

    def verify(self) -> AuditCheck:
        """Check the chain row by row, then the end of the trail (the head, the ids issued)."""
        recs = self.records()
        chained = [r for r in recs if r.row_hash is not None]
        if chained and self._key is None and not self.key_path.is_file():
            return AuditCheck(
                rows=len(recs),
                chained=len(chained),
                problems=[f"the audit key is missing ({self.key_path}, or SAFELLM_AUDIT_KEY)"],
            )
        problems = chain_problems(recs, self.key if chained else b"")
        by_id = {r.id: r.row_hash for r in chained}
        if self.head_path.is_file():
            try:
                head = json.loads(self.head_path.read_text(encoding="utf-8"))
                hid, hhash = int(head["id"]), str(head["row_hash"])
            except (ValueError, KeyError, TypeError):
                problems.append(f"the head file {self.head_path} is unreadable")
            else:
                if by_id.get(hid) != hhash:
                    problems.append(CUT_OFF.format(id=hid))
        elif chained:
            problems.append(f"the head file {self.head_path} is missing")
        with self._connect() as con:
            seq = con.execute("SELECT seq FROM sqlite_sequence WHERE name = 'audit'").fetchone()
        top = max((r.id or 0 for r in recs), default=0)
        if seq and seq[0] > top:
            problems.append(f"rows {top + 1}..{seq[0]} were written and are gone")
        return AuditCheck(rows=len(recs), chained=len(chained), problems=problems)


def chain_problems(recs: list[AuditRecord], key: bytes) -> list[str]:
    """Every break of the hash chain of `recs` (in id order): a row that does not follow the
    one before it, or whose content does not match its hash."""
    problems: list[str] = []
    prev, prev_id = GENESIS, None
    for r in recs:
        if r.row_hash is None:
            if prev_id is not None:
                problems.append(f"row {r.id}: unchained, after chained rows (not written here)")
            continue
        if r.prev_hash != prev:
            after = f"row {prev_id}" if prev_id is not None else "the start of the chain"
            problems.append(
                f"row {r.id}: does not follow {after} (a row between was deleted, or rows "
                "were moved or inserted)"
            )
        if not hmac.compare_digest(digest(key, r), r.row_hash):
            problems.append(f"row {r.id}: its content does not match its hash (edited)")
        prev, prev_id = r.row_hash, r.id
    return problems


def write_records(recs: list[AuditRecord], dest: Path) -> int:
    """Write `recs` to `dest` (.csv, else JSON lines), whole or not at all; returns the count."""
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
