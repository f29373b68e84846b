"""One chat-model interface, with one method, and the registry that names the models.

    model = get_model("local", settings)      # or "fake", or any LiteLLM string ("openai/gpt-4o-mini")
    reply = model.chat(ChatRequest(messages=[...]), on_token=print)   # streams when on_token is given

`local` is the packaged GGUF run by llama.cpp, served through LiteLLM as a custom provider, so local
and remote models share one code path (see `safellm.llm.local`). Heavy libraries (litellm,
llama_cpp) are imported only when a model is made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, Field

from safellm.errors import UnknownNameError

if TYPE_CHECKING:
    from safellm.config import Settings


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


BUILT_IN = ("local", "fake", "fake:hallucinate")


def get_model(name: str, settings: Settings) -> ChatModel:
    """The model called `name`: `local`, `fake`, or a LiteLLM model string (provider/model)."""
    name = (name or "").strip()
    if name == "fake":
        from safellm.llm.fake import FakeChatModel

        return FakeChatModel()
    if name == "fake:hallucinate":
        from safellm.llm.fake import FakeChatModel, hallucinating_answer

        return FakeChatModel(responder=hallucinating_answer, name=name)
    if name == "local":
        from safellm.llm.local import local_model

        return local_model(settings)
    from safellm.llm.litellm import LiteLLMChatModel, check_model_string

    check_model_string(name)  # UnknownNameError for a string no provider claims
    return LiteLLMChatModel(
        name,
        timeout_s=settings.llm_timeout_s,
        max_retries=settings.llm_max_retries,
        api_base=settings.llm_api_base,
        api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
    )


def unknown_model(name: str, why: str = "") -> UnknownNameError:
    return UnknownNameError(
        f"unknown model {name!r}{': ' + why if why else ''}; use 'local' (the packaged model), "
        f"'fake' (deterministic, for tests), 'fake:hallucinate' (wrong on purpose, to see the "
        f"guards at work), or a LiteLLM model string such as "
        f"'openai/gpt-4o-mini', 'anthropic/claude-3-5-haiku-latest' or 'ollama/llama3.1'"
    )
