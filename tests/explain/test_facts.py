"""Facts from exact SHAP values: additivity, mapping to the catalogue, ranks and directions."""

from __future__ import annotations

import numpy as np
import pytest

from safellm.data.catalogue import FEATURES
from safellm.explain.facts import Facts, band_for
from safellm.explain.shap import FactsExplainer
from safellm.risk.dataset import load_task
from safellm.risk.pipelines import make_pipeline, models_for
from safellm.risk.train import _target

CASES = [
    (t, m)
    for t, kind in (
        ("readmission", "classification"),
        ("icu_mortality", "classification"),
        ("los", "regression"),
    )
    for m in models_for(kind)
]


@pytest.fixture(scope="module", params=CASES, ids=[f"{t}-{m}" for t, m in CASES])
def fitted(request, demo_build):  # type: ignore[no-untyped-def]
    task, model = request.param
    td = load_task(demo_build.out_dir, task)
    pipe = make_pipeline(model, td.numeric, td.categorical, seed=0)
    pipe.fit(td.X, _target(td))
    ex = FactsExplainer.for_task_data(pipe, model, td, bands=(0.2, 0.5), version="test")
    return td, pipe, ex


def _raw_output(pipe, td):  # type: ignore[no-untyped-def]
    if td.kind == "classification":
        return pipe.decision_function(td.X)
    return pipe.predict(td.X)


def test_contributions_add_up_to_the_model_output(fitted) -> None:  # type: ignore[no-untyped-def]
    td, pipe, ex = fitted
    contrib, output = ex.attributions(td.frame)
    np.testing.assert_allclose(output, _raw_output(pipe, td), atol=1e-6)
    np.testing.assert_allclose(ex.base_value + contrib.sum(axis=1), output, atol=1e-9)


def test_facts_for_one_unit(fitted) -> None:  # type: ignore[no-untyped-def]
    td, pipe, ex = fitted
    row = td.frame.iloc[3]
    facts = ex.facts(row)
    assert isinstance(facts, Facts)
    total = facts.prediction.base_value + sum(c.shap for c in facts.contributions)
    assert total == pytest.approx(float(_raw_output(pipe, td)[3]), abs=1e-6)
    assert facts.prediction.model_output == pytest.approx(total, abs=1e-9)
    if td.kind == "classification":
        assert facts.prediction.space == "log-odds"
        assert facts.prediction.risk == pytest.approx(pipe.predict_proba(td.X.iloc[[3]])[0, 1])
    else:
        assert facts.prediction.space == "log-days"
        assert facts.prediction.risk == pytest.approx(np.exp(pipe.predict(td.X.iloc[[3]])[0]))
    mags = [abs(c.shap) for c in facts.contributions]
    assert mags == sorted(mags, reverse=True)
    for i, c in enumerate(facts.contributions, start=1):
        assert c.id == f"F{i}" and c.rank == i
        feat = FEATURES[c.feature]
        assert c.label == feat.label and c.unit == feat.unit and c.label and c.unit
        assert c.direction == ("raises" if c.shap > 0 else "lowers")
        raw = row[c.feature]
        if isinstance(raw, str):
            assert c.value == raw
        elif raw != raw:  # NaN
            assert c.value is None
        else:
            assert c.value == pytest.approx(float(raw))
    # the Facts round-trip through JSON unchanged (the guard CLI reads them back)
    assert Facts.model_validate_json(facts.model_dump_json()) == facts


def test_bands() -> None:
    assert band_for(0.1, (0.2, 0.5)) == "low"
    assert band_for(0.2, (0.2, 0.5)) == "moderate"
    assert band_for(0.7, (0.2, 0.5)) == "high"


def test_fast_single_row_path_equals_the_pipeline_transform(fitted) -> None:  # type: ignore[no-untyped-def]
    """Tree models take a fast one-row path; linear models use the pipeline's transform."""
    td, pipe, ex = fitted
    assert (ex._fast is not None) == (ex.model in ("hgb", "hgb_reg"))
    if ex._fast is None:
        return
    pre = pipe.named_steps["pre"]
    full = pre.transform(td.X).astype(float)
    for i in range(len(td.frame)):
        np.testing.assert_array_equal(ex._fast.transform(td.frame.iloc[i]), full[i : i + 1])
    # an unseen category goes where the encoder puts unknowns
    row = td.frame.iloc[0].copy()
    row[td.categorical[0]] = "NEVER SEEN BEFORE"
    np.testing.assert_array_equal(
        ex._fast.transform(row), pre.transform(row.to_frame().T[ex.features]).astype(float)
    )


def test_global_view_columns_line_up_with_features(fitted) -> None:  # type: ignore[no-untyped-def]
    """Plots label column i with feature i: contributions, values and labels share one order."""
    td, _, ex = fitted
    contrib, data, labels = ex.global_view(td.frame)
    assert contrib.shape == data.shape == (len(td.frame), len(ex.features))
    for i, name in enumerate(ex.features):
        assert labels[i] == FEATURES[name].label
        if FEATURES[name].kind != "categorical":
            np.testing.assert_array_equal(data[:, i], td.frame[name].to_numpy(dtype=float))
    # changing one feature of one unit moves that feature's column (and no other) for linear models
    if ex.model in ("logreg", "ridge"):
        j = next(i for i, n in enumerate(ex.features) if n == "age")
        frame = td.frame.iloc[[0]].copy()
        before, _ = ex.attributions(frame)
        frame["age"] = float(frame["age"].iloc[0]) + 10
        after, _ = ex.attributions(frame)
        moved = np.flatnonzero(~np.isclose(before[0], after[0]))
        assert list(moved) == [j]
