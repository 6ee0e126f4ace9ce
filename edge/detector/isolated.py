"""The detector in a child process, so a crash, hang or out-of-memory in inference costs one
frame (NOT SCREENED, with the reason) and a restart, never the service or a silent clear.

The parent sends each frame's planes over a pipe and waits at most the deadline; a child
that misses it is killed and started again. Children are spawned (not forked): the parent
runs threads, and onnxruntime's thread pools do not survive a fork.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import DetectorError
from edge.frames import Detections, Frame, Result, ScreeningState

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0  # model load + warm-up on a busy 2-core box


@dataclass(frozen=True)
class ModelInfo:
    model_id: str
    sha256: str
    class_names: list[str]
    representation: str
    thresholds: dict[str, float] = field(default_factory=dict)  # in force, per class


@dataclass
class WorkerStatus:
    state: str = "starting"  # starting | ready | restarting | failed
    restarts: int = 0
    last_error: str | None = None
    model: ModelInfo | None = None
    pid: int | None = None
    history: list[str] = field(default_factory=list)


def _child_main(
    conn: Connection,
    model_dir: str,
    providers: list[str] | None,
    threads: int | None,
    thresholds: dict[str, float] | None = None,
) -> None:
    """Child process: load the model, then answer detect requests until the pipe closes."""
    from edge.detector import Detector

    try:
        detector = Detector.load(
            model_dir, providers=providers, intra_op_threads=threads, thresholds=thresholds
        )
    except Exception as exc:  # reported to the parent, which decides what to do
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    spec = detector.spec.manifest
    conn.send(
        (
            "ready",
            ModelInfo(
                detector.model_id,
                detector.model_sha256,
                detector.class_names,
                spec.input.representation,
                detector.thresholds,
            ),
        )
    )
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        planes: dict[str, Any] = request
        try:
            run = detector.detect(Frame(**planes))
            det = run.detections
            conn.send(("ok", (det.boxes, det.scores, det.class_ids, run.timings_ms)))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class IsolatedDetector:
    """One model served by a child process, with a per-frame deadline and automatic restart."""

    def __init__(
        self,
        model_dir: Path | str,
        *,
        deadline_s: float = 10.0,
        providers: list[str] | None = None,
        intra_op_threads: int | None = None,
        thresholds: dict[str, float] | None = None,
    ) -> None:
        """`thresholds`: class -> score replacing the manifest's (device overrides)."""
        self.model_dir = Path(model_dir)
        self.thresholds = dict(thresholds) if thresholds else None
        self.deadline_s = deadline_s
        self._providers = providers
        self._threads = intra_op_threads
        self._ctx = mp.get_context("spawn")
        self._lock = threading.Lock()  # one frame in flight per child
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self.status = WorkerStatus()

    # ------------------------------------------------------------------ life cycle

    def start(self) -> ModelInfo:
        """Spawn the child and wait for its model to load; DetectorError if it cannot."""
        with self._lock:
            return self._spawn()

    def _spawn(self) -> ModelInfo:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_child_main,
            args=(child, str(self.model_dir), self._providers, self._threads, self.thresholds),
            name="edge-detector",
            daemon=True,
        )
        proc.start()
        child.close()
        if not parent.poll(START_TIMEOUT_S):
            proc.kill()
            proc.join()
            self.status.state = "failed"
            raise DetectorError(f"detector did not start within {START_TIMEOUT_S:.0f} s")
        try:
            kind, payload = parent.recv()
        except EOFError:
            proc.join()
            self.status.state = "failed"
            raise DetectorError(
                f"detector process exited while loading (code {proc.exitcode})"
            ) from None
        if kind != "ready":
            proc.join()
            self.status.state = "failed"
            self.status.last_error = str(payload)
            raise DetectorError(f"model {self.model_dir} refused: {payload}")
        self._proc, self._conn = proc, parent
        self.status.state = "ready"
        self.status.model = payload
        self.status.pid = proc.pid
        return payload  # type: ignore[no-any-return]

    def _kill(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
        if self._proc is not None:
            self._proc.join(5)
        self._proc, self._conn = None, None

    def close(self) -> None:
        with self._lock:
            self._kill()
            self.status.state = "stopped"

    @property
    def info(self) -> ModelInfo | None:
        return self.status.model

    @property
    def model_id(self) -> str:
        return self.status.model.model_id if self.status.model else ""

    @property
    def model_sha256(self) -> str:
        return self.status.model.sha256 if self.status.model else ""

    @property
    def class_names(self) -> list[str]:
        return list(self.status.model.class_names) if self.status.model else []

    # ------------------------------------------------------------------ screening

    def _fail(self, reason: str) -> str:
        """Record a failure, restart the child; the reason for the NOT SCREENED frame."""
        logger.error("detector failure: %s; restarting", reason)
        self.status.last_error = reason
        self.status.restarts += 1
        self.status.history = [*self.status.history[-9:], f"{time.strftime('%H:%M:%S')} {reason}"]
        self.status.state = "restarting"
        self._kill()
        try:
            self._spawn()
        except DetectorError as exc:
            logger.error("detector restart failed: %s", exc.message)
            return f"{reason}; restart failed: {exc.message}"
        return f"{reason}; detector restarted"

    def screen(self, frame: Frame) -> Result:
        """Detections for one frame, or NOT SCREENED with the reason; never raises."""
        with self._lock:
            info = self.status.model
            model_id = info.model_id if info else ""
            if self._proc is None or self._conn is None or info is None:
                try:
                    info = self._spawn()
                    model_id = info.model_id
                except DetectorError as exc:
                    return Result.not_screened(f"no detector: {exc.message}", model_id)
            assert self._conn is not None and self._proc is not None
            planes = self._planes(frame, info.representation)
            started = time.monotonic()
            try:
                self._conn.send(planes)
                if not self._conn.poll(self.deadline_s):
                    return Result.not_screened(
                        self._fail(f"detector missed its {self.deadline_s:g} s deadline"), model_id
                    )
                kind, payload = self._conn.recv()
            except (EOFError, BrokenPipeError, ConnectionResetError, OSError):
                self._proc.join(1)
                code = self._proc.exitcode
                return Result.not_screened(
                    self._fail(f"detector process died (exit code {code})"), model_id
                )
            if kind != "ok":
                return Result.not_screened(f"detector error: {payload}", model_id)
            boxes, scores, class_ids, timings = payload
            timings = {**timings, "roundtrip": (time.monotonic() - started) * 1000.0}
            return Result(
                ScreeningState.SCREENED,
                Detections(boxes, scores, class_ids),
                model_id,
                timings_ms=timings,
            )

    @staticmethod
    def _planes(frame: Frame, representation: str) -> dict[str, Any]:
        """What the child needs: the RGB rendering for pseudo-colour models, else the planes."""
        if representation == "pseudocolor" and frame.rgb is not None:
            return {"rgb": np.ascontiguousarray(frame.rgb)}
        return {"high": frame.high, "low": frame.low, "rgb": frame.rgb}
