"""The official `openai` Python client against the live server on loopback: `/v1/models`,
`/v1/chat/completions` plain and streamed, the guarded answer with its Explanation in the
`safellm` extension field, the same key, errors and audit trail as `/v1/explain`."""

from __future__ import annotations

import re
from pathlib import Path

import openai
import pandas as pd
import pytest

from safellm.audit import AuditLog
from safellm.rationale import WITHDRAWN

QUESTION = "Why is this patient at high risk?"


def _client(live_server, key: str | None = None) -> openai.OpenAI:  # type: ignore[no-untyped-def]
    return openai.OpenAI(
        base_url=f"{live_server.url}/v1",
        api_key=key if key is not None else live_server.key,
        max_retries=0,
        timeout=120,
    )


def _hadm(home: Path) -> int:
    return int(pd.read_parquet(home / "data" / "readmission.parquet")["hadm_id"].iloc[2])


def _routes(home: Path) -> list[tuple[str, int | None]]:
    return [(r.route, r.hadm_id) for r in AuditLog(home / "audit.sqlite").records()]


def test_models_are_the_services(live_server) -> None:  # type: ignore[no-untyped-def]
    ids = {m.id for m in _client(live_server).models.list()}
    assert {"safellm-readmission", "safellm-icu-mortality"} <= ids
    assert ids <= {"safellm-readmission", "safellm-icu-mortality", "safellm-los"}


def test_plain_completion_is_the_guarded_rationale(live_server) -> None:  # type: ignore[no-untyped-def]
    hadm = _hadm(live_server.home)
    before = _routes(live_server.home)
    r = _client(live_server).chat.completions.create(
        model="safellm-readmission",
        messages=[{"role": "user", "content": QUESTION}],
        metadata={"hadm_id": str(hadm)},
    )
    assert r.object == "chat.completion" and r.model == "safellm-readmission"
    (choice,) = r.choices
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    ext = r.model_extra["safellm"]
    assert (ext["task"], ext["hadm_id"], ext["question"]) == ("readmission", hadm, QUESTION)
    assert choice.message.content == ext["rationale"]["text"]
    assert ext["outcome"] in {"passed", "re-asked", "repaired", "fallback"}
    assert set(ext["guard"]) >= {"passed", "attempts", "violations", "repairs"}
    # every cited fact is one of the Explanation's Facts
    cited = set(re.findall(r"\bF\d+\b", choice.message.content or ""))
    assert cited, choice.message.content
    assert cited <= {c["id"] for c in ext["facts"]["contributions"]}
    assert _routes(live_server.home) == [*before, ("/v1/chat/completions", hadm)]


def test_the_patient_in_a_system_message(live_server) -> None:  # type: ignore[no-untyped-def]
    hadm = _hadm(live_server.home)
    r = _client(live_server).chat.completions.create(
        model="safellm-readmission",
        messages=[
            {"role": "system", "content": f"You help a clinician.\npatient: hadm_id={hadm}"},
            {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
        ],
    )
    assert r.model_extra["safellm"]["hadm_id"] == hadm


def test_streamed_completion(live_server) -> None:  # type: ignore[no-untyped-def]
    hadm = _hadm(live_server.home)
    before = len(_routes(live_server.home))
    chunks = list(
        _client(live_server).chat.completions.create(
            model="safellm-readmission",
            messages=[{"role": "user", "content": QUESTION}],
            metadata={"hadm_id": str(hadm)},
            stream=True,
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    ext = last.model_extra["safellm"]
    # sentences as they passed the guard; a withdrawn answer is followed by the checked one
    assert text.strip() == ext["rationale"]["text"].strip() or (
        WITHDRAWN in text and text.endswith(ext["rationale"]["text"])
    )
    assert len(chunks) > 3
    assert ext["hadm_id"] == hadm
    rows = _routes(live_server.home)
    assert len(rows) == before + 1 and rows[-1] == ("/v1/chat/completions", hadm)


def test_a_follow_up_uses_the_conversation(live_server) -> None:  # type: ignore[no-untyped-def]
    hadm = _hadm(live_server.home)
    c = _client(live_server)
    first = c.chat.completions.create(
        model="safellm-readmission",
        messages=[{"role": "user", "content": QUESTION}],
        metadata={"hadm_id": str(hadm)},
    )
    r = c.chat.completions.create(
        model="safellm-readmission",
        messages=[
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": first.choices[0].message.content},
            {"role": "user", "content": "What about the labs?"},
        ],
        metadata={"hadm_id": str(hadm)},
    )
    ext = r.model_extra["safellm"]
    assert ext["question"] == "What about the labs?"
    assert ext["versions"]["prompt"].startswith("chat")


def test_errors_as_elsewhere(live_server) -> None:  # type: ignore[no-untyped-def]
    hadm = str(_hadm(live_server.home))
    msgs = [{"role": "user", "content": QUESTION}]
    with pytest.raises(openai.AuthenticationError):
        _client(live_server, key="sk-wrong").chat.completions.create(
            model="safellm-readmission", messages=msgs, metadata={"hadm_id": hadm}
        )
    with pytest.raises(openai.AuthenticationError):
        _client(live_server, key="sk-wrong").models.list()
    c = _client(live_server)
    with pytest.raises(openai.BadRequestError, match="not a SafeLLM service"):
        c.chat.completions.create(model="gpt-4o", messages=msgs, metadata={"hadm_id": hadm})
    with pytest.raises(openai.BadRequestError, match="which patient"):
        c.chat.completions.create(model="safellm-readmission", messages=msgs)
    with pytest.raises(openai.BadRequestError, match="whole number"):
        c.chat.completions.create(
            model="safellm-readmission", messages=msgs, metadata={"hadm_id": "14x"}
        )
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(
            model="safellm-readmission", messages=msgs, metadata={"hadm_id": "1"}
        )
    with pytest.raises(openai.BadRequestError, match="last message"):
        c.chat.completions.create(
            model="safellm-readmission",
            messages=[*msgs, {"role": "assistant", "content": "x"}],
            metadata={"hadm_id": hadm},
        )
    with pytest.raises(openai.BadRequestError, match="only text"):
        c.chat.completions.create(
            model="safellm-readmission",
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
            ],
            metadata={"hadm_id": hadm},
        )
