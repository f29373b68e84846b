"""What the benchmarks share: this checkout first on `sys.path` (so `safellm` is the one here and a
bench can import another's helpers), their command line, the built data they measure, and the
timing of single calls.

A bench runs as `python bench/NAME.py`, so bench/ is on `sys.path` and it can `from common import
...`; that import sorts before the first-party `safellm` ones.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

MIMIC_DEMO = ROOT.parent / "shared" / "data" / "mimic-iii-demo-1.4"
T = TypeVar("T")


def parser(doc: str | None) -> argparse.ArgumentParser:
    """A bench's command line, its module docstring as the help."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)


def add_data_options(ap: argparse.ArgumentParser) -> None:
    """--data / --mimic-dir and --task: the task table a bench measures (see `built_data`)."""
    ap.add_argument("--data", type=Path, help="a folder written by `safellm data build`")
    ap.add_argument("--mimic-dir", type=Path, default=MIMIC_DEMO)
    ap.add_argument("--task", default="readmission", choices=["readmission", "icu_mortality"])


def built_data(args: argparse.Namespace) -> Path:
    """`--data`, else `--mimic-dir` built into a temporary folder."""
    if args.data is not None:
        return Path(args.data)
    from safellm.data.build import build_dataset

    data = Path(tempfile.mkdtemp()) / "data"
    build_dataset(args.mimic_dir, data)
    return data


def timed(fn: Callable[[T], object], items: Sequence[T], reps: int) -> list[float]:
    """Milliseconds of each of `reps` calls of `fn`, on `items` in turn (from the first again
    when they run out)."""
    out = []
    for i in range(reps):
        item = items[i % len(items)]
        t = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - t) * 1000)
    return out


def summary(ms: list[float]) -> tuple[float, float]:
    """Median and 95th percentile."""
    return statistics.median(ms), float(np.percentile(ms, 95))
