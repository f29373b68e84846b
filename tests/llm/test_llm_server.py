"""The LLM as a service: llama-cpp-python's OpenAI-compatible server on loopback with the
packaged GGUF, reached through LiteLLM (`--model openai/<alias>`, `SAFELLM_LLM_API_BASE`) by
`safellm explain`, guard included; and a server that is not there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from safellm.config import Settings
from safellm.llm.local import model_file
from tests.app.conftest import free_port
from tests.samples import first_hadm, home_over

ALIAS = "safellm-local"
SAFELLM = Path(sys.executable).with_name("safellm")


@pytest.fixture(scope="module")
def llm_server(
    model_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """`python -m llama_cpp.server` with the packaged model: its OpenAI API base, its log."""
    _, gguf = model_file(Settings(model_cache=model_cache))
    port = free_port()
    log = tmp_path_factory.mktemp("llm-server") / "server.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(gguf),
                "--model_alias",
                ALIAS,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "4096",
                "--n_threads",
                "2",
                "--verbose",
                "False",
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the LLM server did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield base, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _explain(home: Path, base: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "SAFELLM_HOME": str(home),
        "SAFELLM_LLM_API_BASE": base,
        "SAFELLM_LLM_API_KEY": "none",  # the server asks for none; LiteLLM wants one
        "SAFELLM_LLM_TIMEOUT_S": "600",  # a CPU shared with the server: prefill is slow
    }
    return subprocess.run(
        [
            str(SAFELLM),
            "explain",
            "--task",
            "readmission",
            "--hadm-id",
            str(first_hadm(home)),
            "--model",
            f"openai/{ALIAS}",
            "--json",
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.llm
@pytest.mark.slow
def test_explain_through_an_openai_compatible_server(
    llm_server: tuple[str, Path], demo_home: Path, tmp_path: Path
) -> None:
    base, log = llm_server
    home = home_over(demo_home, tmp_path / "home")
    res = _explain(home, base)
    assert res.returncode == 0, res.stderr[-3000:]
    exp = json.loads(res.stdout)
    assert exp["versions"]["llm"] == f"openai/{ALIAS}"
    # the server answered the chat completions (its access log) ...
    assert '"POST /v1/chat/completions HTTP/1.1" 200' in log.read_text()
    # ... and its answer went through the guard: a report, real citations, the model's own
    # words kept unless the guard fell back
    guard = exp["guard"]
    assert isinstance(guard["passed"], bool) and isinstance(guard["violations"], list)
    if not guard["fallback_used"]:
        assert exp["rationale"]["model_text"].strip()
    facts = {c["id"] for c in exp["facts"]["contributions"]}
    cited = exp["rationale"]["citations"]
    assert cited and all(c in facts or c.startswith("N") for c in cited)
    assert "Decision support only" in exp["rationale"]["text"]


def test_a_server_that_is_not_there_is_a_clear_error(demo_home: Path, tmp_path: Path) -> None:
    home = home_over(demo_home, tmp_path / "home")
    res = _explain(home, f"http://127.0.0.1:{free_port()}/v1")
    text = " ".join((res.stdout + res.stderr).split())
    assert f"openai/{ALIAS}" in text and "Traceback" not in text
    assert "cannot reach the provider" in text and "SAFELLM_LLM_API_BASE" in text, text[-2000:]
