"""The answer grammar on the real packaged model: llama.cpp's own grammar engine accepts what the
renderer expects and rejects a digit outside a reference, an unknown id or a missing top fact; our
fast constrained decoding gives exactly the tokens of llama.cpp's grammar sampler."""

from __future__ import annotations

import re

import pytest

from safellm.config import Settings
from safellm.llm.grammar import answer_grammar
from safellm.llm.local import EngineSpec, LlamaEngine, engine, model_file
from safellm.llm.prompts import load_prompt
from safellm.rationale import SLOT, prompt_variables
from tests.samples import GRAMMAR_CASES, sample_facts

pytestmark = [pytest.mark.llm, pytest.mark.slow]
G = answer_grammar(["F1", "F2", "F3", "F4"], ["N1", "N2"])


@pytest.fixture(scope="module")
def eng() -> LlamaEngine:
    settings = Settings()
    _, path = model_file(settings)
    return engine(EngineSpec.of(settings, path))


@pytest.mark.parametrize(("text", "ok"), GRAMMAR_CASES)
def test_llama_cpp_grammar_accepts_exactly_the_answer_form(
    eng: LlamaEngine, text: str, ok: bool
) -> None:
    assert eng.grammar_accepts(G, text) is ok


def test_fast_constrained_decoding_matches_the_grammar_sampler(eng: LlamaEngine) -> None:
    from llama_cpp import LlamaGrammar

    facts = sample_facts()
    prompt = load_prompt(Settings().prompts_dir, "explain-risk", 2)
    msgs = [
        m.model_dump()
        for m in prompt.request(**prompt_variables(facts, "Why?", None, "abcd1234")).messages
    ]
    grammar = answer_grammar([c.id for c in facts.contributions], [n.id for n in facts.notes])
    ours = "".join(p for p, _ in eng.greedy(msgs, 48, grammar))
    eng.reset()
    ref = eng.llm.create_completion(
        eng._chat_formatter()(messages=msgs).prompt,
        max_tokens=48,
        temperature=0.0,
        grammar=LlamaGrammar.from_string(grammar, verbose=False),
    )["choices"][0]["text"]
    assert ours.strip() == ref.strip()
    assert "{F1" in ours and not re.search(r"\d", SLOT.sub("", ours))
