"""Use case: SafeLLM behind OpenAI's chat-completions format, so OpenAI-style clients and SDKs can
ask it without glue code.

The request's `model` names a SafeLLM service (`safellm-readmission`, `safellm-icu-mortality`,
`safellm-los`: which risk is explained); the patient is given in the request's `metadata`
(`{"hadm_id": "142345"}`, or `icustay_id` for the ICU task; values as strings, as OpenAI's
metadata has them) or in a system message line `patient: hadm_id=142345`. The last message is
the user's question; earlier user / assistant turns are the conversation so far (the chat
prompt). The answer is the guarded rationale with its citations; the whole Explanation (Facts,
prediction, guard report, versions) rides in the extension field `safellm` of the completion
(and of the last chunk of a stream). A stream's content is what `/v1/explain/stream` sends as
`token` events: sentences as they pass the guard; when the finished answer is not what was sent
(the guard withdrew it), a line saying so and the checked answer follow, as in the chat, since
an OpenAI client cannot take back text it has shown.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from safellm.errors import UnknownNameError, UserInputError
from safellm.rationale import Explanation
from safellm.services.explanation import Ask

SERVICES: dict[str, str] = {  # OpenAI model name -> task
    "safellm-readmission": "readmission",
    "safellm-icu-mortality": "icu_mortality",
    "safellm-los": "los",
}
MODEL_OF = {task: name for name, task in SERVICES.items()}
QUESTION_MAX = 500  # as `/v1/explain`
_PATIENT = re.compile(r"^\s*patient\s*:\s*(hadm_id|icustay_id)\s*=\s*(\d{1,12})\s*$", re.I | re.M)


class OpenAIMessage(BaseModel):
    """One message of a chat-completions request (fields SafeLLM reads; others are ignored)."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat-completions request, as SafeLLM reads it; sampling fields (temperature,
    max_tokens, …) are accepted and ignored: the prompt's settings hold."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(max_length=100, examples=["safellm-readmission"])
    messages: list[OpenAIMessage] = Field(min_length=1, max_length=50)
    stream: bool = False
    metadata: dict[str, str | int] | None = Field(
        default=None, examples=[{"hadm_id": "142345"}], description="The patient (see module)."
    )
    n: int | None = Field(default=None, ge=1, le=1, description="One answer per request.")


@dataclass(frozen=True)
class ChatAsk:
    """What a chat-completions request asks of SafeLLM."""

    task: str
    hadm_id: int | None
    icustay_id: int | None
    ask: Ask


def _text(m: OpenAIMessage, i: int) -> str:
    if m.content is None:
        return ""
    if isinstance(m.content, str):
        return m.content
    parts = []
    for part in m.content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise UserInputError(
                f"messages[{i}]: only text content is read (a part of type "
                f"{str(part.get('type'))[:30]!r} was sent)"
            )
        parts.append(part["text"])
    return "".join(parts)


def _unit(req: ChatCompletionRequest, task: str) -> tuple[int | None, int | None]:
    found: dict[str, str] = {}
    for key in ("hadm_id", "icustay_id"):
        value = (req.metadata or {}).get(key)
        if value is not None:
            found[key] = str(value).strip()
    if not found:
        for i, m in enumerate(req.messages):
            if m.role in ("system", "developer"):
                for key, value in _PATIENT.findall(_text(m, i)):
                    found.setdefault(key.lower(), value)
    if not found:
        raise UserInputError(
            'say which patient: metadata {"hadm_id": "<id>"} (or "icustay_id" for '
            'safellm-icu-mortality), or a system message "patient: hadm_id=<id>"'
        )
    ids: dict[str, int] = {}
    for key, value in found.items():
        if not value.isdigit() or len(value) > 12:
            raise UserInputError(f"{key} must be a whole number, not {value[:20]!r}")
        ids[key] = int(value)
    return ids.get("hadm_id"), ids.get("icustay_id")


def parse(req: ChatCompletionRequest) -> ChatAsk:
    """The task, patient, question and earlier turns of a request; `UserInputError` (400) naming
    what is wrong, `UnknownNameError` for a model that is not a SafeLLM service."""
    task = SERVICES.get(req.model)
    if task is None:
        raise UnknownNameError(
            f"model {req.model[:60]!r} is not a SafeLLM service (offered: {', '.join(SERVICES)})"
        )
    hadm_id, icustay_id = _unit(req, task)
    turns = [(m.role, _text(m, i)) for i, m in enumerate(req.messages)]
    talk = [(role, text) for role, text in turns if role in ("user", "assistant")]
    if not talk or talk[-1][0] != "user":
        raise UserInputError("the last message must be the user's question")
    question = talk[-1][1].strip()
    if len(question) > QUESTION_MAX:
        raise UserInputError(f"the question is longer than {QUESTION_MAX} characters")
    history: list[tuple[str, str]] = []
    pending: str | None = None
    for role, text in talk[:-1]:
        if role == "user":
            pending = text
        elif pending is not None:  # an assistant turn answers the user turn before it
            history.append((pending, text))
            pending = None
    ask = Ask(
        question or None,
        prompt="chat" if history else "explain-risk",
        history=history or None,
    )
    return ChatAsk(task, hadm_id, icustay_id, ask)


def extension(exp: Explanation) -> dict[str, Any]:
    """The `safellm` extension field: the Explanation of `/v1/explain` and the guard's outcome."""
    return {**exp.model_dump(mode="json"), "outcome": exp.guard.outcome}


def completion(exp: Explanation, model: str, completion_id: str) -> dict[str, Any]:
    """A `chat.completion` object with the guarded answer (and the `safellm` extension)."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": exp.rationale.text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "safellm": extension(exp),
    }


def chunk(
    completion_id: str,
    model: str,
    created: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One `chat.completion.chunk` of a stream."""
    out: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if extra is not None:
        out["safellm"] = extra
    return out


def models(tasks: list[str]) -> dict[str, Any]:
    """`GET /v1/models`: the SafeLLM services of the tasks this server can answer."""
    return {
        "object": "list",
        "data": [
            {"id": MODEL_OF[t], "object": "model", "created": 0, "owned_by": "safellm"}
            for t in tasks
            if t in MODEL_OF
        ],
    }
