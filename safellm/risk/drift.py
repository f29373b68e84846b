"""Drift between a reference (the training data) and a current batch: per feature, of the
predictions, and of the explanations' quality over time (from the audit trail).

    PSI   population stability index over the reference's deciles (numeric; missing values a bin
          of their own) or categories; ≥ 0.25 is the usual "significant shift"
    KS    two-sample Kolmogorov–Smirnov statistic and p-value (numeric, missing values dropped)

A feature alerts when its PSI reaches `psi_alert`, or when its KS statistic reaches `ks_min_stat`
with a p-value below `ks_alpha` divided by the number of features (Bonferroni). The guard's
fallback and failure rates alert when the latest window's rate exceeds the earlier windows' by
more than `quality_rate_increase`.

Concept drift (`performance_drift`): once outcomes are known, the model's AUROC, calibration slope
and intercept and Brier score per calendar month (or quarter, year) of prediction time, each with
a patient-level bootstrap 95 % CI. With k periods judged, each decision is made at level 0.05 / k
(Bonferroni, so that a year of months does not alert by chance): a period alerts when its AUROC is
more than `auroc_drop` below the model's validation AUROC and its (1 - 0.05 / k) bootstrap interval
lies wholly below that AUROC; when its calibration intercept is beyond ±`intercept_alert` and the
number of outcomes is unlikely under the predicted risks (exact Poisson-binomial test, p < 0.05 / k;
percentile intervals of the intercept are too narrow with a handful of outcomes); or when its Brier
score exceeds the validation Brier score by more than `brier_increase` with its interval wholly
above it. Periods of fewer than `min_window_units` units, or without both outcomes, are shown but
not judged.

Pure functions of values; thresholds come from the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from safellm.risk.evaluate import CLASSIFICATION, Estimate, bootstrap, observed_expected_p

EPS = 1e-4


class Thresholds(BaseModel):
    psi_alert: float = Field(default=0.25, gt=0)
    ks_alpha: float = Field(default=0.01, gt=0, lt=1)
    ks_min_stat: float = Field(default=0.1, gt=0, le=1)
    quality_rate_increase: float = Field(default=0.1, gt=0, le=1)
    auroc_drop: float = Field(default=0.05, gt=0, lt=1)
    intercept_alert: float = Field(default=0.5, gt=0)
    brier_increase: float = Field(default=0.03, gt=0, lt=1)
    min_window_units: int = Field(default=30, ge=2)


class FeatureDrift(BaseModel):
    feature: str
    kind: str
    psi: float
    ks: float | None = None
    ks_p: float | None = None
    n_reference: int
    n_current: int
    alert: bool
    why: str = ""


class QualityWindow(BaseModel):
    start: str
    end: str
    n: int
    fallback_rate: float
    failure_rate: float = Field(description="Answers whose first draft failed the guard.")


class QualityDrift(BaseModel):
    windows: list[QualityWindow]
    baseline_fallback_rate: float | None
    latest_fallback_rate: float | None
    baseline_failure_rate: float | None
    latest_failure_rate: float | None
    alert: bool
    why: str = ""


def _fractions(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    p = counts / total if total else np.zeros_like(counts, dtype=float)
    return np.clip(p, EPS, None)


def _psi(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sum((q - p) * np.log(q / p)))


def psi_numeric(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    r, c = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    edges = np.unique(np.quantile(r, np.linspace(0, 1, bins + 1))) if r.size else np.array([0.0])
    inner = edges[1:-1]

    def counts(x: np.ndarray, all_: np.ndarray) -> np.ndarray:
        binned = np.bincount(np.searchsorted(inner, x, side="right"), minlength=inner.size + 1)
        return np.append(binned, np.isnan(all_).sum()).astype(float)

    return _psi(_fractions(counts(r, ref)), _fractions(counts(c, cur)))


def psi_categorical(reference: Sequence[object], current: Sequence[object]) -> float:
    ref = pd.Series(reference, dtype="object").fillna("<missing>")
    cur = pd.Series(current, dtype="object").fillna("<missing>")
    cats = sorted(set(ref) | set(cur), key=str)
    p = ref.value_counts().reindex(cats, fill_value=0).to_numpy(dtype=float)
    q = cur.value_counts().reindex(cats, fill_value=0).to_numpy(dtype=float)
    return _psi(_fractions(p), _fractions(q))


def ks(reference: np.ndarray, current: np.ndarray) -> tuple[float, float] | None:
    from scipy.stats import ks_2samp

    r = np.asarray(reference, dtype=float)
    c = np.asarray(current, dtype=float)
    r, c = r[~np.isnan(r)], c[~np.isnan(c)]
    if r.size < 2 or c.size < 2:
        return None
    res = ks_2samp(r, c)
    return float(res.statistic), float(res.pvalue)


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    t: Thresholds,
) -> list[FeatureDrift]:
    """One row per feature, the largest PSI first."""
    n_tests = max(len(numeric), 1)
    out = []
    for f in numeric:
        r = reference[f].to_numpy(dtype=float)
        c = current[f].to_numpy(dtype=float)
        p = psi_numeric(r, c)
        k = ks(r, c)
        why = []
        if p >= t.psi_alert:
            why.append(f"PSI {p:.2f} ≥ {t.psi_alert:g}")
        if k is not None and k[0] >= t.ks_min_stat and k[1] < t.ks_alpha / n_tests:
            why.append(f"KS {k[0]:.2f} (p {k[1]:.1e})")
        out.append(
            FeatureDrift(
                feature=f,
                kind="numeric",
                psi=p,
                ks=None if k is None else k[0],
                ks_p=None if k is None else k[1],
                n_reference=len(r),
                n_current=len(c),
                alert=bool(why),
                why="; ".join(why),
            )
        )
    for f in categorical:
        p = psi_categorical(list(reference[f]), list(current[f]))
        out.append(
            FeatureDrift(
                feature=f,
                kind="categorical",
                psi=p,
                n_reference=len(reference),
                n_current=len(current),
                alert=p >= t.psi_alert,
                why=f"PSI {p:.2f} ≥ {t.psi_alert:g}" if p >= t.psi_alert else "",
            )
        )
    return sorted(out, key=lambda d: -d.psi)


def prediction_drift(reference: np.ndarray, current: np.ndarray, t: Thresholds) -> FeatureDrift:
    """The model's outputs on the two batches, as one more 'feature'."""
    (row,) = feature_drift(
        pd.DataFrame({"prediction": reference}),
        pd.DataFrame({"prediction": current}),
        ["prediction"],
        [],
        t,
    )
    return row


def quality_drift(
    records: Sequence[tuple[datetime, bool, bool]], window: timedelta, t: Thresholds
) -> QualityDrift:
    """`records`: (time, guard passed on the first draft, fallback used) per answer. The latest
    window against all earlier ones."""
    if not records:
        return QualityDrift(
            windows=[],
            baseline_fallback_rate=None,
            latest_fallback_rate=None,
            baseline_failure_rate=None,
            latest_failure_rate=None,
            alert=False,
            why="no answers in the audit trail",
        )
    rows = sorted(records, key=lambda r: r[0])
    first = rows[0][0]
    windows: list[list[tuple[datetime, bool, bool]]] = []
    edges: list[datetime] = []
    for r in rows:
        k = int((r[0] - first) / window)
        while len(windows) <= k:
            edges.append(first + len(windows) * window)
            windows.append([])
        windows[k].append(r)
    out = [
        QualityWindow(
            start=edges[i].isoformat(timespec="seconds"),
            end=(edges[i] + window).isoformat(timespec="seconds"),
            n=len(w),
            fallback_rate=sum(x[2] for x in w) / len(w),
            failure_rate=sum(not x[1] for x in w) / len(w),
        )
        for i, w in enumerate(windows)
        if w
    ]
    if len(out) < 2:
        latest = out[-1]
        return QualityDrift(
            windows=out,
            baseline_fallback_rate=None,
            latest_fallback_rate=latest.fallback_rate,
            baseline_failure_rate=None,
            latest_failure_rate=latest.failure_rate,
            alert=False,
            why="one window only: nothing to compare with",
        )
    base = [x for w in windows[:-1] for x in w]
    last = windows[-1] or [x for w in windows[-2:] for x in w]
    b_fb = sum(x[2] for x in base) / len(base)
    b_fail = sum(not x[1] for x in base) / len(base)
    l_fb = sum(x[2] for x in last) / len(last)
    l_fail = sum(not x[1] for x in last) / len(last)
    why = []
    if l_fb - b_fb > t.quality_rate_increase:
        why.append(f"fallback rate {l_fb:.0%} vs {b_fb:.0%} before")
    if l_fail - b_fail > t.quality_rate_increase:
        why.append(f"guard failure rate {l_fail:.0%} vs {b_fail:.0%} before")
    return QualityDrift(
        windows=out,
        baseline_fallback_rate=b_fb,
        latest_fallback_rate=l_fb,
        baseline_failure_rate=b_fail,
        latest_failure_rate=l_fail,
        alert=bool(why),
        why="; ".join(why),
    )


PERIODS = {"month": "M", "quarter": "Q", "year": "Y"}


class PerformanceWindow(BaseModel):
    start: str  # first day of the period (ISO date)
    n: int
    positives: int
    expected: float = Field(description="Outcomes the predicted risks expect (their sum).")
    outcomes_p: float | None = Field(
        default=None,
        description="Two-sided p-value of the outcomes given the predicted risks (exact).",
    )
    auroc: Estimate | None = None
    calibration_slope: Estimate | None = None
    calibration_intercept: Estimate | None = None
    brier: Estimate | None = None
    alert: bool = False
    why: str = ""


class PerformanceDrift(BaseModel):
    period: str
    validation_auroc: float | None
    validation_brier: float | None
    windows: list[PerformanceWindow]
    alert: bool
    why: str = ""


def _window_alerts(
    w: PerformanceWindow, auroc: float | None, brier: float | None, t: Thresholds, alpha: float
) -> list[str]:
    """Why the period alerts (nothing: it does not), each decision at level `alpha`."""
    why = []
    a, c, b = w.auroc, w.calibration_intercept, w.brier
    level = f"{1 - alpha:.1%} interval"
    if (
        auroc is not None
        and a is not None
        and a.point is not None
        and a.judge_hi is not None
        and a.point < auroc - t.auroc_drop
        and a.judge_hi < auroc
    ):
        why.append(
            f"AUROC {a.point:.3f} ({level} to {a.judge_hi:.3f}) vs {auroc:.3f} at validation"
        )
    if (
        c is not None
        and c.point is not None
        and w.outcomes_p is not None
        and abs(c.point) > t.intercept_alert
        and w.outcomes_p < alpha
    ):
        why.append(
            f"calibration intercept {c.point:+.2f}: {w.positives} outcomes where the risks expect "
            f"{w.expected:.1f} (p = {w.outcomes_p:.1e})"
        )
    if (
        brier is not None
        and b is not None
        and b.point is not None
        and b.judge_lo is not None
        and b.point > brier + t.brier_increase
        and b.judge_lo > brier
    ):
        why.append(
            f"Brier {b.point:.3f} ({level} from {b.judge_lo:.3f}) vs {brier:.3f} at validation"
        )
    return why


def performance_drift(
    times: Sequence[datetime] | pd.Series,
    y: np.ndarray,
    p: np.ndarray,
    groups: np.ndarray,
    t: Thresholds,
    *,
    validation_auroc: float | None,
    validation_brier: float | None,
    period: str = "month",
    n_boot: int = 200,
    seed: int = 0,
) -> PerformanceDrift:
    """A classifier's performance per `period` of prediction time (`times`), against its
    validation figures. `y`: outcomes (0/1), `p`: predicted risks, `groups`: patient ids (the
    bootstrap resamples patients)."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {sorted(PERIODS)}, not {period!r}")
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    groups = np.asarray(groups)
    when = pd.to_datetime(pd.Series(list(times) if not isinstance(times, pd.Series) else times))
    starts = when.dt.to_period(PERIODS[period]).dt.start_time.to_numpy()
    metrics = {
        k: CLASSIFICATION[k]
        for k in ("auroc", "calibration_slope", "calibration_intercept", "brier")
    }
    periods = [np.flatnonzero(starts == start) for start in np.unique(starts)]

    def judged_(idx: np.ndarray) -> bool:
        return len(idx) >= t.min_window_units and 0 < y[idx].sum() < len(idx)

    alpha = 0.05 / max(1, sum(judged_(idx) for idx in periods))  # Bonferroni over the periods
    windows = []
    for k, idx in enumerate(periods):
        yw, pw = y[idx], p[idx]
        w = PerformanceWindow(
            start=pd.Timestamp(starts[idx[0]]).date().isoformat(),
            n=len(idx),
            positives=int(yw.sum()),
            expected=float(pw.sum()),
        )
        if judged_(idx):
            w.outcomes_p = observed_expected_p(yw, pw)
            est = bootstrap(
                metrics, yw, pw, groups[idx], n_boot=n_boot, seed=seed + k, judge_alpha=alpha
            )
            w.auroc, w.calibration_slope = est["auroc"], est["calibration_slope"]
            w.calibration_intercept, w.brier = est["calibration_intercept"], est["brier"]
            reasons = _window_alerts(w, validation_auroc, validation_brier, t, alpha)
            w.alert, w.why = bool(reasons), "; ".join(reasons)
        windows.append(w)
    judged = [w for w in windows if w.auroc is not None]
    alerting = [w for w in windows if w.alert]
    if not judged:
        why = (
            f"no {period} has {t.min_window_units} or more units with both outcomes: "
            "nothing to judge"
        )
    elif alerting:
        why = (
            f"{len(alerting)} of {len(judged)} {period}s degraded, first {alerting[0].start}: "
            + (alerting[0].why)
        )
    else:
        why = ""
    return PerformanceDrift(
        period=period,
        validation_auroc=validation_auroc,
        validation_brier=validation_brier,
        windows=windows,
        alert=bool(alerting),
        why=why,
    )
