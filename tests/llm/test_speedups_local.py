"""The local model's speed-ups on the real packaged model change nothing but speed: drafted
decoding gives the tokens of plain greedy decoding (llama.cpp's own, with and without the answer
grammar) on several patients; a prompt prefix state saved by one engine is restored by a new one
(a restart) and gives the same answer; a prefetched patient only evaluates the question."""

from __future__ import annotations

from pathlib import Path

import pytest

from safellm.config import Settings
from safellm.explain.facts import Facts, ranked
from safellm.llm.local import EngineSpec, LlamaEngine, engine, model_file
from safellm.llm.prompts import load_prompt
from safellm.rationale import build_request
from tests.samples import sample_facts

pytestmark = [pytest.mark.llm, pytest.mark.slow]


def patient(i: int) -> Facts:
    """`sample_facts` with values and directions varied by `i`."""
    base = sample_facts()
    rows = [
        (c.feature, c.label, c.value, c.unit, c.shap * (1 if (k + i) % 3 else -1) * (1 + 0.1 * i))
        for k, c in enumerate(base.contributions)
    ]
    rows = [
        (f, lab, round(v * (1 + 0.05 * i), 1) if isinstance(v, float) else v, u, s)
        for f, lab, v, u, s in rows
    ]
    return base.model_copy(update={"contributions": ranked(rows), "hadm_id": 10 + i})


def messages(i: int, question: str | None = None, version: int = 2) -> tuple[list, str | None]:
    prompt = load_prompt(Settings().prompts_dir, "explain-risk", version)
    req = build_request(patient(i), prompt, question)
    return [m.model_dump() for m in req.messages], req.grammar


@pytest.fixture(scope="module")
def eng() -> LlamaEngine:
    settings = Settings()
    _, path = model_file(settings)
    return engine(EngineSpec.of(settings, path))


@pytest.mark.parametrize("i", [0, 1, 2])
def test_drafted_decoding_gives_the_tokens_of_llama_cpp_greedy(eng: LlamaEngine, i: int) -> None:
    """From the same evaluated prompt: llama.cpp's own greedy sampling (one token per pass) and
    ours with drafts give the same text."""
    msgs, _ = messages(i, version=1)  # free text: no grammar
    eng.reset()
    with eng.lock:
        eng._prefill(msgs)
    ref = eng.llm.create_completion(
        eng._chat_formatter()(messages=msgs).prompt, max_tokens=48, temperature=0.0
    )["choices"][0]["text"]
    eng.reset()
    ours = "".join(p for p, _ in eng.greedy(msgs, 48, draft_tokens=8))
    assert eng.last_stats["draft_kept"] > 0  # the drafts did something
    assert ours == ref


@pytest.mark.parametrize("i", [0, 1, 2])
def test_drafted_decoding_under_the_grammar_keeps_greedy_tokens(eng: LlamaEngine, i: int) -> None:
    msgs, grammar = messages(i)
    eng.reset()
    plain = "".join(p for p, _ in eng.greedy(msgs, 96, grammar, draft_tokens=0))
    assert eng.last_stats["passes"] == eng.last_stats["tokens"]  # one token per pass
    eng.reset()
    drafted = "".join(p for p, _ in eng.greedy(msgs, 96, grammar, draft_tokens=8))
    assert eng.last_stats["passes"] < eng.last_stats["tokens"]
    assert drafted == plain and "{F1}" in plain


def test_prefix_state_survives_a_restart(tmp_path: Path) -> None:
    settings = Settings()
    _, path = model_file(settings)
    msgs, grammar = messages(0)
    first = LlamaEngine(path, 2048, settings.local_threads, state_dir=tmp_path / "kv")
    want = "".join(p for p, _ in first.greedy(msgs, 48, grammar))
    assert first.last_stats["restored_tokens"] == 0
    files = list((tmp_path / "kv").glob("*.kv"))
    assert len(files) == 1  # the system part, saved once
    first.llm.close()

    again = LlamaEngine(path, 2048, settings.local_threads, state_dir=tmp_path / "kv")
    got = "".join(p for p, _ in again.greedy(msgs, 48, grammar))
    fixed = again._fixed_length(msgs, again.tokens(msgs))
    assert again.last_stats["restored_tokens"] == fixed > 100
    assert again.last_stats["evaluated_tokens"] == again.last_stats["prompt_tokens"] - fixed
    assert got == want

    files[0].write_bytes(files[0].read_bytes()[:-1000])  # a torn file: refused, not trusted
    third = LlamaEngine(path, 2048, settings.local_threads, state_dir=tmp_path / "kv")
    assert "".join(p for p, _ in third.greedy(msgs, 48, grammar)) == want
    assert third.last_stats["restored_tokens"] == 0
    again.llm.close()
    third.llm.close()


def test_a_prefetched_patient_only_evaluates_the_question(eng: LlamaEngine) -> None:
    msgs, grammar = messages(1)  # the default question, as the service prefetches
    eng.reset(states=True)
    stats = eng.prefetch(msgs)
    assert stats["state_bytes"] > 0
    eng.prefetch(messages(2)[0])  # another patient since: patient 1 is in the saved states
    asked, grammar = messages(1, "What drives the risk most?")
    got = "".join(p for p, _ in eng.greedy(asked, 48, grammar))
    assert eng.last_stats["restored_tokens"] > 0.8 * eng.last_stats["prompt_tokens"]
    # only the question's paragraph (after the last blank line) is evaluated
    toks = eng.tokens(asked)
    blank = max(i for i, t in enumerate(toks) if eng.llm.detokenize([t]).endswith(b"\n\n"))
    assert eng.last_stats["evaluated_tokens"] == len(toks) - (blank + 1) < 25
    eng.reset(states=True)
    assert "".join(p for p, _ in eng.greedy(asked, 48, grammar, draft_tokens=0)) == got
