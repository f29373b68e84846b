from __future__ import annotations

import csv
import gzip
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def demo_copy(mimic_demo_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the demo folder (csv.gz files only)."""
    dst = tmp_path / "mimic"
    dst.mkdir()
    for f in mimic_demo_dir.glob("*.csv.gz"):
        shutil.copy(f, dst / f.name)
    return dst


def append_rows(path: Path, rows: list[dict[str, object]]) -> None:
    """Append rows to a (gzipped) MIMIC CSV, filling unnamed columns with empty fields."""
    with gzip.open(path, "rt", newline="") as fh:
        header = next(csv.reader(fh))
    cols = [c.strip().lower() for c in header]
    with gzip.open(path, "at", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        for r in rows:
            w.writerow(["" if r.get(c) is None else r.get(c) for c in cols])


@pytest.fixture
def append() -> Callable[[Path, list[dict[str, object]]], None]:
    return append_rows
