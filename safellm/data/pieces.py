"""A gzipped CSV file inflated piece by piece, so that a table larger than memory is never whole.

`gz_chunks()` inflates the file with ISA-L on a background thread into memory, as a series of
chunks of about `piece_bytes` each, every one ending at a record boundary (a newline outside double
quotes, so a quoted field that spans lines is never cut). The caller parses each chunk while the
next one is being inflated; at most three chunks exist at a time (one being read, one ready, one
being filled). `gz_pieces()` writes the same chunks as plain CSV files, each starting with the
file's header line, for readers that need a file (each is deleted as soon as the caller is done
with it).
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

PIECE_BYTES = 128 * 1024 * 1024  # a piece written to a file (`safellm data ingest`)
# a chunk parsed in memory (the build): as fast as larger ones here, and a third of their memory
CHUNK_BYTES = 32 * 1024 * 1024
_BUFFERS = 3  # one being parsed, one ready, one being filled
_READ = 8 * 1024 * 1024  # per read (a larger one costs the decompressor a buffer as large)


def count_lines(source: Path, offset: int) -> int:
    """The number of newlines in the first `offset` bytes of the gzip file `source` once inflated
    (inflating it again: only an error's line number needs it)."""
    lines = 0
    with igzip.open(source, "rb") as src:
        while offset > 0 and (block := src.read(min(_READ, offset))):
            lines += block.count(b"\n")
            offset -= len(block)
    return lines


class _InFile:
    """Where in the gzip file `source` something starts: at byte `offset` of the inflated file."""

    source: Path
    offset: int

    @property
    def lines_before(self) -> int:
        """How many physical lines of the file (header included) come before `offset`."""
        return count_lines(self.source, self.offset)


@dataclass(frozen=True)
class Chunk(_InFile):
    """One chunk in memory: the file's header line and whole records (`data`, without the header)
    of the gzip file `source`, the first of them at byte `offset` of the inflated file."""

    header: bytes
    data: memoryview
    source: Path
    offset: int
    quoted: bool = True  # whether `data` may hold a double quote (False: it holds none)


@dataclass(frozen=True)
class Piece(_InFile):
    """One piece: a plain CSV file with the header line, holding the records of the gzip file
    `source` from byte `offset` of the inflated file on."""

    path: Path
    source: Path
    offset: int


def record_cut(buf: bytes | bytearray, end: int | None = None) -> int:
    """The length of the longest prefix of `buf[:end]` that ends at a record boundary: just after a
    newline with an even number of double quotes before it (RFC 4180: a doubled quote inside a
    quoted field counts twice). 0 when there is none. `buf` must start at a record boundary."""
    cut = buf.rfind(b"\n", 0, len(buf) if end is None else end) + 1
    if buf.find(b'"', 0, cut) < 0:  # no quote at all (find is much faster than count)
        return cut
    quotes = buf.count(b'"', 0, cut)
    while cut and quotes % 2:
        prev = buf.rfind(b"\n", 0, cut - 1) + 1
        quotes -= buf.count(b'"', prev, cut)
        cut = prev
    return cut


class _Stop(Exception):
    pass


def gz_chunks(path: Path, piece_bytes: int = PIECE_BYTES) -> Iterator[Chunk]:
    """The gzip file `path` as chunks of whole records in memory (see the module's docstring); a
    header-only file gives one empty chunk. A chunk's data is valid until the next chunk is asked
    for (its buffer is then refilled: three buffers serve the whole file, so memory is not mapped
    afresh for every chunk). A file that is not gzip or is truncated raises a `DataFormatError`
    naming it."""
    ready: queue.Queue[tuple[Chunk, bytearray] | BaseException | None] = queue.Queue(maxsize=1)
    free: queue.Queue[bytearray] = queue.Queue()
    stop = threading.Event()
    made = [0]

    def wait_for(q: queue.Queue, item: object = None, put: bool = False) -> object:
        while True:
            if stop.is_set():
                raise _Stop
            try:
                if put:
                    q.put(item, timeout=0.1)
                    return None
                return q.get(timeout=0.1)
            except (queue.Full, queue.Empty):
                continue

    def buffer() -> bytearray:
        if made[0] < _BUFFERS:
            made[0] += 1
            return bytearray(piece_bytes)
        return wait_for(free)  # type: ignore[return-value]

    def grown(old: bytearray, size: int, keep: bytes | bytearray) -> bytearray:
        """A larger buffer starting with `keep`, in place of `old` (the pool makes a new one
        when `old` was one of its own)."""
        if len(old) == piece_bytes:
            made[0] -= 1
        bigger = bytearray(size)
        bigger[: len(keep)] = keep
        return bigger

    def produce() -> None:
        try:
            with igzip.open(path, "rb") as src:
                header = src.readline()
                offset = len(header)
                carry = b""  # the start of a record cut off at the end of the previous chunk
                eof = False
                first = True
                while first or carry or not eof:
                    first = False
                    buf = buffer()
                    n = len(carry)
                    if n > len(buf) // 2:  # what is left of a long record: room to read on
                        buf = grown(buf, 2 * n, b"")
                    view = memoryview(buf)
                    view[:n] = carry
                    while True:
                        while not eof and n < len(buf):
                            got = src.readinto(view[n : n + _READ])
                            eof = not got
                            n += got
                        cut = n if eof else record_cut(buf, n)
                        if cut or eof:
                            break
                        # one record longer than the buffer: a larger one, for this chunk only
                        view.release()
                        buf = grown(buf, 2 * len(buf), buf[:n])
                        view = memoryview(buf)
                    carry = bytes(view[cut:n])
                    quoted = buf.find(b'"', 0, cut) >= 0
                    chunk = Chunk(header, view[:cut], path, offset, quoted)
                    wait_for(ready, (chunk, buf), put=True)
                    offset += cut
            wait_for(ready, None, put=True)
        except _Stop:
            return
        except (OSError, EOFError, zlib.error) as exc:
            try:
                wait_for(
                    ready, DataFormatError(f"{path}: cannot decompress the file ({exc})"), True
                )
            except _Stop:
                return
        except BaseException as exc:  # anything else reaches the caller too
            try:
                wait_for(ready, exc, put=True)
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
            chunk, buf = item
            yield chunk
            if len(buf) == piece_bytes:  # a pooled buffer (not one grown for a long record)
                free.put(buf)
    finally:
        stop.set()
        worker.join()


def write_piece(chunk: Chunk, dest: Path) -> Piece:
    """`chunk` as a plain CSV file `dest` that starts with the header line."""
    with open(dest, "wb") as out:
        out.write(chunk.header)
        out.write(chunk.data)
    return Piece(dest, chunk.source, chunk.offset)


def gz_pieces(path: Path, scratch: Path, piece_bytes: int = PIECE_BYTES) -> Iterator[Piece]:
    """The gzip file `path` as plain CSV pieces in the folder `scratch` (see the module's
    docstring). A file that is not gzip or is truncated raises a `DataFormatError` naming it; the
    pieces are deleted however the iteration ends (the caller may also delete each one)."""
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        for index, chunk in enumerate(gz_chunks(path, piece_bytes)):
            piece = write_piece(chunk, scratch / f"piece-{index:06d}.csv")
            del chunk
            try:
                yield piece
            finally:
                piece.path.unlink(missing_ok=True)
    finally:
        for leftover in scratch.glob("piece-*.csv"):
            leftover.unlink(missing_ok=True)
