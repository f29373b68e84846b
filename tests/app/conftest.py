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

LIVE_KEY = "sk-live-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Live:
    url: str
    key: str


@pytest.fixture(scope="session")
def live_server(demo_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    home = tmp_path_factory.mktemp("live-home")
    for sub in ("data", "models"):
        (home / sub).symlink_to(demo_home / sub)
    settings = Settings(
        home=home,
        llm_model="fake",
        guard_judge=False,
        api_keys=[SecretStr(LIVE_KEY)],
        api_rate_per_minute=100_000,
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        pytest.fail("the live server did not start")
    yield Live(url, LIVE_KEY)
    server.should_exit = True
    thread.join(timeout=10)
