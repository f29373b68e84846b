from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from safellm.risk.drift import (
    Thresholds,
    feature_drift,
    prediction_drift,
    psi_categorical,
    psi_numeric,
    quality_drift,
)

T = Thresholds()


def _batch(rng: np.random.Generator, n: int, age_shift: float = 0.0, cr_scale: float = 1.0):  # type: ignore[no-untyped-def]
    return pd.DataFrame(
        {
            "age": rng.normal(65 + age_shift, 12, n),
            "creatinine": rng.lognormal(0.1, 0.5, n) * cr_scale,
            "heart_rate": rng.normal(85, 15, n),
            "sodium": np.where(rng.random(n) < 0.2, np.nan, rng.normal(139, 4, n)),
            "discharge": rng.choice(["HOME", "SNF", "REHAB"], n, p=[0.6, 0.3, 0.1]),
        }
    )


def test_psi_is_zero_for_the_same_data_and_grows_with_the_shift() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, 5000)
    assert psi_numeric(x, x) < 1e-9
    shifts = [psi_numeric(x, x + d) for d in (0.1, 0.5, 1.0)]
    assert shifts == sorted(shifts) and shifts[0] < 0.1 < 0.25 < shifts[2]
    # missing values are a bin of their own: more of them is a shift
    y = x.copy()
    y[:2000] = np.nan
    assert psi_numeric(x, y) > 0.25
    assert psi_categorical(["a"] * 50 + ["b"] * 50, ["a"] * 50 + ["b"] * 50) < 1e-9
    assert psi_categorical(["a"] * 90 + ["b"] * 10, ["a"] * 10 + ["b"] * 80 + ["c"] * 10) > 1


def test_an_unshifted_batch_raises_no_alert() -> None:
    rng = np.random.default_rng(1)
    ref, cur = _batch(rng, 3000), _batch(rng, 2000)
    rows = feature_drift(ref, cur, ["age", "creatinine", "heart_rate", "sodium"], ["discharge"], T)
    assert not [r.feature for r in rows if r.alert], rows


def test_a_shifted_batch_alerts_on_the_shifted_features_only() -> None:
    rng = np.random.default_rng(2)
    ref, cur = _batch(rng, 3000), _batch(rng, 2000, age_shift=10, cr_scale=1.8)
    rows = feature_drift(ref, cur, ["age", "creatinine", "heart_rate", "sodium"], ["discharge"], T)
    assert {r.feature for r in rows if r.alert} == {"age", "creatinine"}
    assert rows[0].feature in {"age", "creatinine"} and rows[0].ks is not None


def test_prediction_drift() -> None:
    rng = np.random.default_rng(3)
    p = rng.beta(2, 8, 4000)
    assert not prediction_drift(p[:2000], p[2000:], T).alert
    assert prediction_drift(p[:2000], np.clip(p[2000:] + 0.15, 0, 1), T).alert


def test_quality_drift_from_the_audit_trail() -> None:
    t0 = datetime(2026, 1, 1)
    day = timedelta(days=1)
    steady = [(t0 + i * day / 10, i % 10 != 0, i % 10 == 0) for i in range(60)]  # 10 % fallback
    q = quality_drift(steady, day, T)
    assert not q.alert and len(q.windows) == 6
    assert abs(q.baseline_fallback_rate - 0.1) < 1e-9  # type: ignore[operator]
    worse = steady + [(t0 + 6 * day + i * day / 10, i % 2 == 0, i % 2 == 1) for i in range(10)]
    q = quality_drift(worse, day, T)
    assert q.alert and "fallback rate 50%" in q.why and q.latest_fallback_rate == 0.5
    assert not quality_drift([], day, T).alert
    assert "one window only" in quality_drift(steady[:5], day, T).why
