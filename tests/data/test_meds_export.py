"""`safellm data export --format meds`: a dataset the `meds` schemas accept, events true to the
source tables, splits grouped by patient and equal to the training folds, labels equal to the
cohorts, and ACES (its own command line) extracting the same cohorts from it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from meds import CodeMetadataSchema, DataSchema, LabelSchema, SubjectSplitSchema
from typer.testing import CliRunner

from safellm.cli import app
from safellm.config import Settings
from safellm.data.build import build_dataset
from safellm.data.meds import SPLITS
from safellm.data.synthetic import synthesize
from safellm.errors import ArtifactError
from safellm.services.data import export_data, subject_splits
from safellm.tasks import TASKS

ACES_CLI = Path(sys.executable).with_name("aces-cli")


@pytest.fixture(scope="module")
def synthetic_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("meds-synth")
    synthesize(root / "hospital", 300, seed=7)
    return build_dataset(root / "hospital", root / "data", notes=False, events=False).out_dir


@pytest.fixture(scope="module")
def demo_meds(demo_build, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("meds-demo") / "meds"
    export_data(Settings(), demo_build.out_dir, out, shard_subjects=25)
    return out


@pytest.fixture(scope="module")
def synthetic_meds(synthetic_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("meds-synth-out") / "meds"
    export_data(Settings(), synthetic_build, out)
    return out


def _data(root: Path) -> pd.DataFrame:
    parts = []
    for split in SPLITS:
        for shard in sorted((root / "data" / split).glob("*.parquet")):
            frame = pq.read_table(shard).to_pandas()
            frame["split"], frame["shard"] = split, f"{split}/{shard.stem}"
            parts.append(frame)
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(params=["demo", "synthetic"])
def exported(request: pytest.FixtureRequest, demo_build) -> tuple[Path, Path, Path]:  # type: ignore[no-untyped-def]
    """(MEDS folder, built data folder, MIMIC folder) of both homes."""
    if request.param == "demo":
        meds_dir, data_dir = request.getfixturevalue("demo_meds"), demo_build.out_dir
    else:
        meds_dir, data_dir = (
            request.getfixturevalue("synthetic_meds"),
            request.getfixturevalue("synthetic_build"),
        )
    import json

    source = Path(json.loads((data_dir / "manifest.json").read_text())["source"])
    return meds_dir, data_dir, source


def test_every_table_validates_with_the_meds_schemas(exported: tuple[Path, Path, Path]) -> None:
    root, _, _ = exported
    shards = [p for s in SPLITS for p in (root / "data" / s).glob("*.parquet")]
    assert shards
    for shard in shards:
        table = pq.read_table(shard)
        DataSchema.validate(table)  # raises on a mismatch
        assert table.schema.field("time").type == pa.timestamp("us")
        assert table.schema.field("numeric_value").type == pa.float32()
    SubjectSplitSchema.validate(pq.read_table(root / "metadata" / "subject_splits.parquet"))
    codes = pq.read_table(root / "metadata" / "codes.parquet")
    CodeMetadataSchema.validate(codes)
    assert set(codes.column("code").to_pylist()) == set(_data(root)["code"])
    for task in TASKS:
        LabelSchema.validate(pq.read_table(root / "labels" / f"{task}.parquet"))


def test_events_are_sorted_and_each_subject_is_in_one_shard(
    exported: tuple[Path, Path, Path],
) -> None:
    root, _, _ = exported
    data = _data(root)
    assert data.groupby("subject_id")["shard"].nunique().max() == 1
    for _, shard in data.groupby("shard", sort=False):
        # NaT (a static event) is the smallest int64: first, as MEDS wants
        keys = shard[["subject_id"]].assign(t=shard["time"].to_numpy().astype("int64"))
        assert keys.equals(keys.sort_values(["subject_id", "t"], kind="stable"))
    static = data[data["time"].isna()]
    assert set(static["code"]) <= {"GENDER//F", "GENDER//M"}


def test_events_equal_the_source_tables(exported: tuple[Path, Path, Path]) -> None:
    """Counts per kind of event recomputed from the CSV files with pandas."""
    root, _, source = exported
    data = _data(root)

    def csv(name: str) -> pd.DataFrame:
        path = next(p for p in source.iterdir() if p.name.upper().startswith(name + ".CSV"))
        frame = pd.read_csv(path, low_memory=False)
        frame.columns = [c.lower() for c in frame.columns]
        return frame

    adm = csv("ADMISSIONS")
    labs = csv("LABEVENTS")
    dx = csv("DIAGNOSES_ICD").merge(adm[["hadm_id", "dischtime"]], on="hadm_id")
    icu = csv("ICUSTAYS")
    kind = data["code"].str.split("//").str[0]
    assert (kind == "HOSPITAL_ADMISSION").sum() == adm["admittime"].notna().sum()
    assert (kind == "HOSPITAL_DISCHARGE").sum() == adm["dischtime"].notna().sum()
    assert (kind == "ICU_ADMISSION").sum() == len(icu)
    assert (kind == "LAB").sum() == labs["charttime"].notna().sum()
    assert (kind == "DIAGNOSIS").sum() == dx["icd9_code"].notna().sum()
    # one lab value, to the float32 the schema holds
    lab = data[kind == "LAB"].iloc[len(data[kind == "LAB"]) // 2]
    item = int(lab["code"].split("//")[1])
    match = labs[
        (labs["subject_id"] == lab["subject_id"])
        & (pd.to_datetime(labs["charttime"]) == lab["time"])
        & (labs["itemid"] == item)
    ]
    assert not match.empty
    if pd.notna(lab["numeric_value"]):
        assert (match["valuenum"].astype("float32") == lab["numeric_value"]).any()
    deaths = data[data["code"] == "MEDS_DEATH"]
    assert deaths["subject_id"].is_unique
    in_hospital = adm.dropna(subset=["deathtime"])
    for _, row in in_hospital.iterrows():
        got = deaths.loc[deaths["subject_id"] == row["subject_id"], "time"]
        assert list(got) == [pd.Timestamp(row["deathtime"])]


def test_labels_are_the_cohorts(exported: tuple[Path, Path, Path]) -> None:
    root, data_dir, _ = exported
    for task, spec in TASKS.items():
        cohort = pd.read_parquet(data_dir / f"{task}.parquet")
        labels = pq.read_table(root / "labels" / f"{task}.parquet").to_pandas()
        assert len(labels) == len(cohort)
        assert (labels["subject_id"].to_numpy() == cohort["subject_id"].to_numpy()).all()
        assert (labels["prediction_time"] == pd.to_datetime(cohort["prediction_time"])).all()
        if spec.kind == "classification":
            assert list(labels.columns) == ["subject_id", "prediction_time", "boolean_value"]
            assert labels["boolean_value"].sum() == cohort[spec.target].sum()
        else:
            assert list(labels.columns) == ["subject_id", "prediction_time", "float_value"]
            assert (labels["float_value"] - cohort[spec.target]).abs().max() < 1e-3


def test_splits_are_the_training_folds(exported: tuple[Path, Path, Path]) -> None:
    """Fold 0 of the readmission model's outer folds is held out, fold 1 is tuning; every
    subject of the data is in exactly one split."""
    from safellm.risk.dataset import load_task
    from safellm.risk.train import outer_folds

    root, data_dir, _ = exported
    splits = pq.read_table(root / "metadata" / "subject_splits.parquet").to_pandas()
    assert splits["subject_id"].is_unique
    assert set(splits["subject_id"]) == set(_data(root)["subject_id"])
    td = load_task(data_dir, "readmission")
    folds = pd.Series(outer_folds(td, seed=0), index=td.groups).groupby(level=0).first()
    by_subject = splits.set_index("subject_id")["split"]
    expected = folds.map({0: "held_out", 1: "tuning"}).fillna("train")
    assert (by_subject.loc[expected.index] == expected).all()
    assert set(by_subject) == set(SPLITS)
    data = _data(root)
    assert (data["split"] == data["subject_id"].map(by_subject)).all()


def _aces(root: Path, task: str, out: Path) -> pd.DataFrame:
    """Run ACES' own command line over the sharded MEDS data; its rows of every shard."""
    shards = ",".join(
        f"{s}/{p.stem}" for s in SPLITS for p in sorted((root / "data" / s).glob("*.parquet"))
    )
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    done = subprocess.run(
        [
            str(ACES_CLI),
            "-m",
            "data=sharded",
            "data.standard=meds",
            f"data.root={root / 'data'}",
            f"data.shard={shards}",
            f"cohort_dir={root / 'aces'}",
            f"cohort_name={task}",
            f"output_filepath={out}/{task}/${{data.shard}}.parquet",
            f"log_dir={out}/logs",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    files = sorted((out / task).rglob("*.parquet"))
    assert len(files) == len(shards.split(","))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def _late_icu_deaths(source: Path) -> int:
    """ICU stays of the cohort (>= 24 h) whose death came after the ICU discharge, within 6 h:
    SafeLLM labels them, the ACES configuration cannot (see aces/icu_mortality.yaml)."""
    con = duckdb.connect()
    icu, adm = (
        next(p for p in source.iterdir() if p.name.upper().startswith(n + ".CSV"))
        for n in ("ICUSTAYS", "ADMISSIONS")
    )
    (n,) = con.execute(
        f"SELECT count(*) FROM read_csv_auto('{icu}') i JOIN read_csv_auto('{adm}') a "
        "USING (hadm_id) WHERE epoch(i.outtime) - epoch(i.intime) >= 86400 "
        "AND a.deathtime > i.outtime AND a.deathtime <= i.outtime + INTERVAL 6 HOUR"
    ).fetchone()  # type: ignore[misc]
    return int(n)


def test_aces_reproduces_the_cohorts(exported: tuple[Path, Path, Path], tmp_path: Path) -> None:
    assert ACES_CLI.exists(), "es-aces is a test dependency (pyproject.toml [dev])"
    root, data_dir, source = exported
    for task, spec in TASKS.items():
        ours = pd.read_parquet(data_dir / f"{task}.parquet")
        theirs = _aces(root, task, tmp_path)
        got = theirs[["subject_id", "prediction_time"]].sort_values(
            ["subject_id", "prediction_time"], ignore_index=True
        )
        want = (
            ours[["subject_id", "prediction_time"]]
            .assign(prediction_time=lambda f: pd.to_datetime(f["prediction_time"]))
            .sort_values(["subject_id", "prediction_time"], ignore_index=True)
        )
        assert len(got) == len(want), task
        assert (got.astype("int64") == want.astype("int64")).all().all(), task
        if spec.kind != "classification":
            continue
        positives = int(theirs["boolean_value"].sum())
        expected = int(ours[spec.target].sum())
        if task == "icu_mortality":
            expected -= _late_icu_deaths(source)
        assert positives == expected, task


def test_export_without_built_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="build the data first"):
        export_data(Settings(), tmp_path / "nothing", tmp_path / "meds")
    result = CliRunner().invoke(
        app,
        [
            "data",
            "export",
            "--format",
            "meds",
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "m"),
        ],
    )
    assert result.exit_code != 0
    assert "build the data first" in result.output
    assert not (tmp_path / "m").exists()


def test_export_when_the_source_is_gone(demo_build, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import json

    data = tmp_path / "data"
    shutil.copytree(demo_build.out_dir, data)
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["source"] = str(tmp_path / "moved")
    (data / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="is gone"):
        export_data(Settings(), data, tmp_path / "meds")
    assert not (tmp_path / "meds").exists()


def test_unknown_split_task_is_refused(demo_build, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(
        app,
        [
            "data",
            "export",
            "--data",
            str(demo_build.out_dir),
            "--out",
            str(tmp_path / "m"),
            "--split-task",
            "sepsis",
        ],
    )
    assert result.exit_code != 0
    assert "sepsis" in result.output


def test_subject_splits_group_patients(demo_build) -> None:  # type: ignore[no-untyped-def]
    splits = subject_splits(demo_build.out_dir, "icu_mortality", seed=3)
    assert splits["subject_id"].is_unique
    assert set(splits["split"]) == set(SPLITS)
