"""Atomic file-system writes: a reader sees the old content or the new, never half of either."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary sibling of `path` for any writer (Parquet, a binary format) to write to:
    renamed over `path` when the body succeeds, removed when it fails. Its name starts with a
    dot, so globs of the folder's files do not see it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_open(path: Path, newline: str | None = None) -> Iterator[TextIO]:
    """A UTF-8 text file to write: a temporary sibling, renamed over `path` when the body
    succeeds, removed when it fails."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline=newline) as fh:
        yield fh


def atomic_write_text(path: Path, text: str) -> Path:
    """Write `text` to a temporary sibling, then rename it over `path`."""
    with atomic_open(path) as fh:
        fh.write(text)
    return Path(path)


def replace_dir(new: Path, target: Path) -> None:
    """Put folder `new` in place of `target`. The old content is moved aside first and removed
    only after the swap; if the swap fails it is moved back."""
    if not target.exists():
        new.rename(target)
        return
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    target.rename(old)
    try:
        new.rename(target)
    except BaseException:
        old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_dir(target: Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of `target` to fill; when the body succeeds it replaces
    `target` (see `replace_dir`), when it fails it is removed and `target` is left as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
