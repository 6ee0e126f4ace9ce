"""The appliance side of the scanner serial link (CONTRACT.md section 1): the I/O shell.

A `ScannerLink` owns one pyserial port (`serial.serial_for_url`, so a device path,
`loop://`, `socket://host:port`, ... all work) and two threads:
- the reader: bytes -> `PacketDecoder` -> `FrameAssembler` -> `on_frame(frame)`, then the
  ACK. `on_frame` answers at once or with a Future that resolves once the frame is durable
  (the ACK goes out then, while the reader reads on). With `max_unacked` frames waiting for
  their ACK, or while `on_frame` blocks (its queue full), the reader does not read, the OS
  buffers fill and the scanner's writes stall: that is the back-pressure;
- the heartbeat: a HEARTBEAT every `heartbeat_s`, and a log line when the scanner falls
  silent (no byte for `silence_s`) or comes back.
A port that fails (device unplugged) is closed, counted and reopened every `reopen_s`
until `stop()`. `send_result()` may be called from any thread; writes share one lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

import serial

from edge.errors import EdgeError
from edge.ingest import one_line
from edge.ingest.frame_assembler import AssembledFrame, FrameAssembler, Orphan, Rejected
from edge.ingest.link_protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    DELIMITER,
    Packet,
    PacketDecoder,
    PacketType,
    PayloadError,
    SeqCounter,
    ack_rejected_payload,
    ack_stored_payload,
    encode_packet,
    error_payload,
    heartbeat_payload,
    parse_error,
    parse_heartbeat,
    result_payload,
)

logger = logging.getLogger(__name__)

READ_TIMEOUT_S = 0.1  # how often the reader looks at the stop flag
MAX_READ = 1 << 20
ACK_WAIT_S = 10.0  # how long a RESULT waits for its frame's ACK to go out first
# Reported by status() from the start, next to the decoder's and the assembler's counters.
COUNTERS = (
    "frames_stored",
    "frames_rejected",
    "results_sent",
    "errors_sent",
    "errors_received",
    "heartbeats_sent",
    "heartbeats_received",
    "seq_gaps",
    "bytes_received",
    "unexpected_packets",
    "bad_payloads",
    "callback_errors",
    "internal_errors",
    "opens",
    "open_failures",
    "port_errors",
    "write_errors",
)


def _raw_reader(port: serial.SerialBase) -> Callable[[], bytes] | None:
    """For a POSIX port (device or pty): one select and one read of everything waiting.

    pyserial's own read loops per call with a Timeout object and reads what the tty hands
    over (often 4 KiB); at 3 MB per frame that overhead is measurable (bench_service).
    None for other transports (loop://, socket://, ...), which keep pyserial's read."""
    fd = getattr(port, "fd", None)
    abort = getattr(port, "pipe_abort_read_r", None)
    if not isinstance(fd, int) or not isinstance(abort, int):
        return None

    def read() -> bytes:
        ready, _, _ = select.select([fd, abort], [], [], READ_TIMEOUT_S)
        if abort in ready:  # cancel_read() from stop()
            os.read(abort, 1000)
            return b""
        if not ready:
            return b""
        try:
            data = os.read(fd, MAX_READ)
        except (BlockingIOError, InterruptedError):
            return b""
        if not data:
            raise serial.SerialException(
                "device reports readiness to read but returned no data (disconnected?)"
            )
        return data

    return read


class LinkError(EdgeError):
    """The scanner link could not send (port not open, gone, or not draining)."""

    http_status = 503


@dataclass(frozen=True)
class FrameOutcome:
    """What `on_frame` made of a frame: `stored` under the appliance's `id` (durable), or
    `rejected` with a `reason` the scanner sees in its ACK."""

    status: Literal["stored", "rejected"]
    id: str | int | None = None
    reason: str | None = None

    @classmethod
    def stored(cls, id: str | int) -> FrameOutcome:
        return cls("stored", id=id)

    @classmethod
    def rejected(cls, reason: str) -> FrameOutcome:
        return cls("rejected", reason=reason)


# on_frame answers at once, or with a Future that resolves once the frame is durable (the
# ACK goes out then, while the reader reads on).
OnFrame = Callable[[AssembledFrame], "FrameOutcome | Future[FrameOutcome]"]


@dataclass(frozen=True)
class LinkStatus:
    """A snapshot of the link. `state`: "connecting" (port not open), "connected",
    "silent" (open, but no byte for silence_s) or "stopped". Ages are in seconds."""

    url: str
    state: str
    last_rx_age_s: float | None
    last_heartbeat_at: str | None  # our clock (ISO 8601 UTC) when the scanner's arrived
    peer_time: str | None  # the `time` in the scanner's last heartbeat
    peer_status: str | None
    last_error: str | None
    counters: dict[str, int]

    @property
    def connected(self) -> bool:
        return self.state in ("connected", "silent")

    @property
    def silent(self) -> bool:
        return self.state == "silent"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for health reports."""
        return asdict(self) | {"connected": self.connected, "silent": self.silent}


class ScannerLink:
    """One scanner on one serial port. `start()`, then frames flow to `on_frame`."""

    def __init__(
        self,
        url: str,
        on_frame: OnFrame,
        *,
        baudrate: int = 115200,
        heartbeat_s: float = 2.0,
        silence_s: float = 10.0,
        reopen_s: float = 2.0,
        write_timeout_s: float = 5.0,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_unacked: int = 4,
    ) -> None:
        if max_unacked < 1:
            raise ValueError(f"max_unacked: expected at least 1, got {max_unacked}")
        self.url = url
        self.baudrate = baudrate
        self.heartbeat_s = heartbeat_s
        self.silence_s = silence_s
        self.reopen_s = reopen_s
        self.write_timeout_s = write_timeout_s
        self._on_frame = on_frame
        self._decoder = PacketDecoder()
        self._assembler = FrameAssembler(max_frame_bytes=max_frame_bytes)
        self._seq = SeqCounter()
        self._write_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._counters: Counter[str] = Counter(dict.fromkeys(COUNTERS, 0))
        self._port: serial.SerialBase | None = None
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_rx: float | None = None
        self._in_callback_since: float | None = None
        self._rx_seq: int | None = None
        self._last_heartbeat_at: str | None = None
        self._peer_time: str | None = None
        self._peer_status: str | None = None
        self._last_error: str | None = None
        self._logged_open_error: str | None = None
        self._was_silent = False
        self._torn = False  # the last write failed part-way
        self.max_unacked = max_unacked
        self._unacked = threading.BoundedSemaphore(max_unacked)
        self._acks_due: dict[str, threading.Event] = {}  # scanner frame id -> ACK sent

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the reader and heartbeat threads; the port opens (and reopens) in them."""
        if self._threads:
            raise RuntimeError("scanner link already started")
        self._threads = [
            threading.Thread(target=self._read_forever, name=f"link-read {self.url}", daemon=True),
            threading.Thread(target=self._beat_forever, name=f"link-beat {self.url}", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop both threads and close the port. Waits for an `on_frame` call in progress."""
        self._stop.set()
        port = self._port
        if port is not None:
            # Not every transport can cancel; the read then ends at its time-out.
            with contextlib.suppress(Exception):
                port.cancel_read()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                logger.warning("scanner link %s: thread %s did not stop", self.url, thread.name)

    def __enter__(self) -> ScannerLink:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def wait_connected(self, timeout_s: float) -> bool:
        """True once the port is open (False on time-out)."""
        return self._connected.wait(timeout_s)

    # -- sending -----------------------------------------------------------------------

    def send_result(self, result: Mapping[str, Any]) -> None:
        """Send a RESULT. `result` has exactly the contract's fields: frame, bag, id,
        alarm (True/False/None), reason (only when alarm is None), model "name@version",
        detections [{"class", "score", "box": [x1, y1, x2, y2] frame pixels}].
        A frame's RESULT waits (at most ACK_WAIT_S) for its ACK to be sent first.
        BadInputError for a malformed dict; LinkError when it cannot be sent."""
        payload = result_payload(result)
        with self._state_lock:
            acked = self._acks_due.get(str(result.get("frame")))
        if acked is not None and not acked.wait(ACK_WAIT_S):
            logger.warning(
                "scanner link %s: RESULT of %s before its ACK", self.url, result["frame"]
            )
        self._send(PacketType.RESULT, payload)
        self._count("results_sent")

    def send_error(self, code: str, message: str) -> None:
        """Send an ERROR packet to the scanner; LinkError when it cannot be sent."""
        self._send(PacketType.ERROR, error_payload(code, message))
        self._count("errors_sent")

    def _send(self, type_: PacketType, payload: bytes) -> None:
        with self._write_lock:
            port = self._port
            if port is None:
                raise LinkError(f"scanner link {self.url}: not connected, {type_.name} not sent")
            data = encode_packet(type_, self._seq.next(), payload)
            if self._torn:
                # A timed-out write may have left half a packet on the line; a delimiter
                # ends it there instead of letting it swallow this packet.
                data = DELIMITER + data
            try:
                port.write(data)
                self._torn = False
            except (serial.SerialException, OSError) as exc:
                self._torn = True
                self._count("write_errors")
                raise LinkError(
                    f"scanner link {self.url}: {type_.name} not sent ({one_line(exc)})"
                ) from None

    # -- status ------------------------------------------------------------------------

    def status(self) -> LinkStatus:
        now = time.monotonic()
        with self._state_lock:
            counters = dict(self._counters)
        counters.update(self._decoder.stats.as_dict())
        counters.update({f"assembler_{k}": v for k, v in vars(self._assembler.stats).items()})
        last_rx = self._last_rx
        return LinkStatus(
            url=self.url,
            state=self._state(now),
            last_rx_age_s=None if last_rx is None else round(now - last_rx, 3),
            last_heartbeat_at=self._last_heartbeat_at,
            peer_time=self._peer_time,
            peer_status=self._peer_status,
            last_error=self._last_error,
            counters=counters,
        )

    def _state(self, now: float) -> str:
        if self._stop.is_set():
            return "stopped"
        if not self._connected.is_set():
            return "connecting"
        last_rx = self._last_rx
        # While on_frame holds the reader, unread bytes are back-pressure, not silence.
        busy = self._in_callback_since is not None
        if last_rx is not None and not busy and now - last_rx > self.silence_s:
            return "silent"
        return "connected"

    def _count(self, name: str, n: int = 1) -> None:
        with self._state_lock:
            self._counters[name] += n

    # -- reader thread -----------------------------------------------------------------

    def _read_forever(self) -> None:
        while not self._stop.is_set():
            port = self._open()
            if port is None:
                self._stop.wait(self.reopen_s)
                continue
            try:
                self._read_port(port)
            except (serial.SerialException, OSError) as exc:
                self._count("port_errors")
                self._last_error = f"port failed: {one_line(exc)}"
                logger.error("scanner link %s: %s; reopening", self.url, self._last_error)
                self._close()
                self._stop.wait(self.reopen_s)
            finally:
                self._close()

    def _open(self) -> serial.SerialBase | None:
        try:
            port = serial.serial_for_url(
                self.url,
                baudrate=self.baudrate,
                timeout=READ_TIMEOUT_S,
                write_timeout=self.write_timeout_s,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            self._count("open_failures")
            error = f"cannot open port: {one_line(exc)}"
            # Log a failure once, not every retry of a box nobody watches.
            if error != self._logged_open_error:
                self._logged_open_error = error
                logger.warning(
                    "scanner link %s: %s; retrying every %ss", self.url, error, self.reopen_s
                )
            self._last_error = error
            return None
        self._logged_open_error = None
        self._decoder.reset()
        self._assembler.reset()
        self._rx_seq = None
        self._last_rx = time.monotonic()
        with self._write_lock:
            self._port = port
            self._torn = False
        self._connected.set()
        self._count("opens")
        logger.info("scanner link %s: port open", self.url)
        self._send_heartbeat()
        return port

    def _close(self) -> None:
        with self._write_lock:
            port, self._port = self._port, None
        self._connected.clear()
        if port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()
            if self._assembler.open_frame is not None:
                logger.warning(
                    "scanner link %s: frame %s lost with the port, the scanner must resend",
                    self.url,
                    self._assembler.open_frame,
                )
            self._assembler.reset()

    def _read_port(self, port: serial.SerialBase) -> None:
        read = _raw_reader(port) or (lambda: port.read(min(max(port.in_waiting, 1), MAX_READ)))
        while not self._stop.is_set():
            data = read()
            if not data:
                continue
            self._last_rx = time.monotonic()
            self._count("bytes_received", len(data))
            for packet in self._decoder.feed(data):
                try:
                    self._handle(packet)
                except LinkError as exc:
                    logger.warning("%s", exc.message)
                except Exception:
                    # A bug here must not take the link down with it.
                    self._count("internal_errors")
                    logger.exception("scanner link %s: packet handling failed", self.url)
        self._drain_acks()

    def _drain_acks(self, timeout_s: float = 5.0) -> None:
        """On stop: give frames being stored the time to be ACKed before the port closes."""
        deadline = time.monotonic() + timeout_s
        taken = 0
        while taken < self.max_unacked and self._unacked.acquire(
            timeout=max(0.0, deadline - time.monotonic())
        ):
            taken += 1
        for _ in range(taken):
            self._unacked.release()

    def _handle(self, packet: Packet) -> None:
        if self._rx_seq is not None and packet.seq != (self._rx_seq + 1) & 0xFFFF:
            self._count("seq_gaps")
        self._rx_seq = packet.seq
        kind = packet.type
        if kind in (PacketType.FRAME_START, PacketType.FRAME_DATA, PacketType.FRAME_END):
            for event in self._assembler.feed(packet):
                if isinstance(event, AssembledFrame):
                    self._deliver(event)
                elif isinstance(event, Rejected):
                    self._reject(event.frame, event.reason)
                else:
                    self._orphan(event)
        elif kind is PacketType.HEARTBEAT:
            self._heartbeat_received(packet.payload)
        elif kind is PacketType.ERROR:
            self._count("errors_received")
            try:
                report = parse_error(packet.payload)
                logger.warning(
                    "scanner %s reports error %s: %s", self.url, report.code, report.message
                )
            except PayloadError as exc:
                self._count("bad_payloads")
                logger.warning("scanner link %s: %s", self.url, exc.message)
        else:
            # ACK and RESULT only flow from the appliance; an echo or a miswired peer.
            self._count("unexpected_packets")

    def _deliver(self, frame: AssembledFrame) -> None:
        # At most max_unacked frames between "assembled" and their ACK: past that the
        # reader stops reading and the scanner's writes stall (back-pressure).
        self._in_callback_since = time.monotonic()
        while not self._unacked.acquire(timeout=READ_TIMEOUT_S):
            if self._stop.is_set():  # never ACKed: the scanner resends it
                self._in_callback_since = None
                logger.warning("scanner link %s: stopped before frame %s", self.url, frame.frame)
                return
        with self._state_lock:
            self._acks_due[frame.frame] = threading.Event()
        try:
            outcome: FrameOutcome | Future[FrameOutcome] = self._on_frame(frame)
        except Exception as exc:
            outcome = self._failed(frame, exc)
        finally:
            self._in_callback_since = None
        if isinstance(outcome, FrameOutcome):
            self._acknowledge(frame, outcome)
            return
        outcome.add_done_callback(lambda done: self._acknowledge_future(frame, done))

    def _acknowledge_future(self, frame: AssembledFrame, done: Future[FrameOutcome]) -> None:
        """The ACK of a frame stored asynchronously, on the thread that completed it."""
        try:
            outcome = done.result()
        except Exception as exc:
            outcome = self._failed(frame, exc)
        try:
            self._acknowledge(frame, outcome)
        except LinkError as exc:  # the port went away meanwhile: the scanner resends
            logger.warning("%s", exc.message)
        except Exception:
            self._count("internal_errors")
            logger.exception("scanner link %s: ACK of %s failed", self.url, frame.frame)

    def _failed(self, frame: AssembledFrame, exc: BaseException) -> FrameOutcome:
        """Any failure to store a frame is its rejection."""
        if isinstance(exc, EdgeError):
            return FrameOutcome.rejected(f"not stored: {exc.message}")
        self._count("callback_errors")
        logger.error(
            "scanner link %s: storing frame %s failed",
            self.url,
            frame.frame,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        return FrameOutcome.rejected(f"not stored: {one_line(exc)}")

    def _acknowledge(self, frame: AssembledFrame, outcome: FrameOutcome) -> None:
        self._unacked.release()
        try:
            self._send_ack(frame, outcome)
        finally:
            with self._state_lock:
                acked = self._acks_due.pop(frame.frame, None)
            if acked is not None:
                acked.set()

    def _send_ack(self, frame: AssembledFrame, outcome: FrameOutcome) -> None:
        if outcome.status == "stored" and outcome.id is None:
            self._count("callback_errors")
            logger.error("scanner link %s: on_frame said stored without an id", self.url)
            outcome = FrameOutcome.rejected("not stored: no appliance id")
        if outcome.status == "stored" and outcome.id is not None:
            self._count("frames_stored")
            self._send(PacketType.ACK, ack_stored_payload(frame.frame, outcome.id))
        else:
            self._reject(frame.frame, outcome.reason or "not stored")

    def _reject(self, frame: str, reason: str) -> None:
        self._count("frames_rejected")
        logger.warning(
            "scanner link %s: frame %s rejected: %s",
            self.url,
            frame,
            reason,
            extra={"frame": frame, "reason": reason},
        )
        self._send(PacketType.ACK, ack_rejected_payload(frame, reason))

    def _orphan(self, orphan: Orphan) -> None:
        logger.warning("scanner link %s: %s", self.url, orphan.reason)
        self.send_error("no_frame", orphan.reason)

    def _heartbeat_received(self, payload: bytes) -> None:
        try:
            beat = parse_heartbeat(payload)
        except PayloadError as exc:
            self._count("bad_payloads")
            logger.warning("scanner link %s: %s", self.url, exc.message)
            return
        self._count("heartbeats_received")
        self._last_heartbeat_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        self._peer_time = beat.time
        self._peer_status = beat.status

    # -- heartbeat thread --------------------------------------------------------------

    def _beat_forever(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if self._connected.is_set():
                self._send_heartbeat()
            silent = self._state(time.monotonic()) == "silent"
            if silent != self._was_silent:
                self._was_silent = silent
                if silent:
                    logger.warning(
                        "scanner link %s: silent, nothing received for %ss",
                        self.url,
                        self.silence_s,
                    )
                else:
                    logger.info("scanner link %s: scanner heard again", self.url)

    def _send_heartbeat(self) -> None:
        status = "busy" if self._in_callback_since is not None else "ok"
        try:
            self._send(PacketType.HEARTBEAT, heartbeat_payload(status))
            self._count("heartbeats_sent")
        except LinkError as exc:
            logger.debug("%s", exc.message)
