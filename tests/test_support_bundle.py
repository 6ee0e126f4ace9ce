"""`edge support-bundle` on a real data directory (store, frames, audit log, test run, keys,
logs, users): what is inside, what never is (secrets, images, users.db), read-only beside a
running service, bounded, and nothing left behind when the target cannot take it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.auth.passwords import ScryptParams
from edge.auth.users import UserStore
from edge.config import DEFAULT_MODEL_DIR, parse_config
from edge.frames import Detections, Frame, Result, ScreeningState
from edge.store import Store
from edge.store.test_runs import record_test_run, run_row
from edge.support import BundleOptions, write_support_bundle
from edge.support_archive import SupportBundleError
from edge.support_config import to_toml
from edge.upgrade import audit
from edge.upgrade.minisign import generate_key
from edge.upgrade.model_store import ModelStore

PASSWORD = "hunter2-planted-password"
TOKEN = "tok-planted-9f8e7d6c5b4a"
THUMBNAIL = "data:image/jpeg;base64," + "/9j/4AAQSkZJRgABAQ" * 50
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def dual_frame(seed: int) -> Frame:
    rng = np.random.default_rng(seed)
    high, low = (rng.integers(0, 65536, (24, 32), dtype=np.uint16) for _ in range(2))
    return Frame(high=high, low=low)


def screened(alarm: bool) -> Result:
    boxes = np.array([[2.0, 3.0, 12.5, 20.0]] if alarm else np.zeros((0, 4)), np.float32)
    scores = np.array([0.9] if alarm else [], np.float32)
    found = Detections(boxes, scores, np.zeros(len(scores), np.int64))
    return Result(ScreeningState.SCREENED, found if alarm else Detections.empty(), "tiny@0.1.0")


def _report(run_id: str, report_path: Path) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "created": "2026-11-20T10:00:00.000000Z",
        "model": {"id": "demo@1.0.0", "sha256": "ab" * 32},
        "baseline": None,
        "suite": {"name": "standard", "sha256": "ef" * 32, "label_version": 1},
        "gate": {"passed": True, "failures": []},
        "metrics": {"summary": {"pfa": 0.1}},
        "gallery": [{"image": THUMBNAIL}],
        "sha256": "12" * 32,
    }


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory after some service time: frames, decisions, an audit entry, a test
    run with its reports, keys, users and logs with secrets planted in them."""
    root = tmp_path_factory.mktemp("support")
    data = root / "data"
    ModelStore(data).ensure_factory(DEFAULT_MODEL_DIR)
    with Store(data) as store:
        alarm = store.add_frame(dual_frame(1), bag="B1").id
        store.add_result(alarm, screened(True), "ab" * 32, ["gun"])
        store.add_decision(alarm, "search", user="op1")
        clear = store.add_frame(dual_frame(2), bag="B2").id
        store.add_result(clear, screened(False), "ab" * 32, ["gun"])
        store.add_decision(clear, "clear", user="op1")
        missed = store.add_frame(dual_frame(3), bag="B3").id
        store.add_result(missed, Result.not_screened("detector timed out", "tiny@0.1.0"))
        store.add_frame(dual_frame(4), bag="B4")  # not screened yet
    audit.record(data, "upgrade-started", actor="cli:tom", message=f"password={PASSWORD}")
    reports = root / "reports"
    reports.mkdir()
    html = reports / "run.html"
    doc = _report("t-20261120-100000-abcdef", html)
    html.write_text(f"<html><img src='{THUMBNAIL}'><p>token={TOKEN}</p></html>")
    (reports / "run.json").write_text(json.dumps(doc))
    record_test_run(data, run_row(doc, html))
    secret = generate_key()
    (data / "keys").mkdir()
    (data / "keys" / "vendor.pub").write_text(secret.public_key.to_text())
    (data / "keys" / "vendor.key").write_text(secret.to_text())
    (data / "keys" / "misnamed.pub").write_text(generate_key().to_text())  # a secret key
    users = UserStore(data, kdf=ScryptParams(log2_n=8, r=8, p=1))
    users.add_user("tom", "technician", PASSWORD)
    users.create_token("tom")
    users.close()
    logs = data / "logs"
    logs.mkdir()
    (logs / "edge.log.1").write_text(
        json.dumps({"ts": "2026-11-27T09:00:00.000Z", "msg": "older", "password": PASSWORD}) + "\n"
    )
    (logs / "edge.log").write_text(
        json.dumps({"ts": "2026-11-27T10:00:00.000Z", "msg": "started", "frame": "f-1"})
        + f"\nlogin Authorization: Bearer {TOKEN}\n"
        + f"image {THUMBNAIL}\n"
    )
    return data


@pytest.fixture
def data(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(template, copy)
    return copy


def config_file(tmp_path: Path, data: Path) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(
        f"# admin password = {PASSWORD}\n"
        f'[store]\ndata_dir = "{data}"\n'
        f'[[sources]]\ntype = "folder"\npath = "/srv/in-token={TOKEN}"\n'
    )
    return path


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        found = {}
        for info in tar.getmembers():
            assert info.isfile() and not info.name.startswith(("/", "..")), info.name
            handle = tar.extractfile(info)
            assert handle is not None
            found[info.name] = handle.read()
        return found


def bundle(data: Path, out: Path, **kwargs: Any) -> tuple[Path, dict[str, bytes]]:
    out.mkdir(exist_ok=True)
    options = BundleOptions(
        out_dir=out, data_dir=data, factory_dir=DEFAULT_MODEL_DIR, journalctl=None, **kwargs
    )
    written = write_support_bundle(options)
    assert [p.name for p in out.iterdir()] == [written.path.name]
    assert written.path.stat().st_size == written.size
    return written.path, members(written.path)


def test_the_bundle_holds_what_the_vendor_needs(data: Path, tmp_path: Path) -> None:
    config = config_file(tmp_path, data)
    path, found = bundle(data, tmp_path / "usb", config_path=config)
    assert path.name.startswith("edge-support-") and path.name.endswith("Z.tar.gz")
    manifest = json.loads(found["manifest.json"])
    listed = {m["name"]: m for m in manifest["members"]}
    assert set(listed) | {"manifest.json"} == set(found)
    for name, entry in listed.items():
        assert entry["bytes"] == len(found[name])
        assert entry["sha256"] == hashlib.sha256(found[name]).hexdigest()
    assert manifest["software_version"] and manifest["created"].endswith("Z")
    assert manifest["cut"] == [] and manifest["errors"] == []

    version = json.loads(found["version.json"])
    assert version["model"]["source"] == "model store" and version["schema"].startswith("0004")
    health = json.loads(found["health.json"])
    assert {c["check"] for c in health["checks"]} >= {"config", "database", "model", "keys"}
    counters = json.loads(found["counters.json"])
    assert counters["totals"] == {
        "frames": 4, "screened": 2, "not_screened": 1, "pending": 1, "alarms": 1,
        "decisions_search": 1, "decisions_clear": 1,
    }  # fmt: skip
    assert json.loads(found["audit/verification.json"])["ok"] is True
    (entry,) = [json.loads(line) for line in found["audit/entries.jsonl"].splitlines()]
    assert entry["action"] == "upgrade-started" and entry["message"] == "password=***"
    run = json.loads(found["test-runs/t-20261120-100000-abcdef/run.json"])
    assert run["passed"] is True and run["report"]["gallery"] == [{"image": "data:image/removed"}]
    report = found["test-runs/t-20261120-100000-abcdef/report.html"].decode()
    assert report.startswith("<html><img src='data:image/removed'>")
    assert json.loads(found["test-runs/t-20261120-100000-abcdef/report.json"])["suite"]
    assert {n for n in found if n.startswith("logs/")} == {"logs/edge.log", "logs/edge.log.1"}
    assert json.loads(found["logs/edge.log"].splitlines()[0])["frame"] == "f-1"
    older = json.loads(found["logs/edge.log.1"])  # a JSON line stays JSON, scrubbed
    assert older == {"ts": "2026-11-27T09:00:00.000Z", "msg": "older", "password": "***"}
    assert found["keys/vendor.pub"] == (data / "keys" / "vendor.pub").read_bytes()
    assert any("misnamed.pub" in m for m in manifest["missing"])

    effective = parse_config(found["config.toml"].decode())  # valid TOML, a valid config
    assert effective.store.data_dir == data
    assert str(effective.sources[0].path) == "/srv/in-token=***"  # type: ignore[union-attr]


def test_no_secrets_no_images_no_users_db(data: Path, tmp_path: Path) -> None:
    _, found = bundle(data, tmp_path / "usb", config_path=config_file(tmp_path, data))
    secret_key_line = (data / "keys" / "vendor.key").read_text().splitlines()[1]
    misnamed_line = (data / "keys" / "misnamed.pub").read_text().splitlines()[1]
    everything = b"".join(found.values())
    for planted in (PASSWORD, TOKEN, secret_key_line, misnamed_line, "/9j/4AAQSkZJRgABAQ"):
        assert planted.encode() not in everything, planted
    assert PNG_MAGIC not in everything
    assert not any(n.endswith((".png", ".tiff", ".jpg", ".db", ".key")) for n in found)
    assert not any("users" in n or "images/" in n for n in found)


def test_an_invalid_config_is_carried_redacted_with_its_error(data: Path, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(f'[server]\nport = 99999\napi_key = "{TOKEN}"\npassword="{PASSWORD}"\n')
    _, found = bundle(data, tmp_path / "usb", config_path=config)
    text = found["config.toml"].decode()
    assert TOKEN not in text and PASSWORD not in text
    assert 'api_key = "***"' in text and "port = 99999" in text
    assert "server.port" in found["config-error.txt"].decode()
    manifest = json.loads(found["manifest.json"])
    assert any(m.startswith("config: ") for m in manifest["missing"])


def test_the_size_cap_cuts_the_bulkiest_pieces_and_says_so(data: Path, tmp_path: Path) -> None:
    big = "".join(os.urandom(1000).hex() + "\n" for _ in range(300))  # incompressible
    (data / "logs" / "edge.log.2").write_text(big)
    cap = 120_000
    path, found = bundle(data, tmp_path / "usb", max_bytes=cap)
    assert path.stat().st_size <= cap
    manifest = json.loads(found["manifest.json"])
    assert "logs/edge.log.2" not in found
    assert any(c.startswith("logs/edge.log.2") for c in manifest["cut"])
    assert {"version.json", "health.json", "config.toml", "counters.json"} <= set(found)


def test_the_log_budget_keeps_the_newest_lines(data: Path, tmp_path: Path) -> None:
    log = data / "logs" / "edge.log"
    log.write_text("".join(f'{{"msg": "line {i:05d}"}}\n' for i in range(5000)))
    _, found = bundle(data, tmp_path / "usb", max_log_bytes=2000)
    kept = found["logs/edge.log"].decode().splitlines()
    assert kept[-1] == '{"msg": "line 04999"}' and len(kept) < 120
    manifest = json.loads(found["manifest.json"])
    assert any("logs/edge.log: only its last" in c for c in manifest["cut"])
    assert any("logs/edge.log.1: over the 2000-byte log budget" in c for c in manifest["cut"])


def test_the_journal_is_read_capped_and_redacted(data: Path, tmp_path: Path) -> None:
    program = tmp_path / "journalctl"
    lines = [json.dumps({"MESSAGE": f"login password={PASSWORD}", "n": i}) for i in range(3)]
    program.write_text(
        "#!/bin/sh\n"
        'echo "$@" > "$(dirname "$0")/args"\n' + "".join(f"echo '{line}'\n" for line in lines)
    )
    program.chmod(0o755)
    out = tmp_path / "usb"
    out.mkdir()
    written = write_support_bundle(
        BundleOptions(out_dir=out, data_dir=data, factory_dir=DEFAULT_MODEL_DIR,
                      journalctl=str(program), since_days=3)
    )  # fmt: skip
    found = members(written.path)
    journal = [json.loads(line) for line in found["journal.jsonl"].splitlines()]
    assert [j["n"] for j in journal] == [0, 1, 2]
    assert all(j["MESSAGE"] == "login password=***" for j in journal)
    args = (tmp_path / "args").read_text()
    assert "--output=json" in args and "--since=-3d" in args and "--unit edge.service" in args
    capped = write_support_bundle(
        BundleOptions(out_dir=out, data_dir=data, factory_dir=DEFAULT_MODEL_DIR,
                      journalctl=str(program), max_journal_bytes=2 * len(lines[0]) + 10)
    )  # fmt: skip
    kept = [json.loads(line)["n"] for line in members(capped.path)["journal.jsonl"].splitlines()]
    assert kept == [0, 1]  # journalctl --reverse: the newest come first, and are kept
    assert any(c.startswith("journal.jsonl: the newest") for c in capped.cut)
    absent = write_support_bundle(
        BundleOptions(out_dir=out, data_dir=data, factory_dir=DEFAULT_MODEL_DIR,
                      journalctl=str(tmp_path / "absent"))
    )  # fmt: skip
    assert "journal.jsonl" not in members(absent.path)
    assert any(m.startswith("journal: ") and "cannot run" in m for m in absent.missing)
    assert len(list(out.iterdir())) == 3  # one second or not, none overwritten


@pytest.mark.parametrize("where", ["missing", "under-a-file", "full"])
def test_a_target_that_cannot_take_it_fails_and_leaves_nothing(
    data: Path, tmp_path: Path, where: str
) -> None:
    usb = tmp_path / "usb"
    usb.mkdir()
    (usb / "notes.txt").write_text("the technician's file\n")
    options: dict[str, Any] = {}
    if where == "missing":
        out = usb / "no-such-dir"
    elif where == "under-a-file":
        out = usb / "notes.txt" / "sub"
    else:
        out, options = usb, {"capacity_bytes": 3000}  # as if the stick had 3 kB free
    with pytest.raises(SupportBundleError) as err:
        write_support_bundle(
            BundleOptions(out_dir=out, data_dir=data, factory_dir=DEFAULT_MODEL_DIR,
                          journalctl=None, **options)
        )  # fmt: skip
    assert "\n" not in err.value.message and str(out) in err.value.message
    assert [p.name for p in usb.iterdir()] == ["notes.txt"]


def edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "INVOCATION_ID")},
    )


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def test_the_command_beside_a_running_service(data: Path, tmp_path: Path) -> None:
    usb = tmp_path / "usb"
    usb.mkdir()
    with Store(data):  # holds the image log's writer lock, as `edge serve` does
        before = _tree(data)
        proc = edge("support-bundle", "--out", str(usb), "--data", str(data), "--json")
        assert proc.returncode == 0, proc.stderr
        assert _tree(data) == before  # nothing written in the data directory
    doc = json.loads(proc.stdout)
    assert Path(doc["path"]).parent == usb and doc["bytes"] == Path(doc["path"]).stat().st_size
    found = members(Path(doc["path"]))
    assert json.loads(found["counters.json"])["totals"]["frames"] == 4
    plain = edge("support-bundle", "--out", str(usb), "--data", str(data), "--since", "1")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.startswith(f"wrote {usb}/edge-support-") and "bytes)" in plain.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "/nonexistent/usb"], "--out /nonexistent/usb: does not exist"),
        (["--out", ".", "--since", "0"], "--since: expected 1..3650 days, got 0"),
        (["--out", ".", "--max-mb", "0"], "--max-mb: expected 1..65536, got 0"),
    ],
)
def test_bad_usage_exits_2_with_one_line(data: Path, args: list[str], message: str) -> None:
    proc = edge("support-bundle", "--data", str(data), *args)
    assert proc.returncode == 2
    assert proc.stderr == f"edge: {message}\n"


@pytest.mark.parametrize(
    "doc",
    [
        {"a": 1, "b": {"c": [1.5, "x\ny"], "d": {"e": True}}, "f": [{"g": 1}, {"g": 2}]},
        {"quoted key": "v", "empty": {}, "list": [], "none": None, "t": {"u": None}},
    ],
)
def test_to_toml_round_trips(doc: dict[str, Any]) -> None:
    def without_none(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: without_none(v) for k, v in value.items() if v is not None}
        return value

    assert tomllib.loads(to_toml(doc)) == without_none(doc)


def test_bundle_members_are_read_back_with_the_standard_tools(data: Path, tmp_path: Path) -> None:
    path, found = bundle(data, tmp_path / "usb")
    listing = subprocess.run(["tar", "tzf", str(path)], capture_output=True, text=True, check=True)
    assert sorted(listing.stdout.split()) == sorted(found)
