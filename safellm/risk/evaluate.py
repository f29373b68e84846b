"""Metrics with patient-level bootstrap 95 % confidence intervals; calibration slope/intercept."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import BaseModel, Field
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
)


class Estimate(BaseModel):
    """A point estimate with its bootstrap 95 % CI (percentile, resampling patients)."""

    point: float | None
    lo: float | None
    hi: float | None
    n_boot: int
    # the interval a decision corrected for multiple comparisons uses (see `bootstrap`)
    judge_lo: float | None = Field(default=None, exclude=True)
    judge_hi: float | None = Field(default=None, exclude=True)

    def fmt(self, digits: int = 3) -> str:
        if self.point is None:
            return "n/a"
        if self.lo is None or self.hi is None:
            return f"{self.point:.{digits}f}"
        return f"{self.point:.{digits}f} ({self.lo:.{digits}f}–{self.hi:.{digits}f})"


Metric = Callable[[np.ndarray, np.ndarray], float]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _irls(X: np.ndarray, y: np.ndarray, offset: np.ndarray, iters: int = 50) -> np.ndarray:
    """Unpenalised logistic regression by Newton steps (with an offset)."""
    beta = np.zeros(X.shape[1])
    for _ in range(iters):
        eta = np.clip(X @ beta + offset, -30, 30)
        mu = 1 / (1 + np.exp(-eta))
        w = np.maximum(mu * (1 - mu), 1e-9)
        grad = X.T @ (y - mu)
        hess = X.T @ (X * w[:, None]) + 1e-9 * np.eye(X.shape[1])
        step = np.linalg.solve(hess, grad)
        beta += step
        if np.max(np.abs(step)) < 1e-8:
            break
    return beta


def calibration_slope(y: np.ndarray, p: np.ndarray) -> float:
    """Slope of logit(P(y=1)) = a + b·logit(p); 1 is ideal, < 1 means predictions too extreme."""
    lp = _logit(p)
    X = np.column_stack([np.ones_like(lp), lp])
    return float(_irls(X, y, np.zeros_like(lp))[1])


def calibration_intercept(y: np.ndarray, p: np.ndarray) -> float:
    """Calibration-in-the-large: a in logit(P(y=1)) = a + logit(p); 0 is ideal."""
    lp = _logit(p)
    return float(_irls(np.ones((len(lp), 1)), y, lp)[0])


CLASSIFICATION: dict[str, Metric] = {
    "auroc": lambda y, p: float(roc_auc_score(y, p)),
    "auprc": lambda y, p: float(average_precision_score(y, p)),
    "brier": lambda y, p: float(brier_score_loss(y, p)),
    "calibration_slope": calibration_slope,
    "calibration_intercept": calibration_intercept,
    "prevalence": lambda y, p: float(np.mean(y)),
}

REGRESSION: dict[str, Metric] = {
    "mae": lambda y, p: float(mean_absolute_error(y, p)),
    "rmse": lambda y, p: float(np.sqrt(np.mean((y - p) ** 2))),
    "r2": lambda y, p: float(r2_score(y, p)),
}


def _defined(name: str, y: np.ndarray) -> bool:
    if name in ("auroc", "auprc", "calibration_slope", "calibration_intercept"):
        return 0 < y.sum() < len(y)
    return len(y) > 1


def bootstrap(
    metrics: dict[str, Metric],
    y: np.ndarray,
    pred: np.ndarray,
    groups: np.ndarray,
    n_boot: int = 200,
    seed: int = 0,
    judge_alpha: float | None = None,
) -> dict[str, Estimate]:
    """Each metric with a 95 % percentile CI from resampling patients (groups) with replacement.
    With `judge_alpha`, each Estimate also carries the (1 - judge_alpha) interval of the same
    resamples (`judge_lo`, `judge_hi`), for a decision corrected for multiple comparisons."""
    y = np.asarray(y, dtype=float)
    pred = np.asarray(pred, dtype=float)
    uniq, inv = np.unique(groups, return_inverse=True)
    rows_of = [np.flatnonzero(inv == g) for g in range(len(uniq))]
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {m: [] for m in metrics}
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), len(uniq))
        idx = np.concatenate([rows_of[g] for g in pick])
        yb, pb = y[idx], pred[idx]
        for name, fn in metrics.items():
            if _defined(name, yb):
                samples[name].append(fn(yb, pb))
    out: dict[str, Estimate] = {}
    for name, fn in metrics.items():
        point = fn(y, pred) if _defined(name, y) else None
        s = np.asarray(samples[name])
        s = s[np.isfinite(s)]
        lo, hi = _interval(s, 0.05)
        est = Estimate(point=point, lo=lo, hi=hi, n_boot=len(s))
        if judge_alpha is not None:
            est.judge_lo, est.judge_hi = _interval(s, judge_alpha)
        out[name] = est
    return out


def _interval(samples: np.ndarray, alpha: float) -> tuple[float | None, float | None]:
    if len(samples) < 20:
        return None, None
    return (
        float(np.percentile(samples, 100 * alpha / 2)),
        float(np.percentile(samples, 100 * (1 - alpha / 2))),
    )


def observed_expected_p(y: np.ndarray, p: np.ndarray) -> float:
    """Two-sided p-value of the number of outcomes `sum(y)` if each unit's outcome were a
    Bernoulli draw of its predicted risk (the exact Poisson-binomial distribution): a test of
    calibration in the large that stays exact with few outcomes."""
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    dist = np.zeros(len(p) + 1)
    dist[0] = 1.0
    for q in p:  # the distribution of the count, one unit at a time
        dist[1:] = dist[1:] * (1 - q) + dist[:-1] * q
        dist[0] *= 1 - q
    k = round(float(np.sum(y)))
    lower, upper = float(dist[: k + 1].sum()), float(dist[k:].sum())
    return min(1.0, 2 * min(lower, upper))


def shift_log_odds(p: np.ndarray, offset: float) -> np.ndarray:
    """Probabilities with `offset` added on the log-odds scale (identity when offset is 0)."""
    if offset == 0.0:
        return p
    q = np.clip(p, 1e-12, 1 - 1e-12)
    return 1 / (1 + np.exp(-(np.log(q / (1 - q)) + offset)))
