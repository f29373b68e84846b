"""The chat behind the API's controls: no patient in the page before sign-in, failed sign-ins
slowed per client and per user name, the key's rate limit on chat questions (on a live server,
through Gradio's own client library)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.api import create_app
from app.security import LoginThrottle
from safellm.config import Settings
from safellm.services.explanation import ExplanationService
from tests.app.conftest import free_port, wait_healthy
from tests.samples import home_over

KEY = "sk-chat-test"
QUESTION = "Why is this patient high risk?"


def _settings(home: Path, rate: int = 1000) -> Settings:
    return Settings(
        home=home,
        llm_model="fake",
        guard_judge=False,
        api_keys=[SecretStr(KEY)],
        api_rate_per_minute=rate,
    )


@pytest.fixture
def home(demo_home: Path, tmp_path: Path) -> Path:
    return home_over(demo_home, tmp_path / "home")


# what a browser (or anyone) can fetch of the chat before signing in
PAGES = ["/chat/", "/chat/config", "/chat/info", "/chat/gradio_api/info", "/chat/gradio_api/config"]


def test_the_page_before_sign_in_names_no_patient(home: Path) -> None:
    settings = _settings(home)
    top = [str(int(h)) for h in ExplanationService(settings).risks("readmission")["hadm_id"][:5]]
    with TestClient(create_app(settings)) as c:
        seen = {p: c.get(p) for p in PAGES}
        assert seen["/chat/"].status_code == 200 and "<gradio-app" in seen["/chat/"].text
        for path, r in seen.items():
            assert not [h for h in top if re.search(rf"\b{h}\b", r.text)], path
        # signed in, the list comes with the session (the page's load event), not in the page
        assert c.post("/chat/login", data={"username": "ann", "password": KEY}).status_code == 200
        config = c.get("/chat/config")
        assert config.status_code == 200 and '"Patient"' in config.text
        assert not [h for h in top if re.search(rf"\b{h}\b", config.text)]


def _login(c: TestClient, user: str, password: str) -> httpx.Response:
    return c.post("/chat/login", data={"username": user, "password": password})


def test_failed_sign_ins_slow_down_the_next_per_client_and_per_user(home: Path) -> None:
    app = create_app(_settings(home))
    with TestClient(app, client=("10.0.0.1", 5000)) as c:
        assert [_login(c, f"u{i}", "wrong").status_code for i in range(5)] == [400] * 5
        slowed = _login(c, "u9", KEY)  # the right key, but this client must wait now
        assert slowed.status_code == 429 and int(slowed.headers["Retry-After"]) >= 1
        assert slowed.json()["error"]["code"] == "too_many_sign_ins"
    with (
        TestClient(app, client=("10.0.0.2", 5000)) as a,
        TestClient(app, client=("10.0.0.3", 5000)) as b,
    ):
        for i, c in enumerate((a, b, a, b, a)):  # five failures for one user name, two clients
            assert _login(c, "ann", f"wrong{i}").status_code == 400
        fresh = TestClient(app, client=("10.0.0.4", 5000))
        assert _login(fresh, "ann", KEY).status_code == 400  # that user name must wait
        assert _login(fresh, "bob", KEY).status_code == 200  # another user from that client


def test_the_throttle_doubles_the_wait_forgets_old_failures_and_clears_on_success() -> None:
    now = [0.0]
    t = LoginThrottle(free=2, window_s=100.0, max_wait_s=8.0, clock=lambda: now[0])
    t.failed("x")
    assert t.wait("x") == 0.0  # within the free tries
    waits = []
    for _ in range(4):
        t.failed("x")
        waits.append(t.wait("x"))
    assert waits == [2.0, 4.0, 8.0, 8.0]  # doubling, capped
    now[0] = 3.0
    assert t.wait("x") == 5.0
    now[0] = 200.0  # the window passed: forgotten
    assert t.wait("x") == 0.0
    for _ in range(2):
        t.failed("y")
    assert t.wait("y") > 0 and t.wait("z") == 0.0
    t.succeeded("y")
    assert t.wait("y") == 0.0


@pytest.fixture
def limited_server(home: Path) -> Iterator[str]:
    """A live server whose keys may ask 2 questions a minute."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(_settings(home, rate=2)), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    if not wait_healthy(url):
        pytest.fail("the live server did not start")
    yield url
    server.should_exit = True
    thread.join(timeout=10)


def test_chat_questions_count_against_the_keys_rate_limit(limited_server: str, home: Path) -> None:
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from safellm.audit import AuditLog

    client = Client(f"{limited_server}/chat/", auth=("ann", KEY), verbose=False)
    with pytest.raises(AppError, match="Pick a patient"):  # any value reaches the server
        client.predict("readmission", "1 OR 1=1", api_name="/pick")
    hadm = str(int(ExplanationService(_settings(home)).risks("readmission")["hadm_id"].iloc[0]))
    answers = []
    for _ in range(3):
        history, _badge, _ev = client.submit(
            "readmission", hadm, QUESTION, [], api_name="/ask"
        ).result(timeout=120)
        answers.append(str(history[-1]["content"]))
    assert "[F1]" in answers[0] and "[F1]" in answers[1]
    assert "Too many questions" in answers[2] and "[F1]" not in answers[2]
    assert len(AuditLog(home / "audit.sqlite").records()) == 2  # the refused one: not answered
    r = httpx.post(  # the REST API shares the limit: this key's minute is used up
        f"{limited_server}/v1/explain",
        json={"task": "readmission", "hadm_id": int(hadm)},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=30,
    )
    assert r.status_code == 429
