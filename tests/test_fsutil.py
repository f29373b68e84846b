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
