"""The local model's second backend: a Hugging Face model folder run by transformers
(`SAFELLM_LOCAL_BACKEND=transformers`, `SAFELLM_LOCAL_MODEL_PATH=DIR`), for a GPU or a model
that has no GGUF. It serves the same LiteLLM custom provider as the llama.cpp engine
(`safellm.llm.local`) and offers the same methods: `stream`, `greedy`, `prefetch`,
`yes_probability`, `grammar_accepts`, `last_stats`.

    eng = TransformersEngine(Path("my-model"), n_ctx=4096, threads=2, device=None)
    for piece, finish in eng.stream(messages, {"temperature": 0, "max_tokens": 200}): ...

- The folder is read with `local_files_only` (nothing is downloaded): config, tokenizer (with its
  chat template) and weights; a folder AutoModelForCausalLM cannot load is refused by name.
- The device is `cuda` when torch sees one, else the CPU (float32 there); `SAFELLM_LOCAL_DEVICE`
  forces one.
- The KV cache of the last evaluated tokens is kept (a `DynamicCache`, cropped to the common
  prefix with the next prompt), and `prefetch` saves a prompt's cache (least recently used
  dropped beyond `kv_cache_bytes`), so a patient's next question evaluates only what differs.
- A GBNF grammar (`safellm.llm.grammar`) is enforced by llguidance (the grammar converted to its
  Lark form): each step's logits are masked to the tokens the grammar allows, so the answer
  follows it by construction, as under llama.cpp.
- Generation stops between two tokens when the request is given up (`safellm.cancel`).
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from safellm.cancel import check_current
from safellm.errors import ConfigError
from safellm.llm.kvstate import check_fits, common_prefix


def check_model_folder(path: Path) -> Path:
    """`path` if it looks like a Hugging Face model folder, else `ConfigError` naming it."""
    path = Path(path)
    hint = (
        "the transformers backend reads a Hugging Face model folder (config.json, tokenizer "
        "files, weights)"
    )
    if not path.exists():
        raise ConfigError(f"SAFELLM_LOCAL_MODEL_PATH={path}: no such folder; {hint}")
    if path.is_file():
        raise ConfigError(
            f"SAFELLM_LOCAL_MODEL_PATH={path} is a file, not a folder; {hint}. A GGUF file runs "
            f"on the default backend (unset SAFELLM_LOCAL_BACKEND or set it to llama.cpp)"
        )
    if not (path / "config.json").is_file():
        raise ConfigError(f"SAFELLM_LOCAL_MODEL_PATH={path}: no config.json in the folder; {hint}")
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"SAFELLM_LOCAL_MODEL_PATH={path}: unreadable config ({exc})") from exc
    if getattr(config, "model_type", None) not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ConfigError(
            f"SAFELLM_LOCAL_MODEL_PATH={path}: not a causal language model (model_type "
            f"{getattr(config, 'model_type', None)!r}, architectures "
            f"{getattr(config, 'architectures', None)}); the transformers backend needs a model "
            f"that AutoModelForCausalLM loads"
        )
    return path


def pick_device(wanted: str | None) -> str:
    """`wanted` (checked), else `cuda` when torch sees a GPU, else `cpu`."""
    import torch

    if wanted:
        if wanted.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"SAFELLM_LOCAL_DEVICE={wanted}: torch sees no CUDA device here")
        try:
            torch.device(wanted)
        except RuntimeError as exc:
            raise ConfigError(f"SAFELLM_LOCAL_DEVICE={wanted}: not a torch device ({exc})") from exc
        return wanted
    return "cuda" if torch.cuda.is_available() else "cpu"


_WEIGHTS: dict[tuple[str, str], tuple[Any, Any]] = {}
_WEIGHTS_LOCK = threading.Lock()


def load(path: Path, device: str) -> tuple[Any, Any]:
    """(tokenizer, model) of the folder, loaded once per process and device (the answer's and the
    judge's engines share the weights; each keeps its own KV cache)."""
    key = (str(Path(path).resolve()), device)
    with _WEIGHTS_LOCK:
        if key in _WEIGHTS:
            return _WEIGHTS[key]
        check_model_folder(path)
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - install problem
            raise ConfigError(
                "the transformers backend needs torch and transformers (run `make install`)"
            ) from exc
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # it would print inside the streamed answer
        try:
            model = AutoModelForCausalLM.from_pretrained(
                path,
                local_files_only=True,
                dtype=torch.float32 if device == "cpu" else "auto",
            )
        except ValueError as exc:
            raise ConfigError(f"SAFELLM_LOCAL_MODEL_PATH={path}: {exc}") from exc
        except OSError as exc:
            raise ConfigError(
                f"SAFELLM_LOCAL_MODEL_PATH={path}: no weights could be read ({exc})"
            ) from exc
        finally:
            hf_logging.enable_progress_bar()
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"SAFELLM_LOCAL_MODEL_PATH={path}: no tokenizer ({exc})") from exc
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                f"SAFELLM_LOCAL_MODEL_PATH={path}: the tokenizer has no chat template (an "
                f"instruction-tuned model's folder has one in tokenizer_config.json or "
                f"chat_template.jinja)"
            )
        model.to(device).eval()
        _WEIGHTS[key] = (tokenizer, model)
        return tokenizer, model


class _Grammar:
    """A GBNF grammar over this tokenizer's vocabulary, with llguidance: the tokens it allows
    next (`mask`), the token taken (`consume`). The mask is llguidance's bitmask unpacked with
    numpy (its torch helper compiles a kernel with torch.compile on first use)."""

    def __init__(self, grammar: str, ll_tokenizer: Any) -> None:
        import llguidance
        from llguidance.gbnf_to_lark import gbnf_to_lark

        try:
            lark = gbnf_to_lark(grammar)
        except Exception as exc:  # the converter raises plain exceptions
            raise ValueError(f"invalid GBNF grammar ({exc})") from exc
        spec = llguidance.LLMatcher.grammar_from_lark(lark)
        is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(spec, ll_tokenizer)
        if is_error:
            raise ValueError(f"invalid GBNF grammar ({'; '.join(messages)})")
        self.matcher = llguidance.LLMatcher(ll_tokenizer, spec, log_level=0)
        self.vocab = int(ll_tokenizer.vocab_size)
        from llguidance.numpy import allocate_token_bitmask

        self.bitmask = allocate_token_bitmask(1, self.vocab)

    def mask(self, logits: Any) -> Any:
        """`logits` (1-D torch, any device) as a CPU copy with the tokens the grammar forbids
        (and any row of the output layer beyond the vocabulary) set to -inf."""
        import numpy as np
        import torch
        from llguidance.numpy import fill_next_token_bitmask

        fill_next_token_bitmask(self.matcher, self.bitmask, 0)
        allowed = np.unpackbits(self.bitmask[0].view(np.uint8), bitorder="little").astype(bool)
        row = logits.detach().float().cpu().numpy().copy()
        n = min(len(row), self.vocab)
        row[:n][~allowed[:n]] = -np.inf
        row[n:] = -np.inf
        return torch.from_numpy(row)

    def consume(self, tok: int) -> None:
        if not self.matcher.consume_token(tok):
            raise ValueError(f"the grammar refused token {tok} ({self.matcher.get_error()})")

    def done(self) -> bool:
        return bool(self.matcher.is_stopped())


class TransformersEngine:
    """One Hugging Face causal LM in memory. Calls are serialised (one KV cache per engine)."""

    def __init__(
        self,
        path: Path,
        n_ctx: int = 4096,
        threads: int = 2,
        *,
        device: str | None = None,
        kv_cache_bytes: int = 512 * 2**20,
    ) -> None:
        import torch

        self.path = Path(path)
        self.device = pick_device(device)
        if self.device == "cpu":
            torch.set_num_threads(threads)
        self.tokenizer, self.model = load(self.path, self.device)
        limit = getattr(self.model.config, "max_position_embeddings", None)
        self.n_ctx = min(n_ctx, int(limit)) if limit else n_ctx
        self.lock = threading.Lock()
        self.kv_cache_bytes = kv_cache_bytes
        self._ids: list[int] = []  # the tokens whose keys and values `_cache` holds
        self._cache: Any = None
        self._saved: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._ll_tokenizer: Any = None
        self._answer_ids: dict[str, list[int]] = {}
        self.last_stats: dict[str, float] = {}
        self.prefetch_stats: dict[str, float] = {}
        # the end of an answer: the generation config's ids and the tokenizer's (a folder may
        # name the base model's <|endoftext|> in one and the chat turn's end in the other)
        gen = getattr(self.model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None) if gen is not None else None
        ids = [*(eos if isinstance(eos, list) else [eos]), self.tokenizer.eos_token_id]
        self.eos = {int(e) for e in ids if e is not None}

    # ------------------------------------------------------------------------------- prompts
    def tokens(self, messages: list[dict[str, str]]) -> list[int]:
        """The chat prompt of `messages` as this model's tokens (the assistant's turn open)."""
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _forward(self, ids: list[int]) -> Any:
        """Evaluate `ids` after `self._ids` into the cache; the logits after the last of them."""
        import torch
        from transformers import DynamicCache

        if self._cache is None:  # the model's own layer kinds (sliding-window ones too)
            self._cache = DynamicCache(config=self.model.config)
        inp = torch.tensor([ids], device=self.device)
        try:
            with torch.inference_mode():  # the cache is updated in place; logits of the last only
                out = self.model(input_ids=inp, cache=self._cache, use_cache=True, logits_to_keep=1)
        except BaseException:  # half-updated (out of memory, interrupted): start afresh
            self._cache, self._ids = None, []
            raise
        self._ids.extend(ids)
        return out.logits[0, -1]

    def _crop(self, n: int) -> int:
        """Keep the keys and values of the first `n` evaluated tokens (all of them dropped where
        the model's cache cannot be cut back, e.g. sliding-window layers); returns how many are
        kept."""
        drop = len(self._ids) - n
        if self._cache is not None and drop > 0:
            if n == 0 or not _croppable(self._cache):
                self._cache, n = None, 0
            else:
                try:  # transformers 5: a negative count of tokens to remove
                    self._cache.crop(-drop)
                except RuntimeError:  # a layer that cannot go back after all
                    self._cache, n = None, 0
        self._ids = self._ids[:n]
        return n

    def _prefill(self, messages: list[dict[str, str]], reserve: int = 0) -> Any:
        """Evaluate the prompt of `messages`, reusing the cached or a saved prefix; the logits
        after its last token. `last_stats` gets the tokens reused, restored and evaluated.
        `reserve`: the tokens the answer may take (as `LlamaEngine._prefill`)."""
        tokens = self.tokens(messages)
        check_fits(len(tokens), reserve, self.n_ctx)
        keep = common_prefix(self._ids, tokens)
        restored = 0
        best, best_key = 0, None
        for key in self._saved:
            n = common_prefix(list(key), tokens)
            if n > best:
                best, best_key = n, key
        if best_key is not None and best > keep:
            self._saved.move_to_end(best_key)
            self._cache, self._ids = copy.deepcopy(self._saved[best_key]), list(best_key)
            keep = restored = best
        keep = min(keep, len(tokens) - 1)  # the last token is evaluated again for its logits
        keep = self._crop(keep)
        restored = min(restored, keep)
        logits = None
        for start in range(keep, len(tokens), 256):  # given up: stop between pieces
            if start > keep:
                check_current()
            logits = self._forward(tokens[start : start + 256])
        self.last_stats = {
            "prompt_tokens": len(tokens),
            "reused_tokens": keep,
            "restored_tokens": restored,
            "evaluated_tokens": len(tokens) - keep,
        }
        return logits

    def prefetch(self, messages: list[dict[str, str]]) -> dict[str, float]:
        """Evaluate the prompt of `messages` now and save its KV cache, so that a later prompt
        sharing its beginning (the same patient, another question) evaluates only the rest."""
        with self.lock:
            t0 = time.perf_counter()
            self._prefill(messages)
            stats = dict(self.last_stats)
            size = _cache_bytes(self._cache)
            key = tuple(self._ids)
            self._saved[key] = copy.deepcopy(self._cache)
            self._saved.move_to_end(key)
            while len(self._saved) > 1 and sum(map(_cache_bytes, self._saved.values())) > (
                self.kv_cache_bytes
            ):
                self._saved.popitem(last=False)
            if self.kv_cache_bytes == 0:
                self._saved.clear()
            stats["state_bytes"] = size
            stats["prefill_s"] = time.perf_counter() - t0
            self.prefetch_stats = stats
            return stats

    # ------------------------------------------------------------------------------ decoding
    def _grammar(self, grammar: str) -> _Grammar:
        if self._ll_tokenizer is None:
            import llguidance.hf

            self._ll_tokenizer = llguidance.hf.from_tokenizer(
                self.tokenizer, eos_token=sorted(self.eos) or None
            )
        return _Grammar(grammar, self._ll_tokenizer)

    def greedy(
        self, messages: list[dict[str, str]], max_tokens: int, grammar: str | None = None
    ) -> Iterator[tuple[str, str | None]]:
        """Greedy decoding (under a GBNF grammar when given)."""
        yield from self.generate(messages, {"max_tokens": max_tokens}, grammar)

    def generate(
        self, messages: list[dict[str, str]], params: dict[str, Any], grammar: str | None = None
    ) -> Iterator[tuple[str, str | None]]:
        """(text piece, finish reason or None) pairs: greedy at temperature 0, else sampled
        (seeded by `seed`); stops at an end-of-sequence token, a `stop` string, `max_tokens`, or
        where the grammar allows nothing more."""
        import torch

        temperature = float(params.get("temperature") or 0.0)
        max_tokens = int(params.get("max_tokens") or 320)
        stop = params.get("stop") or []
        stops = [s for s in ([stop] if isinstance(stop, str) else stop) if s]
        hold = max((len(s) for s in stops), default=1) - 1
        seed = params.get("seed")
        gen = None
        if temperature > 0:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(int(seed) if seed is not None else int(time.time_ns() % 2**31))
        stats: dict[str, float] = {"tokens": 0, "grammar_s": 0.0, "decode_s": 0.0}
        with self.lock:
            t0 = time.perf_counter()
            # the answer stays inside the context window (and the model's positions)
            logits = self._prefill(messages, reserve=max_tokens)
            stats.update(self.last_stats)
            stats["prefill_s"] = time.perf_counter() - t0
            constraint = self._grammar(grammar) if grammar else None
            ids: list[int] = []
            text, sent, finish, cut = "", 0, "length", False
            try:
                for produced in range(1, max_tokens + 1):
                    t1 = time.perf_counter()
                    row = logits
                    if constraint is not None:
                        if constraint.done():
                            finish = "stop"
                            break
                        row = constraint.mask(logits)
                        stats["grammar_s"] += time.perf_counter() - t1
                        if not torch.isfinite(row.max()):
                            finish = "stop"
                            break
                    if gen is None:
                        tok = int(torch.argmax(row))
                    else:
                        probs = torch.softmax(row.float() / temperature, dim=-1)
                        tok = int(torch.multinomial(probs.to(gen.device), 1, generator=gen))
                    if tok in self.eos:
                        finish = "stop"
                        break
                    if constraint is not None:
                        constraint.consume(tok)
                    ids.append(tok)
                    stats["tokens"] += 1
                    # the whole answer decoded again: a token may be part of a character, and
                    # a tokenizer may join pieces with spaces of its own
                    text = self.tokenizer.decode(ids, skip_special_tokens=True)
                    if not text.endswith("\ufffd"):
                        at = min((i for s in stops if (i := text.find(s)) >= 0), default=-1)
                        if at >= 0:
                            text, finish, cut = text[:at], "stop", True
                            break
                        ready = len(text) - hold
                        if ready > sent:
                            yield text[sent:ready], None
                            sent = ready
                    if produced == max_tokens:
                        break
                    check_current()  # given up (the client left): stop between two tokens
                    logits = self._forward([tok])
                    stats["decode_s"] += time.perf_counter() - t1
                if not cut:  # the rest, without a character cut short, up to a stop string
                    text = self.tokenizer.decode(ids, skip_special_tokens=True).rstrip("\ufffd")
                    at = min((i for s in stops if (i := text.find(s)) >= 0), default=-1)
                    if at >= 0:
                        text, finish = text[:at], "stop"
                if len(text) > sent:
                    yield text[sent:], None
                yield "", finish
            finally:
                self.last_stats = stats

    def stream(
        self, messages: list[dict[str, str]], params: dict[str, Any]
    ) -> Iterator[tuple[str, str | None]]:
        """(text piece, finish reason or None) pairs of one chat completion, as
        `LlamaEngine.stream`: the grammar of `extra_body`, temperature, max tokens, stop, seed."""
        grammar = (params.get("extra_body") or {}).get("grammar")
        yield from self.generate(messages, params, str(grammar) if grammar else None)

    def grammar_accepts(self, grammar: str, text: str, *, prefix: bool = False) -> bool:
        """Whether `grammar` allows `text` as a whole answer (`prefix`: as the beginning of
        one), checked with this tokenizer's tokens; no model call."""
        ids = [int(t) for t in self.tokenizer(text, add_special_tokens=False)["input_ids"]]
        g = self._grammar(grammar)
        if g.matcher.validate_tokens(ids) != len(ids) or not g.matcher.consume_tokens(ids):
            return False
        return prefix or bool(g.matcher.is_accepting())

    def yes_probability(self, messages: list[dict[str, str]]) -> float:
        """P(YES) / (P(YES) + P(NO)) for the first token of the answer to `messages`, read from
        the model's logits (one forward pass, no sampling; the cached prefix is reused)."""
        import torch

        with self.lock:
            if not self._answer_ids:
                tok = self.tokenizer
                first = {
                    word: {tok(v, add_special_tokens=False)["input_ids"][0] for v in variants}
                    for word, variants in (
                        ("yes", ("YES", "Yes", "yes", " YES", " Yes")),
                        ("no", ("NO", "No", "no", " NO", " No")),
                    )
                }
                # a first token both words share (a lone word-start marker) says neither
                shared = first["yes"] & first["no"]
                self._answer_ids = {
                    w: sorted(i for i in ids if i not in shared and tok.decode([i]).strip())
                    for w, ids in first.items()
                }
            logits = self._prefill(messages).float()
        p = torch.softmax(logits, dim=-1)
        yes = float(p[self._answer_ids["yes"]].sum())
        no = float(p[self._answer_ids["no"]].sum())
        return yes / (yes + no) if yes + no > 0 else 0.5

    def reset(self, states: bool = False) -> None:
        """Forget the evaluated prompt; `states` also forgets the saved (prefetched) ones."""
        with self.lock:
            self._crop(0)
            if states:
                self._saved.clear()


def _croppable(cache: Any) -> bool:
    """Whether `cache` can be cut back: a sliding-window layer that has filled its window keeps
    no earlier keys (transformers' `crop` then raises, though the layer says it can crop)."""
    if not cache.is_croppable:
        return False
    for layer in getattr(cache, "layers", []):
        window = getattr(layer, "sliding_window", None)
        if getattr(layer, "is_sliding", False) and window and layer.get_seq_length() >= window:
            return False
    return True


def _cache_bytes(cache: Any) -> int:
    """The memory of a DynamicCache's keys and values."""
    if cache is None:
        return 0
    total = 0
    for layer in getattr(cache, "layers", []):
        for name in ("keys", "values"):
            t = getattr(layer, name, None)
            if t is not None and hasattr(t, "numel"):
                total += t.numel() * t.element_size()
    return total
