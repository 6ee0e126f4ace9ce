"""The screening service: frames in, results kept for the operator, and the process start-up.

`ScreeningService.submit` screens one frame synchronously and never clears a bag it could
not screen; `DemoFeeder` feeds it simulated bags; `run_service` is the start-up checklist
(load model -> start feeder -> start API) with shutdown in reverse on SIGINT/SIGTERM.
Nothing here knows where a frame came from beyond the `source` label it is given.
"""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.detector import Detector
from edge.errors import EdgeError
from edge.frames import Frame, Result, ScreeningState
from edge.pseudocolor import render_pseudocolor
from edge.sim.scene import simulate_bag

logger = logging.getLogger(__name__)

# The shipped factory model (CONTRACT.md 3): what a fresh device screens with.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "demo-xray-det"
NO_MODEL_REASON = "no model loaded"


class UnknownFrameError(EdgeError):
    """A frame id that is not (or no longer) held by the service."""

    http_status = 404


@dataclass(frozen=True)
class ScreenedFrame:
    """One screened (or NOT SCREENED) frame as operators see it; holds no ground truth.

    `received`: ISO 8601 UTC; `shape`: (height, width) in pixels; `rgb`: the (H, W, 3)
    uint8 pseudo-colour rendering shown to operators; `class_names` resolves the result's
    class ids (the model may change between frames).
    """

    id: str
    received: str
    bag: str
    source: str
    result: Result
    shape: tuple[int, int]
    rgb: npt.NDArray[np.uint8] = field(repr=False)
    class_names: tuple[str, ...] = ()

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
            "timings_ms": {k: round(v, 2) for k, v in result.timings_ms.items()},
        }


@dataclass(frozen=True)
class ServiceCounters:
    """Totals since start; `last_latency_ms` is the last submit's render + screening time."""

    frames_in: int = 0
    screened: int = 0
    not_screened: int = 0
    alarms: int = 0
    last_latency_ms: float | None = None


class ScreeningService:
    """Screens frames with one detector (None: every frame NOT SCREENED) and keeps the last
    `history` of them in memory, newest last. Thread-safe: sources may submit concurrently."""

    def __init__(
        self, detector: Detector | None, history: int = 200, model_error: str | None = None
    ) -> None:
        if history < 1:
            raise ValueError(f"history: expected at least 1 frame, got {history}")
        self._detector = detector
        # Why there is no model, when one was asked for and refused.
        self.model_error = model_error if detector is None else None
        self._frames: deque[ScreenedFrame] = deque(maxlen=history)
        self._lock = threading.Lock()
        self._next_id = 1
        self._counters = ServiceCounters()
        self.started_monotonic = time.monotonic()

    @property
    def detector(self) -> Detector | None:
        return self._detector

    @property
    def model_id(self) -> str | None:
        return self._detector.model_id if self._detector is not None else None

    @property
    def model_sha256(self) -> str | None:
        return self._detector.model_sha256 if self._detector is not None else None

    @property
    def class_names(self) -> list[str]:
        return self._detector.class_names if self._detector is not None else []

    @property
    def counters(self) -> ServiceCounters:
        with self._lock:
            return self._counters

    def submit(self, frame: Frame, source: str, bag: str) -> ScreenedFrame:
        """Screen one frame now. Any failure yields NOT SCREENED with the reason, never a clear."""
        t0 = time.perf_counter()
        with self._lock:
            frame_id = f"f-{self._next_id:06d}"
            self._next_id += 1
        received = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        detector = self._detector
        model = detector.model_id if detector is not None else ""
        class_names = tuple(detector.class_names) if detector is not None else ()
        try:
            rgb = _rendering(frame)
        except Exception as exc:
            logger.exception("frame could not be rendered", extra={"frame": frame_id})
            rgb = np.zeros((*frame.shape, 3), np.uint8)
            result = Result.not_screened(f"frame could not be rendered: {exc}", model)
        else:
            result = self._screen(frame, rgb, detector, frame_id)
        latency_ms = (time.perf_counter() - t0) * 1e3
        screened = ScreenedFrame(
            id=frame_id,
            received=received,
            bag=bag,
            source=source,
            result=result,
            shape=frame.shape,
            rgb=rgb,
            class_names=class_names,
        )
        with self._lock:
            self._frames.append(screened)
            c = self._counters
            ok = result.state is ScreeningState.SCREENED
            self._counters = ServiceCounters(
                frames_in=c.frames_in + 1,
                screened=c.screened + ok,
                not_screened=c.not_screened + (not ok),
                alarms=c.alarms + bool(result.alarm),
                last_latency_ms=round(latency_ms, 2),
            )
        logger.info(
            "frame %s bag %s from %s: %s in %.0f ms",
            frame_id,
            bag,
            source,
            "ALARM" if result.alarm else ("CLEAR" if result.alarm is False else "NOT SCREENED"),
            latency_ms,
            extra={
                "frame": frame_id,
                "bag": bag,
                "source": source,
                "state": result.state.value,
                "alarm": result.alarm,
                "latency_ms": round(latency_ms, 1),
            },
        )
        return screened

    def _screen(
        self, frame: Frame, rgb: npt.NDArray[np.uint8], detector: Detector | None, frame_id: str
    ) -> Result:
        if detector is None:
            return Result.not_screened(self._no_model_reason())
        # Handing over the rendering spares a pseudo-colour model from rendering it again;
        # a dual-energy model still reads the channels.
        with_rgb = Frame(high=frame.high, low=frame.low, rgb=rgb, meta=frame.meta)
        try:
            run = detector.detect(with_rgb)
        except EdgeError as exc:
            logger.warning("frame not screened", extra={"frame": frame_id, "reason": exc.message})
            return Result.not_screened(exc.message, detector.model_id)
        except Exception as exc:  # a bug must still never read as a clear bag
            logger.exception("detector crashed", extra={"frame": frame_id})
            return Result.not_screened(f"detector crashed: {exc!r}", detector.model_id)
        return Result(
            ScreeningState.SCREENED, run.detections, detector.model_id, timings_ms=run.timings_ms
        )

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
        if self._detector is None:
            reasons.append(self._no_model_reason())
        with self._lock:
            last = self._frames[-1] if self._frames else None
        if last is not None and last.result.state is ScreeningState.NOT_SCREENED:
            reasons.append(f"last frame {last.id} NOT SCREENED: {last.result.reason}")
        return reasons


def _rendering(frame: Frame) -> npt.NDArray[np.uint8]:
    """The operator's view of a frame: its RGB if it came as one, else the channels rendered."""
    if frame.rgb is not None:
        return frame.rgb
    assert frame.high is not None  # Frame guarantees channels or RGB
    return render_pseudocolor(frame.high, frame.low)


class DemoFeeder(threading.Thread):
    """Submits a simulated bag (source "demo") every `interval` seconds, or a random pick in
    [low, high) seconds, with seeds counting up from `seed` (random when None)."""

    def __init__(
        self,
        service: ScreeningService,
        interval: float | tuple[float, float] = (1.0, 2.0),
        seed: int | None = None,
        threat_ratio: float = 0.5,
    ) -> None:
        super().__init__(name="demo-feeder", daemon=True)
        self._service = service
        self._interval = interval
        self._rng = random.Random(seed)
        self.next_seed = seed if seed is not None else self._rng.randrange(1, 2**31)
        self._threat_ratio = threat_ratio
        self._stop_event = threading.Event()
        self.fed = 0
        self.errors = 0

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        while not self._stop_event.is_set():
            seed = self.next_seed
            self.next_seed += 1
            try:
                bag = simulate_bag(seed, threat_ratio=self._threat_ratio)
                frame = Frame(high=bag.high, low=bag.low, meta={"seed": seed})
                self._service.submit(frame, source="demo", bag=f"demo-{seed}")
                self.fed += 1
            except Exception:  # one bad bag must not stop the demo
                self.errors += 1
                logger.exception("demo feeder failed on a bag", extra={"seed": seed})
            self._stop_event.wait(self._next_wait())

    def _next_wait(self) -> float:
        if isinstance(self._interval, tuple):
            return self._rng.uniform(*self._interval)
        return self._interval


def load_detector(model_dir: Path | str) -> tuple[Detector | None, str | None]:
    """The detector, or None and why: a refused model leaves the service up but visibly
    NOT SCREENING rather than down."""
    try:
        return Detector.load(model_dir), None
    except EdgeError as exc:
        return None, f"model {model_dir} refused: {exc.message}"


def _listen(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket; EdgeError naming the address when that fails."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        raise EdgeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set `stop` on SIGINT/SIGTERM while inside (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, _frame: FrameType | None) -> None:
        logger.info("shutting down", extra={"signal": signal.Signals(signum).name})
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("edge-xray")
    except PackageNotFoundError:
        return "unknown"


def run_service(
    host: str = "127.0.0.1",
    port: int = 8000,
    model_dir: Path | str | None = None,
    demo: bool = True,
    *,
    data_dir: Path | str | None = None,
    demo_interval: float | tuple[float, float] = (1.0, 2.0),
    history: int = 200,
    stop: threading.Event | None = None,
) -> None:
    """Run the appliance until SIGINT/SIGTERM (or `stop` is set), then shut down in reverse.

    `model_dir` None means the shipped factory model. `data_dir` is where the store will
    live; frames are only held in memory for now. A model that fails to load does not
    stop the service: every frame is NOT SCREENED and health says why. EdgeError when the
    address cannot be bound or the API server dies.
    """
    from uvicorn import Config, Server

    from edge.api.app import AppContext, create_app

    stop = stop or threading.Event()
    with _stop_on_signals(stop), contextlib.ExitStack() as shutdown:
        if data_dir is not None:
            logger.info("data directory %s (frames are held in memory only)", data_dir)
        # 1. Model (session warmed up) — refused models leave the service degraded, not down.
        model_dir = DEFAULT_MODEL_DIR if model_dir is None else Path(model_dir)
        detector, model_error = load_detector(model_dir)
        if detector is not None:
            logger.info("model loaded: %s (sha256 %s)", detector.model_id, detector.model_sha256)
        else:
            logger.error("NO MODEL, every frame will be NOT SCREENED: %s", model_error)
        service = ScreeningService(detector, history=history, model_error=model_error)

        # 2. Sources.
        if demo:
            feeder = DemoFeeder(service, interval=demo_interval)
            logger.info("demo feeder starting (seeds from %d)", feeder.next_seed)
            feeder.start()
            shutdown.callback(feeder.join, 10.0)
            shutdown.callback(feeder.stop)

        # 3. API. The socket is bound here so a busy port fails start-up with a clear error.
        sock = _listen(host, port)
        shutdown.callback(sock.close)
        app = create_app(AppContext(service=service, version=_package_version()))
        server = Server(
            Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=3)
        )
        api = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="api")
        api.start()
        shutdown.callback(api.join, 10.0)
        shutdown.callback(setattr, server, "should_exit", True)
        bound_port = sock.getsockname()[1]
        logger.info("operator UI on %s", _url(host, bound_port))

        while not stop.wait(0.5):
            if not api.is_alive():
                raise EdgeError(f"the API server on {host}:{bound_port} stopped unexpectedly")
    logger.info("stopped")
