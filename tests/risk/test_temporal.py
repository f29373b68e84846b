"""The temporal model: trains and predicts on the demo with the tabular models' folds, reports its
CIs beside theirs, loads back identical, and its integrated gradients add up exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from safellm.config import Settings
from safellm.data.events import load_events
from safellm.errors import ArtifactError, UserInputError
from safellm.explain.temporal import TemporalExplainer
from safellm.risk.dataset import load_task
from safellm.risk.sequences import Vocab, encode
from safellm.risk.temporal import TemporalConfig, attribute, fit_network, train_temporal
from safellm.risk.temporal_registry import load_temporal, task_dir
from safellm.risk.train import outer_splitter
from safellm.services.explanation import ExplanationService


def test_trained_bundles_on_the_demo(demo_temporal_home: Path) -> None:
    for task in ("readmission", "icu_mortality"):
        bundle = load_temporal(demo_temporal_home / "models", task)
        meta = bundle.meta
        assert meta.n_units == len(load_task(demo_temporal_home / "data", task).frame)
        auroc = meta.metrics["auroc"]
        assert auroc.point is not None and 0.0 <= auroc.point <= 1.0
        # the tabular models trained on the same data are there to compare with
        tabular = load_task(demo_temporal_home / "data", task)
        assert meta.tabular_version is not None and set(meta.tabular_metrics) == {"logreg", "hgb"}
        assert tabular.data_hash == meta.data_hash
        assert 0 < meta.bands[0] <= meta.bands[1] < 1
        doc = json.loads((bundle.path / "metrics.json").read_text())
        assert set(doc["tabular"]) == {"logreg", "hgb"} and "auroc" in doc["temporal"]
        assert (bundle.path / "comparison.png").stat().st_size > 0


def test_predicts_every_demo_unit(demo_temporal_home: Path) -> None:
    service = ExplanationService(
        Settings(home=demo_temporal_home, risk_model="temporal", explain_notes=0)
    )
    assert service.available_tasks() == ["readmission", "icu_mortality"]
    risks = service.risks("readmission")
    assert len(risks) == 89 and risks["risk"].between(0, 1).all()
    assert risks["risk"].std() > 0  # not a constant
    top = service.highest_risk("icu_mortality")
    facts = service.facts("icu_mortality", icustay_id=int(top["icustay_id"]))
    assert facts.model == "temporal" and facts.prediction.space == "log-odds"
    icu_risks = service.risks("icu_mortality")
    assert facts.prediction.risk == pytest.approx(float(icu_risks.iloc[0]["risk"]), abs=1e-4)
    with pytest.raises(UserInputError, match="los"):
        service.explainer("los")


def test_facts_add_up_and_match_the_prediction(demo_temporal_home: Path) -> None:
    home = demo_temporal_home
    service = ExplanationService(Settings(home=home, risk_model="temporal", explain_notes=0))
    ex = service.explainer("readmission")
    assert isinstance(ex, TemporalExplainer)
    frame = service.task_data("readmission").frame
    outputs = ex.outputs(frame)
    for i in range(0, len(frame), 11):
        f = ex.facts(frame.iloc[i])
        p = f.prediction
        total = p.base_value + sum(c.shap for c in f.contributions)
        assert total == pytest.approx(p.model_output, abs=1e-6)
        assert p.model_output == pytest.approx(outputs[i], abs=1e-4)
        assert p.risk == pytest.approx(1 / (1 + np.exp(-p.model_output)))
        assert [c.rank for c in f.contributions] == list(range(1, len(f.contributions) + 1))
        sizes = [abs(c.shap) for c in f.contributions]
        assert sizes == sorted(sizes, reverse=True)


def test_integrated_gradients_converge(demo_temporal_home: Path) -> None:
    """The attributions hardly change when the path is sampled twice as finely: the Riemann sum
    has converged, so the exactness correction is small."""
    bundle = load_temporal(demo_temporal_home / "models", "readmission")
    events = load_events(demo_temporal_home / "data", "readmission")
    unit = int(events["unit_id"].iloc[0])
    enc = encode(
        events[events["unit_id"] == unit].reset_index(drop=True), np.array([unit]), bundle.vocab
    )
    a48, base, value = attribute(bundle.net, enc, 48)
    a96, _, _ = attribute(bundle.net, enc, 96)
    assert a48.sum() == pytest.approx(value - base, abs=1e-6)
    assert np.abs(a48 - a96).max() <= 0.02 * max(np.abs(a96).max(), 1e-3)


def test_same_folds_as_the_tabular_models(demo_build) -> None:
    td = load_task(demo_build.out_dir, "icu_mortality")
    events = load_events(demo_build.out_dir, "icu_mortality")
    cfg = TemporalConfig(max_epochs=2, patience=1, hidden=8, dim=8)
    run = train_temporal(td, events, n_boot=20, cfg=cfg)
    splits = outer_splitter(td.kind, 5, 0).split(td.X, td.y, td.groups)
    for k, (_, test) in enumerate(splits):
        assert (run.folds[test] == k).all()
    assert np.isfinite(run.oof).all() and 1 <= run.epochs <= 2


def test_learns_a_timing_signal() -> None:
    """Units whose last event happened within 24 h of the prediction are positive: the model,
    given the same events at other times for the negatives, learns it (AUROC > 0.9 on held out)."""
    rng = np.random.default_rng(0)
    rows = []
    y = []
    for u in range(600):
        pos = u % 2 == 0
        y.append(int(pos))
        rows.append((u, float(rng.uniform(100, 200)), "adm", None, "EMERGENCY"))
        rows.append(
            (u, float(rng.uniform(2, 20) if pos else rng.uniform(30, 90)), "icu:out", None, "MICU")
        )
    events = pd.DataFrame(rows, columns=["unit_id", "hours_before", "token", "value", "detail"])
    events = events.sort_values(["unit_id", "hours_before"], ascending=[True, False])
    vocab = Vocab.fit(events)
    units = np.arange(600)
    enc = encode(events.reset_index(drop=True), units, vocab)
    cfg = TemporalConfig(hidden=16, dim=8, max_epochs=15)
    from sklearn.metrics import roc_auc_score

    from safellm.risk.sequences import Encoded
    from safellm.risk.temporal import predict_logits

    def part(i: np.ndarray) -> Encoded:
        return Encoded(enc.tok[i], enc.val[i], enc.hours[i], enc.gap[i], enc.mask[i], enc.rows[i])

    tr, te = units[:400], units[400:]
    yv = np.array(y)
    net, _ = fit_network(part(tr), yv[tr], len(vocab.tokens), cfg, seed=0, epochs=15)
    assert roc_auc_score(yv[te], predict_logits(net, part(te))) > 0.9


def test_unreadable_or_missing_bundle_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="--temporal"):
        load_temporal(tmp_path, "readmission")
    folder = task_dir(tmp_path, "readmission") / "v1"
    folder.mkdir(parents=True)
    (task_dir(tmp_path, "readmission") / "LATEST").write_text("v1\n")
    with pytest.raises(ArtifactError, match="not found or incomplete"):
        load_temporal(tmp_path, "readmission")
