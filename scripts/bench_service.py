"""Service benchmark: the whole appliance against its detector alone, the image log against
the bare disk.

(a) End-to-end throughput: pre-rendered simulated bags go over a real pty pair (socat)
    into the service as `edge serve` wires it (ScannerLink -> durable Store -> Pipeline ->
    IsolatedDetector on the demo model -> RESULT back on the link), divided by the
    throughput of the same IsolatedDetector screening the same frames directly
    (IsolatedDetector.screen on the raw high/low planes, so the child renders the
    pseudo-colour image as the pipeline does before it screens). Rounds alternate, ABBA.
(b) Image-log write throughput for 2x1024x768 uint16 frames: Store.add_frame one at a time
    and add_frame_async with several in flight, against a plain write + fsync of the same
    raw bytes (one file per frame) in the same directory; blocks alternate.
(c) FRAME_END -> RESULT latency as the scanner sees it, in the saturated rounds of (a) and
    in a paced round at a fraction of the end-to-end rate.

Bags are simulated and packets COBS-encoded before any clock starts: the scanner only
writes bytes. It runs in its own process with the cable (socat, the README's pty pair, or
with --cable python edge.sim's PtyPair relay threads), so it shares the cores but not this
process's interpreter; a round's
throughput runs from its first byte written to its last RESULT read, pipeline fill
included. CPU per bag is reported for each process, and the cable alone for reference.

    .venv/bin/python scripts/bench_service.py [--bags N] [--frames N] [--rounds N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import serial

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.config import DEFAULT_MODEL_DIR, EdgeConfig, SerialSource  # noqa: E402
from edge.detector.isolated import IsolatedDetector  # noqa: E402
from edge.frames import Frame  # noqa: E402
from edge.ingest.link_protocol import (  # noqa: E402
    FrameStart,
    PacketDecoder,
    PacketType,
    SeqCounter,
    encode_packet,
    frame_data_payload,
    parse_ack,
    parse_error,
    parse_result,
)
from edge.ingest.serial_link import _raw_reader  # noqa: E402
from edge.pipeline import Pipeline  # noqa: E402
from edge.sim.scanner import PtyPair  # noqa: E402
from edge.sim.scene import simulate_bag  # noqa: E402
from edge.sources import serial_source  # noqa: E402
from edge.store import RetentionPolicy, Store  # noqa: E402
from edge.store.images import encode_frame  # noqa: E402

CHUNK = 32768  # image bytes per FRAME_DATA packet, as the scanner emulator sends them
READ_TIMEOUT_S = 0.05
STALL_S = 60.0  # no ACK or RESULT for this long: the round is abandoned
LOG_W, LOG_H = 1024, 768  # the image-log frame of (b)
MB = 1e6


# ---------------------------------------------------------------------------------------
# Frames


@dataclass(frozen=True)
class Bag:
    """One pre-rendered bag: (H, W) little-endian uint16 planes and the view it was seen from."""

    high: np.ndarray
    low: np.ndarray
    view: str

    def frame(self) -> Frame:
        return Frame(high=self.high, low=self.low)

    def image_bytes(self) -> bytes:
        """The FRAME_DATA image: high plane then low plane, row-major (CONTRACT.md 1)."""
        return self.high.tobytes() + self.low.tobytes()


def render_bags(count: int, seed: int) -> list[Bag]:
    """`count` simulated bags (seeds seed .. seed+count-1), as ScannerEmulator renders them."""
    bags = []
    for i in range(count):
        sim = simulate_bag(seed + i, threat_ratio=0.5)
        high = np.ascontiguousarray(sim.high, dtype="<u2")
        low = np.ascontiguousarray(sim.low, dtype="<u2")
        bags.append(Bag(high, low, str(sim.attributes.get("view", "top"))))
    return bags


@dataclass(frozen=True)
class WireBag:
    """One bag as bytes on the line: FRAME_START and every FRAME_DATA, then FRAME_END."""

    frame: str
    body: tuple[bytes, ...]  # one write per packet, as the emulator writes them
    end: bytes


def encode_bags(bags: list[Bag], prefix: str) -> list[WireBag]:
    """Each bag COBS-encoded with the link protocol's own packet builders, seq from 0."""
    seq = SeqCounter()
    wires = []
    for i, bag in enumerate(bags):
        image = bag.image_bytes()
        height, width = bag.high.shape
        frame_id = f"{prefix}-{i:05d}"
        start = FrameStart(
            frame=frame_id,
            bag=f"bag-{frame_id}",
            lane=1,
            view=bag.view,
            width=width,
            height=height,
            channels=("high", "low"),
            nbytes=len(image),
        )
        packets = [encode_packet(PacketType.FRAME_START, seq.next(), start.to_payload())]
        packets += [
            encode_packet(
                PacketType.FRAME_DATA, seq.next(), frame_data_payload(off, image[off : off + CHUNK])
            )
            for off in range(0, len(image), CHUNK)
        ]
        end = encode_packet(PacketType.FRAME_END, seq.next(), hashlib.sha256(image).digest())
        wires.append(WireBag(frame_id, tuple(packets), end))
    return wires


# ---------------------------------------------------------------------------------------
# The scanner: its own process, as a real scanner is another machine


@dataclass
class _Sent:
    end_at: float | None = None
    ack: str | None = None
    ack_id: str | int | None = None
    result_at: float | None = None
    alarm: bool | None = None
    result_id: str | int | None = None


class ScannerSender:
    """A minimal scanner: writes pre-encoded bags on its port and times ACKs and RESULTs.

    No heartbeats and no resends: every bag is expected to be stored and answered."""

    def __init__(self, url: str) -> None:
        self._port = serial.serial_for_url(url, timeout=READ_TIMEOUT_S, write_timeout=None)
        self._state = threading.Condition()
        self._sent: dict[str, _Sent] = {}
        self._errors: list[str] = []
        self._last_answer = time.perf_counter()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read_forever, name="bench-scanner-read")
        self._reader.start()

    def send(self, wires: list[WireBag], rate_hz: float | None) -> dict[str, Any]:
        """Send every bag (at `rate_hz`, or as fast as the link takes them) and wait for the
        answers. `elapsed_s` runs from the first byte written to the last RESULT read;
        latencies are FRAME_END written -> RESULT read, as EmulatorReport.latencies_s."""
        with self._state:
            for wire in wires:
                self._sent[wire.frame] = _Sent()
        started = time.perf_counter()
        for i, wire in enumerate(wires):
            if rate_hz:
                time.sleep(max(0.0, started + i / rate_hz - time.perf_counter()))
            for packet in wire.body:
                self._port.write(packet)
            with self._state:
                # Set before FRAME_END goes out: the answer may come back at once.
                self._sent[wire.frame].end_at = self._last_answer = time.perf_counter()
            self._port.write(wire.end)
        with self._state:
            while not self._complete() and time.perf_counter() - self._last_answer < STALL_S:
                self._state.wait(0.5)
            sent = [self._sent[w.frame] for w in wires]
            errors = list(self._errors)
        answered = [s for s in sent if s.result_at is not None and s.end_at is not None]
        if len(answered) < len(sent):
            errors.append(f"no RESULT for {len(sent) - len(answered)} of {len(sent)} bags")
        last = max((s.result_at for s in answered if s.result_at), default=time.perf_counter())
        return {
            "bags": len(wires),
            "elapsed_s": last - started,
            "stored": sum(s.ack == "stored" for s in sent),
            "results": len(answered),
            "not_screened": sum(s.alarm is None for s in answered),
            "mismatched": sum(s.result_id != s.ack_id for s in answered),
            "latencies_ms": [
                (s.result_at - s.end_at) * 1e3 for s in answered if s.result_at and s.end_at
            ],
            "errors": errors,
        }

    def close(self) -> None:
        self._stop.set()
        self._reader.join(5.0)
        with contextlib.suppress(serial.SerialException, OSError):
            self._port.close()

    def _complete(self) -> bool:
        return all(s.result_at is not None or s.ack == "rejected" for s in self._sent.values())

    def _read_forever(self) -> None:
        decoder = PacketDecoder()
        while not self._stop.is_set():
            try:
                data = self._port.read(max(1, min(self._port.in_waiting, 1 << 20)))
            except (serial.SerialException, OSError) as exc:
                with self._state:
                    self._errors.append(f"port failed: {exc}")
                    self._state.notify_all()
                return
            now = time.perf_counter()
            for packet in decoder.feed(data):
                with self._state:
                    self._handle(packet.type, packet.payload, now)
                    self._state.notify_all()

    def _handle(self, kind: PacketType, payload: bytes, now: float) -> None:
        if kind is PacketType.ACK:
            ack = parse_ack(payload)
            entry = self._sent[ack.frame]
            entry.ack, entry.ack_id = ack.status, ack.id
            if ack.status != "stored":
                self._errors.append(f"{ack.frame} rejected: {ack.reason}")
            self._last_answer = now
        elif kind is PacketType.RESULT:
            result = parse_result(payload)
            entry = self._sent[result["frame"]]
            entry.result_at, entry.alarm, entry.result_id = now, result["alarm"], result["id"]
            self._last_answer = now
        elif kind is PacketType.ERROR:
            error = parse_error(payload)
            self._errors.append(f"appliance error {error.code}: {error.message}")


class SocatPair:
    """The cable as the README builds it for a newcomer: `socat` joining two ptys (C, so
    the relay costs less CPU than PtyPair's Python threads); `pid` for its CPU time."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="bench-cable-")
        a, b = (str(Path(self._dir.name) / n) for n in ("a", "b"))
        self._proc = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
            stderr=subprocess.DEVNULL,
        )
        self.pid = self._proc.pid
        deadline = time.monotonic() + 10.0
        while not (os.path.exists(a) and os.path.exists(b)):
            if time.monotonic() > deadline or self._proc.poll() is not None:
                self.close()
                raise SystemExit("socat did not create its pty pair")
            time.sleep(0.02)
        self.paths = (a, b)

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(10.0)
        self._dir.cleanup()

    def __enter__(self) -> SocatPair:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _scanner_main(conn: Connection, cable: str) -> None:
    """The scanner process: the cable (socat, or a PtyPair whose relay threads live here)
    and a ScannerSender on its far end. Commands: ("load", wires), ("send", rate_hz),
    ("blast",), None to exit; each answered with a dict (`cpu_s`: this process's CPU plus
    socat's)."""
    with SocatPair() if cable == "socat" else PtyPair() as pty:
        conn.send(pty.paths[0])
        cable_pid = pty.pid if isinstance(pty, SocatPair) else None
        wires: list[WireBag] = []
        while (command := conn.recv()) is not None:
            cpu = time.process_time() + _proc_cpu_s(cable_pid)
            if command[0] == "load":
                wires = command[1]
                answer: dict[str, Any] = {}
            elif command[0] == "send":
                sender = ScannerSender(pty.paths[1])
                try:
                    answer = sender.send(wires, command[1])
                finally:
                    sender.close()
            else:  # blast: the bytes alone, nobody answers
                port = serial.serial_for_url(pty.paths[1], write_timeout=None)
                for wire in wires:
                    for packet in (*wire.body, wire.end):
                        port.write(packet)
                port.flush()
                port.close()
                answer = {}
            conn.send({**answer, "cpu_s": time.process_time() + _proc_cpu_s(cable_pid) - cpu})


class Scanner:
    """This process's handle on the scanner process; `service_url` is the appliance's end
    of the cable."""

    def __init__(self, cable: str) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_scanner_main, args=(child, cable), name="bench-scanner")
        self._proc.start()
        child.close()
        if not self._conn.poll(60.0):
            raise SystemExit("the scanner process did not start")
        self.service_url: str = self._conn.recv()

    def command(self, *command: Any) -> dict[str, Any]:
        self._conn.send(command)
        answer: dict[str, Any] = self._conn.recv()
        return answer

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(None)
        self._proc.join(10.0)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()


# ---------------------------------------------------------------------------------------
# CPU accounting


def _proc_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of process `pid` so far (0.0 when it cannot be read)."""
    if pid is None:
        return 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


@dataclass
class CpuUse:
    """CPU milliseconds per bag of each process: this one (the service: link, store,
    pipeline, rendering), the detector's child, and the scanner (sender and pty relay)."""

    service_ms: float
    detector_ms: float
    scanner_ms: float = 0.0

    def __str__(self) -> str:
        return (
            f"CPU ms/bag: service process {self.service_ms:.0f}, detector child "
            f"{self.detector_ms:.0f}, scanner process {self.scanner_ms:.0f}"
        )


class CpuClock:
    """Per-bag CPU of this process and the detector child between `start` and `stop`."""

    def __init__(self, detector: IsolatedDetector) -> None:
        self._detector = detector
        self._at = (0.0, 0.0)

    def start(self) -> None:
        self._at = (time.process_time(), _proc_cpu_s(self._detector.status.pid))

    def stop(self, bags: int, scanner_s: float = 0.0) -> CpuUse:
        now = (time.process_time(), _proc_cpu_s(self._detector.status.pid))
        return CpuUse(
            (now[0] - self._at[0]) * 1e3 / bags,
            (now[1] - self._at[1]) * 1e3 / bags,
            scanner_s * 1e3 / bags,
        )


# ---------------------------------------------------------------------------------------
# (a) and (c): the service and the detector alone


@dataclass
class DetectorRound:
    bags: int
    elapsed_s: float
    not_screened: int
    timings_ms: dict[str, float]  # medians, from the child (and "roundtrip" in the parent)
    cpu: CpuUse

    @property
    def rate(self) -> float:
        return self.bags / self.elapsed_s


def measure_detector(detector: IsolatedDetector, bags: list[Bag], clock: CpuClock) -> DetectorRound:
    """Screen every bag in turn, as the pipeline's worker would, and time the lot."""
    frames = [bag.frame() for bag in bags]
    timings: dict[str, list[float]] = collections.defaultdict(list)
    not_screened = 0
    clock.start()
    started = time.perf_counter()
    for frame in frames:
        result = detector.screen(frame)
        not_screened += result.alarm is None
        for key, value in result.timings_ms.items():
            timings[key].append(value)
    elapsed = time.perf_counter() - started
    cpu = clock.stop(len(frames))
    medians = {k: statistics.median(v) for k, v in timings.items()}
    return DetectorRound(len(frames), elapsed, not_screened, medians, cpu)


@dataclass
class RoundReport:
    """One round through the service, as the scanner saw it, and the pipeline's view."""

    bags: int
    elapsed_s: float
    stored: int
    results: int
    not_screened: int
    mismatched: int
    latencies_ms: list[float]
    errors: list[str]
    cpu: CpuUse
    stages_ms: dict[str, dict[str, float | None]]
    link_counters: dict[str, int]

    @property
    def rate(self) -> float:
        return self.bags / self.elapsed_s

    @property
    def healthy(self) -> bool:
        every = self.bags
        return self.stored == self.results == every and not (self.mismatched or self.not_screened)


def measure_service(
    detector: IsolatedDetector,
    store: Store,
    scanner: Scanner,
    wires: list[WireBag],
    clock: CpuClock,
    config: EdgeConfig,
    rate_hz: float | None = None,
) -> RoundReport:
    """One round through a fresh link and pipeline (the store and the detector are kept)."""
    scanner.command("load", wires)
    pipeline = Pipeline(detector, store=store, queue_frames=config.limits.queue_frames)
    link = serial_source(
        pipeline,
        SerialSource(type="serial", url=scanner.service_url),
        config.limits.max_frame_mb << 20,
        label="bench",
    )
    link.start()
    try:
        if not link.wait_connected(10.0):
            raise SystemExit(f"the service's end of the cable {scanner.service_url} won't open")
        clock.start()
        seen = scanner.command("send", rate_hz)
        cpu = clock.stop(len(wires), seen.pop("cpu_s"))
    finally:
        link.stop()
        pipeline.close()
    counters = link.status().counters
    unusual = ("frames_rejected", "seq_gaps", "garbage_bytes", "callback_errors")
    return RoundReport(
        **seen,
        cpu=cpu,
        stages_ms=pipeline.latency_ms(),
        link_counters={k: counters[k] for k in unusual if counters.get(k)},
    )


@dataclass
class CableRound:
    bags: int
    elapsed_s: float
    complete: bool
    cpu: CpuUse

    @property
    def rate(self) -> float:
        return self.bags / self.elapsed_s


def measure_cable(scanner: Scanner, wires: list[WireBag], clock: CpuClock) -> CableRound:
    """The transport alone: the same bytes through the cable to a reader here that reads
    them as ScannerLink does (whatever is waiting, at least one byte) and drops them."""
    scanner.command("load", wires)
    total = sum(len(p) for w in wires for p in (*w.body, w.end))
    done = threading.Event()
    port = serial.serial_for_url(scanner.service_url, timeout=READ_TIMEOUT_S)
    read = _raw_reader(port)
    assert read is not None, "the cable is a pty"

    def drain() -> None:
        received = 0
        while received < total and not done.is_set():
            received += len(read())
        done.set()

    reader = threading.Thread(target=drain, name="bench-cable-read")
    reader.start()
    clock.start()
    started = time.perf_counter()
    scanner_s = scanner.command("blast")["cpu_s"]
    complete = done.wait(STALL_S)
    elapsed = time.perf_counter() - started
    cpu = clock.stop(len(wires), scanner_s)
    done.set()
    reader.join(5.0)
    port.close()
    return CableRound(len(wires), elapsed, complete, cpu)


# ---------------------------------------------------------------------------------------
# (b): the image log against the bare disk


@dataclass
class WriteRow:
    name: str
    frames: int = 0
    seconds: float = 0.0

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.frames * LOG_H * LOG_W * 2 * 2 / MB / self.seconds


def log_frames(bags: list[Bag], count: int) -> list[Frame]:
    """`count` 2x1024x768 uint16 frames: up to 8 of the bags resized to the log size, in turn."""

    def resized(plane: np.ndarray) -> npt.NDArray[np.uint16]:
        return np.asarray(cv2.resize(plane, (LOG_W, LOG_H), interpolation=cv2.INTER_AREA), "<u2")

    base = [Frame(high=resized(b.high), low=resized(b.low)) for b in bags[:8]]
    return [base[i % len(base)] for i in range(count)]


def plain_write(directory: Path, name: str, frame: Frame) -> None:
    """The same raw bytes, one file per frame, made durable as the log makes its own."""
    assert frame.high is not None and frame.low is not None
    fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, frame.high.data)
        os.write(fd, frame.low.data)
        os.fsync(fd)
    finally:
        os.close(fd)


def measure_log(
    base: Path, frames: list[Frame], block: int, in_flight: int
) -> tuple[list[WriteRow], float]:
    """Alternate blocks of `block` frames: plain write+fsync, add_frame, add_frame_async.

    Also returns the median ms of encode_frame alone (the PNG encoding add_frame does in
    the caller's thread before the writer thread writes)."""
    plain_dir = base / "plain"
    plain_dir.mkdir()
    rows = [
        WriteRow("plain write + fsync"),
        WriteRow("Store.add_frame"),
        WriteRow(f"Store.add_frame_async, {in_flight} in flight"),
    ]
    with Store(base / "log") as store:
        store.add_frame(frames[0], source="bench", bag="warm-up")
        plain_write(plain_dir, "warm-up", frames[0])

        def plain(chunk: list[Frame], offset: int) -> None:
            for i, frame in enumerate(chunk):
                plain_write(plain_dir, f"{offset + i:06d}.raw", frame)

        def one_at_a_time(chunk: list[Frame], offset: int) -> None:
            for i, frame in enumerate(chunk):
                store.add_frame(frame, source="bench", bag=f"s{offset + i}")

        def pipelined(chunk: list[Frame], offset: int) -> None:
            pending: collections.deque[Future[Any]] = collections.deque()
            for i, frame in enumerate(chunk):
                if len(pending) >= in_flight:
                    pending.popleft().result()
                pending.append(store.add_frame_async(frame, source="bench", bag=f"a{offset + i}"))
            for future in pending:
                future.result()

        methods = [plain, one_at_a_time, pipelined]
        for n, offset in enumerate(range(0, len(frames), block)):
            chunk = frames[offset : offset + block]
            order = list(range(len(methods)))
            order = order[n % len(order) :] + order[: n % len(order)]  # rotate against drift
            for m in order:
                started = time.perf_counter()
                methods[m](chunk, offset)
                rows[m].seconds += time.perf_counter() - started
                rows[m].frames += len(chunk)
        encode_ms = []
        for frame in frames[: min(len(frames), 10)]:
            started = time.perf_counter()
            encode_frame(frame, store.png_level)
            encode_ms.append((time.perf_counter() - started) * 1e3)
    return rows, statistics.median(encode_ms)


# ---------------------------------------------------------------------------------------
# Report


def machine() -> str:
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs ({model}), load average {load}"


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _stages(stages: dict[str, dict[str, float | None]]) -> str:
    return ", ".join(f"{k} {v['p50']}/{v['p99']}" for k, v in stages.items())


def _rate(rounds: list[DetectorRound] | list[RoundReport]) -> float:
    """Bags per second over all rounds together."""
    return sum(r.bags for r in rounds) / sum(r.elapsed_s for r in rounds)


@dataclass
class Results:
    alone: list[DetectorRound]
    served: list[RoundReport]
    paced: RoundReport
    paced_hz: float
    cable: CableRound
    log_rows: list[WriteRow]
    encode_ms: float


def run(args: argparse.Namespace, config: EdgeConfig, bags: list[Bag], threads: int) -> Results:
    """Every measurement, in order: (a) alternated ABBA, (c) paced, the cable, then (b)."""
    detector = IsolatedDetector(
        args.model,
        deadline_s=config.model.deadline_s,
        providers=config.model.providers,
        intra_op_threads=threads or None,
    )
    detector.start()
    clock = CpuClock(detector)
    scanner = Scanner(args.cable)
    retention = RetentionPolicy(  # as run_service sets it up
        min_free_bytes=config.store.min_free_mb << 20, max_age_days=config.store.max_age_days
    )
    try:
        with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-service-") as tmp:
            base = Path(tmp)
            for bag in bags[:3]:  # warm-up beyond Detector.load's own
                detector.screen(bag.frame())
            work = bags[: args.bags]
            alone: list[DetectorRound] = []
            served: list[RoundReport] = []
            with Store(base / "service", retention=retention) as store:
                for r in range(args.rounds):
                    for what in ("detector", "service")[:: 1 if r % 2 == 0 else -1]:
                        if what == "detector":
                            alone.append(measure_detector(detector, work, clock))
                            rate = alone[-1].rate
                        else:
                            wires = encode_bags(work, f"r{r}")
                            served.append(
                                measure_service(detector, store, scanner, wires, clock, config)
                            )
                            rate = served[-1].rate
                        print(f"round {r + 1}, {what}: {rate:.2f} bags/s", flush=True)
                paced_hz = args.paced_load * _rate(served)
                paced_wires = encode_bags(bags[: args.paced_bags], "paced")
                paced = measure_service(
                    detector, store, scanner, paced_wires, clock, config, paced_hz
                )
            cable = measure_cable(scanner, encode_bags(work, "cable"), clock)
            frames = log_frames(bags, args.frames)
            log_rows, encode_ms = measure_log(base, frames, args.block, args.in_flight)
    finally:
        scanner.close()
        detector.close()
    return Results(alone, served, paced, paced_hz, cable, log_rows, encode_ms)


def print_report(res: Results, args: argparse.Namespace) -> bool:
    """The markdown table, then the details behind it; True when every target is met and
    every bag was stored, screened and answered."""
    ratio = _rate(res.served) / _rate(res.alone)
    saturated = [x for s in res.served for x in s.latencies_ms]
    paced = res.paced.latencies_ms
    plain, *logged = res.log_rows
    roundtrip = statistics.median(a.timings_ms.get("roundtrip", float("nan")) for a in res.alone)

    print()
    print("| measure | value | reference | ratio | target |")
    print("|---|---|---|---|---|")
    print(
        f"| end-to-end throughput: pty -> ScannerLink -> Store -> IsolatedDetector -> RESULT "
        f"({args.rounds} x {args.bags} bags) | {_rate(res.served):.2f} bags/s | "
        f"IsolatedDetector.screen alone, same frames: {_rate(res.alone):.2f} bags/s | "
        f"{ratio:.3f} | >= 0.90 |"
    )
    for row in logged:
        print(
            f"| image log, {row.name} (2x{LOG_W}x{LOG_H} uint16, {row.frames} frames) | "
            f"{row.mb_per_s:.1f} MB/s, {row.frames_per_s:.1f} frames/s | "
            f"{plain.name}: {plain.mb_per_s:.1f} MB/s, {plain.frames_per_s:.1f} frames/s | "
            f"{row.mb_per_s / plain.mb_per_s:.3f} | >= 0.5 |"
        )
    for name, latencies in [
        ("saturated rounds", saturated),
        (f"paced at {res.paced_hz:.2f} bags/s", paced),
    ]:
        print(
            f"| FRAME_END -> RESULT, {name} (n={len(latencies)}) | "
            f"p50 {_pct(latencies, 50):.0f} ms, p99 {_pct(latencies, 99):.0f} ms | "
            f"detector alone: median {roundtrip:.0f} ms per frame | | |"
        )
    print()
    print(
        f"MB = 10^6 bytes of raw pixels ({LOG_W * LOG_H * 4 / MB:.2f} MB per frame) in every "
        f"row of (b); PNG encoding alone (level 0, caller's thread): median "
        f"{res.encode_ms:.1f} ms per frame."
    )
    cable = res.cable
    print(
        f"cable alone (sender -> {args.cable} -> a reader that drops the bytes, {cable.bags} bags): "
        f"{cable.rate:.2f} bags/s; {cable.cpu}"
        + ("" if cable.complete else " (INCOMPLETE: the reader stalled)")
    )
    for a in res.alone:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in a.timings_ms.items())
        print(
            f"detector alone: {a.rate:.2f} bags/s; median ms: {parts}; {a.cpu}; "
            f"NOT SCREENED {a.not_screened}"
        )
    named = [(f"service round {i + 1}", s) for i, s in enumerate(res.served)]
    for name, s in [*named, ("paced", res.paced)]:
        print(
            f"{name}: {s.rate:.2f} bags/s, stored {s.stored}/{s.bags}, RESULTs {s.results}, "
            f"NOT SCREENED {s.not_screened}, id mismatches {s.mismatched}; {s.cpu}; "
            f"pipeline p50/p99 ms: {_stages(s.stages_ms)}"
            + (f"; link: {s.link_counters}" if s.link_counters else "")
        )
        for error in s.errors[:5]:
            print(f"  {error}")
    healthy = all(s.healthy for s in [*res.served, res.paced])
    best = max(row.mb_per_s for row in logged) / plain.mb_per_s
    return healthy and ratio >= 0.90 and best >= 0.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bags", type=int, default=30, help="bags per round of (a)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of (a), each way")
    parser.add_argument("--frames", type=int, default=80, help="frames per method in (b)")
    parser.add_argument("--block", type=int, default=10, help="frames per alternated block")
    parser.add_argument("--in-flight", type=int, default=4, help="add_frame_async depth")
    parser.add_argument("--paced-bags", type=int, default=20, help="bags of the paced round")
    parser.add_argument(
        "--paced-load", type=float, default=0.5, help="paced rate, share of end-to-end rate"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="detector intra-op threads (default: config)"
    )
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--dir", type=Path, default=None, help="data disk (default: temp dir)")
    parser.add_argument("--seed", type=int, default=1000, help="bag i is simulate_bag(seed + i)")
    parser.add_argument(
        "--cable",
        choices=("socat", "python"),
        default="socat" if shutil.which("socat") else "python",
        help="what joins the scanner's pty to the service's (default: socat when installed)",
    )
    args = parser.parse_args(argv)
    if min(args.bags, args.rounds, args.frames, args.block, args.paced_bags, args.in_flight) < 1:
        parser.error("counts must be at least 1")
    if not 0 < args.paced_load < 1:
        parser.error("--paced-load: expected a share between 0 and 1")

    import onnxruntime

    config = EdgeConfig()
    threads = args.threads if args.threads is not None else config.model.intra_op_threads
    print(f"machine: {machine()}; onnxruntime {onnxruntime.__version__}")
    print(
        f"parameters: {args.bags} bags x {args.rounds} rounds each way (ABBA), "
        f"{args.paced_bags} paced bags at {args.paced_load:g} x end-to-end rate, "
        f"{args.frames} log frames per method in blocks of {args.block}, "
        f"model {args.model.name}, cable {args.cable}, queue {config.limits.queue_frames} frames, "
        f"detector intra-op threads {threads or 'all'}, deadline {config.model.deadline_s:g} s",
        flush=True,
    )
    started = time.perf_counter()
    bags = render_bags(max(args.bags, args.paced_bags), args.seed)
    heights = [b.high.shape[0] for b in bags]
    widths = sorted({b.high.shape[1] for b in bags})
    print(
        f"rendered {len(bags)} bags in {time.perf_counter() - started:.1f} s: width "
        f"{'/'.join(map(str, widths))}, height {min(heights)}-{max(heights)} px, 2 planes uint16"
    )
    results = run(args, config, bags, threads)
    return 0 if print_report(results, args) else 1


if __name__ == "__main__":
    raise SystemExit(main())
