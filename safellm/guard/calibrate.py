"""Thresholds of the note-grounding check set from labelled data, not guessed.

`evals/grounding.v1.yaml` lists note excerpts with sentences they support and sentences they do
not. For each pair we compute the embedding similarity (all-MiniLM-L6-v2) and, optionally, the
local model's P(YES) as a judge, then choose:

- the similarity threshold: the lowest value above which no unsupported sentence lies (so a
  sentence accepted on similarity alone is, on this set, never a false accept);
- the judge threshold, for the pairs below it: the one with the best balanced accuracy.

The rule the guard applies is `supported = similarity >= t_sim or judge >= t_judge`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError

from safellm.errors import ConfigError


class GroundingPair(BaseModel, extra="forbid"):
    evidence: str
    supported: list[str] = Field(default_factory=list)
    unsupported: list[str] = Field(default_factory=list)


class GroundingSet(BaseModel, extra="forbid"):
    name: str
    version: int
    changelog: str
    pairs: list[GroundingPair]


class Calibration(BaseModel):
    set: str
    n_supported: int
    n_unsupported: int
    similarity_threshold: float
    judge_threshold: float | None
    accuracy_similarity_only: float
    balanced_accuracy: float = Field(description="Of the combined rule, on this set.")
    false_accepts: int
    false_rejects: int


def load_set(path: Path) -> GroundingSet:
    try:
        return GroundingSet.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path}: invalid grounding set: {exc}") from exc


def _balanced(scores: list[tuple[float, bool]], t: float) -> float:
    pos = [s for s, y in scores if y]
    neg = [s for s, y in scores if not y]
    tpr = sum(s >= t for s in pos) / len(pos) if pos else 1.0
    tnr = sum(s < t for s in neg) / len(neg) if neg else 1.0
    return (tpr + tnr) / 2


def calibrate(
    data: GroundingSet,
    similarity: Callable[[str, str], float],
    judge: Callable[[str, str], float] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Calibration:
    rows: list[tuple[float, float | None, bool]] = []
    for pair in data.pairs:
        for claim, label in [(c, True) for c in pair.supported] + [
            (c, False) for c in pair.unsupported
        ]:
            sim = similarity(claim, pair.evidence)
            rows.append((sim, None, label))
            if progress is not None:
                progress(1)
    neg_sims = [s for s, _, y in rows if not y]
    t_sim = round(max(neg_sims) + 0.01, 2) if neg_sims else 0.0
    sim_only = sum((s >= t_sim) == y for s, _, y in rows) / len(rows)
    t_judge = None
    if judge is not None:
        rows = [
            (s, judge(c, p.evidence) if s < t_sim else None, y)
            for (s, _, y), (c, p) in zip(
                rows,
                [(c, p) for p in data.pairs for c in p.supported + p.unsupported],
                strict=True,
            )
        ]
        below = [(j, y) for s, j, y in rows if j is not None]
        candidates = sorted({round(j, 3) for j, _ in below})
        t_judge = (
            max(candidates, key=lambda t: (_balanced(below, t), -abs(t - 0.5))) if below else 0.5
        )

    def accept(s: float, j: float | None) -> bool:
        return s >= t_sim or (j is not None and t_judge is not None and j >= t_judge)

    fa = sum(accept(s, j) and not y for s, j, y in rows)
    fr = sum((not accept(s, j)) and y for s, j, y in rows)
    pos = sum(y for *_, y in rows)
    neg = len(rows) - pos
    balanced = ((pos - fr) / pos + (neg - fa) / neg) / 2 if pos and neg else 1.0
    return Calibration(
        set=f"{data.name}@v{data.version}",
        n_supported=pos,
        n_unsupported=neg,
        similarity_threshold=t_sim,
        judge_threshold=t_judge,
        accuracy_similarity_only=sim_only,
        balanced_accuracy=balanced,
        false_accepts=fa,
        false_rejects=fr,
    )
