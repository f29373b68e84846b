"""The REST API: `create_app(settings)`. Thin routes over the explanation use case
(`safellm.services.explanation.ExplanationService`, which also writes the audit trail).

Contract (DESIGN.md): `GET /health` (no key); with `Authorization: Bearer <key>`: `POST /v1/predict`,
`POST /v1/explain`, `POST /v1/explain/stream` (Server-Sent Events: `queued` events while the
question waits for the model, `token` events, then one `explanation`), `GET /v1/patients`. Errors
are `{"error": {"code", "message"}}` with 400, 401, 404, 413, 422, 429 or 503 (with Retry-After
when the model's queue is full) — never a stack trace; a failing LLM gives the guarded fallback
with 200. A prediction starts a prefetch of that patient's prompt, in the background.
Logs carry request ids, key ids, routes, statuses and latencies: no note text, question or name.
"""

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.security import KeyRing, RateLimiter
from safellm.audit import AuditLog
from safellm.config import Settings, apply_offline_switches
from safellm.errors import (
    ArtifactError,
    ConfigError,
    DataError,
    LLMError,
    QueueFullError,
    SafeLLMError,
    UnknownNameError,
    UnknownPatientError,
    UserInputError,
)
from safellm.rationale import Explanation
from safellm.services.explanation import Ask, Caller, ExplanationService
from safellm.tasks import TaskName

log = logging.getLogger("safellm.api")


# ------------------------------------------------------------------------------------- bodies
class UnitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: TaskName
    hadm_id: int | None = Field(default=None, ge=1, le=2**31 - 1, examples=[142345])
    icustay_id: int | None = Field(default=None, ge=1, le=2**31 - 1, examples=[None])

    @model_validator(mode="after")
    def _one_unit(self) -> "UnitRequest":
        if (self.hadm_id is None) == (self.icustay_id is None):
            raise ValueError("give exactly one of hadm_id or icustay_id")
        return self


class ExplainRequest(UnitRequest):
    question: str | None = Field(
        default=None, max_length=500, examples=["Why is this patient at high risk?"]
    )
    model: str | None = Field(default=None, max_length=100, examples=[None])


class PredictResponse(BaseModel):
    task: str
    risk: float = Field(description="Probability, or days for los.")
    band: str
    model_version: str


class Patient(BaseModel):
    subject_id: int
    hadm_id: int
    icustay_id: int | None
    risk: float
    band: str


class Patients(BaseModel):
    task: str
    total: int
    items: list[Patient]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorBody, "description": d}
    for s, d in (
        (400, "Bad request"),
        (401, "Missing or wrong API key"),
        (404, "Unknown patient"),
        (413, "Request too large"),
        (422, "Invalid body"),
        (429, "Rate limited"),
        (503, "Not ready (no data or model built), or the model's queue is full (Retry-After)"),
    )
}


def error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)


class _TooLarge(Exception):
    pass


class BodyLimit:
    """413 for a body over `limit` bytes, announced (Content-Length) or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = error(413, "too_large", f"request body over {self.limit} bytes")
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await too_big(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return msg

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await too_big(scope, receive, send)


# ---------------------------------------------------------------------------------------- app
def create_app(
    settings: Settings | None = None,
    service: ExplanationService | None = None,
    audit: AuditLog | None = None,
    chat: bool = True,
) -> FastAPI:
    """The API (and the chat at /chat unless `chat=False`) over one ExplanationService; `audit`
    is the trail of a service made here (default: `$SAFELLM_HOME/audit.sqlite`)."""
    apply_offline_switches()
    settings = settings or Settings()
    keys = KeyRing([k.get_secret_value() for k in settings.api_keys])
    limiter = RateLimiter(settings.api_rate_per_minute)
    state: dict[str, Any] = {}

    if service is not None and audit is not None:
        raise ValueError("give the audit trail to the service: ExplanationService(..., audit=...)")
    state["service"] = service or ExplanationService(settings, audit=audit)
    state["tasks"] = state["service"].available_tasks()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        svc = state["service"]
        svc.audit  # noqa: B018 - the audit trail is opened (and created) at start-up
        for task in state["tasks"]:  # models, data and risks loaded once, here
            svc.risks(task)
        try:
            svc.guard  # noqa: B018 - the policy is validated at start-up
            svc.model()
            state["llm_ready"] = True
        except SafeLLMError as exc:
            log.warning("LLM not ready: %s", type(exc).__name__)
            state["llm_ready"] = False
        yield

    app = FastAPI(
        title="SafeLLM",
        version="1",
        description="Clinical risk predictions explained by an LLM under guards that check every "
        "claim against the model's Facts.",
        lifespan=lifespan,
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.api_cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"],
    )
    app.add_middleware(BodyLimit, limit=settings.api_max_body_bytes)

    @app.middleware("http")
    async def access_log(request: Request, call_next: Any) -> Any:
        rid = uuid.uuid4().hex[:12]
        request.state.request_id = rid
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["X-Request-ID"] = rid
        log.info(
            "request=%s method=%s route=%s status=%s key=%s ms=%.0f",
            rid,
            request.method,
            request.url.path,
            response.status_code,
            getattr(request.state, "key_id", "-"),
            (time.perf_counter() - started) * 1000,
        )
        return response

    # ------------------------------------------------------------------------------- errors
    @app.exception_handler(SafeLLMError)
    async def on_ours(request: Request, exc: SafeLLMError) -> JSONResponse:
        if isinstance(exc, QueueFullError):
            return error(
                503, "queue_full", str(exc), headers={"Retry-After": str(exc.retry_after_s)}
            )
        for cls, status, code in (
            (UnknownPatientError, 404, "unknown_patient"),
            (UnknownNameError, 400, "unknown_name"),
            (UserInputError, 400, "bad_request"),
            (ArtifactError, 503, "not_ready"),
            (DataError, 503, "not_ready"),
            (ConfigError, 503, "not_ready"),
            (LLMError, 503, "llm_unavailable"),
        ):
            if isinstance(exc, cls):
                return error(status, code, str(exc))
        return error(400, "bad_request", str(exc))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e.get('loc', ()) if x != 'body') or 'body'}: {e.get('msg')}"
            for e in exc.errors()[:5]
        )  # the input itself is never echoed: it may hold PHI
        return error(422, "invalid_request", problems)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {
            401: "unauthorized",
            404: "not_found",
            405: "method_not_allowed",
            429: "rate_limited",
        }
        return error(
            exc.status_code,
            codes.get(exc.status_code, "error"),
            str(exc.detail),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "request=%s failed: %s", getattr(request.state, "request_id", "-"), type(exc).__name__
        )
        return error(500, "internal_error", "internal error; the request id is in X-Request-ID")

    # --------------------------------------------------------------------------------- auth
    def require_key(request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        kid = keys.check(token.strip()) if scheme.lower() == "bearer" and token else None
        if kid is None:
            why = "missing or wrong API key" if keys.configured else "no API keys configured"
            raise StarletteHTTPException(401, why, headers={"WWW-Authenticate": "Bearer"})
        request.state.key_id = kid
        ok, wait = limiter.allow(kid)
        if not ok:
            raise StarletteHTTPException(
                429,
                f"more than {settings.api_rate_per_minute} requests a minute",
                headers={"Retry-After": str(max(1, int(wait + 0.999)))},
            )
        return kid

    Key = Annotated[str, Depends(require_key)]

    def svc() -> ExplanationService:
        return state["service"]

    def check_ready(task: str) -> None:
        if task not in state["tasks"]:
            raise ArtifactError(
                f"task {task} has no built data or trained model on this server "
                f"(run `safellm data build` and `safellm train --task {task}`)"
            )

    def chosen_model(name: str | None) -> str | None:
        if name is None or name == settings.llm_model:
            return None
        if name not in settings.api_models:
            allowed = ", ".join([settings.llm_model, *settings.api_models])
            raise UnknownNameError(
                f"model {name!r} is not offered by this server (offered: {allowed})"
            )
        return name

    # ------------------------------------------------------------------------------- routes
    @app.get("/health", tags=["service"])
    def health() -> dict[str, Any]:
        s = svc()
        return {
            "status": "ok",
            "tasks": state["tasks"],
            "llm_ready": state.get("llm_ready", False),
            "versions": {
                "llm": settings.llm_model,
                "prompt": s.prompt("explain-risk").version,
                "policy": s.guard.policy_version,
                "risk_models": {t: s.explainer(t).version for t in state["tasks"]},
            },
        }

    @app.post("/v1/predict", response_model=PredictResponse, responses=ERRORS, tags=["risk"])
    def predict(body: UnitRequest, key: Key) -> PredictResponse:
        check_ready(body.task)
        row = svc().unit(body.task, body.hadm_id, body.icustay_id)
        risks = svc().risks(body.task)
        hit = risks.loc[row.name]
        response = PredictResponse(
            task=body.task,
            risk=float(hit["risk"]),
            band=str(hit["band"]),
            model_version=svc().explainer(body.task).version,
        )
        # an explanation of this patient often follows: prefill its prompt (in the background)
        svc().prefetch_unit(body.task, body.hadm_id, body.icustay_id)
        return response

    @app.get("/v1/patients", response_model=Patients, responses=ERRORS, tags=["risk"])
    def patients(
        key: Key,
        task: Annotated[TaskName, Query(description="Which cohort")],
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> Patients:
        check_ready(task)
        frame = svc().risks(task)
        page = frame.iloc[offset : offset + limit]
        items = [
            Patient(
                subject_id=int(r.subject_id),
                hadm_id=int(r.hadm_id),
                icustay_id=None if r.icustay_id != r.icustay_id else int(r.icustay_id),
                risk=float(r.risk),
                band=str(r.band),
            )
            for r in page.itertuples()
        ]
        return Patients(task=task, total=len(frame), items=items)

    @app.post("/v1/explain", response_model=Explanation, responses=ERRORS, tags=["explain"])
    def explain(body: ExplainRequest, key: Key) -> Explanation:
        check_ready(body.task)
        return svc().explain(
            body.task,
            body.hadm_id,
            body.icustay_id,
            caller=Caller(key, "/v1/explain"),
            ask=Ask(body.question, chosen_model(body.model)),
            fallback=True,
        )

    @app.post(
        "/v1/explain/stream",
        responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
        tags=["explain"],
    )
    def explain_stream(body: ExplainRequest, key: Key) -> StreamingResponse:
        check_ready(body.task)
        ask = Ask(body.question, chosen_model(body.model))
        # Facts (and a 404 for an unknown patient) before the stream starts
        facts = svc().facts(body.task, body.hadm_id, body.icustay_id, body.question)
        events = svc().stream(facts, caller=Caller(key, "/v1/explain/stream"), ask=ask)

        def sse() -> Iterator[str]:
            for e in events:
                if e.kind == "queued":
                    kind, data = "queued", json.dumps({"ahead": e.ahead})
                elif e.kind == "token":
                    kind, data = "token", json.dumps({"text": e.text})
                elif e.explanation is not None:
                    kind, data = "explanation", e.explanation.model_dump_json()
                elif isinstance(e.error, SafeLLMError):
                    kind = "error"
                    data = json.dumps({"code": type(e.error).__name__, "message": str(e.error)})
                else:  # never a traceback to the client
                    kind = "error"
                    data = json.dumps({"code": "internal_error", "message": type(e.error).__name__})
                yield f"event: {kind}\ndata: {data}\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")

    app.state.settings = settings
    if chat:
        import gradio as gr

        from app.chat import CSS, build_chat

        signed_in: dict[str, str] = {}  # user name -> id of the key they signed in with

        def login(user: str, password: str) -> bool:
            kid = keys.check(password)
            if kid is not None:
                signed_in[user] = kid
            return kid is not None

        app = gr.mount_gradio_app(
            app,
            build_chat(
                state["service"], state["tasks"], key_of=lambda u: signed_in.get(u or "", "-")
            ),
            path="/chat",
            auth=login if keys.configured else None,
            auth_message="Sign in with any user name and an API key as the password.",
            css=CSS,
        )
    return app
