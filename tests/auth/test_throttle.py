"""Login throttling: free failures, then doubling waits, forgotten after a quiet hour."""

from __future__ import annotations

import pytest

from edge.auth import LoginThrottle, LoginThrottledError


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def wait_of(throttle: LoginThrottle, key: str) -> float:
    try:
        throttle.check([key])
    except LoginThrottledError as exc:
        return exc.retry_after_s
    return 0.0


def test_waits_double_after_the_free_failures() -> None:
    clock = Clock()
    throttle = LoginThrottle(free_failures=3, base_delay_s=1, max_delay_s=10, clock=clock)
    waits = []
    for _ in range(8):
        throttle.failed(["user:a"])
        waits.append(wait_of(throttle, "user:a"))
        clock.now += waits[-1]  # the attacker waits exactly as told
    assert waits == [0, 0, 0, 1, 2, 4, 8, 10]
    assert wait_of(throttle, "user:b") == 0  # other keys are untouched


def test_success_and_a_quiet_hour_forget() -> None:
    clock = Clock()
    throttle = LoginThrottle(free_failures=1, forget_s=3600, clock=clock)
    throttle.failed(["user:a", "addr:1"])
    throttle.failed(["user:a", "addr:1"])
    assert wait_of(throttle, "user:a") == wait_of(throttle, "addr:1") == 1
    throttle.succeeded(["user:a"])
    assert wait_of(throttle, "user:a") == 0 and wait_of(throttle, "addr:1") == 1
    clock.now += 3601
    throttle.failed(["addr:1"])  # counted from zero again: the first is free
    assert wait_of(throttle, "addr:1") == 0


def test_the_message_and_retry_after_header() -> None:
    throttle = LoginThrottle(free_failures=0, base_delay_s=2.4, clock=Clock())
    throttle.failed(["user:a"])
    with pytest.raises(LoginThrottledError, match="try again in 2 s") as caught:
        throttle.check(["user:a"])
    assert caught.value.http_status == 429
    assert caught.value.http_headers() == {"Retry-After": "3"}


def test_keys_are_bounded() -> None:
    throttle = LoginThrottle(max_keys=100, clock=Clock())
    for i in range(1000):
        throttle.failed([f"user:guess{i}"])
    assert len(throttle._keys) == 100
