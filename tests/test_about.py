"""`edge --version`: software, active model and schema, read without taking the data directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge.about import package_version, schema_version, version_report
from edge.cli import _asks_version
from edge.config import DEFAULT_MODEL_DIR
from edge.detector.manifest import load_model_dir
from edge.store import Store
from edge.store.schema import MIGRATIONS
from edge.upgrade.model_store import ModelStore


def edge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_a_data_directory_without_model_store_or_database_reports_the_shipped_model(
    tmp_path: Path,
) -> None:
    data = tmp_path / "never-started"
    report = version_report(data, DEFAULT_MODEL_DIR)
    shipped = load_model_dir(DEFAULT_MODEL_DIR)
    assert report["version"] == package_version() != "unknown"
    assert report["model"]["source"] == "shipped default"
    assert report["model"]["id"] == shipped.manifest.model_id
    assert report["model"]["sha256"] == shipped.model_sha256
    assert report["schema"] == "no database"
    assert not data.exists()  # read-only: nothing created


def test_a_broken_shipped_model_is_reported_not_raised(tmp_path: Path) -> None:
    report = version_report(tmp_path, tmp_path / "no-model")
    assert report["model"] is None and "manifest.json: not found" in report["model_error"]


def test_while_the_service_holds_the_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    installed = ModelStore(data).ensure_factory(DEFAULT_MODEL_DIR)
    assert installed is not None
    with Store(data):  # holds the data directory's writer lock, as `edge serve` does
        proc = edge("--version", "--json", "--data", str(data))
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["model"]["source"] == "model store"
        assert doc["model"]["id"] == installed.model_id
        assert doc["model"]["sha256"] == installed.model_sha256
        assert doc["schema"] == MIGRATIONS[-1].name == schema_version(data)
        plain = edge("--version", env={"EDGE_DATA": str(data), "PATH": ""})
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert lines[0] == f"edge {package_version()}"
    assert installed.model_id in lines[1] and installed.model_sha256 in lines[1]
    assert "model store" in lines[1] and MIGRATIONS[-1].name in lines[2]


def test_an_unreadable_database_is_said_so(tmp_path: Path) -> None:
    (tmp_path / "edge.db").write_bytes(b"not a database, only text" * 100)
    assert schema_version(tmp_path).startswith("unreadable (")


@pytest.mark.parametrize(
    ("argv", "asks"),
    [
        (["--version"], True),
        (["--data", "/var/lib/edge", "--version", "--json"], True),
        (["--config", "--version"], False),  # "--version" is the config file's name here
        (["bundle", "build", "model", "--version", "0.2.0"], False),  # the verb's own option
        (["--version", "--help"], False),
    ],
)
def test_version_is_the_top_level_option_only(argv: list[str], asks: bool) -> None:
    assert _asks_version(argv) is asks
