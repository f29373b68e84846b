"""MIMIC tables -> FHIR Bundle -> features, risk and Facts: the same as from the tables, for every
admission of the MIMIC-III demo and of a 300-patient synthetic hospital."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from safellm.config import Settings
from safellm.data.notes import load_notes
from safellm.fhir.export import iter_bundles
from safellm.fhir.features import Rows
from safellm.fhir.ingest import ingest
from safellm.risk.dataset import load_task
from safellm.services.explanation import ExplanationService
from safellm.tasks import TASKS


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (np.isnan(a) and np.isnan(b)) or a == b
    return a == b


def _compare(home: Path, tasks: tuple[str, ...], with_notes: int = 20) -> dict[str, int]:
    """Every unit of every task, from its admission's Bundle, against the built table: the
    features (exactly) and the prediction time; for trained tasks the risk and the Facts; the
    notes read from the Bundle equal to the admission's notes, and for the first `with_notes`
    units of each task the Facts with their note evidence (retrieval embeds every chunk: slow).
    Returns the units compared per task."""
    data = home / "data"
    svc = ExplanationService(Settings(home=home, llm_model="fake", explain_notes=0))
    with_evidence = ExplanationService(Settings(home=home, llm_model="fake"))
    tables = {t: load_task(data, t) for t in tasks}
    compared = dict.fromkeys(tasks, 0)
    trained = {t for t in tasks if (home / "models" / t).exists()}
    for bundle in iter_bundles(data):
        hadm = int(bundle["id"].removeprefix("safellm-adm-"))
        ing = ingest(bundle)
        rows = Rows(ing)  # loaded once for the three tasks
        _same_notes(ing.notes, load_notes(data, hadm), pd.Timestamp(ing.now))
        for task in tasks:
            td = tables[task]
            built = td.frame[td.frame["hadm_id"] == hadm]
            if built.empty:
                continue
            mine = rows.of(task, td.features)
            unit = TASKS[task].unit
            for _, want in built.iterrows():
                got = mine[mine[unit] == want[unit]]
                assert len(got) == 1, (task, unit, want[unit])
                g = got.iloc[0]
                assert g["prediction_time"] == want["prediction_time"]
                diff = [f.name for f in td.features if not _same(g[f.name], want[f.name])]
                assert not diff, (task, int(want[unit]), {n: (g[n], want[n]) for n in diff})
                if task in trained:
                    ids = {unit: int(want[unit])}
                    assert svc.facts_for_row(task, g, None) == svc.facts(task, **ids), ids
                    if compared[task] < with_notes:
                        mine_facts = with_evidence.facts_for_row(task, g, ing.notes)
                        assert mine_facts == with_evidence.facts(task, **ids), (task, ids)
                compared[task] += 1
        rows.close()
    for task in tasks:
        assert compared[task] == len(tables[task].frame), task  # every unit had its Bundle
    return compared


def _same_notes(got: pd.DataFrame, want: pd.DataFrame, end: pd.Timestamp) -> None:
    """The notes of a Bundle against the admission's notes export (what evidence is drawn
    from) dated before the Bundle's time `end`."""
    cols = ["note_id", "chartdate", "charttime", "category", "text"]
    if not want.empty:
        when = pd.to_datetime(want["charttime"]).fillna(pd.to_datetime(want["chartdate"]))
        want = want[when < end]
    if want.empty:
        assert got.empty
        return
    g = got[cols].sort_values("note_id").reset_index(drop=True)
    w = want[cols].sort_values("note_id").reset_index(drop=True)
    for c in ("chartdate", "charttime"):
        g[c], w[c] = pd.to_datetime(g[c]), pd.to_datetime(w[c])
    g["note_id"] = g["note_id"].astype("int64")
    w["note_id"] = w["note_id"].astype("int64")
    pd.testing.assert_frame_equal(g, w, check_dtype=False)


@pytest.mark.slow
def test_every_demo_unit_same_by_fhir(demo_home: Path) -> None:
    compared = _compare(demo_home, ("readmission", "icu_mortality", "los"))
    assert compared == {"readmission": 89, "icu_mortality": 114, "los": 119}


@pytest.mark.slow
def test_every_synthetic_unit_same_by_fhir(tmp_path_factory: pytest.TempPathFactory) -> None:
    from safellm.data.build import build_dataset
    from safellm.data.synthetic import synthesize
    from safellm.services.training import train_and_register

    home = tmp_path_factory.mktemp("syn300")
    synthesize(home / "hospital", 300, 7)
    build_dataset(home / "hospital", home / "data")
    for task in ("readmission", "icu_mortality"):
        train_and_register(task, home / "data", home, n_boot=5, log_mlflow=False)
    compared = _compare(home, ("readmission", "icu_mortality", "los"))
    assert min(compared.values()) > 100
    frame = pd.DataFrame([compared])
    assert (frame > 0).all().all()
