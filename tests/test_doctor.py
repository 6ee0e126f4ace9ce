"""`edge doctor` on real data directories: a healthy one, and each kind of damage."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from calibration import history
from edge.config import DEFAULT_MODEL_DIR
from edge.doctor import Finding, report, run_checks
from edge.store import Store
from edge.upgrade.minisign import generate_key
from edge.upgrade.model_store import ModelStore


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh data directory after the service's first start: factory model, empty log."""
    data = tmp_path_factory.mktemp("template") / "data"
    ModelStore(data).ensure_factory(DEFAULT_MODEL_DIR)
    Store(data).close()
    return data


@pytest.fixture
def data(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(template, copy)
    return copy


def doctor(data: Path, config: Path | None = None, **kwargs: datetime) -> list[Finding]:
    return run_checks(config, data, DEFAULT_MODEL_DIR, **kwargs)


def by_status(findings: list[Finding], status: str) -> dict[str, Finding]:
    return {f.check: f for f in findings if f.status == status}


def test_a_healthy_fresh_data_directory_warns_only_of_what_a_new_device_lacks(data: Path) -> None:
    findings = doctor(data)
    assert not by_status(findings, "FAIL"), findings
    assert set(by_status(findings, "WARN")) == {"keys", "calibration", "testpiece"}
    assert {"config", "data-dir", "free-space", "database", "clock", "model", "upgrade"} <= set(
        by_status(findings, "OK")
    )
    assert report(findings)["ok"] is True
    assert all(f.fix for f in findings if f.status != "OK")


def test_the_warnings_clear_once_keys_and_a_recent_test_piece_check_exist(data: Path) -> None:
    (data / "keys").mkdir()
    (data / "keys" / "vendor.pub").write_text(generate_key().public_key.to_text())
    history.record(data, {"passed": True, "failures": []})
    assert set(by_status(doctor(data), "WARN")) == {"calibration"}
    later = datetime.now(UTC) + timedelta(hours=30)
    assert "30 h old" in by_status(doctor(data, now=later), "WARN")["testpiece"].message


def _corrupt_database(data: Path) -> None:
    db = data / "edge.db"
    raw = bytearray(db.read_bytes())
    raw[4096:] = b"\xa5" * (len(raw) - 4096)  # header intact, every later page garbage
    db.write_bytes(bytes(raw))


def _remove_model_file(data: Path) -> None:
    active = ModelStore(data).active()
    assert active is not None
    (active.path / "model.onnx").unlink()


def _pending_upgrade(data: Path) -> None:
    store = ModelStore(data)
    store.activate(store.require_pointer().model)


def _missing_serial_port(data: Path) -> None:
    (data.parent / "edge.toml").write_text(
        '[[sources]]\ntype = "serial"\nurl = "/dev/ttyUSB-missing"\n'
        '[[sources]]\ntype = "serial"\nurl = "loop://"\n'
    )


def _bad_config(data: Path) -> None:
    (data.parent / "edge.toml").write_text("[store]\nmin_free_mbb = 1\n")


def _newer_schema(data: Path) -> None:
    with sqlite3.connect(data / "edge.db") as conn:
        conn.execute("INSERT INTO migrations VALUES ('9999_from_the_future', '2030-01-01')")
    conn.close()


@pytest.mark.parametrize(
    ("damage", "check", "status", "message", "fix"),
    [
        (_corrupt_database, "database", "FAIL", "edge.db", "restore edge.db from a backup"),
        (_remove_model_file, "model", "FAIL", "model.onnx: not found", "edge upgrade"),
        (_pending_upgrade, "upgrade", "WARN", "awaits its health check", "start the service"),
        (_missing_serial_port, "sources", "FAIL", "ttyUSB-missing: no such device", "adapter"),
        (_bad_config, "config", "FAIL", "min_free_mbb", "--check-config"),
        (_newer_schema, "database", "FAIL", "9999_from_the_future", "install that software"),
    ],
)
def test_each_kind_of_damage_is_found_with_its_fix(
    data: Path,
    damage: Callable[[Path], None],
    check: str,
    status: str,
    message: str,
    fix: str,
) -> None:
    damage(data)
    config = data.parent / "edge.toml"
    findings = doctor(data, config if config.exists() else None)
    found = [f for f in findings if f.check == check and f.status == status]
    assert found, findings
    assert message in found[0].message and fix in (found[0].fix or "")
    assert report(findings)["ok"] is (status != "FAIL")


def test_a_model_file_that_is_not_the_one_installed_fails(data: Path) -> None:
    active = ModelStore(data).active()
    assert active is not None
    manifest = json.loads((active.path / "manifest.json").read_text())
    onnx_bytes = (active.path / "model.onnx").read_bytes() + b"\0"
    (active.path / "model.onnx").write_bytes(onnx_bytes)
    manifest["sha256"]["model.onnx"] = hashlib.sha256(onnx_bytes).hexdigest()
    (active.path / "manifest.json").write_text(json.dumps(manifest))
    failed = by_status(doctor(data), "FAIL")
    assert "not the file installed" in failed["model"].message


@pytest.mark.parametrize(
    ("now", "newest", "expected"),
    [
        (datetime(2021, 5, 1, tzinfo=UTC), None, "never set"),
        (datetime(2025, 5, 1, tzinfo=UTC), "2025-06-01T00:00:00.000000Z", "behind the newest row"),
    ],
)
def test_a_clock_that_was_never_set_or_went_back_fails(
    data: Path, now: datetime, newest: str | None, expected: str
) -> None:
    if newest is not None:
        with sqlite3.connect(data / "edge.db") as conn:
            conn.execute("INSERT INTO events (at, kind) VALUES (?, 'test')", [newest])
        conn.close()
    clock = by_status(doctor(data, now=now), "FAIL")["clock"]
    assert expected in clock.message and "timedatectl" in (clock.fix or "")


def _data_dir_findings_as(uid: int, data: Path) -> list[dict[str, str | None]]:
    """The checks run by another user (root writes anywhere, so a test as root drops to
    `uid` in a forked child) and reported back over a pipe."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read)
            os.setgid(uid)
            os.setuid(uid)
            found = [f.__dict__ for f in doctor(data) if f.check == "data-dir"]
            os.write(write, json.dumps(found).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    found: list[dict[str, str | None]] = json.loads(text)
    return found


def test_an_unwritable_data_directory_fails_with_its_fix(template: Path) -> None:
    with tempfile.TemporaryDirectory() as base:
        os.chmod(base, 0o755)  # reachable by the other user
        data = Path(base) / "data"
        shutil.copytree(template, data)
        data.chmod(0o555)
        try:
            if os.geteuid() == 0:
                found = _data_dir_findings_as(65534, data)
            else:
                found = [f.__dict__ for f in doctor(data) if f.check == "data-dir"]
        finally:
            data.chmod(0o755)
    assert [f["status"] for f in found] == ["FAIL"]
    assert "not writable" in str(found[0]["message"]) and "chown" in str(found[0]["fix"])


def test_the_command_prints_one_json_document_and_exits_1_on_a_fail(data: Path) -> None:
    _corrupt_database(data)
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli", "doctor", "--json", "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False and doc["counts"]["FAIL"] == 1
    assert [c["check"] for c in doc["checks"] if c["status"] == "FAIL"] == ["database"]
