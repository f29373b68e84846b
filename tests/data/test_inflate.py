"""Large gzipped tables are inflated (ISA-L) before DuckDB reads them: same tables, clear errors,
no scratch files left behind."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from safellm.data import mimic
from safellm.data.build import build_dataset
from safellm.errors import DataFormatError


def test_build_with_every_table_inflated_gives_identical_tables(
    mimic_demo_dir: Path, demo_build, tmp_path: Path
) -> None:
    scratch = tmp_path / "scratch"
    res = build_dataset(mimic_demo_dir, tmp_path / "data", scratch=scratch, inflate_above=0)
    assert res.report == demo_build.report
    for task in res.features:
        a = pd.read_parquet(demo_build.out_dir / f"{task}.parquet")
        b = pd.read_parquet(res.out_dir / f"{task}.parquet")
        pd.testing.assert_frame_equal(a, b)
    # every inflated copy deleted (staged tables are parsed in memory: no copy at all)
    assert not scratch.exists() or list(scratch.iterdir()) == []


def test_inflated_table_is_read_from_the_plain_copy(mimic_demo_dir: Path, tmp_path: Path) -> None:
    folder = mimic.open_mimic(mimic_demo_dir)
    inflate = mimic.Inflate(tmp_path / "scratch", above_bytes=0)
    with mimic.table_source(folder, "LABEVENTS", inflate) as source:
        copies = list((tmp_path / "scratch").glob("*/labevents.csv"))
        assert len(copies) == 1 and str(copies[0]) in source
        assert "raw_labevents" not in source
    assert not copies[0].exists()
    # below the threshold, the table is read straight from its file
    with mimic.table_source(folder, "LABEVENTS", mimic.Inflate(tmp_path, 1 << 40)) as source:
        assert "raw_labevents" in source


def test_truncated_large_gzip_names_the_file_and_leaves_nothing(
    demo_copy: Path, tmp_path: Path
) -> None:
    f = demo_copy / "LABEVENTS.csv.gz"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    scratch, out = tmp_path / "scratch", tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataFormatError, match=r"LABEVENTS\.csv\.gz: cannot decompress"):
        build_dataset(demo_copy, out / "data", scratch=scratch, inflate_above=0)
    assert not scratch.exists() or list(scratch.iterdir()) == []
    assert list(out.iterdir()) == []


def test_inflated_size_reads_the_gzip_trailer(tmp_path: Path) -> None:
    body = b"row_id,subject_id\n" + b"1,2\n" * 50_000
    p = tmp_path / "T.csv.gz"
    p.write_bytes(gzip.compress(body))
    assert mimic.inflated_size(p) == len(body)
    out = mimic.gunzip(p, tmp_path / "t.csv")
    assert out.read_bytes() == body


def test_scratch_is_shared_memory_only_when_it_has_room(
    mimic_demo_dir: Path, tmp_path: Path
) -> None:
    folder = mimic.open_mimic(mimic_demo_dir)
    fallback = tmp_path / "spill"
    roomy = tmp_path / "shm"
    roomy.mkdir()
    assert mimic.scratch_dir(folder, fallback, shm=roomy, above_bytes=0) == roomy
    assert mimic.scratch_dir(folder, fallback, shm=tmp_path / "no-shm") == fallback
