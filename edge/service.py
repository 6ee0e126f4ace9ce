"""The appliance process: start-up checklist, the demo feeder, and shutdown in reverse.

`run_service` loads the model (in its own process), builds the `Pipeline`, starts the
sources and the API, and on SIGINT/SIGTERM shuts them down in reverse order.
`DemoFeeder` feeds the pipeline simulated bags.
"""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from edge.detector.isolated import IsolatedDetector
from edge.errors import EdgeError
from edge.frames import Frame
from edge.pipeline import Pipeline
from edge.sim.scene import simulate_bag

logger = logging.getLogger(__name__)

# The shipped factory model (CONTRACT.md 3): what a fresh device screens with.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "demo-xray-det"


class DemoFeeder(threading.Thread):
    """Submits a simulated bag (source "demo") every `interval` seconds, or a random pick in
    [low, high) seconds, with seeds counting up from `seed` (random when None)."""

    def __init__(
        self,
        service: Pipeline,
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


def load_detector(
    model_dir: Path | str, deadline_s: float = 10.0
) -> tuple[IsolatedDetector | None, str | None]:
    """The detector in its own process, or None and why: a refused model leaves the
    service up but visibly NOT SCREENING rather than down."""
    detector = IsolatedDetector(model_dir, deadline_s=deadline_s)
    try:
        detector.start()
    except EdgeError as exc:
        detector.close()
        return None, exc.message
    return detector, None


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
        if detector is not None:
            shutdown.callback(detector.close)
        service = Pipeline(detector, history=history, model_error=model_error)
        shutdown.callback(service.close)  # drains the queue before the detector goes

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
