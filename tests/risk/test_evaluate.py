"""Bootstrap by patient, calibration slope/intercept, and the prior-correction offset."""

from __future__ import annotations

import numpy as np
import pytest

from safellm.risk.evaluate import (
    CLASSIFICATION,
    bootstrap,
    calibration_intercept,
    calibration_slope,
    shift_log_odds,
)


def test_bootstrap_resamples_patients_not_rows() -> None:
    """One patient with 50 rows and 50 patients with one row: a patient bootstrap draws whole
    patients, so resample sizes vary (a row bootstrap would always draw 100 rows)."""
    groups = np.array([0] * 50 + list(range(1, 51)))
    y = np.r_[np.ones(50), np.zeros(25), np.ones(25)]
    p = np.linspace(0.1, 0.9, 100)
    sizes: list[int] = []

    def size(yb: np.ndarray, pb: np.ndarray) -> float:
        sizes.append(len(yb))
        return float(len(yb))

    out = bootstrap({"n": size}, y, p, groups, n_boot=200, seed=1)
    # each replicate holds whole patients: 51 draws, each 1 row or the 50-row patient, so a size
    # is 51 + 49 k (k = draws of the big patient; the point estimate on all rows is 100 = k 1)
    assert all((s - 51) % 49 == 0 for s in sizes)
    assert len(set(sizes)) >= 3
    assert out["n"].point == 100
    assert out["n"].lo is not None and out["n"].lo < out["n"].hi  # type: ignore[operator]


def test_bootstrap_ci_contains_the_point_and_widens_with_fewer_patients() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400).astype(float)
    p = np.clip(y * 0.3 + rng.random(400) * 0.7, 0, 1)
    many = bootstrap(CLASSIFICATION, y, p, np.arange(400), n_boot=200)["auroc"]
    few = bootstrap(CLASSIFICATION, y, p, np.arange(400) // 20, n_boot=200)["auroc"]
    assert many.lo < many.point < many.hi  # type: ignore[operator]
    assert (few.hi - few.lo) > (many.hi - many.lo)  # type: ignore[operator]


def test_calibration_of_a_calibrated_model() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0.02, 0.98, 20000)
    y = (rng.random(20000) < p).astype(float)
    assert calibration_slope(y, p) == pytest.approx(1.0, abs=0.05)
    assert calibration_intercept(y, p) == pytest.approx(0.0, abs=0.05)


def test_prior_correction_restores_the_observed_rate() -> None:
    """Class weighting inflates risks; the fitted log-odds offset brings the mean back exactly."""
    rng = np.random.default_rng(5)
    true = rng.uniform(0.01, 0.4, 5000)
    y = (rng.random(5000) < true).astype(float)
    inflated = shift_log_odds(true, 1.5)  # what a class-weighted model would output
    offset = calibration_intercept(y, inflated)
    assert offset < -1.0
    corrected = shift_log_odds(inflated, offset)
    assert corrected.mean() == pytest.approx(y.mean(), abs=1e-6)
    assert np.array_equal(np.argsort(corrected), np.argsort(inflated))  # ranking unchanged
