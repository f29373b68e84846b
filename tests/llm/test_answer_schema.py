"""The slot answer as a JSON schema for API models with structured output: the schema accepts what
the grammar accepts and rejects a digit outside a reference, a wrong order, an unknown id and an
uncited sentence; the LiteLLM adapter asks for it where the provider supports it (through
LiteLLM's own mock, no network), joins the JSON back into the slot text, and names a malformed
answer; the explain pipeline renders it like any slot answer."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from safellm.config import Settings
from safellm.errors import LLMResponseError
from safellm.llm.base import ChatMessage, ChatRequest
from safellm.llm.grammar import answer_schema, schema_answer_text
from safellm.llm.litellm import LiteLLMChatModel
from safellm.llm.prompts import load_prompt
from safellm.rationale import explain
from tests.samples import sample_facts

SCHEMA = answer_schema(["F1", "F2", "F3", "F4"], ["N1"])
GOOD = {
    "s1": "{F1} {F1.dir} the risk the most.",
    "s2": "{F2} {F2.dir} it as well [N1].",
    "s3": "{F3} {F3.dir} it a little.",
    "more": ["The notes mention swelling [N1].", "{F4.label} also matters."],
}


def test_the_schema_accepts_a_slot_answer() -> None:
    jsonschema.validate(GOOD, SCHEMA)
    assert schema_answer_text(json.dumps(GOOD)) == (
        "{F1} {F1.dir} the risk the most. {F2} {F2.dir} it as well [N1]. "
        "{F3} {F3.dir} it a little. The notes mention swelling [N1]. {F4.label} also matters."
    )


@pytest.mark.parametrize(
    "bad",
    [
        {**GOOD, "s1": "{F1} {F1.dir} the risk by 30 percent."},  # a digit
        {**GOOD, "s1": "{F1} {F1.dir} the risk by ³ percent."},  # one of another script
        {**GOOD, "s2": "{F1} {F1.dir} it."},  # F1 where F2 must open
        {**GOOD, "s3": "Age raises it {F3}."},  # a hand-written direction
        {**GOOD, "more": ["Age is high {F9}."]},  # no such fact
        {**GOOD, "more": ["It is high [N9]."]},  # no such note
        {**GOOD, "more": ["Nothing is cited here."]},
        {k: v for k, v in GOOD.items() if k != "s3"},  # completeness: F3 missing
        {**GOOD, "extra": "x"},
    ],
)
def test_the_schema_rejects(bad: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)


def test_patterns_escape_only_what_ecma_regexes_allow() -> None:
    # `\ ` (an escaped space) is an error in a unicode ECMA-262 pattern, as providers compile them
    blob = json.dumps(SCHEMA)
    assert "\\\\ " not in blob and "\\\\-" not in blob


def test_a_chat_answer_is_one_to_three_free_sentences() -> None:
    s = answer_schema(["F1", "F2"], [], chat=True)
    jsonschema.validate({"sentences": ["{F2} {F2.dir} the risk."]}, s)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"sentences": []}, s)


def _request() -> ChatRequest:
    return ChatRequest(
        messages=[ChatMessage(role="user", content="why?")],
        answer_schema=SCHEMA,
        grammar='root ::= "x"',
    )


def test_litellm_asks_for_the_schema_where_the_provider_supports_it() -> None:
    m = LiteLLMChatModel("openai/gpt-4o-mini", extra={"mock_response": json.dumps(GOOD)})
    kw = m._kwargs(_request(), stream=False)
    assert kw["response_format"]["json_schema"]["schema"] == SCHEMA
    assert kw["response_format"]["json_schema"]["strict"] is True
    assert "extra_body" not in kw  # the GBNF grammar is for llama.cpp only
    pieces: list[str] = []
    reply = m.chat(_request(), on_token=pieces.append)
    assert reply.text == schema_answer_text(json.dumps(GOOD)) == "".join(pieces)


def test_providers_without_structured_output_get_the_prompt_only() -> None:
    text = "{F1} {F1.dir} the risk."
    m = LiteLLMChatModel("ollama/llama3.1", extra={"mock_response": text})
    assert "response_format" not in m._kwargs(_request(), stream=False)
    assert m.chat(_request()).text == text


def test_an_answer_off_the_schema_is_a_clear_error() -> None:
    m = LiteLLMChatModel("openai/gpt-4o-mini", extra={"mock_response": "Age raises the risk."})
    with pytest.raises(LLMResponseError, match="does not follow the answer schema"):
        m.chat(_request())


def test_explain_renders_a_json_answer_like_any_slot_answer() -> None:
    facts = sample_facts()
    ids = [c.id for c in facts.contributions]
    answer = {
        "s1": f"{{{ids[0]}}} {{{ids[0]}.dir}} the risk the most.",
        "s2": f"{{{ids[1]}}} {{{ids[1]}.dir}} it as well.",
        "s3": f"{{{ids[2]}}} {{{ids[2]}.dir}} it a little.",
        "more": [],
    }
    model = LiteLLMChatModel("openai/gpt-4o-mini", extra={"mock_response": json.dumps(answer)})
    prompt = load_prompt(Settings().prompts_dir, "explain-risk", 2)
    exp = explain(facts, model, prompt)
    text = exp.rationale.text
    for c in facts.contributions[:3]:
        assert c.label in text, text
    assert "{" not in text and "[F1]" in text and "[F3]" in text, text
