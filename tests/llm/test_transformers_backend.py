"""The transformers backend of the local model (`SAFELLM_LOCAL_BACKEND=transformers`) on a tiny
random-weight Qwen2 model made here (a byte-level BPE tokenizer trained on the prompts, a chat
template, two layers): streaming, greedy and seeded sampling, stop strings, the prefix KV cache,
prefetch, cancelling, the answer grammar (llguidance) against the same cases as llama.cpp's,
the judge's P(YES), the errors, and `safellm explain` end to end through the guard. Its words are
noise: the quality of answers is checked on the packaged GGUF."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from safellm.cancel import CancelToken, cancelling
from safellm.cli import app
from safellm.config import Settings
from safellm.errors import Cancelled, ConfigError, ContextOverflowError
from safellm.llm.base import ChatMessage, ChatRequest
from safellm.llm.grammar import answer_grammar
from safellm.llm.hfengine import TransformersEngine
from safellm.llm.local import EngineSpec, engine, model_file
from safellm.llm.registry import get_model
from tests.samples import GRAMMAR_CASES, first_hadm

pytestmark = pytest.mark.slow
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
MSGS = [
    {"role": "system", "content": "You explain a risk model to a clinician. " * 20},
    {"role": "user", "content": "Why is the predicted risk high for this patient?"},
]


def make_tiny_model(folder: Path, *, layers: int = 2, seed: int = 0, **config: Any) -> Path:
    """A Qwen2 causal LM with random weights and its tokenizer, saved to `folder` (no download):
    the tokenizer is a byte-level BPE trained on the packaged prompts, so every prompt fits."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    corpus = [p.read_text() for p in sorted(Settings().prompts_dir.glob("*.yaml"))]
    corpus += ["{F1} {F1.dir} raises lowers risk [N1] [N2] YES NO Yes No yes no."] * 20
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=3000,
            special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=16384,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
        **config,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = fast.eos_token_id
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-qwen2") / "tiny")


@pytest.fixture
def settings(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("SAFELLM_LOCAL_BACKEND", "transformers")
    monkeypatch.setenv("SAFELLM_LOCAL_MODEL_PATH", str(tiny))
    monkeypatch.setenv("SAFELLM_LOCAL_N_CTX", "16384")
    return Settings()


@pytest.fixture
def eng(settings: Settings) -> TransformersEngine:
    _, path = model_file(settings)
    e = engine(EngineSpec.of(settings, path))
    assert isinstance(e, TransformersEngine)
    e.reset(states=True)
    return e


def _text(pairs) -> tuple[str, str | None]:  # type: ignore[no-untyped-def]
    pieces, finish = [], None
    for piece, fin in pairs:
        pieces.append(piece)
        finish = fin or finish
    return "".join(pieces), finish


def test_greedy_streams_in_pieces_and_reuses_the_prompt_cache(eng: TransformersEngine) -> None:
    pieces = [p for p, _ in eng.stream(MSGS, {"temperature": 0, "max_tokens": 24})]
    assert eng.last_stats["tokens"] == 24 and eng.last_stats["reused_tokens"] == 0
    assert len([p for p in pieces if p]) > 3  # streamed, not one block
    again, finish = _text(eng.stream(MSGS, {"temperature": 0, "max_tokens": 24}))
    assert again == "".join(pieces) and finish == "length"
    n = eng.last_stats["prompt_tokens"]
    assert eng.last_stats["reused_tokens"] == n - 1  # only the last prompt token evaluated again
    eng.reset()
    fresh, _ = _text(eng.stream(MSGS, {"temperature": 0, "max_tokens": 24}))
    assert fresh == again and eng.last_stats["reused_tokens"] == 0


def test_prefetch_saves_the_patient_and_a_question_evaluates_only_what_differs(
    eng: TransformersEngine,
) -> None:
    other = [MSGS[0], {"role": "user", "content": "Which note supports the first factor?"}]
    eng.prefetch([*other[:1], {"role": "user", "content": "Which note"}])
    _text(eng.stream(MSGS, {"max_tokens": 4}))  # another prompt in the cache meanwhile
    text, _ = _text(eng.stream(other, {"max_tokens": 16}))
    assert eng.last_stats["restored_tokens"] > eng.last_stats["prompt_tokens"] // 2
    eng.reset(states=True)
    cold, _ = _text(eng.stream(other, {"max_tokens": 16}))
    assert cold == text and eng.last_stats["restored_tokens"] == 0


def _logits(eng: TransformersEngine, messages: list[dict[str, str]]) -> Any:
    with eng.lock:
        return eng._prefill(messages).clone()


def test_reused_and_restored_caches_give_the_logits_of_a_fresh_prompt(
    eng: TransformersEngine,
) -> None:
    """The greedy noise of a random model hides a wrong cache; its logits do not (a cache that
    kept stale keys differs by ~3e-2, a right one by ~1e-7)."""
    import torch

    other = [MSGS[0], {"role": "user", "content": "Which note supports the first factor?"}]
    ref = _logits(eng, other)
    sampled = {"max_tokens": 12, "temperature": 1.5, "seed": 1}
    _text(eng.stream(MSGS, sampled))  # the cache now holds another prompt and its answer
    reused = _logits(eng, other)
    assert 0 < eng.last_stats["reused_tokens"] < eng.last_stats["prompt_tokens"]
    assert torch.allclose(reused, ref, atol=1e-4)
    eng.prefetch(other)
    _text(eng.stream(MSGS, sampled))
    restored = _logits(eng, other)
    assert eng.last_stats["restored_tokens"] == eng.last_stats["prompt_tokens"] - 1
    assert torch.allclose(restored, ref, atol=1e-4)
    token = CancelToken()
    with cancelling(token), pytest.raises(Cancelled):
        for _ in eng.stream(MSGS, sampled):
            token.cancel()
    assert torch.allclose(_logits(eng, other), ref, atol=1e-4)  # after a cancelled answer


def test_a_sliding_window_model_answers_twice(tmp_path: Path) -> None:
    """A sliding-window layer that has filled its window cannot be cut back: the cache is
    dropped, not left half-cut."""
    import torch

    folder = make_tiny_model(
        tmp_path / "swa", use_sliding_window=True, sliding_window=16, max_window_layers=0
    )
    eng = TransformersEngine(folder)
    _text(eng.stream(MSGS, {"max_tokens": 8, "temperature": 1.5, "seed": 1}))
    other = [MSGS[0], {"role": "user", "content": "And the second factor?"}]
    again = _logits(eng, other)
    eng.reset()
    assert torch.allclose(again, _logits(eng, other), atol=1e-4)


def test_sampling_follows_temperature_and_seed(eng: TransformersEngine) -> None:
    def run(seed: int, temperature: float = 1.5) -> str:
        params = {"temperature": temperature, "seed": seed, "max_tokens": 16}
        return _text(eng.stream(MSGS, params))[0]

    assert run(3) == run(3)
    assert len({run(3), run(4), run(5)}) > 1
    greedy = _text(eng.stream(MSGS, {"temperature": 0, "max_tokens": 16}))[0]
    assert run(3, 1e-4) == greedy


def test_a_stop_string_ends_the_answer_before_it(eng: TransformersEngine) -> None:
    params = {"max_tokens": 40, "temperature": 1.5, "seed": 2}  # words, not greedy's blank lines
    full, _ = _text(eng.stream(MSGS, params))
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    assert stop.strip() and full.index(stop) > 0
    eng.reset()
    cut, finish = _text(eng.stream(MSGS, {**params, "stop": [stop]}))
    assert finish == "stop" and cut == full[: full.index(stop)] and cut


def test_generation_stops_between_tokens_when_given_up(eng: TransformersEngine) -> None:
    token = CancelToken()
    got: list[str] = []
    with cancelling(token), pytest.raises(Cancelled):
        for piece, _ in eng.stream(MSGS, {"max_tokens": 200}):
            got.append(piece)
            if len(got) == 3:
                token.cancel()
    assert eng.last_stats["tokens"] <= 4


@pytest.mark.parametrize(("text", "ok"), GRAMMAR_CASES)
def test_llguidance_accepts_exactly_what_llama_cpp_accepts(
    eng: TransformersEngine, text: str, ok: bool
) -> None:
    grammar = answer_grammar(["F1", "F2", "F3", "F4"], ["N1", "N2"])
    assert eng.grammar_accepts(grammar, text) is ok


def test_noise_under_the_grammar_is_a_well_formed_answer(eng: TransformersEngine) -> None:
    grammar = answer_grammar(["F1", "F2", "F3"], ["N1"])
    free, _ = _text(eng.stream(MSGS, {"max_tokens": 60}))
    assert not free.startswith("{F1} {F1.dir} ")  # the random model's own words are noise
    text, finish = _text(eng.stream(MSGS, {"max_tokens": 400, "extra_body": {"grammar": grammar}}))
    assert text.startswith("{F1} {F1.dir} ")
    assert not re.search(r"\d", re.sub(r"\{F\d+(\.\w+)?\}|\[N\d+\]", "", text)), text
    if finish == "stop":  # a whole answer
        assert eng.grammar_accepts(grammar, text), text
    else:  # noise may write one endless word (the grammar bounds words, not letters)
        assert finish == "length" and eng.grammar_accepts(grammar, text, prefix=True), text
        assert not eng.grammar_accepts(grammar, text + "7", prefix=True)
    assert eng.last_stats["grammar_s"] > 0


def test_the_judge_reads_yes_from_the_logits(settings: Settings) -> None:
    from safellm.llm.local import LocalJudge

    judge = LocalJudge(settings)
    p = judge("Creatinine is high.", "Creatinine 2.4 mg/dL, trending up.")
    assert 0.0 < p < 1.0
    assert judge("Creatinine is high.", "Creatinine 2.4 mg/dL, trending up.") == p
    assert judge("The patient fell.", "Creatinine 2.4 mg/dL, trending up.") != p


def test_through_litellm_the_model_streams_and_a_long_prompt_is_an_overflow(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = get_model("local", settings)
    assert model.name == "local:tiny"
    got: list[str] = []
    msgs = [ChatMessage(**m) for m in MSGS]  # sampled: greedy noise is blank lines here
    req = ChatRequest(messages=msgs, max_tokens=24, temperature=1.5, seed=1)
    reply = model.chat(req, on_token=got.append)
    assert reply.text and "".join(got) == reply.text and len(got) > 1
    monkeypatch.setenv("SAFELLM_LOCAL_N_CTX", "512")
    small = get_model("local", Settings())
    long = ChatRequest(messages=[ChatMessage(role="user", content="risk " * 2000)])
    with pytest.raises(ContextOverflowError, match="context window"):
        small.chat(long)


def test_bad_folders_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import ViTConfig

    from safellm.llm.local import prepare_local_model

    monkeypatch.setenv("SAFELLM_LOCAL_BACKEND", "transformers")
    monkeypatch.setenv("SAFELLM_MODEL_CACHE", str(tmp_path / "cache"))
    prepare_local_model(Settings())  # no GGUF assembled for a backend that reads none
    assert not (tmp_path / "cache").exists()
    with pytest.raises(ConfigError, match="needs SAFELLM_LOCAL_MODEL_PATH"):
        model_file(Settings())
    for path, why in [
        (tmp_path / "nowhere", "no such folder"),
        (tmp_path / "model.gguf", "is a file, not a folder"),
        (tmp_path / "empty", "no config.json"),
        (tmp_path / "vit", "not a causal language model"),
    ]:
        if path.name == "model.gguf":
            path.write_bytes(b"GGUF")
        elif path.name == "empty":
            path.mkdir()
        elif path.name == "vit":
            ViTConfig().save_pretrained(path)
        monkeypatch.setenv("SAFELLM_LOCAL_MODEL_PATH", str(path))
        with pytest.raises(ConfigError, match=why) as err:
            get_model("local", Settings())
        assert str(path) in str(err.value)


def test_explain_streams_a_guarded_answer(
    settings: Settings, demo_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFELLM_HOME", str(demo_home))
    hadm = str(first_hadm(demo_home))
    args = ["explain", "--task", "readmission", "--hadm-id", hadm, "--model", "local"]
    res = CliRunner().invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["versions"]["llm"] == "local:tiny"
    guard = out["guard"]
    assert guard["attempts"] >= 1 and guard["passed"], guard  # asked, and what is shown passed
    text = out["rationale"]["text"]
    assert out["rationale"]["citations"] and text and "{F" not in text  # the slots are filled
    shown = CliRunner().invoke(app, args)
    assert shown.exit_code == 0, shown.output
    assert "Rationale:" in shown.output and "llm local:tiny" in shown.output
    assert re.search(r"\[F\d\]", shown.output.split("Rationale:")[1])  # a cited sentence shown
    assert "Loading weights" not in shown.output  # no progress bar inside the answer
