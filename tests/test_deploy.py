"""The deployment recipe (deploy/): what can be checked without a container engine — every
`safellm` and `ray start` command line in compose.yaml parses, and the database set-up it runs
(postgres-init.sh, `safellm audit setup-db --grant`) works on a real PostgreSQL server."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from safellm.cli.main import app as cli
from safellm.pgstore import PostgresAuditLog
from tests.test_pgstore import KEY, rec

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _services() -> dict[str, dict]:  # type: ignore[type-arg]
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]  # type: ignore[no-any-return]


def test_every_safellm_command_in_compose_parses() -> None:
    runs = {
        n: s["command"]
        for n, s in _services().items()
        if s.get("image") == "safellm:latest" and "entrypoint" not in s and "command" in s
    }
    assert {"db-setup", "init", "api", "batch"} <= set(runs)
    for name, command in runs.items():
        res = CliRunner().invoke(cli, [*command, "--help"])
        assert res.exit_code == 0, (name, res.output)
        assert "No such option" not in res.output and "Usage: " in res.output, name
        assert f"{command[0]} {command[1]}" in res.output or command[0] in res.output, name


def test_the_ray_commands_in_compose_parse() -> None:
    from ray.scripts.scripts import start

    services = _services()
    for name in ("ray-head", "ray-worker"):
        assert services[name]["entrypoint"] == ["ray"]
        command = services[name]["command"]
        assert command[0] == "start"
        ctx = start.make_context("start", list(command[1:]))  # parses and converts; runs nothing
        assert ctx.params["block"] is True


def test_the_database_set_up_of_compose_on_a_real_server(pg_server, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    database = pg_url.rsplit("/", 1)[1]
    psql = shutil.which("psql")
    assert psql, "psql is missing: apt-get install postgresql-client"
    env = os.environ | {
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": database,
        "API_DB_PASSWORD": "it's-a-secret",  # a quote in it must not break the SQL
        "PGHOST": "127.0.0.1",
        "PGPORT": str(pg_server.port),
    }
    subprocess.run(["sh", str(DEPLOY / "postgres-init.sh")], env=env, check=True, timeout=60)
    try:
        env = {"SAFELLM_AUDIT_URL": pg_url, "SAFELLM_AUDIT_KEY": KEY.decode()}
        res = CliRunner().invoke(cli, ["audit", "setup-db", "--grant", "safellm_api"], env=env)
        assert res.exit_code == 0 and "safellm_api may read and append" in res.output, res.output
        log = PostgresAuditLog(pg_url.replace("postgres@", "safellm_api@"), KEY)
        log.append(rec(1))
        assert log.verify().intact
        import psycopg

        with psycopg.connect(pg_url) as con:
            row = con.execute(
                "SELECT rolcanlogin, rolpassword IS NOT NULL, rolsuper FROM pg_authid "
                "WHERE rolname = 'safellm_api'"
            ).fetchone()
        assert row == (True, True, False)
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege),
            psycopg.connect(pg_url.replace("postgres@", "safellm_api@")) as con,
        ):
            con.execute("DELETE FROM safellm_audit")
    finally:
        pg_server.sql("DROP OWNED BY safellm_api; DROP ROLE safellm_api", database)


def test_setup_db_prints_its_sql_and_refuses_an_odd_role() -> None:
    res = CliRunner().invoke(cli, ["audit", "setup-db", "--grant", "api", "--print"])
    assert res.exit_code == 0 and "GRANT SELECT, INSERT ON safellm_audit TO api;" in res.output
    assert "UPDATE ON safellm_audit " not in res.output
    res = CliRunner().invoke(cli, ["audit", "setup-db", "--grant", "api; DROP TABLE x", "--print"])
    assert res.exit_code == 2 and "not a plain role name" in res.output
    res = CliRunner().invoke(cli, ["audit", "setup-db"], env={"SAFELLM_AUDIT_URL": ""})
    assert res.exit_code == 2 and "set SAFELLM_AUDIT_URL" in res.output
