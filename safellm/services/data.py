"""Data building, the use case behind `safellm data synth`, `safellm data build` and the start of
`safellm demo`: a synthetic hospital (reused when one of the same size and seed exists), then
cohorts, features, notes and event sequences from it or from a MIMIC-III folder; the one-time
Parquet ingest behind `safellm data ingest`; and the export
behind `safellm data export` (the built hospital as a MEDS dataset)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from safellm.config import Settings
from safellm.progress import Stage, by_count, by_step, quiet

if TYPE_CHECKING:
    import pandas as pd

    from safellm.data.build import BuildResult
    from safellm.data.ingest import IngestResult
    from safellm.data.meds import MedsSummary
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
    chartevents: str | None = None,
) -> Hospital:
    """A synthetic hospital in `out_dir` (replaced), or in the settings' synthetic folder, where
    one already written for the same size, seed and CHARTEVENTS mode is reused. `chartevents`:
    none, vitals or full [`settings.synthetic_chartevents`]."""
    from safellm.data.synthetic import synthesize

    chart = chartevents or settings.synthetic_chartevents
    if out_dir is None:
        suffix = "" if chart == "none" else f"-chart{chart}"
        target = settings.synthetic_dir / f"n{patients}-s{seed}{suffix}"
        if (target / "ADMISSIONS.csv.gz").exists():  # written atomically, so complete: reuse it
            return Hospital(target, None)
    else:
        target = out_dir
    advance = stage(f"Synthesising {patients:,} patients", patients)
    return Hospital(
        target,
        synthesize(target, patients, seed, progress=by_count(advance), chartevents=chart),
    )


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


def ingest_data(
    settings: Settings, source: Path, out_dir: Path, *, stage: Stage = quiet
) -> IngestResult:
    """Every table of the MIMIC-III folder `source` as Parquet in `out_dir` (one-time; a build
    from `out_dir` then reads Parquet instead of CSV)."""
    from safellm.data.ingest import ingest_dataset, ingest_steps

    advance = stage("Ingesting tables to Parquet", len(ingest_steps()))
    return ingest_dataset(
        source,
        out_dir,
        memory_limit=settings.duckdb_memory_limit,
        threads=settings.duckdb_threads,
        progress=by_step(advance),
    )


SPLIT_OF_FOLD = {0: "held_out", 1: "tuning"}  # the other folds: train


def subject_splits(data_dir: Path, task: str, *, seed: int, n_splits: int = 5) -> pd.DataFrame:
    """One MEDS split per subject of `task`'s cohort, from the outer folds `safellm train` uses
    for it (same data, seed and fold count): fold 0 is `held_out`, fold 1 `tuning`, the rest
    `train`. Patient-grouped, so a subject is in one split only."""
    import pandas as pd

    from safellm.risk.dataset import load_task
    from safellm.risk.train import outer_folds

    td = load_task(data_dir, task)
    folds = outer_folds(td, seed=seed, n_splits=n_splits)
    frame = pd.DataFrame({"subject_id": td.groups.astype("int64"), "fold": folds})
    frame = frame.drop_duplicates("subject_id")
    frame["split"] = [SPLIT_OF_FOLD.get(int(f), "train") for f in frame["fold"]]
    return frame[["subject_id", "split"]].reset_index(drop=True)


def export_data(
    settings: Settings,
    data_dir: Path | None,
    out_dir: Path,
    *,
    split_task: str = "readmission",
    shard_subjects: int | None = None,
    stage: Stage = quiet,
) -> MedsSummary:
    """The MEDS dataset of the hospital `data_dir` [`settings.data_dir`] was built from, with
    its cohorts as labels and subject splits from `split_task`'s folds, in `out_dir`."""
    import json

    from safellm.data.build import MANIFEST_FILE
    from safellm.data.meds import SHARD_SUBJECTS, export_meds
    from safellm.errors import ArtifactError
    from safellm.tasks import task_spec

    task_spec(split_task)
    data_dir = Path(data_dir or settings.data_dir)
    manifest_path = data_dir / MANIFEST_FILE
    if not manifest_path.exists():
        raise ArtifactError(
            f"{manifest_path} not found: build the data first (safellm data build --mimic-dir DIR "
            f"| --synthetic N --out {data_dir})"
        )
    manifest = json.loads(manifest_path.read_text())
    source = Path(manifest["source"])
    if not source.exists():
        raise ArtifactError(
            f"{source}, the MIMIC-III folder {data_dir} was built from, is gone: the MEDS export "
            f"reads the hospital's events from it"
        )
    advance = stage("Exporting MEDS", 4)
    step = by_step(advance)
    splits = subject_splits(data_dir, split_task, seed=settings.seed)
    step("splits")
    return export_meds(
        source,
        data_dir,
        out_dir,
        splits,
        dataset_name=source.name,
        dataset_version=manifest.get("source_fingerprint", ""),
        memory_limit=settings.duckdb_memory_limit,
        threads=settings.duckdb_threads,
        shard_subjects=shard_subjects or SHARD_SUBJECTS,
        progress=step,
    )
