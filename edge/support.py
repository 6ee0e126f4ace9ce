"""`edge support-bundle`: one archive a technician hands the vendor, made read-only beside a
running service.

`DIR/edge-support-<host>-<UTC time>.tar.gz` holds, in order of what matters most when the
size cap bites: the version report, `edge doctor`'s findings, the configuration (secrets
masked), frame counters per day, the audit log with its verification, the image log's
events, the log files, the journal, the newest test runs with their reports, the trusted
public keys, and last `manifest.json` (every member's size and SHA-256, what was cut or
missing and why). Never: images, users.db, secret keys. A piece that cannot be read is
noted in the manifest and the rest goes on; a target that cannot take the archive (missing,
not writable, full) fails with exit status 2 and nothing left behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from edge import support_collect as collect
from edge.about import package_version, version_report
from edge.config import DEFAULT_MODEL_DIR, EdgeConfig, load_config
from edge.doctor import report as doctor_report
from edge.doctor import run_checks
from edge.errors import EdgeError
from edge.support_archive import ArchiveWriter, SupportBundleError
from edge.support_collect import Member, Notes
from edge.support_config import config_member

FORMAT = 1
MAX_ARCHIVE_BYTES = 512 << 20
MAX_LOG_BYTES = 50 << 20  # newest log files, in all
MAX_JOURNAL_BYTES = 50 << 20
TEST_RUNS = 5  # the newest runs included
MAX_SINCE_DAYS = 3650
MANIFEST = "manifest.json"
SERVICE_CONFIG = Path("/etc/edge/edge.toml")  # where packaging/systemd/edge.service reads it
JOURNAL_UNITS = ("edge.service", "edge-usb-upgrade@*")


@dataclass(frozen=True)
class BundleOptions:
    out_dir: Path
    data_dir: Path | None = None
    config_path: Path | None = None  # None: the service's (SERVICE_CONFIG) if present
    since_days: int = 14
    factory_dir: Path = DEFAULT_MODEL_DIR
    default_data_dir: Path = Path("./var")
    max_bytes: int = MAX_ARCHIVE_BYTES
    max_log_bytes: int = MAX_LOG_BYTES
    max_journal_bytes: int = MAX_JOURNAL_BYTES
    test_runs: int = TEST_RUNS
    journalctl: str | None = "journalctl"  # None: leave the journal out
    capacity_bytes: int | None = None  # tests: the target behaves as if this full
    now: datetime | None = None


@dataclass(frozen=True)
class WrittenBundle:
    path: Path
    size: int
    members: int
    cut: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "bytes": self.size,
            "members": self.members,
            "cut": self.cut,
            "missing": self.missing,
        }


def _check_options(options: BundleOptions) -> None:
    if not 1 <= options.since_days <= MAX_SINCE_DAYS:
        raise EdgeError(f"--since: expected 1..{MAX_SINCE_DAYS} days, got {options.since_days}")
    out = options.out_dir
    if not out.is_dir():
        what = "does not exist" if not out.exists() else "is not a directory"
        raise SupportBundleError(f"--out {out}: {what}")


def _config_path(options: BundleOptions) -> Path | None:
    if options.config_path is not None:
        return options.config_path
    return SERVICE_CONFIG if SERVICE_CONFIG.is_file() else None


Piece = Callable[[], Iterable[Member]]


def _pieces(
    options: BundleOptions, config: EdgeConfig, config_path: Path | None, data: Path, notes: Notes
) -> list[tuple[str, Piece]]:
    """(what, how to make its members), most important first."""
    now, days = options.now or collect.utc_now(), options.since_days

    def config_piece() -> Iterator[Member]:
        text, error = config_member(config_path)
        if error is not None:
            notes.missing.append(f"config: {error}")
            yield Member("config-error.txt", (error + "\n").encode())
        if text:
            yield Member("config.toml", text)

    def health() -> Iterator[Member]:
        findings = run_checks(
            config_path, data, options.factory_dir, now, default_data_dir=options.default_data_dir
        )
        yield Member("health.json", collect.dump(doctor_report(findings)))

    log_file = config.logging.file or data / "logs" / "edge.log"
    keys = [data / "keys", *([config.upgrade.keys_dir] if config.upgrade.keys_dir else [])]
    pieces: list[tuple[str, Piece]] = [
        ("version", lambda: [Member("version.json", collect.dump(_version(options, config, data)))]),
        ("health", health),
        ("config", config_piece),
        ("counters", lambda: [Member("counters.json", collect.dump(collect.counters(data, days, now)))]),
        ("audit", lambda: collect.audit_members(data, notes)),
        ("events", lambda: [Member("events.jsonl", collect.jsonl(collect.events(data, days, now)))]),
        ("logs", lambda: collect.log_members(log_file, days, options.max_log_bytes, notes)),
    ]  # fmt: skip
    if options.journalctl is not None:
        program = options.journalctl
        pieces.append(
            (
                "journal",
                lambda: collect.journal_member(
                    program, days, options.max_journal_bytes, notes, JOURNAL_UNITS
                ),
            )
        )
    pieces += [
        ("test-runs", lambda: collect.test_run_members(data, options.test_runs, notes)),
        ("keys", lambda: collect.public_keys(keys, notes)),
    ]
    return pieces


def _version(options: BundleOptions, config: EdgeConfig, data: Path) -> dict[str, Any]:
    return version_report(data, config.model.dir or options.factory_dir)


def write_support_bundle(options: BundleOptions) -> WrittenBundle:
    """Collect everything and write the archive; SupportBundleError (exit 2, nothing left
    behind) when the target cannot take it."""
    _check_options(options)
    config_path = _config_path(options)
    try:
        config = load_config(config_path)
    except EdgeError:
        config = EdgeConfig()  # config.toml and health.json say what is wrong with it
    data = Path(options.data_dir or config.store.data_dir or options.default_data_dir)
    now = options.now or collect.utc_now()
    name = _free_name(options.out_dir, f"edge-support-{collect.host_name()}-{now:%Y%m%dT%H%M%SZ}")
    notes = Notes()
    errors: list[dict[str, str]] = []
    with ArchiveWriter(
        options.out_dir / name, options.max_bytes, capacity_bytes=options.capacity_bytes
    ) as archive:
        for what, piece in _pieces(options, config, config_path, data, notes):
            try:
                for member in piece():
                    archive.add(member.name, member.data, reserve=_manifest_room(archive, notes))
            except SupportBundleError:
                raise
            except Exception as exc:  # one unreadable piece must not cost the vendor the rest
                errors.append({"piece": what, "error": f"{type(exc).__name__}: {exc}"})
        manifest = _manifest(options, now, config_path, data, archive, notes, errors)
        archive.add_last(MANIFEST, collect.dump(manifest))
        size = archive.commit()
    return WrittenBundle(
        options.out_dir / name,
        size,
        len(archive.entries) + 1,
        [*notes.cut, *archive.cut],
        notes.missing + [f"{e['piece']}: {e['error']}" for e in errors],
    )


def _free_name(out_dir: Path, stem: str) -> str:
    """`stem.tar.gz`, or `stem-2.tar.gz`, ... when a bundle of the same second is there."""
    name, n = f"{stem}.tar.gz", 1
    while (out_dir / name).exists():
        n += 1
        name = f"{stem}-{n}.tar.gz"
    return name


def _manifest_room(archive: ArchiveWriter, notes: Notes) -> int:
    """Tar bytes to keep free for the manifest: what it would take now, one more entry, and
    room for a few notes."""
    listed = len(archive.entries) + len(archive.cut) + len(notes.cut) + len(notes.missing)
    return 512 + 300 * (listed + 2) + 8192


def _manifest(
    options: BundleOptions,
    now: datetime,
    config_path: Path | None,
    data: Path,
    archive: ArchiveWriter,
    notes: Notes,
    errors: list[dict[str, str]],
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "created": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "software_version": package_version(),
        "host": collect.host_name(),
        "data_dir": str(data),
        "config": str(config_path) if config_path else None,
        "since_days": options.since_days,
        "max_bytes": options.max_bytes,
        "members": archive.entries,
        "cut": [*notes.cut, *archive.cut],
        "missing": notes.missing,
        "errors": errors,
        "never_included": "images, users.db (passwords, sessions, tokens), secret keys",
    }
