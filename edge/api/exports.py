"""`POST /api/exports` (vendors): logged frames to a COCO data set for labelling, written
under the data directory's `exports/` while the service runs (the `edge export` command
needs the image log to itself, so this is the way to export from a running appliance)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from edge.api.access import MayExport
from edge.api.context import AppContext
from edge.api.frames import NoImageLogError
from edge.export import export_dataset


class ExportBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    since: str | None = Field(None, max_length=40, description="ISO 8601, inclusive")
    until: str | None = Field(None, max_length=40, description="ISO 8601, exclusive")
    alarms: bool = Field(False, description="frames the model alarmed on")
    not_screened: bool = Field(False, description="frames NOT SCREENED")
    disputed: bool = Field(False, description="frames the operator disagreed with")
    class_name: str | None = Field(None, alias="class", max_length=64, description="a class")
    sample: int | None = Field(None, ge=1, le=1_000_000, description="a random sample size")
    seed: int = Field(0, ge=0, le=2**31, description="the sample's seed")


def exports_router(ctx: AppContext) -> APIRouter:
    router = APIRouter(prefix="/api/exports", tags=["exports"])

    @router.post("", status_code=201)
    def export(who: MayExport, body: ExportBody) -> dict[str, Any]:
        """Write the chosen frames as a COCO data set in DATA/exports/ (vendors); answers
        with the export's summary once written (flags as for `edge export`)."""
        if ctx.store is None or ctx.export_dir is None:
            raise NoImageLogError("exports read the image log, and it is off")
        ctx.export_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        model = ctx.service.model_id
        summary = export_dataset(
            ctx.store,
            ctx.export_dir / f"export-{stamp}",
            since=body.since,
            until=body.until,
            alarms=body.alarms,
            not_screened=body.not_screened,
            disputed=body.disputed,
            class_name=body.class_name,
            sample=body.sample,
            seed=body.seed,
            model_classes={model: ctx.service.class_names} if model else None,
            actor=f"user:{who.name}",  # the audit log names the vendor, not the service
        )
        return summary.as_json()

    return router
