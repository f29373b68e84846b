"""A MIMIC-III folder opened as DuckDB views, out of core.

Accepts both styles the data comes in: the demo release (lower-case headers, `.csv.gz`) and the full
release (upper-case, double-quoted headers and strings), compressed or plain `.csv`. Column names are
normalised to lower case. Every problem is reported as a `DataError` naming the file and what is wrong.

`open_mimic()` only checks that the files exist and that their headers carry the columns we need;
`stage()` then reads each table once into a DuckDB database (spilling to disk above the memory cap),
which is where unreadable files and unparsable values surface, still attributed to their file.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
from isal import igzip

from safellm.data.pieces import CHUNK_BYTES, Chunk, gz_chunks, write_piece
from safellm.errors import DataFormatError, MissingTableError, SchemaError

log = logging.getLogger(__name__)

# DuckDB types of the columns the project reads; every other column is read as text.
_T, _I, _F, _S = "TIMESTAMP", "BIGINT", "DOUBLE", "VARCHAR"


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: dict[str, str]
    required: bool = True
    # Optional row filter applied while staging (keeps huge tables small).
    where: str | None = None
    # Optional SELECT list used when staging (default: the typed columns as they are).
    select: str | None = None
    big_text: bool = False
    # Read straight from the file when needed instead of being staged (large free text).
    staged: bool = True
    # Columns read when the file has them, else null (e.g. CHARTEVENTS' ERROR flag, which
    # MetaVision sets and an export from another system may lack).
    optional_columns: dict[str, str] = field(default_factory=dict)


LAB_PANEL_ITEMIDS = (51222, 50912, 51006, 50983, 50971, 51301, 51265, 50813, 50882, 50931, 50862)
# CHARTEVENTS item ids (CareVue and MetaVision) of the vital signs used as features.
VITAL_ITEMIDS = (
    211,
    220045,
    51,
    442,
    455,
    6701,
    220179,
    220050,
    618,
    615,
    220210,
    224690,
    646,
    220277,
    223761,
    678,
)

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in [
        TableSpec("PATIENTS", {"subject_id": _I, "gender": _S, "dob": _T, "dod": _T}),
        TableSpec(
            "ADMISSIONS",
            {
                "subject_id": _I,
                "hadm_id": _I,
                "admittime": _T,
                "dischtime": _T,
                "deathtime": _T,
                "admission_type": _S,
                "admission_location": _S,
                "discharge_location": _S,
                "insurance": _S,
                "ethnicity": _S,
                "hospital_expire_flag": _I,
            },
        ),
        TableSpec(
            "ICUSTAYS",
            {
                "subject_id": _I,
                "hadm_id": _I,
                "icustay_id": _I,
                "first_careunit": _S,
                "intime": _T,
                "outtime": _T,
            },
        ),
        TableSpec("DIAGNOSES_ICD", {"subject_id": _I, "hadm_id": _I, "icd9_code": _S}),
        TableSpec("PROCEDURES_ICD", {"subject_id": _I, "hadm_id": _I, "icd9_code": _S}),
        TableSpec(
            "PRESCRIPTIONS",
            {"subject_id": _I, "hadm_id": _I, "startdate": _T, "drug": _S},
        ),
        TableSpec(
            "LABEVENTS",
            {
                "subject_id": _I,
                "hadm_id": _I,
                "itemid": _I,
                "charttime": _T,
                "valuenum": _F,
                "flag": _S,
            },
            where=f"itemid IN {LAB_PANEL_ITEMIDS}",
            # Labs are matched on patient and time, so the admission id is not kept.
            select="subject_id, itemid::INTEGER AS itemid, charttime, valuenum, "
            "coalesce(lower(flag) = 'abnormal', false) AS abnormal",
        ),
        TableSpec(
            "MICROBIOLOGYEVENTS",
            {"subject_id": _I, "hadm_id": _I, "chartdate": _T, "charttime": _T, "org_name": _S},
        ),
        TableSpec(
            "TRANSFERS",
            {"subject_id": _I, "hadm_id": _I, "eventtype": _S, "curr_careunit": _S, "intime": _T},
        ),
        TableSpec(
            "SERVICES",
            {"subject_id": _I, "hadm_id": _I, "transfertime": _T, "curr_service": _S},
        ),
        TableSpec(
            "CHARTEVENTS",
            {"subject_id": _I, "hadm_id": _I, "itemid": _I, "charttime": _T, "valuenum": _F},
            required=False,
            # rows MetaVision marks as errors (ERROR = 1) are not measurements
            where=f"itemid IN {VITAL_ITEMIDS} AND valuenum IS NOT NULL AND coalesce(error, 0) = 0",
            optional_columns={"error": _I},
            select="subject_id, itemid::INTEGER AS itemid, charttime, valuenum",
        ),
        TableSpec(
            "NOTEEVENTS",
            {
                "row_id": _I,
                "subject_id": _I,
                "hadm_id": _I,
                "chartdate": _T,
                "charttime": _T,
                "category": _S,
                "description": _S,
                "iserror": _S,
                "text": _S,
            },
            required=False,
            big_text=True,
            staged=False,
        ),
    ]
}


@dataclass
class MimicFolder:
    """The files found in a MIMIC-III folder, their (lower-case) headers and what is missing."""

    root: Path
    files: dict[str, Path] = field(default_factory=dict)
    headers: dict[str, list[str]] = field(default_factory=dict)

    @property
    def absent_optional(self) -> list[str]:
        return [n for n, s in TABLES.items() if not s.required and n not in self.files]


def _find_file(root: Path, name: str) -> Path | None:
    """`NAME.parquet` (a folder of Parquet parts written by `safellm data ingest`), else
    `NAME.csv.gz`, else `NAME.csv` (any case)."""
    parquet = sorted(
        p for p in root.iterdir() if p.is_dir() and p.name.lower() == f"{name}.parquet".lower()
    )
    if parquet:
        return parquet[0]
    wanted = {f"{name}.csv.gz".lower(), f"{name}.csv".lower()}
    hits = sorted(p for p in root.iterdir() if p.is_file() and p.name.lower() in wanted)
    # Prefer the compressed file when both exist (the plain one is often a half-finished gunzip).
    hits.sort(key=lambda p: not p.name.lower().endswith(".gz"))
    return hits[0] if hits else None


def is_parquet(path: Path) -> bool:
    """Whether `path` is a table ingested to Parquet (a folder `NAME.parquet` of parts)."""
    return path.is_dir() and path.name.lower().endswith(".parquet")


def parquet_parts(path: Path) -> list[Path]:
    return sorted(path.glob("*.parquet"))


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def read_header(path: Path) -> list[str]:
    """The lower-case column names in the first line of a CSV file (quoted or not), or of an
    ingested Parquet table."""
    if is_parquet(path):
        import pyarrow.parquet as pq

        parts = parquet_parts(path)
        if not parts:
            raise DataFormatError(f"{path}: an ingested table folder without Parquet parts")
        try:
            return [c.lower() for c in pq.read_schema(parts[0]).names]
        except (OSError, ValueError) as exc:
            raise DataFormatError(f"{path}: cannot read the Parquet schema ({exc})") from exc
    try:
        with _open_text(path) as fh:
            line = fh.readline()
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: cannot read the file ({exc})") from exc
    if not line.strip():
        raise DataFormatError(f"{path}: the file is empty (no header line)")
    row = next(csv.reader([line]))
    return [c.strip().lower() for c in row]


def open_mimic(root: Path) -> MimicFolder:
    """Find the tables in `root` and check their headers; raise a `DataError` naming the file."""
    root = Path(root)
    if not root.is_dir():
        raise MissingTableError(
            f"{root}: not a folder (expected a MIMIC-III folder of .csv[.gz] or ingested .parquet tables)"
        )
    folder = MimicFolder(root=root)
    missing: list[str] = []
    for name, spec in TABLES.items():
        path = _find_file(root, name)
        if path is None:
            if spec.required:
                missing.append(name)
            continue
        folder.files[name] = path
    if missing:
        hint = "the folder has no MIMIC-III tables at all" if not folder.files else "missing"
        raise MissingTableError(
            f"{root}: {hint}: required table(s) {', '.join(missing)} "
            f"(looked for NAME.csv.gz, NAME.csv or NAME.parquet, any case)"
        )
    for name, path in folder.files.items():
        header = read_header(path)
        lacking = [c for c in TABLES[name].columns if c not in header]
        if lacking:
            raise SchemaError(
                f"{path}: table {name} lacks required column(s) {', '.join(lacking)}; "
                f"found: {', '.join(header)}"
            )
        folder.headers[name] = header
    for name in folder.absent_optional:
        log.warning(
            "%s: optional table %s is absent; features that need it are skipped", root, name
        )
    return folder


def _read_csv_sql(path: Path, header: list[str], spec: TableSpec) -> str:
    """A relation reading the CSV file `path` (typed columns), or the ingested Parquet table
    `path`, with the spec's optional columns the file lacks added as nulls."""
    if is_parquet(path):
        relation = f"read_parquet('{_sql_path(path / '*.parquet')}')"
        lacking = [f"NULL::{t} AS {c}" for c, t in spec.optional_columns.items() if c not in header]
        return f"(SELECT *, {', '.join(lacking)} FROM {relation})" if lacking else relation
    types = {**spec.optional_columns, **spec.columns}
    cols = ", ".join(f"'{c}': '{types.get(c, _S)}'" for c in header)
    opts = "header=true, auto_detect=false, quote='\"', escape='\"', nullstr=''"
    if spec.big_text:
        opts += ", max_line_size=50000000"
    relation = f"read_csv('{_sql_path(path)}', columns={{{cols}}}, {opts})"
    lacking = [f"NULL::{t} AS {c}" for c, t in spec.optional_columns.items() if c not in header]
    if lacking:
        return f"(SELECT *, {', '.join(lacking)} FROM {relation})"
    return relation


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def connect(
    database: Path | str = ":memory:",
    *,
    memory_limit: str = "2GB",
    threads: int = 2,
    temp_dir: Path | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection capped in memory and threads, with extension auto-install off."""
    con = duckdb.connect(str(database))
    con.execute(f"SET memory_limit='{memory_limit}'")
    con.execute(f"SET threads={int(threads)}")
    con.execute("SET preserve_insertion_order=false")
    con.execute("SET enable_progress_bar=false")
    con.execute("SET autoinstall_known_extensions=false")
    con.execute("SET autoload_known_extensions=false")
    if temp_dir is not None:
        con.execute(f"SET temp_directory='{_sql_path(temp_dir)}'")
    return con


def create_views(con: duckdb.DuckDBPyConnection, folder: MimicFolder) -> None:
    """One view per table, named `raw_<table>` (lower case), reading the CSV lazily.

    An absent optional table gets an empty view with its typed columns, so every query (and the
    feature SQL) reads present and absent tables alike; the features that need them are dropped
    later.
    """
    for name, spec in TABLES.items():
        path = folder.files.get(name)
        if path is None:
            if spec.required:  # open_mimic has refused the folder already
                continue
            columns = {**spec.columns, **spec.optional_columns}
            typed = ", ".join(f"NULL::{t} AS {c}" for c, t in columns.items())
            body = f"SELECT {typed} WHERE false"
        else:
            body = f"SELECT * FROM {_read_csv_sql(path, folder.headers[name], spec)}"
        con.execute(f"CREATE OR REPLACE VIEW raw_{name.lower()} AS {body}")


def source_sql(folder: MimicFolder, name: str, relation: str | None = None) -> str:
    """A subquery reading table `name`'s needed columns straight from its file (not staged), or
    from `relation` (the same table read from elsewhere) when given."""
    spec = TABLES[name]
    where = f" WHERE {spec.where}" if spec.where else ""
    source = relation or f"raw_{name.lower()}"
    return f"(SELECT {spec.select or ', '.join(spec.columns)} FROM {source}{where})"


def stage(
    con: duckdb.DuckDBPyConnection,
    folder: MimicFolder,
    names: list[str],
    on_table: Callable[[str], None] | None = None,
    inflate: Inflate | None = None,
) -> None:
    """Read the named tables into DuckDB tables named like them (lower case), needed columns only
    (absent optional tables: empty, of the right shape; see `create_views`; for `inflate`, see
    `table_source`)."""
    for name in names:
        stage_table(con, folder, name, inflate)
        if on_table is not None:
            on_table(name)


# Gzipped tables larger than this are inflated before reading (see stage_table, table_source).
INFLATE_ABOVE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Inflate:
    """Inflate gzipped tables larger than `above_bytes` before reading: a staged table chunk by
    chunk in memory (`piece_bytes` each, see `stage_table`; a chunk DuckDB must read from a file
    goes to the folder `scratch`), a table read straight from its file (NOTEEVENTS) whole into
    `scratch`."""

    scratch: Path
    above_bytes: int = INFLATE_ABOVE_BYTES
    piece_bytes: int = CHUNK_BYTES

    def applies(self, path: Path | None) -> bool:
        return (
            path is not None
            and path.name.lower().endswith(".gz")
            and path.stat().st_size > self.above_bytes
        )


def stage_table(
    con: duckdb.DuckDBPyConnection,
    folder: MimicFolder,
    name: str,
    inflate: Inflate | None = None,
) -> None:
    """Read table `name` into a DuckDB table (see `stage`).

    DuckDB reads a `.csv.gz` on one thread with zlib. Given `inflate`, a large gzipped table is
    inflated with ISA-L (about 5x faster than zlib) on a background thread into chunks in memory
    (`pieces.gz_chunks`) while the previous chunk is parsed, so that the table is never inflated
    whole (CHARTEVENTS of the full release is ~33 GB of CSV): what is kept is the staged needed
    columns and rows, spilled to disk above the memory cap. Each chunk is parsed by Arrow's CSV
    reader straight from memory (no copy through a file); a chunk Arrow refuses is written to the
    scratch folder and read by DuckDB, whose errors name the file's line."""
    path = folder.files.get(name)
    table = name.lower()
    if inflate is None or not inflate.applies(path):
        with table_source(folder, name) as source:
            try:
                con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {source}")
            except duckdb.Error as exc:
                raise read_error(folder, name, exc) from exc
        return
    assert path is not None
    spec, header = TABLES[name], folder.headers[name]
    own: Path | None = None
    arrow = f"_arrow_{table}"
    try:
        verb = f"CREATE OR REPLACE TABLE {table} AS"
        for chunk in gz_chunks(path, inflate.piece_bytes):
            parsed = _arrow_chunk(chunk, header, spec)
            if parsed is not None:
                con.register(arrow, parsed)
                try:
                    con.execute(f"{verb} SELECT * FROM {source_sql(folder, name, arrow)}")
                finally:
                    con.unregister(arrow)
                    del parsed
            else:  # DuckDB reads it from a file: it takes what Arrow refused, or names the line
                if own is None:
                    inflate.scratch.mkdir(parents=True, exist_ok=True)
                    own = Path(tempfile.mkdtemp(prefix=f"safellm-{table}-", dir=inflate.scratch))
                piece = write_piece(chunk, own / "piece.csv")
                del chunk
                relation = _read_csv_sql(piece.path, header, spec)
                try:
                    con.execute(f"{verb} SELECT * FROM {source_sql(folder, name, relation)}")
                except duckdb.Error as exc:
                    raise read_error(folder, name, exc, piece.lines_before) from exc
                finally:
                    piece.path.unlink(missing_ok=True)
            verb = f"INSERT INTO {table}"
    finally:
        if own is not None:
            shutil.rmtree(own, ignore_errors=True)


# Arrow parses a chunk in blocks of this size on its threads
ARROW_BLOCK_BYTES = 4 * 1024 * 1024
_ARROW_TYPES = {_T: "timestamp[us]", _I: "int64", _F: "double", _S: "string"}


def _arrow_chunk(chunk: Chunk, header: list[str], spec: TableSpec) -> pa.Table | None:
    """The typed columns `spec` reads (its optional ones the file lacks added as nulls) of the
    records in `chunk`, parsed by Arrow's multi-threaded CSV reader straight from memory; None
    when Arrow refuses the chunk (a malformed row, a value it cannot parse, invalid UTF-8), which
    `stage_table` then hands to DuckDB: DuckDB's reading stays the reference, and its errors name
    the file's line."""
    types = {**spec.optional_columns, **spec.columns}
    wanted = [c for c in header if c in types]
    read = pacsv.ReadOptions(column_names=header, block_size=ARROW_BLOCK_BYTES)
    # Arrow splits its input into blocks at newlines; when a quoted value may hold one, it must
    # look for quotes first (slower), or a value cut in two may parse as two rows
    parse = pacsv.ParseOptions(quote_char='"', double_quote=True, newlines_in_values=chunk.quoted)
    convert = pacsv.ConvertOptions(
        include_columns=wanted,
        column_types={c: pa.type_for_alias(_ARROW_TYPES[types[c]]) for c in wanted},
        null_values=[""],
        true_values=[],
        false_values=[],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    try:
        table = pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(chunk.data)),
            read_options=read,
            parse_options=parse,
            convert_options=convert,
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        return None
    for c, t in spec.optional_columns.items():
        if c not in header:
            table = table.append_column(c, pa.nulls(len(table), pa.type_for_alias(_ARROW_TYPES[t])))
    return table


@contextmanager
def table_source(folder: MimicFolder, name: str, inflate: Inflate | None = None) -> Iterator[str]:
    """A subquery reading table `name`'s needed columns from its file (`source_sql`).

    Given `inflate`, a large gzipped table is first inflated whole into its scratch folder with
    ISA-L, so that DuckDB parses it in parallel; the plain copy is deleted on exit."""
    path = folder.files.get(name)
    if inflate is None or not inflate.applies(path):
        yield source_sql(folder, name)
        return
    assert path is not None
    inflate.scratch.mkdir(parents=True, exist_ok=True)
    own = Path(tempfile.mkdtemp(prefix=f"safellm-{name.lower()}-", dir=inflate.scratch))
    try:
        plain = gunzip(path, own / f"{name.lower()}.csv")
        yield source_sql(folder, name, _read_csv_sql(plain, folder.headers[name], TABLES[name]))
    finally:
        shutil.rmtree(own, ignore_errors=True)


SHM = Path("/dev/shm")


def scratch_dir(
    folder: MimicFolder,
    fallback: Path,
    shm: Path = SHM,
    above_bytes: int = INFLATE_ABOVE_BYTES,
    piece_bytes: int = CHUNK_BYTES,
) -> Path:
    """Where the tables over `above_bytes` are inflated: shared memory when it has room for
    what is written at once (a piece of each of two staged tables, a table read straight from its
    file whole) with 1 GiB to spare, else `fallback` (on disk). Shared memory spares the
    disk writes, which cost more than the decompression itself."""
    inflate = Inflate(fallback, above_bytes, piece_bytes)
    need = 0
    staged_big = 0
    for name, p in folder.files.items():
        if inflate.applies(p):
            if TABLES[name].staged:
                staged_big += 1
            else:
                need += inflated_size(p)
    need += min(staged_big, 2) * piece_bytes
    try:
        free = shutil.disk_usage(shm).free if shm.is_dir() else 0
    except OSError:
        free = 0
    return shm if free >= need + 1024**3 else fallback


def inflated_size(path: Path) -> int:
    """The size of gzip file `path` once inflated: its trailer's ISIZE (the size modulo 4 GiB), or
    ten times the compressed size when ISIZE is below the compressed size (it wrapped)."""
    size = path.stat().st_size
    if size < 18:
        return 0
    with open(path, "rb") as fh:
        fh.seek(-4, os.SEEK_END)
        isize = int.from_bytes(fh.read(4), "little")
    return isize if isize >= size else 10 * size


def gunzip(path: Path, dest: Path) -> Path:
    """Decompress the gzip file `path` into `dest` (ISA-L); a `DataFormatError` naming `path` when
    it is not gzip or is truncated (nothing is left at `dest` then)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with igzip.open(path, "rb") as src, open(dest, "wb") as out:
            while block := src.read(16 * 1024 * 1024):
                out.write(block)
    except (OSError, EOFError, zlib.error) as exc:
        dest.unlink(missing_ok=True)
        raise DataFormatError(f"{path}: cannot decompress the file ({exc})") from exc
    return dest


def read_error(
    folder: MimicFolder, name: str, exc: duckdb.Error, lines_before: int = 1
) -> DataFormatError:
    """A DuckDB failure while reading table `name`, as a DataFormatError naming its file (and the
    line in it: for a piece, `lines_before` is the number of the file's lines before the piece's
    first data line)."""
    return DataFormatError(
        f"{folder.files[name]}: cannot read table {name}: {_short(exc, lines_before - 1)}"
    )


def _short(exc: Exception, line_offset: int = 0) -> str:
    """DuckDB's message, cut to what a data owner needs (never the row's content: it may be PHI);
    `line_offset` is added to the line number DuckDB reports."""
    text = " ".join(str(exc).split())
    line = re.search(r"CSV Error on Line: (\d+)", text)
    conv = re.search(
        r'converting column "([^"]+)"\. Could not convert string "(.{0,40})[^"]*" to \'(\w+)\'',
        text,
    )
    where = f"line {int(line.group(1)) + line_offset:,}: " if line else ""
    if conv:
        col, value, typ = conv.groups()
        return f"{where}column {col}: cannot parse {value!r} as {typ}"
    text = re.sub(r"Original Line: .*?(?= Error when| Possible|$)", "", text)
    return (where + text.split(" Possible ")[0])[:300]
