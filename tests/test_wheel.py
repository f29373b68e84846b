"""The wheel carries its data: built from the sources, installed into a fresh venv outside the
repository, and run end to end there (`safellm explain` with the fake model) with the source tree
out of sight. Prompts, the guard policy and the eval suites must come from the installed package.

The fresh venv borrows the heavy dependencies from this venv through a `.pth` file holding one
plain path line: such a line puts the folder on `sys.path` without processing the `.pth` files in
it, so this venv's editable install of safellm (a `__editable__` finder) stays inactive there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
# what the build needs; copied so that the build leaves no build/ or *.egg-info in the work tree
SOURCES = ("pyproject.toml", "README.md", "safellm", "app", "prompts", "guardrails", "evals")
DATA = ("prompts", "guardrails", "evals")

# Runs the console script `safellm` of the installed distribution, recording every file opened.
DRIVER = """
import json, os, sys
from importlib.metadata import entry_points

opened = []

def audit(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        opened.append(os.path.abspath(os.fsdecode(args[0])))

sys.addaudithook(audit)
(script,) = entry_points(group="console_scripts", name="safellm")
sys.argv = ["safellm", *sys.argv[1:]]
try:
    script.load()()
finally:
    with open(os.environ["OPENED_LOG"], "w") as fh:
        json.dump(opened, fh)
"""

PROBE = """
import json, safellm
from safellm import resources
from safellm.config import Settings
from safellm.guard.policy import DEFAULT_POLICY
s = Settings()
print(json.dumps({
    "safellm": safellm.__file__,
    "data": str(resources.data_dir()),
    "prompts_dir": str(s.prompts_dir),
    "guard_policy": str(s.guard_policy),
    "evals_dir": str(s.evals_dir),
    "default_policy": str(DEFAULT_POLICY),
    "grounding_set": str(resources.grounding_set()),
    "default_suite": str(resources.suite_file("default.v1")),
}))
"""


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    out = res.stdout + res.stderr
    shown = " ".join(c if "\n" not in c else "<script>" for c in cmd)
    assert res.returncode == 0, f"{shown} failed ({res.returncode}):\n{out}"
    return out


def _inside(path: str | Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


def _build_wheel(tmp_path: Path, env: dict[str, str]) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", "dist", "./src"], tmp_path, env)
    (wheel,) = (tmp_path / "dist").glob("safellm-*.whl")
    return wheel


def _fresh_venv(tmp_path: Path, wheel: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """A venv without pip whose site-packages holds the wheel; this venv's packages importable."""
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    python = venv / "bin" / "python"
    code = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(_run([str(python), "-c", code], tmp_path, env).strip())
    assert _inside(site, venv), site
    (site / "zz_safellm_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], tmp_path, env)
    return python, site


@pytest.mark.slow
def test_installed_wheel_runs_with_its_own_data(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "SAFELLM_", "PIP_"))}
    env |= {"PYTHONNOUSERSITE": "1", "PIP_NO_INDEX": "1"}
    wheel = _build_wheel(tmp_path, env)

    # the wheel: the data files of the three folders, and no other top-level name
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    dist_info = {t for t in top if t.startswith("safellm-") and t.endswith(".dist-info")}
    assert len(dist_info) == 1 and top == {"safellm", "app", *dist_info}, sorted(top)
    for folder in DATA:
        shipped = sorted(p.name for p in (ROOT / folder).glob("*.yaml"))
        packed = sorted(
            n.rsplit("/", 1)[1] for n in names if n.startswith(f"safellm/_data/{folder}/")
        )
        assert shipped and packed == shipped, f"package data of {folder}/ missing from the wheel"
    assert not any(n.endswith("make_suites.py") for n in names)

    python, site = _fresh_venv(tmp_path, wheel, env)
    work = tmp_path / "work"  # the cwd of every command: outside the repository
    work.mkdir()
    # one OpenMP thread: the gradient-boosted model's threads oversubscribe a small CPU (minutes)
    env |= {"SAFELLM_HOME": str(tmp_path / "home"), "SAFELLM_GUARD_JUDGE": "false"}
    env |= {"OMP_NUM_THREADS": "1"}

    # safellm is imported from the fresh venv, and its data lies there too
    where = json.loads(_run([str(python), "-c", PROBE], work, env))
    assert _inside(where["safellm"], site) and not _inside(where["safellm"], ROOT), where
    for key, path in where.items():
        assert _inside(path, site / "safellm"), f"{key} is not in the installed package: {path}"
        assert Path(path).exists(), f"{key} is missing from the installed package: {path}"

    # end to end on a tiny synthetic hospital, through the installed console script
    log = tmp_path / "opened.json"
    env_run = {**env, "OPENED_LOG": str(log)}
    cmd = [str(python), "-c", DRIVER]
    _run([*cmd, "data", "build", "--synthetic", "60"], work, env_run)
    _run([*cmd, "train", "--task", "readmission", "--n-boot", "20", "--no-mlflow"], work, env_run)
    cohort = pd.read_parquet(tmp_path / "home" / "data" / "readmission.parquet")
    hadm = str(int(cohort["hadm_id"].iloc[0]))
    explain = ["explain", "--task", "readmission", "--hadm-id", hadm, "--model", "fake"]
    out = _run([*cmd, *explain], work, env_run)

    assert "Rationale:" in out and "[F1]" in out, out
    assert re.search(r"guard: (passed|passed after \d re-ask|fallback)", out), out
    assert "policy clinical@v1" in out and "prompt explain-risk@v3" in out, out
    opened = json.loads(log.read_text())
    data = (site / "safellm" / "_data").resolve()
    yaml = {Path(p).resolve() for p in opened if p.endswith(".yaml")}
    assert data / "prompts" / "explain-risk.v3.yaml" in yaml, sorted(yaml)
    assert data / "guardrails" / "clinical.yaml" in yaml, sorted(yaml)
    assert data / "guardrails" / "injections.yaml" in yaml, sorted(yaml)
    assert data / "guardrails" / "concepts.yaml" in yaml, sorted(yaml)
    # nothing was read from the source tree (this venv's packages aside, if it lives inside it)
    repo = [p for p in opened if _inside(p, ROOT) and not _inside(p, Path(sys.prefix))]
    assert not repo, f"read from the repository: {repo[:10]}"
