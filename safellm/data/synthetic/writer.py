"""Streaming CSV writer: values become strings in Arrow, rows are joined and streamed into gzip
(mtime 0, so the same rows give the same bytes).
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from isal import igzip

from safellm.data.synthetic.numeric import Arr

_NEEDS_QUOTES = r'[",\r\n]'


def s_int(x: Arr, mask: Arr | None = None) -> pa.Array:
    return pa.array(np.asarray(x, dtype=np.int64), mask=mask).cast(pa.string())


def s_float(x: Arr, decimals: int, mask: Arr | None = None) -> pa.Array:
    v = np.round(np.asarray(x, dtype=np.float64), decimals) + 0.0
    return pa.array(v, mask=mask).cast(pa.string())


def s_ts(t: Arr, mask: Arr | None = None) -> pa.Array:
    v = np.asarray(t, dtype=np.int64).astype("datetime64[s]")
    return pa.array(v, mask=mask).cast(pa.string())


def _s_cat(labels: Sequence[str | None], idx: Arr, mask: Arr | None = None) -> pa.Array:
    return pc.take(
        pa.array(list(labels), pa.string()), pa.array(np.asarray(idx, np.int64), mask=mask)
    )


def quoted(arr: pa.Array) -> pa.Array:
    """CSV-quote the values that need it (comma, quote, newline), as the demo release does."""
    needs = pc.fill_null(pc.match_substring_regex(arr, _NEEDS_QUOTES), False)
    if not pc.any(needs).as_py():
        return arr
    q = pc.binary_join_element_wise('"', pc.replace_substring(arr, '"', '""'), '"', "")
    return pc.if_else(needs, q, arr)


class GzCsv:
    """A gzipped CSV file written in blocks of Arrow columns. `fast`: compressed with ISA-L
    (several times faster than zlib, for the largest table; also deterministic)."""

    def __init__(self, path: Path, columns: Sequence[str], level: int, fast: bool = False) -> None:
        self.columns = tuple(columns)
        self.rows = 0
        self._raw = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._gz: gzip.GzipFile | igzip.IGzipFile
        if fast:
            self._gz = igzip.IGzipFile(
                filename="", mode="wb", compresslevel=min(level, 3), fileobj=self._raw, mtime=0
            )
        else:
            self._gz = gzip.GzipFile(
                filename="", mode="wb", compresslevel=level, fileobj=self._raw, mtime=0
            )
        self._gz.write((",".join(self.columns) + "\n").encode())

    def write(self, cols: dict[str, pa.Array]) -> None:
        if tuple(cols) != self.columns:
            raise AssertionError(f"columns {tuple(cols)} != {self.columns}")
        n = len(cols[self.columns[0]])
        if n == 0:
            return
        arrays = [c if isinstance(c, pa.Array) else pa.array(c) for c in cols.values()]
        if any(len(a) != n for a in arrays):
            raise AssertionError("columns of unequal length")
        line = pc.binary_join_element_wise(
            *arrays, ",", null_handling="replace", null_replacement=""
        )
        line = pc.binary_join_element_wise(line, "", "\n")
        bufs = line.buffers()
        offs = np.frombuffer(bufs[1], dtype=np.int32, count=len(line) + 1, offset=line.offset * 4)
        self._gz.write(memoryview(bufs[2])[int(offs[0]) : int(offs[-1])])
        self.rows += n

    def close(self) -> None:
        try:
            self._gz.close()
        finally:
            self._raw.close()


def _csv_label(s: str | None) -> str | None:
    if s is not None and any(ch in s for ch in '",\r\n'):
        return '"' + s.replace('"', '""') + '"'
    return s


def s_lab(labels: Sequence[str | None], idx: Arr, mask: Arr | None = None) -> pa.Array:
    """Categorical column from a small label list (labels CSV-quoted where needed)."""
    return _s_cat([_csv_label(s) for s in labels], idx, mask)


def s_lab_null(labels: Sequence[str | None], idx: Arr) -> pa.Array:
    """Like s_lab, null where idx is not an index of labels (-1, or len(labels) for "none")."""
    idx = np.asarray(idx)
    return s_lab(labels, np.clip(idx, 0, len(labels) - 1), (idx < 0) | (idx >= len(labels)))


def s_take(strings: pa.Array, idx: Arr) -> pa.Array:
    """strings[idx], null where idx < 0."""
    idx = np.asarray(idx, dtype=np.int64)
    if len(strings) == 0:
        return pa.nulls(len(idx), pa.string())
    return pc.take(strings, pa.array(np.maximum(idx, 0), mask=idx < 0))


def row_ids(w: GzCsv, n: int) -> pa.Array:
    return s_int(w.rows + 1 + np.arange(n))
