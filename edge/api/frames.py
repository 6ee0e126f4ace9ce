"""Frame routes: lists with filters, one frame, its image views, its TDR, uploads and the
operator's decision.

Frames held in memory (the last few hundred, logged or not) answer first: they are what
the operator sees live, and a frame the disk could not take is still among them. The
image log answers for everything older, and is the only source of the filtered, paged
history.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile as StarletteUpload

from calibration.materials import MaterialCurves, classify
from edge.api.access import MayDecide, MayUpload, logged_in
from edge.api.context import AppContext
from edge.api.events import EventHub
from edge.api.planes import PlaneCache
from edge.api.png import by_strips, encode_png
from edge.api.records import (
    FRAME_ID_PATTERN,
    Decision,
    DecisionFilter,
    FrameQuery,
    screened_json,
    stored_json,
)
from edge.api.views import (
    MATERIAL_PALETTE,
    MAX_THUMBNAIL,
    MIN_THUMBNAIL,
    PngCache,
    View,
    ViewUnavailableError,
    boxed_view,
    downsample,
    grey_view,
    material_index,
    palette_rgb,
    scaled,
    thumbnail_side,
)
from edge.errors import BadInputError, EdgeError
from edge.frames import Frame
from edge.ingest.images import load_image
from edge.pipeline import ScreenedFrame, UnknownFrameError
from edge.pseudocolor import render_pseudocolor
from edge.store import FrameNotFoundError

# Frame ids never name another image while the service runs, so a browser may keep them;
# the page adds the frame's receive time to the URL, which also survives a restart.
IMAGE_CACHE_CONTROL = "private, max-age=3600"

FrameId = Annotated[
    str,
    PathParam(
        pattern=FRAME_ID_PATTERN,
        max_length=64,
        description="the appliance's frame id (letters, digits, '-', '_')",
    ),
]


UPLOAD_FORM_SLACK = 64 << 10  # multipart boundaries and headers around the file
UPLOAD_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "bag": {"type": "string", "maxLength": 200},
                    },
                }
            }
        },
    }
}


class UploadTooLargeError(BadInputError):
    http_status = 413


class NoImageLogError(EdgeError):
    """The call needs the image log, and this service runs without one."""

    http_status = 503


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Decision = Field(description="clear, search (secondary screening) or threat")
    note: str | None = Field(None, max_length=500, description="free text, at most 500 chars")


def frames_router(ctx: AppContext, hub: EventHub) -> APIRouter:
    service, store = ctx.service, ctx.store
    router = APIRouter(prefix="/api/frames", tags=["frames"])
    reader = Depends(logged_in)
    rendered = PngCache()
    planes = PlaneCache(store) if store is not None else None

    def decision_of(frame: ScreenedFrame) -> str | None:
        if store is None or not frame.logged:
            return None
        return store.latest_decisions([frame.id]).get(frame.id)

    def held(frame_id: str) -> ScreenedFrame | None:
        try:
            return service.get(frame_id)
        except UnknownFrameError:
            return None

    def stored(frame_id: str) -> Any:
        if store is None:
            raise UnknownFrameError(f"frame {frame_id!r} is unknown or no longer held in memory")
        try:
            return store.get_frame(frame_id)
        except FrameNotFoundError as exc:
            raise UnknownFrameError(exc.message) from None

    @router.get("", dependencies=[reader])
    def frames(
        since: Annotated[
            str | None, Query(max_length=40, description="ISO 8601, inclusive")
        ] = None,
        until: Annotated[
            str | None, Query(max_length=40, description="ISO 8601, exclusive")
        ] = None,
        alarm: Annotated[
            bool | None, Query(description="screened with (true) or without alarm")
        ] = None,
        not_screened: Annotated[
            bool | None, Query(description="true: NOT SCREENED (or no result yet)")
        ] = None,
        decision: Annotated[
            DecisionFilter | None, Query(description="latest operator decision; none: undecided")
        ] = None,
        class_name: Annotated[
            str | None, Query(alias="class", max_length=64, description="a detected class")
        ] = None,
        source: Annotated[str | None, Query(max_length=300, description="e.g. demo")] = None,
        lane: Annotated[int | None, Query(ge=0, le=999, description="checkpoint lane")] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="page size")] = 50,
        offset: Annotated[int, Query(ge=0, le=10**9, description="frames skipped")] = 0,
    ) -> dict[str, Any]:
        """Frames newest first, filtered and paged: {items, total, limit, offset}.

        From the image log when there is one (every logged frame), else from memory.
        """
        query = FrameQuery(since, until, alarm, not_screened, decision, class_name, source, lane)
        if store is not None:
            filters = query.store_filters()
            page = store.list_frames(limit=limit, offset=offset, with_results=True, **filters)
            return {
                "items": [stored_json(f) for f in page],
                "total": store.count_frames(**filters),
                "limit": limit,
                "offset": offset,
            }
        found = [f for f in service.recent() if query.matches(f)]
        return {
            "items": [screened_json(f) for f in found[offset : offset + limit]],
            "total": len(found),
            "limit": limit,
            "offset": offset,
        }

    # Declared before /{frame_id}, which would otherwise take these words as ids.
    @router.get("/recent", dependencies=[reader])
    def recent(
        limit: Annotated[int, Query(ge=1, le=1000, description="at most this many")] = 20,
    ) -> dict[str, Any]:
        """The frames held in memory, newest first, logged or not (the live view)."""
        frames = service.recent()
        page = frames[:limit]
        decisions = (
            store.latest_decisions([f.id for f in page if f.logged]) if store is not None else {}
        )
        return {
            "items": [screened_json(f, decisions.get(f.id)) for f in page],
            "total": len(frames),
            "limit": limit,
            "offset": 0,
        }

    @router.get("/latest", dependencies=[reader])
    def latest_frame() -> dict[str, Any]:
        """The newest frame (404 before the first)."""
        frame = service.latest()
        return screened_json(frame, decision_of(frame))

    @router.get("/{frame_id}", dependencies=[reader])
    def frame(frame_id: FrameId) -> dict[str, Any]:
        """One frame by id (404 if unknown or deleted), with `decisions`: every operator
        decision on it, oldest first ({decision, user, at, note})."""
        found = held(frame_id)
        logged = None
        if found is None:
            logged = stored(frame_id)
        elif store is not None and found.logged:
            with contextlib.suppress(FrameNotFoundError):  # deleted by retention since
                logged = store.get_frame(frame_id)
        if logged is None:
            assert found is not None
            return {**screened_json(found), "decisions": []}
        record = screened_json(found, logged.decision) if found else stored_json(logged)
        record["decisions"] = [
            {"decision": d.decision, "user": d.user, "at": d.at, "note": d.note}
            for d in logged.decisions
        ]
        return record

    @router.get(
        "/{frame_id}/image",
        dependencies=[reader],
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}},
    )
    def frame_image(
        frame_id: FrameId,
        view: Annotated[View, Query(description="pseudo-colour, one energy, or material")] = (
            "pseudo"
        ),
        boxes: Annotated[bool, Query(description="draw the detections")] = False,
        max_side: Annotated[
            str | None,
            Query(
                alias="max",
                description=f"a thumbnail: longer side at most this many pixels "
                f"({MIN_THUMBNAIL} to {MAX_THUMBNAIL}; area average)",
            ),
        ] = None,
    ) -> Response:
        """The frame as a lossless PNG, at full resolution unless `max` asks for a
        thumbnail: `pseudo` colour (RGB), `high` or `low` energy (grey), `material`
        (organic orange, inorganic green, metal blue)."""
        side = thumbnail_side(max_side)
        found = held(frame_id)
        curves = _curves() if view == "material" else None
        variant = view if curves is None else f"{view}@{curves[0]}"  # a new profile re-renders
        key = (frame_id, variant, boxes, side or 0)
        png = rendered.get(key)
        if png is None:
            png = _render(frame_id, view, found, boxes, side, curves)
            rendered.put(key, png)
        return Response(png, media_type="image/png", headers={"Cache-Control": IMAGE_CACHE_CONTROL})

    def _curves() -> tuple[str, MaterialCurves] | None:
        """The material curves fitted at calibration, when frames are corrected with a profile
        that has them (the view then classifies as the technician calibrated it)."""
        return None if ctx.calibration is None else ctx.calibration.material_curves()

    def _render(
        frame_id: str,
        view: View,
        found: ScreenedFrame | None,
        boxes: bool,
        max_side: int | None,
        curves: tuple[str, MaterialCurves] | None = None,
    ) -> bytes:
        image, palette = _view(frame_id, view, found, curves)
        scale = 1.0
        if max_side is not None and max(image.shape[:2]) > max_side:
            if palette is not None:  # indices cannot be averaged: their colours can
                image, palette = palette_rgb(image, palette), None
            image, scale = downsample(image, max_side)
        if boxes:
            if found is not None:
                detections = found.result.detections.to_list(list(found.class_names))
            else:
                detections = stored_json(stored(frame_id))["detections"]
            image, palette = boxed_view(image, palette, scaled(detections, scale))
        return encode_png(image, palette)

    def _view(
        frame_id: str,
        view: View,
        found: ScreenedFrame | None,
        curves: tuple[str, MaterialCurves] | None = None,
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8] | None]:
        """The view's pixels, and the palette when they are indices into one."""
        if view == "pseudo" and found is not None:
            return found.rgb, None
        pixels = _pixels(frame_id, found)
        if view == "pseudo":
            if pixels.rgb is not None:
                return pixels.rgb, None
            assert pixels.high is not None  # a Frame has channels or RGB
            if pixels.low is None:
                return render_pseudocolor(pixels.high), None
            return by_strips(render_pseudocolor, pixels.high, pixels.low), None
        if pixels.high is None:
            raise ViewUnavailableError(
                f"frame {frame_id} came as an 8-bit colour image: it has no {view} view"
            )
        if view == "high":
            return grey_view(pixels.high), None
        if pixels.low is None:
            raise ViewUnavailableError(f"frame {frame_id} has one energy only: no {view} view")
        if view == "low":
            return grey_view(pixels.low), None
        if curves is not None:
            return classify(pixels.high, pixels.low, curves[1]), MATERIAL_PALETTE
        return material_index(pixels.high, pixels.low), MATERIAL_PALETTE

    def _pixels(frame_id: str, found: ScreenedFrame | None) -> Frame:
        """The logged channels (memory holds only the pseudo-colour rendering)."""
        if found is not None and (store is None or not found.logged):
            raise ViewUnavailableError(
                f"frame {frame_id} was not logged: only its pseudo-colour view is held"
            )
        if planes is None:
            raise UnknownFrameError(f"frame {frame_id!r} is unknown or no longer held in memory")
        try:
            return planes.load(frame_id)
        except FrameNotFoundError as exc:
            raise UnknownFrameError(exc.message) from None

    @router.get(
        "/{frame_id}/tdr",
        dependencies=[reader],
        response_class=Response,
        responses={200: {"content": {"application/dicom": {}}}},
    )
    def frame_tdr(frame_id: FrameId) -> Response:
        """The DICOS Threat Detection Report of a frame that came from a DICOS image."""
        path = ctx.tdr_dir / f"{frame_id}.dcs" if ctx.tdr_dir is not None else None
        if path is None or not path.is_file():
            raise UnknownFrameError(
                f"no Threat Detection Report for frame {frame_id!r} (not a DICOS frame?)"
            )
        return Response(path.read_bytes(), media_type="application/dicom")

    @router.post("", status_code=201, openapi_extra=UPLOAD_OPENAPI)
    async def upload_frame(who: MayUpload, request: Request) -> dict[str, Any]:
        """Screen an uploaded image like any other frame (8-bit PNG/JPEG, 16-bit two-page
        TIFF, DICOS DX); answers once screened, with the frame's record. Operators and
        technicians. Multipart form: `file` (the image), optional `bag`."""
        # The form is read here, after the role check, not by FastAPI before it: a stranger
        # must not get a large body parsed (and spooled to disk) only to be refused.
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > ctx.max_upload_bytes + UPLOAD_FORM_SLACK:
            raise UploadTooLargeError(
                f"upload: larger than the {ctx.max_upload_bytes >> 20} MiB upload limit"
            )
        async with request.form(max_files=1, max_fields=4) as form:
            file, bag = form.get("file"), form.get("bag")
            if not isinstance(file, StarletteUpload):
                raise BadInputError("upload: expected a multipart form with a `file` part")
            if bag is not None and (not isinstance(bag, str) or len(bag) > 200):
                raise BadInputError("bag: expected text of at most 200 characters")
            data = await file.read(ctx.max_upload_bytes + 1)
            name = Path(file.filename or "upload").name[:200]
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
        frame.meta = {**frame.meta, "uploaded_by": who.name}
        screened = await run_in_threadpool(screen_upload, frame, bag or name)
        return screened_json(screened)

    def screen_upload(raw: Frame, bag: str) -> ScreenedFrame:
        """Screen an upload; raw 16-bit channels corrected with the scanner profile first,
        as the serial and hot-folder sources do (8-bit colour images pass as they are)."""
        calibration = ctx.calibration
        frame = raw if calibration is None else calibration.apply(raw)
        screened = service.submit(frame, "upload", bag, 120.0)
        if calibration is not None and frame is not raw and screened.logged:
            calibration.keep(screened.id, raw)
        return screened

    @router.post("/{frame_id}/decision", status_code=201)
    def decide(
        frame_id: FrameId,
        body: DecisionBody,
        who: MayDecide,
    ) -> dict[str, Any]:
        """Record the operator's decision on a bag: clear, search or threat (operators).
        The latest decision counts; earlier ones stay in the log."""
        if store is None:
            raise NoImageLogError("decisions are kept in the image log, and it is off")
        try:
            decision = store.add_decision(frame_id, body.decision, user=who.name, note=body.note)
        except FrameNotFoundError:
            raise UnknownFrameError(
                f"frame {frame_id!r} is not in the image log (not logged, or deleted): "
                "the decision was not recorded"
            ) from None
        record = {
            "frame_id": decision.frame_id,
            "decision": decision.decision,
            "user": decision.user,
            "at": decision.at,
            "note": decision.note,
        }
        hub.publish("decision", record)
        return record

    return router
