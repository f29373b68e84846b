"""State that several API replicas share, in PostgreSQL (`SAFELLM_AUDIT_URL=postgresql://...`):

- **the audit trail** (`PostgresAuditLog`): the same records and HMAC hash chain as the SQLite
  trail (`safellm.audit`), append-only in the database itself: triggers refuse UPDATE, DELETE and
  TRUNCATE of `safellm_audit`, and `setup_sql(role)` gives an application role SELECT and INSERT
  only (the tables' owner, not the API, can then drop a trigger). Appends from every replica are
  serialised by a transaction-level advisory lock, so the chain is one chain. The head (the last
  row's id and hash, with an HMAC) is a row of `safellm_audit_head`, written in the same
  transaction: the next row follows the head, so rows cut off the end break the chain.
- **per-key rate limits** (`PostgresRateLimiter`): a sliding minute per key, counted by one
  database function call per request (`safellm_rate_take`), so a key's requests count the same
  whichever replica they reach.

The chain key must be the same on every replica: `SAFELLM_AUDIT_KEY` is required here (the SQLite
trail's key file beside the database has no equivalent a replica on another host could read).

A storage module, below the use cases: it knows records and keys, not explanations.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from safellm.audit import (
    CUT_OFF,
    GENESIS,
    AuditCheck,
    AuditRecord,
    chain_problems,
    digest,
    write_records,
)
from safellm.errors import ConfigError, StoreUnavailableError

if TYPE_CHECKING:
    import psycopg

    from safellm.config import Settings

T = TypeVar("T")

# advisory lock ids (one namespace for the project: "SafeLLM" in ASCII, then the use)
LOCK_NS = 0x5AFE
LOCK_SCHEMA, LOCK_AUDIT = 1, 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS safellm_audit (
  id BIGINT PRIMARY KEY,
  at TEXT NOT NULL,
  key_id TEXT NOT NULL,
  route TEXT NOT NULL,
  task TEXT NOT NULL,
  subject_id BIGINT,
  hadm_id BIGINT,
  icustay_id BIGINT,
  risk_model TEXT,
  prompt TEXT,
  policy TEXT,
  llm TEXT,
  guard_passed BOOLEAN NOT NULL,
  fallback_used BOOLEAN NOT NULL,
  attempts INTEGER NOT NULL,
  violations TEXT NOT NULL,
  latency_ms DOUBLE PRECISION NOT NULL,
  answer_sha256 TEXT NOT NULL,
  question_sha256 TEXT,
  request_id TEXT,
  outcome TEXT,
  prev_hash TEXT NOT NULL,
  row_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS safellm_audit_head (
  one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
  id BIGINT NOT NULL,
  row_hash TEXT NOT NULL,
  mac TEXT NOT NULL
);
CREATE OR REPLACE FUNCTION safellm_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit trail is append-only (% refused)', TG_OP;
END $$;
CREATE OR REPLACE TRIGGER safellm_audit_no_change BEFORE UPDATE OR DELETE ON safellm_audit
  FOR EACH ROW EXECUTE FUNCTION safellm_audit_refuse();
CREATE OR REPLACE TRIGGER safellm_audit_no_truncate BEFORE TRUNCATE ON safellm_audit
  FOR EACH STATEMENT EXECUTE FUNCTION safellm_audit_refuse();
CREATE TABLE IF NOT EXISTS safellm_rate_hits (
  key_id TEXT NOT NULL,
  at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS safellm_rate_hits_key_at ON safellm_rate_hits (key_id, at);
-- 0 when the request is allowed (and counted), else the seconds until one would be
CREATE OR REPLACE FUNCTION safellm_rate_take(who TEXT, per_minute INTEGER)
RETURNS DOUBLE PRECISION LANGUAGE plpgsql AS $$
DECLARE
  t TIMESTAMPTZ := clock_timestamp();
  n INTEGER;
  oldest TIMESTAMPTZ;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('safellm_rate:' || who));
  DELETE FROM safellm_rate_hits WHERE key_id = who AND at <= t - interval '60 seconds';
  SELECT count(*), min(at) INTO n, oldest FROM safellm_rate_hits WHERE key_id = who;
  IF n >= per_minute THEN
    RETURN greatest(0.001, 60 - extract(epoch FROM t - oldest));
  END IF;
  INSERT INTO safellm_rate_hits (key_id, at) VALUES (who, t);
  RETURN 0;
END $$;
"""


def setup_sql(role: str) -> str:
    """What an administrator runs once (as the tables' owner) to let `role` — the API's
    login — append and read the trail and count requests, and nothing more: no UPDATE or
    DELETE of the trail, no DDL (so no dropping its triggers)."""
    if not role.replace("_", "").isalnum():
        raise ConfigError(f"not a plain role name: {role!r} (letters, digits and _ only)")
    return SCHEMA + (
        f"GRANT SELECT, INSERT ON safellm_audit TO {role};\n"
        f"GRANT SELECT, INSERT, UPDATE ON safellm_audit_head TO {role};\n"
        f"GRANT SELECT, INSERT, DELETE ON safellm_rate_hits TO {role};\n"
        f"GRANT EXECUTE ON FUNCTION safellm_rate_take(TEXT, INTEGER) TO {role};\n"
    )


def _shown(url: str) -> str:
    """The URL without its password (for messages)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _Connection:
    """One connection, used by one thread at a time, opened again once when the server has
    dropped it (a restart, an idle timeout); a server that cannot be reached is a
    `StoreUnavailableError` naming the URL (without its password)."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url = url
        self.shown = _shown(url)
        self.timeout_s = timeout_s
        self._con: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def _open(self) -> psycopg.Connection[Any]:
        import psycopg

        try:
            return psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self.timeout_s))
            )
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError(
                f"the database {self.shown} (SAFELLM_AUDIT_URL) cannot be reached: "
                f"{_first_line(exc)}"
            ) from None

    def run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """`work(connection)`, inside a transaction; again on a fresh connection when the old
        one turns out to be closed."""
        import psycopg

        with self._lock:
            for attempt in (1, 2):
                if self._con is None or self._con.closed:
                    self._con = self._open()
                try:
                    with self._con.transaction():
                        return work(self._con)
                except psycopg.OperationalError as exc:
                    self.close_unlocked()
                    if attempt == 2:
                        raise StoreUnavailableError(
                            f"the database {self.shown} (SAFELLM_AUDIT_URL) failed: "
                            f"{_first_line(exc)}"
                        ) from None
                except psycopg.Error as exc:  # refused: privileges, a trigger, a bad schema
                    raise ConfigError(
                        f"the database {self.shown} (SAFELLM_AUDIT_URL) refused: {_first_line(exc)}"
                    ) from None
            raise AssertionError("unreachable")

    def close_unlocked(self) -> None:
        if self._con is not None:
            try:
                self._con.close()
            finally:
                self._con = None

    def close(self) -> None:
        with self._lock:
            self.close_unlocked()


def _lock_schema(con: psycopg.Connection[Any]) -> None:
    """Replicas starting at once make the schema one after the other (held until the
    transaction ends)."""
    con.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_NS, LOCK_SCHEMA))


def ensure_schema(con: psycopg.Connection[Any]) -> None:
    """Make the tables, triggers and function when they are missing (an application role
    without CREATE rights finds them made by `setup_sql`)."""
    _lock_schema(con)
    have = con.execute(
        "SELECT to_regclass('safellm_audit') IS NOT NULL AND "
        "to_regclass('safellm_audit_head') IS NOT NULL AND "
        "to_regclass('safellm_rate_hits') IS NOT NULL AND "
        "to_regprocedure('safellm_rate_take(text, integer)') IS NOT NULL"
    ).fetchone()
    if not (have and have[0]):
        con.execute(SCHEMA)


def _head_mac(key: bytes, hid: int, row_hash: str) -> str:
    return hmac.new(key, f"head:{hid}:{row_hash}".encode(), hashlib.sha256).hexdigest()


COLUMNS = list(AuditRecord.model_fields)
ALL_ROWS = f"SELECT {', '.join(COLUMNS)} FROM safellm_audit ORDER BY id"


class PostgresAuditLog:
    """The audit trail in PostgreSQL, shared by every replica given the same URL and key."""

    def __init__(self, url: str, key: bytes) -> None:
        if len(key) < 32:
            raise ConfigError(
                "a PostgreSQL audit trail needs SAFELLM_AUDIT_KEY (at least 32 characters), the "
                "same on every replica"
            )
        self._db = _Connection(url)
        self._key = key
        self._db.run(ensure_schema)

    @classmethod
    def of(cls, settings: Settings) -> PostgresAuditLog:
        if settings.audit_url is None:
            raise ConfigError("SAFELLM_AUDIT_URL is not set")
        if settings.audit_key is None:
            raise ConfigError(
                "SAFELLM_AUDIT_URL is set: the trail is shared, so SAFELLM_AUDIT_KEY must be "
                "set too (the same secret on every replica, at least 32 characters)"
            )
        return cls(
            settings.audit_url.get_secret_value(), settings.audit_key.get_secret_value().encode()
        )

    @property
    def location(self) -> str:
        return self._db.shown

    def close(self) -> None:
        self._db.close()

    def append(self, rec: AuditRecord) -> AuditRecord:
        """Store `rec`, chained to the head of the trail; returns it with its id and hashes."""

        def write(con: psycopg.Connection[Any]) -> AuditRecord:
            con.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_NS, LOCK_AUDIT))
            head = con.execute("SELECT id, row_hash FROM safellm_audit_head").fetchone()
            if head is None:  # a fresh trail (or one whose head was removed: verify says so)
                head = con.execute(
                    "SELECT id, row_hash FROM safellm_audit ORDER BY id DESC LIMIT 1"
                ).fetchone()
            last_id, last_hash = head if head else (0, GENESIS)
            made = rec.model_copy(
                update={"id": int(last_id) + 1, "prev_hash": last_hash, "row_hash": None}
            )
            made.row_hash = digest(self._key, made)
            row = made.model_dump()
            row["violations"] = json.dumps(row["violations"])
            cols = ", ".join(row)
            marks = ", ".join("%s" for _ in row)
            con.execute(f"INSERT INTO safellm_audit ({cols}) VALUES ({marks})", list(row.values()))
            con.execute(
                "INSERT INTO safellm_audit_head (one, id, row_hash, mac) VALUES (TRUE, %s, %s, %s) "
                "ON CONFLICT (one) DO UPDATE SET id = EXCLUDED.id, row_hash = EXCLUDED.row_hash, "
                "mac = EXCLUDED.mac",
                (made.id, made.row_hash, _head_mac(self._key, int(made.id or 0), made.row_hash)),
            )
            return made

        return self._db.run(write)

    def records(self, limit: int | None = None) -> list[AuditRecord]:
        """Newest last; the last `limit` records when given."""
        cols = ", ".join(COLUMNS)

        def read(con: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            if limit is None:
                return con.execute(ALL_ROWS).fetchall()
            return con.execute(
                f"SELECT {cols} FROM (SELECT {cols} FROM safellm_audit ORDER BY id DESC "
                "LIMIT %s) AS t ORDER BY id",
                (int(limit),),
            ).fetchall()

        return [_record(row) for row in self._db.run(read)]

    def export(self, dest: Path) -> int:
        """Write every record to `dest` (.csv or .jsonl); returns the count."""
        return write_records(self.records(), dest)

    def verify(self) -> AuditCheck:
        """Check the chain row by row, then its end against the head row (both read in one
        snapshot: appends by other replicas meanwhile are not mistaken for breaks)."""

        def read(con: psycopg.Connection[Any]) -> tuple[list[tuple[Any, ...]], Any]:
            con.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            rows = con.execute(ALL_ROWS).fetchall()
            head = con.execute("SELECT id, row_hash, mac FROM safellm_audit_head").fetchone()
            return rows, head

        rows, head = self._db.run(read)
        recs = [_record(row) for row in rows]
        problems = chain_problems(recs, self._key)
        if head is None:
            if recs:
                problems.append("the head row (safellm_audit_head) is missing")
        else:
            hid, hhash, mac = int(head[0]), str(head[1]), str(head[2])
            if not hmac.compare_digest(_head_mac(self._key, hid, hhash), mac):
                problems.append("the head row does not match its MAC (edited)")
            elif {r.id: r.row_hash for r in recs}.get(hid) != hhash:
                problems.append(CUT_OFF.format(id=hid))
            elif recs and (recs[-1].id or 0) > hid:
                problems.append(f"rows after row {hid}, the last one written, were added")
        return AuditCheck(rows=len(recs), chained=len(recs), problems=problems)


def _record(row: tuple[Any, ...]) -> AuditRecord:
    d = dict(zip(COLUMNS, row, strict=True))
    d["violations"] = json.loads(d["violations"])
    return AuditRecord.model_validate(d)


class PostgresRateLimiter:
    """At most `per_minute` requests per key in any sliding 60-second window, counted in the
    database: every replica with the same URL shares the count. Each check is one round trip:
    call it off the event loop."""

    def __init__(self, url: str, per_minute: int) -> None:
        self.per_minute = per_minute
        self._db = _Connection(url)
        self._ready = False  # the schema is checked on the first request (not at import)

    def allow(self, who: str) -> tuple[bool, float]:
        """(allowed, seconds until the next request would be allowed)."""

        def take(con: psycopg.Connection[Any]) -> Any:
            if not self._ready:
                ensure_schema(con)
            return con.execute(
                "SELECT safellm_rate_take(%s, %s)", (who, self.per_minute)
            ).fetchone()

        row = self._db.run(take)
        self._ready = True
        wait = float(row[0]) if row else 0.0
        return wait <= 0.0, wait

    def close(self) -> None:
        self._db.close()


def run_sql(url: str, sql: str) -> str:
    """Run `sql` (the schema, grants) on the database at `url`, under the schema lock;
    returns where (the URL without its password)."""
    db = _Connection(url)

    def setup(con: psycopg.Connection[Any]) -> None:
        _lock_schema(con)
        con.execute(sql)

    try:
        db.run(setup)
    finally:
        db.close()
    return db.shown
