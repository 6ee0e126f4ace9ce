"""A scanner emulator for the serial link (CONTRACT.md section 1), and a virtual cable.

`ScannerEmulator` opens a pyserial port (a device path or any pyserial URL), sends simulated
bags as FRAME_START / FRAME_DATA / FRAME_END, sends heartbeats, and matches the appliance's
ACKs and RESULTs to what it sent. A frame ACKed `rejected` is resent once. `faults` damages
chosen bags on their first sending, to check the appliance rejects exactly those.

`PtyPair` is two connected pseudo-terminals, what
`socat -d -d pty,raw,echo=0 pty,raw,echo=0` makes, for tests and the built-in demo.

Command line (wired as `edge simulate scanner`): see `main_simulate_scanner`.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import json
import os
import select
import sys
import threading
import time
import tty
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any

import numpy as np
import serial

from edge.errors import EdgeError
from edge.ingest import one_line
from edge.ingest.cobs import cobs_encode
from edge.ingest.link_protocol import (
    DELIMITER,
    MAX_DATA_CHUNK,
    MAX_SIDE,
    FrameStart,
    PacketDecoder,
    PacketType,
    PayloadError,
    SeqCounter,
    frame_data_payload,
    heartbeat_payload,
    pack_packet,
    parse_ack,
    parse_error,
    parse_result,
)
from edge.ingest.serial_link import LinkError
from edge.sim.scene import simulate_bag

FAULTS = {
    "flip": "one byte of a FRAME_DATA packet flipped on the wire (CRC fails)",
    "truncate": "a FRAME_DATA packet cut short (CRC fails)",
    "drop_chunk": "a FRAME_DATA packet never sent (frame incomplete)",
    "wrong_hash": "FRAME_END carries the wrong SHA-256",
    "oversize_packet": "a FRAME_DATA packet over 65,544 bytes (dropped, frame incomplete)",
    "oversize_frame": "FRAME_START declares a 16384 x 16384 frame (over the size limit)",
    "overlap": "a FRAME_DATA chunk sent again at an overlapping offset",
    "out_of_range": "a FRAME_DATA chunk past the end of the frame",
    "garbage": "1 MiB of random bytes on the line before the frame",
}
GARBAGE_BYTES = 1 << 20
READ_TIMEOUT_S = 0.05
STOP_GRACE_S = 0.5  # stop(): how long a blocked write may go on before it is cut short
RECENT_BAGS = 4  # rendered bags kept for a resend (a full-size bag is about 3 MB)


@dataclass
class _Bag:
    """One bag's journey. `attempts`: times sent; `answered`: attempts answered so far."""

    index: int
    seed: int
    frame: str
    bag: str
    attempts: int = 0
    answered: int = 0
    status: str | None = None  # "stored" or "rejected" (final once attempts are spent)
    appliance_id: str | int | None = None
    reasons: list[str] = field(default_factory=list)
    end_sent_at: float | None = None
    result: dict[str, Any] | None = None
    latency_s: float | None = None


@dataclass
class _Out:
    """One packet to put on the line (its seq is assigned when written)."""

    type: PacketType
    payload: bytes = b""
    mangle: Callable[[bytes], bytes] | None = None  # applied to the encoded packet
    noise: bytes = b""  # raw bytes written just before it, in the same write


@dataclass
class EmulatorReport:
    """What the appliance made of the bags sent. Latencies: FRAME_END written -> RESULT
    read, in seconds, for the attempt that was stored."""

    bags: int
    sent: int = 0
    attempts: int = 0
    stored: int = 0
    rejected: int = 0
    resent: int = 0
    results: int = 0
    missing_acks: list[str] = field(default_factory=list)
    missing_results: list[str] = field(default_factory=list)
    rejections: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    result_id_mismatches: list[str] = field(default_factory=list)
    heartbeats_received: int = 0
    latencies_s: dict[str, float] = field(default_factory=dict)
    stored_ids: dict[str, str | int] = field(default_factory=dict)
    result_payloads: dict[str, dict[str, Any]] = field(default_factory=dict)
    aborted: str | None = None

    def ok(self, *, expect_results: bool = True) -> bool:
        """Every bag stored, answered (and with a RESULT when expected), nothing aborted."""
        complete = self.stored == self.bags and not self.missing_acks and not self.aborted
        if expect_results:
            complete = complete and not self.missing_results and not self.result_id_mismatches
        return complete

    def latency_percentile_s(self, q: float) -> float | None:
        """The q-th percentile (0..100) of FRAME_END -> RESULT latency, None without results."""
        if not self.latencies_s:
            return None
        return float(np.percentile(list(self.latencies_s.values()), q))

    def summary(self) -> str:
        lines = [
            f"bags {self.bags}: sent {self.sent}, stored {self.stored}, rejected {self.rejected}, "
            f"resent {self.resent}, results {self.results}",
        ]
        p50, p99 = self.latency_percentile_s(50), self.latency_percentile_s(99)
        if p50 is not None and p99 is not None:
            lines.append(
                f"latency FRAME_END -> RESULT: p50 {p50 * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms"
            )
        if self.missing_acks:
            lines.append(
                f"no ACK for {len(self.missing_acks)}: {', '.join(self.missing_acks[:10])}"
            )
        if self.missing_results:
            lines.append(
                f"no RESULT for {len(self.missing_results)}: {', '.join(self.missing_results[:10])}"
            )
        lines += [f"rejected {frame}: {reason}" for frame, reason in self.rejections[:20]]
        lines += [f"appliance error: {error}" for error in self.errors[:20]]
        if self.aborted:
            lines.append(f"aborted: {self.aborted}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["latency_p50_s"] = self.latency_percentile_s(50)
        out["latency_p99_s"] = self.latency_percentile_s(99)
        return out


class ScannerEmulator:
    """Sends `bags` simulated bags (bag i is `simulate_bag(seed + i)`, high and low planar)
    at `rate_hz` bags per second (None or 0: as fast as the link takes them).

    `faults`: bag index -> a name from FAULTS, applied to that bag's first sending only.
    `downsample`: keep every n-th row and column (smaller frames for quick tests).
    `timeout_s`: how long to wait for the last ACKs and RESULTs once nothing comes back,
    and for a stalled write (the appliance not reading) before giving up.
    """

    def __init__(
        self,
        url: str,
        *,
        rate_hz: float | None = 1.0,
        bags: int = 10,
        seed: int = 0,
        chunk: int = 32768,
        lane: int = 1,
        baudrate: int = 115200,
        heartbeat_s: float = 2.0,
        timeout_s: float = 30.0,
        expect_results: bool = True,
        threat_ratio: float = 0.5,
        faults: Mapping[int, str] | None = None,
        downsample: int = 1,
    ) -> None:
        if not 1 <= chunk <= MAX_DATA_CHUNK:
            raise EdgeError(f"chunk: expected 1..{MAX_DATA_CHUNK} bytes, got {chunk}")
        if bags < 0 or downsample < 1:
            raise EdgeError(f"expected bags >= 0 and downsample >= 1, got {bags} and {downsample}")
        for index, name in (faults or {}).items():
            if name not in FAULTS:
                raise EdgeError(
                    f"fault for bag {index}: expected one of {sorted(FAULTS)}, got {name!r}"
                )
        self.url = url
        self.rate_hz = rate_hz
        self.bags = bags
        self.seed = seed
        self.chunk = chunk
        self.lane = lane
        self.baudrate = baudrate
        self.heartbeat_s = heartbeat_s
        self.timeout_s = timeout_s
        self.expect_results = expect_results
        self.threat_ratio = threat_ratio
        self.faults = dict(faults or {})
        self.downsample = downsample
        self._rng = np.random.default_rng(seed)
        self._seq = SeqCounter()
        self._write_lock = threading.Lock()
        self._state = threading.Condition()
        self._stop = threading.Event()
        self._halt = threading.Event()  # stop(): send no more bags
        self._drain = False  # stop(drain=True): await the answers to the bags sent
        self._cut = threading.Event()  # stop(): writes blocked past STOP_GRACE_S given up
        self._cut_timer: threading.Timer | None = None
        self._port_lock = threading.Lock()  # closing the port vs cancelling its write
        self._port: serial.SerialBase | None = None
        self._bags: dict[str, _Bag] = {}
        self._awaiting: collections.deque[str] = collections.deque()  # END sent, unanswered
        self._resend: collections.deque[str] = collections.deque()
        self._report = EmulatorReport(bags)
        self._last_progress = time.monotonic()  # last answer from the appliance
        self._recent: collections.OrderedDict[int, tuple[FrameStart, bytes]] = (
            collections.OrderedDict()
        )

    def run(self) -> EmulatorReport:
        """Send every bag, wait for the answers, and report. LinkError if the port won't open."""
        try:
            self._port = serial.serial_for_url(
                self.url,
                baudrate=self.baudrate,
                timeout=READ_TIMEOUT_S,
                write_timeout=self.timeout_s,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(f"scanner emulator: cannot open {self.url} ({one_line(exc)})") from None
        threads = [
            threading.Thread(target=self._read_forever, name="emulator-read", daemon=True),
            threading.Thread(target=self._beat_forever, name="emulator-beat", daemon=True),
        ]
        for thread in threads:
            thread.start()
        try:
            self._send_all()
        except (serial.SerialException, OSError) as exc:
            self._report.aborted = f"port failed: {one_line(exc)}"
        finally:
            self._stop.set()
            with self._state:
                if self._cut_timer is not None:
                    self._cut_timer.cancel()
            for thread in threads:
                thread.join(5.0)
            with self._port_lock, contextlib.suppress(serial.SerialException, OSError):
                self._port.close()
        return self._finish_report()

    # -- sending -----------------------------------------------------------------------

    def _send_all(self) -> None:
        started = time.monotonic()
        for index in range(self.bags):
            if self._halt.is_set():
                break
            # Resends go first, while their bag is still fresh (and likely rendered).
            due = started + index / self.rate_hz if self.rate_hz else time.monotonic()
            self._serve_resends(until=due)
            seed = self.seed + index
            entry = _Bag(index, seed, f"emu{self.seed}-{index:05d}", f"bag{self.seed}-{index:05d}")
            with self._state:
                self._bags[entry.frame] = entry
            self._send_bag(entry, self.faults.get(index))
        with self._state:
            if self._halt.is_set():
                if not self._drain:
                    return
                self.bags = self._report.bags = len(self._bags)  # the whole run, now
        self._serve_resends(until=None)

    def stop(self, drain: bool = False) -> None:
        """Send no further bags; `run` returns once the bag in flight is sent, or with
        `drain` (a scanner at the end of a shift) once every bag sent so far is answered
        (ACK and RESULT, resends included) or the appliance stays silent for timeout_s.
        Without drain, a bag still being written STOP_GRACE_S later is cut short (the
        appliance is gone or stuck: its write would otherwise wait out the write timeout).
        An emulator runs once."""
        with self._state:
            self._drain = drain
            self._halt.set()
            self._state.notify_all()
            if self._cut_timer is not None:
                self._cut_timer.cancel()
                self._cut_timer = None
            if drain:
                self._cut.clear()  # a drain asked for after a plain stop writes again
            elif not self._stop.is_set():
                self._cut_timer = threading.Timer(STOP_GRACE_S, self._cut_writes)
                self._cut_timer.daemon = True
                self._cut_timer.start()

    def _cut_writes(self) -> None:
        with self._state:
            if self._drain or self._stop.is_set():
                return
            self._cut.set()
        with self._port_lock:
            port = self._port
            if port is not None and port.is_open:
                # pyserial's POSIX ports can abort a blocked write; other URL handlers cannot.
                with contextlib.suppress(AttributeError, serial.SerialException, OSError):
                    port.cancel_write()

    def _serve_resends(self, until: float | None) -> None:
        """Resend rejected bags until `until`; None: until every answer is in, or none came
        for timeout_s."""
        while True:
            with self._state:
                while not self._resend:
                    if self._halt.is_set() and not self._drain:
                        return
                    now = time.monotonic()
                    if until is not None and now >= until:
                        return
                    deadline = self._last_progress + self.timeout_s
                    if until is None and (self._complete() or now >= deadline):
                        return
                    self._state.wait(max(0.0, min((until or deadline) - now, 0.5)))
                frame = self._resend.popleft()
                entry = self._bags[frame]
            self._send_bag(entry, None)
            self._report.resent += 1

    def _complete(self) -> bool:
        for entry in self._bags.values():
            final = entry.status == "stored" or (entry.status == "rejected" and entry.answered >= 2)
            if not final or (
                self.expect_results and entry.status == "stored" and entry.result is None
            ):
                return False
        return len(self._bags) == self.bags

    def _send_bag(self, entry: _Bag, fault: str | None) -> None:
        *body, end = self._packets(entry, fault)
        with self._state:
            entry.attempts += 1
            attempt = entry.attempts
        for out in body:
            self._write(out)
        with self._state:
            # Listed before FRAME_END goes out: its answer may come back at once.
            if entry.answered < attempt:  # not already rejected mid-frame
                self._awaiting.append(entry.frame)
            entry.end_sent_at = self._last_progress = time.monotonic()
        self._write(end)

    def _render(self, entry: _Bag) -> tuple[FrameStart, bytes]:
        """The bag's FRAME_START and image bytes; the last few are kept for resends."""
        if entry.seed in self._recent:
            return self._recent[entry.seed]
        sim = simulate_bag(entry.seed, threat_ratio=self.threat_ratio)
        step = self.downsample
        high = np.ascontiguousarray(sim.high[::step, ::step], dtype="<u2")
        low = np.ascontiguousarray(sim.low[::step, ::step], dtype="<u2")
        image = high.tobytes() + low.tobytes()
        height, width = high.shape
        view = sim.attributes.get("view", "top")
        start = FrameStart(
            entry.frame,
            entry.bag,
            self.lane,
            view,
            width,
            height,
            ("high", "low"),
            "uint16",
            len(image),
        )
        self._recent[entry.seed] = (start, image)
        while len(self._recent) > RECENT_BAGS:
            self._recent.popitem(last=False)
        return start, image

    def _packets(self, entry: _Bag, fault: str | None) -> list[_Out]:
        start, image = self._render(entry)
        if fault == "oversize_frame":
            huge = FrameStart.expected_bytes(MAX_SIDE, MAX_SIDE, 2)
            start = FrameStart(
                entry.frame,
                entry.bag,
                self.lane,
                start.view,
                MAX_SIDE,
                MAX_SIDE,
                start.channels,
                "uint16",
                huge,
            )
        data = [
            _Out(
                PacketType.FRAME_DATA,
                frame_data_payload(offset, image[offset : offset + self.chunk]),
            )
            for offset in range(0, len(image), self.chunk)
        ]
        digest = hashlib.sha256(image).digest()
        middle = len(data) // 2
        if fault in ("flip", "truncate"):
            data[middle].mangle = self._flip_byte if fault == "flip" else _truncate
        elif fault == "drop_chunk":
            del data[middle]
        elif fault == "wrong_hash":
            digest = hashlib.sha256(image + b"tampered").digest()
        elif fault == "oversize_packet":
            offset = middle * self.chunk
            padded = image[offset : offset + self.chunk].ljust(MAX_DATA_CHUNK + 5000, b"\x01")
            data[middle] = _Out(PacketType.FRAME_DATA, frame_data_payload(offset, padded))
        elif fault == "overlap":
            offset = max(0, middle * self.chunk - self.chunk // 2)
            data.insert(
                middle + 1,
                _Out(
                    PacketType.FRAME_DATA,
                    frame_data_payload(offset, image[offset : offset + self.chunk]),
                ),
            )
        elif fault == "out_of_range":
            data.append(_Out(PacketType.FRAME_DATA, frame_data_payload(len(image), b"\x01\x02")))
        head = _Out(PacketType.FRAME_START, start.to_payload())
        if fault == "garbage":
            head.noise = self._rng.integers(0, 256, GARBAGE_BYTES, dtype=np.uint8).tobytes()
        return [head, *data, _Out(PacketType.FRAME_END, digest)]

    def _flip_byte(self, wire: bytes) -> bytes:
        damaged = bytearray(wire)
        at = int(self._rng.integers(1, len(wire) - 1))
        damaged[at] ^= 0x55 if damaged[at] != 0x55 else 0xAA
        return bytes(damaged)

    def _write(self, out: _Out) -> None:
        assert self._port is not None
        with self._write_lock:
            if self._cut.is_set():
                return  # stopped, and the appliance was not reading: the rest is not sent
            # Encoded here rather than with encode_packet: faults need packets it refuses.
            wire = cobs_encode(pack_packet(out.type, self._seq.next(), out.payload)) + DELIMITER
            if out.mangle is not None:
                wire = out.mangle(wire)
            self._port.write(out.noise + wire)

    # -- reading -----------------------------------------------------------------------

    def _read_forever(self) -> None:
        assert self._port is not None
        decoder = PacketDecoder()
        while not self._stop.is_set():
            try:
                data = self._port.read(max(1, min(self._port.in_waiting, 1 << 20)))
            except (serial.SerialException, OSError) as exc:
                with self._state:
                    self._report.aborted = self._report.aborted or f"port failed: {one_line(exc)}"
                    self._state.notify_all()
                return
            for packet in decoder.feed(data):
                try:
                    self._handle(packet.type, packet.payload)
                except PayloadError as exc:
                    with self._state:
                        self._report.errors.append(f"bad {packet.type.name} payload: {exc.message}")

    def _handle(self, kind: PacketType, payload: bytes) -> None:
        if kind is PacketType.ACK:
            ack = parse_ack(payload)
            self._answered(ack.frame, ack.status, ack.id, ack.reason)
        elif kind is PacketType.RESULT:
            result = parse_result(payload)
            with self._state:
                entry = self._bags.get(result["frame"])
                if entry is None:
                    self._report.errors.append(f"RESULT for unknown frame {result['frame']}")
                    return
                if entry.result is None and entry.end_sent_at is not None:
                    entry.latency_s = time.monotonic() - entry.end_sent_at
                entry.result = result
                self._last_progress = time.monotonic()
                if entry.appliance_id is not None and result["id"] != entry.appliance_id:
                    self._report.result_id_mismatches.append(entry.frame)
                self._state.notify_all()
        elif kind is PacketType.ERROR:
            error = parse_error(payload)
            with self._state:
                self._report.errors.append(f"{error.code}: {error.message}")
                frame = self._awaiting[0] if error.code == "no_frame" and self._awaiting else None
            if frame is not None:
                # The appliance answers frames in the order their FRAME_ENDs arrived, so a
                # FRAME_END it could not place belongs to the oldest unanswered frame.
                self._answered(frame, "rejected", None, f"appliance error: {error.message}")
        elif kind is PacketType.HEARTBEAT:
            with self._state:
                self._report.heartbeats_received += 1

    def _answered(self, frame: str, status: str, id: str | int | None, reason: str | None) -> None:
        with self._state:
            entry = self._bags.get(frame)
            if entry is None:
                self._report.errors.append(f"ACK for unknown frame {frame}")
                return
            with contextlib.suppress(ValueError):
                self._awaiting.remove(frame)
            entry.answered = entry.attempts
            self._last_progress = time.monotonic()
            entry.status = status
            if status == "stored":
                entry.appliance_id = id
            else:
                entry.reasons.append(reason or "")
                self._report.rejections.append((frame, reason or ""))
                if entry.attempts < 2:
                    self._resend.append(frame)
            self._state.notify_all()

    def _beat_forever(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with contextlib.suppress(serial.SerialException, OSError):
                self._write(_Out(PacketType.HEARTBEAT, heartbeat_payload("scanning")))

    def _finish_report(self) -> EmulatorReport:
        report = self._report
        with self._state:
            entries = sorted(self._bags.values(), key=lambda e: e.index)
        report.sent = len(entries)
        report.attempts = sum(e.attempts for e in entries)
        for entry in entries:
            if entry.status == "stored":
                report.stored += 1
                assert entry.appliance_id is not None
                report.stored_ids[entry.frame] = entry.appliance_id
                if entry.result is None:
                    report.missing_results.append(entry.frame)
            elif entry.status == "rejected" and entry.answered >= entry.attempts:
                report.rejected += 1
            if entry.answered < entry.attempts:
                report.missing_acks.append(entry.frame)
            if entry.result is not None:
                report.results += 1
                report.result_payloads[entry.frame] = entry.result
                if entry.latency_s is not None:
                    report.latencies_s[entry.frame] = entry.latency_s
        return report


def _truncate(wire: bytes) -> bytes:
    return wire[: len(wire) // 2] + DELIMITER


# ---------------------------------------------------------------------------------------
# A virtual null-modem cable


class PtyPair:
    """Two connected pseudo-terminals: bytes written to `paths[0]` come out of `paths[1]`
    and back. Raw mode, no echo; a full side stalls its writer (back-pressure), as a real
    cable with hardware flow control would. `close()` unplugs the cable."""

    def __init__(self) -> None:
        self._fds: list[int] = []
        masters, paths = [], []
        for _ in range(2):
            master, slave = os.openpty()
            self._fds += [master, slave]
            tty.setraw(master)
            tty.setraw(slave)  # before anyone opens it: no echo, no line editing
            os.set_blocking(master, False)
            masters.append(master)
            paths.append(os.ttyname(slave))
        # The slaves stay open here so the masters do not read EIO while no peer is open.
        self.paths: tuple[str, str] = (paths[0], paths[1])
        self._wake_r, self._wake_w = os.pipe()
        self._threads = [
            threading.Thread(target=self._relay, args=(masters[0], masters[1]), daemon=True),
            threading.Thread(target=self._relay, args=(masters[1], masters[0]), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _relay(self, src: int, dst: int) -> None:
        while True:
            ready, _, _ = select.select([src, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                data = os.read(src, 1 << 16)
            except BlockingIOError:
                continue
            except OSError:
                return
            view = memoryview(data)
            while view:
                ready, writable, _ = select.select([self._wake_r], [dst], [])
                if ready:
                    return
                try:
                    view = view[os.write(dst, view) :]
                except BlockingIOError:
                    continue
                except OSError:
                    return

    def close(self) -> None:
        if self._wake_w < 0:
            return
        os.write(self._wake_w, b"x")
        for thread in self._threads:
            thread.join(5.0)
        for fd in (*self._fds, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_w = -1

    def __enter__(self) -> PtyPair:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ---------------------------------------------------------------------------------------
# Command line


def add_scanner_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `edge simulate scanner`."""
    parser.add_argument("--port", required=True, help="serial device path or pyserial URL")
    parser.add_argument(
        "--rate", type=float, default=1.0, help="bags per second (0: as fast as possible)"
    )
    parser.add_argument("--bags", type=int, default=10, help="number of bags to send")
    parser.add_argument("--seed", type=int, default=0, help="bag i is simulated from seed + i")
    parser.add_argument(
        "--chunk", type=int, default=32768, help="image bytes per FRAME_DATA packet"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for the last answers"
    )
    parser.add_argument("--no-results", action="store_true", help="do not wait for RESULT packets")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON document")


def run_scanner_command(args: argparse.Namespace) -> int:
    """Run the emulator for parsed `add_scanner_arguments` options; 0 when every bag was
    stored (and answered with a RESULT unless --no-results), else 1. Raises EdgeError."""
    emulator = ScannerEmulator(
        args.port,
        rate_hz=args.rate,
        bags=args.bags,
        seed=args.seed,
        chunk=args.chunk,
        timeout_s=args.timeout,
        expect_results=not args.no_results,
    )
    report = emulator.run()
    if args.json:
        print(json.dumps(report.to_dict(), default=str))
    else:
        print(report.summary())
    return 0 if report.ok(expect_results=not args.no_results) else 1


def main_simulate_scanner(argv: Sequence[str] | None = None) -> int:
    """`edge simulate scanner --port URL [--rate R] [--bags N] [--seed S]`: exit status."""
    parser = argparse.ArgumentParser(
        prog="edge simulate scanner",
        description="Emulate a scanner on a serial port: send simulated bags, check ACKs and RESULTs.",
    )
    add_scanner_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_scanner_command(args)
    except EdgeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_status


if __name__ == "__main__":
    sys.exit(main_simulate_scanner())
