from __future__ import annotations

from pathlib import Path

import pytest

from safellm.fsutil import atomic_write_text, staged_dir


def test_staged_dir_replaces_the_target_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), staged_dir(target) as work:
        (work / "new.txt").write_text("half")
        raise RuntimeError("crash mid-way")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (target / "old.txt").read_text() == "old"
    with staged_dir(target) as work:
        (work / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_write_text_leaves_no_temp_file(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "a" / "LATEST", "v1\n")
    atomic_write_text(tmp_path / "a" / "LATEST", "v2\n")
    assert (tmp_path / "a" / "LATEST").read_text() == "v2\n"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["LATEST"]


def test_atomic_path_renames_on_success_and_removes_the_temp_file_on_failure(
    tmp_path: Path,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from safellm.fsutil import atomic_path

    dest = tmp_path / "parts" / "part-1.parquet"
    with atomic_path(dest) as tmp:
        assert tmp.parent == dest.parent and tmp.name.startswith(".")
        pq.write_table(pa.table({"x": [1, 2]}), tmp)
        assert not dest.exists()  # nobody sees it before it is whole
    assert pq.read_table(dest)["x"].to_pylist() == [1, 2]
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_bytes(b"PAR1 half a file")
        raise RuntimeError("killed mid-write")
    assert pq.read_table(dest)["x"].to_pylist() == [1, 2]  # the old one, whole
    assert [p.name for p in dest.parent.iterdir()] == ["part-1.parquet"]
