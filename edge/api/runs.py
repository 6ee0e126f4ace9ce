"""Test runs (regression suites, acceptance) and their reports, as `edge test` and the
upgrade gate record them in the image log.

Starting a run over the API answers 501 "not available" (runs take minutes of the
detector's time: `edge test` starts them). Run ids are checked against a strict pattern.

`GET /api/tests/{id}/report?format=html` renders the stored report with the same renderer
as `edge test --report FILE.html`, but its stylesheet is linked from
`/api/tests/report.css` rather than inline: the app's CSP (`style-src 'self'`) stays as
strict for this page as for every other (the charts use presentation attributes only, the
thumbnails are data: images, which `img-src` allows, and the page runs no script).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response

from edge.api.access import allowed, logged_in
from edge.api.context import AppContext
from edge.api.models import NotAvailableError
from edge.errors import EdgeError
from edge.store.test_runs import NoSuchTestRunError, StoredTestRun

REPORT_CSS_PATH = "/api/tests/report.css"
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
        """Test runs, newest first: {items, total, limit, offset}; items without reports."""
        if ctx.store is None:
            return {"items": [], "total": 0, "limit": limit, "offset": offset}
        items, total = ctx.store.list_test_runs(limit, offset)
        return {
            "items": [run.as_json() for run in items],
            "total": total,
            "limit": limit,
            "offset": offset,
        }

    @router.post("", dependencies=[Depends(allowed("test"))])
    def start_run() -> dict[str, Any]:
        """Start a regression or acceptance run (technicians, vendors). Not available yet."""
        raise NotAvailableError("test runs over the API are not available in this version yet")

    @router.get("/report.css", include_in_schema=False)
    def report_css() -> Response:
        """The reports' stylesheet (public: no data in it)."""
        from edge.validation.report_css import REPORT_CSS

        return Response(REPORT_CSS, media_type="text/css")

    def stored(run_id: str) -> StoredTestRun:
        if ctx.store is None:
            raise UnknownTestRunError(f"no test run {run_id!r}: no image log")
        try:
            return ctx.store.get_test_run(run_id)
        except NoSuchTestRunError:
            raise UnknownTestRunError(f"no test run {run_id!r}") from None

    @router.get("/{run_id}", dependencies=[reader])
    def run(run_id: RunId) -> dict[str, Any]:
        """One run's state and headline figures."""
        return {k: v for k, v in stored(run_id).as_json().items() if k != "report"}

    @router.get("/{run_id}/report", dependencies=[reader], response_model=None)
    def report(
        run_id: RunId,
        format: Annotated[
            Literal["json", "html"], Query(description="json: the document; html: rendered")
        ] = "json",
    ) -> dict[str, Any] | Response:
        """One run's report: the JSON document `edge test --report` writes, with its
        SHA-256, or (`format=html`) that document rendered as the HTML report."""
        found = stored(run_id)
        if found.report is None:
            raise UnknownTestRunError(f"test run {run_id!r} has no report")
        if format == "html":
            from edge.validation.report_html import render_html

            return HTMLResponse(render_html(found.report, stylesheet=REPORT_CSS_PATH))
        return found.report

    return router
