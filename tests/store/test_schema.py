"""Named migrations: each applied once, recorded, and the schema they build."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlite_utils import Database

from edge.store import Store
from edge.store.schema import MIGRATIONS, Migration, apply_migrations


def test_opening_twice_applies_each_migration_once(
    tmp_path: Path, open_store: Callable[..., Store]
) -> None:
    open_store().close()
    open_store().close()
    db = Database(tmp_path / "data" / "edge.db")
    names = [row["name"] for row in db.query("SELECT name FROM migrations ORDER BY name")]
    assert names == [m.name for m in MIGRATIONS]
    assert {"frames", "results", "decisions", "exports", "events", "id_counters"} <= set(
        db.table_names()
    )
    db.close()


def test_a_new_migration_runs_once_on_an_existing_database(tmp_path: Path) -> None:
    calls: list[str] = []

    def add_note(db: Database) -> None:
        calls.append("ran")
        db.execute("ALTER TABLE frames ADD COLUMN note TEXT")

    db = Database(tmp_path / "x.db")
    assert apply_migrations(db) == [m.name for m in MIGRATIONS]
    later = (*MIGRATIONS, Migration("0003_frame_note", add_note))
    assert apply_migrations(db, later) == ["0003_frame_note"]
    assert apply_migrations(db, later) == []
    assert calls == ["ran"]
    assert "note" in db.table("frames").columns_dict
    db.close()


def test_a_failing_migration_leaves_nothing_behind(tmp_path: Path) -> None:
    def half_then_fail(db: Database) -> None:
        db.execute("CREATE TABLE half (x)")
        raise RuntimeError("boom")

    db = Database(tmp_path / "x.db")
    apply_migrations(db)
    with pytest.raises(RuntimeError, match="boom"):
        apply_migrations(db, (*MIGRATIONS, Migration("0003_broken", half_then_fail)))
    assert "half" not in db.table_names()
    assert "0003_broken" not in {row["name"] for row in db.table("migrations").rows}
    db.close()


def test_schema_columns_and_indexes(tmp_path: Path, open_store: Callable[..., Store]) -> None:
    open_store().close()
    db = Database(tmp_path / "data" / "edge.db")
    frames = db.table("frames").columns_dict
    for column in (
        "id", "received", "source", "scanner_frame_id", "bag", "lane", "view", "width",
        "height", "channels", "image_paths", "bytes", "sha256", "pinned", "metadata",
        "missing_image",
    ):  # fmt: skip
        assert column in frames
    results = db.table("results").columns_dict
    for column in ("frame_id", "state", "alarm", "reason", "model_name", "model_version",
                   "model_sha256", "detections", "timings", "screened_at"):  # fmt: skip
        assert column in results
    assert [fk.other_table for fk in db.table("results").foreign_keys] == ["frames"]
    indexed = {tuple(index.columns) for index in db.table("frames").indexes}
    assert {("received",), ("alarm", "received")} <= indexed
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_writer_connection_settings(open_store: Callable[..., Store]) -> None:
    store = open_store()
    settings = store.submit_write(
        lambda db: (
            db.execute("PRAGMA synchronous").fetchone()[0],
            db.execute("PRAGMA foreign_keys").fetchone()[0],
        )
    ).result()
    assert settings == (2, 1)  # FULL, on


def test_foreign_keys_are_enforced(tmp_path: Path, open_store: Callable[..., Store]) -> None:
    store = open_store()

    def orphan_result(db: Database) -> None:
        db.execute(
            "INSERT INTO results (frame_id, state, screened_at) VALUES ('f-nope', 'SCREENED', 'x')"
        )

    with pytest.raises(sqlite3.IntegrityError):
        store.submit_write(orphan_result).result()
