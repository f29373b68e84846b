from __future__ import annotations

from pathlib import Path

import pytest

from safellm.config import OFFLINE_SWITCHES, Settings, apply_offline_switches


def test_settings_read_the_safellm_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SAFELLM_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("SAFELLM_SYNTHETIC_PATIENTS", "250")
    s = Settings()
    assert s.home == tmp_path / "h"
    assert s.data_dir == tmp_path / "h" / "data"
    assert s.synthetic_patients == 250


def test_invalid_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFELLM_SYNTHETIC_PATIENTS", "zero")
    with pytest.raises(ValueError, match="synthetic_patients"):
        Settings()


def test_queue_and_prefetch_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings().queue_max_waiting, Settings().prefetch) == (8, True)
    monkeypatch.setenv("SAFELLM_QUEUE_MAX_WAITING", "0")
    monkeypatch.setenv("SAFELLM_PREFETCH", "false")
    assert (Settings().queue_max_waiting, Settings().prefetch) == (0, False)
    monkeypatch.setenv("SAFELLM_QUEUE_MAX_WAITING", "-1")
    with pytest.raises(ValueError, match="queue_max_waiting"):
        Settings()


def test_offline_switches_keep_user_values() -> None:
    env = {"HF_HUB_OFFLINE": "0"}
    apply_offline_switches(env)
    assert env["HF_HUB_OFFLINE"] == "0"
    for key, value in OFFLINE_SWITCHES.items():
        if key != "HF_HUB_OFFLINE":
            assert env[key] == value
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_import_safellm_stays_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, safellm, safellm.config, safellm.errors, safellm.cli;"
        "heavy = [m for m in ('torch', 'gradio', 'litellm', 'shap', 'sklearn', 'duckdb')"
        " if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
