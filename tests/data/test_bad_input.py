"""Broken MIMIC folders: each gives a clear error naming the file, and leaves no output behind."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from typer.testing import CliRunner

from safellm.cli import app
from safellm.data.build import build_dataset
from safellm.errors import DataFormatError, MissingTableError, SchemaError


def _rewrite(path: Path, transform) -> None:  # type: ignore[no-untyped-def]
    text = gzip.decompress(path.read_bytes()).decode()
    path.write_bytes(gzip.compress(transform(text).encode()))


def _assert_nothing_written(parent: Path) -> None:
    assert list(parent.iterdir()) == [], f"left behind: {list(parent.iterdir())}"


@pytest.fixture
def out_parent(tmp_path: Path) -> Path:
    p = tmp_path / "out"
    p.mkdir()
    return p


def test_missing_required_table(demo_copy: Path, out_parent: Path) -> None:
    (demo_copy / "ICUSTAYS.csv.gz").unlink()
    with pytest.raises(MissingTableError, match="ICUSTAYS"):
        build_dataset(demo_copy, out_parent / "data")
    _assert_nothing_written(out_parent)


def test_empty_folder(tmp_path: Path, out_parent: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MissingTableError, match="no MIMIC-III tables at all"):
        build_dataset(empty, out_parent / "data")
    _assert_nothing_written(out_parent)


def test_not_a_folder(tmp_path: Path, out_parent: Path) -> None:
    with pytest.raises(MissingTableError, match="not a folder"):
        build_dataset(tmp_path / "nope", out_parent / "data")


def test_truncated_gzip(demo_copy: Path, out_parent: Path) -> None:
    f = demo_copy / "LABEVENTS.csv.gz"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=r"LABEVENTS\.csv\.gz"):
        build_dataset(demo_copy, out_parent / "data")
    _assert_nothing_written(out_parent)


def test_garbage_instead_of_gzip(demo_copy: Path, out_parent: Path) -> None:
    (demo_copy / "PATIENTS.csv.gz").write_bytes(b"this is not gzip at all")
    with pytest.raises(DataFormatError, match=r"PATIENTS\.csv\.gz: cannot read"):
        build_dataset(demo_copy, out_parent / "data")
    _assert_nothing_written(out_parent)


def test_missing_column(demo_copy: Path, out_parent: Path) -> None:
    _rewrite(demo_copy / "ADMISSIONS.csv.gz", lambda t: t.replace("dischtime", "disch_time", 1))
    with pytest.raises(SchemaError, match=r"ADMISSIONS\.csv\.gz.*lacks.*dischtime"):
        build_dataset(demo_copy, out_parent / "data")
    _assert_nothing_written(out_parent)


def test_unparsable_timestamp(demo_copy: Path, out_parent: Path) -> None:
    _rewrite(
        demo_copy / "ADMISSIONS.csv.gz",
        lambda t: t.replace("2164-10-23 21:09:00", "23/10/2164 nine pm", 1),
    )
    with pytest.raises(DataFormatError, match=r"ADMISSIONS\.csv\.gz.*23/10/2164"):
        build_dataset(demo_copy, out_parent / "data")
    _assert_nothing_written(out_parent)


def test_empty_file(demo_copy: Path, out_parent: Path) -> None:
    (demo_copy / "SERVICES.csv.gz").write_bytes(gzip.compress(b""))
    with pytest.raises(DataFormatError, match=r"SERVICES\.csv\.gz: the file is empty"):
        build_dataset(demo_copy, out_parent / "data")


def test_failed_rebuild_keeps_the_previous_output(demo_copy: Path, out_parent: Path) -> None:
    good = build_dataset(demo_copy, out_parent / "data")
    report = (good.out_dir / "cohort_report.json").read_text()
    f = demo_copy / "LABEVENTS.csv.gz"
    f.write_bytes(f.read_bytes()[:5000])
    with pytest.raises(DataFormatError):
        build_dataset(demo_copy, out_parent / "data")
    assert (good.out_dir / "cohort_report.json").read_text() == report
    assert sorted(p.name for p in out_parent.iterdir()) == ["data"]


def test_cli_reports_the_error_without_traceback(demo_copy: Path, out_parent: Path) -> None:
    (demo_copy / "ICUSTAYS.csv.gz").unlink()
    res = CliRunner().invoke(
        app, ["data", "build", "--mimic-dir", str(demo_copy), "--out", str(out_parent / "data")]
    )
    assert res.exit_code == 2
    assert "ICUSTAYS" in res.output and "Traceback" not in res.output


def test_cli_needs_exactly_one_source(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["data", "build"])
    assert res.exit_code == 2
    assert "exactly one of --mimic-dir" in res.output


def test_absent_optional_tables_give_empty_outputs(demo_copy: Path, out_parent: Path) -> None:
    """No NOTEEVENTS (and no CHARTEVENTS): the build succeeds, notes are empty, both are listed."""
    import pandas as pd

    (demo_copy / "NOTEEVENTS.csv.gz").unlink()
    res = build_dataset(demo_copy, out_parent / "data")
    assert res.skipped_tables == ["CHARTEVENTS", "NOTEEVENTS"]
    notes = pd.read_parquet(res.out_dir / "notes.parquet")
    assert notes.empty and list(notes.columns)[:3] == ["note_id", "subject_id", "hadm_id"]
    assert res.report["readmission"]["rows"] == 89
