"""Crash safety: a writer process killed with SIGKILL at random moments loses nothing it
reported stored, and leaves nothing half-written visible after the next start-up.

A driver process imports the store once and forks one writer per round (fork from a
process with no threads of its own is safe, and saves a Python start-up per round). The
writer adds frames in a loop and prints each id to a pipe only after add_frame returned;
the test kills it with SIGKILL at a random moment, then reopens the store itself.
SIGKILL tests process crashes: the page cache survives it, so this does not show the
fsyncs at work (test_store.py checks their order in the system calls).
"""

from __future__ import annotations

import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edge.frames import Frame
from edge.store import Store
from edge.store.images import scan_images

from .conftest import dual_frame, rgb_frame

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 24
SHAPE = (48, 64)

DRIVER = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
from edge.store import Store
from store.test_crash_safety import make_frame

def say(line):
    os.write(1, (line + "\n").encode())  # one write per line: whole lines even if killed

def write_until_killed(data_dir, round_):
    store = Store(data_dir)
    say("ready")
    i = 0
    while True:
        stored = store.add_frame(make_frame(round_, i), scanner_frame_id=f"{round_}-{i}")
        say(f"stored {stored.id} {round_} {i}")
        i += 1

for command in sys.stdin:
    _, round_, data_dir = command.split()
    pid = os.fork()
    if pid == 0:
        try:
            write_until_killed(data_dir, int(round_))
        finally:
            os._exit(1)
    say(f"pid {pid}")
    os.waitpid(pid, 0)
    say("done")
"""


def make_frame(round_: int, i: int) -> Frame:
    """The frame the writer adds as number i of a round; every fourth one pseudo-colour."""
    seed = round_ * 10_000 + i
    return rgb_frame(seed, SHAPE) if i % 4 == 3 else dual_frame(seed, SHAPE)


class Lines:
    """Lines from a pipe, with a deadline, so a stuck driver fails the test, not hangs it."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""

    def next(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._fd], [], [], max(left, 0))
            if not ready:
                raise AssertionError("the crash driver stopped answering")
            chunk = os.read(self._fd, 65536)
            if not chunk:
                raise AssertionError("the crash driver exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()


def check_after_restart(data: Path, reported: dict[str, tuple[int, int]]) -> int:
    """Everything the writers reported is there, whole; nothing half-written is visible.

    Returns how many crash leftovers (orphan or temp files) start-up removed.
    """
    with Store(data) as store:
        report = store.reconcile_report
        assert report is not None and report.missing_flagged == []
        conn = sqlite3.connect(data / "edge.db")
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            conn.close()
        logged = {f.id: f for f in store.list_frames(limit=10_000)}
        assert set(reported) <= set(logged), sorted(set(reported) - set(logged))[:5]
        for frame_id, stored in logged.items():
            # Also the frames committed just before a kill, never reported: whole or absent.
            round_, i = (int(part) for part in (stored.scanner_frame_id or "").split("-"))
            if frame_id in reported:
                assert reported[frame_id] == (round_, i)
            expected, got = make_frame(round_, i), store.load_image(frame_id)
            for channel in ("high", "low", "rgb"):
                want = getattr(expected, channel)
                assert want is None or np.array_equal(getattr(got, channel), want)
        scan = scan_images(data)
        assert scan.temp_files == []
        assert set(scan.files) == {p for f in logged.values() for p in f.image_paths}
        assert store.health()["missing_images"] == 0
        return len(report.orphans_removed) + len(report.temp_files_removed)


def test_sigkill_at_random_moments_loses_nothing_reported(tmp_path: Path) -> None:
    data = tmp_path / "data"
    chooser = random.Random(20261127)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    with (tmp_path / "driver.err").open("wb") as errors:
        driver = subprocess.Popen(
            [sys.executable, "-c", DRIVER, str(REPO / "tests")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, cwd=REPO, env=env,
        )  # fmt: skip
    assert driver.stdin is not None and driver.stdout is not None
    lines = Lines(driver.stdout.fileno())
    reported: dict[str, tuple[int, int]] = {}
    leftovers_removed = 0
    try:
        for round_ in range(ROUNDS):
            driver.stdin.write(f"go {round_} {data}\n".encode())
            driver.stdin.flush()
            first = lines.next(timeout=60.0)  # the first round waits for the imports
            assert first.startswith("pid "), first
            pid = int(first.split()[1])
            if round_ % 4 == 1:  # some kills land in start-up: migrations, reconciliation
                time.sleep(chooser.uniform(0.0, 0.03))
            else:
                ready = lines.next()
                assert ready == "ready", (ready, (tmp_path / "driver.err").read_text()[-2000:])
                time.sleep(chooser.uniform(0.0, 0.25))
            os.kill(pid, signal.SIGKILL)
            while (line := lines.next()) != "done":
                if line.startswith("stored "):
                    _, frame_id, r, i = line.split()
                    reported[frame_id] = (int(r), int(i))
                else:
                    assert line == "ready", line
            leftovers_removed += check_after_restart(data, reported)
    finally:
        driver.stdin.close()
        driver.wait(timeout=30)
        driver.stdout.close()
    assert len(reported) >= ROUNDS  # the writers got real work done between kills
    assert leftovers_removed >= 1  # and some kills did land in the middle of a write
