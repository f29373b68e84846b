"""synthesize(): batches of patients, each from its own seeded generator, streamed into gzip
files in a temporary sibling folder that replaces the output folder only at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from safellm.data.synthetic.batch import Batch
from safellm.data.synthetic.chart import ChartMode
from safellm.data.synthetic.emit import emit_batch, write_dictionaries
from safellm.data.synthetic.ids import Ids
from safellm.data.synthetic.schema import TABLE_COLUMNS, SynthSummary
from safellm.data.synthetic.writer import GzCsv
from safellm.fsutil import staged_dir

_CHART_STREAM = 1  # CHARTEVENTS' generator: SeedSequence(seed, spawn_key=(batch, 1))


def _check_args(patients: int, seed: int, batch_size: int) -> None:
    """The one place where synthesize()'s arguments are validated."""
    if isinstance(patients, bool) or not isinstance(patients, (int, np.integer)) or patients < 1:
        raise ValueError(f"patients must be a whole number >= 1, got {patients!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")


def synthesize(
    out_dir: Path,
    patients: int,
    seed: int = 0,
    *,
    batch_size: int = 2000,
    progress: Callable[[int], None] | None = None,
    compresslevel: int = 1,
    chartevents: ChartMode | str = ChartMode.NONE,
) -> SynthSummary:
    """Write a synthetic MIMIC-III folder of `patients` patients to `out_dir` (replaced atomically).

    progress(k) is called after each batch with the number of patients just finished. The output
    is byte-identical for the same (patients, seed, batch_size, chartevents). `chartevents`: none
    (no CHARTEVENTS table), vitals (vital signs and GCS) or full (the real table's size; see
    `chart.py`); the other tables do not depend on it.
    """
    _check_args(patients, seed, batch_size)
    try:
        mode = ChartMode(chartevents)
    except ValueError:
        choices = ", ".join(m.value for m in ChartMode)
        raise ValueError(f"chartevents must be one of {choices}, got {chartevents!r}") from None
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: exists and is not a folder; refusing to replace it")
    with staged_dir(out_dir) as tmp:
        writers: dict[str, GzCsv] = {}
        try:
            for table, cols in TABLE_COLUMNS.items():
                if table == "CHARTEVENTS" and mode == ChartMode.NONE:
                    continue
                big = table == "CHARTEVENTS"
                writers[table] = GzCsv(tmp / f"{table}.csv.gz", cols, compresslevel, fast=big)
            ids = Ids(int(seed))
            n_adm = n_icu = 0
            for bi, start in enumerate(range(0, patients, batch_size)):
                n = min(batch_size, patients - start)
                rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(bi,)))
                chart_rng = np.random.default_rng(
                    np.random.SeedSequence(int(seed), spawn_key=(bi, _CHART_STREAM))
                )
                na, ni = emit_batch(Batch(rng, n), ids, writers, (chart_rng, mode))
                n_adm += na
                n_icu += ni
                if progress is not None:
                    progress(n)
            write_dictionaries(writers)
        finally:
            for w in writers.values():
                w.close()
        rows = {t: w.rows for t, w in writers.items()}
    return SynthSummary(
        out_dir=out_dir, patients=patients, admissions=n_adm, icustays=n_icu, rows=rows, seed=seed
    )
