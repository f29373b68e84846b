"""`safellm data ingest`: the tables as Parquet once; a build from them is the same build; bad input
is named and leaves nothing."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from safellm.cli import app
from safellm.data import mimic
from safellm.data.build import build_dataset
from safellm.data.ingest import INGEST_FILE, ingest_dataset
from safellm.data.synthetic import synthesize
from safellm.errors import DataFormatError, UserInputError


def _rows(path: Path) -> int:
    return int(
        duckdb.sql(
            f"SELECT count(*) FROM read_csv('{path}', header=true, all_varchar=true, "
            "max_line_size=50000000)"
        ).fetchall()[0][0]
    )


def _same_build(a: Path, b: Path, tasks: list[str]) -> None:
    assert json.loads((a / "cohort_report.json").read_text()) == json.loads(
        (b / "cohort_report.json").read_text()
    )
    for task in tasks:
        for stem in (task, f"events_{task}"):
            x = pd.read_parquet(a / f"{stem}.parquet")
            y = pd.read_parquet(b / f"{stem}.parquet")
            sort = list(x.columns[:3])
            pd.testing.assert_frame_equal(
                x.sort_values(sort).reset_index(drop=True),
                y.sort_values(sort).reset_index(drop=True),
            )
    pd.testing.assert_frame_equal(
        pd.read_parquet(a / "notes.parquet"), pd.read_parquet(b / "notes.parquet")
    )


def test_build_from_the_ingested_demo_is_the_same_build(
    mimic_demo_dir: Path, demo_build, tmp_path: Path
) -> None:
    res = ingest_dataset(mimic_demo_dir, tmp_path / "pq")
    folder = mimic.open_mimic(mimic_demo_dir)
    assert set(res.rows) == set(folder.files)
    for name, path in folder.files.items():
        assert res.rows[name] == _rows(path), name
        assert (tmp_path / "pq" / f"{name}.parquet").is_dir()
    record = json.loads((tmp_path / "pq" / INGEST_FILE).read_text())
    assert record["rows"] == res.rows
    ingested = mimic.open_mimic(tmp_path / "pq")
    assert all(mimic.is_parquet(p) for p in ingested.files.values())
    assert ingested.headers == folder.headers  # every column kept, same names
    built = build_dataset(tmp_path / "pq", tmp_path / "data")
    _same_build(demo_build.out_dir, built.out_dir, list(built.features))


def test_chartevents_ingested_in_pieces_builds_the_same_vitals(tmp_path: Path) -> None:
    hospital = tmp_path / "h"
    synthesize(hospital, 60, seed=3, batch_size=30, chartevents="vitals")
    res = ingest_dataset(
        hospital, tmp_path / "pq", scratch=tmp_path / "s", piece_bytes=256 * 1024, inflate_above=0
    )
    parts = list((tmp_path / "pq" / "CHARTEVENTS.parquet").glob("*.parquet"))
    assert len(parts) > 3  # really in pieces
    assert res.rows["CHARTEVENTS"] == _rows(hospital / "CHARTEVENTS.csv.gz")
    assert res.rows["NOTEEVENTS"] == _rows(hospital / "NOTEEVENTS.csv.gz") > 0
    a = build_dataset(hospital, tmp_path / "a")
    b = build_dataset(tmp_path / "pq", tmp_path / "b")
    assert any(f.startswith("vital_") for f in b.features["icu_mortality"])
    _same_build(a.out_dir, b.out_dir, list(a.features))
    assert list((tmp_path / "s").iterdir()) == []


def test_bad_value_names_file_and_line_and_writes_nothing(demo_copy: Path, tmp_path: Path) -> None:
    f = demo_copy / "ADMISSIONS.csv.gz"
    lines = gzip.decompress(f.read_bytes()).split(b"\n")
    fields = lines[4].split(b",")
    fields[1] = b"x1"  # subject_id of line 5
    lines[4] = b",".join(fields)
    f.write_bytes(gzip.compress(b"\n".join(lines)))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataFormatError, match=r"ADMISSIONS\.csv\.gz: .*line 5: column subject_id"):
        ingest_dataset(demo_copy, out / "pq")
    assert list(out.iterdir()) == []


def test_an_ingested_folder_is_not_ingested_again(mimic_demo_dir: Path, tmp_path: Path) -> None:
    ingest_dataset(mimic_demo_dir, tmp_path / "pq")
    with pytest.raises(UserInputError, match="already ingested"):
        ingest_dataset(tmp_path / "pq", tmp_path / "pq2")
    with pytest.raises(UserInputError, match="other than the source"):
        ingest_dataset(mimic_demo_dir, mimic_demo_dir)


def test_cli_ingest_prints_rows_and_the_build_command(mimic_demo_dir: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["data", "ingest", "--mimic-dir", str(mimic_demo_dir), "--out", str(tmp_path / "pq")]
    )
    assert res.exit_code == 0, res.output
    assert "LABEVENTS" in res.output and "76,074" in res.output
    assert f"safellm data build --mimic-dir {tmp_path / 'pq'}" in res.output.replace("\n", "")
    bad = CliRunner().invoke(
        app, ["data", "ingest", "--mimic-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]
    )
    text = " ".join(bad.output.split())
    assert bad.exit_code != 0 and "not a folder" in text and "Traceback" not in text


def test_meds_export_of_an_ingested_build_has_the_same_events(
    mimic_demo_dir: Path, demo_build, tmp_path: Path
) -> None:
    from safellm.config import Settings
    from safellm.services.data import export_data

    ingest_dataset(mimic_demo_dir, tmp_path / "pq")
    built = build_dataset(tmp_path / "pq", tmp_path / "data", notes=False, events=False)
    export_data(Settings(), demo_build.out_dir, tmp_path / "a", shard_subjects=25)
    export_data(Settings(), built.out_dir, tmp_path / "b", shard_subjects=25)

    def events(root: Path) -> pd.DataFrame:
        frame = pd.concat(
            [pd.read_parquet(f) for f in sorted((root / "data").rglob("*.parquet"))],
            ignore_index=True,
        )
        cols = ["subject_id", "time", "code", "numeric_value"]
        return frame.sort_values(cols).reset_index(drop=True)

    a, b = events(tmp_path / "a"), events(tmp_path / "b")
    assert len(a) > 50_000
    pd.testing.assert_frame_equal(a, b)
