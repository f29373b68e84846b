"""Performance per period of prediction time (`safellm.risk.drift.performance_drift`): a model
that stops discriminating alerts on AUROC, one that stops being calibrated alerts on the intercept
and Brier score, small periods are not judged, and each alert names the month it starts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from safellm.risk.drift import Thresholds, performance_drift


def _months(n_months: int, per_month: int, seed: int = 0) -> tuple[pd.Series, np.ndarray]:
    rng = np.random.default_rng(seed)
    times = pd.Series(
        [
            pd.Timestamp(2150, 1, 1) + pd.DateOffset(months=m) + pd.Timedelta(hours=int(h))
            for m in range(n_months)
            for h in rng.integers(0, 24 * 27, per_month)
        ]
    )
    p = rng.uniform(0.02, 0.6, n_months * per_month)
    return times, p


def _run(times: pd.Series, y: np.ndarray, p: np.ndarray, **kw):  # type: ignore[no-untyped-def]
    return performance_drift(
        times,
        y,
        p,
        np.arange(len(y)),
        Thresholds(),
        validation_auroc=kw.pop("auroc", 0.75),
        validation_brier=kw.pop("brier", None),
        n_boot=kw.pop("n_boot", 200),
        **kw,
    )


def test_a_calibrated_model_does_not_alert() -> None:
    times, p = _months(6, 150)
    y = (np.random.default_rng(1).random(len(p)) < p).astype(int)
    drift = _run(times, y, p, brier=float(np.mean((p - y) ** 2)))
    assert [w.start for w in drift.windows] == [f"2150-{m:02d}-01" for m in range(1, 7)]
    assert all(w.n == 150 for w in drift.windows)
    assert not drift.alert and drift.why == ""
    for w in drift.windows:
        assert w.auroc is not None and w.auroc.lo is not None and w.auroc.hi is not None
        assert w.auroc.lo <= w.auroc.point <= w.auroc.hi  # type: ignore[operator]


def test_outcomes_unrelated_to_the_risk_from_month_four_alert_on_auroc() -> None:
    times, p = _months(6, 150)
    rng = np.random.default_rng(2)
    y = (rng.random(len(p)) < p).astype(int)
    later = np.arange(len(p)) >= 3 * 150
    y[later] = (rng.random(int(later.sum())) < p[later].mean()).astype(int)  # same rate
    drift = _run(times, y, p)
    assert [w.alert for w in drift.windows] == [False] * 3 + [True] * 3
    assert all("AUROC" in w.why for w in drift.windows[3:])
    assert drift.alert and drift.why.startswith("3 of 6 months degraded, first 2150-04-01")


def test_outcomes_above_the_predicted_risk_alert_on_calibration() -> None:
    times, p = _months(4, 200)
    rng = np.random.default_rng(3)
    q = np.where(np.arange(len(p)) >= 2 * 200, np.clip(p * 1.6 + 0.1, 0, 1), p)
    y = (rng.random(len(p)) < q).astype(int)
    drift = _run(times, y, p, brier=float(np.mean((p[:400] - y[:400]) ** 2)))
    assert [w.alert for w in drift.windows] == [False, False, True, True]
    for w in drift.windows[2:]:
        assert "calibration intercept +" in w.why
        assert w.calibration_intercept is not None and w.calibration_intercept.lo > 0  # type: ignore[operator]


def test_small_or_one_sided_periods_are_shown_but_not_judged() -> None:
    times, p = _months(3, 10)
    y = np.zeros(len(p), dtype=int)
    drift = _run(times, y, p)
    assert len(drift.windows) == 3 and all(w.auroc is None for w in drift.windows)
    assert not drift.alert and "nothing to judge" in drift.why


def test_periods_quarter_and_year() -> None:
    times, p = _months(6, 40)
    y = (np.random.default_rng(4).random(len(p)) < p).astype(int)
    assert [w.start for w in _run(times, y, p, period="quarter").windows] == [
        "2150-01-01",
        "2150-04-01",
    ]
    assert [w.n for w in _run(times, y, p, period="year").windows] == [240]
    with pytest.raises(ValueError, match="period"):
        _run(times, y, p, period="week")


def test_the_outcome_count_test_is_the_binomial_for_equal_risks() -> None:
    from scipy.stats import binom

    from safellm.risk.evaluate import observed_expected_p

    p = np.full(60, 0.13)
    for k in (0, 3, 8, 15, 60):
        y = np.r_[np.ones(k), np.zeros(60 - k)]
        want = min(1.0, 2 * min(binom.cdf(k, 60, 0.13), binom.sf(k - 1, 60, 0.13)))
        assert observed_expected_p(y, p) == pytest.approx(want, rel=1e-9, abs=1e-15)
    # unequal risks: the mean of the count is their sum; its tails still add up to one
    q = np.linspace(0.01, 0.5, 40)
    assert observed_expected_p(np.r_[np.ones(10), np.zeros(30)], q) == pytest.approx(1.0, abs=0.2)
    assert observed_expected_p(np.zeros(40), q) < 1e-4
