"""Subgroup metrics with patient-level CIs, gaps, tables and plots (synthetic, fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from safellm.data.catalogue import FEATURES
from safellm.errors import UserInputError
from safellm.risk.dataset import TaskData
from safellm.risk.fairness import (
    age_band,
    fairness_report,
    fairness_table,
    gap_table,
    plot_fairness,
    prevalence_threshold,
)

FEATS = ["age", "elix_count", "prior_adm_12m", "sex", "ethnicity_group", "insurance"]


def _frame(seed: int = 0, n: int = 400, n_patients: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    subject = np.concatenate([np.arange(n_patients), rng.integers(0, n_patients, n - n_patients)])
    sex_of = rng.choice(["F", "M"], n_patients)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    p = 1 / (1 + np.exp(-(-1.0 + 1.5 * x1 + 1.0 * x2)))
    return pd.DataFrame(
        {
            "unit_id": np.arange(n),
            "subject_id": subject,
            "readmit_30d": (rng.random(n) < p).astype(int),
            "los_days": np.exp(1 + 0.5 * x1 + rng.normal(0, 0.3, n)),
            "age": rng.uniform(20, 90, n),
            "elix_count": x1,
            "prior_adm_12m": x2,
            "sex": sex_of[subject],
            "ethnicity_group": rng.choice(["WHITE", "BLACK", "HISPANIC"], n, p=[0.5, 0.3, 0.2]),
            "insurance": rng.choice(["Medicare", "Private", "Medicaid"], n),
            "_signal": 1.5 * x1 + 1.0 * x2,
        }
    )


def _td(frame: pd.DataFrame, task: str = "readmission") -> TaskData:
    return TaskData(task, frame, [FEATURES[f] for f in FEATS], "test")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def _ci_contains_point(df: pd.DataFrame) -> None:
    ok = df.dropna(subset=["point", "lo", "hi"])
    assert len(ok) > 0
    assert (ok["lo"] <= ok["point"] + 1e-12).all() and (ok["point"] <= ok["hi"] + 1e-12).all()


def test_worse_for_one_sex_shows_largest_gap_on_sex(tmp_path: Path) -> None:
    frame = _frame()
    rng = np.random.default_rng(1)
    good = _sigmoid(frame["_signal"].to_numpy() - 1.0)
    noise = rng.uniform(0.02, 0.55, len(frame))
    pred = np.where(frame["sex"] == "F", noise, good)  # uninformative and low for women
    td = _td(frame)
    rep = fairness_report(td, pred, n_boot=100, seed=0)

    for metric in ("auroc", "recall"):
        largest = rep.largest_gap(metric)
        assert largest is not None
        attr, gap = largest
        assert attr == "sex"
        assert (gap.high_group, gap.low_group) == ("M", "F")
        assert gap.gap is not None and gap.gap.lo is not None and gap.gap.lo > 0
    sex = {g.group: g for g in rep.attribute("sex").groups}
    f_auc, m_auc = sex["F"].metrics["auroc"], sex["M"].metrics["auroc"]
    assert f_auc.point is not None and m_auc.point is not None
    assert f_auc.hi is not None and m_auc.lo is not None and f_auc.hi < m_auc.lo
    # points come from MetricFrame and equal sklearn's AUROC on the group
    mask = (frame["sex"] == "M").to_numpy()
    assert m_auc.point == pytest.approx(roc_auc_score(td.y[mask], pred[mask]))
    assert sex["F"].n + sex["M"].n == len(frame)
    assert sex["F"].positives == int(td.y[~mask].sum())

    table = fairness_table(rep)
    assert list(table.columns)[:7] == ["attribute", "group", "metric", "point", "lo", "hi", "n"]
    assert set(table["attribute"]) == {"all", "sex", "ethnicity_group", "insurance", "age_band"}
    assert set(table["metric"]) == {
        "recall",
        "precision",
        "auroc",
        "selection_rate",
        "calibration_in_the_large",
    }
    _ci_contains_point(table)
    gaps = gap_table(rep)
    assert (gaps["status"] == "ok").all()

    out = plot_fairness(rep, tmp_path / "fair.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_default_threshold_is_prevalence_matched() -> None:
    frame = _frame(seed=3)
    td = _td(frame)
    pred = _sigmoid(frame["_signal"].to_numpy())
    rep = fairness_report(td, pred, n_boot=30)
    assert rep.threshold_rule == "prevalence-matched"
    assert rep.threshold == prevalence_threshold(td.y, pred)
    assert int((pred >= rep.threshold).sum()) == int(td.y.sum())
    sel = rep.overall.metrics["selection_rate"].point
    assert sel == pytest.approx(td.y.mean())
    # recall == precision when as many units are flagged as there are positives
    assert rep.overall.metrics["recall"].point == pytest.approx(
        rep.overall.metrics["precision"].point
    )
    given = fairness_report(td, pred, threshold=0.9, n_boot=30)
    assert given.threshold == 0.9 and given.threshold_rule == "given"
    assert given.overall.metrics["selection_rate"].point == pytest.approx(np.mean(pred >= 0.9))


def test_calibration_in_the_large_sign() -> None:
    frame = _frame(seed=4)
    td = _td(frame)
    base = _sigmoid(frame["_signal"].to_numpy() - 1.0)
    up = fairness_report(td, np.clip(base + 0.2, 0, 1), n_boot=60)
    down = fairness_report(td, np.clip(base - 0.2, 0, 1), n_boot=60)
    u, d = (
        up.overall.metrics["calibration_in_the_large"],
        down.overall.metrics["calibration_in_the_large"],
    )
    assert u.point is not None and u.lo is not None and u.lo > 0
    assert d.point is not None and d.hi is not None and d.hi < 0
    for g in up.attribute("sex").groups:
        assert (g.metrics["calibration_in_the_large"].point or 0) > 0


def test_single_class_and_tiny_groups_do_not_crash(tmp_path: Path) -> None:
    frame = _frame(seed=5)
    # a small insurance group with only negatives; every unit of it under 50; one-row group
    small = frame.index[:6]
    frame.loc[small, "insurance"] = "Self Pay"
    frame.loc[small, "readmit_30d"] = 0
    frame.loc[frame.index[6], "ethnicity_group"] = "ASIAN"
    frame["sex"] = "M"  # a single sex: no gap possible
    frame.loc[frame.index[:3], "sex"] = "F"
    td = _td(frame)
    pred = _sigmoid(frame["_signal"].to_numpy())
    rep = fairness_report(td, pred, n_boot=40)

    ins = {g.group: g for g in rep.attribute("insurance").groups}
    sp = ins["Self Pay"]
    assert sp.n == 6 and sp.positives == 0
    assert sp.metrics["auroc"].point is None and sp.metrics["recall"].point is None
    assert sp.metrics["auroc"].fmt() == "n/a"
    assert sp.metrics["selection_rate"].point is not None
    assert "Self Pay" not in rep.attribute("insurance").gaps["auroc"].eligible_groups

    asian = next(g for g in rep.attribute("ethnicity_group").groups if g.group == "ASIAN")
    assert asian.n == 1 and asian.metrics["calibration_in_the_large"].lo is None

    sex_gaps = rep.attribute("sex").gaps
    assert sex_gaps["auroc"].status == "too few" and sex_gaps["auroc"].gap is None
    assert (gap_table(rep).query("attribute == 'sex'")["status"] == "too few").all()
    assert plot_fairness(rep, tmp_path / "small.png").stat().st_size > 0


def test_age_bands() -> None:
    bands = age_band(pd.Series([17.0, 49.9, 50, 64.99, 65, 79.9, 80, 90, np.nan]))
    assert list(bands) == [
        "<50",
        "<50",
        "50-64",
        "50-64",
        "65-79",
        "65-79",
        "80+",
        "80+",
        "unknown",
    ]


def test_los_regression(tmp_path: Path) -> None:
    frame = _frame(seed=6)
    td = _td(frame, "los")
    rng = np.random.default_rng(0)
    pred = td.y + 2.0 + rng.normal(0, 0.5, len(frame))  # over-predicts by two days
    rep = fairness_report(td, pred, n_boot=60)
    assert rep.kind == "regression" and rep.threshold is None
    assert rep.metrics == ["mae", "mean_error"]
    bias = rep.overall.metrics["mean_error"]
    assert bias.point == pytest.approx(2.0, abs=0.15)
    assert bias.point is not None and bias.lo is not None and bias.hi is not None
    assert bias.lo < bias.point < bias.hi
    assert bias.lo > 1.5
    for g in rep.attribute("age_band").groups:
        assert g.positives is None and (g.metrics["mae"].point or 0) > 1
    table = fairness_table(rep)
    assert set(table["metric"]) == {"mae", "mean_error"}
    _ci_contains_point(table)
    assert plot_fairness(rep, tmp_path / "los.png").stat().st_size > 0


def test_bad_prediction_length() -> None:
    td = _td(_frame())
    with pytest.raises(UserInputError):
        fairness_report(td, np.zeros(3))


def test_patient_in_two_groups_is_resampled_jointly() -> None:
    # every patient has one admission under Medicare and one under Private; the error of the
    # Private admission is the patient's Medicare error + 0.5. Resampling patients jointly, every
    # replicate has the same patients (with the same multiplicities) in both groups, so the gap is
    # exactly 0.5 in each replicate; independent per-group resamples would give a wide CI.
    n_patients = 80
    frame = _frame(seed=7, n=2 * n_patients, n_patients=2 * n_patients)
    frame["subject_id"] = np.repeat(np.arange(n_patients), 2)
    frame["insurance"] = np.tile(["Medicare", "Private"], n_patients)
    td = _td(frame, "los")
    rng = np.random.default_rng(0)
    error = rng.uniform(1.0, 3.0, n_patients)[frame["subject_id"]]
    pred = td.y + error + 0.5 * (frame["insurance"] == "Private").to_numpy()
    rep = fairness_report(td, pred, n_boot=100, seed=0)

    ins = rep.attribute("insurance")
    assert {g.group: (g.n, g.n_patients) for g in ins.groups} == {
        "Medicare": (n_patients, n_patients),
        "Private": (n_patients, n_patients),
    }
    for metric in ("mean_error", "mae"):  # errors are all positive, so the MAE gap is 0.5 too
        gap = ins.gaps[metric]
        assert (gap.high_group, gap.low_group) == ("Private", "Medicare")
        est = gap.gap
        assert est is not None and est.point == pytest.approx(0.5)
        assert est.lo == pytest.approx(0.5, abs=1e-9) and est.hi == pytest.approx(0.5, abs=1e-9)
        assert est.n_boot == 100
    # the per-group CIs themselves are not degenerate
    medicare = ins.groups[0].metrics["mean_error"]
    assert medicare.lo is not None and medicare.hi is not None and medicare.hi - medicare.lo > 0.1


def test_gap_ci_accounts_for_all_eligible_groups() -> None:
    # four insurance groups of 30 patients (one admission each). Errors: exactly +0.1 in "C",
    # exactly -0.1 in "D", and ±1 (mean exactly 0) in "A" and "B". By point estimate C is highest
    # and D lowest (gap 0.2), but in a replicate A or B is often more extreme. Treating C and D as
    # chosen in advance gives the degenerate CI [0.2, 0.2]; max − min over all eligible groups
    # inside each replicate is never below 0.2 and often well above it.
    per = 30
    frame = _frame(seed=8, n=4 * per, n_patients=4 * per)
    frame["insurance"] = np.repeat(["A", "B", "C", "D"], per)
    td = _td(frame, "los")
    noise = np.tile([1.0, -1.0], per // 2)
    error = np.concatenate([noise, noise[::-1], np.full(per, 0.1), np.full(per, -0.1)])
    rep = fairness_report(td, td.y + error, n_boot=200, seed=0)

    gap = rep.attribute("insurance").gaps["mean_error"]
    assert gap.eligible_groups == ["A", "B", "C", "D"]
    assert (gap.high_group, gap.low_group) == ("C", "D")
    est = gap.gap
    assert est is not None and est.point == pytest.approx(0.2)
    assert est.lo is not None and est.hi is not None
    assert est.lo >= 0.2 - 1e-9  # the range of all groups is at least the C − D difference
    assert est.hi > 0.4  # A and B (SD of their mean ≈ 0.18) widen it
    _ci_contains_point(fairness_table(rep).query("attribute == 'insurance'"))
