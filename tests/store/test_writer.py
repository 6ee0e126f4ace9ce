"""The writer thread: every job on one thread, in order; errors go to the caller."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlite_utils import Database

from edge.store.errors import StoreClosedError
from edge.store.writer import ReadPool, WriterThread


def setup_table(db: Database) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")


def test_jobs_run_in_order_on_one_thread(tmp_path: Path) -> None:
    writer = WriterThread(tmp_path / "w.db", setup=setup_table)
    seen: list[tuple[int, str]] = []

    def job(i: int) -> object:
        def run(db: Database) -> int:
            seen.append((i, threading.current_thread().name))
            db.execute("INSERT INTO t VALUES (?)", [i])
            return i

        return run

    callers = [
        threading.Thread(target=lambda k=k: [writer.call(job(k * 100 + j)) for j in range(20)])
        for k in range(4)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    writer.close()
    assert {name for _, name in seen} == {"edge-store-writer"}
    assert len(seen) == 80
    for k in range(4):  # each caller's own jobs stay in its order
        mine = [i for i, _ in seen if i // 100 == k]
        assert mine == sorted(mine)


def test_an_error_reaches_the_caller_and_the_writer_goes_on(tmp_path: Path) -> None:
    writer = WriterThread(tmp_path / "w.db", setup=setup_table)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        writer.call(lambda db: db.execute("INSERT INTO nope VALUES (1)"))
    assert writer.call(lambda db: db.execute("SELECT 41 + 1").fetchone()[0]) == 42
    writer.close()


def test_close_finishes_queued_jobs_then_refuses_new_ones(tmp_path: Path) -> None:
    writer = WriterThread(tmp_path / "w.db", setup=setup_table)
    futures = [
        writer.submit(lambda db, i=i: db.execute("INSERT INTO t VALUES (?)", [i]))
        for i in range(10)
    ]
    writer.close()
    assert all(f.done() and f.exception() is None for f in futures)
    assert not writer.thread.is_alive()
    with pytest.raises(StoreClosedError):
        writer.submit(lambda db: None)
    db = Database(tmp_path / "w.db")
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 10
    db.close()


def test_a_failing_setup_raises_and_stops_the_thread(tmp_path: Path) -> None:
    def bad(db: Database) -> None:
        raise ValueError("setup failed")

    before = threading.active_count()
    with pytest.raises(ValueError, match="setup failed"):
        WriterThread(tmp_path / "w.db", setup=bad)
    assert threading.active_count() == before


def test_call_from_the_writer_thread_is_refused(tmp_path: Path) -> None:
    writer = WriterThread(tmp_path / "w.db")
    with pytest.raises(RuntimeError, match="deadlock"):
        writer.call(lambda db: writer.call(lambda db2: None))
    writer.close()


def test_read_pool_is_query_only_and_reuses_connections(tmp_path: Path) -> None:
    writer = WriterThread(tmp_path / "w.db", setup=setup_table)
    pool = ReadPool(tmp_path / "w.db")
    with pool.connection() as first, pytest.raises(sqlite3.OperationalError, match="readonly"):
        first.execute("INSERT INTO t VALUES (1)")
    with pool.connection() as second:
        assert second is first
    pool.close()
    with pytest.raises(StoreClosedError), pool.connection():
        pass
    writer.close()
