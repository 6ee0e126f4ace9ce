"""The appliance side of the serial link over real pyserial transports: a pty pair (a
virtual null-modem cable) with the test as the scanner, and `loop://`."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import serial

from edge.errors import BadInputError, EdgeError
from edge.ingest.frame_assembler import AssembledFrame
from edge.ingest.link_protocol import (
    FrameStart,
    Packet,
    PacketDecoder,
    PacketType,
    SeqCounter,
    encode_packet,
    frame_data_payload,
    heartbeat_payload,
    parse_ack,
    parse_error,
    parse_heartbeat,
    parse_result,
)
from edge.ingest.serial_link import FrameOutcome, LinkError, ScannerLink
from edge.sim.scanner import PtyPair

FAST = {"heartbeat_s": 0.05, "silence_s": 5.0, "reopen_s": 0.05}


class Scanner:
    """The test's end of the cable: writes packets, reads the appliance's answers."""

    def __init__(self, path: str) -> None:
        self.port = serial.serial_for_url(path, timeout=0.05, write_timeout=10)
        self.decoder = PacketDecoder()
        self.seq = SeqCounter()
        self.seen: list[Packet] = []

    def send(self, type_: PacketType, payload: bytes) -> None:
        self.port.write(encode_packet(type_, self.seq.next(), payload))

    def send_frame(self, frame: str, high: np.ndarray, low: np.ndarray, chunk: int = 4096) -> bytes:
        image = high.astype("<u2").tobytes() + low.astype("<u2").tobytes()
        height, width = high.shape
        start = FrameStart(
            frame, "B-" + frame, 1, "top", width, height, ("high", "low"), "uint16", len(image)
        )
        self.send(PacketType.FRAME_START, start.to_payload())
        for offset in range(0, len(image), chunk):
            self.send(
                PacketType.FRAME_DATA, frame_data_payload(offset, image[offset : offset + chunk])
            )
        self.send(PacketType.FRAME_END, hashlib.sha256(image).digest())
        return image

    def poll(self) -> None:
        self.seen += self.decoder.feed(self.port.read(max(1, self.port.in_waiting)))

    def wait_for(self, type_: PacketType, timeout: float = 5.0) -> Packet:
        """The first not yet taken packet of this type, reading until it arrives."""
        deadline = time.monotonic() + timeout
        while True:
            for i, packet in enumerate(self.seen):
                if packet.type is type_:
                    return self.seen.pop(i)
            if time.monotonic() > deadline:
                raise AssertionError(f"no {type_.name} within {timeout}s; seen {self.seen}")
            self.poll()

    def close(self) -> None:
        self.port.close()


def image(seed: int, shape: tuple[int, int] = (20, 30)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 65536, shape, dtype=np.uint16), rng.integers(
        0, 65536, shape, dtype=np.uint16
    )


class Store:
    """A test `on_frame`: keeps frames in a dict, answers with an id."""

    def __init__(self) -> None:
        self.frames: dict[str, AssembledFrame] = {}
        self.calls = 0

    def __call__(self, frame: AssembledFrame) -> FrameOutcome:
        self.calls += 1
        key = f"a{len(self.frames) + 1}"
        self.frames[key] = frame
        return FrameOutcome.stored(key)


@pytest.fixture
def pair() -> Iterator[PtyPair]:
    with PtyPair() as cable:
        yield cable


@pytest.fixture
def run_link(pair: PtyPair) -> Iterator[Callable[..., ScannerLink]]:
    links: list[ScannerLink] = []

    def start(on_frame: Callable[[AssembledFrame], Any], **options: float) -> ScannerLink:
        link = ScannerLink(pair.paths[1], on_frame, **(FAST | options))
        link.start()
        links.append(link)
        assert link.wait_connected(5)
        return link

    yield start
    for link in links:
        link.stop()


@pytest.fixture
def scanner(pair: PtyPair) -> Iterator[Scanner]:
    side = Scanner(pair.paths[0])
    yield side
    side.close()


def test_frame_is_stored_and_acked(run_link: Callable[..., ScannerLink], scanner: Scanner) -> None:
    store = Store()
    link = run_link(store)
    high, low = image(1)
    scanner.send_frame("F1", high, low)
    ack = parse_ack(scanner.wait_for(PacketType.ACK).payload)
    assert (ack.frame, ack.status, ack.id) == ("F1", "stored", "a1")
    frame = store.frames["a1"]
    assert (
        np.array_equal(frame.high, high)
        and frame.low is not None
        and np.array_equal(frame.low, low)
    )
    counters = link.status().counters
    assert counters["frames_stored"] == 1 and counters["bad_packets"] == 0


def test_stored_ack_is_sent_only_once_on_frame_returned(
    run_link: Callable[..., ScannerLink], scanner: Scanner
) -> None:
    acks_seen_during_store: list[int] = []
    called = threading.Event()

    def durable(frame: AssembledFrame) -> FrameOutcome:
        time.sleep(0.3)  # the store's fsync
        scanner.poll()  # the test thread stays off the scanner's port meanwhile
        acks_seen_during_store.append(sum(p.type is PacketType.ACK for p in scanner.seen))
        called.set()
        return FrameOutcome.stored(42)

    run_link(durable)
    scanner.send_frame("F1", *image(2))
    assert called.wait(5)
    assert parse_ack(scanner.wait_for(PacketType.ACK).payload).id == 42
    assert acks_seen_during_store == [0]


class Refusing:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, frame: AssembledFrame) -> FrameOutcome:
        self.calls += 1
        if self.calls == 1:
            raise EdgeError("image log full")
        if self.calls == 2:
            raise RuntimeError("disk on fire")
        if self.calls == 3:
            return FrameOutcome.rejected("duplicate")
        return FrameOutcome.stored("ok")


def test_a_frame_that_is_not_stored_is_acked_rejected_and_the_link_lives_on(
    run_link: Callable[..., ScannerLink], scanner: Scanner
) -> None:
    link = run_link(Refusing())
    reasons = []
    for i in range(4):
        scanner.send_frame(f"F{i}", *image(i))
        ack = parse_ack(scanner.wait_for(PacketType.ACK).payload)
        reasons.append(ack.reason if ack.status == "rejected" else ack.id)
    assert reasons == ["not stored: image log full", "not stored: disk on fire", "duplicate", "ok"]
    counters = link.status().counters
    assert counters["frames_rejected"] == 3 and counters["frames_stored"] == 1
    assert counters["callback_errors"] == 1


def test_damaged_frame_rejected_garbage_counted_next_frame_stored(
    run_link: Callable[..., ScannerLink], scanner: Scanner
) -> None:
    store = Store()
    link = run_link(store)
    high, low = image(3)
    data = high.tobytes() + low.tobytes()
    start = FrameStart("BAD", "B", 1, "top", 30, 20, ("high", "low"), "uint16", len(data))
    scanner.send(PacketType.FRAME_START, start.to_payload())
    scanner.send(PacketType.FRAME_DATA, frame_data_payload(0, data[:1000]))
    wire = bytearray(
        encode_packet(
            PacketType.FRAME_DATA, scanner.seq.next(), frame_data_payload(1000, data[1000:])
        )
    )
    wire[20] ^= 0xFF  # flipped on the line: CRC fails, the chunk is lost
    scanner.port.write(bytes(wire) + os.urandom(5000) + b"\x00")
    scanner.send(PacketType.FRAME_END, hashlib.sha256(data).digest())
    ack = parse_ack(scanner.wait_for(PacketType.ACK).payload)
    assert (ack.frame, ack.status) == ("BAD", "rejected") and ack.reason is not None
    assert ack.reason.startswith("incomplete: received 1000 of 2400")
    scanner.send_frame("GOOD", high, low)
    assert parse_ack(scanner.wait_for(PacketType.ACK).payload).status == "stored"
    counters = link.status().counters
    assert counters["bad_packets"] >= 2 and counters["garbage_bytes"] >= 4000
    assert counters["seq_gaps"] >= 1
    assert [f.frame for f in store.frames.values()] == ["GOOD"]


def test_frame_end_with_no_frame_open_is_answered_with_an_error(
    run_link: Callable[..., ScannerLink], scanner: Scanner
) -> None:
    run_link(Store())
    scanner.send(PacketType.FRAME_END, bytes(32))
    error = parse_error(scanner.wait_for(PacketType.ERROR).payload)
    assert error.code == "no_frame" and "FRAME_START was lost" in error.message


def test_results_reach_the_scanner(run_link: Callable[..., ScannerLink], scanner: Scanner) -> None:
    link = run_link(Store())
    result = {
        "frame": "F1",
        "bag": "B1",
        "id": "a1",
        "alarm": None,
        "reason": "detector crashed",
        "model": "demo@1.0.0",
        "detections": [],
    }
    link.send_result(result)
    assert parse_result(scanner.wait_for(PacketType.RESULT).payload) == result
    with pytest.raises(BadInputError, match="'model' expected"):
        link.send_result(result | {"model": "demo"})
    assert link.status().counters["results_sent"] == 1


def test_heartbeats_both_ways_and_silence(
    run_link: Callable[..., ScannerLink], scanner: Scanner
) -> None:
    link = run_link(Store(), silence_s=0.5)
    beat = parse_heartbeat(scanner.wait_for(PacketType.HEARTBEAT).payload)
    assert beat.status == "ok"
    deadline = time.monotonic() + 5
    while link.status().state != "silent":
        assert time.monotonic() < deadline, link.status()
        time.sleep(0.05)
    scanner.send(PacketType.HEARTBEAT, heartbeat_payload("scanning", time="2024-05-01T12:00:00Z"))
    while link.status().counters["heartbeats_received"] < 1:
        assert time.monotonic() < deadline, link.status()
        time.sleep(0.02)
    status = link.status()
    assert status.state == "connected"
    assert status.peer_time == "2024-05-01T12:00:00Z" and status.peer_status == "scanning"
    assert status.last_heartbeat_at is not None and status.counters["heartbeats_received"] == 1


def test_a_blocked_store_is_back_pressure_not_silence(
    run_link: Callable[..., ScannerLink], scanner: Scanner
) -> None:
    release = threading.Event()
    store = Store()

    def slow(frame: AssembledFrame) -> FrameOutcome:
        release.wait(10)
        return store(frame)

    link = run_link(slow, silence_s=0.2)
    big = image(4, (750, 1000))  # 3 MB: more than the pty buffers hold
    scanner.send_frame("F1", *image(5))
    sender = threading.Thread(target=scanner.send_frame, args=("F2", *big), kwargs={"chunk": 32768})
    sender.start()
    time.sleep(0.6)
    assert sender.is_alive(), "the scanner's writes should stall while the store is blocked"
    assert link.status().state == "connected"  # busy, not silent
    scanner.poll()
    beats = [
        parse_heartbeat(p.payload).status for p in scanner.seen if p.type is PacketType.HEARTBEAT
    ]
    assert "busy" in beats
    release.set()
    sender.join(10)
    assert not sender.is_alive()
    acks = [parse_ack(scanner.wait_for(PacketType.ACK).payload) for _ in range(2)]
    assert [(a.frame, a.status) for a in acks] == [("F1", "stored"), ("F2", "stored")]
    assert np.array_equal(store.frames["a2"].high, big[0])


def test_port_gone_is_counted_and_the_link_reopens(tmp_path: Path) -> None:
    device = tmp_path / "scanner"
    store = Store()
    link = ScannerLink(str(device), store, **FAST)
    link.start()
    try:
        time.sleep(0.2)
        status = link.status()
        assert status.state == "connecting" and status.counters["open_failures"] >= 1
        assert status.last_error is not None and "cannot open port" in status.last_error
        for round_ in range(2):
            with PtyPair() as cable:
                tmp_link = tmp_path / "next"
                tmp_link.symlink_to(cable.paths[1])
                tmp_link.replace(device)  # a device node that appears, as udev would make it
                assert link.wait_connected(5)
                side = Scanner(cable.paths[0])
                side.send_frame(f"F{round_}", *image(round_))
                assert parse_ack(side.wait_for(PacketType.ACK).payload).status == "stored"
                side.close()
                # The device node goes first, so no later pty that reuses its number is
                # mistaken for it.
                device.unlink()
            # The cable is unplugged: the link notices and goes back to reopening.
            deadline = time.monotonic() + 5
            while link.status().state != "connecting":
                assert time.monotonic() < deadline, link.status()
                time.sleep(0.02)
        status = link.status()
        assert status.counters["port_errors"] == 2 and status.counters["opens"] == 2
        assert len(store.frames) == 2
    finally:
        link.stop()
    assert link.status().state == "stopped"
    assert not any(t.is_alive() for t in link._threads)


def test_send_when_not_connected_is_a_link_error() -> None:
    link = ScannerLink("/nonexistent/tty", Store(), **FAST)
    with pytest.raises(LinkError, match="not connected"):
        link.send_result(
            {"frame": "F", "bag": "B", "id": 1, "alarm": False, "model": "m@1", "detections": []}
        )


def test_loop_url_reads_back_its_own_packets() -> None:
    # loop:// echoes every write: the link hears its own heartbeats and its RESULT.
    link = ScannerLink("loop://", Store(), **FAST)
    link.start()
    try:
        assert link.wait_connected(5)
        link.send_result(
            {"frame": "F", "bag": "B", "id": 1, "alarm": True, "model": "m@1", "detections": []}
        )
        deadline = time.monotonic() + 5
        while link.status().counters["unexpected_packets"] < 1:
            assert time.monotonic() < deadline, link.status()
            time.sleep(0.02)
        status = link.status()
        assert status.peer_status == "ok" and status.counters["heartbeats_received"] >= 1
        assert status.counters["bad_packets"] == 0
    finally:
        link.stop()


def test_heartbeat_payload_on_the_wire_is_json_with_utc_time(
    run_link: Callable[..., ScannerLink], scanner: Scanner
) -> None:
    run_link(Store())
    obj = json.loads(scanner.wait_for(PacketType.HEARTBEAT).payload)
    assert set(obj) == {"time", "status"} and obj["time"].endswith("Z")


def test_a_write_that_times_out_does_not_swallow_the_next_packet(
    run_link: Callable[..., ScannerLink], scanner: Scanner
) -> None:
    link = run_link(Store(), heartbeat_s=30.0, write_timeout_s=0.2)
    scanner.wait_for(PacketType.HEARTBEAT)  # the one sent on opening
    detections = [{"class": "knife", "score": 0.5, "box": [1, 2, 3, 4]}] * 1200
    big = {
        "frame": "F",
        "bag": "B",
        "id": 1,
        "alarm": True,
        "model": "m@1",
        "detections": detections,
    }
    with pytest.raises(LinkError, match="RESULT not sent"):
        for _ in range(100):  # the scanner is not reading: the cable's buffers fill up
            link.send_result(big)
    while data := scanner.port.read(1 << 16):  # drain the cable, torn packet included
        scanner.decoder.feed(data)
    assert scanner.decoder.stats.bad_packets == 0  # the torn packet is still unfinished
    link.send_result(big | {"frame": "LAST", "detections": []})
    assert parse_result(scanner.wait_for(PacketType.RESULT).payload)["frame"] == "LAST"
    assert link.status().counters["write_errors"] == 1
    assert scanner.decoder.stats.bad_packets == 1  # ended by the delimiter, alone


def test_status_is_json_ready(run_link: Callable[..., ScannerLink]) -> None:
    doc = json.loads(json.dumps(run_link(Store()).status().to_dict()))
    assert doc["connected"] is True and doc["state"] == "connected"
    assert doc["counters"]["frames_stored"] == 0 and doc["counters"]["garbage_bytes"] == 0


class Deferred:
    """An asynchronous `on_frame`: answers with a Future the test resolves later."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, Future[FrameOutcome]]] = []
        self.frames: list[AssembledFrame] = []
        self.called = threading.Semaphore(0)

    def __call__(self, frame: AssembledFrame) -> Future[FrameOutcome]:
        future: Future[FrameOutcome] = Future()
        self.pending.append((frame.frame, future))
        self.frames.append(frame)
        self.called.release()
        return future


def test_an_asynchronous_store_is_acked_on_completion_while_the_reader_reads_on(
    run_link: Callable[..., ScannerLink], scanner: Scanner
) -> None:
    store = Deferred()
    link = run_link(store)
    scanner.send_frame("F1", *image(10))
    scanner.send_frame("F2", *image(11))
    assert store.called.acquire(timeout=5) and store.called.acquire(timeout=5)
    assert [name for name, _ in store.pending] == ["F1", "F2"]  # F2 read before F1's ACK
    time.sleep(0.2)
    scanner.poll()
    assert not any(p.type is PacketType.ACK for p in scanner.seen), "ACK before durable"
    store.pending[0][1].set_result(FrameOutcome.stored("a1"))
    assert parse_ack(scanner.wait_for(PacketType.ACK).payload).id == "a1"
    store.pending[1][1].set_exception(EdgeError("disk on fire"))
    ack = parse_ack(scanner.wait_for(PacketType.ACK).payload)
    assert (ack.frame, ack.status, ack.reason) == ("F2", "rejected", "not stored: disk on fire")
    counters = link.status().counters
    assert counters["frames_stored"] == 1 and counters["frames_rejected"] == 1


def test_unacked_frames_are_bounded_then_the_scanner_stalls(
    run_link: Callable[..., ScannerLink], scanner: Scanner
) -> None:
    store = Deferred()
    run_link(store, max_unacked=1)
    scanner.send_frame("F1", *image(12))
    assert store.called.acquire(timeout=5)
    big = [image(13 + i, (750, 1000)) for i in range(2)]  # 3 MB each: more than a pty holds

    def send_two() -> None:
        scanner.send_frame("F2", *big[0], chunk=32768)
        scanner.send_frame("F3", *big[1], chunk=32768)

    sender = threading.Thread(target=send_two)
    sender.start()
    time.sleep(0.8)
    # F2 is read and assembled, then held until F1's ACK: F3 cannot get in.
    assert len(store.pending) == 1, "a second frame taken while the first waits for its ACK"
    assert sender.is_alive(), "the scanner's writes should stall"
    for i in range(3):
        if i:
            assert store.called.acquire(timeout=10)
        store.pending[i][1].set_result(FrameOutcome.stored(f"a{i + 1}"))
    sender.join(10)
    assert not sender.is_alive()
    acks = [parse_ack(scanner.wait_for(PacketType.ACK).payload) for _ in range(3)]
    assert [(a.frame, a.id) for a in acks] == [("F1", "a1"), ("F2", "a2"), ("F3", "a3")]
    assert np.array_equal(store.frames[2].high, big[1][0])


def test_a_result_waits_for_its_frames_ack(
    run_link: Callable[..., ScannerLink], scanner: Scanner
) -> None:
    store = Deferred()
    link = run_link(store)
    scanner.send_frame("F1", *image(14))
    assert store.called.acquire(timeout=5)
    result = {
        "frame": "F1",
        "bag": "B-F1",
        "id": "a1",
        "alarm": False,
        "model": "demo@1.0.0",
        "detections": [],
    }
    sender = threading.Thread(target=link.send_result, args=(result,))
    sender.start()
    time.sleep(0.3)
    scanner.poll()
    assert sender.is_alive() and not any(p.type is PacketType.RESULT for p in scanner.seen)
    store.pending[0][1].set_result(FrameOutcome.stored("a1"))
    sender.join(5)
    order = []
    deadline = time.monotonic() + 5
    while len(order) < 2 and time.monotonic() < deadline:
        scanner.poll()
        order = [p.type for p in scanner.seen if p.type in (PacketType.ACK, PacketType.RESULT)]
    assert order == [PacketType.ACK, PacketType.RESULT]
