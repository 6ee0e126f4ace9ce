"""The HTTP API and operator page: `create_app(AppContext)` builds the FastAPI app.

Every route reads the service through the context; errors leave as one JSON shape,
`{"error": {"code", "message"}}`, mapped from `EdgeError.http_status` in one handler.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
from fastapi import FastAPI, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from edge.errors import BadInputError, EdgeError
from edge.ingest.images import load_image
from edge.pipeline import Pipeline, UnknownFrameError
from edge.pseudocolor import render_pseudocolor
from edge.store import Store

STATIC_DIR = Path(__file__).resolve().parent / "static"
# Frame ids never name another image while the service runs, so a browser may keep them;
# the page adds the frame's receive time to the URL, which also survives a restart.
IMAGE_CACHE_CONTROL = "private, max-age=3600"


@dataclass
class AppContext:
    """Everything the routes need; later stages (events, roles) add fields here.

    `sources`: one status callable per ingest source (serial link, hot folder) for health.
    """

    service: Pipeline
    version: str = "unknown"
    store: Store | None = None
    sources: list[Callable[[], dict[str, Any]]] = field(default_factory=list)
    max_upload_bytes: int = 64 << 20
    tdr_dir: Path | None = None


class UploadTooLargeError(BadInputError):
    http_status = 413


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_code(exc: EdgeError) -> str:
    """'UnknownFrameError' -> 'unknown_frame'."""
    name = type(exc).__name__.removesuffix("Error") or "edge"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def create_app(ctx: AppContext) -> FastAPI:
    """The appliance's HTTP API and operator page, bound to one context."""
    app = FastAPI(
        title="Edge X-ray screening appliance",
        version=ctx.version,
        description="Screening results, frame images and service health.",
    )
    service = ctx.service

    @app.exception_handler(EdgeError)
    async def edge_error(_request: Request, exc: EdgeError) -> JSONResponse:
        return JSONResponse(error_body(error_code(exc), exc.message), status_code=exc.http_status)

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

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        """Service state: "ok", or "degraded" with reasons (no model, last frame NOT SCREENED)."""
        counters = service.counters
        degraded = service.degraded()
        if ctx.store is not None and ctx.store.health()["logging"] != "ok":
            degraded.append(f"logging degraded: {ctx.store.health()['reason']}")
        for status in ctx.sources:
            state = status()
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
            "logging": ctx.store.health() if ctx.store is not None else None,
            "sources": [status() for status in ctx.sources],
            "degraded": degraded,
        }

    @app.get("/api/frames")
    def frames(
        limit: int = Query(20, ge=1, le=1000, description="at most this many, newest first"),
    ) -> list[dict[str, Any]]:
        """Recent frames, newest first; boxes are xyxy in frame pixels."""
        return [f.to_dict() for f in service.recent(limit)]

    # Declared before /api/frames/{frame_id}, which would otherwise take "latest" as an id.
    @app.get("/api/frames/latest")
    def latest_frame() -> dict[str, Any]:
        """The newest frame (404 before the first)."""
        return service.latest().to_dict()

    @app.get("/api/frames/{frame_id}")
    def frame(frame_id: str) -> dict[str, Any]:
        """One frame by id (404 if unknown or no longer held)."""
        return service.get(frame_id).to_dict()

    @app.get(
        "/api/frames/{frame_id}/image",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}},
    )
    def frame_image(frame_id: str) -> Response:
        """The frame's pseudo-colour rendering as an 8-bit RGB PNG, full resolution."""
        try:
            rgb = service.get(frame_id).rgb
        except UnknownFrameError:
            if ctx.store is None:
                raise
            stored = ctx.store.load_image(frame_id)  # FrameNotFoundError (404) if unknown
            if stored.rgb is not None:
                rgb = stored.rgb
            else:
                assert stored.high is not None  # a Frame has channels or RGB
                rgb = render_pseudocolor(stored.high, stored.low)
        ok, png = cv2.imencode(
            ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1]
        )
        if not ok:
            raise EdgeError(f"frame {frame_id}: PNG encoding failed")
        return Response(
            png.tobytes(), media_type="image/png", headers={"Cache-Control": IMAGE_CACHE_CONTROL}
        )

    @app.get(
        "/api/frames/{frame_id}/tdr",
        response_class=Response,
        responses={200: {"content": {"application/dicom": {}}}},
    )
    def frame_tdr(frame_id: str) -> Response:
        """The DICOS Threat Detection Report of a frame that came from a DICOS image."""
        if ctx.tdr_dir is None or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", frame_id):
            raise UnknownFrameError(f"no Threat Detection Report for frame {frame_id!r}")
        path = ctx.tdr_dir / f"{frame_id}.dcs"
        if not path.is_file():
            raise UnknownFrameError(
                f"no Threat Detection Report for frame {frame_id!r} (not a DICOS frame?)"
            )
        return Response(path.read_bytes(), media_type="application/dicom")

    @app.post("/api/frames", status_code=201)
    async def upload_frame(
        file: UploadFile, bag: str | None = Form(None, max_length=200)
    ) -> dict[str, Any]:
        """Screen an uploaded image like any other frame (8-bit PNG/JPEG, 16-bit two-page
        TIFF, DICOS DX); answers once screened, with the frame's record."""
        data = await file.read(ctx.max_upload_bytes + 1)
        name = Path(file.filename or "upload").name
        if len(data) > ctx.max_upload_bytes:
            raise UploadTooLargeError(
                f"{name}: larger than the {ctx.max_upload_bytes >> 20} MiB upload limit"
            )
        suffix = Path(name).suffix[:10]
        with tempfile.TemporaryDirectory(prefix="edge-upload-") as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(data)
            try:
                frame = load_image(path, max_bytes=ctx.max_upload_bytes)
            except EdgeError as exc:
                raise type(exc)(exc.message.replace(str(path), name)) from None
        screened = await run_in_threadpool(service.submit, frame, "upload", bag or name, 120.0)
        return screened.to_dict()

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
