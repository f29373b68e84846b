"""Any LiteLLM model string as a `ChatModel`: timeouts, bounded retries, errors mapped into ours.

The packaged local model is served the same way, as the LiteLLM custom provider `safellm_local`
(see `safellm.llm.local`), so local and remote models share this code path. A slot-based answer
is constrained where the provider can: the local model decodes under the request's GBNF grammar;
a provider with structured output (`litellm.supports_response_schema`) answers in the request's
JSON schema, joined back into text here (streamed once complete); others get the prompt only, and
the guard checks what they write.
"""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any

from safellm.cancel import cancelled_in
from safellm.errors import (
    ContextOverflowError,
    LLMError,
    LLMResponseError,
    LLMTimeoutError,
    LLMUnavailableError,
    SafeLLMError,
)
from safellm.llm.base import ChatRequest, ChatResponse, TokenSink, unknown_model
from safellm.llm.grammar import schema_answer_text


def import_litellm() -> Any:
    from safellm.config import apply_offline_switches

    apply_offline_switches()  # before the import: litellm fetches its cost map at import time
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


def provider_of(model: str) -> str:
    """The LiteLLM provider of a model string (`openai`, `anthropic`, `safellm_local`...)."""
    try:
        return str(import_litellm().get_llm_provider(model)[1])
    except Exception:
        return model.split("/", 1)[0] if "/" in model else "unknown"


def check_model_string(model: str) -> None:
    """An `UnknownNameError` unless some LiteLLM provider claims `model`."""
    if not model:
        raise unknown_model(model, "empty name")
    try:
        import_litellm().get_llm_provider(model)
    except Exception as exc:
        raise unknown_model(model, "no LiteLLM provider serves it") from exc


def supports_schema(model: str) -> bool:
    """Whether LiteLLM knows `model`'s provider to support JSON-schema output."""
    try:
        return bool(import_litellm().supports_response_schema(model=model))
    except Exception:
        return False


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = re.sub(r"^litellm\.\w+:\s*", "", text)
    return text[:300]


def close_stream(stream: Any) -> None:
    """Stop a stream's source now (a local model then frees its engine, a provider its
    connection) rather than whenever the abandoned stream is garbage collected."""
    for obj in (getattr(stream, "completion_stream", None), stream):
        close = getattr(obj, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()


def map_error(exc: BaseException, model: str, timeout_s: float) -> LLMError:
    """A LiteLLM (or provider) exception as one of our `LLMError`s, naming model and provider."""
    litellm = import_litellm()
    who = f"model {model} (provider {provider_of(model)})"
    if isinstance(exc, litellm.ContextWindowExceededError):
        return ContextOverflowError(
            f"{who}: the prompt does not fit its context window: {_short(exc)}"
        )
    if isinstance(exc, litellm.Timeout):
        return LLMTimeoutError(f"{who}: no answer within {timeout_s:g} s")
    if isinstance(exc, (litellm.AuthenticationError, litellm.PermissionDeniedError)):
        return LLMUnavailableError(
            f"{who}: the provider refused the credentials (set SAFELLM_LLM_API_KEY): {_short(exc)}"
        )
    if isinstance(exc, litellm.APIConnectionError) or "connection error" in str(exc).lower():
        return LLMUnavailableError(
            f"{who}: cannot reach the provider (no network, or a wrong SAFELLM_LLM_API_BASE?): "
            f"{_short(exc)}"
        )
    if isinstance(exc, litellm.RateLimitError):
        return LLMUnavailableError(f"{who}: rate limited by the provider: {_short(exc)}")
    return LLMUnavailableError(f"{who}: the call failed: {_short(exc)}")


class LiteLLMChatModel:
    """A `ChatModel` over `litellm.completion`."""

    def __init__(
        self,
        model: str,
        *,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        api_base: str | None = None,
        api_key: str | None = None,
        name: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.name = name or model
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.api_base = api_base
        self.api_key = api_key
        self.extra = dict(extra or {})  # e.g. mock_response in tests

    def uses_schema(self, request: ChatRequest) -> bool:
        """Whether this request is answered in its JSON answer schema."""
        return (
            request.answer_schema is not None
            and request.json_schema is None
            and provider_of(self.model) != "safellm_local"
            and supports_schema(self.model)
        )

    def _kwargs(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "model": self.model,
            "messages": [m.model_dump() for m in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "timeout": self.timeout_s,
            "num_retries": self.max_retries,
            "stream": stream,
        }
        if request.stop:
            kw["stop"] = list(request.stop)
        if request.seed is not None:
            kw["seed"] = request.seed
        if request.json_schema is not None:
            kw["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": request.json_schema, "strict": True},
            }
        if request.grammar is not None and provider_of(self.model) == "safellm_local":
            kw["extra_body"] = {"grammar": request.grammar}  # llama.cpp decodes under it
        elif self.uses_schema(request):
            kw["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": request.answer_schema, "strict": True},
            }
        if self.api_base:
            kw["api_base"] = self.api_base
        if self.api_key:
            kw["api_key"] = self.api_key
        return kw | self.extra

    def warm(self) -> None:
        """Take LiteLLM's first call (which imports much of LiteLLM and loads a tokenizer lazily,
        holding the interpreter for seconds) now, with a mock answer: no model is asked."""
        litellm = import_litellm()
        with contextlib.suppress(Exception):  # a warm-up never fails: the first question will
            litellm.completion(
                model=self.model,
                messages=[{"role": "user", "content": "warm-up"}],
                mock_response="ok",
            )
            litellm.token_counter(text="warm-up")  # the default tokenizer (tiktoken), loaded

    def chat(self, request: ChatRequest, on_token: TokenSink | None = None) -> ChatResponse:
        if not self.uses_schema(request):
            return self._chat(request, on_token)
        # a JSON answer: taken whole, joined into the slot text, then passed on
        reply = self._chat(request, None)
        try:
            text = schema_answer_text(reply.text)
        except ValueError as exc:
            raise LLMResponseError(
                f"model {self.model}: the answer does not follow the answer schema: {exc}"
            ) from exc
        if on_token is not None:
            on_token(text)
        return reply.model_copy(update={"text": text})

    def _chat(self, request: ChatRequest, on_token: TokenSink | None = None) -> ChatResponse:
        litellm = import_litellm()
        started = time.perf_counter()
        first: float | None = None
        finish: str | None = None
        n_chunks = 0
        try:
            if on_token is None:
                resp = litellm.completion(**self._kwargs(request, stream=False))
                choice = resp.choices[0]
                text = choice.message.content or ""
                finish = choice.finish_reason
                usage = getattr(resp, "usage", None)
                n_chunks = int(getattr(usage, "completion_tokens", 0) or 0)
            else:
                pieces: list[str] = []
                stream = litellm.completion(**self._kwargs(request, stream=True))
                try:
                    for chunk in stream:
                        if not chunk.choices:
                            continue
                        choice = chunk.choices[0]
                        delta = choice.delta.content or ""
                        if delta:
                            if first is None:
                                first = time.perf_counter() - started
                            pieces.append(delta)
                            n_chunks += 1
                            on_token(delta)  # may raise (a cancelled request): the stream stops
                        finish = choice.finish_reason or finish
                        if time.perf_counter() - started > self.timeout_s:
                            raise litellm.Timeout(
                                message="stream too slow", model=self.model, llm_provider="stream"
                            )
                finally:
                    close_stream(stream)
                text = "".join(pieces)
        except SafeLLMError:  # ours (an LLMError, or the sink's Cancelled): as it is
            raise
        except Exception as exc:
            given_up = cancelled_in(exc)  # raised in a local model's loop, wrapped by LiteLLM
            if given_up is not None:
                raise given_up from None
            raise map_error(exc, self.model, self.timeout_s) from exc
        if not text.strip():
            raise LLMResponseError(f"model {self.model}: empty answer (finish reason {finish})")
        total = time.perf_counter() - started
        return ChatResponse(
            text=text,
            model=self.name,
            finish_reason=finish,
            completion_tokens=n_chunks or None,
            first_token_s=first if first is not None else total,
            total_s=total,
        )
