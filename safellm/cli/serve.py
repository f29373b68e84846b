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

from safellm.cli.console import console, out, settings


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
        create_app(s),
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
    from safellm.audit import AuditLog

    s = settings()
    path = s.audit_path
    if not path.is_file():
        console.print(f"no audit trail yet at {path} (it starts with the first explanation served)")
        raise typer.Exit(code=0)
    log_ = AuditLog.of(s)
    if export is not None:
        n = log_.export(export)
        console.print(f"wrote {n} record(s) to {export}")
        return
    records = log_.records(limit)
    if as_json:
        for r in records:
            sys.stdout.write(r.model_dump_json() + "\n")
        return
    table = Table(title=f"audit trail ({path}), newest {len(records)}")
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
    from safellm.audit import AuditLog

    s = settings()
    if not s.audit_path.is_file():
        console.print(f"no audit trail yet at {s.audit_path}: nothing to verify")
        return
    check = AuditLog.of(s).verify()
    legacy = check.rows - check.chained
    before = f" ({legacy} written before chaining, not verifiable)" if legacy else ""
    if check.intact:
        out.print(f"audit trail {s.audit_path}: {check.rows} rows, chain intact{before}")
        return
    for problem in check.problems:
        console.print(f"[bold red]broken:[/] {problem}", highlight=False)
    console.print(
        f"audit trail {s.audit_path}: {check.rows} rows{before}, {len(check.problems)} "
        "break(s) of the chain",
        highlight=False,
    )
    raise typer.Exit(code=1)
