"""The FHIR and CDS Hooks routes: `GET /cds-services`, `POST /cds-services/{id}`,
`POST /cds-services/{id}/feedback` (CDS Hooks 2.0) and `POST /v1/fhir/predict` (a risk and its
Facts from a FHIR R4 Bundle). Thin: the work is `safellm.services.cds` and `safellm.services.fhir`.
Bad FHIR input is answered with a FHIR OperationOutcome (`operation_outcome`)."""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from safellm.errors import FhirInputError
from safellm.explain.facts import Facts
from safellm.services.cds import CdsRequest, CdsService, FeedbackRequest, discovery
from safellm.services.explanation import ExplanationService
from safellm.services.fhir import predict_fhir
from safellm.tasks import TaskName

FHIR_JSON = "application/fhir+json"


def operation_outcome(exc: FhirInputError) -> JSONResponse:
    """The error as a FHIR OperationOutcome, one issue per problem found."""
    return JSONResponse(
        {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": i.code,
                    "diagnostics": i.diagnostics,
                    "expression": [i.expression],
                }
                for i in exc.issues
            ],
        },
        exc.status,
        media_type=FHIR_JSON,
    )


class FhirPredictRequest(BaseModel):
    task: TaskName
    bundle: dict[str, Any] = Field(description="A FHIR R4 Bundle of one patient.")
    encounter: str | None = Field(
        default=None,
        max_length=64,
        description="FHIR id of the admission or ICU-stay Encounter [default: the latest admission].",
    )
    notes: bool = Field(default=True, description="Retrieve note evidence from DocumentReferences.")


class FhirPredictResponse(BaseModel):
    task: str
    risk: float
    band: str
    model_version: str
    subject_id: int
    hadm_id: int
    icustay_id: int | None
    facts: Facts
    ignored: dict[str, int] = Field(description="Resources the models do not read, by reason.")


FHIR_ERRORS: dict[int | str, dict[str, Any]] = {
    412: {"description": "Needed prefetch missing and no FHIR server to read it from"},
    422: {"description": "Invalid FHIR input (a FHIR OperationOutcome)"},
}


def fhir_routes(
    svc: Callable[[], ExplanationService],
    require_key: Callable[..., Any],
    check_ready: Callable[[str], None],
    errors: dict[int | str, dict[str, Any]],
    on_card: Callable[[str, str], None] = lambda service_id, indicator: None,
) -> APIRouter:
    router = APIRouter()
    Key = Annotated[str, Depends(require_key)]
    cds: dict[str, CdsService] = {}

    def cds_service() -> CdsService:
        s = svc()
        if "cds" not in cds or cds["cds"].svc is not s:
            cds["cds"] = CdsService(s)
        return cds["cds"]

    responses = {**errors, **FHIR_ERRORS}

    @router.get("/cds-services", tags=["cds-hooks"])
    async def cds_discovery() -> dict[str, Any]:
        """CDS Hooks discovery: the services, their hooks and prefetch templates."""
        return discovery()

    @router.post("/cds-services/{service_id}", responses=responses, tags=["cds-hooks"])
    async def cds_call(
        service_id: str, body: CdsRequest, request: Request, key: Key
    ) -> dict[str, Any]:
        """A CDS Hooks service call: one card with the risk, its drivers and a grounded rationale."""
        from safellm.services.cds import service

        check_ready(service(service_id)["task"])
        base = str(request.base_url)
        out = await run_in_threadpool(cds_service().call, service_id, body, base, key)
        for c in out["cards"]:
            on_card(service_id, c["indicator"])
        return out

    @router.post("/cds-services/{service_id}/feedback", responses=responses, tags=["cds-hooks"])
    async def cds_feedback(service_id: str, body: FeedbackRequest, key: Key) -> dict[str, int]:
        """CDS Hooks feedback on cards: kept in the audit trail."""
        n = await run_in_threadpool(cds_service().feedback, service_id, body, key)
        return {"recorded": n}

    @router.post(
        "/v1/fhir/predict", response_model=FhirPredictResponse, responses=responses, tags=["fhir"]
    )
    async def fhir_predict(
        body: Annotated[FhirPredictRequest, Body()], key: Key
    ) -> FhirPredictResponse:
        """Risk and Facts of a patient sent as a FHIR R4 Bundle (same models and rules as the
        built data)."""
        check_ready(body.task)
        s = svc()
        pred = await run_in_threadpool(
            predict_fhir, s, body.task, body.bundle, body.encounter, notes=body.notes
        )
        f = pred.facts
        return FhirPredictResponse(
            task=body.task,
            risk=f.prediction.risk,
            band=f.prediction.band,
            model_version=s.explainer(body.task).version,
            subject_id=f.subject_id,
            hadm_id=f.hadm_id,
            icustay_id=f.icustay_id,
            facts=f,
            ignored=pred.ignored,
        )

    return router
