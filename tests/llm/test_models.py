"""The model registry, the fake model, and LiteLLM strings (success via LiteLLM's mock; failures
mapped into our errors, naming the provider, without hanging)."""

from __future__ import annotations

import time

import pytest

from safellm.config import Settings
from safellm.errors import (
    ContextOverflowError,
    LLMTimeoutError,
    LLMUnavailableError,
    UnknownNameError,
)
from safellm.llm.base import ChatMessage, ChatRequest
from safellm.llm.fake import FakeChatModel, grounded_answer
from safellm.llm.litellm import LiteLLMChatModel, import_litellm
from safellm.llm.registry import get_model

REQ = ChatRequest(messages=[ChatMessage(role="user", content="hello")], max_tokens=16)


def test_fake_model_is_deterministic_and_streams() -> None:
    prompt = (
        "FACTS:\n[F1] Creatinine (last) = 2.4 mg/dL; raises the risk (+0.61 log-odds)\n"
        "[F2] Age = 44 years; lowers the risk (-0.30 log-odds)\n"
    )
    req = ChatRequest(messages=[ChatMessage(role="user", content=prompt)])
    a, b = FakeChatModel().chat(req), FakeChatModel().chat(req)
    assert a.text == b.text == grounded_answer(req)
    assert "[F1]" in a.text and "2.4 mg/dL" in a.text and "[F2]" in a.text
    pieces: list[str] = []
    c = FakeChatModel().chat(req, on_token=pieces.append)
    assert "".join(pieces) == c.text and len(pieces) > 3


def test_fake_model_script_replays_answers_and_raises_faults() -> None:
    fake = FakeChatModel(script=["one", LLMTimeoutError("slow"), "three"])
    assert fake.chat(REQ).text == "one"
    with pytest.raises(LLMTimeoutError):
        fake.chat(REQ)
    assert fake.chat(REQ).text == "three" and fake.chat(REQ).text == "three"
    assert len(fake.requests) == 4


def test_registry_names(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = Settings(home=tmp_path)
    assert isinstance(get_model("fake", s), FakeChatModel)
    remote = get_model("openai/gpt-4o-mini", s)
    assert isinstance(remote, LiteLLMChatModel) and remote.name == "openai/gpt-4o-mini"
    for bad in ("", "no-such-model-anywhere", "nosuchprovider/x"):
        with pytest.raises(UnknownNameError, match="unknown model"):
            get_model(bad, s)


def test_litellm_success_path_with_mock_response() -> None:
    m = LiteLLMChatModel(
        "openai/gpt-4o-mini", extra={"mock_response": "Creatinine raises it [F1]."}
    )
    assert m.chat(REQ).text == "Creatinine raises it [F1]."
    pieces: list[str] = []
    r = m.chat(REQ, on_token=pieces.append)
    assert "".join(pieces) == r.text == "Creatinine raises it [F1]." and r.first_token_s is not None


def test_remote_provider_without_network_fails_fast_naming_the_provider() -> None:
    # A closed port on this machine stands for "no network": the connection is refused at once.
    m = LiteLLMChatModel(
        "openai/gpt-4o-mini",
        api_base="http://127.0.0.1:9/v1",
        api_key="sk-test",
        timeout_s=5,
        max_retries=1,
    )
    started = time.perf_counter()
    with pytest.raises(LLMUnavailableError, match=r"provider openai\).*cannot reach"):
        m.chat(REQ)
    assert time.perf_counter() - started < 20


def test_litellm_faults_map_into_our_errors() -> None:
    litellm = import_litellm()
    cases = [
        (litellm.Timeout(message="t", model="m", llm_provider="openai"), LLMTimeoutError),
        (
            litellm.ContextWindowExceededError(
                message="too long", model="m", llm_provider="openai"
            ),
            ContextOverflowError,
        ),
        (
            litellm.RateLimitError(message="slow down", model="m", llm_provider="openai"),
            LLMUnavailableError,
        ),
    ]
    for exc, ours in cases:
        m = LiteLLMChatModel("openai/gpt-4o-mini", max_retries=0, extra={"mock_response": exc})
        with pytest.raises(ours, match="openai"):
            m.chat(REQ)
