"""Saved KV states of a local model: the llama.cpp state of one evaluated token sequence, kept
so that a later prompt starting with the same tokens restores it instead of evaluating them.

In memory the states are bounded by bytes (least recently used dropped first); a state marked
`persist` (a prompt's fixed prefix) is also written to disk, one file per token sequence, so a new
process starts with it. A file records its tokens, so a state is only ever restored under the
tokens it was made from; the folder is per model file, context size and llama.cpp version (a
state of another build is never read).

File layout: `SAFELLM-KV1\\n`, the token count (uint32, little-endian), the tokens (int32),
then the state bytes of `llama_state_seq_get_data`.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

MAGIC = b"SAFELLM-KV1\n"

Tokens = tuple[int, ...]
TokenLike = Sequence[int] | np.ndarray


def check_fits(prompt_tokens: int, reserve: int, n_ctx: int) -> None:
    """ValueError unless a prompt of `prompt_tokens` fits a context window of `n_ctx` with room
    for `reserve` tokens of answer (the engines' refusal, before anything is evaluated)."""
    if prompt_tokens >= n_ctx:
        raise ValueError(
            f"the prompt ({prompt_tokens} tokens) exceeds the context window ({n_ctx})"
        )
    if prompt_tokens + reserve > n_ctx:
        raise ValueError(
            f"the prompt ({prompt_tokens} tokens) and its answer (up to {reserve} tokens) "
            f"exceed the context window ({n_ctx})"
        )


def common_prefix(a: TokenLike, b: TokenLike) -> int:
    """How many leading tokens `a` and `b` share."""
    x, y = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    n = min(len(x), len(y))
    diff = np.flatnonzero(x[:n] != y[:n])
    return int(diff[0]) if len(diff) else n


def _name(tokens: Tokens) -> str:
    return hashlib.sha256(np.asarray(tokens, dtype="<i4").tobytes()).hexdigest()[:24] + ".kv"


def write_state(path: Path, tokens: Tokens, data: bytes) -> None:
    """One state file, atomically (temp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as out:
            out.write(MAGIC)
            out.write(np.uint32(len(tokens)).astype("<u4").tobytes())
            out.write(np.asarray(tokens, dtype="<i4").tobytes())
            out.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_tokens(path: Path) -> Tokens | None:
    """The tokens a state file was made from (None: not a state file of this format)."""
    try:
        with open(path, "rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                return None
            n = int(np.frombuffer(f.read(4), dtype="<u4")[0])
            raw = f.read(4 * n)
            if len(raw) != 4 * n:
                return None
            return tuple(int(t) for t in np.frombuffer(raw, dtype="<i4"))
    except (OSError, IndexError, ValueError):
        return None


def read_state(path: Path) -> tuple[Tokens, bytes] | None:
    tokens = read_tokens(path)
    if tokens is None:
        return None
    with open(path, "rb") as f:
        f.seek(len(MAGIC) + 4 + 4 * len(tokens))
        data = f.read()
    return (tokens, data) if data else None


class StateCache:
    """States by token sequence: in memory up to `max_bytes` (LRU), persisted ones also in
    `folder` (None: memory only). Not thread-safe: the engine's lock guards it."""

    def __init__(self, max_bytes: int, folder: Path | None = None) -> None:
        self.max_bytes = max_bytes
        self.folder = folder
        self.memory: OrderedDict[Tokens, bytes] = OrderedDict()
        self.disk: dict[Tokens, Path] = {}
        if folder is not None and folder.is_dir():
            for path in sorted(folder.glob("*.kv")):
                tokens = read_tokens(path)
                if tokens is not None:
                    self.disk[tokens] = path

    @property
    def size(self) -> int:
        return sum(len(d) for d in self.memory.values())

    def __contains__(self, tokens: Tokens) -> bool:
        return tokens in self.memory or tokens in self.disk

    def put(self, tokens: Tokens, data: bytes, persist: bool = False) -> None:
        """Keep `data` as the state of `tokens`; `persist` also writes it to disk."""
        if persist and self.folder is not None and tokens not in self.disk:
            path = self.folder / _name(tokens)
            write_state(path, tokens, data)
            self.disk[tokens] = path
        if len(data) > self.max_bytes:
            return
        self.memory[tokens] = data
        self.memory.move_to_end(tokens)
        while self.size > self.max_bytes:
            self.memory.popitem(last=False)

    def best(self, tokens: TokenLike) -> tuple[int, Tokens | None]:
        """The saved sequence sharing the longest prefix with `tokens`, and that length; only
        sequences that are wholly a prefix of `tokens` or diverge from it count by the shared
        part (a state is cut back to that part when restored)."""
        best_n, best_key = 0, None
        for key in (*self.memory.keys(), *self.disk.keys()):
            n = common_prefix(key, tokens)
            if n > best_n:
                best_n, best_key = n, key
        return best_n, best_key

    def get(self, tokens: Tokens) -> bytes | None:
        """The state of `tokens` (read from disk into memory when it is only there)."""
        data = self.memory.get(tokens)
        if data is not None:
            self.memory.move_to_end(tokens)
            return data
        path = self.disk.get(tokens)
        if path is None:
            return None
        got = read_state(path)
        if got is None or got[0] != tokens:
            self.drop(tokens)
            return None
        self.put(tokens, got[1])
        return got[1]

    def drop(self, tokens: Tokens) -> None:
        """Forget a state (one that failed to load, say), on disk too."""
        self.memory.pop(tokens, None)
        path = self.disk.pop(tokens, None)
        if path is not None:
            path.unlink(missing_ok=True)
