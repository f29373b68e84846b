"""The model registry: the name a user gives (`local`, `fake`, `fake:hallucinate`, or any LiteLLM
model string) → a `ChatModel`.

    model = get_model("local", settings)      # or "fake", or "openai/gpt-4o-mini"

`local` is the packaged GGUF run by llama.cpp, served through LiteLLM as a custom provider, so local
and remote models share one code path (see `safellm.llm.local`). Heavy libraries (litellm,
llama_cpp) are imported only when a model is made.
"""

from __future__ import annotations

from safellm.config import Settings
from safellm.llm.base import ChatModel

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
