"""Read queries of the log, run on a query-only connection (never the writer's)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import datetime
from typing import Any, TypedDict

from edge.errors import BadInputError
from edge.store.errors import FrameNotFoundError
from edge.store.records import StoredDecision, StoredFrame, StoredResult, parse_time
from edge.store.schema import DECISIONS

MAX_LIMIT = 10_000

# Rows retention has begun deleting are gone as far as readers are concerned.
_LIVE = "retiring = 0"
# The frame's latest result has a detection of the class given.
_DETECTED_CLASS = (
    "EXISTS (SELECT 1 FROM json_each((SELECT r.detections FROM results r "
    "WHERE r.frame_id = frames.id ORDER BY r.id DESC LIMIT 1)) "
    "WHERE json_extract(value, '$.class') = ?)"
)
_DISPUTED = (
    "((alarm = 1 AND decision = 'clear') OR (alarm = 0 AND decision IN ('search', 'threat')))"
)


class FrameFilters(TypedDict, total=False):
    """The filters of frame_filter, as keyword arguments (Store.list_frames, count_frames)."""

    since: datetime | str | None
    until: datetime | str | None
    alarm: bool | None
    not_screened: bool | None
    disputed: bool | None
    bag: str | None
    decision: str | None
    class_name: str | None
    source: str | None
    lane: int | None


def frame_filter(
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    alarm: bool | None = None,
    not_screened: bool | None = None,
    disputed: bool | None = None,
    bag: str | None = None,
    *,
    decision: str | None = None,
    class_name: str | None = None,
    source: str | None = None,
    lane: int | None = None,
) -> tuple[str, list[Any]]:
    """A WHERE clause over `frames` and its parameters.

    `since` inclusive, `until` exclusive (UTC); `alarm` True/False: screened with/without
    alarm; `not_screened` True: no result yet or NOT SCREENED, False: screened;
    `disputed`: the operator's decision disagrees with the alarm; `decision`: the latest
    operator decision (clear, search, threat), or "none" for frames nobody decided;
    `class_name`: the latest result detected that class; `source`, `lane`: where it came from.
    """
    clauses: list[str] = [_LIVE]
    params: list[Any] = []
    if since is not None:
        clauses.append("received >= ?")
        params.append(parse_time(since))
    if until is not None:
        clauses.append("received < ?")
        params.append(parse_time(until))
    if alarm is not None:
        clauses.append("alarm = ?")
        params.append(int(alarm))
    if not_screened is not None:
        clauses.append("alarm IS NULL" if not_screened else "alarm IS NOT NULL")
    if disputed is not None:
        clauses.append(_DISPUTED if disputed else f"NOT {_DISPUTED}")
    if bag is not None:
        clauses.append("bag = ?")
        params.append(bag)
    if decision is not None:
        if decision == "none":
            clauses.append("decision IS NULL")
        elif decision in DECISIONS:
            clauses.append("decision = ?")
            params.append(decision)
        else:
            raise BadInputError(
                f"decision: expected one of {', '.join(DECISIONS)} or none, got {decision!r}"
            )
    if class_name is not None:
        clauses.append(_DETECTED_CLASS)
        params.append(class_name)
    if source is not None:
        clauses.append("source = ?")
        params.append(source)
    if lane is not None:
        clauses.append("lane = ?")
        params.append(lane)
    return " AND ".join(clauses), params


def list_frames(
    conn: sqlite3.Connection,
    where: tuple[str, list[Any]],
    limit: int,
    offset: int,
    newest_first: bool,
) -> list[StoredFrame]:
    if not 0 <= limit <= MAX_LIMIT or offset < 0:
        raise BadInputError(
            f"list_frames: expected 0 <= limit <= {MAX_LIMIT} and offset >= 0, "
            f"got limit {limit}, offset {offset}"
        )
    order = "DESC" if newest_first else "ASC"
    sql = (
        f"SELECT * FROM frames WHERE {where[0]} "
        f"ORDER BY received {order}, id {order} LIMIT ? OFFSET ?"
    )
    return [StoredFrame.from_row(row) for row in conn.execute(sql, [*where[1], limit, offset])]


def count_frames(conn: sqlite3.Connection, where: tuple[str, list[Any]]) -> int:
    return int(
        conn.execute(f"SELECT count(*) FROM frames WHERE {where[0]}", where[1]).fetchone()[0]
    )


def latest_results(conn: sqlite3.Connection, frame_ids: list[str]) -> dict[str, StoredResult]:
    """The latest result of each frame that has one, by frame id."""
    found: dict[str, StoredResult] = {}
    for start in range(0, len(frame_ids), 500):  # SQLite's bound-parameter limit
        chunk = frame_ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT * FROM results WHERE id IN (SELECT max(id) FROM results "
            f"WHERE frame_id IN ({marks}) GROUP BY frame_id)",
            chunk,
        )
        found.update((row["frame_id"], StoredResult.from_row(row)) for row in rows)
    return found


def latest_decisions(conn: sqlite3.Connection, frame_ids: list[str]) -> dict[str, str | None]:
    """The latest operator decision (None: none yet) of each frame in the log, by id."""
    found: dict[str, str | None] = {}
    for start in range(0, len(frame_ids), 500):
        chunk = frame_ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT id, decision FROM frames WHERE id IN ({marks}) AND {_LIVE}", chunk
        )
        found.update((row["id"], row["decision"]) for row in rows)
    return found


def frame_row(conn: sqlite3.Connection, frame_id: str) -> sqlite3.Row:
    row = conn.execute(f"SELECT * FROM frames WHERE id = ? AND {_LIVE}", [frame_id]).fetchone()
    if row is None:
        raise FrameNotFoundError(f"frame {frame_id!r} is not in the image log")
    return row  # type: ignore[no-any-return]


def get_frame(conn: sqlite3.Connection, frame_id: str) -> StoredFrame:
    """The frame with its latest result and every decision, oldest decision first."""
    conn.execute("BEGIN")  # one read transaction: a consistent snapshot of the three tables
    try:
        frame = StoredFrame.from_row(frame_row(conn, frame_id))
        result = conn.execute(
            "SELECT * FROM results WHERE frame_id = ? ORDER BY id DESC LIMIT 1", [frame_id]
        ).fetchone()
        decisions = conn.execute(
            "SELECT * FROM decisions WHERE frame_id = ? ORDER BY id", [frame_id]
        ).fetchall()
    finally:
        conn.rollback()
    return dataclasses.replace(
        frame,
        result=None if result is None else StoredResult.from_row(result),
        decisions=[StoredDecision.from_row(row) for row in decisions],
    )


def list_results(conn: sqlite3.Connection, frame_id: str) -> list[StoredResult]:
    """Every result of a frame, oldest first (a frame re-screened by a new model has several)."""
    rows = conn.execute("SELECT * FROM results WHERE frame_id = ? ORDER BY id", [frame_id])
    return [StoredResult.from_row(row) for row in rows]


def list_events(conn: sqlite3.Connection, kind: str | None, limit: int) -> list[dict[str, Any]]:
    """Newest first; `details` parsed from JSON."""
    where, params = ("WHERE kind = ?", [kind]) if kind else ("", [])
    rows = conn.execute(
        f"SELECT * FROM events {where} ORDER BY id DESC LIMIT ?", [*params, limit]
    ).fetchall()
    return [{**dict(row), "details": json.loads(row["details"] or "{}")} for row in rows]


def missing_count(conn: sqlite3.Connection) -> int:
    return int(
        conn.execute(f"SELECT count(*) FROM frames WHERE missing_image = 1 AND {_LIVE}").fetchone()[
            0
        ]
    )
