"""The sd_notify client against a real datagram socket, as systemd listens: READY, STATUS,
watchdog pings that stop while a liveness source stalls, and `edge serve` under it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge.frames import Frame, Result
from edge.pipeline import Intake, Pipeline
from edge.systemd import Heartbeat, Notifier, Watchdog, watchdog_interval_s

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound AF_UNIX datagram socket and the $NOTIFY_SOCKET naming it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        name = str(tmp_path / "notify.sock")
        sock.bind(name)
    else:
        name = f"@edge-test-{uuid.uuid4().hex}"
        sock.bind(b"\0" + name[1:].encode())
    sock.settimeout(5.0)
    with sock:
        yield sock, name


def receive(sock: socket.socket, seconds: float) -> list[str]:
    """Every message that arrives within `seconds`."""
    messages: list[str] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            messages.append(sock.recv(4096).decode())
        except TimeoutError:
            break
    return messages


def test_ready_and_status_arrive_as_one_datagram_each(listener: tuple[socket.socket, str]) -> None:
    sock, name = listener
    notifier = Notifier.from_env({"NOTIFY_SOCKET": name})
    assert notifier.ready("screening with m@1") and notifier.status("loading the model")
    assert sock.recv(4096) == b"READY=1\nSTATUS=screening with m@1"
    assert sock.recv(4096) == b"STATUS=loading the model"


def test_outside_systemd_nothing_is_sent() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled and not notifier.ready("x")


def test_a_socket_nobody_listens_on_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    assert not Notifier(str(tmp_path / "gone.sock")).send("WATCHDOG=1")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_the_ping_interval_is_half_the_watchdog_timeout(
    env: dict[str, str], expected: float | None
) -> None:
    assert watchdog_interval_s(env) == expected


def test_pings_stop_while_a_liveness_source_stalls_and_resume_after(
    listener: tuple[socket.socket, str],
) -> None:
    sock, name = listener
    beat = Heartbeat()
    watchdog = Watchdog(Notifier(name), 0.05, [lambda: beat.fresh(0.3)])
    keep_beating = threading.Event()
    keep_beating.set()

    def main_loop() -> None:
        while keep_beating.is_set():
            beat.beat()
            time.sleep(0.02)

    loop = threading.Thread(target=main_loop)
    loop.start()
    watchdog.start()
    try:
        assert receive(sock, 0.5).count("WATCHDOG=1") >= 4
        keep_beating.clear()  # the main loop hangs
        loop.join()
        until_stale = receive(sock, 0.45)  # pings go on until the beat is 0.3 s old
        assert until_stale[-1] == "STATUS=stalled: watchdog pings stopped"
        assert receive(sock, 0.5) == []  # then silence, while the loop hangs
        beat.beat()
        assert "WATCHDOG=1" in receive(sock, 0.25)
    finally:
        keep_beating.clear()
        watchdog.stop()


class BlockingScreener:
    """Screens nothing until released: a detector hung inside a frame."""

    model_id, model_sha256, class_names = "hung@1", "0" * 64, ["gun"]

    def __init__(self) -> None:
        self.release = threading.Event()

    def screen(self, frame: Frame) -> Result:
        self.release.wait(10.0)
        return Result.not_screened("released", model=self.model_id)

    def close(self) -> None:
        self.release.set()


def test_a_pipeline_stuck_on_a_frame_is_not_making_progress() -> None:
    screener = BlockingScreener()
    pipeline = Pipeline(screener)
    try:
        assert pipeline.making_progress(0.2)  # idle is alive
        frame = Frame(high=np.zeros((32, 32), np.uint16), low=np.zeros((32, 32), np.uint16))
        ticket = pipeline.ingest(frame, Intake(source="test"))
        time.sleep(0.4)
        assert not pipeline.making_progress(0.2)
        assert pipeline.making_progress(10.0)  # within a generous limit it still counts
        screener.release.set()
        ticket.screened.result(timeout=10)
        assert pipeline.making_progress(0.2)
    finally:
        screener.release.set()
        pipeline.close()
    assert not pipeline.making_progress(10.0)  # the worker has ended


@pytest.mark.slow
def test_serve_under_systemd_says_ready_pings_and_says_stopping(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    env = {k: v for k, v in os.environ.items() if k not in ("EDGE_MODEL", "EDGE_DATA")}
    env |= {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "400000"}
    command = [sys.executable, "-m", "edge.cli", "serve", "--no-demo", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--data", str(tmp_path / "data")],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        messages: list[str] = []
        deadline = time.monotonic() + 120
        while not any(m.startswith("READY=1") for m in messages):
            assert time.monotonic() < deadline and process.poll() is None, messages
            messages += receive(sock, 1.0)
        assert "STATUS=loading the model" in messages
        ready = next(m for m in messages if m.startswith("READY=1"))
        assert "screening with demo-xray-det@1.0.0" in ready
        assert receive(sock, 1.0).count("WATCHDOG=1") >= 3
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert any(m.startswith("STOPPING=1") for m in receive(sock, 0.5))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        assert process.stderr is not None
        process.stderr.close()
        sock.close()


def test_the_unit_runs_the_service_as_notify_with_the_watchdog_and_sandbox() -> None:
    import configparser

    unit = configparser.ConfigParser(interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(REPO / "packaging" / "systemd" / "edge.service")
    service = unit["Service"]
    expected = {
        "Type": "notify",
        "WatchdogSec": "30",
        "Restart": "on-failure",
        "ProtectSystem": "strict",
        "ReadWritePaths": "/var/lib/edge",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "User": "edge",
        "IPAddressDeny": "any",
        "IPAddressAllow": "localhost",
    }
    assert {key: service.get(key) for key in expected} == expected
    assert service["ExecStart"].split()[1:3] == ["serve", "--config"]
