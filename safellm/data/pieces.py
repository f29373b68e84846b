"""A gzipped CSV file inflated piece by piece, so that a table larger than memory is never whole.

`gz_pieces()` inflates the file with ISA-L on a background thread and writes it as a series of
plain CSV files of about `piece_bytes` each, every one starting with the file's header line and
ending at a record boundary (a newline outside double quotes, so a quoted field that spans lines is
never cut). The caller reads each piece (DuckDB parses a plain file in parallel) while the next one
is being inflated; at most three pieces exist at a time (one being read, one ready, one being
written), and each is deleted as soon as the caller is done with it.
"""

from __future__ import annotations

import queue
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from isal import igzip

from safellm.errors import DataFormatError

PIECE_BYTES = 128 * 1024 * 1024
_BLOCK = 8 * 1024 * 1024


@dataclass(frozen=True)
class Piece:
    """One piece: a plain CSV file with the header line, and how many physical lines of the
    original file (header included) come before its first data line."""

    path: Path
    lines_before: int


def record_cut(buf: bytes | bytearray, end: int | None = None) -> int:
    """The length of the longest prefix of `buf[:end]` that ends at a record boundary: just after a
    newline with an even number of double quotes before it (RFC 4180: a doubled quote inside a
    quoted field counts twice). 0 when there is none. `buf` must start at a record boundary."""
    cut = buf.rfind(b"\n", 0, len(buf) if end is None else end) + 1
    quotes = buf.count(b'"', 0, cut)
    while cut and quotes % 2:
        prev = buf.rfind(b"\n", 0, cut - 1) + 1
        quotes -= buf.count(b'"', prev, cut)
        cut = prev
    return cut


class _Stop(Exception):
    pass


def gz_pieces(path: Path, scratch: Path, piece_bytes: int = PIECE_BYTES) -> Iterator[Piece]:
    """The gzip file `path` as plain CSV pieces in the folder `scratch` (see the module's
    docstring). A file that is not gzip or is truncated raises a `DataFormatError` naming it; the
    pieces are deleted however the iteration ends (the caller may also delete each one)."""
    scratch.mkdir(parents=True, exist_ok=True)
    ready: queue.Queue[Piece | BaseException | None] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: Piece | BaseException | None) -> None:
        while True:
            if stop.is_set():
                raise _Stop
            try:
                ready.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            with igzip.open(path, "rb") as src:
                header = src.readline()
                lines = 1
                index = 0
                buf = bytearray()
                eof = False
                while True:
                    if not eof and len(buf) < piece_bytes:
                        block = src.read(_BLOCK)
                        if block:
                            buf += block
                            continue
                        eof = True
                    if eof and not buf and index > 0:
                        break
                    if eof and len(buf) <= piece_bytes:
                        cut = len(buf)
                    else:  # the last record boundary within a piece's size, else the first after
                        cut = record_cut(buf, piece_bytes) or record_cut(buf)
                        if not cut and not eof:  # one record longer than what is read: read on
                            block = src.read(_BLOCK)
                            buf += block
                            eof = not block
                            continue
                        cut = cut or len(buf)
                    piece = scratch / f"piece-{index:06d}.csv"
                    with open(piece, "wb") as out:
                        out.write(header)
                        out.write(memoryview(buf)[:cut])
                    put(Piece(piece, lines))
                    lines += buf.count(b"\n", 0, cut)
                    del buf[:cut]
                    index += 1
            put(None)
        except _Stop:
            return
        except (OSError, EOFError, zlib.error) as exc:
            try:
                put(DataFormatError(f"{path}: cannot decompress the file ({exc})"))
            except _Stop:
                return
        except BaseException as exc:  # anything else reaches the caller too
            try:
                put(exc)
            except _Stop:
                return

    worker = threading.Thread(target=produce, name=f"safellm-inflate-{path.name}", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            try:
                yield item
            finally:
                item.path.unlink(missing_ok=True)
    finally:
        stop.set()
        worker.join()
        for leftover in scratch.glob("piece-*.csv"):
            leftover.unlink(missing_ok=True)
