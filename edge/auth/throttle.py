"""Login throttling: after a few failures per user name or per client address, each further
attempt must wait, twice as long after every new failure.

In memory on purpose: a restart forgets the counts, which costs an attacker a restart of the
appliance; keeping them costs a write per failed login. The number of keys is bounded so a
flood of made-up names cannot grow memory.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from edge.auth.errors import LoginThrottledError


@dataclass
class _Failures:
    count: int
    last: float  # clock time of the last failure
    locked_until: float


class LoginThrottle:
    """Counts failed logins per key ("user:NAME", "addr:IP").

    The first `free_failures` failures cost nothing; failure n > free_failures locks the
    key for `base_delay_s * 2 ** (n - free_failures - 1)` seconds, at most `max_delay_s`.
    A key with no failure for `forget_s` starts again from zero; a success clears it.
    """

    def __init__(
        self,
        *,
        free_failures: int = 5,
        base_delay_s: float = 1.0,
        max_delay_s: float = 900.0,
        forget_s: float = 3600.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.forget_s = forget_s
        self.max_keys = max_keys
        self._clock = clock
        self._keys: OrderedDict[str, _Failures] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, keys: Iterable[str]) -> None:
        """LoginThrottledError (with the seconds to wait) when any key is locked now."""
        now = self._clock()
        with self._lock:
            wait = max((self._wait(key, now) for key in keys), default=0.0)
        if wait > 0:
            raise LoginThrottledError(
                f"too many failed logins: try again in {max(1, round(wait))} s", wait
            )

    def failed(self, keys: Iterable[str]) -> None:
        """Count one failure against every key."""
        now = self._clock()
        with self._lock:
            for key in keys:
                entry = self._keys.pop(key, None)
                if entry is None or now - entry.last > self.forget_s:
                    entry = _Failures(0, now, now)
                entry.count += 1
                entry.last = now
                excess = entry.count - self.free_failures
                if excess > 0:
                    delay = min(self.base_delay_s * 2 ** min(excess - 1, 30), self.max_delay_s)
                    entry.locked_until = now + delay
                self._keys[key] = entry  # most recent last
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)

    def succeeded(self, keys: Iterable[str]) -> None:
        """Forget the failures of every key."""
        with self._lock:
            for key in keys:
                self._keys.pop(key, None)

    def _wait(self, key: str, now: float) -> float:
        entry = self._keys.get(key)
        if entry is None:
            return 0.0
        return max(0.0, entry.locked_until - now)
