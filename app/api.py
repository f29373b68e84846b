"""The REST API: `create_app(settings)`. Thin routes over the explanation use case
(`safellm.services.explanation.ExplanationService`, which also writes the audit trail).

Contract (DESIGN.md): `GET /health` (no key); with `Authorization: Bearer <key>`: `POST /v1/predict`,
`POST /v1/explain`, `POST /v1/explain/stream` (Server-Sent Events: `queued` events while the
question waits for the model, `token` events, then one `explanation`), `GET /v1/patients`, and
OpenAI's `POST /v1/chat/completions` and `GET /v1/models` (`safellm.services.openai_chat`), and
`GET /metrics` (Prometheus; `app.metrics`, `SAFELLM_METRICS`). Errors
are `{"error": {"code", "message"}}` with 400, 401, 404, 413, 422, 429 or 503 (with Retry-After
when the model's queue is full) — never a stack trace; a failing LLM gives the guarded fallback
with 200. A prediction starts a prefetch of that patient's prompt, in the background.
Logs carry request ids, key ids, routes, statuses and latencies: no note text, question or name.
"""

import asyncio
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.cds import fhir_routes, operation_outcome
from app.metrics import Metrics
from app.security import KeyRing, LoginThrottle, RateLimiter
from safellm.audit import AuditTrail
from safellm.cancel import CancelToken
from safellm.config import Settings, apply_offline_switches
from safellm.errors import (
    ArtifactError,
    Cancelled,
    ConfigError,
    DataError,
    FhirInputError,
    LLMError,
    QueueFullError,
    SafeLLMError,
    StoreUnavailableError,
    UnknownNameError,
    UnknownPatientError,
    UserInputError,
)
from safellm.pgstore import PostgresRateLimiter
from safellm.queueing import background
from safellm.rationale import Explanation
from safellm.services import openai_chat as oa
from safellm.services.explanation import Ask, Caller, ExplanationService
from safellm.tasks import TaskName

log = logging.getLogger("safellm.api")
# one JSON line per request (and per streamed answer when it ends): ids, route, status, latency,
# guard outcome; never a query string, a body, a key or any text
access = logging.getLogger("safellm.access")


def access_line(**fields: Any) -> str:
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=True)


# ------------------------------------------------------------------------------------- bodies
class UnitRequest(BaseModel):
    # strict: JSON's own types only (`"hadm_id": true` or `"7"` is a 422, not 1 or 7)
    model_config = ConfigDict(extra="forbid", strict=True)
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


WATCH_S = 0.5  # a stream waiting for its next event comes back this often (see `sse`)
# the API key as `Authorization: Bearer KEY` (declared in the OpenAPI document; checked below)
BEARER = HTTPBearer(auto_error=False, description="An API key of SAFELLM_API_KEYS.")
# what each response may load: the API's JSON nothing; the docs their own files; the chat (Gradio)
# its own pages, never inside another site's frame
CSP_API = "default-src 'none'; frame-ancestors 'none'"
CSP_DOCS = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'"
)
CSP_CHAT = "frame-ancestors 'none'"


def mount_docs(app: FastAPI) -> None:
    """Swagger UI (5.x, which reads OpenAPI 3.1) at /docs from the files of the installed
    swagger-ui-py package (no CDN; the package itself is not imported)."""
    import importlib.util

    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("Swagger UI's files are missing: pip install swagger-ui-py")
    static = Path(next(iter(spec.submodule_search_locations))) / "static"
    app.mount("/docs/static", StaticFiles(directory=str(static)), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon-32x32.png",
        )


def security_headers(path: str, headers: Any) -> None:
    """Headers every response gets: no sniffing, no framing, a content policy by kind, and no
    caching of anything that may carry patient data."""
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if path.startswith("/chat"):
        csp = CSP_CHAT
    elif path.startswith("/docs"):
        csp = CSP_DOCS
    else:
        csp = CSP_API
    headers.setdefault("Content-Security-Policy", csp)
    static = path.startswith(("/docs/static/", "/chat/assets/", "/chat/static/"))
    if not static:
        headers["Cache-Control"] = "no-store"


NOT_IN_COHORT = "no such admission or ICU stay in this task's cohort"


def stream_error(exc: Exception) -> tuple[str, str]:
    """The code and message of an error that stopped a stream: never a traceback."""
    if isinstance(exc, Cancelled):
        return exc.reason, str(exc)
    if isinstance(exc, SafeLLMError):
        return type(exc).__name__, str(exc)
    return "internal_error", type(exc).__name__


def error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)


class _TooLarge(Exception):
    pass


class BodyLimit:
    """413 for a body over `limit` bytes, announced (Content-Length) or streamed."""

    def __init__(
        self, app: ASGIApp, limit: int, large: tuple[str, ...] = (), large_limit: int = 0
    ) -> None:
        self.app, self.limit = app, limit
        self.large, self.large_limit = large, large_limit  # path prefixes with their own limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = (
            self.large_limit
            if self.large and str(scope.get("path", "")).startswith(self.large)
            else self.limit
        )
        too_big = error(413, "too_large", f"request body over {limit} bytes")
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await too_big(scope, receive, send)
            return
        seen, over, started = 0, False, False

        async def counted() -> Message:
            nonlocal seen, over
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    over = True
                    raise _TooLarge
            return msg

        async def answer(msg: Message) -> None:
            nonlocal started
            if over:  # the app's answer to a body it could not read (a 400): the 413 instead
                return
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        with suppress(_TooLarge):
            await self.app(scope, counted, answer)
        if over and not started:
            await too_big(scope, receive, send)


class AccessLog:
    """A request id (`X-Request-ID`) and the security headers on every response, one JSON access
    line per request when it ends. Plain ASGI (no task or body copy per request); an exception
    that escapes the app becomes a 500 with the request id, its type logged, never its text."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex[:12]
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        path, started, status = scope["path"], time.perf_counter(), 0

        async def marked(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
                headers = MutableHeaders(scope=msg)
                headers["X-Request-ID"] = rid
                security_headers(path, headers)
            await send(msg)

        try:
            await self.app(scope, receive, marked)
        except Exception as exc:
            log.error("request=%s failed: %s", rid, type(exc).__name__)
            if status:  # the answer is under way: nothing more can be said
                raise
            crash = error(
                500, "internal_error", "internal error; the request id is in X-Request-ID"
            )
            await crash(scope, receive, marked)
        finally:
            access.info(
                access_line(
                    event="request",
                    request_id=rid,
                    method=scope["method"],
                    route=path,
                    status=status,
                    key=state.get("key_id"),
                    ms=round((time.perf_counter() - started) * 1000, 1),
                    guard=state.get("guard"),
                )
            )


class SignInThrottle:
    """The chat's sign-in (`POST /chat/login`), per client address: after a few failures each
    next try waits longer (429 with Retry-After until then)."""

    def __init__(self, app: ASGIApp, logins: LoginThrottle) -> None:
        self.app, self.logins = app, logins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"].rstrip("/") != "/chat/login"
        ):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        who = "client:" + (client[0] if client else "-")
        wait = self.logins.wait(who)
        if wait > 0:
            refusal = error(
                429,
                "too_many_sign_ins",
                "too many failed sign-ins from this client; try again later",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
            await refusal(scope, receive, send)
            return
        status = 0

        async def seen(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            await send(msg)

        await self.app(scope, receive, seen)
        if status == 200:
            self.logins.succeeded(who)
        else:
            self.logins.failed(who)


# ---------------------------------------------------------------------------------------- app
def create_app(
    settings: Settings | None = None,
    service: ExplanationService | None = None,
    audit: AuditTrail | None = None,
    chat: bool = True,
) -> FastAPI:
    """The API (and the chat at /chat unless `chat=False`) over one ExplanationService; `audit`
    is the trail of a service made here (default: `$SAFELLM_HOME/audit.sqlite`, or PostgreSQL
    at `SAFELLM_AUDIT_URL`, which also holds the per-key rate limits shared by replicas)."""
    apply_offline_switches()
    settings = settings or Settings()
    keys = KeyRing([k.get_secret_value() for k in settings.api_keys])
    limiter: RateLimiter | PostgresRateLimiter
    if settings.audit_url is not None:  # shared by every replica given the same database
        limiter = PostgresRateLimiter(
            settings.audit_url.get_secret_value(), settings.api_rate_per_minute
        )
    else:
        limiter = RateLimiter(settings.api_rate_per_minute)
    logins = LoginThrottle()  # the chat's failed sign-ins, per client and per user name
    live: set[CancelToken] = set()  # the LLM work of requests in flight
    state: dict[str, Any] = {}

    if service is not None and audit is not None:
        raise ValueError("give the audit trail to the service: ExplanationService(..., audit=...)")
    state["service"] = service or ExplanationService(settings, audit=audit)
    state["tasks"] = state["service"].available_tasks()
    metrics = Metrics(settings.home / "monitor")  # concept drift: the latest monitor reports

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        svc = state["service"]
        svc.audit  # noqa: B018 - the audit trail is opened (and created) at start-up
        for task in state["tasks"]:  # models, data, risks and row index loaded once, here
            svc.risks(task)
            svc.row_index(task)
        try:
            svc.guard  # noqa: B018 - the policy is validated at start-up
            svc.model()
            state["llm_ready"] = True
        except SafeLLMError as exc:
            log.warning("LLM not ready: %s", type(exc).__name__)
            state["llm_ready"] = False

        def warm() -> None:
            """The note embedder and the LLM client's first call, now rather than in the first
            questions' time, on a worker thread (their own threads then share the workers'
            lower priority)."""
            background(svc.settings.worker_nice)
            if state["tasks"]:
                svc.embedder.embed(["warm-up"])
            first_call = getattr(svc.model(), "warm", None) if state["llm_ready"] else None
            if callable(first_call):
                first_call()

        try:
            await run_in_threadpool(warm)
        except SafeLLMError as exc:
            log.warning("warm-up incomplete: %s", type(exc).__name__)
        metrics.watch_queue(svc.queue.waiting, lambda: svc.queue.service_s)
        with suppress(SafeLLMError):
            metrics.versions(versions())
        yield
        for token in list(live):  # shutting down: work in flight stops between two tokens
            token.cancel()

    app = FastAPI(
        title="SafeLLM",
        version="1",
        description="Clinical risk predictions explained by an LLM under guards that check every "
        "claim against the model's Facts.",
        lifespan=lifespan,
        docs_url=None,  # served below from the installed swagger-ui-py, not a CDN
        redoc_url=None,
    )
    mount_docs(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.api_cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"],
    )
    app.add_middleware(
        BodyLimit,
        limit=settings.api_max_body_bytes,
        large=("/cds-services", "/v1/fhir/"),  # a patient's FHIR record
        large_limit=settings.fhir_max_body_bytes,
    )

    # outermost first: the access log sees every answer, the sign-in throttle's refusals included
    app.add_middleware(SignInThrottle, logins=logins)
    app.add_middleware(AccessLog)
    if settings.metrics != "off":
        metrics.instrument(app)

    # ------------------------------------------------------------------------------- errors
    @app.exception_handler(SafeLLMError)
    async def on_ours(request: Request, exc: SafeLLMError) -> JSONResponse:
        if isinstance(exc, FhirInputError):
            return operation_outcome(exc)
        if isinstance(exc, Cancelled):
            return error(
                503,
                "deadline_exceeded" if exc.reason == "timed_out" else "cancelled",
                str(exc),
                headers={"Retry-After": "30"},
            )
        if isinstance(exc, QueueFullError):
            return error(
                503, "queue_full", str(exc), headers={"Retry-After": str(exc.retry_after_s)}
            )
        for cls, status, code in (
            (UnknownPatientError, 404, "unknown_patient"),
            (UnknownNameError, 400, "unknown_name"),
            (UserInputError, 400, "bad_request"),
            (ArtifactError, 503, "not_ready"),
            (StoreUnavailableError, 503, "store_unavailable"),
            (DataError, 503, "not_ready"),
            (ConfigError, 503, "not_ready"),
            (LLMError, 503, "llm_unavailable"),
        ):
            if isinstance(exc, cls):
                # what the client sent is not echoed: an unknown id may be a typo of a real one
                message = NOT_IN_COHORT if cls is UnknownPatientError else str(exc)
                return error(status, code, message)
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

    # --------------------------------------------------------------------------------- auth
    async def require_key(
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    ) -> str:
        token = creds.credentials.strip() if creds is not None else ""
        kid = keys.check(token) if token else None
        if kid is None:
            why = "missing or wrong API key" if keys.configured else "no API keys configured"
            raise StarletteHTTPException(401, why, headers={"WWW-Authenticate": "Bearer"})
        request.state.key_id = kid
        if isinstance(limiter, PostgresRateLimiter):  # a database round trip: off the loop
            ok, wait = await run_in_threadpool(limiter.allow, kid)
        else:
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
            raise UnknownNameError(f"this server does not offer that model (offered: {allowed})")
        return name

    # ------------------------------------------------------------------------------- routes
    def versions() -> dict[str, Any]:
        s = svc()
        return {
            "llm": settings.llm_model,
            "prompt": s.prompt("explain-risk").version,
            "policy": s.guard.policy_version,
            "risk_models": {t: s.explainer(t).version for t in state["tasks"]},
        }

    @app.get("/health", tags=["service"])
    async def health() -> dict[str, Any]:
        # on the event loop, never behind the thread pool the model work holds: the versions
        # are read once (start-up loads all of them)
        if "versions" not in state:
            state["versions"] = await run_in_threadpool(versions)
        return {
            "status": "ok",
            "tasks": state["tasks"],
            "llm_ready": state.get("llm_ready", False),
            "versions": state["versions"],
        }

    @app.post("/v1/predict", response_model=PredictResponse, responses=ERRORS, tags=["risk"])
    async def predict(body: UnitRequest, key: Key) -> PredictResponse:
        # on the event loop: an index lookup in risks computed at start-up, no thread hop
        check_ready(body.task)
        risk, band = svc().risk_of(body.task, body.hadm_id, body.icustay_id)
        response = PredictResponse(
            task=body.task,
            risk=risk,
            band=band,
            model_version=svc().explainer(body.task).version,
        )
        # an explanation of this patient often follows: prefill its prompt (in the background)
        svc().prefetch_unit(body.task, body.hadm_id, body.icustay_id)
        return response

    app.include_router(fhir_routes(svc, require_key, check_ready, ERRORS, metrics.card))

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

    async def cancel_when_gone(request: Request, token: CancelToken) -> None:
        """Cancel `token` when the client disconnects (the body is read: the next message is
        the disconnect)."""
        while (await request.receive())["type"] != "http.disconnect":
            pass
        token.cancel()

    def watched(request: Request) -> CancelToken:
        """A token for one request's LLM work: expires at `api_deadline_s`, cancelled when
        its client leaves (the routes look) or the server shuts down."""
        token = CancelToken(settings.api_deadline_s)
        live.add(token)
        return token

    async def while_there(
        request: Request, token: CancelToken, work: Callable[[], Explanation]
    ) -> Explanation:
        """`work` on a worker thread, its `token` cancelled if the client disconnects first."""
        running = asyncio.ensure_future(run_in_threadpool(work))
        watcher = asyncio.ensure_future(cancel_when_gone(request, token))
        try:
            return await running
        finally:
            watcher.cancel()
            live.discard(token)

    def stream_ended(
        token: CancelToken, outcome: str, request: Request, key: str, started: float
    ) -> None:
        """A stream's end, or its client left mid-stream: the work stops either way, and the
        access log gets its `streamed` line with the guard outcome."""
        if outcome == "error" and token.reason is None:
            outcome = "cancelled"
        token.cancel()
        live.discard(token)
        access.info(
            access_line(
                event="streamed",
                request_id=request.state.request_id,
                route=request.url.path,
                key=key,
                ms=round((time.perf_counter() - started) * 1000, 1),
                guard=outcome,
            )
        )

    @app.post("/v1/explain", response_model=Explanation, responses=ERRORS, tags=["explain"])
    async def explain(body: ExplainRequest, key: Key, request: Request) -> Explanation:
        check_ready(body.task)
        ask = Ask(body.question, chosen_model(body.model))
        # the place in the queue first: a full queue refuses at once, before any Facts are made
        # and holding no worker thread
        place = svc().queue.reserve(key)
        token = watched(request)
        caller = Caller(key, "/v1/explain", request.state.request_id)
        exp = await while_there(
            request,
            token,
            lambda: svc().explain(
                body.task,
                body.hadm_id,
                body.icustay_id,
                caller=caller,
                ask=ask,
                fallback=True,
                cancel=token,
                place=place,
            ),
        )
        request.state.guard = exp.guard.outcome
        metrics.explained(exp, "/v1/explain")
        return exp

    @app.post(
        "/v1/explain/stream",
        responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
        tags=["explain"],
    )
    async def explain_stream(body: ExplainRequest, key: Key, request: Request) -> StreamingResponse:
        check_ready(body.task)
        ask = Ask(body.question, chosen_model(body.model))
        # the place in the queue first (a full queue refuses at once), then the Facts (and a
        # 404 for an unknown patient) before the stream starts
        place = svc().queue.reserve(key)
        try:
            facts = await run_in_threadpool(
                svc().facts, body.task, body.hadm_id, body.icustay_id, body.question
            )
        except BaseException:
            svc().queue.release(place)
            raise
        token = watched(request)
        events = svc().stream(
            facts,
            caller=Caller(key, "/v1/explain/stream", request.state.request_id),
            ask=ask,
            cancel=token,
            tick_s=WATCH_S,
            place=place,
        )
        started = time.perf_counter()

        async def sse() -> AsyncIterator[str]:
            outcome = "error"
            try:
                async for e in iterate_in_threadpool(events):
                    if e.kind == "tick":  # nothing new; coming back here regularly lets a
                        continue  # client's disconnect cancel this response (see `finally`)
                    if e.kind == "queued":
                        kind, data = "queued", json.dumps({"ahead": e.ahead})
                    elif e.kind == "token":
                        kind, data = "token", json.dumps({"text": e.text})
                    elif e.explanation is not None:
                        kind, data = "explanation", e.explanation.model_dump_json()
                        outcome = e.explanation.guard.outcome
                        metrics.explained(e.explanation, "/v1/explain/stream")
                    elif e.error is not None:
                        kind, (code, message) = "error", stream_error(e.error)
                        outcome = e.error.reason if isinstance(e.error, Cancelled) else outcome
                        data = json.dumps({"code": code, "message": message})
                    yield f"event: {kind}\ndata: {data}\n\n"
            finally:  # the end, or the client left mid-stream: the work stops either way
                stream_ended(token, outcome, request, key, started)

        return StreamingResponse(sse(), media_type="text/event-stream")

    # ------------------------------------------------------------------------------ metrics
    if settings.metrics != "off":
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        def scrape() -> PlainTextResponse:
            return PlainTextResponse(
                generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST
            )

        if settings.metrics == "open":

            @app.get("/metrics", include_in_schema=False)
            async def metrics_open() -> PlainTextResponse:
                return scrape()

        else:

            @app.get("/metrics", include_in_schema=False)
            async def metrics_key(key: Key) -> PlainTextResponse:
                return scrape()

    # ------------------------------------------------------------- OpenAI chat completions
    @app.get("/v1/models", tags=["openai"])
    async def openai_models(key: Key) -> dict[str, Any]:
        """The SafeLLM services as OpenAI models (one per task this server can answer)."""
        return oa.models(state["tasks"])

    @app.post(
        "/v1/chat/completions",
        responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
        tags=["openai"],
    )
    async def chat_completions(body: oa.ChatCompletionRequest, key: Key, request: Request) -> Any:
        """OpenAI's chat-completions format over `/v1/explain` (see
        `safellm.services.openai_chat`): the guarded answer, the Explanation in `safellm`. A
        stream sends what `/v1/explain/stream` sends as `token` events (sentences as they pass
        the guard), SSE comments while the question waits, and the Explanation on the last
        chunk."""
        asked = oa.parse(body)
        check_ready(asked.task)
        rid = request.state.request_id
        cid = f"chatcmpl-{rid}"
        caller = Caller(key, "/v1/chat/completions", rid)
        place = svc().queue.reserve(key)
        try:
            facts = await run_in_threadpool(
                svc().facts, asked.task, asked.hadm_id, asked.icustay_id, asked.ask.question
            )
        except BaseException:
            svc().queue.release(place)
            raise
        token = watched(request)
        if not body.stream:
            try:
                exp = await while_there(
                    request,
                    token,
                    lambda: svc().explain_facts(
                        facts,
                        caller=caller,
                        ask=asked.ask,
                        fallback=True,
                        cancel=token,
                        place=place,
                    ),
                )
            finally:
                svc().queue.release(place)
            request.state.guard = exp.guard.outcome
            metrics.explained(exp, "/v1/chat/completions")
            return JSONResponse(oa.completion(exp, body.model, cid))
        events = svc().stream(
            facts, caller=caller, ask=asked.ask, cancel=token, tick_s=WATCH_S, place=place
        )
        started, created = time.perf_counter(), int(time.time())

        def data(obj: dict[str, Any]) -> str:
            return f"data: {json.dumps(obj)}\n\n"

        async def sse() -> AsyncIterator[str]:
            outcome = "error"
            try:
                yield data(oa.chunk(cid, body.model, created, {"role": "assistant", "content": ""}))
                async for e in iterate_in_threadpool(events):
                    if e.kind == "tick":  # nothing new: a comment keeps the line alive
                        yield ": working\n\n"
                    elif e.kind == "queued":
                        yield f": queued, {e.ahead} ahead\n\n"
                    elif e.kind == "token":  # text the guard has let through (see module)
                        yield data(oa.chunk(cid, body.model, created, {"content": e.text}))
                    elif e.explanation is not None:
                        exp = e.explanation
                        outcome = exp.guard.outcome
                        metrics.explained(exp, "/v1/chat/completions")
                        final = oa.chunk(cid, body.model, created, {}, "stop", oa.extension(exp))
                        yield data(final)
                        yield "data: [DONE]\n\n"
                    elif e.error is not None:
                        code, message = stream_error(e.error)
                        outcome = e.error.reason if isinstance(e.error, Cancelled) else outcome
                        yield data({"error": {"code": code, "message": message}})
            finally:
                stream_ended(token, outcome, request, key, started)

        return StreamingResponse(sse(), media_type="text/event-stream")

    app.state.settings = settings
    if chat:
        import gradio as gr

        from app.chat import CSS, build_chat

        signed_in: dict[str, str] = {}  # user name -> id of the key they signed in with

        def login(user: str, password: str) -> bool:
            who = "user:" + user
            if logins.wait(who) > 0:  # refused unchecked: nothing learnt from this try
                return False
            kid = keys.check(password)
            if kid is None:
                logins.failed(who)
                return False
            logins.succeeded(who)
            signed_in[user] = kid
            return True

        def allow(user: str | None) -> tuple[bool, float]:
            """The API's rate limit, for the key the chat's user signed in with."""
            return limiter.allow(signed_in.get(user or "", "-"))

        app = gr.mount_gradio_app(
            app,
            build_chat(
                state["service"],
                state["tasks"],
                key_of=lambda u: signed_in.get(u or "", "-"),
                allow=allow,
            ),
            path="/chat",
            auth=login if keys.configured else None,
            auth_message="Sign in with any user name and an API key as the password.",
            css=CSS,
        )
    return app
