"""The service killed with SIGKILL at random moments while a scanner streams: after each
restart every frame that was ACKed `stored` is there with its image, and SQLite is intact."""

from __future__ import annotations

import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from edge.sim.scanner import EmulatorReport, PtyPair, ScannerEmulator
from edge.store import Store

ROUNDS = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_service(data: Path, port_path: str, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The real service on the scanner's pty; returns once its serial link is connected."""
    http_port = free_port()
    command = [
        sys.executable, "-m", "edge.cli", "serve", "--no-demo", "--port", str(http_port),
        "--data", str(data), "--serial", port_path,
    ]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, f"service exited:\n{log.read_text()}"
        try:
            health = httpx.get(f"http://127.0.0.1:{http_port}/api/health", timeout=2).json()
            if health["model"] and health["sources"]:
                return process, http_port
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"service not ready in 90 s:\n{log.read_text()}")


@pytest.mark.slow
def test_acked_frames_survive_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = tmp_path / "service.log"
    rng = random.Random(7)
    acked: dict[str, str] = {}
    with PtyPair() as pty:
        for round_ in range(ROUNDS):
            service, _ = start_service(data, pty.paths[0], log)
            reports: list[EmulatorReport] = []
            emulator = ScannerEmulator(
                pty.paths[1], rate_hz=0, bags=40, seed=1000 * round_, downsample=4, timeout_s=2.0,
                expect_results=False,
            )  # fmt: skip
            sender = threading.Thread(target=lambda e=emulator, r=reports: r.append(e.run()))
            sender.start()
            # Kill once the service is up and frames flow, at a random moment.
            time.sleep(rng.uniform(0.3, 2.5))
            service.send_signal(signal.SIGKILL)
            service.wait(10)
            emulator.stop()
            sender.join(30)
            assert reports, "the emulator did not finish"
            acked.update({f: str(i) for f, i in reports[0].stored_ids.items()})
    assert len(acked) >= ROUNDS, f"too few frames were ACKed to mean anything:\n{log.read_text()}"

    with Store(data) as store:  # start-up: quick_check and reconciliation
        for scanner_frame, frame_id in acked.items():
            stored = store.get_frame(frame_id)
            assert stored.scanner_frame_id == scanner_frame
            image = store.load_image(frame_id)  # the pixels match the stored SHA-256
            assert image.high is not None
        assert store.health()["missing_images"] == 0
    with sqlite3.connect(data / "edge.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    leftovers = [p for p in (data / "images").rglob("*") if p.is_file() and ".tmp" in p.name]
    assert leftovers == []
