"""`safellm data ingest`: a MIMIC-III folder of `.csv[.gz]` → the same tables as Parquet, once.

Parsing CSV is most of a build's time at full size (CHARTEVENTS is ~33 GB of text). Ingesting pays
that once: every table the build knows is written as a folder `NAME.parquet` of zstd-compressed
parts, every column kept (typed as the build reads it: the columns the project uses typed, the
others text), so that `safellm data build --mimic-dir <ingested folder>` and the other readers
(FHIR and MEDS exports) read Parquet instead of CSV. Large gzipped tables are inflated piece by
piece (as the build does), one Parquet part per piece, so no table is ever whole in memory.

The output folder is written whole or not at all; `ingest.json` in it records the source, its
fingerprint, the rows of each table and the seconds spent.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
from pydantic import BaseModel

from safellm.data import mimic
from safellm.data.pieces import PIECE_BYTES, gz_pieces
from safellm.errors import UserInputError
from safellm.fsutil import staged_dir

INGEST_FILE = "ingest.json"


class IngestResult(BaseModel):
    out_dir: Path
    source: Path
    rows: dict[str, int]
    megabytes: dict[str, float]
    seconds: float


def ingest_steps() -> list[str]:
    """Names of the progress steps (one per table), in order."""
    return [f"ingest {n}" for n in mimic.TABLES]


def _copy(con: duckdb.DuckDBPyConnection, relation: str, dest: Path) -> int:
    """COPY `relation` to the Parquet file `dest`; the number of rows written."""
    done = con.execute(
        f"COPY (SELECT * FROM {relation}) TO '{mimic._sql_path(dest)}' "
        f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1000000)"
    ).fetchone()
    return int(done[0]) if done else 0


def ingest_dataset(
    source: Path,
    out_dir: Path,
    *,
    memory_limit: str = "2GB",
    threads: int = 2,
    progress: Callable[[str], None] | None = None,
    scratch: Path | None = None,
    piece_bytes: int = PIECE_BYTES,
    inflate_above: int = mimic.INFLATE_ABOVE_BYTES,
) -> IngestResult:
    """Write every table of the MIMIC-III folder `source` as Parquet into `out_dir` (see the
    module's docstring): gzipped tables over `inflate_above` bytes in pieces of `piece_bytes`,
    inflated into `scratch` (default: shared memory when it has room)."""
    started = time.perf_counter()
    folder = mimic.open_mimic(source)
    out_dir = Path(out_dir)
    parquet = [n for n, p in folder.files.items() if mimic.is_parquet(p)]
    if parquet:
        raise UserInputError(f"{source}: already ingested (Parquet tables: {', '.join(parquet)})")
    if out_dir.resolve() == Path(source).resolve():
        raise UserInputError(f"{out_dir}: give an output folder other than the source")
    step = progress or (lambda _name: None)
    rows: dict[str, int] = {}
    sizes: dict[str, float] = {}
    with staged_dir(out_dir) as tmp:
        spill = tmp / ".spill"
        con = mimic.connect(":memory:", memory_limit=memory_limit, threads=threads, temp_dir=spill)
        inflate = mimic.Inflate(
            scratch or mimic.scratch_dir(folder, spill, above_bytes=0, piece_bytes=piece_bytes),
            inflate_above,
            piece_bytes,
        )
        try:
            for name in mimic.TABLES:
                path = folder.files.get(name)
                if path is None:
                    step(f"ingest {name}")
                    continue
                dest = tmp / f"{name}.parquet"
                dest.mkdir()
                header, spec = folder.headers[name], mimic.TABLES[name]
                count = 0
                if inflate.applies(path):
                    inflate.scratch.mkdir(parents=True, exist_ok=True)
                    own = Path(
                        tempfile.mkdtemp(prefix=f"safellm-{name.lower()}-", dir=inflate.scratch)
                    )
                    try:
                        for i, piece in enumerate(gz_pieces(path, own, piece_bytes)):
                            relation = mimic._read_csv_sql(piece.path, header, spec)
                            try:
                                count += _copy(con, relation, dest / f"part-{i:05d}.parquet")
                            except duckdb.Error as exc:
                                raise mimic.read_error(
                                    folder, name, exc, piece.lines_before
                                ) from exc
                    finally:
                        shutil.rmtree(own, ignore_errors=True)
                else:
                    relation = mimic._read_csv_sql(path, header, spec)
                    try:
                        count = _copy(con, relation, dest / "part-00000.parquet")
                    except duckdb.Error as exc:
                        raise mimic.read_error(folder, name, exc) from exc
                rows[name] = count
                sizes[name] = round(sum(p.stat().st_size for p in dest.iterdir()) / 1e6, 1)
                step(f"ingest {name}")
        finally:
            con.close()
        shutil.rmtree(spill, ignore_errors=True)
        seconds = time.perf_counter() - started
        record = {
            "source": str(Path(source).resolve()),
            "tables": {n: p.name for n, p in sorted(folder.files.items())},
            "rows": rows,
            "megabytes": sizes,
            "seconds": round(seconds, 1),
            "ingested_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / INGEST_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return IngestResult(
        out_dir=out_dir, source=Path(source), rows=rows, megabytes=sizes, seconds=seconds
    )
