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

from calibration.ingest import FrameCalibration
from calibration.overrides import thresholds_for
from edge.about import package_version
from edge.config import DEFAULT_MODEL_DIR, EdgeConfig, FolderSource, SerialSource
from edge.detector.isolated import IsolatedDetector
from edge.errors import EdgeError
from edge.pipeline import Pipeline
from edge.sim.scanner import PtyPair, ScannerEmulator
from edge.sources import folder_source, link_status, serial_source, tdr_writer
from edge.store import RetentionPolicy, Store
from edge.systemd import Heartbeat, Notifier, Watchdog, watchdog_interval_s
from edge.upgrade.engine import UpgradeSettings
from edge.upgrade.errors import UpgradeBusyError
from edge.upgrade.gate import RegressionGate
from edge.upgrade.manager import ModelManager, ModelSwitcher
from edge.upgrade.usb_watch import UsbWatcher

logger = logging.getLogger(__name__)

MAIN_LOOP_STALL_S = 10.0  # the main loop turns every 0.5 s; this long without a turn is a hang


def load_detector(
    model_dir: Path | str, config: EdgeConfig | None = None, data_dir: Path | None = None
) -> tuple[IsolatedDetector | None, str | None]:
    """The detector in its own process, or None and why: a refused model leaves the
    service up but visibly NOT SCREENING rather than down. With `data_dir`, the device's
    calibrated thresholds (`edge calibrate thresholds`) replace the manifest's when they
    were made for this model (same SHA-256)."""
    model = (config or EdgeConfig()).model
    overrides = None if data_dir is None else thresholds_for(data_dir, Path(model_dir))
    detector = IsolatedDetector(
        model_dir,
        deadline_s=model.deadline_s,
        providers=model.providers,
        intra_op_threads=model.intra_op_threads or None,
        thresholds=overrides,
    )
    try:
        info = detector.start()
    except EdgeError as exc:
        detector.close()
        return None, exc.message
    source = "device calibration" if overrides else "model manifest"
    logger.info(
        "thresholds in force for %s (%s): %s",
        info.model_id, source, ", ".join(f"{k} {v:g}" for k, v in info.thresholds.items()),
    )  # fmt: skip
    return detector, None


def open_model_manager(config: EdgeConfig, data_dir: Path) -> ModelManager:
    """The data directory's model store, ready: the factory model installed on a fresh
    device, and what a power cut during an upgrade left repaired (a pending model checked,
    then confirmed or rolled back)."""
    settings = UpgradeSettings.from_config(config, data_dir)
    assert settings.suite_dir is not None
    manager = ModelManager(data_dir, settings, RegressionGate(settings.suite_dir, data_dir))
    try:
        with manager.store.lock():
            for note in manager.upgrader("service").prepare():
                logger.warning("model store: %s", note)
    except UpgradeBusyError:
        logger.warning("an upgrade is in progress; the service follows its outcome")
    return manager


def usb_watcher(config: EdgeConfig, models: ModelManager | None) -> UsbWatcher | None:
    """The watcher of `upgrade.usb_dir`, not started; None when the key is unset or the
    model was named explicitly (no model store, so nothing to upgrade)."""
    folder = config.upgrade.usb_dir
    if folder is None:
        return None
    if models is None:
        logger.warning("upgrade.usb_dir %s not watched: the model was named explicitly", folder)
        return None
    return UsbWatcher(folder, models, config.upgrade.usb_scan_s)


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


def run_service(
    config: EdgeConfig,
    *,
    data_dir: Path,
    demo: bool = True,
    history: int = 200,
    stop: threading.Event | None = None,
    model_override: Path | None = None,
) -> None:
    """Run the appliance until SIGINT/SIGTERM (or `stop` is set), then shut down in reverse.

    Start-up checklist: open the store -> load the model (in its own process, warmed up)
    -> start the pipeline -> start the sources -> start the API -> tell systemd READY (and
    ping its watchdog while the main loop and pipeline make progress). A model that fails to
    load does not stop the service: every frame is NOT SCREENED and health says why.
    With no source configured and `demo`, the built-in scanner emulator feeds simulated
    bags through the real serial ingest path (a pty pair). EdgeError when the store cannot
    open, the address cannot be bound or the API server dies.
    """
    from uvicorn import Config, Server

    from edge.api.app import AppContext, create_app
    from edge.auth import SessionPolicy
    from edge.auth.demo import open_users

    stop = stop or threading.Event()
    systemd = Notifier.from_env()  # a no-op unless run by systemd (Type=notify)
    with _stop_on_signals(stop), contextlib.ExitStack() as shutdown:
        # 1. Store: quick_check and reconciliation happen here.
        systemd.status("opening the image log")
        retention = RetentionPolicy(
            min_free_bytes=config.store.min_free_mb << 20, max_age_days=config.store.max_age_days
        )
        store = Store(data_dir, retention=retention)
        shutdown.callback(store.close)
        logger.info("image log at %s: %s", data_dir, store.health()["logging"])

        # 2. Model, in a child process; refused models leave the service degraded, not down.
        # The active model of the data directory's model store (a fresh one gets the factory
        # model), unless one was named explicitly (`model_override`: no upgrades then).
        systemd.status("loading the model")
        models = None if model_override is not None else open_model_manager(config, data_dir)
        if models is not None:
            active = models.store.active()
            model_dir = active.path if active is not None else DEFAULT_MODEL_DIR
        else:
            model_dir = model_override or config.model.dir or DEFAULT_MODEL_DIR
        detector, model_error = load_detector(model_dir, config, data_dir)
        switcher: ModelSwitcher | None = None

        def close_model() -> None:  # the one screening at the end, after any swaps
            if switcher is not None:
                switcher.close_current()
            elif detector is not None:
                detector.close()

        shutdown.callback(close_model)
        if detector is not None:
            logger.info("model loaded: %s (sha256 %s)", detector.model_id, detector.model_sha256)
        else:
            logger.error("NO MODEL, every frame will be NOT SCREENED: %s", model_error)

        # 3. Pipeline.
        pipeline = Pipeline(
            detector,
            store=store,
            history=history,
            queue_frames=config.limits.queue_frames,
            model_error=model_error,
        )
        shutdown.callback(pipeline.close)  # drains the queue before the detector goes
        if models is not None:
            switcher = ModelSwitcher(
                pipeline,
                models.store,
                lambda path: load_detector(path, config, data_dir),
                current=detector,
                loaded=model_dir.name if detector is not None else None,
                interval_s=config.upgrade.watch_s,
            )
            models.switcher = switcher
            switcher.start()
            shutdown.callback(switcher.stop)
        usb = usb_watcher(config, models)  # after the switcher: installs swap in at once
        if usb is not None:
            usb.start()
            shutdown.callback(usb.stop)
        (data_dir / "tdr").mkdir(parents=True, exist_ok=True)
        pipeline.subscribe(tdr_writer(data_dir / "tdr"))

        # 4. Sources; real scanners' raw frames corrected with the active calibration
        # profile (the demo emulator sends calibrated frames).
        systemd.status("starting the scanner sources")
        max_frame = config.limits.max_frame_mb << 20
        calibration = (
            FrameCalibration(data_dir, keep_raw=config.calibration.keep_raw)
            if config.calibration.correct_frames
            else None
        )
        links = [
            serial_source(pipeline, s, max_frame, calibration=calibration)
            for s in config.sources
            if isinstance(s, SerialSource)
        ]
        folders = [
            folder_source(pipeline, s, calibration)
            for s in config.sources
            if isinstance(s, FolderSource)
        ]
        if demo and not config.sources:
            pty = PtyPair()
            shutdown.callback(pty.close)
            links.append(
                serial_source(
                    pipeline, SerialSource(type="serial", url=pty.paths[0]), max_frame, "demo"
                )
            )
            emulator = ScannerEmulator(
                pty.paths[1],
                rate_hz=2.0 / sum(config.demo.interval_s),
                bags=10**9,
                seed=random.randrange(1, 2**31),
                threat_ratio=config.demo.threat_ratio,
            )
            feeder = threading.Thread(target=emulator.run, name="demo-scanner", daemon=True)
        for link in links:
            link.start()
            shutdown.callback(link.stop)
        for folder in folders:
            folder.start()
            shutdown.callback(folder.stop)
        if demo and not config.sources:
            logger.info("demo scanner emulator feeding simulated bags on %s", pty.paths[1])
            feeder.start()
            shutdown.callback(feeder.join, 10.0)
            shutdown.callback(emulator.stop)

        # 5. API. The socket is bound here so a busy port fails start-up with a clear error.
        host, port = config.server.host, config.server.port
        sock = _listen(host, port)
        shutdown.callback(sock.close)
        users = open_users(
            data_dir,
            demo=demo and not config.sources,
            sessions=SessionPolicy(
                idle_s=config.auth.session_idle_min * 60.0, max_s=config.auth.session_max_h * 3600
            ),
        )
        shutdown.callback(users.close)
        context = AppContext(
            service=pipeline,
            users=users,
            version=package_version(),
            store=store,
            sources=[link_status(link) for link in links]
            + [f.status for f in folders]
            + ([usb.source_status] if usb is not None else []),
            max_upload_bytes=config.limits.max_upload_mb << 20,
            tdr_dir=data_dir / "tdr",
            export_dir=data_dir / "exports",
            models=models,
            calibration=calibration,  # raw 16-bit uploads corrected like the scanners' frames
        )
        server = Server(
            Config(
                create_app(context),
                log_config=None,  # uvicorn's records go through our JSON handlers (edge/logs.py)
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=3,
            )
        )
        api = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="api")
        api.start()
        shutdown.callback(api.join, 10.0)
        shutdown.callback(setattr, server, "should_exit", True)
        bound_port = sock.getsockname()[1]
        logger.warning("operator UI on %s", _url(host, bound_port))

        # 6. Tell systemd once the API answers; from then on the watchdog pings while both
        # this loop and the pipeline make progress, so a hang in either gets us restarted.
        main_loop = Heartbeat()
        stall_s = 2 * config.model.deadline_s + 10  # a frame may take the deadline, twice
        watchdog_s = watchdog_interval_s()
        ready = False
        while not stop.wait(0.5):
            main_loop.beat()
            if not api.is_alive():
                raise EdgeError(f"the API server on {host}:{bound_port} stopped unexpectedly")
            if not ready and server.started:
                ready = True
                model = pipeline.model_id or f"NO MODEL ({model_error})"
                systemd.ready(f"screening with {model}; UI on {_url(host, bound_port)}")
                shutdown.callback(systemd.stopping)
                if systemd.enabled and watchdog_s is not None:
                    watchdog = Watchdog(
                        systemd,
                        watchdog_s,
                        [
                            lambda: main_loop.fresh(MAIN_LOOP_STALL_S),
                            lambda: pipeline.making_progress(stall_s),
                        ],
                    )
                    watchdog.start()
                    shutdown.callback(watchdog.stop)
    logger.info("stopped")
