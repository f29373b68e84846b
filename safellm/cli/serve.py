"""`safellm serve` (the web front end: REST API and chat) and `safellm audit`."""

from __future__ import annotations

import logging
import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr
from rich.table import Table

from safellm.cli.console import console, fail, out, settings
from safellm.errors import SafeLLMError, UserInputError


def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
) -> None:
    """Serve the REST API and the clinician chat with uvicorn."""
    import uvicorn

    # the web front end sits beside the CLI on the top layer (safellm/README.md)
    from app.api import create_app
    from app.security import header_timeout_protocol

    s = settings()
    if not s.api_keys:
        key = "sk-" + secrets.token_urlsafe(24)
        s = s.model_copy(update={"api_keys": [SecretStr(key)]})
        console.print(
            f"[yellow]no SAFELLM_API_KEYS set: this run accepts the key[/] {key} "
            f"(as `Authorization: Bearer {key}`)"
        )
    from safellm.stores import open_trail

    try:
        trail = open_trail(s)  # a wrong or unreachable audit store: said now, not as a traceback
    except SafeLLMError as exc:
        raise fail(exc) from exc
    console.print(f"SafeLLM API on http://{host}:{port} (OpenAPI at /docs, chat at /chat)")
    # the app's own access log (JSON lines on stderr) instead of uvicorn's, which carries query
    # strings; proxies' X-Forwarded-* headers trusted only from SAFELLM_API_TRUSTED_PROXIES
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access = logging.getLogger("safellm.access")
    access.setLevel(logging.INFO)
    access.addHandler(handler)
    access.propagate = False
    uvicorn.run(
        create_app(s, audit=trail),
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        proxy_headers=bool(s.api_trusted_proxies),
        forwarded_allow_ips=",".join(s.api_trusted_proxies) or "",
        timeout_graceful_shutdown=s.api_shutdown_s,
        http=header_timeout_protocol(s.api_header_timeout_s),
    )


audit_app = typer.Typer(
    help="The audit trail of explanations served: print, export, verify.",
    invoke_without_command=True,
)


@audit_app.callback()
def audit(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest N records.")] = 20,
    export: Annotated[
        Path | None, typer.Option("--export", help="Write every record to FILE.csv or FILE.jsonl.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Print or export the audit trail of explanations served (`verify`: check its chain)."""
    if ctx.invoked_subcommand is not None:
        return
    from safellm.stores import existing_trail

    s = settings()
    try:
        log_ = existing_trail(s)
        if log_ is None:
            console.print(
                f"no audit trail yet at {s.audit_path} (it starts with the first explanation "
                "served)"
            )
            raise typer.Exit(code=0)
        if export is not None:
            n = log_.export(export)
            console.print(f"wrote {n} record(s) to {export}")
            return
        records = log_.records(limit)
    except SafeLLMError as exc:
        raise fail(exc) from exc
    if as_json:
        for r in records:
            sys.stdout.write(r.model_dump_json() + "\n")
        return
    table = Table(title=f"audit trail ({log_.location}), newest {len(records)}")
    for col in ("id", "at", "key", "route", "task", "hadm", "guard", "attempts", "ms", "answer"):
        table.add_column(col)
    for r in records:
        guard = "fallback" if r.fallback_used else ("passed" if r.guard_passed else "failed")
        table.add_row(
            str(r.id),
            r.at,
            r.key_id,
            r.route,
            r.task,
            str(r.hadm_id),
            guard,
            str(r.attempts),
            f"{r.latency_ms:.0f}",
            r.answer_sha256[:12],
        )
    out.print(table)


@audit_app.command("verify")
def verify() -> None:
    """Check the audit trail's hash chain: exit 1 when a row was deleted, edited, inserted or
    moved, or rows were cut off the end."""
    from safellm.stores import existing_trail

    s = settings()
    try:
        trail = existing_trail(s)
        if trail is None:
            console.print(f"no audit trail yet at {s.audit_path}: nothing to verify")
            return
        check = trail.verify()
    except SafeLLMError as exc:
        raise fail(exc) from exc
    legacy = check.rows - check.chained
    before = f" ({legacy} written before chaining, not verifiable)" if legacy else ""
    if check.intact:
        out.print(f"audit trail {trail.location}: {check.rows} rows, chain intact{before}")
        return
    for problem in check.problems:
        console.print(f"[bold red]broken:[/] {problem}", highlight=False)
    console.print(
        f"audit trail {trail.location}: {check.rows} rows{before}, {len(check.problems)} "
        "break(s) of the chain",
        highlight=False,
    )
    raise typer.Exit(code=1)


@audit_app.command("setup-db")
def setup_db(
    grant: Annotated[
        str | None,
        typer.Option(
            "--grant",
            help="The API's database role: may read and append the trail and count requests, "
            "nothing more (no UPDATE, DELETE or DDL).",
        ),
    ] = None,
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the SQL instead of running it.")
    ] = False,
) -> None:
    """Make the PostgreSQL tables of SAFELLM_AUDIT_URL (run it as their owner, once) and
    grant the API's role what it needs."""
    from safellm.pgstore import SCHEMA, run_sql, setup_sql

    s = settings()
    try:
        sql = setup_sql(grant) if grant else SCHEMA
        if print_only:
            out.print(sql, markup=False, highlight=False)
            return
        if s.audit_url is None:
            raise UserInputError("set SAFELLM_AUDIT_URL to the postgresql:// URL of the database")
        where = run_sql(s.audit_url.get_secret_value(), sql)
    except SafeLLMError as exc:
        raise fail(exc) from exc
    granted = f"; {grant} may read and append" if grant else ""
    out.print(f"audit tables ready in {where}{granted}")
