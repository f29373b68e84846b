"""An independent CDS Hooks client (healthchain's request, response and discovery models) against
the live server: its requests are answered, and the answers parse as its cards."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.interop.prefetch import prefetch_of


@pytest.fixture(scope="module")
def bundle(demo_build) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from safellm.fhir.export import iter_bundles

    return next(iter_bundles(demo_build.out_dir, [142345]))


def test_healthchain_client_gets_cards(live_server, bundle: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.patient import Patient
    from healthchain.models import CDSRequest, CDSResponse, CDSServiceInformation
    from healthchain.models.hooks import EncounterDischargeContext, PatientViewContext

    base = f"{live_server.url}/cds-services"
    info = CDSServiceInformation.model_validate(httpx.get(base, timeout=30).json())
    hooks = {s.id: s.hook for s in info.services}
    assert hooks == {
        "safellm-readmission": "encounter-discharge",
        "safellm-icu-mortality": "patient-view",
    }
    raw = prefetch_of(bundle)
    prefetch = {
        k: Patient.model_validate(v) if k == "patient" else Bundle.model_validate(v)
        for k, v in raw.items()
    }
    contexts = {
        "safellm-readmission": EncounterDischargeContext(
            userId="Practitioner/p1", patientId="mimic-10006", encounterId="adm-142345"
        ),
        "safellm-icu-mortality": PatientViewContext(
            userId="Practitioner/p1", patientId="mimic-10006"
        ),
    }
    for sid, ctx in contexts.items():
        req = CDSRequest(hook=hooks[sid], context=ctx, prefetch=prefetch)
        # healthchain types `context` as its base class: serialise as the subclass, or it drops
        # encounterId
        body = req.model_dump(exclude_none=True, mode="json", serialize_as_any=True)
        r = httpx.post(
            f"{base}/{sid}",
            json=body,
            headers={"Authorization": f"Bearer {live_server.key}"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        cards = CDSResponse.model_validate(r.json()).cards
        assert len(cards) == 1 and cards[0].indicator.value in {"info", "warning", "critical"}
        assert cards[0].summary and cards[0].source.label.startswith("SafeLLM")
