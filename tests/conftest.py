"""Shared fixtures. A socket guard fails any test that tries to leave the machine."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from pathlib import Path

import pytest

from safellm.config import apply_offline_switches

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SAFELLM_SHARED_DATA", ROOT.parent / "shared" / "data"))


class NetworkAccessError(RuntimeError):
    """Raised when a test tries to connect anywhere but this machine."""


def _is_local(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    if isinstance(address, tuple) and address:
        host = address[0]
        if host in ("localhost", ""):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False
    return False


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event == "socket.connect" and not _is_local(args[1]):
        raise NetworkAccessError(f"test tried to reach the network: {args[1]!r}")
    if (
        event == "socket.getaddrinfo"
        and args
        and args[0]
        not in (
            None,
            "localhost",
            "127.0.0.1",
            "::1",
            b"localhost",
        )
    ):
        host = args[0]
        try:
            if ipaddress.ip_address(host if isinstance(host, str) else host.decode()).is_loopback:
                return
        except ValueError:
            pass
        raise NetworkAccessError(f"test tried to resolve a network host: {host!r}")


sys.addaudithook(_audit)
apply_offline_switches()
socket.setdefaulttimeout(30)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}; set SAFELLM_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mimic_demo_dir(shared_data: Path) -> Path:
    return shared_data / "mimic-iii-demo-1.4"


@pytest.fixture(scope="session")
def demo_build(mimic_demo_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The MIMIC-III demo built once per test session (cohorts + features, Parquet)."""
    from safellm.data.build import build_dataset

    return build_dataset(mimic_demo_dir, tmp_path_factory.mktemp("demo") / "data")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_cache: Path) -> None:
    """Every test gets its own SAFELLM_HOME; nothing leaks into the work tree. The packaged local
    model is assembled once per session, into a shared cache."""
    monkeypatch.setenv("SAFELLM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SAFELLM_MODEL_CACHE", str(model_cache))


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def demo_home(demo_build, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """A SAFELLM_HOME with the demo built and the models of the three tasks trained (once)."""
    import shutil

    from safellm.services.training import train_and_register

    home = tmp_path_factory.mktemp("demo-home")
    shutil.copytree(demo_build.out_dir, home / "data")
    for task in ("readmission", "icu_mortality", "los"):
        train_and_register(task, home / "data", home, n_boot=20, log_mlflow=False)
    return home


@pytest.fixture(scope="session")
def demo_temporal_home(demo_home: Path) -> Path:
    """`demo_home` with the temporal model of both classification tasks trained too (once)."""
    from safellm.services.temporal_training import train_temporal_and_register

    for task in ("readmission", "icu_mortality"):
        train_temporal_and_register(task, demo_home / "data", demo_home, n_boot=20)
    return demo_home


@pytest.fixture(scope="session")
def pg_server():  # type: ignore[no-untyped-def]
    """A real PostgreSQL server on 127.0.0.1 for the session (tests/pgserver.py)."""
    from tests.pgserver import remove, start_server

    try:
        server = start_server()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    yield server
    remove(server)


@pytest.fixture
def pg_url(pg_server) -> str:  # type: ignore[no-untyped-def]
    """A fresh database of the session's server (the superuser's URL)."""
    return str(pg_server.new_database())
