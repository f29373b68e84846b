"""The CDS Hooks 2.0 service and the FHIR predict route through the REST API: discovery and cards
in the spec's shapes, the same risk as the tables, 412 without prefetch, reads from the client's
FHIR server (with its token, pages, size limit), feedback in the audit trail, OperationOutcomes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.api import create_app
from safellm.audit import AuditLog
from safellm.config import Settings
from safellm.services.explanation import ExplanationService
from tests.interop.prefetch import fhir_server, prefetch_of

KEY = "sk-cds-test"
AUTH = {"Authorization": f"Bearer {KEY}"}
HADM, ICUSTAY = 142345, 206504

# CDS Hooks 2.0: required fields of a discovery service and of a card (and of a card's source
# and links), and the allowed indicators
SERVICE_REQUIRED = {"hook", "description", "id"}
CARD_REQUIRED = {"summary", "indicator", "source"}
LINK_REQUIRED = {"label", "url", "type"}
INDICATORS = {"info", "warning", "critical"}


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "audit.sqlite")


@pytest.fixture
def client(demo_home: Path, audit: AuditLog):  # type: ignore[no-untyped-def]
    settings = Settings(
        home=demo_home,
        llm_model="fake",
        guard_judge=False,
        api_keys=[SecretStr(KEY)],
        api_rate_per_minute=10_000,
        cds_public_url="https://safellm.example.org",
    )
    with TestClient(create_app(settings, audit=audit)) as c:
        yield c


@pytest.fixture
def svc(demo_home: Path) -> ExplanationService:
    return ExplanationService(Settings(home=demo_home, llm_model="fake", guard_judge=False))


def request(hook: str, prefetch: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    context = {
        "userId": "Practitioner/p1",
        "patientId": "mimic-10006",
        "encounterId": f"adm-{HADM}",
    }
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": context,
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    return {**body, **extra}


HOOKS = {"safellm-readmission": "encounter-discharge", "safellm-icu-mortality": "patient-view"}


def call(client: TestClient, sid: str, prefetch: dict[str, Any] | None, **extra: Any) -> Any:
    """POST a request of the service's hook (with `extra` top-level fields) to it."""
    body = request(HOOKS[sid], prefetch, **extra)
    return client.post(f"/cds-services/{sid}", json=body, headers=AUTH)


def check_card(card: dict[str, Any]) -> None:
    assert set(card) >= CARD_REQUIRED
    assert 0 < len(card["summary"]) < 140
    assert card["indicator"] in INDICATORS
    assert card["source"]["label"]
    for link in card.get("links", []):
        assert set(link) >= LINK_REQUIRED and link["type"] in {"absolute", "smart"}


def test_discovery_has_the_spec_fields(client: TestClient) -> None:
    services = client.get("/cds-services").json()["services"]
    assert {s["id"]: s["hook"] for s in services} == {
        "safellm-readmission": "encounter-discharge",
        "safellm-icu-mortality": "patient-view",
    }
    for s in services:
        assert set(s) >= SERVICE_REQUIRED
        assert all("{{context.patientId}}" in t for t in s["prefetch"].values())


def test_readmission_card_at_discharge(
    client: TestClient, demo_bundle: dict[str, Any], svc: ExplanationService, audit: AuditLog
) -> None:
    r = call(client, "safellm-readmission", prefetch_of(demo_bundle))
    assert r.status_code == 200, r.text
    (card,) = r.json()["cards"]
    check_card(card)
    risk, band = svc.risk_of("readmission", hadm_id=HADM)
    assert f"{risk:.0%}" in card["summary"] and band in card["summary"]
    assert card["indicator"] == {"low": "info", "moderate": "warning", "high": "critical"}[band]
    top = svc.facts("readmission", hadm_id=HADM).top(3)
    assert all(c.label in card["detail"] for c in top)
    assert (
        card["links"][0]["url"]
        == f"https://safellm.example.org/chat/?task=readmission&hadm_id={HADM}"
    )
    (rec,) = [x for x in audit.records() if x.route == "/cds-services/safellm-readmission"]
    assert rec.hadm_id == HADM and rec.request_id == card["uuid"] and rec.key_id


def test_icu_card_at_patient_view(
    client: TestClient, demo_bundle: dict[str, Any], svc: ExplanationService
) -> None:
    r = call(client, "safellm-icu-mortality", prefetch_of(demo_bundle))
    assert r.status_code == 200, r.text
    (card,) = r.json()["cards"]
    check_card(card)
    risk, band = svc.risk_of("icu_mortality", icustay_id=ICUSTAY)
    assert f"{risk:.0%}" in card["summary"] and band in card["summary"]
    assert f"icustay_id={ICUSTAY}" in card["links"][0]["url"]


def test_missing_prefetch_without_a_fhir_server_is_412(
    client: TestClient, demo_bundle: dict[str, Any]
) -> None:
    prefetch = prefetch_of(demo_bundle)
    del prefetch["observations"]
    r = call(client, "safellm-readmission", prefetch)
    assert r.status_code == 412
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == ["prefetch.observations"]


def test_reads_what_was_not_sent_from_the_fhir_server(
    client: TestClient, demo_bundle: dict[str, Any]
) -> None:
    sent = call(client, "safellm-readmission", prefetch_of(demo_bundle)).json()
    with fhir_server(demo_bundle, token="tok-1", page=40) as fhir:
        body = request(
            "encounter-discharge",
            None,
            fhirServer=fhir.url,
            fhirAuthorization={
                "access_token": "tok-1",
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "patient/*.read",
                "subject": "safellm",
            },
        )
        r = client.post("/cds-services/safellm-readmission", json=body, headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json()["cards"][0]["summary"] == sent["cards"][0]["summary"]
        assert all(auth == "Bearer tok-1" for _, auth in fhir.seen)
        assert any("_offset=40" in path for path, _ in fhir.seen)  # pages followed
        body["fhirAuthorization"]["access_token"] = "wrong"
        r = client.post("/cds-services/safellm-readmission", json=body, headers=AUTH)
        assert r.status_code == 412 and "401" in r.text


def test_fhir_server_answers_over_the_size_limit_are_refused(
    demo_home: Path, demo_bundle: dict[str, Any], audit: AuditLog
) -> None:
    settings = Settings(
        home=demo_home,
        llm_model="fake",
        guard_judge=False,
        api_keys=[SecretStr(KEY)],
        fhir_max_body_bytes=200_000,
    )
    with (
        TestClient(create_app(settings, audit=audit)) as c,
        fhir_server(demo_bundle, "t", pad=150_000) as fhir,
    ):
        body = request(
            "encounter-discharge",
            None,
            fhirServer=fhir.url,
            fhirAuthorization={"access_token": "t", "expires_in": 60, "scope": "s", "subject": "x"},
        )
        r = c.post("/cds-services/safellm-readmission", json=body, headers=AUTH)
    assert r.status_code == 412 and "exceed" in r.text


def test_feedback_is_kept_in_the_audit_trail(
    client: TestClient, demo_bundle: dict[str, Any], audit: AuditLog
) -> None:
    card = call(client, "safellm-readmission", prefetch_of(demo_bundle)).json()["cards"][0]
    fb = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "outcomeTimestamp": "2026-12-02T10:00:00Z",
                "overrideReason": {"reason": {"code": "not-relevant"}, "userComment": "seen"},
            }
        ]
    }
    r = client.post("/cds-services/safellm-readmission/feedback", json=fb, headers=AUTH)
    assert r.status_code == 200 and r.json() == {"recorded": 1}
    (rec,) = [x for x in audit.records() if x.route.endswith("/feedback")]
    assert (
        rec.outcome == "feedback:overridden"
        and rec.request_id == card["uuid"]
        and rec.hadm_id == HADM
    )
    assert audit.verify().intact
    r = client.post(
        "/cds-services/safellm-readmission/feedback",
        json={"feedback": [{"card": "x", "outcome": "maybe", "outcomeTimestamp": "t"}]},
        headers=AUTH,
    )
    assert r.status_code == 422


def test_auth_hook_and_service_are_checked(client: TestClient, demo_bundle: dict[str, Any]) -> None:
    body = request("encounter-discharge", prefetch_of(demo_bundle))
    assert client.post("/cds-services/safellm-readmission", json=body).status_code == 401
    assert client.post("/cds-services/safellm-los", json=body, headers=AUTH).status_code == 400
    r = client.post(
        "/cds-services/safellm-readmission", json={**body, "hook": "order-sign"}, headers=AUTH
    )
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["hook"]


def test_bad_prefetch_is_an_operation_outcome(
    client: TestClient, demo_bundle: dict[str, Any]
) -> None:
    prefetch = prefetch_of(demo_bundle)
    obs = prefetch["observations"]["entry"][0]["resource"]
    obs["effectiveDateTime"] = "2199-01-01T00:00:00Z"
    r = call(client, "safellm-readmission", prefetch)
    assert r.status_code == 422
    issue = r.json()["issue"][0]
    assert issue["expression"][0].startswith("prefetch.observations.entry[0].resource")
    assert "future" in issue["diagnostics"]


def test_fhir_predict_route_matches_the_tables(
    client: TestClient, demo_bundle: dict[str, Any], svc: ExplanationService
) -> None:
    r = client.post(
        "/v1/fhir/predict", json={"task": "icu_mortality", "bundle": demo_bundle}, headers=AUTH
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["icustay_id"] == ICUSTAY
    assert got["risk"] == pytest.approx(
        svc.risk_of("icu_mortality", icustay_id=ICUSTAY)[0], abs=1e-12
    )
    assert got["facts"] == svc.facts("icu_mortality", icustay_id=ICUSTAY).model_dump(mode="json")
    bad = copy.deepcopy(demo_bundle)
    bad["entry"] = [e for e in bad["entry"] if e["resource"]["resourceType"] != "Patient"]
    r = client.post("/v1/fhir/predict", json={"task": "readmission", "bundle": bad}, headers=AUTH)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/fhir+json")
    assert r.json()["issue"][0]["diagnostics"].startswith("exactly one Patient")


def test_a_patient_outside_the_cohort_is_a_business_rule(
    client: TestClient, demo_bundle: dict[str, Any]
) -> None:
    adm = next(e["resource"] for e in demo_bundle["entry"] if e["resource"]["id"] == f"adm-{HADM}")
    del adm["period"]["end"]
    r = client.post(
        "/v1/fhir/predict", json={"task": "readmission", "bundle": demo_bundle}, headers=AUTH
    )
    assert r.status_code == 422
    issue = r.json()["issue"][0]
    assert issue["code"] == "business-rule" and "period.end" in issue["diagnostics"]
