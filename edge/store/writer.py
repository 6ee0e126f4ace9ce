"""SQLite connections: the one writer thread every write goes through, and the read pool.

The writer owns the only writing connection (WAL, `synchronous=FULL`, foreign keys on).
Callers hand it a job, a function of the `Database`, and get a `Future` back; jobs run
one at a time in submission order, so a job may rely on nothing changing underneath it.
Readers borrow their own connections: in WAL mode they never wait for the writer.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database

from edge.store.errors import StoreClosedError

logger = logging.getLogger(__name__)

T = TypeVar("T")
Job = Callable[[Database], Any]

BUSY_TIMEOUT_S = 30.0
QUEUE_DEPTH = 64


def connect(path: Path, *, writer: bool) -> sqlite3.Connection:
    """A connection with the store's settings; readers are query-only."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
    conn.execute("PRAGMA foreign_keys = ON")
    if writer:
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: the WAL is fsync'd at every commit, so a committed row survives power loss.
        conn.execute("PRAGMA synchronous = FULL")
    else:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA query_only = ON")
    return conn


class WriterThread:
    """Runs write jobs one at a time on a dedicated thread with the only writing connection.

    `setup` runs first on the new connection (pragmas, checks, migrations); if it raises,
    the constructor raises the same error and no thread is left running.
    """

    def __init__(
        self,
        path: Path,
        setup: Callable[[Database], None] | None = None,
        name: str = "edge-store-writer",
    ) -> None:
        self._path = path
        self._jobs: queue.Queue[tuple[Job, Future[Any]] | None] = queue.Queue(QUEUE_DEPTH)
        self._closed = threading.Event()
        self._close_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        started: Future[None] = Future()
        self._thread.start()
        self._jobs.put((lambda db: setup(db) if setup else None, started))
        try:
            started.result()
        except BaseException:
            self.close()
            raise

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def submit(self, job: Callable[[Database], T]) -> Future[T]:
        """Queue a job; blocks while QUEUE_DEPTH jobs wait (back-pressure, not drops)."""
        future: Future[T] = Future()
        if self._closed.is_set():
            raise StoreClosedError("the image log is closed")
        self._jobs.put((job, future))
        return future

    def call(self, job: Callable[[Database], T]) -> T:
        """Run a job on the writer and wait for its result (or exception)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("WriterThread.call from the writer thread would deadlock")
        return self.submit(job).result()

    def close(self) -> None:
        """Finish queued jobs, close the connection and join the thread."""
        with self._close_lock:
            if self._closed.is_set():
                return
            self._closed.set()
        self._jobs.put(None)
        self._thread.join()

    def _run(self) -> None:
        db: Database | None = None
        try:
            db = Database(connect(self._path, writer=True), execute_plugins=False)
        except BaseException as exc:
            first = self._jobs.get()
            if first is not None:
                first[1].set_exception(exc)
            self._closed.set()
            self._fail_pending(exc)
            return
        try:
            while True:
                item = self._jobs.get()
                if item is None:
                    break
                job, future = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(job(db))
                except BaseException as exc:  # handed to the caller, never kills the writer
                    future.set_exception(exc)
        finally:
            db.close()

    def _fail_pending(self, exc: BaseException) -> None:
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item[1].set_exception(StoreClosedError(f"the image log could not start: {exc}"))


class ReadPool:
    """Query-only connections lent to one thread at a time."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise StoreClosedError("the image log is closed")
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = connect(self._path, writer=False)
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.rollback()
            with self._lock:
                if self._closed:
                    conn.close()
                else:
                    self._idle.append(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
