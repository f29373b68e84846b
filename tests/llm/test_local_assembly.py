"""Assembling a packaged GGUF from its part packages: cached, atomic, sha256-checked, and clear
errors for a missing part or a wrong checksum. Uses tiny stand-in part packages."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from safellm.config import Settings
from safellm.errors import (
    ConfigError,
    ModelIntegrityError,
    ModelNotInstalledError,
    UnknownNameError,
)
from safellm.llm.local import PackagedModel, assemble, model_file

CHUNKS = [b"GGUF-part-one-", b"part-two-", b"part-three"]


@pytest.fixture
def parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PackagedModel:
    """Three importable part packages `tinypart_N`, each exposing get_part_path()."""
    site = tmp_path / "site"
    for i, chunk in enumerate(CHUNKS, start=1):
        pkg = site / f"tinypart_{i}"
        pkg.mkdir(parents=True)
        (pkg / "chunk.bin").write_bytes(chunk)
        (pkg / "__init__.py").write_text(
            "from pathlib import Path\n"
            "def get_part_path():\n    return Path(__file__).with_name('chunk.bin')\n"
        )
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(CHUNKS)
    return PackagedModel(
        "tiny",
        "tiny.gguf",
        "tinypart-{i}",
        "tinypart_{i}",
        3,
        "0.1",
        len(whole),
        hashlib.sha256(whole).hexdigest(),
    )


def test_assembles_once_and_reuses_the_verified_file(parts: PackagedModel, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    seen: list[int] = []
    path = assemble(parts, cache, progress=lambda done, total: seen.append(done))
    assert path.read_bytes() == b"".join(CHUNKS) and seen[-1] == parts.size
    assert sorted(p.name for p in cache.iterdir()) == ["tiny.gguf", "tiny.gguf.verified"]
    again: list[int] = []
    assert assemble(parts, cache, progress=lambda d, t: again.append(d)) == path
    assert again == []  # not re-read: the verified stamp matched


def test_a_changed_file_is_assembled_again(parts: PackagedModel, tmp_path: Path) -> None:
    path = assemble(parts, tmp_path)
    path.write_bytes(b"corrupted")
    assert assemble(parts, tmp_path).read_bytes() == b"".join(CHUNKS)


def test_checksum_mismatch_is_refused_and_leaves_nothing(
    parts: PackagedModel, tmp_path: Path
) -> None:
    wrong = PackagedModel(**{**parts.__dict__, "sha256": "0" * 64})
    with pytest.raises(ModelIntegrityError, match=r"sha256 .* expected 0000"):
        assemble(wrong, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_missing_part_package_names_it(parts: PackagedModel, tmp_path: Path) -> None:
    more = PackagedModel(**{**parts.__dict__, "parts": 4})
    with pytest.raises(ModelNotInstalledError, match=r"tinypart-4 is not installed.*pip install"):
        assemble(more, tmp_path)


def test_settings_choose_the_model_file(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match=r"packaged: qwen2\.5-coder-1\.5b"):
        model_file(Settings(home=tmp_path, local_model="llama-70b"))
    with pytest.raises(ConfigError, match="no such GGUF file"):
        model_file(Settings(home=tmp_path, local_model_path=tmp_path / "none.gguf"))
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"x")
    assert model_file(Settings(home=tmp_path, local_model_path=gguf)) == ("mine", gguf)
