"""Class-imbalance strategies on shared grouped folds (synthetic, fast)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from threadpoolctl import threadpool_limits

from safellm.data.catalogue import FEATURES
from safellm.errors import UserInputError
from safellm.risk.dataset import TaskData
from safellm.risk.imbalance import (
    METRICS,
    STRATEGIES,
    ImbalanceReport,
    _pipeline,
    best_f1_threshold,
    compare_imbalance,
    imbalance_table,
    plot_imbalance_metrics,
    plot_pr_curves,
)
from safellm.risk.train import outer_splitter

FEATS = ["elix_count", "prior_adm_12m", "age", "sex", "insurance"]


def _td(task: str = "readmission", seed: int = 0, n: int = 400, n_patients: int = 300) -> TaskData:
    rng = np.random.default_rng(seed)
    subject = np.concatenate([np.arange(n_patients), rng.integers(0, n_patients, n - n_patients)])
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    x1[rng.random(n) < 0.05] = np.nan  # missing values must not break any strategy
    lin = -3.2 + 1.5 * np.nan_to_num(x1) + 1.0 * x2  # about 10 % positives
    frame = pd.DataFrame(
        {
            "unit_id": np.arange(n),
            "subject_id": subject,
            "readmit_30d": (rng.random(n) < 1 / (1 + np.exp(-lin))).astype(int),
            "los_days": rng.gamma(2.0, 2.0, n),
            "elix_count": x1,
            "prior_adm_12m": x2,
            "age": rng.uniform(20, 90, n),
            "sex": rng.choice(["F", "M"], n),
            "insurance": rng.choice(["Medicare", "Private", "Medicaid"], n),
        }
    )
    return TaskData(task, frame, [FEATURES[f] for f in FEATS], "test")


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """One BLAS/OpenMP thread: tiny fits are slowest when threads oversubscribe a busy machine."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def report(_one_thread: None) -> ImbalanceReport:
    return compare_imbalance(_td(), model="logreg", seed=0, n_splits=5, n_boot=40)


def test_strategies_metrics_and_folds(report: ImbalanceReport) -> None:
    td = _td()
    assert [s.strategy for s in report.strategies] == list(STRATEGIES)
    assert 0.05 < report.prevalence < 0.2 and report.positives == int(td.y.sum())
    # the same grouped outer folds as train_task
    expected = np.full(len(td.y), -1)
    for k, (_, test) in enumerate(
        outer_splitter("classification", 5, 0).split(td.X, td.y, td.groups)
    ):
        expected[test] = k
    assert report.folds == expected.tolist()
    for s in report.strategies:
        assert set(s.metrics) == set(METRICS)
        auc = s.metrics["auroc"]
        assert auc.point is not None and auc.point > 0.75  # real signal
        for e in s.metrics.values():
            if e.point is not None and e.lo is not None and e.hi is not None:
                assert e.lo <= e.point + 1e-12 and e.point <= e.hi + 1e-12
        rec, prec = s.pr_curve.recall, s.pr_curve.precision
        assert len(rec) == len(prec) > 10
        assert rec[0] == pytest.approx(1.0) and rec[-1] == 0.0
    table = imbalance_table(report)
    assert len(table) == len(STRATEGIES) * len(METRICS)


def test_resampling_raises_recall_and_hurts_calibration(report: ImbalanceReport) -> None:
    none = report.strategy("none").metrics
    for name in ("random_over", "smote", "class_weight", "random_under"):
        m = report.strategy(name).metrics
        assert (m["recall"].point or 0) > (none["recall"].point or 0) + 0.2, name
        # predictions inflated towards the minority class: a worse Brier score
        assert (m["brier"].point or 0) > (none["brier"].point or 0), name
    assert any("k_neighbors" in n for n in report.strategy("smote").notes)


def test_threshold_tuning(report: ImbalanceReport) -> None:
    tuned = report.strategy("threshold_tuning")
    assert len(tuned.fold_thresholds) == 5
    assert all(abs(t - 0.5) > 0.05 for t in tuned.fold_thresholds)
    assert tuned.threshold == pytest.approx(np.mean(tuned.fold_thresholds))
    none = report.strategy("none")
    # same model without weights: identical probabilities, so identical ranking metrics
    assert tuned.metrics["auroc"].point == pytest.approx(none.metrics["auroc"].point)
    assert (tuned.metrics["recall"].point or 0) > (none.metrics["recall"].point or 0)
    assert all(t == 0.5 for t in none.fold_thresholds)


def test_best_f1_threshold() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.38, 0.45])
    t = best_f1_threshold(y, p)
    flag = p >= t
    f1 = 2 * (flag & (y == 1)).sum() / (flag.sum() + y.sum())
    assert t == pytest.approx(0.35) and f1 == pytest.approx(6 / 7)


def test_plots(report: ImbalanceReport, tmp_path: Path) -> None:
    for fn, name in ((plot_pr_curves, "pr.png"), (plot_imbalance_metrics, "bars.png")):
        out = fn(report, tmp_path / name)
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_tree_model_with_missing_values() -> None:
    rep = compare_imbalance(_td(seed=2, n=200, n_patients=160), model="hgb", n_splits=3, n_boot=20)
    assert rep.strategy("smote").metrics["auroc"].point is not None


def test_regression_and_bad_model_raise() -> None:
    with pytest.raises(UserInputError, match="classification"):
        compare_imbalance(_td("los"))
    with pytest.raises(UserInputError):
        compare_imbalance(_td(), model="ridge")


class _Spy(ClassifierMixin, BaseEstimator):
    """Records the (resampled, encoded) training matrix the model step is fitted on."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> _Spy:
        self.X_, self.y_ = np.asarray(X, dtype=float), np.asarray(y)
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.full((len(X), 2), 0.5)


def _mixed_td() -> TaskData:
    """`_td` plus yes/no features (with missing values) and missing categories."""
    td = _td(seed=3, n=300, n_patients=240)
    rng = np.random.default_rng(3)
    chf = rng.choice([0.0, 1.0], len(td.frame))
    chf[rng.random(len(chf)) < 0.1] = np.nan
    td.frame["elix_chf"] = chf
    td.frame["med_insulin"] = rng.choice([0.0, 1.0], len(td.frame))
    td.frame["insurance"] = td.frame["insurance"].where(rng.random(len(td.frame)) > 0.1, None)
    td.features += [FEATURES["elix_chf"], FEATURES["med_insulin"]]
    return td


@pytest.mark.parametrize("model", ["logreg", "hgb"])
def test_smote_keeps_categories_and_flags_observed(model: str) -> None:
    """SMOTE must not interpolate one-hot, yes/no or missing-indicator columns."""
    td = _mixed_td()
    y = td.y
    train, test = next(outer_splitter("classification", 5, 0).split(td.X, y, td.groups))
    pipe, notes = _pipeline("smote", model, td, y[train], 0)
    assert notes == ["SMOTE-NC k_neighbors=5"]
    spy = _Spy()
    pipe.set_params(model=spy)
    pipe.fit(td.X.iloc[train], y[train])
    assert pipe.predict_proba(td.X.iloc[test]).shape == (len(test), 2)  # test fold not resampled
    X, n = spy.X_, len(train)
    assert len(X) > n and np.sum(spy.y_ == 1) == np.sum(spy.y_ == 0)  # minority over-sampled
    real, synth = X[:n], X[n:]  # imblearn appends the synthetic rows
    names = [str(c) for c in pipe.named_steps["pre"].get_feature_names_out()]
    nominal = [
        j
        for j, c in enumerate(names)
        if c.startswith("cat__") or "missingindicator_" in c or c.endswith(("elix_chf", "insulin"))
    ]
    assert {names[j] for j in nominal} >= {"num__elix_chf", "num__missingindicator_elix_count"}
    assert any(names[j].startswith("cat__insurance_UNKNOWN") for j in nominal)
    for j in nominal:
        assert set(synth[:, j]) <= set(real[:, j]), names[j]
        if names[j].startswith("cat__"):
            assert set(np.unique(X[:, j])) <= {0.0, 1.0}, names[j]
    # continuous features are still interpolated
    age = names.index("num__age")
    assert not set(synth[:, age]) <= set(real[:, age])


def test_smote_k_and_fallback() -> None:
    td = _mixed_td()
    _, notes = _pipeline("smote", "logreg", td, np.array([0.0] * 20 + [1.0] * 3), 0)
    assert notes == ["SMOTE-NC k_neighbors=2"]
    _, notes = _pipeline("smote", "logreg", td, np.array([0.0] * 20 + [1.0]), 0)
    assert "random over-sampling" in notes[0]
