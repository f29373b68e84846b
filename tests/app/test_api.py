"""The REST API through TestClient: every route, auth, errors, limits, faults, audit, logs."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.api import create_app
from safellm.audit import AuditLog
from safellm.config import Settings
from safellm.errors import LLMTimeoutError, LLMUnavailableError
from safellm.llm.fake import FakeChatModel
from safellm.services.explanation import ExplanationService
from tests.samples import EXPLANATION_KEYS, PrefetchingFake, first_hadm

KEY = "sk-test-key-1"
AUTH = {"Authorization": f"Bearer {KEY}"}
QUESTION = "Why is Mr Zebulon Quackenbush at high risk?"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


SERVER_LOG = _Collect()


@pytest.fixture(scope="module", autouse=True)
def _server_log():  # type: ignore[no-untyped-def]
    """Every log line of this module's requests (all loggers), for the last test to grep."""
    root = logging.getLogger()
    old = root.level
    root.addHandler(SERVER_LOG)
    root.setLevel(logging.DEBUG)
    yield
    root.removeHandler(SERVER_LOG)
    root.setLevel(old)


def _settings(home: Path, **kw) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(home=home, llm_model="fake", guard_judge=False, api_keys=[SecretStr(KEY)], **kw)


@pytest.fixture
def client(demo_home: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = _settings(demo_home, api_rate_per_minute=1000)
    audit = AuditLog(tmp_path / "audit.sqlite")
    with TestClient(create_app(settings, audit=audit)) as c:
        c.audit = audit  # type: ignore[attr-defined]
        yield c


def test_health_needs_no_key(client) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and set(body["tasks"]) == {"readmission", "icu_mortality", "los"}
    assert body["versions"]["policy"] == "clinical@v1" and body["llm_ready"] is True


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/v1/predict", {"task": "readmission", "hadm_id": 1}),
        ("post", "/v1/explain", {"task": "readmission", "hadm_id": 1}),
        ("post", "/v1/explain/stream", {"task": "readmission", "hadm_id": 1}),
        ("get", "/v1/patients?task=readmission", None),
    ],
)
def test_every_route_but_health_needs_a_key(client, method, path, body) -> None:  # type: ignore[no-untyped-def]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        r = (
            getattr(client, method)(path, json=body, headers=headers)
            if body
            else getattr(client, method)(path, headers=headers)
        )
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert r.headers["WWW-Authenticate"] == "Bearer"


def test_predict(client, demo_home) -> None:  # type: ignore[no-untyped-def]
    r = client.post(
        "/v1/predict", json={"task": "readmission", "hadm_id": first_hadm(demo_home)}, headers=AUTH
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert 0 < body["risk"] < 1 and body["band"] in ("low", "moderate", "high")
    # the same risk as the Facts of that unit
    facts = ExplanationService(_settings(demo_home)).facts("readmission", first_hadm(demo_home))
    assert body["risk"] == pytest.approx(facts.prediction.risk)


def test_patients_are_listed_by_risk(client) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/v1/patients?task=icu_mortality&limit=5", headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    risks = [p["risk"] for p in body["items"]]
    assert body["total"] == 114 and len(risks) == 5 and risks == sorted(risks, reverse=True)
    assert all(p["icustay_id"] for p in body["items"])


def test_explain_returns_the_design_shape_and_is_audited(client, demo_home) -> None:  # type: ignore[no-untyped-def]
    hadm = first_hadm(demo_home)
    r = client.post(
        "/v1/explain",
        json={"task": "readmission", "hadm_id": hadm, "question": QUESTION},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    exp = r.json()
    assert set(EXPLANATION_KEYS) <= set(exp)
    assert exp["rationale"]["citations"] and exp["versions"]["llm"] == "fake"
    (rec,) = client.audit.records()
    assert rec.hadm_id == hadm and rec.route == "/v1/explain" and rec.guard_passed
    assert rec.key_id != KEY and len(rec.answer_sha256) == 64
    assert rec.request_id == r.headers["X-Request-ID"] and len(rec.request_id) == 12
    assert client.audit.verify().intact


def test_unknown_patient_is_404_without_echo(client) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/v1/explain", json={"task": "readmission", "hadm_id": 987654}, headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_patient"
    assert "987654" not in r.text


@pytest.mark.parametrize(
    "body",
    [
        {"task": "sepsis", "hadm_id": 1},
        {"task": "readmission"},
        {"task": "readmission", "hadm_id": 1, "icustay_id": 2},
        {"task": "readmission", "hadm_id": "abc"},
        {"task": "readmission", "hadm_id": 1, "extra": True},
        {"task": "readmission", "hadm_id": 1, "question": "x" * 501},
        {"task": "readmission", "hadm_id": True},  # JSON's own types only
        {"task": "readmission", "hadm_id": "142345"},
        {"task": "readmission", "hadm_id": 142345.0},
    ],
)
def test_bad_bodies_are_422_without_echo(client, body) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/v1/explain", json=body, headers=AUTH)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert "xxxxxxxx" not in r.text


def test_oversize_body_is_413(client) -> None:  # type: ignore[no-untyped-def]
    big = {"task": "readmission", "hadm_id": 1, "question": "y" * 20_000}
    r = client.post("/v1/explain", json=big, headers=AUTH)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"


def test_oversize_chunked_body_is_413(client) -> None:  # type: ignore[no-untyped-def]
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"task": "readmission", "hadm_id": 1, "question": "'
        for _ in range(10 * 1024):  # 10 MB, no Content-Length
            yield b"y" * 1024
        yield b'"}'

    r = client.post(
        "/v1/explain", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"


def test_unoffered_model_is_400(client, demo_home) -> None:  # type: ignore[no-untyped-def]
    body = {"task": "readmission", "hadm_id": first_hadm(demo_home), "model": "openai/gpt-4o"}
    r = client.post("/v1/explain", json=body, headers=AUTH)
    assert r.status_code == 400 and "does not offer" in r.json()["error"]["message"]
    assert "gpt-4o" not in r.text


def test_rate_limit_is_429_per_key(demo_home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = _settings(demo_home, api_rate_per_minute=3)
    with TestClient(create_app(settings, audit=AuditLog(tmp_path / "a.sqlite"))) as c:
        codes = [
            c.get("/v1/patients?task=readmission&limit=1", headers=AUTH).status_code
            for _ in range(5)
        ]
        assert codes == [200, 200, 200, 429, 429]
        r = c.get("/v1/patients?task=readmission&limit=1", headers=AUTH)
        assert r.json()["error"]["code"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1


def _explain_with_fake(demo_home: Path, tmp_path: Path, answer: str | Exception):  # type: ignore[no-untyped-def]
    """POST /v1/explain for the first readmission unit, on an app whose model gives `answer`."""
    settings = _settings(demo_home)
    service = ExplanationService(
        settings,
        models={"fake": FakeChatModel(script=[answer])},
        audit=AuditLog(tmp_path / "a.sqlite"),
    )
    with TestClient(create_app(settings, service=service)) as c:
        return c.post(
            "/v1/explain",
            json={"task": "readmission", "hadm_id": first_hadm(demo_home)},
            headers=AUTH,
        )


@pytest.mark.parametrize(
    "fault",
    [LLMTimeoutError("no answer within 60 s"), LLMUnavailableError("provider down"), "", "   "],
)
def test_llm_faults_give_the_guarded_fallback_not_a_500(demo_home, tmp_path, fault) -> None:  # type: ignore[no-untyped-def]
    r = _explain_with_fake(demo_home, tmp_path, fault)
    assert r.status_code == 200, r.text
    g = r.json()["guard"]
    assert g["fallback_used"] is True and g["passed"] is False
    assert r.json()["rationale"]["text"].startswith("The model estimates a risk of")


def test_garbage_answer_gives_the_fallback(demo_home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = _explain_with_fake(demo_home, tmp_path, "@@@ %%% 12345678 ###")
    assert r.status_code == 200 and r.json()["guard"]["fallback_used"] is True
    assert "12345678" not in r.json()["rationale"]["text"]


def test_stream_sends_tokens_then_the_explanation(client, demo_home) -> None:  # type: ignore[no-untyped-def]
    body = {"task": "readmission", "hadm_id": first_hadm(demo_home)}
    with client.stream("POST", "/v1/explain/stream", json=body, headers=AUTH) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    events = [e for e in text.split("\n\n") if e.strip()]
    kinds = [e.split("\n")[0].removeprefix("event: ") for e in events]
    assert kinds[-1] == "explanation" and kinds.count("token") >= 3
    exp = json.loads(events[-1].split("data: ", 1)[1])
    streamed = "".join(json.loads(e.split("data: ", 1)[1])["text"] for e in events[:-1])
    assert streamed.strip() == exp["rationale"]["text"]


def test_stream_unknown_patient_is_404_before_streaming(client) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/v1/explain/stream", json={"task": "readmission", "hadm_id": 1}, headers=AUTH)
    assert r.status_code == 404


def test_logs_hold_no_question_note_text_or_key(client, demo_home, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    hadm = first_hadm(demo_home)
    client.post(
        "/v1/explain",
        json={"task": "readmission", "hadm_id": hadm, "question": QUESTION},
        headers=AUTH,
    )
    client.post(
        "/v1/explain",
        json={"task": "readmission", "hadm_id": 1, "question": QUESTION},
        headers=AUTH,
    )
    client.post("/v1/explain", json={"task": "readmission", "question": QUESTION}, headers=AUTH)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert '"request_id"' in logged and "/v1/explain" in logged
    for secret in ("Quackenbush", "Zebulon", QUESTION, KEY):
        assert secret not in logged


class _Busy:
    """Holds the service's model queue (as a question being answered would) until released."""

    def __init__(self, service: ExplanationService) -> None:
        self.held, self.go = threading.Event(), threading.Event()

        def hold() -> None:
            with service.queue.enter():
                self.held.set()
                self.go.wait(30)

        self.thread = threading.Thread(target=hold, daemon=True)
        self.thread.start()
        assert self.held.wait(30)

    def release(self) -> None:
        self.go.set()
        self.thread.join(30)


def _sse(text: str) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    events = [e for e in text.split("\n\n") if e.strip()]
    return [
        (e.split("\n")[0].removeprefix("event: "), json.loads(e.split("data: ", 1)[1]))
        for e in events
    ]


def test_a_full_model_queue_is_503_with_retry_after(demo_home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = _settings(demo_home, queue_max_waiting=0)
    service = ExplanationService(settings, audit=AuditLog(tmp_path / "a.sqlite"))
    body = {"task": "readmission", "hadm_id": first_hadm(demo_home)}
    with TestClient(create_app(settings, service=service)) as c:
        busy = _Busy(service)
        r = c.post("/v1/explain", json=body, headers=AUTH)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "queue_full" and "busy" in r.json()["error"]["message"]
        assert int(r.headers["Retry-After"]) > 0
        s = c.post("/v1/explain/stream", json=body, headers=AUTH)  # refused before it starts
        assert s.status_code == 503 and s.json()["error"]["code"] == "queue_full"
        assert int(s.headers["Retry-After"]) > 0
        busy.release()
        r = c.post("/v1/explain", json=body, headers=AUTH)
        assert r.status_code == 200 and r.json()["guard"]["passed"] is True


def test_stream_reports_the_queue_position(demo_home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = _settings(demo_home)
    service = ExplanationService(settings, audit=AuditLog(tmp_path / "a.sqlite"))
    body = {"task": "readmission", "hadm_id": first_hadm(demo_home)}
    with TestClient(create_app(settings, service=service)) as c:
        busy = _Busy(service)

        def release_once_queued() -> None:
            deadline = time.monotonic() + 30
            while service.queue.waiting() == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            busy.release()

        threading.Thread(target=release_once_queued, daemon=True).start()
        with c.stream("POST", "/v1/explain/stream", json=body, headers=AUTH) as s:
            events = _sse("".join(s.iter_text()))
    kinds = [k for k, _ in events]
    assert events[:2] == [("queued", {"ahead": 1}), ("queued", {"ahead": 0})]
    assert kinds[-1] == "explanation" and set(kinds[2:-1]) == {"token"}


def test_a_prediction_prefetches_the_patients_prompt(demo_home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = _settings(demo_home)
    model = PrefetchingFake()
    service = ExplanationService(
        settings, models={"fake": model}, audit=AuditLog(tmp_path / "a.sqlite")
    )
    body = {"task": "readmission", "hadm_id": first_hadm(demo_home)}
    with TestClient(create_app(settings, service=service)) as c:
        assert c.post("/v1/predict", json=body, headers=AUTH).status_code == 200
        assert model.done.wait(60)
        assert c.post("/v1/explain", json=body, headers=AUTH).status_code == 200
    (prefetched,) = model.prefetched
    assert prefetched.messages == model.requests[0].messages


def test_openapi_documents_every_route(client) -> None:  # type: ignore[no-untyped-def]
    spec = client.get("/openapi.json").json()
    assert {"/health", "/v1/predict", "/v1/explain", "/v1/explain/stream", "/v1/patients"} <= set(
        spec["paths"]
    )
    assert "examples" in json.dumps(spec["components"]["schemas"]["ExplainRequest"])


def test_zz_server_log_of_the_whole_module_holds_no_text_or_keys() -> None:
    """Runs last in this file: the log of every request above (questions with a made-up name,
    bodies too large, bad keys, faults) holds request ids and routes, never their text."""
    logged = "\n".join(SERVER_LOG.lines)
    assert '"request_id"' in logged and "/v1/explain" in logged
    for secret in ("Quackenbush", "Zebulon", QUESTION, KEY, "yyyyyyyy", "@@@ %%%"):
        assert secret not in logged


def test_docs_are_served_from_the_installed_package_and_declare_the_bearer_scheme(client) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/docs")
    assert page.status_code == 200 and "/docs/static/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    js = client.get("/docs/static/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    assert client.get("/redoc").status_code == 404
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert [s["scheme"] for s in schemes.values()] == ["bearer"]
    assert spec["paths"]["/v1/explain"]["post"]["security"]
    assert "security" not in spec["paths"]["/health"]["get"]


def test_responses_carry_security_headers_and_patient_data_is_never_cached(client) -> None:  # type: ignore[no-untyped-def]
    api = client.get("/v1/patients?task=readmission&limit=1", headers=AUTH)
    assert api.status_code == 200
    for r in (api, client.get("/health"), client.get("/v1/patients?task=readmission")):
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert r.headers["Cache-Control"] == "no-store"
    chat = client.get("/chat/")
    assert "frame-ancestors 'none'" in chat.headers["Content-Security-Policy"]
    assert chat.headers["Cache-Control"] == "no-store"
    docs = client.get("/docs/static/swagger-ui.css")
    assert docs.status_code == 200 and "no-store" not in docs.headers.get("Cache-Control", "")
