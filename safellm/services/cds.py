"""Use case: SafeLLM as a CDS Hooks 2.0 service.

Two services: `safellm-readmission` at `encounter-discharge` and `safellm-icu-mortality` at
`patient-view`. The EHR sends the patient's record as prefetch (the templates of `discovery()`),
or a `fhirServer` (with `fhirAuthorization`) to read what it did not send; a needed key neither
sent nor readable is HTTP 412. The record goes through the FHIR route (`safellm.services.fhir`)
to a risk and its Facts, and back as one card: the risk and band in the summary, the top drivers
and the grounded rationale (the template over the Facts, which passes the guard by construction)
in the detail, and a link to the clinician chat for the language model's own answer. No language
model is called while the EHR waits. Every card and every feedback is kept in the audit trail.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from safellm.audit import AuditRecord, now, sha256
from safellm.errors import FhirInputError, FhirIssue, UnknownNameError
from safellm.explain.facts import Facts
from safellm.guard.fallback import fallback_answer
from safellm.services.explanation import ExplanationService
from safellm.services.fhir import predict_fhir
from safellm.tasks import task_spec

SERVICES: dict[str, dict[str, str]] = {
    "safellm-readmission": {
        "task": "readmission",
        "hook": "encounter-discharge",
        "title": "SafeLLM 30-day readmission risk",
        "description": "Risk of an emergency readmission within 30 days of this discharge, "
        "with the features that drive it.",
    },
    "safellm-icu-mortality": {
        "task": "icu_mortality",
        "hook": "patient-view",
        "title": "SafeLLM ICU mortality risk",
        "description": "Risk of death in the ICU stay, predicted 24 h after ICU admission, "
        "with the features that drive it.",
    },
}

P = "{{context.patientId}}"
PREFETCH: dict[str, str] = {
    "patient": f"Patient/{P}",
    "encounters": f"Encounter?patient={P}",
    "conditions": f"Condition?patient={P}",
    "procedures": f"Procedure?patient={P}",
    "observations": f"Observation?patient={P}&category=laboratory,vital-signs",
    "medications": f"MedicationRequest?patient={P}",
}
# notes are read for the chat, not for the card: not asked for
REQUIRED = tuple(PREFETCH)
INDICATOR = {"low": "info", "moderate": "warning", "high": "critical"}
MAX_PAGES = 20


class FhirAuthorization(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int | None = None
    scope: str | None = None
    subject: str | None = None


class CdsRequest(BaseModel):
    """A CDS Hooks 2.0 service request (fields the service reads; others are ignored)."""

    model_config = ConfigDict(extra="ignore")
    hook: str = Field(max_length=100)
    hookInstance: str = Field(max_length=200)
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None
    fhirServer: str | None = Field(default=None, max_length=2000)
    fhirAuthorization: FhirAuthorization | None = None


class Feedback(BaseModel):
    model_config = ConfigDict(extra="ignore")
    card: str = Field(max_length=200)
    outcome: Literal["accepted", "overridden"]
    outcomeTimestamp: str = Field(max_length=64)
    overrideReason: dict[str, Any] | None = None
    acceptedSuggestions: list[dict[str, Any]] | None = None


class FeedbackRequest(BaseModel):
    feedback: list[Feedback] = Field(min_length=1, max_length=100)


def discovery() -> dict[str, Any]:
    """The discovery response (`GET /cds-services`)."""
    return {
        "services": [
            {
                "hook": s["hook"],
                "title": s["title"],
                "description": s["description"],
                "id": sid,
                "prefetch": PREFETCH,
                "usageRequirements": "Send the Bearer API key of the SafeLLM deployment.",
            }
            for sid, s in SERVICES.items()
        ]
    }


def service(service_id: str) -> dict[str, str]:
    if service_id not in SERVICES:
        raise UnknownNameError(
            f"no CDS service {service_id!r}; the services are {', '.join(SERVICES)}"
        )
    return SERVICES[service_id]


def _patient_id(req: CdsRequest) -> str:
    pid = req.context.get("patientId")
    if not isinstance(pid, str) or not pid or len(pid) > 64:
        raise FhirInputError([FhirIssue("required", "context.patientId", "patientId is required")])
    return pid


def fetch(url: str, token: str | None, timeout: float, max_bytes: int) -> Any:
    """One FHIR read (following a searchset's `next` links) from the client's FHIR server."""
    headers = {"Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    pages: list[Any] = []
    budget = max_bytes
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        next_url: str | None = url
        while next_url and len(pages) < MAX_PAGES:
            with client.stream("GET", next_url, headers=headers) as r:
                if r.status_code != 200:
                    raise FhirInputError(
                        [
                            FhirIssue(
                                "exception", "fhirServer", f"{r.status_code} from the FHIR server"
                            )
                        ],
                        status=412,
                    )
                body = bytearray()
                for chunk in r.iter_bytes():
                    body += chunk
                    if len(body) > budget:
                        raise FhirInputError(
                            [
                                FhirIssue(
                                    "too-costly",
                                    "fhirServer",
                                    f"the FHIR server's answers exceed {max_bytes} bytes",
                                )
                            ],
                            status=412,
                        )
                budget -= len(body)
            try:
                page = json.loads(body)
            except ValueError:
                raise FhirInputError(
                    [FhirIssue("structure", "fhirServer", "the FHIR server's answer is not JSON")],
                    status=412,
                ) from None
            pages.append(page)
            links = page.get("link") or [] if isinstance(page, dict) else []
            next_url = next((lk.get("url") for lk in links if lk.get("relation") == "next"), None)
    if len(pages) == 1:
        return pages[0]
    entries = [e for p in pages for e in (p.get("entry") or [])]
    return {**pages[0], "entry": entries, "link": []}


def gather(req: CdsRequest, timeout: float, max_bytes: int) -> dict[str, Any]:
    """The prefetch with every needed key: sent, or read from `fhirServer`; 412 otherwise."""
    pid = _patient_id(req)
    got = {k: v for k, v in (req.prefetch or {}).items() if v is not None}
    missing = [k for k in REQUIRED if k not in got]
    if missing and not req.fhirServer:
        raise FhirInputError(
            [
                FhirIssue(
                    "required",
                    f"prefetch.{k}",
                    f"not sent and no fhirServer to read it from ({PREFETCH[k]})",
                )
                for k in missing
            ],
            status=412,
        )
    if missing:
        base = str(req.fhirServer).rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise FhirInputError([FhirIssue("invalid", "fhirServer", "must be an http(s) URL")])
        token = req.fhirAuthorization.access_token if req.fhirAuthorization else None
        for k in missing:
            query = PREFETCH[k].replace(P, pid)
            try:
                got[k] = fetch(f"{base}/{query}", token, timeout, max_bytes)
            except httpx.HTTPError as exc:
                raise FhirInputError(
                    [
                        FhirIssue(
                            "exception",
                            "fhirServer",
                            f"cannot read {query.split('?')[0]}: {type(exc).__name__}",
                        )
                    ],
                    status=412,
                ) from None
    return got


def card(facts: Facts, service_id: str, chat_url: str, model_version: str) -> dict[str, Any]:
    """The card of a prediction (CDS Hooks 2.0 Card)."""
    spec = task_spec(facts.task)
    p = facts.prediction
    name = SERVICES[service_id]["title"].removeprefix("SafeLLM ")
    summary = f"{name[0].upper()}{name[1:]}: {spec.format_risk(p.risk, 0)} ({p.band})"[:139]
    drivers = "\n".join(
        f"- **{c.label}**: {c.shown} ({c.direction} the risk)" for c in facts.top(3)
    )
    rationale = fallback_answer(facts).text
    detail = (
        f"**{spec.format_risk(p.risk)}** predicted, **{p.band}** band "
        f"(model {facts.model} {model_version}).\n\n"
        f"Top drivers:\n{drivers}\n\n{rationale}\n\n"
        "_Ask SafeLLM in the linked chat for an explanation that also cites the notes._"
    )
    unit = f"icustay_id={facts.icustay_id}" if facts.icustay_id else f"hadm_id={facts.hadm_id}"
    return {
        "uuid": str(uuid.uuid4()),
        "summary": summary,
        "indicator": INDICATOR.get(p.band, "info"),
        "detail": detail,
        "source": {"label": f"SafeLLM {spec.name} model {model_version}"},
        "links": [
            {
                "label": "Ask SafeLLM about this patient",
                "url": f"{chat_url}?task={facts.task}&{unit}",
                "type": "absolute",
                "autoLaunchable": False,
            }
        ],
    }


def card_record(
    route: str,
    key_id: str,
    task: str,
    facts: Facts | None,
    *,
    latency_ms: float,
    answer_sha256: str,
    card_id: str,
    outcome: str = "delivered",
) -> AuditRecord:
    """What the audit trail keeps of a card or of feedback on one: ids and model version (when
    the card is known), no language model, the card's uuid as request id."""
    return AuditRecord(
        at=now(),
        key_id=key_id,
        route=route,
        task=task,
        subject_id=facts.subject_id if facts else None,
        hadm_id=facts.hadm_id if facts else None,
        icustay_id=facts.icustay_id if facts else None,
        risk_model=f"{facts.model}@{facts.model_version}" if facts else None,
        prompt=None,
        policy=None,
        llm=None,
        guard_passed=True,
        fallback_used=True,
        attempts=0,
        violations=[],
        latency_ms=latency_ms,
        answer_sha256=answer_sha256,
        question_sha256=None,
        request_id=card_id,
        outcome=outcome,
    )


class CdsService:
    """The CDS Hooks use cases over an `ExplanationService` (its models and audit trail)."""

    def __init__(self, svc: ExplanationService) -> None:
        self.svc = svc
        self._cards: OrderedDict[str, Facts] = OrderedDict()  # card uuid -> its Facts (ids)

    def call(self, service_id: str, req: CdsRequest, base_url: str, key_id: str) -> dict[str, Any]:
        started = time.perf_counter()
        spec = service(service_id)
        if req.hook != spec["hook"]:
            raise FhirInputError(
                [
                    FhirIssue(
                        "not-supported",
                        "hook",
                        f"{service_id} answers {spec['hook']}, not {req.hook[:40]!r}",
                    )
                ]
            )
        settings = self.svc.settings
        prefetch = gather(req, settings.cds_fetch_timeout_s, settings.fhir_max_body_bytes)
        encounter = req.context.get("encounterId")
        encounter = encounter if isinstance(encounter, str) and encounter else None
        task = spec["task"]
        pred = predict_fhir(self.svc, task, prefetch, encounter, notes=False)
        facts = pred.facts
        chat = f"{(settings.cds_public_url or base_url).rstrip('/')}/chat/"
        c = card(facts, service_id, chat, facts.model_version)
        self._remember(c["uuid"], facts)
        self.svc.audit.append(
            card_record(
                f"/cds-services/{service_id}",
                key_id,
                task,
                facts,
                latency_ms=round((time.perf_counter() - started) * 1000, 1),
                answer_sha256=sha256(c["detail"]),
                card_id=c["uuid"],
            )
        )
        return {"cards": [c]}

    def _remember(self, card_id: str, facts: Facts) -> None:
        self._cards[card_id] = facts
        while len(self._cards) > 10_000:
            self._cards.popitem(last=False)

    def feedback(self, service_id: str, body: FeedbackRequest, key_id: str) -> int:
        """Record each feedback item in the audit trail (outcome `feedback:<outcome>`, the card's
        uuid as request id); returns how many."""
        spec = service(service_id)
        for f in body.feedback:
            known = self._cards.get(f.card)
            self.svc.audit.append(
                card_record(
                    f"/cds-services/{service_id}/feedback",
                    key_id,
                    spec["task"],
                    known,
                    latency_ms=0.0,
                    answer_sha256=sha256(json.dumps(f.overrideReason or {}, sort_keys=True)),
                    card_id=f.card,
                    outcome=f"feedback:{f.outcome}",
                )
            )
        return len(body.feedback)
