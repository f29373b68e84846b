"""Two API replicas over one PostgreSQL database (a real server): one audit chain holds the
answers of both, a key's rate limit counts its requests on either, and a lost database is a
503 that says so."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.api import create_app
from safellm.config import Settings
from safellm.pgstore import PostgresAuditLog
from tests.samples import first_hadm

KEY = "sk-replica-test"
AUTH = {"Authorization": f"Bearer {KEY}"}
CHAIN_KEY = "c" * 40


def _settings(home: Path, url: str, per_minute: int) -> Settings:
    return Settings(
        home=home,
        llm_model="fake",
        guard_judge=False,
        api_keys=[SecretStr(KEY)],
        api_rate_per_minute=per_minute,
        audit_url=SecretStr(url),
        audit_key=SecretStr(CHAIN_KEY),
    )


def test_two_replicas_share_the_audit_chain_and_the_rate_limit(
    demo_home: Path, pg_url: str
) -> None:
    settings = _settings(demo_home, pg_url, per_minute=4)
    body = {"task": "readmission", "hadm_id": first_hadm(demo_home)}
    with (
        TestClient(create_app(settings, chat=False)) as a,
        TestClient(create_app(settings, chat=False)) as b,
    ):
        ra = a.post("/v1/explain", json=body, headers=AUTH)
        rb = b.post("/v1/explain", json=body, headers=AUTH)
        assert ra.status_code == rb.status_code == 200, (ra.text, rb.text)
        # the key's 3rd and 4th requests of the minute, one on each replica, then the 5th
        codes = [c.post("/v1/predict", json=body, headers=AUTH).status_code for c in (a, b)]
        assert codes == [200, 200]
        late = a.post("/v1/predict", json=body, headers=AUTH)
        assert late.status_code == 429 and late.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(late.headers["Retry-After"]) <= 60
        assert b.post("/v1/predict", json=body, headers=AUTH).status_code == 429
    trail = PostgresAuditLog(pg_url, CHAIN_KEY.encode())
    recs = trail.records()
    assert [r.request_id for r in recs] == [ra.headers["X-Request-ID"], rb.headers["X-Request-ID"]]
    assert recs[1].prev_hash == recs[0].row_hash and trail.verify().intact


def test_a_lost_database_is_a_503_naming_it(demo_home: Path, pg_server) -> None:  # type: ignore[no-untyped-def]
    url = pg_server.new_database()
    settings = _settings(demo_home, url, per_minute=100)
    body = {"task": "readmission", "hadm_id": first_hadm(demo_home)}
    with TestClient(create_app(settings, chat=False)) as c:
        assert c.post("/v1/predict", json=body, headers=AUTH).status_code == 200
        pg_server.stop()
        try:
            r = c.post("/v1/predict", json=body, headers=AUTH)
        finally:
            pg_server.start()
        assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable"
        assert "SAFELLM_AUDIT_URL" in r.json()["error"]["message"]
        assert c.post("/v1/predict", json=body, headers=AUTH).status_code == 200  # back
