"""Nested training details: the LOS tuning metric, and undefined inner-fold scores are counted."""

from __future__ import annotations

import numpy as np
import pytest

from safellm.errors import UserInputError
from safellm.risk.dataset import load_task
from safellm.risk.train import _neg_mae_days, _search, inner_failures, train_task


def test_los_is_tuned_on_mae_in_days() -> None:
    days = np.array([1.0, 3.0, 10.0])
    pred = np.array([2.0, 3.0, 5.0])
    assert _neg_mae_days(np.log(days), np.log(pred)) == pytest.approx(-(1 + 0 + 5) / 3)


def test_undefined_inner_scores_are_counted(demo_build) -> None:  # type: ignore[no-untyped-def]
    td = load_task(demo_build.out_dir, "readmission")
    pos = np.flatnonzero(td.y == 1)[:2]
    neg = np.flatnonzero(td.y == 0)[:40]
    idx = np.r_[pos, neg]  # two positives: some of the 3 inner folds have none -> AUROC undefined
    search = _search("logreg", td, idx, seed=0, inner=3)
    assert inner_failures(search, 3) > 0
    full = _search("logreg", td, np.arange(len(td.y)), seed=0, inner=3)
    assert inner_failures(full, 3) == 0


def test_too_few_positives_is_a_clear_error(demo_build) -> None:  # type: ignore[no-untyped-def]
    td = load_task(demo_build.out_dir, "readmission")
    td.frame = td.frame.assign(readmit_30d=0)
    td.frame.loc[td.frame.index[:3], "readmit_30d"] = 1
    with pytest.raises(UserInputError, match="3 positives"):
        train_task(td)
