"""`safellm serve` starts the API (and chat) and, with no keys configured, prints a one-run key."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.app.conftest import free_port, wait_healthy


@pytest.mark.slow
def test_serve_prints_a_key_that_opens_the_api(demo_home: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "SAFELLM_HOME": str(demo_home),
        "SAFELLM_LLM_MODEL": "fake",
        "SAFELLM_GUARD_JUDGE": "false",
        "NO_COLOR": "1",
        "COLUMNS": "200",
        "SAFELLM_API_HEADER_TIMEOUT_S": "2",
    }
    env.pop("SAFELLM_API_KEYS", None)
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from safellm.cli import main; main()",
                "serve",
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        if not wait_healthy(url, poll_s=0.5):
            pytest.fail(f"serve did not start: {log.read_text()[-2000:]}")
        key = re.search(r"accepts the key (sk-\S+)", log.read_text())
        assert key, log.read_text()
        assert httpx.get(f"{url}/v1/patients?task=readmission&limit=1").status_code == 401
        ok = httpx.get(
            f"{url}/v1/patients?task=readmission&limit=1",
            headers={"Authorization": f"Bearer {key.group(1)}"},
        )
        assert ok.status_code == 200 and ok.json()["total"] == 89
        assert httpx.get(f"{url}/chat/").status_code == 200
        leaky = httpx.get(f"{url}/v1/patients?task=readmission&api_key=sk-in-the-query")
        assert leaky.status_code == 401
        # a client that never finishes its headers is cut off (SAFELLM_API_HEADER_TIMEOUT_S=2)
        with socket.create_connection(("127.0.0.1", port), timeout=15) as raw:
            raw.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and then nothing
            t = time.monotonic()
            assert raw.recv(1024) == b"" and time.monotonic() - t < 6
        # X-Forwarded-For is not trusted (no SAFELLM_API_TRUSTED_PROXIES): a client cannot
        # dodge the sign-in throttle by claiming other addresses
        codes = [
            httpx.post(
                f"{url}/chat/login",
                data={"username": f"u{i}", "password": "wrong"},
                headers={"X-Forwarded-For": f"10.9.9.{i}"},
            ).status_code
            for i in range(6)
        ]
        assert codes == [400] * 5 + [429]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    logged = log.read_text()
    assert "sk-in-the-query" not in logged and "api_key" not in logged  # no query strings
    lines = [json.loads(x) for x in logged.splitlines() if x.startswith('{"event":')]
    mine = {x["request_id"]: x for x in lines}
    seen = mine[ok.headers["X-Request-ID"]]
    assert (seen["route"], seen["status"], seen["method"]) == ("/v1/patients", 200, "GET")
    assert seen["key"] and seen["key"] not in key.group(1) and seen["ms"] >= 0
    assert mine[leaky.headers["X-Request-ID"]]["status"] == 401
