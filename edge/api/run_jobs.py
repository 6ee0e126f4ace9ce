"""Test runs started over the API: the real `edge test` / `edge acceptance` as a child
process, one at a time, watched until it ends.

A run takes minutes of CPU, so it runs as its own niced process (`nice -n 10`): screening
in the service keeps priority, and a crash or a hang in the run cannot take the service
down. The child records its run in the image log as the CLI always does; the job keeps
its state (running, then passed / failed by exit code 0 / 1, else error with the CLI's
one-line message or the exit code), and the recorded run's id read from its `--json`
output so the page can open the report. Its stdout and stderr go to DATA/runs-jobs/
(the newest `KEPT_JOBS` jobs' files are kept).

Jobs live in this process's memory only: a restart forgets them (and `close`, on service
shutdown, terminates a running child, whose job ends "error"); the runs the children
recorded stay in the image log.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from edge.errors import EdgeError

JOBS_DIRNAME = "runs-jobs"
KEPT_JOBS = 20  # output files on disk
KEPT_IN_MEMORY = 200  # finished jobs listed; older ones are forgotten (their runs stay)
MAX_OUTPUT_BYTES = 64 << 20  # the --json report read back for its run id
MAX_MESSAGE_CHARS = 500
STOP_WAIT_S = 5.0

JobKind = Literal["regression", "acceptance"]
JobState = Literal["running", "passed", "failed", "error"]
EXIT_STATES: dict[int, JobState] = {0: "passed", 1: "failed"}


class JobBusyError(EdgeError):
    """A test run is already running (one at a time)."""

    http_status = 409


class UnknownJobError(EdgeError):
    http_status = 404


@dataclass
class Job:
    """One child run: what was asked, by whom, and how it ended."""

    id: str
    kind: JobKind
    by: str
    started: str
    argv: list[str]
    details: dict[str, str] = field(default_factory=dict)
    state: JobState = "running"
    finished: str | None = None
    exit_code: int | None = None
    message: str | None = None
    run_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "job": self.id,
            "state": self.state,
            "kind": self.kind,
            "started": self.started,
            "by": self.by,
            "finished": self.finished,
            "exit_code": self.exit_code,
            "message": self.message,
            "run_id": self.run_id,
            **self.details,
        }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def edge_argv(verb: str, args: list[str], data_dir: Path) -> list[str]:
    """The CLI run as a lower-priority child: `nice -n 10 python -m edge.cli VERB ... --json`."""
    argv = [sys.executable, "-m", "edge.cli", verb, *args, "--data", str(data_dir), "--json"]
    nice = shutil.which("nice")
    return [nice, "-n", "10", *argv] if nice else argv


class TestJobs:
    """At most one running child; every job of this process's life, newest last."""

    __test__ = False  # not a pytest class, whatever its name

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._running: tuple[Job, subprocess.Popen[bytes], threading.Thread] | None = None
        self._closed = False

    def start(self, kind: JobKind, argv: list[str], data_dir: Path, by: str,
              details: dict[str, str] | None = None) -> Job:  # fmt: skip
        """Start `argv` as the one running job; JobBusyError while another runs."""
        folder = data_dir / JOBS_DIRNAME
        with self._lock:
            if self._closed:
                raise JobBusyError("the service is shutting down: no new test runs")
            if self._running is not None:
                busy = self._running[0]
                raise JobBusyError(
                    f"a {busy.kind} run ({busy.id}, started by {busy.by} at {busy.started}) "
                    "is still running: wait for it to finish"
                )
            job = Job(f"job-{uuid.uuid4().hex[:12]}", kind, by, _now(), argv, details or {})
            folder.mkdir(parents=True, exist_ok=True)
            _prune(folder)
            with (
                (folder / f"{job.id}.out").open("wb") as out,
                (folder / f"{job.id}.err").open("wb") as err,
            ):
                try:
                    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
                except OSError as exc:
                    raise EdgeError(f"cannot start the {kind} run: {exc}") from exc
            watcher = threading.Thread(
                target=self._watch, args=(job, proc, folder), name=f"test-job-{job.id}",
                daemon=True,
            )  # fmt: skip
            self._jobs[job.id] = job
            while len(self._jobs) > KEPT_IN_MEMORY:  # the oldest is never the running one
                del self._jobs[next(iter(self._jobs))]
            self._running = (job, proc, watcher)
            watcher.start()
            return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            found = self._jobs.get(job_id)
        if found is None:
            raise UnknownJobError(f"no test job {job_id!r} (jobs are forgotten on a restart)")
        return found

    def listing(self) -> list[Job]:
        """Every job since the service started, newest first."""
        with self._lock:
            return list(reversed(self._jobs.values()))

    def wait(self, timeout_s: float) -> bool:
        """Wait for the running job to end (tests, shutdown); True when none runs."""
        with self._lock:
            running = self._running
        if running is not None:
            running[2].join(timeout_s)
            return not running[2].is_alive()
        return True

    def close(self) -> None:
        """Refuse new jobs and terminate the running child (service shutdown)."""
        with self._lock:
            self._closed = True
            running = self._running
        if running is None:
            return
        job, proc, watcher = running
        job.message = "stopped: the service shut down while the run was going"
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        watcher.join(STOP_WAIT_S)
        if watcher.is_alive():
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            watcher.join(STOP_WAIT_S)

    def _watch(self, job: Job, proc: subprocess.Popen[bytes], folder: Path) -> None:
        code = proc.wait()
        stopped = job.message  # set by close() before it terminated the child
        try:
            run_id, note = _run_id(folder / f"{job.id}.out")
            message = _cli_message(folder / f"{job.id}.err")
        except OSError as exc:  # the output files went missing: still end the job
            run_id, note, message = None, f"output not readable: {exc}", None
        # Passed or failed only with the report read back: Python itself exits 1 on an
        # uncaught exception, which is no verdict.
        state = EXIT_STATES.get(code, "error") if run_id is not None else "error"
        if stopped is not None:
            state, message = "error", stopped
        elif state == "error":
            how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            message = "; ".join(m for m in (message, note if code in EXIT_STATES else None) if m)
            message = f"{message} ({how})" if message else f"the run ended with {how}"
        else:  # a warning, say the run was not recorded in the image log
            message = "; ".join(m for m in (message, note) if m) or None
        with self._lock:
            job.exit_code, job.state, job.finished = code, state, _now()
            job.run_id = run_id if state != "error" else None
            job.message = message[:MAX_MESSAGE_CHARS] if message else None
            if self._running is not None and self._running[0] is job:
                self._running = None


def _run_id(path: Path) -> tuple[str | None, str | None]:
    """The run id of the CLI's --json report, or why there is none."""
    size = path.stat().st_size
    if size == 0:
        return None, "the run printed no report"
    if size > MAX_OUTPUT_BYTES:
        return None, f"the report ({size} bytes) is too large to read back its run id"
    try:
        doc = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError):
        return None, "the run's report could not be read back"
    run_id = doc.get("run_id") if isinstance(doc, dict) else None
    return (run_id, None) if isinstance(run_id, str) else (None, "the report has no run id")


def _cli_message(path: Path) -> str | None:
    """The CLI's last `edge: ...` line on stderr (its one-line error or warning), else the
    last line (a traceback's exception)."""
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - 65536))
        tail = handle.read().decode("utf-8", "replace")
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith("edge: ")]
    if said:
        return said[-1].removeprefix("edge: ")
    return lines[-1] if lines else None


def _prune(folder: Path) -> None:
    """Keep the output files of the newest KEPT_JOBS - 1 jobs (one more is starting)."""
    files = sorted(folder.glob("job-*.out"), key=lambda p: p.stat().st_mtime)
    for old in files[: max(0, len(files) - (KEPT_JOBS - 1))]:
        for path in (old, old.with_suffix(".err")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
