"""Work nobody waits for stops: a waiting question leaves the queue, a generation stops between
two tokens when its client leaves or its deadline passes, and the audit trail says so; a flood of
explanations from one key gets 503s beyond the queue's bound while /health stays fast (on a live
server, real sockets)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from app.api import create_app
from safellm.audit import AuditLog
from safellm.cancel import CancelToken
from safellm.config import Settings
from safellm.errors import Cancelled
from safellm.llm.base import ChatRequest, ChatResponse, TokenSink
from safellm.llm.fake import FakeChatModel
from safellm.queueing import FairQueue
from safellm.services.explanation import Caller, ExplanationService
from tests.app.conftest import free_port, wait_healthy
from tests.samples import first_hadm, home_over

KEY = "sk-cancel-test"
AUTH = {"Authorization": f"Bearer {KEY}"}


class Counting(FakeChatModel):
    """The fake model, slowed to `delay_s` a token, counting the tokens it has produced."""

    def __init__(self, delay_s: float = 0.1) -> None:
        super().__init__(token_delay_s=delay_s)
        self.produced = 0

    def chat(self, request: ChatRequest, on_token: TokenSink | None = None) -> ChatResponse:
        def sink(text: str) -> None:
            self.produced += 1
            if on_token is not None:
                on_token(text)

        return super().chat(request, sink)

    def settled(self, quiet_s: float = 1.0) -> int:
        """The count once it has not moved for `quiet_s`."""
        while True:
            n = self.produced
            time.sleep(quiet_s)
            if self.produced == n:
                return n


def _waiter(q: FairQueue, token: CancelToken, out: list[str]) -> threading.Thread:
    def run() -> None:
        try:
            with q.enter(cancel=token):
                out.append("served")
        except Cancelled as exc:
            out.append(exc.reason)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize(("deadline_s", "reason"), [(None, "cancelled"), (0.3, "timed_out")])
def test_a_waiting_question_leaves_the_queue(deadline_s: float | None, reason: str) -> None:
    q = FairQueue(max_waiting=4)
    held, go = threading.Event(), threading.Event()

    def holder() -> None:
        with q.enter():
            held.set()
            go.wait(10)

    threading.Thread(target=holder, daemon=True).start()
    assert held.wait(10)
    token, out = CancelToken(deadline_s), []
    t = _waiter(q, token, out)
    deadline = time.monotonic() + 5
    while q.waiting() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert q.waiting() == 1
    if deadline_s is None:
        token.cancel()
    t.join(3)
    assert out == [reason] and q.waiting() == 0
    go.set()


# ------------------------------------------------------------------------------ live server
class Live:
    def __init__(self, url: str, model: Counting, service: ExplanationService, hadm: int):
        self.url, self.model, self.service, self.hadm = url, model, service, hadm

    def rows(self) -> list[Any]:
        return self.service.audit.records()


@pytest.fixture
def live(demo_home: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Live]:
    extra: dict[str, Any] = getattr(request, "param", {})
    settings = Settings(
        home=demo_home,
        llm_model="fake",
        guard_judge=False,
        prefetch=False,
        api_keys=[SecretStr(KEY)],
        api_rate_per_minute=100_000,
        **extra,
    )
    model = Counting(delay_s=0.25)  # a whole answer takes seconds: time to leave mid-way
    service = ExplanationService(
        settings, models={"fake": model}, audit=AuditLog(tmp_path / "audit.sqlite")
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, service=service), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    if not wait_healthy(url):
        pytest.fail("the live server did not start")
    yield Live(url, model, service, first_hadm(demo_home))
    server.should_exit = True
    thread.join(timeout=15)


def test_a_dropped_stream_stops_its_generation_within_a_second(live: Live) -> None:
    body = {"task": "readmission", "hadm_id": live.hadm}
    with httpx.stream(
        "POST", f"{live.url}/v1/explain/stream", json=body, headers=AUTH, timeout=30
    ) as s:
        for line in s.iter_lines():
            if line.startswith("event: token"):
                break  # one token seen: the client leaves
    left = time.monotonic()
    n = live.model.settled(quiet_s=0.5)
    assert time.monotonic() - left < 1.0 + 0.5 + 0.3  # stopped within a second (+ the quiet)
    assert n > 0
    deadline = time.monotonic() + 5
    while not live.rows() and time.monotonic() < deadline:
        time.sleep(0.05)
    (row,) = live.rows()
    assert (row.outcome, row.answer_sha256, row.route) == ("cancelled", "", "/v1/explain/stream")
    whole = httpx.post(f"{live.url}/v1/explain", json=body, headers=AUTH, timeout=60)
    assert whole.status_code == 200  # nothing left running: the next client is served
    assert n < live.model.produced - n  # the cut answer had fewer tokens than a whole one
    assert [r.outcome for r in live.rows()] == ["cancelled", "delivered"]
    assert live.service.audit.verify().intact


def test_a_client_that_times_out_stops_its_generation(live: Live) -> None:
    body = {"task": "readmission", "hadm_id": live.hadm}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{live.url}/v1/explain", json=body, headers=AUTH, timeout=1.0)
    n = live.model.settled(quiet_s=0.7)
    assert n > 0
    deadline = time.monotonic() + 5
    while not live.rows() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [r.outcome for r in live.rows()] == ["cancelled"]


@pytest.mark.parametrize("live", [{"api_deadline_s": 0.8}], indirect=True)
def test_an_expired_deadline_is_503_and_audited_as_timed_out(live: Live) -> None:
    body = {"task": "readmission", "hadm_id": live.hadm}
    r = httpx.post(f"{live.url}/v1/explain", json=body, headers=AUTH, timeout=30)
    assert r.status_code == 503 and r.json()["error"]["code"] == "deadline_exceeded"
    assert "Retry-After" in r.headers
    assert [r.outcome for r in live.rows()] == ["timed_out"]


@pytest.mark.parametrize("live", [{"queue_max_waiting": 8}], indirect=True)
def test_a_flood_from_one_key_is_refused_beyond_its_share_and_leaves_nothing_running(
    live: Live,
) -> None:
    codes = _flood(live.url, live.hadm, clients=45, timeout_s=4.0)
    assert len(codes) == 45
    # one key holds at most its share (4) of the queue: the rest refused at once
    assert codes.count(503) == 45 - 4 and codes.count(0) + codes.count(200) == 4
    deadline = time.monotonic() + 5  # the clients that gave up left nothing running
    while not live.service.queue.idle() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live.service.queue.idle()


@pytest.mark.parametrize("live", [{"queue_max_waiting": 8}], indirect=True)
@pytest.mark.parametrize("route", ["/v1/explain", "/v1/explain/stream"])
def test_a_crowd_is_refused_while_the_admitted_still_make_their_facts(
    live: Live, route: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Facts can take long (a large hospital's SHAP and note retrieval on a busy machine): the
    queue places are taken before them, so a crowd from one key is refused beyond its share at
    once, not after every member has made its Facts (a look at the queue alone lets them all
    through: nobody has entered it yet)."""
    gate, making = threading.Event(), []
    real = live.service.facts

    def slow_facts(*args: Any, **kwargs: Any) -> Any:
        making.append(1)
        assert gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(live.service, "facts", slow_facts)
    live.model._delay = 0.0  # the admitted answer at once once their Facts are made
    codes: list[int] = []
    bodies: list[str] = []
    body = {"task": "readmission", "hadm_id": live.hadm}

    def one() -> None:
        r = httpx.post(live.url + route, json=body, headers=AUTH, timeout=60)
        codes.append(r.status_code)
        bodies.append(r.text[:300])

    threads = [threading.Thread(target=one, daemon=True) for _ in range(10)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 15
    while len(codes) < 6 and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        assert codes == [503] * 6 and len(making) == 4  # refused while the four still wait
    finally:
        gate.set()
        for t in threads:
            t.join(60)
    assert sorted(codes) == [200] * 4 + [503] * 6, [b for b in bodies if "queue_full" not in b]
    assert live.service.queue.idle()


def _flood(url: str, hadm: int, clients: int, timeout_s: float) -> list[int]:
    """`clients` explanations at once; each status (0: no answer: the client gave up)."""
    codes: list[int] = []
    body = {"task": "readmission", "hadm_id": hadm}

    def one() -> None:
        try:
            r = httpx.post(f"{url}/v1/explain", json=body, headers=AUTH, timeout=timeout_s)
            codes.append(r.status_code)
        except httpx.HTTPError:  # gave up waiting (or the server went away)
            codes.append(0)

    threads = [threading.Thread(target=one, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s + 30)
    return codes


@pytest.mark.llm
@pytest.mark.slow
def test_45_local_model_explains_get_503s_beyond_the_bound_and_health_stays_fast(
    demo_home: Path, tmp_path: Path
) -> None:
    """`safellm serve` in its own process with the packaged local model, as deployed."""
    import os
    import subprocess
    import sys

    home = home_over(demo_home, tmp_path / "home")
    port = free_port()
    env = {
        **os.environ,
        "SAFELLM_HOME": str(home),
        "SAFELLM_LLM_MODEL": "local",
        "SAFELLM_GUARD_JUDGE": "false",
        "SAFELLM_PREFETCH": "false",
        "SAFELLM_API_KEYS": KEY,
        "SAFELLM_API_RATE_PER_MINUTE": "1000",
    }
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "safellm.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_healthy(url, timeout_s=300):
            pytest.fail(f"serve did not start: {(tmp_path / 'serve.log').read_text()[-2000:]}")
        health_s: list[float] = []
        done = threading.Event()

        def probe() -> None:
            with httpx.Client(timeout=10) as c:
                while not done.is_set():
                    t = time.perf_counter()
                    assert c.get(f"{url}/health").status_code == 200
                    health_s.append(time.perf_counter() - t)
                    time.sleep(0.05)

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        codes = _flood(url, first_hadm(demo_home), clients=45, timeout_s=5.0)
        time.sleep(2)  # the four admitted gave up at 5 s: their work stops
        done.set()
        prober.join(15)
        assert codes.count(503) == 45 - 4, codes  # the key's share of the queue: 4
        assert health_s and max(health_s) < 1.0, max(health_s)
        rows = AuditLog(home / "audit.sqlite").records()
        assert rows and all(r.outcome in ("cancelled", "delivered") for r in rows)
        assert sum(r.outcome == "cancelled" for r in rows) >= 3  # no client stayed for them
        # SIGTERM with a question in flight: done within the shutdown bound (10 s), not after
        # the generation
        busy = threading.Thread(target=_flood, args=(url, first_hadm(demo_home), 1, 60.0))
        busy.start()
        time.sleep(3)
        t = time.monotonic()
        proc.terminate()
        proc.wait(timeout=60)
        assert time.monotonic() - t < 15
        busy.join(70)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()


def test_the_service_stops_between_two_tokens_and_records_the_work_given_up(
    demo_home: Path, tmp_path: Path
) -> None:
    model = Counting(delay_s=0.05)
    settings = Settings(home=demo_home, llm_model="fake", guard_judge=False, prefetch=False)
    service = ExplanationService(
        settings, models={"fake": model}, audit=AuditLog(tmp_path / "a.sqlite")
    )
    facts = service.facts("readmission", first_hadm(demo_home))
    whole = service.explain_facts(facts, caller=Caller("k", "/test"))
    assert "[F1]" in whole.rationale.text
    full, model.produced = model.produced, 0
    token = CancelToken()
    threading.Timer(0.3, token.cancel).start()
    with pytest.raises(Cancelled):
        service.explain_facts(facts, caller=Caller("k", "/test"), cancel=token)
    n = model.settled(quiet_s=0.3)
    assert 0 < n < full
    rows = service.audit.records()
    assert [r.outcome for r in rows] == ["delivered", "cancelled"]
    assert rows[1].hadm_id == facts.hadm_id and rows[1].answer_sha256 == ""
