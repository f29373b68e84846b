"""The audit trail and the rate limits in PostgreSQL (a real server, tests/pgserver.py): one
chain from several replicas, append-only in the database, tampering found, an application role
that may only read and append, limits shared by replicas, a lost server."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from safellm.audit import AuditRecord, now
from safellm.cli.main import app as cli
from safellm.config import Settings
from safellm.errors import ConfigError, StoreUnavailableError
from safellm.pgstore import PostgresAuditLog, PostgresRateLimiter, setup_sql
from safellm.stores import open_trail

KEY = b"k" * 40


def rec(n: int, route: str = "/v1/explain") -> AuditRecord:
    return AuditRecord(
        at=now(),
        key_id=f"key{n % 3}",
        route=route,
        task="readmission",
        subject_id=n,
        hadm_id=100_000 + n,
        icustay_id=None,
        risk_model="m",
        prompt="explain-risk:3",
        policy="clinical:1",
        llm="fake",
        guard_passed=n % 2 == 0,
        fallback_used=n % 5 == 0,
        attempts=1,
        violations=["numbers"] if n % 2 else [],
        latency_ms=12.5 + n,
        answer_sha256="a" * 64,
        question_sha256=None,
        request_id=f"req-{n}",
    )


def test_replicas_appending_at_once_make_one_intact_chain(pg_url: str) -> None:
    replicas = [PostgresAuditLog(pg_url, KEY) for _ in range(2)]  # as two API processes
    errors: list[BaseException] = []

    def work(log: PostgresAuditLog, start: int) -> None:
        try:
            for n in range(start, start + 10):
                log.append(rec(n))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(replicas[i % 2], 100 * i)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    recs = PostgresAuditLog(pg_url, KEY).records()
    assert [r.id for r in recs] == list(range(1, 61))
    assert {r.request_id for r in recs} == {
        f"req-{100 * i + n}" for i in range(6) for n in range(10)
    }
    for before, after in itertools.pairwise(recs):
        assert after.prev_hash == before.row_hash
    check = replicas[0].verify()
    assert check.intact and check.rows == 60, check.problems
    assert [r.id for r in replicas[1].records(limit=3)] == [58, 59, 60]
    one = next(r for r in recs if r.request_id == "req-1")  # the values come back as written
    assert one.violations == ["numbers"] and one.latency_ms == pytest.approx(13.5)
    assert one.guard_passed is False and one.hadm_id == 100_001


def test_the_database_refuses_changes_to_the_trail(pg_url: str) -> None:
    log = PostgresAuditLog(pg_url, KEY)
    for n in range(3):
        log.append(rec(n))
    with psycopg.connect(pg_url, autocommit=True) as con:
        for statement in (
            "UPDATE safellm_audit SET latency_ms = 0 WHERE id = 2",
            "DELETE FROM safellm_audit WHERE id = 3",
            "TRUNCATE safellm_audit",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                con.execute(statement)  # type: ignore[arg-type]
        assert con.execute("SELECT count(*) FROM safellm_audit").fetchone() == (3,)
    assert log.verify().intact


def _bypass(pg_url: str, statement: str) -> None:
    """What only the tables' owner can do: switch the triggers off, change, switch them on."""
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute("ALTER TABLE safellm_audit DISABLE TRIGGER USER")
        con.execute(statement)  # type: ignore[arg-type]
        con.execute("ALTER TABLE safellm_audit ENABLE TRIGGER USER")


@pytest.mark.parametrize(
    ("statement", "found"),
    [
        ("DELETE FROM safellm_audit WHERE id = 3", "row 4: does not follow row 2"),
        (
            "UPDATE safellm_audit SET guard_passed = NOT guard_passed WHERE id = 2",
            "row 2: its content",
        ),
        ("DELETE FROM safellm_audit WHERE id >= 4", "row 5, the last one written, is gone"),
        ("UPDATE safellm_audit SET id = id + 10 WHERE id = 5", "row 5, the last one written"),
    ],
)
def test_changes_made_around_the_triggers_break_the_chain(
    pg_url: str, statement: str, found: str
) -> None:
    log = PostgresAuditLog(pg_url, KEY)
    for n in range(5):
        log.append(rec(n))
    _bypass(pg_url, statement)
    check = log.verify()
    assert not check.intact and any(found in p for p in check.problems), check.problems


def test_rows_cut_off_the_end_stay_found_after_new_appends(pg_url: str) -> None:
    log = PostgresAuditLog(pg_url, KEY)
    for n in range(5):
        log.append(rec(n))
    _bypass(pg_url, "DELETE FROM safellm_audit WHERE id >= 4")
    log.append(rec(9))  # follows the head (row 5), not the last row left
    check = log.verify()
    assert any("row 6: does not follow row 3" in p for p in check.problems), check.problems


def test_a_forged_head_or_a_wrong_key_is_found(pg_url: str) -> None:
    log = PostgresAuditLog(pg_url, KEY)
    for n in range(3):
        log.append(rec(n))
    assert not PostgresAuditLog(pg_url, b"x" * 40).verify().intact
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute(
            "UPDATE safellm_audit_head SET id = 2, row_hash = (SELECT row_hash FROM safellm_audit WHERE id = 2)"
        )
    assert any("head row does not match" in p for p in log.verify().problems)


def test_an_application_role_may_read_and_append_but_not_change(pg_server, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    role = "api_" + pg_url.rsplit("/", 1)[1]
    pg_server.sql(f"CREATE ROLE {role} LOGIN")
    with psycopg.connect(pg_url, autocommit=True) as con:  # as the owner, once
        con.execute(setup_sql(role))  # type: ignore[arg-type]
    api_url = pg_url.replace("postgres@", f"{role}@")
    log = PostgresAuditLog(api_url, KEY)
    for n in range(3):
        log.append(rec(n))
    assert log.verify().intact and len(log.records()) == 3
    limiter = PostgresRateLimiter(api_url, 2)
    assert [limiter.allow("k")[0] for _ in range(3)] == [True, True, False]
    with psycopg.connect(api_url, autocommit=True) as con:
        for statement in (
            "UPDATE safellm_audit SET latency_ms = 0",
            "DELETE FROM safellm_audit",
            "ALTER TABLE safellm_audit DISABLE TRIGGER USER",
            "DROP TRIGGER safellm_audit_no_change ON safellm_audit",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                con.execute(statement)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="refused"):  # tables missing, no right to make them
        PostgresAuditLog(pg_server.new_database().replace("postgres@", f"{role}@"), KEY)


def test_rate_limits_are_counted_across_replicas(pg_url: str) -> None:
    a, b = PostgresRateLimiter(pg_url, 3), PostgresRateLimiter(pg_url, 3)
    assert [a.allow("key1")[0], b.allow("key1")[0], a.allow("key1")[0]] == [True] * 3
    ok, wait = b.allow("key1")
    assert not ok and 55 < wait <= 60
    assert a.allow("key2") == (True, 0.0)  # another key has its own minute
    with psycopg.connect(pg_url, autocommit=True) as con:  # a minute passes
        con.execute("UPDATE safellm_rate_hits SET at = at - interval '61 seconds'")
    assert b.allow("key1")[0]


def test_a_server_restart_is_survived_and_a_lost_server_is_a_clear_error(
    pg_server, pg_url: str
) -> None:  # type: ignore[no-untyped-def]
    log = PostgresAuditLog(pg_url, KEY)
    limiter = PostgresRateLimiter(pg_url, 100)
    log.append(rec(1))
    assert limiter.allow("k")[0]
    pg_server.stop()
    try:
        with pytest.raises(StoreUnavailableError) as lost:
            log.append(rec(2))
        message = str(lost.value)
        assert f"127.0.0.1:{pg_server.port}" in message and "SAFELLM_AUDIT_URL" in message
        with pytest.raises(StoreUnavailableError):
            limiter.allow("k")
    finally:
        pg_server.start()
    log.append(rec(3))  # a fresh connection after the restart
    assert limiter.allow("k")[0]
    assert [r.request_id for r in log.records()] == ["req-1", "req-3"] and log.verify().intact


def test_a_password_is_never_shown(pg_server) -> None:  # type: ignore[no-untyped-def]
    url = f"postgresql://someone:s3cret-pw@127.0.0.1:{pg_server.port}/nosuchdb"
    with pytest.raises(StoreUnavailableError) as exc:
        PostgresAuditLog(url, KEY)
    assert "s3cret-pw" not in str(exc.value) and "someone@127.0.0.1" in str(exc.value)


def test_the_settings_choose_the_trail_and_a_shared_trail_needs_its_key(
    pg_url: str, tmp_path: Path
) -> None:
    assert isinstance(
        open_trail(Settings(home=tmp_path, audit_url=pg_url, audit_key="k" * 40)), PostgresAuditLog
    )
    with pytest.raises(ConfigError, match="SAFELLM_AUDIT_KEY"):
        open_trail(Settings(home=tmp_path, audit_url=pg_url))


def test_the_audit_commands_on_a_postgres_trail(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SAFELLM_AUDIT_URL", pg_url)
    monkeypatch.setenv("SAFELLM_AUDIT_KEY", KEY.decode())
    runner = CliRunner()
    res = runner.invoke(cli, ["audit", "setup-db"])
    assert res.exit_code == 0 and "audit tables ready" in res.output, res.output
    log = PostgresAuditLog(pg_url, KEY)
    for n in range(4):
        log.append(rec(n))
    res = runner.invoke(cli, ["audit", "verify"])
    assert res.exit_code == 0 and "4 rows, chain intact" in res.output, res.output
    res = runner.invoke(cli, ["audit", "--json", "--limit", "2"])
    assert res.exit_code == 0 and res.output.count('"request_id"') == 2
    res = runner.invoke(cli, ["audit", "--export", str(tmp_path / "a.csv")])
    assert res.exit_code == 0 and len((tmp_path / "a.csv").read_text().splitlines()) == 5
    _bypass(pg_url, "DELETE FROM safellm_audit WHERE id = 2")
    res = runner.invoke(cli, ["audit", "verify"])
    assert res.exit_code == 1 and "row 3: does not follow row 1" in res.output
    monkeypatch.delenv("SAFELLM_AUDIT_KEY")
    res = runner.invoke(cli, ["audit", "verify"])
    assert res.exit_code == 2 and "SAFELLM_AUDIT_KEY must be set" in " ".join(res.output.split())


def test_serve_says_so_when_the_database_cannot_be_reached() -> None:
    env = {"SAFELLM_AUDIT_URL": "postgresql://u:pw@127.0.0.1:1/x", "SAFELLM_AUDIT_KEY": "k" * 40}
    res = CliRunner().invoke(cli, ["serve", "--port", "1"], env=env)
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and "cannot be reached" in text and ":pw@" not in text
