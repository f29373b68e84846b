"""Every kind of bad FHIR input through the REST route: a 4xx with a FHIR OperationOutcome that
names the field, never a 5xx."""

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
from tests.interop.test_fhir_bad_input import KINDS

KEY = "sk-fhir-rest"


@pytest.fixture(scope="module")
def client(demo_home: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    settings = Settings(
        home=demo_home,
        llm_model="fake",
        guard_judge=False,
        api_keys=[SecretStr(KEY)],
        api_rate_per_minute=10_000,
    )
    audit = AuditLog(tmp_path_factory.mktemp("audit") / "audit.sqlite")
    with TestClient(create_app(settings, audit=audit)) as c:
        yield c


@pytest.mark.parametrize("kind", list(KINDS))
def test_bad_bundle_is_an_operation_outcome(
    kind: str, client: TestClient, demo_bundle_base: dict[str, Any]
) -> None:
    spoil, field = KINDS[kind]
    bundle = spoil(copy.deepcopy(demo_bundle_base))
    r = client.post(
        "/v1/fhir/predict",
        json={"task": "readmission", "bundle": bundle},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert r.status_code == 422, (kind, r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/fhir+json")
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert all(i["severity"] == "error" and i["diagnostics"] for i in outcome["issue"])
    assert any(e.endswith(field) for i in outcome["issue"] for e in i["expression"]), outcome
