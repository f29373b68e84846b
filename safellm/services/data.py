"""Data building, the use case behind `safellm data synth`, `safellm data build` and the start of
`safellm demo`: a synthetic hospital (reused when one of the same size and seed exists), then
cohorts, features, notes and event sequences from it or from a MIMIC-III folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from safellm.config import Settings
from safellm.progress import Stage, by_count, by_step, quiet

if TYPE_CHECKING:
    from safellm.data.build import BuildResult
    from safellm.data.synthetic.generator import SynthSummary


@dataclass
class Hospital:
    folder: Path
    summary: SynthSummary | None  # None: an existing hospital was reused


def synthesize_hospital(
    settings: Settings,
    patients: int,
    out_dir: Path | None = None,
    seed: int = 0,
    stage: Stage = quiet,
) -> Hospital:
    """A synthetic hospital in `out_dir` (replaced), or in the settings' synthetic folder, where
    one already written for the same size and seed is reused."""
    from safellm.data.synthetic import synthesize

    if out_dir is None:
        target = settings.synthetic_dir / f"n{patients}-s{seed}"
        if (target / "ADMISSIONS.csv.gz").exists():  # written atomically, so complete: reuse it
            return Hospital(target, None)
    else:
        target = out_dir
    advance = stage(f"Synthesising {patients:,} patients", patients)
    return Hospital(target, synthesize(target, patients, seed, progress=by_count(advance)))


def build_data(
    settings: Settings,
    source: Path,
    out_dir: Path | None = None,
    *,
    notes: bool = True,
    events: bool = True,
    stage: Stage = quiet,
) -> BuildResult:
    """Cohorts + features (and notes, event sequences) of `source` in `out_dir`
    [`settings.data_dir`]."""
    from safellm.data.build import build_dataset, build_steps

    advance = stage("Building cohorts and features", len(build_steps()))
    return build_dataset(
        source,
        out_dir or settings.data_dir,
        memory_limit=settings.duckdb_memory_limit,
        threads=settings.duckdb_threads,
        progress=by_step(advance),
        notes=notes,
        events=events,
    )
