"""One chat-model interface, with one method; the adapters implement it and
`safellm.llm.registry.get_model` names them.

    reply = model.chat(ChatRequest(messages=[...]), on_token=print)   # streams when on_token is given

This module is the LLM layer's leaf: it imports no adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from safellm.errors import UnknownNameError


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    messages: list[ChatMessage]
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=320, ge=1)
    stop: list[str] = Field(default_factory=list)
    seed: int | None = 0
    # a JSON schema the answer must follow (grammar-constrained on the local model)
    json_schema: dict[str, Any] | None = None
    # a GBNF grammar the answer must follow (the local model decodes under it; other providers
    # get the prompt's instructions only, and the guard checks the answer)
    grammar: str | None = None
    # the same answer as a JSON schema (`safellm.llm.grammar.answer_schema`): API models whose
    # provider supports structured output answer in it, and the adapter joins it back into text
    answer_schema: dict[str, Any] | None = None


class ChatResponse(BaseModel):
    text: str
    model: str = Field(description="The model that answered (registry name or LiteLLM string).")
    finish_reason: str | None = None
    completion_tokens: int | None = None
    first_token_s: float | None = Field(default=None, description="Seconds to the first token.")
    total_s: float | None = None


TokenSink = Callable[[str], None]


class ChatModel(Protocol):
    """A chat model. `chat` returns the whole answer; given `on_token`, it also streams it."""

    name: str

    def chat(self, request: ChatRequest, on_token: TokenSink | None = None) -> ChatResponse: ...


@runtime_checkable
class Prefetching(Protocol):
    """A chat model that can do the work of a request before it is asked (a local model
    evaluating the prompt into its KV cache). `prefetch` may return before that work is done and
    may drop it when busy; a later `chat` whose prompt shares the prefetched prefix is then
    faster, never different."""

    def prefetch(self, request: ChatRequest) -> None: ...


def unknown_model(name: str, why: str = "") -> UnknownNameError:
    return UnknownNameError(
        f"unknown model {name!r}{': ' + why if why else ''}; use 'local' (the packaged model), "
        f"'fake' (deterministic, for tests), 'fake:hallucinate' (wrong on purpose, to see the "
        f"guards at work), or a LiteLLM model string such as "
        f"'openai/gpt-4o-mini', 'anthropic/claude-3-5-haiku-latest' or 'ollama/llama3.1'"
    )
