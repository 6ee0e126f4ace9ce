"""What goes into a support bundle, each piece read without disturbing a running service.

The database is read through `mode=ro` connections (edge.about.open_read_only), never the
Store, so the image log's writer lock is never taken; files are read, never opened for
writing. Nothing here reads an image: counters are counted in SQL, test reports lose their
inline thumbnails, and logs pass through the same redaction as the logs themselves.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge.about import open_read_only
from edge.errors import EdgeError
from edge.logs import redact_text, sanitize
from edge.store.records import iso
from edge.store.store import DB_FILENAME
from edge.store.test_runs import get_test_run, list_test_runs
from edge.support_config import redact_config
from edge.upgrade import audit
from edge.upgrade.minisign import MAX_KEY_FILE_BYTES, parse_public_key

MAX_LINE_CHARS = 16384  # a log line longer than this is cut (after redaction)
MAX_JSON_LINE_CHARS = 1 << 20  # a longer line is treated as text, not parsed
MAX_EVENTS = 10_000
MAX_AUDIT_ENTRIES = 100_000
MAX_REPORT_BYTES = 32 << 20  # one report file (HTML with thumbnails can be large)
JOURNAL_TIMEOUT_S = 60.0
REPORT_SUFFIXES = (".json", ".html")


@dataclass
class Member:
    """One archive member, or a note of what was left out and why."""

    name: str
    data: bytes
    mtime: float | None = None


@dataclass
class Notes:
    """What the manifest says beyond the members: pieces cut or missing, and errors."""

    cut: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    """JSON lines, each row scrubbed like `dump`."""
    return "".join(
        json.dumps(redact_config(r), ensure_ascii=False, default=str) + "\n" for r in rows
    ).encode()


def dump(doc: Any) -> bytes:
    """Indented JSON with secret-named values masked and secret-looking text redacted (a
    doctor finding quotes the configuration, an event its message)."""
    text = json.dumps(redact_config(doc), indent=2, ensure_ascii=False, default=str)
    return (text + "\n").encode()


def redact_lines(data: bytes) -> bytes:
    """Log text, line by line: secrets masked, inline images removed, long lines cut. A
    JSON line is scrubbed as JSON (field by field), so it stays valid JSON."""
    text = data.decode("utf-8", "replace")
    return "".join(_redact_line(line) for line in text.splitlines(keepends=True)).encode()


def _redact_line(line: str) -> str:
    body = line.rstrip("\r\n")
    end = line[len(body) :]
    if body.startswith("{") and len(body) <= MAX_JSON_LINE_CHARS:
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            return json.dumps(sanitize(doc), ensure_ascii=False) + end
    return redact_text(body, MAX_LINE_CHARS) + end


def _since(days: int, now: datetime) -> str:
    return iso(now - timedelta(days=days))


def _db(data_dir: Path) -> sqlite3.Connection | None:
    path = data_dir / DB_FILENAME
    return open_read_only(path) if path.is_file() else None


def counters(data_dir: Path, days: int, now: datetime) -> dict[str, Any]:
    """Frames, screened, NOT SCREENED, pending, alarms and decisions per UTC day."""
    conn = _db(data_dir)
    doc: dict[str, Any] = {
        "since": _since(days, now),
        "note": "frames still in the image log (retention deletes old ones); days in UTC",
        "days": [],
    }
    if conn is None:
        doc["note"] = "no image log in the data directory"
        return doc
    with closing(conn):
        days_rows: dict[str, dict[str, Any]] = {}
        for row in conn.execute(
            "SELECT substr(received, 1, 10), count(*), sum(state = 'SCREENED'), "
            "sum(state = 'NOT_SCREENED'), sum(state IS NULL), sum(alarm = 1) "
            "FROM frames WHERE received >= ? GROUP BY 1 ORDER BY 1",
            (doc["since"],),
        ):
            days_rows[row[0]] = {
                "day": row[0],
                "frames": row[1],
                "screened": row[2] or 0,
                "not_screened": row[3] or 0,
                "pending": row[4] or 0,
                "alarms": row[5] or 0,
                "decisions": {},
            }
        for day, decision, count in conn.execute(
            "SELECT substr(at, 1, 10), decision, count(*) FROM decisions WHERE at >= ? "
            "GROUP BY 1, 2 ORDER BY 1",
            (doc["since"],),
        ):
            entry = days_rows.setdefault(day, {"day": day, "decisions": {}})
            entry["decisions"][decision] = count
    doc["days"] = [days_rows[d] for d in sorted(days_rows)]
    totals: dict[str, int] = {}
    for entry in doc["days"]:
        for key in ("frames", "screened", "not_screened", "pending", "alarms"):
            totals[key] = totals.get(key, 0) + int(entry.get(key, 0))
        for decision, count in entry["decisions"].items():
            totals[f"decisions_{decision}"] = totals.get(f"decisions_{decision}", 0) + count
    doc["totals"] = totals
    return doc


def events(data_dir: Path, days: int, now: datetime) -> list[dict[str, Any]]:
    """The image log's events (logging degraded, retention, reconcile, ...), oldest first."""
    conn = _db(data_dir)
    if conn is None:
        return []
    with closing(conn):
        conn.row_factory = sqlite3.Row
        try:
            rows = conn.execute(
                "SELECT * FROM events WHERE at >= ? ORDER BY id DESC LIMIT ?",
                (_since(days, now), MAX_EVENTS),
            ).fetchall()
        except sqlite3.OperationalError:  # an image log older than the events table
            return []
    return [dict(r) for r in reversed(rows)]


def audit_members(data_dir: Path, notes: Notes) -> Iterator[Member]:
    """The audit log's entries (JSON lines) and its chain verification."""
    verification = audit.verify(data_dir)
    yield Member("audit/verification.json", dump(verification.as_json()))
    entries = audit.entries(data_dir, limit=MAX_AUDIT_ENTRIES)
    if verification.entries > len(entries):
        notes.cut.append(f"audit/entries.jsonl: the newest {len(entries)} entries only")
    rows = []
    for entry in entries:
        row = entry.as_json()
        scrubbed = redact_config(row)
        if scrubbed != row:  # the vendor cannot re-check this entry's hash: say why
            scrubbed["redacted"] = True
        rows.append(scrubbed)
    yield Member("audit/entries.jsonl", jsonl(rows))


def test_run_members(data_dir: Path, count: int, notes: Notes) -> Iterator[Member]:
    """The newest `count` test runs: each stored run document and its report files."""
    conn = _db(data_dir)
    if conn is None:
        return
    with closing(conn):
        try:
            runs, total = list_test_runs(conn, limit=count)
        except sqlite3.OperationalError:  # an image log older than test runs
            return
        if total > count:
            notes.cut.append(f"test-runs: the newest {count} of {total} runs only")
        stored = [get_test_run(conn, run.id) for run in runs]
    for run in stored:
        text = json.dumps(run.as_json(), indent=2, ensure_ascii=False)
        yield Member(f"test-runs/{run.id}/run.json", redact_text(text, limit=None).encode())
        for path in _report_files(run.report_path):
            member = f"test-runs/{run.id}/report{path.suffix}"
            size = path.stat().st_size
            if size > MAX_REPORT_BYTES:
                notes.cut.append(f"{member} ({size} bytes: over {MAX_REPORT_BYTES})")
                continue
            text = path.read_bytes().decode("utf-8", "replace")
            yield Member(member, redact_text(text, limit=None).encode(), path.stat().st_mtime)


def _report_files(report_path: str | None) -> list[Path]:
    """The report file recorded for a run and its JSON/HTML twin, those that exist."""
    if not report_path:
        return []
    path = Path(report_path)
    found = []
    for suffix in REPORT_SUFFIXES:
        candidate = path.with_suffix(suffix)
        if candidate.is_file() and not candidate.is_symlink():
            found.append(candidate)
    return found


def public_keys(dirs: list[Path], notes: Notes) -> Iterator[Member]:
    """Trusted minisign public keys (*.pub) that parse as public keys; nothing else, so a
    secret key misnamed .pub never leaves the device."""
    for folder in dirs:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.pub")):
            try:
                if not path.is_file() or path.stat().st_size > MAX_KEY_FILE_BYTES:
                    raise ValueError("not a small regular file")
                text = path.read_text(encoding="ascii")
                parse_public_key(text, str(path))
            except (OSError, ValueError, EdgeError) as exc:
                notes.missing.append(f"keys/{path.name}: not a minisign public key ({exc})")
                continue
            yield Member(f"keys/{path.name}", text.encode("ascii"), path.stat().st_mtime)


def log_files(log_file: Path) -> list[Path]:
    """The log file and its rotated copies (edge.log.1, .2, ...), newest first."""
    found = [log_file] if log_file.is_file() else []
    if log_file.parent.is_dir():
        for path in log_file.parent.glob(log_file.name + ".*"):
            if path.suffix[1:].isdigit() and path.is_file():
                found.append(path)
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def log_members(log_file: Path, days: int, budget: int, notes: Notes) -> Iterator[Member]:
    """Log files newest first while they fit `budget` bytes; a file that does not fit keeps
    its newest lines."""
    cutoff = time.time() - days * 86400
    left = budget
    for path in log_files(log_file):
        stat = path.stat()
        if stat.st_mtime < cutoff:
            notes.cut.append(f"logs/{path.name}: older than --since {days} days")
            continue
        if left <= 0:
            notes.cut.append(f"logs/{path.name}: over the {budget}-byte log budget")
            continue
        with path.open("rb") as handle:
            start = max(0, stat.st_size - left)
            handle.seek(start)
            data = handle.read(left)
        left -= len(data)
        if start > 0:
            data = data[data.find(b"\n") + 1 :]  # whole lines only
            notes.cut.append(f"logs/{path.name}: only its last {len(data)} bytes (log budget)")
            left = 0  # what remains of the budget is less than a line
        if not data:
            continue
        yield Member(f"logs/{path.name}", redact_lines(data), stat.st_mtime)


def journal_member(
    program: str, days: int, budget: int, notes: Notes, units: tuple[str, ...]
) -> Iterator[Member]:
    """`journalctl -o json --reverse` (newest first) for the service's units over the last
    `days`, cut at `budget` bytes; a note, never an error, when there is no journal."""
    command = [program, "--no-pager", "--output=json", "--reverse", f"--since=-{days}d"]
    for unit in units:
        command += ["--unit", unit]
    try:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
    except OSError as exc:
        notes.missing.append(f"journal: {program} cannot run ({exc.strerror or exc})")
        return
    assert proc.stdout is not None and proc.stderr is not None
    timer = threading.Timer(JOURNAL_TIMEOUT_S, proc.kill)  # a hung journalctl ends the read
    timer.start()
    chunks, size = [], 0
    try:
        while size <= budget and (chunk := os.read(proc.stdout.fileno(), 1 << 16)):
            chunks.append(chunk)
            size += len(chunk)
        if proc.poll() is None:
            proc.kill()
        error = proc.stderr.read(4096).decode("utf-8", "replace").strip().splitlines()
        proc.wait()
    finally:
        timer.cancel()
        proc.stdout.close()
        proc.stderr.close()
    data = b"".join(chunks)
    if size > budget:
        data = data[: data.rfind(b"\n", 0, budget) + 1]
        notes.cut.append(f"journal.jsonl: the newest {len(data)} bytes only (journal budget)")
    elif proc.returncode != 0:
        reason = error[0] if error else f"exit status {proc.returncode}"
        notes.missing.append(f"journal: {program} failed: {reason}")
    if data:
        yield Member("journal.jsonl", redact_lines(data))
    elif proc.returncode == 0:  # journalctl says why on stderr (no permission, no journal)
        why = f" ({error[0]})" if error else ""
        notes.missing.append("journal: no entries for " + ", ".join(units) + why)


def host_name() -> str:
    """This device's host name, safe in a file name."""
    name = os.uname().nodename or "edge"
    return "".join(c if c.isalnum() or c in ".-" else "-" for c in name)[:64]


def utc_now() -> datetime:
    return datetime.now(UTC)
