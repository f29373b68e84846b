"""Time constants and small vectorised helpers (draws, rounding of timestamps, sorted groups)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Arr = npt.NDArray[Any]

DAY = 86400
HOUR = 3600
T2100 = int(np.datetime64("2100-01-01T00:00:00", "s").astype(np.int64))
T2187 = int(np.datetime64("2187-01-01T00:00:00", "s").astype(np.int64))
T2200 = int(np.datetime64("2200-12-31T00:00:00", "s").astype(np.int64))
YEAR = 365.2425 * DAY
HORIZON = 12 * 365 * DAY  # a patient's admissions span at most ~12 years, as in MIMIC


def sig(x: Arr) -> Arr:
    return 1.0 / (1.0 + np.exp(-x))


def choice(rng: np.random.Generator, n: int, p: Sequence[float]) -> Arr:
    """n draws of an index with probabilities p (renormalised)."""
    cum = np.cumsum(np.asarray(p, dtype=float))
    idx = np.searchsorted(cum / cum[-1], rng.random(n), side="right")
    return np.minimum(idx, len(cum) - 1).astype(np.int64)


def choice_or_none(rng: np.random.Generator, n: int, p: Sequence[float]) -> Arr:
    """n draws of an index with probabilities p; len(p) (none of them) gets the rest, 1 - sum(p)."""
    return choice(rng, n, (*p, 1 - sum(p)))


def choice_rows(rng: np.random.Generator, w: Arr) -> Arr:
    """One index per row of the non-negative weight matrix w."""
    cum = np.cumsum(w, axis=1)
    u = rng.random(w.shape[0]) * cum[:, -1]
    idx = (cum <= u[:, None]).sum(axis=1)
    return np.minimum(idx, w.shape[1] - 1).astype(np.int64)


def gumbel_argmax(rng: np.random.Generator, logits: Arr) -> Arr:
    return np.argmax(logits + rng.gumbel(size=logits.shape), axis=1).astype(np.int64)


def lognormal(rng: np.random.Generator, log_mean: Arr | float, sd: float, n: int) -> Arr:
    return np.exp(log_mean + sd * rng.standard_normal(n))


def secs(days: Arr) -> Arr:
    return np.round(np.asarray(days) * DAY).astype(np.int64)


def floor_minute(t: Arr) -> Arr:
    return (np.asarray(t) // 60) * 60


def floor_day(t: Arr) -> Arr:
    return (np.asarray(t) // DAY) * DAY


def run_starts(*keys: Arr) -> Arr:
    """True where a row of the sorted keys differs from the row before (the first row: True)."""
    n = len(keys[0])
    if n == 0:
        return np.zeros(0, bool)
    change = keys[0][1:] != keys[0][:-1]
    for k in keys[1:]:
        change = change | (k[1:] != k[:-1])
    return np.r_[True, change]


def run_ends(group: Arr) -> Arr:
    """True where a row of the sorted group differs from the row after (the last row: True)."""
    if len(group) == 0:
        return np.zeros(0, bool)
    return np.r_[group[1:] != group[:-1], True]


def first_in_group(group: Arr) -> Arr:
    """Index of the first row of each row's run of equal (sorted) group values."""
    n = len(group)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    return np.maximum.accumulate(np.where(run_starts(group), np.arange(n), 0))


def rank_in_group(group: Arr) -> Arr:
    """0-based position of each element within its run of equal (sorted) group values."""
    return (np.arange(len(group)) - first_in_group(group)).astype(np.int64)


def prev_any(group: Arr, flag: Arr) -> Arr:
    """True where an earlier row of the same (sorted) group has flag set."""
    f = flag.astype(np.int64)
    c = np.cumsum(f)
    first = first_in_group(group)
    base = c[first] - f[first]
    return (c - f - base) > 0
