"""A live server on 127.0.0.1 (uvicorn in a thread) over the demo, with the fake model."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from app.api import create_app
from safellm.config import Settings
from tests.samples import home_over

LIVE_KEY = "sk-live-test"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, timeout_s: float = 120, poll_s: float = 0.3) -> bool:
    """Whether the server at `url` answers `/health` with 200 within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            time.sleep(poll_s)
    return False


@dataclass(frozen=True)
class Live:
    url: str
    key: str
    home: Path


@pytest.fixture(scope="session")
def live_server(demo_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    home = home_over(demo_home, tmp_path_factory.mktemp("live-home"))
    settings = Settings(
        home=home,
        llm_model="fake",
        guard_judge=False,
        api_keys=[SecretStr(LIVE_KEY)],
        api_rate_per_minute=100_000,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    if not wait_healthy(url):
        pytest.fail("the live server did not start")
    yield Live(url, LIVE_KEY, home)
    server.should_exit = True
    thread.join(timeout=10)
