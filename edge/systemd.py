"""systemd's notify protocol (sd_notify), our own few lines: READY, STATUS, STOPPING and the
watchdog, as datagrams to $NOTIFY_SOCKET (a path, or '@name' in the abstract namespace).

Outside systemd ($NOTIFY_SOCKET unset) every call is a no-op. The `Watchdog` pings only while
every liveness source says the process is making progress, so a hung main loop or a stuck
pipeline stops the pings and systemd restarts the service (WatchdogSec in edge.service).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence

logger = logging.getLogger(__name__)

Liveness = Callable[[], bool]


def _address(path: str) -> str | bytes:
    # '@' marks Linux's abstract namespace, where the name starts with a NUL byte.
    return b"\0" + path[1:].encode() if path.startswith("@") else path


class Notifier:
    """Sends notify messages to one socket; `socket_path` None (not under systemd): no-op."""

    def __init__(self, socket_path: str | None) -> None:
        self.socket_path = socket_path or None
        self._lock = threading.Lock()
        self._failed = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        return cls((os.environ if env is None else env).get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self.socket_path is not None

    def send(self, *fields: str) -> bool:
        """One datagram of `KEY=value` lines; False when not under systemd or it failed."""
        if self.socket_path is None:
            return False
        message = "\n".join(fields).encode("utf-8")
        try:
            with self._lock, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(_address(self.socket_path))
                sock.sendall(message)
        except OSError as exc:
            if not self._failed:  # once: a watchdog loop must not flood the journal
                logger.warning("systemd notify to %s failed: %s", self.socket_path, exc)
            self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1", "STATUS=stopping")


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """Half of $WATCHDOG_USEC in seconds (systemd's advice), or None when no watchdog is
    asked of this process ($WATCHDOG_PID, when set, must be ours)."""
    env = os.environ if env is None else env
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None


class Heartbeat:
    """A loop's proof of life: `beat()` each turn; `fresh(max_age_s)` while it keeps turning."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    def beat(self) -> None:
        self._last = time.monotonic()

    def fresh(self, max_age_s: float) -> bool:
        return time.monotonic() - self._last <= max_age_s


class Watchdog:
    """Sends WATCHDOG=1 every `interval_s` while all of `alive` return True; when one does
    not, it stays silent (and says so once in STATUS and the log) until they recover."""

    def __init__(self, notifier: Notifier, interval_s: float, alive: Sequence[Liveness]) -> None:
        self.notifier = notifier
        self.interval_s = interval_s
        self.alive = list(alive)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="systemd-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _healthy(self) -> bool:
        try:
            return all(check() for check in self.alive)
        except Exception:  # a liveness source that crashes is not alive
            logger.exception("liveness check failed")
            return False

    def _run(self) -> None:
        stalled = False
        while not self._stop.wait(self.interval_s):
            if self._healthy():
                if stalled:
                    logger.warning("service making progress again; watchdog pings resumed")
                    stalled = False
                self.notifier.send("WATCHDOG=1")
            elif not stalled:
                stalled = True
                logger.error("service stalled: watchdog pings stopped (systemd will restart it)")
                self.notifier.status("stalled: watchdog pings stopped")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
