"""Test runs (regression suites, acceptance) and their reports, as `edge test` and the
upgrade gate record them in the image log.

`POST /api/tests` (technicians, vendors) starts one: `{"kind": "regression"}` runs the
model store's active model on the device suite (the upgrade settings' suite_dir, default
DATA/suite), `{"kind": "acceptance", "site", "operator"[, "suite"]}` the acceptance, on
the device suite or a suite folder under DATA. It runs the real CLI as a niced child
process (edge.api.run_jobs), one at a time, and answers 202 with the job; `GET
/api/tests/jobs[/{job}]` follow it to passed / failed / error and the recorded run's id.
Jobs are kept in memory only: a restart forgets them, not the runs they recorded. Run
ids are checked against a strict pattern.

`GET /api/tests/{id}/report?format=html` renders the stored report with the same renderer
as `edge test --report FILE.html`, but its stylesheet is linked from
`/api/tests/report.css` rather than inline: the app's CSP (`style-src 'self'`) stays as
strict for this page as for every other (the charts use presentation attributes only, the
thumbnails are data: images, which `img-src` allows, and the page runs no script).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from edge.api.access import allowed, logged_in
from edge.api.context import AppContext
from edge.api.models import NotAvailableError
from edge.api.run_jobs import JobKind, TestJobs, edge_argv
from edge.auth import Principal
from edge.errors import BadInputError, EdgeError
from edge.store.test_runs import NoSuchTestRunError, StoredTestRun

REPORT_CSS_PATH = "/api/tests/report.css"
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
RunId = Annotated[str, PathParam(pattern=RUN_ID_PATTERN, max_length=64, description="run id")]
JobId = Annotated[str, PathParam(pattern=r"^job-[0-9a-f]{12}$", description="job id")]
MAX_NAME = 200  # as `edge acceptance` checks --site and --operator
MayTest = Annotated[Principal, Depends(allowed("test"))]


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["regression", "acceptance"]
    site: str | None = Field(None, max_length=MAX_NAME, description="acceptance: the site")
    operator: str | None = Field(None, max_length=MAX_NAME, description="acceptance: who runs it")
    suite: str | None = Field(
        None,
        min_length=1,
        max_length=1024,
        description="acceptance: a suite folder under the data directory (default: the "
        "device suite)",
    )


class NothingToTestError(EdgeError):
    """No suite or no active model on the device (409: install one, then try again)."""

    http_status = 409


class UnknownTestRunError(EdgeError):
    http_status = 404


def runs_router(ctx: AppContext, jobs: TestJobs | None = None) -> APIRouter:
    router = APIRouter(prefix="/api/tests", tags=["test runs"])
    reader = Depends(logged_in)
    jobs = jobs or TestJobs()

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

    @router.post("", status_code=202)
    def start_run(who: MayTest, body: RunRequest) -> JSONResponse:
        """Start a regression run (the active model on the device suite) or an acceptance
        (technicians, vendors): 202 with the job; 409 while another runs or without a
        suite, 501 on a service started with --model (no model store)."""
        kind, argv, data_dir, details = run_plan(ctx, body)
        job = jobs.start(kind, argv, data_dir, f"user:{who.name}", details)
        return JSONResponse(job.as_json(), status_code=202)

    @router.get("/jobs", dependencies=[reader])
    def job_list() -> dict[str, Any]:
        """The test jobs started over the API since the service started, newest first."""
        return {"items": [job.as_json() for job in jobs.listing()]}

    @router.get("/jobs/{job_id}", dependencies=[reader])
    def job(job_id: JobId) -> dict[str, Any]:
        """One job: running, passed, failed or error (with the message), and `run_id`, the
        run it recorded, once finished."""
        return jobs.get(job_id).as_json()

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


def run_plan(ctx: AppContext, body: RunRequest) -> tuple[JobKind, list[str], Path, dict[str, str]]:
    """The command line of the run asked for, its data directory and what the job shows,
    or why it cannot run (one-line errors). Values go as `--flag=value`: a site named
    "--model=..." stays a site."""
    if ctx.models is None:
        raise NotAvailableError(
            "this service runs a model named with --model, outside the model store, so it "
            "cannot start test runs; run `edge test` or `edge acceptance` instead"
        )
    data_dir = ctx.models.data_dir
    device_suite = ctx.models.settings.suite_dir or data_dir / "suite"
    if body.kind == "regression":
        extra = [k for k in ("site", "operator", "suite") if getattr(body, k) is not None]
        if extra:
            raise BadInputError(f"a regression run takes no {', '.join(extra)}")
        active = ctx.models.store.active()
        if active is None:
            raise NothingToTestError("no active model in the model store to test")
        suite = _existing_suite(device_suite)
        argv = edge_argv("test", [f"--model={active.path}", f"--suite={suite}"], data_dir)
        return "regression", argv, data_dir, {"suite": str(suite), "model": active.dir_name}
    site, operator = _name(body.site, "site"), _name(body.operator, "operator")
    suite = (
        _existing_suite(device_suite) if body.suite is None else _data_suite(data_dir, body.suite)
    )
    args = [f"--suite={suite}", f"--site={site}", f"--operator={operator}"]
    argv = edge_argv("acceptance", args, data_dir)
    return "acceptance", argv, data_dir, {"suite": str(suite), "site": site, "operator": operator}


def _name(value: str | None, what: str) -> str:
    text = " ".join((value or "").split())
    if not text or not text.isprintable():
        raise BadInputError(f"{what}: expected a name of 1 to {MAX_NAME} printable characters")
    return text


def _existing_suite(folder: Path) -> Path:
    if not (folder / "suite.json").is_file():
        raise NothingToTestError(
            f"no regression suite at {folder} (no suite.json): install one (`edge suite "
            "build`, or a bundle's tests) before starting a run"
        )
    return folder


def _data_suite(data_dir: Path, name: str) -> Path:
    """A suite folder the request names: inside the data directory, links resolved."""
    given = Path(name)
    if "\x00" in name or ".." in given.parts:
        raise BadInputError(f"suite: {name!r} is not a folder inside the data directory")
    root = data_dir.resolve()
    found = (given if given.is_absolute() else root / given).resolve()
    if found == root or not found.is_relative_to(root):
        raise BadInputError(f"suite: {name!r} is not a folder inside the data directory")
    if not (found / "suite.json").is_file():
        raise BadInputError(f"suite: no suite.json in {found}")
    return found
