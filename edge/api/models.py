"""Model routes: the active model; upgrade and rollback (technicians).

Upgrade and rollback answer 501 "not available" until the upgrade engine (edge/upgrade)
lands; they exist now so their role checks are in place and tested.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from edge.api.access import allowed, logged_in
from edge.api.context import AppContext
from edge.errors import EdgeError


class NotAvailableError(EdgeError):
    """A call this version knows but cannot do yet."""

    http_status = 501


def models_router(ctx: AppContext) -> APIRouter:
    service = ctx.service
    router = APIRouter(prefix="/api/models", tags=["models"])

    @router.get("", dependencies=[Depends(logged_in)])
    def models() -> dict[str, Any]:
        """The active model (null when none loaded, with `error` saying why)."""
        active = None
        if service.model_id is not None:
            name, _, version = service.model_id.rpartition("@")
            active = {
                "id": service.model_id,
                "name": name or service.model_id,
                "version": version,
                "sha256": service.model_sha256,
                "classes": service.class_names,
            }
        return {
            "active": active,
            "error": service.model_error,
            "models": [active] if active else [],
        }

    @router.post("/upgrade", dependencies=[Depends(allowed("upgrade"))])
    def upgrade() -> dict[str, Any]:
        """Install a signed model bundle (technicians). Not available yet: 501."""
        raise NotAvailableError(
            "model upgrades are not available in this version yet; the active model is unchanged"
        )

    @router.post("/rollback", dependencies=[Depends(allowed("rollback"))])
    def rollback() -> dict[str, Any]:
        """Go back to the previous model (technicians). Not available yet: 501."""
        raise NotAvailableError(
            "model rollback is not available in this version yet; the active model is unchanged"
        )

    return router
