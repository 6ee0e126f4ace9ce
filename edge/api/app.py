"""The HTTP API and operator page: `create_app(AppContext)` builds the FastAPI app.

Routes live in one module per concept (frames, events, login, models, test runs, exports,
metrics); this module binds them to the context, maps every error to one JSON shape,
`{"error": {"code", "message"}}`, in one place, and serves the page and the login page.
Reading needs any logged-in role, changing anything the role its action names
(edge.auth.roles); /api/health, /metrics, /login and POST /api/login need none.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.api.access import session_principal
from edge.api.audit import audit_router
from edge.api.auth_routes import auth_router
from edge.api.context import AppContext
from edge.api.events import EventHub, events_router
from edge.api.exports import exports_router
from edge.api.frames import IMAGE_CACHE_CONTROL, UploadTooLargeError, frames_router
from edge.api.metrics import LatencyMetrics, metrics_router
from edge.api.models import models_router
from edge.api.run_jobs import TestJobs
from edge.api.runs import runs_router
from edge.auth import AuthError
from edge.errors import EdgeError

__all__ = [
    "IMAGE_CACHE_CONTROL",
    "PAGES",
    "STATIC_DIR",
    "AppContext",
    "UploadTooLargeError",
    "create_app",
    "error_body",
    "error_code",
]

STATIC_DIR = Path(__file__).resolve().parent / "static"
# No page loads anything from elsewhere: the appliance has no network. /docs is our own
# rendering of /openapi.json (static/docs.*), not FastAPI's Swagger UI, which loads its
# scripts from a CDN.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# The operator console, the history, one frame, and the technician and vendor page.
PAGES = {
    "index.html": "/",
    "history.html": "/history",
    "frame.html": "/frame",
    "service.html": "/service",
}


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_code(exc: EdgeError) -> str:
    """'UnknownFrameError' -> 'unknown_frame'."""
    name = type(exc).__name__.removesuffix("Error") or "edge"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class SecurityHeaders:
    """Adds no-sniff, no-framing, no-referrer and a strict CSP to every response; pure ASGI
    so live-event streams pass straight through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                headers.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(ctx: AppContext) -> FastAPI:
    """The appliance's HTTP API and operator page, bound to one context."""
    hub = EventHub(
        max_clients=ctx.max_event_clients,
        queue_size=ctx.event_queue,
        heartbeat_s=ctx.event_heartbeat_s,
    )
    latency = LatencyMetrics()
    test_jobs = TestJobs()  # test runs started over the API; a running one ends with the app

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        unsubscribe = ctx.service.subscribe(latency.on_screened)
        hub.start(ctx.service.subscribe)
        try:
            yield
        finally:
            test_jobs.close()
            hub.stop()
            unsubscribe()

    app = FastAPI(
        title="Edge X-ray screening appliance",
        version=ctx.version,
        description="Screening results, frame images, decisions and service health. Log in "
        "with POST /api/login (session cookie + X-CSRF-Token) or send a script token from "
        "`edge users token NAME` as `Authorization: Bearer ...`.",
        lifespan=lifespan,
        docs_url=None,  # served below from static/docs.*: Swagger UI needs a CDN
        redoc_url=None,
    )
    app.state.users = ctx.users  # for the login dependencies (edge.api.access)
    app.add_middleware(SecurityHeaders)
    _error_handlers(app)

    def page(name: str, path: str) -> None:
        # A page is only markup and scripts; what it shows comes from the API, which checks
        # the role of every call. Strangers go to the login page, and come back after it.
        def serve(request: Request) -> Response:
            if session_principal(request) is None:
                target = "/login" if path == "/" else f"/login?next={path}"
                return RedirectResponse(target, status_code=303)
            return FileResponse(STATIC_DIR / name, headers={"Cache-Control": "no-cache"})

        app.add_api_route(path, serve, methods=["GET"], include_in_schema=False)

    for name, path in PAGES.items():
        page(name, path)

    @app.get("/docs", include_in_schema=False)
    def api_docs() -> FileResponse:
        """The API reference, rendered in the browser from /openapi.json (open, like it)."""
        return FileResponse(STATIC_DIR / "docs.html", headers={"Cache-Control": "no-cache"})

    @app.get("/login", include_in_schema=False)
    def login_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "login.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/health", tags=["health"])
    def health() -> dict[str, Any]:
        """Service state: "ok", or "degraded" with reasons (no model, last frame NOT
        SCREENED, logging degraded, a source down). No login needed."""
        return _health(ctx)

    app.include_router(auth_router(ctx))
    app.include_router(frames_router(ctx, hub))
    app.include_router(events_router(ctx, hub))
    app.include_router(models_router(ctx))
    app.include_router(runs_router(ctx, test_jobs))
    app.include_router(exports_router(ctx))
    app.include_router(metrics_router(ctx, hub, latency))
    app.include_router(audit_router(ctx))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EdgeError)
    async def edge_error(_request: Request, exc: EdgeError) -> JSONResponse:
        headers = exc.http_headers() if isinstance(exc, AuthError) else None
        return JSONResponse(
            error_body(error_code(exc), exc.message), status_code=exc.http_status, headers=headers
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else f"http_{exc.status_code}"
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return JSONResponse(error_body("bad_request", problems), status_code=422)


def _health(ctx: AppContext) -> dict[str, Any]:
    service = ctx.service
    counters = service.counters
    degraded = service.degraded()
    logging_health = ctx.store.health() if ctx.store is not None else None
    if logging_health is not None and logging_health["logging"] != "ok":
        degraded.append(f"logging degraded: {logging_health['reason']}")
    sources = [status() for status in ctx.sources]
    for state in sources:
        if state.get("state") in ("silent", "connecting", "error"):
            degraded.append(f"{state['source']}: {state['state']}")
    return {
        "status": "degraded" if degraded else "ok",
        "version": ctx.version,
        "model": service.model_id,
        "model_sha256": service.model_sha256,
        "classes": service.class_names,
        "frames_in": counters.frames_in,
        "screened": counters.screened,
        "not_screened": counters.not_screened,
        "alarms": counters.alarms,
        "last_latency_ms": counters.last_latency_ms,
        "uptime_s": round(time.monotonic() - service.started_monotonic, 1),
        "queue_depth": service.queue_depth(),
        "latency_ms": service.latency_ms(),
        "logging": logging_health,
        "sources": sources,
        "degraded": degraded,
    }
