"""Test runs (regression suites, acceptance) and their reports.

Starting a run answers 501 "not available" until the validation engine is wired to the
service; the list is empty meanwhile. Run ids are checked against a strict pattern before
any report file could be named.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam

from edge.api.access import allowed, logged_in
from edge.api.context import AppContext
from edge.api.models import NotAvailableError
from edge.errors import EdgeError

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
RunId = Annotated[str, PathParam(pattern=RUN_ID_PATTERN, max_length=64, description="run id")]


class UnknownTestRunError(EdgeError):
    http_status = 404


def runs_router(ctx: AppContext) -> APIRouter:
    router = APIRouter(prefix="/api/tests", tags=["test runs"])
    reader = Depends(logged_in)

    @router.get("", dependencies=[reader])
    def runs(
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        """Test runs, newest first: {items, total, limit, offset} (none yet)."""
        return {"items": [], "total": 0, "limit": limit, "offset": offset}

    @router.post("", dependencies=[Depends(allowed("test"))])
    def start_run() -> dict[str, Any]:
        """Start a regression or acceptance run (technicians, vendors). Not available yet."""
        raise NotAvailableError("test runs over the API are not available in this version yet")

    @router.get("/{run_id}", dependencies=[reader])
    def run(run_id: RunId) -> dict[str, Any]:
        """One run's state and figures."""
        raise UnknownTestRunError(f"no test run {run_id!r}")

    @router.get("/{run_id}/report", dependencies=[reader])
    def report(run_id: RunId) -> dict[str, Any]:
        """One run's report (HTML)."""
        raise UnknownTestRunError(f"no test run {run_id!r}, so no report")

    return router
