"""What this appliance runs: software version, active model, database schema (`edge --version`).

Read-only throughout: the model store's pointer and install.json are read as files and the
database through a `mode=ro` SQLite connection, so it works beside a running service and
never takes the image log's lock.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from edge.detector.manifest import load_model_dir
from edge.errors import EdgeError
from edge.store.store import DB_FILENAME
from edge.upgrade.model_store import ModelStore

PACKAGE = "edge-xray"


def package_version() -> str:
    """The installed package's version (its metadata), or "unknown" when not installed."""
    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return "unknown"


def open_read_only(db_path: Path) -> sqlite3.Connection:
    """A query-only connection that creates nothing and takes no lock a writer would wait on."""
    conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
    conn.execute("PRAGMA query_only = 1")
    return conn


def schema_version(data_dir: Path) -> str:
    """The latest migration applied to DATA/edge.db, "no database", or why it is unreadable."""
    db_path = Path(data_dir) / DB_FILENAME
    if not db_path.is_file():
        return "no database"
    try:
        with closing(open_read_only(db_path)) as conn:
            row = conn.execute("SELECT max(name) FROM migrations").fetchone()
    except sqlite3.Error as exc:
        return f"unreadable ({exc})"
    return str(row[0]) if row and row[0] else "no migrations applied"


@dataclass(frozen=True)
class ModelInfo:
    """The model the service would screen with, and where it comes from."""

    id: str  # name@version
    sha256: str  # of model.onnx
    source: str  # "model store" or "shipped default"
    path: str

    def describe(self) -> str:
        return f"{self.id} (sha256 {self.sha256}, {self.source}: {self.path})"


def active_model(data_dir: Path, factory_dir: Path) -> ModelInfo:
    """The data directory's active model, else the shipped default; EdgeError when the one
    that should be used cannot be read."""
    installed = ModelStore(data_dir).active()
    if installed is not None:
        return ModelInfo(
            installed.model_id, installed.model_sha256, "model store", str(installed.path)
        )
    spec = load_model_dir(factory_dir)
    return ModelInfo(spec.manifest.model_id, spec.model_sha256, "shipped default", str(factory_dir))


def version_report(data_dir: Path, factory_dir: Path) -> dict[str, Any]:
    """{"version", "model" (or null), "model_error" (or null), "schema", "data_dir"}."""
    try:
        model: dict[str, Any] | None = asdict(active_model(data_dir, factory_dir))
        model_error = None
    except EdgeError as exc:
        model, model_error = None, exc.message
    return {
        "version": package_version(),
        "model": model,
        "model_error": model_error,
        "schema": schema_version(data_dir),
        "data_dir": str(data_dir),
    }


def format_version_report(report: dict[str, Any]) -> str:
    model = report["model"]
    model_line = ModelInfo(**model).describe() if model else f"unavailable: {report['model_error']}"
    return (
        f"edge {report['version']}\n"
        f"model:  {model_line}\n"
        f"schema: {report['schema']} ({report['data_dir']}/{DB_FILENAME})\n"
    )
