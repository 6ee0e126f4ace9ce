"""The audit log: an append-only, hash-chained table in edge.db (migration 0004_audit_log).

Each entry's `hash` is the SHA-256 of its fields and the previous entry's hash, so an
edited, inserted or deleted entry breaks the chain from there on; `DATA/audit.head` holds
the newest entry's id and hash (replaced whole after each append), so deleting the newest
entries shows too. `record()` writes through its own connection inside BEGIN IMMEDIATE,
so appends from the service and from `edge` commands are serialised by SQLite itself.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import EdgeError
from edge.store.errors import StoreBusyError
from edge.store.records import iso, utc_now
from edge.upgrade.model_store import write_atomic

TABLE = "audit_log"
HEAD_NAME = "audit.head"
GENESIS = "0" * 64
FIELDS = ("id", "at", "actor", "action", "message", "bundle_sha256", "key_id", "model", "details")


class AuditError(EdgeError):
    """The audit log cannot be written, or does not verify."""

    http_status = 500
    exit_status = 1


def entry_hash(row: Mapping[str, Any], prev_hash: str) -> str:
    doc = {k: row.get(k) for k in FIELDS} | {"prev_hash": prev_hash}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cli_actor() -> str:
    """Who runs an `edge` command: the login name, as the audit log records it."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _connect(data_dir: Path) -> sqlite3.Connection:
    from edge.store.writer import connect

    db_path = data_dir / "edge.db"
    conn = connect(db_path, writer=True) if db_path.exists() else None
    known = (
        conn is not None
        and conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
        ).fetchone()
    )
    if known:
        assert conn is not None
        return conn
    if conn is not None:
        conn.close()
    from edge.store.store import Store  # applies the migrations

    try:
        Store(data_dir).close()
    except StoreBusyError:
        raise AuditError(
            f"{data_dir} is in use by a service that predates the audit log; restart the "
            "service, then try again"
        ) from None
    return connect(db_path, writer=True)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    message: str | None
    bundle_sha256: str | None
    key_id: str | None
    model: str | None
    details: dict[str, Any]
    hash: str

    def as_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (*FIELDS, "hash")}


def record(
    data_dir: Path,
    action: str,
    *,
    actor: str,
    message: str | None = None,
    bundle_sha256: str | None = None,
    key_id: str | None = None,
    model: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> int:
    """Append one entry (who, what, bundle hash, signer) and return its id; AuditError if
    the log cannot be written."""
    data_dir = Path(data_dir)
    try:
        conn = _connect(data_dir)
    except sqlite3.Error as exc:
        raise AuditError(f"audit log: cannot open {data_dir / 'edge.db'} ({exc})") from exc
    try:
        conn.execute("BEGIN IMMEDIATE")
        last = conn.execute(f"SELECT id, hash FROM {TABLE} ORDER BY id DESC LIMIT 1").fetchone()
        prev_id, prev_hash = (0, GENESIS) if last is None else (int(last[0]), str(last[1]))
        row: dict[str, Any] = {
            "id": prev_id + 1,
            "at": iso(utc_now()),
            "actor": actor,
            "action": action,
            "message": message,
            "bundle_sha256": bundle_sha256,
            "key_id": key_id,
            "model": model,
            "details": json.dumps(dict(details or {}), sort_keys=True, separators=(",", ":")),
        }
        row["prev_hash"] = prev_hash
        row["hash"] = entry_hash(row, prev_hash)
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        conn.execute(f"INSERT INTO {TABLE} ({columns}) VALUES ({marks})", list(row.values()))
        conn.commit()
    except sqlite3.Error as exc:
        conn.rollback()
        raise AuditError(f"audit log: cannot append ({exc})") from exc
    finally:
        conn.close()
    head = json.dumps({"id": row["id"], "hash": row["hash"]}) + "\n"
    write_atomic(data_dir / HEAD_NAME, head.encode("ascii"))
    return int(row["id"])


@contextlib.contextmanager
def _reading(data_dir: Path) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection to the audit log, or None when there is no log yet (no
    database, or a database from before the audit log's migration)."""
    db_path = Path(data_dir) / "edge.db"
    if not db_path.is_file():
        yield None
        return
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        known = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
        ).fetchone()
        yield conn if known else None
    finally:
        conn.close()


def _rows(data_dir: Path) -> list[sqlite3.Row]:
    with _reading(data_dir) as conn:
        if conn is None:
            return []
        return conn.execute(f"SELECT * FROM {TABLE} ORDER BY id").fetchall()


def page(data_dir: Path, limit: int, offset: int) -> tuple[list[sqlite3.Row], int]:
    """Raw rows newest first (`limit` from `offset`) and how many there are in all, read a
    page at a time (the console pages through a log that only grows)."""
    with _reading(data_dir) as conn:
        if conn is None:
            return [], 0
        total = int(conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])
        rows = conn.execute(
            f"SELECT * FROM {TABLE} ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset)
        ).fetchall()
        return rows, total


def entries(data_dir: Path, limit: int | None = None) -> list[AuditEntry]:
    """Entries oldest first (the newest `limit` when given)."""
    rows = _rows(Path(data_dir))
    if limit is not None:
        rows = rows[-limit:] if limit else []
    return [
        AuditEntry(
            r["id"],
            r["at"],
            r["actor"],
            r["action"],
            r["message"],
            r["bundle_sha256"],
            r["key_id"],
            r["model"],
            json.loads(r["details"] or "{}"),
            r["hash"],
        )  # fmt: skip
        for r in rows
    ]


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    first_bad: int | None = None
    problem: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "first_bad": self.first_bad,
            "problem": self.problem,
        }


def verify(data_dir: Path) -> Verification:
    """Walk the chain; the first entry that does not follow from the one before, if any."""
    data_dir = Path(data_dir)
    rows = _rows(data_dir)
    prev_hash, expected_id = GENESIS, 1
    for r in rows:
        if r["id"] != expected_id:
            return Verification(
                False, len(rows), expected_id, f"entry {expected_id} is missing (deleted)"
            )
        if r["prev_hash"] != prev_hash:
            return Verification(
                False, len(rows), r["id"], f"entry {r['id']} does not follow entry {r['id'] - 1}"
            )
        if entry_hash(dict(r), prev_hash) != r["hash"]:
            return Verification(
                False, len(rows), r["id"], f"entry {r['id']} was changed after it was written"
            )
        prev_hash, expected_id = r["hash"], expected_id + 1
    head = _head(data_dir)
    if head is not None:
        head_id, head_hash = head
        if head_id < 1:
            return Verification(False, len(rows), None, f"{HEAD_NAME} is damaged")
        if head_id > len(rows):
            return Verification(
                False, len(rows), len(rows) + 1,
                f"entries {len(rows) + 1} to {head_id} are missing (deleted)",
            )  # fmt: skip
        if rows[head_id - 1]["hash"] != head_hash:
            return Verification(
                False, len(rows), head_id, f"entry {head_id} differs from the recorded head"
            )
    return Verification(True, len(rows))


def _head(data_dir: Path) -> tuple[int, str] | None:
    try:
        doc = json.loads((data_dir / HEAD_NAME).read_text(encoding="ascii"))
        return int(doc["id"]), str(doc["hash"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return (0, "damaged")
