"""Facts from exact SHAP values: additivity (also once cut to the top), mapping to the catalogue,
ranks and directions, values shown with the catalogue's precision."""

from __future__ import annotations

import numpy as np
import pytest

from safellm.data.catalogue import FEATURES
from safellm.explain.facts import Facts, band_for, ranked, shown_value
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


def test_facts_cut_to_the_top_still_add_up(fitted) -> None:  # type: ignore[no-untyped-def]
    """The Explanation lists only the top contributions; the rest is one remainder, and base value
    + listed contributions + remainder is exactly the model's output."""
    td, pipe, ex = fitted
    full = ex.facts(td.frame.iloc[5])
    cut = full.cut(3)
    assert [c.id for c in cut.contributions] == ["F1", "F2", "F3"]
    assert cut.n_other == len(full.contributions) - 3 > 0
    assert cut.other_contributions == pytest.approx(sum(c.shap for c in full.contributions[3:]))
    p = cut.prediction
    total = p.base_value + sum(c.shap for c in cut.contributions) + cut.other_contributions
    assert total == pytest.approx(p.model_output, abs=1e-9)
    assert total == pytest.approx(float(_raw_output(pipe, td)[5]), abs=1e-6)
    assert full.adds_up() and cut.adds_up() and abs(cut.gap) < 1e-9
    assert cut.cut(2).adds_up() and cut.cut(2).n_other == cut.n_other + 1
    assert cut.cut(10) is cut
    # the remainder travels in the JSON; dropping it breaks the sum
    assert Facts.model_validate_json(cut.model_dump_json()) == cut
    assert not cut.model_copy(update={"other_contributions": 0.0}).adds_up()


def _shown(feature: str, value: float | str | None, unit: str) -> str:
    return ranked([(feature, feature, value, unit, 0.1)])[0].shown


def test_values_are_shown_with_the_catalogue_precision() -> None:
    assert _shown("age", 86.6645, "years") == "87 years"
    assert _shown("lab_creatinine_last", 2.4449, "mg/dL") == "2.4 mg/dL"
    assert _shown("lab_platelets_min", 151.6, "K/uL") == "152 K/uL"
    assert _shown("lab_creatinine_last", 3.0, "mg/dL") == "3.0 mg/dL"
    assert _shown("vital_temperature_last", 98.64, "°F") == "98.6 °F"
    assert _shown("prior_adm_12m", 2.0, "admissions") == "2 admissions"
    assert _shown("lab_creatinine", 1.26, "mg/dL") == "1.3 mg/dL"  # a temporal event concept
    assert _shown("elix_chf", 1.0, "yes/no") == "yes"
    assert _shown("elix_chf", 0.0, "yes/no") == "no"
    assert _shown("lab_lactate_last", None, "mmol/L") == "not measured"
    assert _shown("discharge_location", "SNF", "category") == "SNF"
    assert _shown("x", 86.6645, "years") == "86.6645 years"  # unknown feature: `:g` as before
    assert shown_value(-0.04, "days", 1) == "0.0 days"  # never "-0.0"
    assert shown_value(86.6645, "years") == "86.6645 years"


def test_every_numeric_catalogue_feature_has_a_display_precision() -> None:
    for f in FEATURES.values():
        if f.kind == "numeric":
            assert isinstance(f.decimals, int) and 0 <= f.decimals <= 2, f.name
    assert FEATURES["age"].decimals == 0 and FEATURES["lab_potassium_last"].decimals == 1


def test_waterfall_bars_end_with_all_other_features(fitted) -> None:  # type: ignore[no-untyped-def]
    """The plot's bars add up from the base value to the output, for full and for cut Facts."""
    from safellm.explain.plots import waterfall_bars

    td, _, ex = fitted
    full = ex.facts(td.frame.iloc[5])
    for facts in (full, full.cut(3)):
        names, values = waterfall_bars(facts, max_display=6)
        p = facts.prediction
        assert p.base_value + sum(values) == pytest.approx(p.model_output, abs=1e-9)
        assert len(names) == len(values) <= 6
        n = len(full.contributions) - (len(names) - 1)
        assert names[-1] == f"all other features ({n})"
        assert names[0] == f"{full.contributions[0].shown} = {full.contributions[0].label}"
