"""Model routes: the models (GET, any role); upgrade and rollback (technicians).

With a model store (`AppContext.models`, the service's normal mode) upgrades and rollbacks
go through edge/upgrade and the pipeline switches to the new model between two frames.
A service started with an explicit `--model` has no store: upgrade and rollback answer
501 and the list holds only the model it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from edge.api.access import allowed, logged_in
from edge.api.context import AppContext
from edge.api.thresholds import thresholds_in_force
from edge.auth import Principal
from edge.errors import BadInputError, EdgeError


class NotAvailableError(EdgeError):
    """A call this service cannot do in the mode it runs in."""

    http_status = 501


class UpgradeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bundle: str = Field(
        min_length=1,
        max_length=4096,
        description="path of the bundle file on the device, e.g. on the mounted USB stick",
    )
    allow_downgrade: bool = Field(False, description="accept a release not newer than now")


MayUpgrade = Annotated[Principal, Depends(allowed("upgrade"))]
MayRollBack = Annotated[Principal, Depends(allowed("rollback"))]

NO_STORE = (
    "this service runs a model named with --model, outside the model store, so it cannot "
    "{what}; restart it without --model. The active model is unchanged"
)


def models_router(ctx: AppContext) -> APIRouter:
    service = ctx.service
    router = APIRouter(prefix="/api/models", tags=["models"])

    def running() -> dict[str, Any] | None:
        if service.model_id is None:
            return None
        name, _, version = service.model_id.rpartition("@")
        sha = service.model_sha256 or ""
        return {
            "id": service.model_id,
            "name": name or service.model_id,
            "version": version,
            "sha256": service.model_sha256,
            "classes": service.class_names,
            "thresholds": thresholds_in_force(service.screener, ctx.models, data_dir(), sha),
        }

    def data_dir() -> Path | None:
        if ctx.store is not None:
            return ctx.store.data_dir
        return ctx.models.data_dir if ctx.models is not None else None

    @router.get("", dependencies=[Depends(logged_in)])
    def models() -> dict[str, Any]:
        """The active model (with its SHA-256 and state), the previous one, every installed
        model with its test results; `running`: the model screening now (null when none
        loaded, with `error` saying why), with `thresholds`: the per-class detection scores
        in force, the manifest's, the device's calibrated overrides for this exact model
        (SHA-256) and their source (null when the model's files cannot be found)."""
        now = running()
        if ctx.models is None:
            return {"active": now, "previous": None, "models": [now] if now else [],
                    "refused": [], "running": now, "error": service.model_error}  # fmt: skip
        doc = ctx.models.listing()
        switcher = ctx.models.switcher
        error = service.model_error or (switcher.last_error if switcher else None)
        return doc | {"running": now, "error": error}

    @router.post("/upgrade")
    def upgrade(who: MayUpgrade, body: UpgradeRequest | None = None) -> dict[str, Any]:
        """Install a signed model bundle from a path on the device (technicians). Runs every
        check and the regression gate before anything changes: this can take minutes.
        422 with the reason when refused; the active model is then unchanged."""
        if ctx.models is None:
            raise NotAvailableError(NO_STORE.format(what="install upgrades"))
        if body is None:
            raise BadInputError('expected a JSON body {"bundle": "/path/on/the/device"}')
        path = Path(body.bundle)
        if not path.is_absolute():
            raise BadInputError(f"bundle: expected an absolute path on the device, got {path}")
        outcome = ctx.models.upgrade(path, f"user:{who.name}", body.allow_downgrade)
        return outcome.as_json()

    @router.post("/rollback")
    def rollback(who: MayRollBack) -> dict[str, Any]:
        """Go back to the previous model (technicians)."""
        if ctx.models is None:
            raise NotAvailableError(NO_STORE.format(what="roll back"))
        return ctx.models.roll_back(f"user:{who.name}")

    return router
