"""Calibration of note grounding, the use case behind `safellm guard calibrate` and the eval
suite's tuning step: score labelled (sentence, note) pairs by embedding similarity and, when asked,
by the local model as judge, and choose the thresholds that separate supported from unsupported."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from safellm.config import Settings
from safellm.llm.local import prepare_local_model
from safellm.llm.retrieval import Embedder, EmbeddingSupport, MiniLMEmbedder
from safellm.progress import Stage, by_count, quiet

if TYPE_CHECKING:
    from safellm.guard.calibrate import Calibration


def calibrate_grounding(
    settings: Settings,
    labelled: Path,
    *,
    judge: bool = True,
    embedder: Embedder | None = None,
    stage: Stage = quiet,
) -> Calibration:
    """Thresholds for the `note.unsupported` rule from the labelled pairs in `labelled`."""
    from safellm.guard.calibrate import calibrate, load_set

    data = load_set(labelled)
    support = EmbeddingSupport(embedder or MiniLMEmbedder())
    the_judge = None
    if judge:
        prepare_local_model(settings, stage)
        from safellm.llm.local import LocalJudge

        the_judge = LocalJudge(settings)
    n = sum(len(p.supported) + len(p.unsupported) for p in data.pairs)
    advance = stage("Scoring grounding pairs", n)
    return calibrate(data, support.similarity, the_judge, progress=by_count(advance))
