"""The screening pipeline: ingest -> durable store -> bounded queue -> detector -> fan-out.

`Pipeline.ingest` logs a frame durably (when a store is attached) and queues it for the
detector, blocking when the queue is full: that is the back-pressure a serial link turns
into a delayed ACK and a hot folder into waiting files. One worker screens queued frames in
order; a frame the detector did not screen is NOT SCREENED everywhere (store, API, serial
RESULT), never clear. The detector can be swapped between two frames without dropping or
double-screening one. Nothing here knows where a frame came from beyond its `Intake`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from edge.errors import EdgeError
from edge.frames import Frame, Result, ScreeningState
from edge.pseudocolor import render_pseudocolor

logger = logging.getLogger(__name__)

NO_MODEL_REASON = "no model loaded"
LATENCY_WINDOW = 2000  # frames kept for the latency percentiles


class UnknownFrameError(EdgeError):
    """A frame id that is not (or no longer) held by the service."""

    http_status = 404


class Screener(Protocol):
    """A model ready to screen: the in-process `LocalScreener` or an `IsolatedDetector`."""

    @property
    def model_id(self) -> str: ...
    @property
    def model_sha256(self) -> str: ...
    @property
    def class_names(self) -> list[str]: ...
    def screen(self, frame: Frame) -> Result: ...
    def close(self) -> None: ...


class Store(Protocol):
    """What the pipeline needs of the image log (edge.store.Store)."""

    def add_frame_async(
        self,
        frame: Frame,
        *,
        source: str | None = ...,
        bag: str | None = ...,
        lane: int | None = ...,
        view: str | None = ...,
        scanner_frame_id: str | None = ...,
    ) -> Future[Any]: ...
    def add_result(
        self, frame_id: str, result: Result, model_sha256: str | None, class_names: list[str] | None
    ) -> Any: ...


@dataclass(frozen=True)
class Intake:
    """Where a frame came from and where its RESULT goes (`reply`, e.g. the serial link)."""

    source: str
    bag: str | None = None
    lane: int | None = None
    view: str | None = None
    scanner_frame_id: str | None = None
    reply: Callable[[dict[str, Any]], None] | None = None


@dataclass(frozen=True)
class ScreenedFrame:
    """One screened (or NOT SCREENED) frame as operators see it; holds no ground truth.

    `received`: ISO 8601 UTC; `shape`: (height, width) in pixels; `rgb`: the (H, W, 3)
    uint8 pseudo-colour rendering shown to operators; `class_names` resolves the result's
    class ids (the model may change between frames); `logged`: its image and row are in
    the store.
    """

    id: str
    received: str
    bag: str
    source: str
    result: Result
    shape: tuple[int, int]
    rgb: npt.NDArray[np.uint8] = field(repr=False)
    class_names: tuple[str, ...] = ()
    logged: bool = False
    scanner_frame_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, repr=False)  # the source's metadata

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record; detection boxes are xyxy in frame pixels."""
        result = self.result
        return {
            "id": self.id,
            "time": self.received,
            "bag": self.bag,
            "source": self.source,
            "state": result.state.value,
            "alarm": result.alarm,
            "reason": result.reason,
            "model": result.model or None,
            "detections": result.detections.to_list(list(self.class_names)),
            "width": self.shape[1],
            "height": self.shape[0],
            "logged": self.logged,
            "timings_ms": {k: round(v, 2) for k, v in result.timings_ms.items()},
        }

    def result_message(self) -> dict[str, Any]:
        """The serial RESULT payload (CONTRACT.md section 1)."""
        message: dict[str, Any] = {
            "frame": self.scanner_frame_id or self.id,
            "bag": self.bag,
            "id": self.id,
            "alarm": self.result.alarm,
            "model": self.result.model,
            "detections": self.result.detections.to_list(list(self.class_names)),
        }
        if self.result.alarm is None:
            message["reason"] = self.result.reason or "not screened"
        return message


@dataclass(frozen=True)
class Ticket:
    """The answer to `ingest`: the appliance's id, whether the frame is durable, and a
    future resolving to the ScreenedFrame once screened."""

    id: str
    durable: bool
    screened: Future[ScreenedFrame]
    not_logged_reason: str | None = None
    stored_ms: float = 0.0  # from intake until durable (or refused)


@dataclass(frozen=True)
class ServiceCounters:
    """Totals since start; `last_latency_ms` is the last frame's ingest-to-result time."""

    frames_in: int = 0
    screened: int = 0
    not_screened: int = 0
    alarms: int = 0
    not_logged: int = 0
    last_latency_ms: float | None = None


class LocalScreener:
    """An in-process Detector behind the Screener interface (tests, tools, a dev machine);
    any failure is a NOT SCREENED result."""

    def __init__(self, detector: Any) -> None:
        self._detector = detector

    @property
    def model_id(self) -> str:
        return str(self._detector.model_id)

    @property
    def model_sha256(self) -> str:
        return str(self._detector.model_sha256)

    @property
    def class_names(self) -> list[str]:
        return list(self._detector.class_names)

    def screen(self, frame: Frame) -> Result:
        try:
            run = self._detector.detect(frame)
        except EdgeError as exc:
            return Result.not_screened(exc.message, self.model_id)
        except Exception as exc:  # a bug must still never read as a clear bag
            logger.exception("detector crashed")
            return Result.not_screened(f"detector crashed: {exc!r}", self.model_id)
        return Result(
            ScreeningState.SCREENED, run.detections, self.model_id, timings_ms=run.timings_ms
        )

    def close(self) -> None:
        """Nothing to release: the session goes with the object."""


@dataclass
class _Job:
    frame: Frame
    intake: Intake
    received: str
    started: float
    ticket: Future[Ticket]  # resolves once the frame is durable (or the store refused it)
    future: Future[ScreenedFrame]


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _rendering(frame: Frame) -> npt.NDArray[np.uint8]:
    """The operator's view of a frame: its RGB if it came as one, else the channels rendered."""
    if frame.rgb is not None:
        return frame.rgb
    assert frame.high is not None  # Frame guarantees channels or RGB
    return render_pseudocolor(frame.high, frame.low)


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None}
    arr = np.asarray(values)
    return {
        "p50": round(float(np.percentile(arr, 50)), 2),
        "p99": round(float(np.percentile(arr, 99)), 2),
    }


class Pipeline:
    """Screens frames with one Screener (None: every frame NOT SCREENED), logs them in the
    store when one is given, keeps the last `history` frames in memory for the UI."""

    def __init__(
        self,
        screener: Screener | None,
        *,
        store: Store | None = None,
        history: int = 200,
        queue_frames: int = 8,
        model_error: str | None = None,
    ) -> None:
        if history < 1:
            raise ValueError(f"history: expected at least 1 frame, got {history}")
        self._screener = screener
        self.model_error = model_error if screener is None else None
        self._store = store
        self._frames: deque[ScreenedFrame] = deque(maxlen=history)
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_frames)
        self._lock = threading.Lock()
        self._detect_lock = threading.Lock()  # held while a frame is screened; swaps wait
        self._next_id = 1
        self._counters = ServiceCounters()
        self._latency: dict[str, deque[float]] = {
            k: deque(maxlen=LATENCY_WINDOW) for k in ("store", "queue", "detect", "total")
        }
        self._subscribers: list[Callable[[ScreenedFrame], None]] = []
        self.started_monotonic = time.monotonic()
        self._busy_since: float | None = None  # when the worker took its current frame
        self._worker = threading.Thread(target=self._work, name="detector-worker", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------------ the model

    @property
    def screener(self) -> Screener | None:
        return self._screener

    @property
    def model_id(self) -> str | None:
        return self._screener.model_id if self._screener is not None else None

    @property
    def model_sha256(self) -> str | None:
        return self._screener.model_sha256 if self._screener is not None else None

    @property
    def class_names(self) -> list[str]:
        return self._screener.class_names if self._screener is not None else []

    def swap_screener(self, new: Screener) -> Screener | None:
        """Screen every later frame with `new`; the frame in flight finishes on the old one.

        Returns the old screener (closed by the caller when it wants to roll back, or now).
        """
        with self._detect_lock:
            old, self._screener = self._screener, new
            self.model_error = None
        logger.info("model swapped: %s -> %s", old.model_id if old else None, new.model_id)
        return old

    # ------------------------------------------------------------------ intake

    def ingest(self, frame: Frame, intake: Intake) -> Ticket:
        """Log `frame` durably (if a store is attached) and queue it; blocks while the
        queue is full. A frame the store cannot take is still screened."""
        return self.ingest_async(frame, intake).result()

    def ingest_async(self, frame: Frame, intake: Intake) -> Future[Ticket]:
        """Queue `frame` and start logging it; blocks only while the queue is full (the
        back-pressure). The Future resolves to the Ticket once the frame is durable, or
        once the store refused it (not durable, screened all the same). The worker screens
        a frame only after its Ticket is known, so ids and RESULTs follow durability."""
        started = time.monotonic()
        received = _utc_now()
        ticket: Future[Ticket] = Future()
        screened: Future[ScreenedFrame] = Future()

        def settle(stored: Future[Any] | None) -> None:
            durable, reason, frame_id = False, None, None
            if stored is not None:
                try:
                    frame_id, durable = str(stored.result().id), True
                except EdgeError as exc:  # disk full and friends: logging degrades
                    reason = exc.message
                    logger.error("frame not logged: %s", reason)
                except Exception as exc:  # a bug, not the disk: still screened, still visible
                    reason = f"{type(exc).__name__}: {exc}"
                    logger.exception("frame not logged")
            if frame_id is None:
                with self._lock:
                    frame_id = f"{'u' if self._store is not None else 'f'}-{self._next_id:06d}"
                    self._next_id += 1
            stored_ms = (time.monotonic() - started) * 1e3
            ticket.set_result(Ticket(frame_id, durable, screened, reason, stored_ms))

        if self._store is None:
            settle(None)
        else:
            try:
                pending = self._store.add_frame_async(
                    frame,
                    source=intake.source,
                    bag=intake.bag,
                    lane=intake.lane,
                    view=intake.view,
                    scanner_frame_id=intake.scanner_frame_id,
                )
            except Exception as exc:  # refused before the write started (encoding, closed)
                failed: Future[Any] = Future()
                failed.set_exception(exc)
                pending = failed
            pending.add_done_callback(settle)
        self._queue.put(_Job(frame, intake, received, started, ticket, screened))
        return ticket

    def submit(
        self, frame: Frame, source: str, bag: str, timeout: float | None = None
    ) -> ScreenedFrame:
        """Ingest one frame and wait for its result (uploads, the demo, tools)."""
        ticket = self.ingest(frame, Intake(source=source, bag=bag))
        return ticket.screened.result(timeout)

    def subscribe(self, callback: Callable[[ScreenedFrame], None]) -> Callable[[], None]:
        """Call `callback` with every screened frame (from the worker thread); returns an
        unsubscribe function."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    # ------------------------------------------------------------------ the worker

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            self._busy_since = time.monotonic()
            try:
                self._settle(job)
            finally:
                self._busy_since = None

    def _settle(self, job: _Job) -> None:
        ticket = job.ticket.result()  # settles from the writer thread; never raises
        try:
            screened = self._screen(job, ticket)
        except Exception as exc:  # never lose the frame's future, whatever broke
            logger.exception("pipeline failed on frame %s", ticket.id)
            job.future.set_exception(exc)
            return
        job.future.set_result(screened)

    def making_progress(self, stall_s: float) -> bool:
        """The worker runs and is idle, or has held its current frame for under `stall_s`
        seconds: the systemd watchdog's view of the pipeline."""
        busy_since = self._busy_since
        if not self._worker.is_alive():
            return False
        return busy_since is None or time.monotonic() - busy_since < stall_s

    def _screen(self, job: _Job, ticket: Ticket) -> ScreenedFrame:
        dequeued = time.monotonic()
        try:
            rgb = _rendering(job.frame)
        except Exception as exc:
            logger.exception("frame %s could not be rendered", ticket.id)
            rgb = np.zeros((*job.frame.shape, 3), np.uint8)
            result = Result.not_screened(f"frame could not be rendered: {exc}", self.model_id or "")
            class_names: tuple[str, ...] = ()
            sha = None
        else:
            with self._detect_lock:
                screener = self._screener
                if screener is None:
                    result = Result.not_screened(self._no_model_reason())
                    class_names, sha = (), None
                else:
                    with_rgb = Frame(
                        high=job.frame.high, low=job.frame.low, rgb=rgb, meta=job.frame.meta
                    )
                    result = screener.screen(with_rgb)
                    class_names, sha = tuple(screener.class_names), screener.model_sha256
        detected = time.monotonic()
        logged = ticket.durable
        if ticket.durable and self._store is not None:
            try:
                self._store.add_result(ticket.id, result, sha, list(class_names))
            except EdgeError as exc:
                logged = False
                logger.error("result of %s not logged: %s", ticket.id, exc.message)
        screened = ScreenedFrame(
            id=ticket.id,
            received=job.received,
            bag=job.intake.bag or ticket.id,
            source=job.intake.source,
            result=result,
            shape=job.frame.shape,
            rgb=rgb,
            class_names=class_names,
            logged=logged,
            scanner_frame_id=job.intake.scanner_frame_id,
            meta=job.frame.meta,
        )
        total_ms = (time.monotonic() - job.started) * 1e3
        with self._lock:
            self._frames.append(screened)
            c = self._counters
            ok = result.alarm is not None
            self._counters = ServiceCounters(
                frames_in=c.frames_in + 1,
                screened=c.screened + ok,
                not_screened=c.not_screened + (not ok),
                alarms=c.alarms + bool(result.alarm),
                not_logged=c.not_logged + (not logged and self._store is not None),
                last_latency_ms=round(total_ms, 2),
            )
            self._latency["store"].append(ticket.stored_ms)
            self._latency["queue"].append((dequeued - job.started) * 1e3 - ticket.stored_ms)
            self._latency["detect"].append((detected - dequeued) * 1e3)
            self._latency["total"].append(total_ms)
            subscribers = list(self._subscribers)
        state = {True: "ALARM", False: "CLEAR", None: "NOT SCREENED"}[result.alarm]
        logger.info(
            "frame %s bag %s from %s: %s in %.0f ms",
            ticket.id,
            screened.bag,
            screened.source,
            state,
            total_ms,
        )
        if job.intake.reply is not None:
            try:
                job.intake.reply(screened.result_message())
            except EdgeError as exc:  # the link is down: the scanner asks again or resends
                logger.warning("RESULT of %s not sent: %s", ticket.id, exc.message)
            except Exception:
                logger.exception("could not send the RESULT of %s", ticket.id)
        for callback in subscribers:
            try:
                callback(screened)
            except Exception:
                logger.exception("a result subscriber failed")
        return screened

    # ------------------------------------------------------------------ reads

    @property
    def counters(self) -> ServiceCounters:
        with self._lock:
            return self._counters

    def queue_depth(self) -> int:
        return self._queue.qsize()

    def latency_ms(self) -> dict[str, dict[str, float | None]]:
        """p50/p99 per stage over the last frames: store, queue wait, detect, total."""
        with self._lock:
            samples = {k: list(v) for k, v in self._latency.items()}
        return {k: _percentiles(v) for k, v in samples.items()}

    def recent(self, limit: int | None = None) -> list[ScreenedFrame]:
        """Frames held, newest first, at most `limit`."""
        with self._lock:
            frames = list(self._frames)
        frames.reverse()
        return frames if limit is None else frames[: max(limit, 0)]

    def latest(self) -> ScreenedFrame:
        """The newest frame; UnknownFrameError before the first."""
        with self._lock:
            if not self._frames:
                raise UnknownFrameError("no frame has been received yet")
            return self._frames[-1]

    def get(self, frame_id: str) -> ScreenedFrame:
        """The frame with this id; UnknownFrameError if never seen or already dropped."""
        with self._lock:
            for frame in reversed(self._frames):
                if frame.id == frame_id:
                    return frame
        raise UnknownFrameError(f"frame {frame_id!r} is unknown or no longer held in memory")

    def _no_model_reason(self) -> str:
        if self.model_error is None:
            return NO_MODEL_REASON
        return f"{NO_MODEL_REASON}: {self.model_error}"

    def degraded(self) -> list[str]:
        """Operator-readable reasons the service is not screening normally; empty when fine."""
        reasons = []
        if self._screener is None:
            reasons.append(self._no_model_reason())
        with self._lock:
            last = self._frames[-1] if self._frames else None
        if last is not None and last.result.alarm is None:
            reasons.append(f"last frame {last.id} NOT SCREENED: {last.result.reason}")
        if last is not None and self._store is not None and not last.logged:
            reasons.append(f"logging degraded: frame {last.id} was not stored")
        return reasons

    def close(self, timeout: float = 30.0) -> None:
        """Screen what is queued, then stop the worker."""
        self._queue.put(None)
        self._worker.join(timeout)
