"""The scanner emulator against the real appliance link over a pty pair: every bag stored
and answered, every injected fault rejected and resent, the link alive throughout."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest
import serial

from edge.errors import EdgeError
from edge.ingest.frame_assembler import AssembledFrame
from edge.ingest.serial_link import FrameOutcome, ScannerLink
from edge.sim.scanner import (
    FAULTS,
    EmulatorReport,
    PtyPair,
    ScannerEmulator,
    main_simulate_scanner,
)
from edge.sim.scene import simulate_bag


@dataclass
class Appliance:
    """A ScannerLink on one end of a cable, storing frames in a dict and screening each
    on another thread (a RESULT with one fixed detection), as the service does."""

    scanner_port: str
    link: ScannerLink
    frames: dict[str, AssembledFrame] = field(default_factory=dict)
    screened: queue.Queue[str | None] = field(default_factory=queue.Queue)
    result_delay_s: float = 0.0  # a slow detector: each RESULT this long after the last

    def on_frame(self, frame: AssembledFrame) -> FrameOutcome:
        key = f"A{len(self.frames) + 1:04d}"
        self.frames[key] = frame
        self.screened.put(key)
        return FrameOutcome.stored(key)

    def screen_forever(self) -> None:
        while (key := self.screened.get()) is not None:
            time.sleep(self.result_delay_s)
            frame = self.frames[key]
            self.link.send_result(
                {
                    "frame": frame.frame,
                    "bag": frame.bag,
                    "id": key,
                    "alarm": True,
                    "model": "test@1.0",
                    "detections": [{"class": "knife", "score": 0.75, "box": [1, 2, 3, 4]}],
                }
            )


@pytest.fixture
def appliance() -> Iterator[Appliance]:
    with PtyPair() as cable:
        holder: list[Appliance] = []
        link = ScannerLink(cable.paths[1], lambda f: holder[0].on_frame(f), heartbeat_s=0.2)
        app = Appliance(cable.paths[0], link)
        holder.append(app)
        link.start()
        screener = threading.Thread(target=app.screen_forever, daemon=True)
        screener.start()
        assert link.wait_connected(5)
        yield app
        with app.screened.mutex:  # frames still waiting for a (slow) RESULT are dropped
            app.screened.queue.clear()
        app.screened.put(None)
        screener.join(5)
        link.stop()


def _sim_sha256(seed: int, downsample: int) -> str:
    sim = simulate_bag(seed)
    high = np.ascontiguousarray(sim.high[::downsample, ::downsample], "<u2")
    low = np.ascontiguousarray(sim.low[::downsample, ::downsample], "<u2")
    return hashlib.sha256(high.tobytes() + low.tobytes()).hexdigest()


@pytest.mark.parametrize("bags", [20])
def test_every_bag_stored_and_answered(appliance: Appliance, bags: int) -> None:
    emulator = ScannerEmulator(
        appliance.scanner_port,
        rate_hz=0,
        bags=bags,
        seed=100,
        downsample=2,
        heartbeat_s=0.2,
        timeout_s=10,
    )
    report = emulator.run()
    assert report.ok(), report.summary()
    assert (report.sent, report.stored, report.results, report.resent) == (bags, bags, bags, 0)
    assert not report.rejections and not report.errors
    # ACKed ids and RESULTs match what the appliance stored.
    stored = {key: frame.frame for key, frame in appliance.frames.items()}
    assert {v: k for k, v in stored.items()} == report.stored_ids
    for frame_id, result in report.result_payloads.items():
        assert result["id"] == report.stored_ids[frame_id] and result["alarm"] is True
    assert sorted(report.latencies_s) == sorted(report.stored_ids)
    p50, p99 = report.latency_percentile_s(50), report.latency_percentile_s(99)
    assert p50 is not None and p99 is not None and 0 < p50 <= p99
    first = appliance.frames["A0001"]
    assert first.sha256 == _sim_sha256(100, 2)
    counters = appliance.link.status().counters
    assert counters["bad_packets"] == 0 and counters["garbage_bytes"] == 0
    assert counters["heartbeats_received"] >= 1


@pytest.mark.parametrize("drain", [False, True])
def test_stop_with_drain_awaits_every_answer(appliance: Appliance, drain: bool) -> None:
    """A scanner stopped mid-stream: plain stop leaves the last bags' RESULTs unread, stop
    with drain (the end of a shift) returns only once every bag sent is answered."""
    appliance.result_delay_s = 0.5
    emulator = ScannerEmulator(
        appliance.scanner_port, rate_hz=20, bags=1000, seed=300, downsample=8, timeout_s=10
    )

    def stop_after_three_bags() -> None:  # by bags received, not by time: the CPU may be busy
        deadline = time.monotonic() + 60
        while len(appliance.frames) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        emulator.stop(drain=drain)

    stopper = threading.Thread(target=stop_after_three_bags)
    stopper.start()
    report = emulator.run()
    stopper.join()
    assert 3 <= report.sent < 1000
    if drain:
        assert report.ok(), report.summary()
        assert report.results == report.stored == report.sent == report.bags
    else:
        assert report.results < report.sent


EXPECTED_REASON = {
    "flip": "incomplete",
    "truncate": "incomplete",
    "drop_chunk": "incomplete",
    "wrong_hash": "SHA-256 mismatch",
    "oversize_packet": "incomplete",
    "oversize_frame": "frame too large",
    "overlap": "overlaps",
    "out_of_range": "out of range",
    "garbage": "FRAME_START was lost",
}


def test_faults_are_rejected_resent_and_the_link_survives(appliance: Appliance) -> None:
    assert set(EXPECTED_REASON) == set(FAULTS)
    faults = {i + 1: name for i, name in enumerate(sorted(FAULTS))}
    bags = len(faults) + 2  # an intact bag first and last
    emulator = ScannerEmulator(
        appliance.scanner_port,
        rate_hz=0,
        bags=bags,
        seed=7,
        downsample=2,
        heartbeat_s=0.2,
        timeout_s=10,
        faults=faults,
    )
    report = emulator.run()
    assert report.ok(), report.summary()
    rejected = dict(report.rejections)
    assert sorted(rejected) == sorted(f"emu7-{i:05d}" for i in faults)
    for index, name in faults.items():
        assert EXPECTED_REASON[name] in rejected[f"emu7-{index:05d}"], (name, rejected)
    assert report.resent == len(faults) and report.stored == bags
    # Exactly the intact sendings were stored, each once, with the simulator's image.
    stored = sorted(frame.frame for frame in appliance.frames.values())
    assert stored == sorted(f"emu7-{i:05d}" for i in range(bags))
    for frame in appliance.frames.values():
        index = int(frame.frame.split("-")[1])
        assert frame.sha256 == _sim_sha256(7 + index, 2)
    status = appliance.link.status()
    assert status.connected and all(t.is_alive() for t in appliance.link._threads)
    counters = status.counters
    assert counters["frames_rejected"] == len(faults) - 1  # the garbage one got an ERROR
    assert counters["oversize"] == 1 and counters["garbage_bytes"] > 1 << 20
    assert counters["errors_sent"] == 1


def test_no_answer_is_reported_missing() -> None:
    # loop:// echoes the emulator's own packets back: nobody ever ACKs.
    emulator = ScannerEmulator("loop://", rate_hz=0, bags=1, downsample=10, timeout_s=0.3)
    report = emulator.run()
    assert report.missing_acks == ["emu0-00000"] and report.stored == 0
    assert not report.ok()
    assert "no ACK for 1" in report.summary()


def test_cli_against_the_appliance(
    appliance: Appliance, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main_simulate_scanner(
        ["--port", appliance.scanner_port, "--bags", "2", "--rate", "0", "--seed", "3", "--json"]
    )
    doc = json.loads(capsys.readouterr().out)
    assert status == 0, doc
    assert doc["stored"] == 2 and doc["results"] == 2 and doc["missing_results"] == []
    assert doc["latency_p50_s"] > 0
    # Full-size frames: 1000 pixels across the belt.
    assert {f.high.shape[1] for f in appliance.frames.values()} == {1000}


def test_cli_reports_an_unusable_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_simulate_scanner(["--port", "/nonexistent/tty", "--bags", "1"]) == 2
    assert "cannot open /nonexistent/tty" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"faults": {0: "gremlins"}}, "fault for bag 0"),
        ({"chunk": 70_000}, "chunk"),
        ({"downsample": 0}, "downsample"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(EdgeError, match=message):
        ScannerEmulator("loop://", **options)  # type: ignore[arg-type]


def test_pty_pair_carries_bytes_both_ways_and_unplugs() -> None:
    cable = PtyPair()
    a = serial.serial_for_url(cable.paths[0], timeout=2)
    b = serial.serial_for_url(cable.paths[1], timeout=2)
    payload = os.urandom(300_000) + b"\x00\n\r\x03\x04"  # raw: no echo, no translation
    writer = threading.Thread(target=a.write, args=(payload,))
    writer.start()
    assert b.read(len(payload)) == payload
    writer.join()
    b.write(b"back")
    assert a.read(4) == b"back"
    cable.close()
    with pytest.raises(serial.SerialException):
        for _ in range(10):
            b.read(1)
    a.close()
    b.close()


def test_plain_stop_cuts_a_write_nobody_reads_short() -> None:
    """The appliance gone (nothing reads the line): stop() returns run() within the grace
    period, not after the write timeout; the report says what was sent."""
    with PtyPair() as pty:
        emulator = ScannerEmulator(pty.paths[1], rate_hz=0, bags=5, seed=500, timeout_s=30.0)
        reports: list[EmulatorReport] = []
        sender = threading.Thread(target=lambda: reports.append(emulator.run()))
        sender.start()
        time.sleep(1.5)  # the first full-size bag (~3 MB) fills the line and its write blocks
        stopped = time.monotonic()
        emulator.stop()
        sender.join(30)
        took = time.monotonic() - stopped
        assert not sender.is_alive() and reports
        assert took < 5.0, f"stop took {took:.1f} s: the blocked write waited out its timeout"
        assert reports[0].sent == 1 and reports[0].stored == 0
