"""GET /api/audit: the audit log (model upgrades, rollbacks, calibrations, ...) for
technicians and vendors, newest first and paged, with the hash chain's verification.

The entries are read read-only and a page at a time (edge.upgrade.audit.page); the chain is checked by edge.upgrade.audit.verify, the same walk as
`edge audit verify`, so the page and the command cannot disagree.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query

from edge.api.access import MayReadAudit
from edge.api.context import AppContext
from edge.errors import EdgeError
from edge.upgrade.audit import FIELDS, page, verify


class NoDataDirError(EdgeError):
    """The audit log lives in the data directory, and this service runs without one."""

    http_status = 503


class AuditUnreadableError(EdgeError):
    """The audit log's database cannot be read."""

    http_status = 503


def _details(text: Any) -> Any:
    """The entry's details as recorded: JSON when it parses (a tampered row may not; the
    verification then says which entry is wrong, and the text is shown as it is)."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def read_page(data_dir: Path, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Entries newest first (`limit` from `offset`) and how many there are in all."""
    try:
        rows, total = page(data_dir, limit, offset)
    except sqlite3.Error as exc:
        raise AuditUnreadableError(
            f"audit log: cannot read {data_dir / 'edge.db'} ({exc})"
        ) from None
    items = [
        {k: row[k] for k in FIELDS} | {"details": _details(row["details"]), "hash": row["hash"]}
        for row in rows
    ]
    return items, total


def audit_router(ctx: AppContext) -> APIRouter:
    router = APIRouter(prefix="/api/audit", tags=["audit"])

    def data_dir() -> Path:
        if ctx.store is not None:
            return ctx.store.data_dir
        if ctx.models is not None:
            return ctx.models.data_dir
        raise NoDataDirError("the audit log lives in the data directory: this service has none")

    @router.get("")
    def audit(
        who: MayReadAudit,
        limit: Annotated[int, Query(ge=1, le=500, description="page size")] = 50,
        offset: Annotated[int, Query(ge=0, le=10**9, description="entries skipped")] = 0,
    ) -> dict[str, Any]:
        """The audit log newest first, paged: {items, total, limit, offset, verification}.
        `verification`: {ok, entries, first_bad, problem}, the hash chain walked from the
        first entry (ok false: `first_bad` is the first entry that does not verify).
        Technicians and vendors."""
        where = data_dir()
        items, total = read_page(where, limit, offset)
        try:
            checked = verify(where).as_json()
        except (sqlite3.Error, KeyError, TypeError) as exc:
            checked = {"ok": False, "entries": total, "first_bad": None,
                       "problem": f"the audit log cannot be verified ({exc})"}  # fmt: skip
        return {
            "items": items,
            "total": total,
            "limit": limit,
            "offset": offset,
            "verification": checked,
        }

    return router
