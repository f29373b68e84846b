"""Every front end's explanation lands in the audit trail, once: the CLI, the REST API (whole and
streamed) and the chat (through Gradio's own client library, against the live server)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from app.security import key_id
from safellm.audit import AuditLog, AuditRecord
from safellm.cli import app
from tests.samples import home_over

QUESTION = "Why is this patient at high risk?"


def _rows(home: Path) -> list[AuditRecord]:
    path = home / "audit.sqlite"
    return AuditLog(path).records() if path.is_file() else []


def _hadm(home: Path) -> int:
    """Not the first unit, which other tests of the session explain too."""
    return int(pd.read_parquet(home / "data" / "readmission.parquet")["hadm_id"].iloc[1])


def _text(content: object) -> str:
    """A chat message's text: Gradio gives a string or a list of parts ({"text": ...})."""
    if isinstance(content, str):
        return content
    assert isinstance(content, list), content
    return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)


def test_a_cli_explanation_adds_one_row(
    demo_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = home_over(demo_home, tmp_path / "home")
    monkeypatch.setenv("SAFELLM_HOME", str(home))
    monkeypatch.setenv("SAFELLM_GUARD_JUDGE", "false")
    hadm = _hadm(home)
    res = CliRunner().invoke(
        app, ["explain", "--task", "readmission", "--hadm-id", str(hadm), "--model", "fake"]
    )
    assert res.exit_code == 0, res.output
    (row,) = _rows(home)
    assert (row.route, row.key_id, row.hadm_id, row.llm) == ("cli:explain", "cli", hadm, "fake")
    res = CliRunner().invoke(
        app, ["explain", "--task", "readmission", "--hadm-id", "1", "--model", "fake"]
    )
    assert res.exit_code == 2 and len(_rows(home)) == 1  # nothing explained, nothing recorded


def test_api_explanations_add_one_row_each(live_server) -> None:  # type: ignore[no-untyped-def]
    auth = {"Authorization": f"Bearer {live_server.key}"}
    body = {"task": "readmission", "hadm_id": _hadm(live_server.home), "question": QUESTION}
    before = len(_rows(live_server.home))
    r = httpx.post(f"{live_server.url}/v1/explain", json=body, headers=auth, timeout=60)
    assert r.status_code == 200, r.text
    rows = _rows(live_server.home)
    assert len(rows) == before + 1 and rows[-1].route == "/v1/explain"
    with httpx.stream(
        "POST", f"{live_server.url}/v1/explain/stream", json=body, headers=auth, timeout=60
    ) as s:
        events = "".join(s.iter_text())
        streamed_id = s.headers["X-Request-ID"]
    assert "event: explanation" in events
    rows = _rows(live_server.home)
    assert len(rows) == before + 2 and rows[-1].route == "/v1/explain/stream"
    assert (rows[-2].request_id, rows[-1].request_id) == (r.headers["X-Request-ID"], streamed_id)
    assert AuditLog(live_server.home / "audit.sqlite").verify().intact
    explained = json.loads(events.rsplit("data: ", 1)[1])
    assert rows[-1].hadm_id == explained["hadm_id"] == body["hadm_id"]


def test_a_chat_answer_adds_one_row(live_server) -> None:  # type: ignore[no-untyped-def]
    from gradio_client import Client

    client = Client(f"{live_server.url}/chat/", auth=("clinician", live_server.key), verbose=False)
    before = len(_rows(live_server.home))
    hadm = str(_hadm(live_server.home))
    job = client.submit("readmission", hadm, QUESTION, [], api_name="/ask")
    history, badge, _evidence = job.result(timeout=120)
    assert "[F1]" in _text(history[-1]["content"]) and "policy clinical@v1" in badge
    rows = _rows(live_server.home)
    assert len(rows) == before + 1
    assert (rows[-1].route, rows[-1].key_id, str(rows[-1].hadm_id)) == (
        "/chat",
        key_id(live_server.key),
        hadm,
    )
    assert (rows[-1].request_id or "").startswith("chat-")
