"""`safellm data build`: a MIMIC-III folder → cohort + feature tables (Parquet) + cohort_report.json.

The output folder is written whole or not at all: everything goes to a temporary sibling folder that
replaces the output only after every step succeeded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from pydantic import BaseModel

from safellm.data import mimic
from safellm.data.cohorts import build_cohort, cohort_report
from safellm.data.events import export_events
from safellm.data.features import (
    aggregate_labs,
    assemble,
    compute_groups,
    pivot_labs,
    prejoin,
)
from safellm.fsutil import staged_dir
from safellm.tasks import TASKS

log = logging.getLogger(__name__)

REPORT_FILE = "cohort_report.json"
# Tables the cohort definitions read (staged first, so cohorts exist before the lab pass starts).
MANIFEST_FILE = "manifest.json"


class BuildResult(BaseModel):
    out_dir: Path
    source: Path
    report: dict[str, dict[str, float | int]]
    features: dict[str, list[str]]
    skipped_tables: list[str]
    seconds: float


def build_steps() -> list[str]:
    """Names of the progress steps, in order (for a progress bar's total)."""
    staged = [n for n, spec in mimic.TABLES.items() if spec.staged]
    return (
        [f"stage {n}" for n in staged]
        + [f"features {t}" for t in TASKS]
        + [f"events {t}" for t in TASKS]
        + ["notes"]
    )


def _source_fingerprint(folder: mimic.MimicFolder) -> str:
    h = hashlib.sha256()
    for name in sorted(folder.files):
        st = folder.files[name].stat()
        h.update(f"{name}:{folder.files[name].name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


@contextmanager
def _in_background(job: Callable[[], None]) -> Iterator[None]:
    """Run `job` on a thread while the body runs; wait for it, and re-raise its error, on exit."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            job()
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run, name="safellm-background")
    worker.start()
    try:
        yield
    finally:
        worker.join()
    if errors:
        raise errors[0]


def _export_notes(con: duckdb.DuckDBPyConnection, folder: mimic.MimicFolder, tmp: Path) -> None:
    """Notes (MIMIC's iserror rows dropped), read straight from the file, for evidence retrieval.

    `note_id` is NOTEEVENTS' own row_id, so a cited note keeps its id across rebuilds."""
    cols = "subject_id, hadm_id, chartdate, charttime, category, description, text"
    source = "raw_noteevents WHERE coalesce(iserror, '') = '' AND text IS NOT NULL"
    try:
        con.execute(
            f"COPY (SELECT row_id AS note_id, {cols} FROM {source} ORDER BY note_id) "
            f"TO '{mimic._sql_path(tmp / 'notes.parquet')}' (FORMAT parquet, COMPRESSION zstd)"
        )
    except duckdb.Error as exc:
        raise mimic.read_error(folder, "NOTEEVENTS", exc) from exc


def build_dataset(
    source: Path,
    out_dir: Path,
    *,
    memory_limit: str = "2GB",
    threads: int = 2,
    progress: Callable[[str], None] | None = None,
    notes: bool = True,
    events: bool = True,
    scratch: Path | None = None,
    inflate_above: int = mimic.INFLATE_ABOVE_BYTES,
    piece_bytes: int = mimic.CHUNK_BYTES,
) -> BuildResult:
    """Build every task's cohort and features from the MIMIC-III folder `source` into `out_dir`.

    `notes=False` and `events=False` skip the notes and event-sequence exports (the benchmark
    compares cohorts + features only).
    Gzipped tables over `inflate_above` bytes are inflated before reading (the staged ones in
    chunks of `piece_bytes` in memory, see `mimic.stage_table`), into `scratch` when they must be
    read from a file (by default: shared memory when it has room, else the output's spill
    folder)."""
    started = time.perf_counter()
    folder = mimic.open_mimic(source)  # validates presence and headers before any write
    out_dir = Path(out_dir)
    step = progress or (lambda _name: None)
    with staged_dir(out_dir) as tmp:
        spill = tmp / "spill"
        # in memory, spilling to `spill` beyond the memory cap
        con = mimic.connect(":memory:", memory_limit=memory_limit, threads=threads, temp_dir=spill)
        try:
            skipped = folder.absent_optional
            mimic.create_views(con, folder)
            inflate = mimic.Inflate(
                scratch
                or mimic.scratch_dir(
                    folder, spill, above_bytes=inflate_above, piece_bytes=piece_bytes
                ),
                inflate_above,
                piece_bytes,
            )
            # LABEVENTS, by far the largest table, is staged on a second connection while the other
            # tables are staged and every feature group but the labs is computed.
            labs_con = con.cursor()  # a second connection to the same database, made here
            with _in_background(lambda: mimic.stage_table(labs_con, folder, "LABEVENTS", inflate)):
                rest = [n for n, s in mimic.TABLES.items() if s.staged and n != "LABEVENTS"]
                mimic.stage(con, folder, rest, lambda n: step(f"stage {n}"), inflate)
                cohorts: dict[str, str] = {t: build_cohort(con, t) for t in TASKS}
                for task in TASKS:
                    compute_groups(con, task, cohorts[task])
                    prejoin(con, task, cohorts[task])
                if notes:
                    _export_notes(con, folder, tmp)
                step("notes")
            step("stage LABEVENTS")
            aggregate_labs(con, cohorts)  # one pass over the staged labs for all tasks
            pivot_labs(con, cohorts)
            report: dict[str, dict[str, float | int]] = {}
            features: dict[str, list[str]] = {}
            for task in TASKS:
                table, kept = assemble(con, task, cohorts[task], tuple(skipped))
                con.execute(
                    f"COPY {table} TO '{mimic._sql_path(tmp / f'{task}.parquet')}' "
                    f"(FORMAT parquet, COMPRESSION zstd)"
                )
                report[task] = cohort_report(con, task)
                features[task] = [f.name for f in kept]
                step(f"features {task}")
            for task in TASKS:
                if events:
                    export_events(
                        con,
                        cohorts[task],
                        tmp / f"events_{task}.parquet",
                        at_discharge=TASKS[task].at_discharge,
                    )
                step(f"events {task}")
        finally:
            con.close()
        shutil.rmtree(spill, ignore_errors=True)
        (tmp / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
        manifest = {
            "source": str(Path(source).resolve()),
            "source_fingerprint": _source_fingerprint(folder),
            "tables": {n: p.name for n, p in sorted(folder.files.items())},
            "skipped_tables": skipped,
            "targets": {t: s.target for t, s in TASKS.items()},
            "features": features,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return BuildResult(
        out_dir=out_dir,
        source=Path(source),
        report=report,
        features=features,
        skipped_tables=skipped,
        seconds=time.perf_counter() - started,
    )
