"""`edge doctor`: the installation checked end to end, each finding OK, WARN or FAIL with the
fix in plain words.

Read-only like `edge --version`: the database through a `mode=ro` connection, the model
validated from its files (manifest, hash, graph inputs and outputs) without starting an
inference session, so it runs beside the service. Exit status 1 when anything FAILs.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from edge.about import open_read_only
from edge.config import EdgeConfig, FolderSource, SerialSource, load_config
from edge.detector.manifest import bind_graph, graph_io_from_file, read_model_dir
from edge.errors import EdgeError
from edge.store.schema import MIGRATIONS
from edge.store.store import DB_FILENAME
from edge.upgrade.engine import UpgradeSettings
from edge.upgrade.model_store import ModelStore

Status = Literal["OK", "WARN", "FAIL"]
# pyserial's URL handlers (serial_for_url): anything else is a typo.
SERIAL_SCHEMES = ("socket", "rfc2217", "loop", "spy", "alt", "hwgrep", "cp2110")
EARLIEST_YEAR = 2024  # before this the clock was never set (no battery, no NTP)


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    message: str
    fix: str | None = None


@dataclass(frozen=True)
class Context:
    config: EdgeConfig
    data_dir: Path
    factory_dir: Path
    now: datetime


Check = Callable[[Context], list[Finding]]


def _ok(check: str, message: str) -> list[Finding]:
    return [Finding(check, "OK", message)]


def _warn(check: str, message: str, fix: str) -> list[Finding]:
    return [Finding(check, "WARN", message, fix)]


def _fail(check: str, message: str, fix: str) -> list[Finding]:
    return [Finding(check, "FAIL", message, fix)]


def check_data_dir(ctx: Context) -> list[Finding]:
    data = ctx.data_dir
    if not data.exists():
        return _fail(
            "data-dir",
            f"{data} does not exist",
            f"create it for the service's user: mkdir -p {data} && chown edge: {data}",
        )
    if not data.is_dir():
        return _fail("data-dir", f"{data} is not a directory", "point --data at one")
    try:  # the real test: os.access says yes to root on a read-only mount
        with tempfile.NamedTemporaryFile(dir=data, prefix=".doctor-") as probe:
            probe.write(b"x")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        return _fail(
            "data-dir",
            f"{data} is not writable ({exc.strerror or exc})",
            f"give the service's user write access: chown -R edge: {data}, and check the "
            "disk is not mounted read-only",
        )
    return _ok("data-dir", f"{data} exists and is writable")


def check_free_space(ctx: Context) -> list[Finding]:
    if not ctx.data_dir.is_dir():
        return []
    free_mb = shutil.disk_usage(ctx.data_dir).free >> 20
    reserve = ctx.config.store.min_free_mb
    message = f"{free_mb} MiB free, retention reserve store.min_free_mb = {reserve}"
    if free_mb < reserve:
        fix = (
            "retention will delete the oldest clean bags to restore the reserve and logging "
            "may degrade: free space on the disk or lower store.min_free_mb"
        )
        return _fail("free-space", message, fix)
    if free_mb < 2 * reserve:
        return _warn("free-space", message, "free space on the data disk soon")
    return _ok("free-space", message)


def _newest_row(conn: sqlite3.Connection) -> str | None:
    """The newest time any row records (ISO 8601 UTC strings sort as times)."""
    found: list[str] = []
    for table, column in (("frames", "received"), ("results", "screened_at"), ("events", "at")):
        try:
            row = conn.execute(f"SELECT max({column}) FROM {table}").fetchone()
        except sqlite3.Error:
            continue  # an older schema: fewer tables
        if row and row[0]:
            found.append(str(row[0]))
    return max(found) if found else None


def _parse_time(text: str) -> datetime:
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def check_database(ctx: Context) -> list[Finding]:
    db_path = ctx.data_dir / DB_FILENAME
    if not db_path.is_file():
        return _ok("database", f"no image log yet ({db_path}); the service creates it")
    fix = (
        "stop the service, copy the data directory for analysis, then restore edge.db from a "
        "backup (or move it aside to start a new image log)"
    )
    try:
        with closing(open_read_only(db_path)) as conn:
            rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check").fetchall()]
            applied = {str(r[0]) for r in conn.execute("SELECT name FROM migrations")}
    except sqlite3.Error as exc:
        return _fail("database", f"{db_path}: not a usable database ({exc})", fix)
    if rows != ["ok"]:
        shown = "; ".join(rows[:3])
        return _fail("database", f"{db_path}: quick_check failed ({shown})", fix)
    known = [m.name for m in MIGRATIONS]
    unknown = sorted(applied - set(known))
    pending = [name for name in known if name not in applied]
    findings = _ok("database", f"quick_check ok, schema {max(applied, default='none')}")
    if unknown:
        findings = _fail(
            "database",
            f"{db_path} was written by a newer version (migrations {', '.join(unknown)})",
            "install that software version again, or restore a backup made for this one",
        )
    elif pending:
        findings += _warn(
            "database",
            f"migrations not applied yet: {', '.join(pending)}",
            "the next service start applies them; back up edge.db first",
        )
    return findings


def check_clock(ctx: Context) -> list[Finding]:
    now, newest = ctx.now, None
    db_path = ctx.data_dir / DB_FILENAME
    if db_path.is_file():
        try:
            with closing(open_read_only(db_path)) as conn:
                newest = _newest_row(conn)
        except sqlite3.Error:
            pass  # the database check says what is wrong with it
    fix = "set the clock (timedatectl set-time, or enable NTP / the RTC battery), then restart"
    if now.year < EARLIEST_YEAR:
        return _fail("clock", f"the clock says {now:%Y-%m-%d}, never set", fix)
    if newest is not None and now < _parse_time(newest):
        return _fail(
            "clock",
            f"the clock ({now:%Y-%m-%dT%H:%M:%SZ}) is behind the "
            f"newest row in the image log ({newest})",
            fix,
        )
    return _ok("clock", f"{now:%Y-%m-%dT%H:%M:%SZ}")


def check_model(ctx: Context) -> list[Finding]:
    store = ModelStore(ctx.data_dir)
    try:
        pointer = store.read_pointer()
        installed = store.active()
    except EdgeError as exc:
        return _fail("model", exc.message, "see the message; then `edge models`")
    findings: list[Finding] = []
    if installed is None:
        path, expected = ctx.factory_dir, None
        findings += _warn(
            "model",
            "no model store in the data directory yet; the service installs the shipped "
            "model at its first start",
            "start the service once (or run `edge models`)",
        )
        fix = f"reinstall the software: the shipped model in {path} is damaged"
    else:
        path, expected = installed.path, installed.model_sha256
        previous = pointer.previous if pointer else None
        fix = (
            f"roll back to the previous model with `edge rollback` ({previous})"
            if previous
            else "reinstall the model's bundle with `edge upgrade`, or restore DATA/models "
            "from a backup"
        )
    try:
        spec, model_bytes = read_model_dir(path)
        if expected is not None and spec.model_sha256 != expected:
            raise EdgeError(
                f"model.onnx is not the file installed (sha256 {spec.model_sha256[:12]}..., "
                f"installed {expected[:12]}...)"
            )
        bind_graph(spec.manifest, *graph_io_from_file(model_bytes))
    except EdgeError as exc:
        return [*findings, Finding("model", "FAIL", f"{path}: {exc.message}", fix)]
    except Exception as exc:  # onnx's parser raises its own types for a damaged graph
        return [*findings, Finding("model", "FAIL", f"{path}: graph unreadable ({exc})", fix)]
    source = "active" if installed is not None else "shipped"
    findings.append(
        Finding(
            "model",
            "OK",
            f"{source} model {spec.manifest.model_id}: manifest, sha256 "
            f"{spec.model_sha256[:12]}... and graph inputs/outputs valid",
        )
    )
    return findings


def check_upgrade(ctx: Context) -> list[Finding]:
    try:
        pointer = ModelStore(ctx.data_dir).read_pointer()
    except EdgeError:
        return []  # the model check reports the damaged pointer
    if pointer is None:
        return []
    if pointer.state == "pending":
        return _warn(
            "upgrade",
            f"the upgrade to {pointer.model} awaits its health check",
            "start the service: it screens a frame, then confirms the model or rolls it back",
        )
    return _ok("upgrade", f"{pointer.model} {pointer.state} since {pointer.changed}")


def check_keys(ctx: Context) -> list[Finding]:
    settings = UpgradeSettings.from_config(ctx.config, ctx.data_dir)
    keys = settings.trusted_keys()
    if not keys:
        return _warn(
            "keys",
            "no trusted vendor keys: every model upgrade will be refused",
            f"copy the model vendor's minisign public key to {ctx.data_dir / 'keys'}/<name>.pub",
        )
    return _ok("keys", f"{len(keys)} trusted key(s): " + ", ".join(k.id_text for k in keys))


def check_sources(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    for source in ctx.config.sources:
        if isinstance(source, SerialSource):
            name = f"serial {source.url}"
            if "://" in source.url:
                scheme = urlsplit(source.url).scheme
                if scheme in SERIAL_SCHEMES:
                    findings += _ok("sources", f"{name}: a valid URL")
                else:
                    fix = "use a device path or a pyserial URL: " + ", ".join(SERIAL_SCHEMES)
                    findings += _fail("sources", f"{name}: unknown URL scheme {scheme!r}", fix)
            elif Path(source.url).exists():
                findings += _ok("sources", f"{name}: present")
            else:
                fix = "plug in the scanner's serial adapter, or correct sources[].url"
                findings += _fail("sources", f"{name}: no such device", fix)
        elif isinstance(source, FolderSource):
            name = f"folder {source.path}"
            if source.path.is_dir():
                findings += _ok("sources", f"{name}: present")
            else:
                fix = "create the folder the scanner writes to, or correct sources[].path"
                findings += _fail("sources", f"{name}: no such folder", fix)
    return findings


def check_calibration(ctx: Context) -> list[Finding]:
    from calibration import history, profile

    findings: list[Finding] = []
    found = profile.versions(ctx.data_dir)
    if found:
        findings += _ok("calibration", f"profile {profile.profile_name(found[-1])} active")
    else:
        findings += _warn(
            "calibration",
            "no scanner calibration profile: raw frames are screened uncorrected",
            "take dark and air scans and run `edge calibrate scanner` (README: Calibration)",
        )
    max_age_h = ctx.config.calibration.testpiece.max_age_h
    fix = "scan the test piece and run `edge calibrate testpiece`"
    entries = history.entries(ctx.data_dir)
    if not entries:
        findings += _warn("testpiece", "no test-piece check recorded", fix)
        return findings
    latest = entries[-1]
    age_h = (ctx.now - _parse_time(str(latest["at"]))).total_seconds() / 3600
    if not latest.get("passed"):
        failures = (
            "; ".join(latest.get("failures", [])) or "see `edge calibrate testpiece --history`"
        )
        findings += _warn("testpiece", f"the latest check ({latest['at']}) failed: {failures}", fix)
    elif age_h > max_age_h:
        message = f"the latest check is {age_h:.0f} h old (limit {max_age_h:g} h)"
        findings += _warn("testpiece", message, fix)
    else:
        findings += _ok("testpiece", f"passed {age_h:.1f} h ago")
    return findings


CHECKS: tuple[Check, ...] = (
    check_data_dir,
    check_free_space,
    check_database,
    check_clock,
    check_model,
    check_upgrade,
    check_keys,
    check_sources,
    check_calibration,
)


def run_checks(
    config_path: Path | None,
    data_dir: Path | None,
    factory_dir: Path,
    now: datetime | None = None,
    *,
    default_data_dir: Path = Path("./var"),
) -> list[Finding]:
    """Every check, in order; a check that crashes is a FAIL of its own, never the end."""
    findings: list[Finding] = []
    try:
        config = load_config(config_path)
        findings += _ok(
            "config", f"{config_path} valid" if config_path else "defaults (no --config)"
        )
    except EdgeError as exc:
        config = EdgeConfig()
        fix = "correct the file (`edge serve --check-config FILE` shows every error)"
        findings += _fail("config", exc.message, fix)
    ctx = Context(
        config,
        Path(data_dir or config.store.data_dir or default_data_dir),
        config.model.dir or factory_dir,
        now or datetime.now(UTC),
    )
    for check in CHECKS:
        try:
            findings += check(ctx)
        except Exception as exc:  # a doctor that dies on a broken device helps nobody
            name = check.__name__.removeprefix("check_").replace("_", "-")
            findings.append(
                Finding(name, "FAIL", f"the check itself failed: {exc!r}", "report this")
            )
    return findings


def report(findings: list[Finding]) -> dict[str, Any]:
    """The `--json` document: {"ok", "counts", "checks": [{check, status, message, fix}]}."""
    counts = {s: sum(f.status == s for f in findings) for s in ("OK", "WARN", "FAIL")}
    return {"ok": counts["FAIL"] == 0, "counts": counts, "checks": [asdict(f) for f in findings]}


def format_findings(findings: list[Finding]) -> str:
    lines = []
    for f in findings:
        lines.append(f"{f.status:<4}  {f.check:<12} {f.message}")
        if f.fix and f.status != "OK":
            lines.append(f"{'':<18} fix: {f.fix}")
    doc = report(findings)
    counts = ", ".join(f"{n} {s}" for s, n in doc["counts"].items())
    lines.append(f"{'healthy' if doc['ok'] else 'NOT HEALTHY'}: {counts}")
    return "\n".join(lines) + "\n"
