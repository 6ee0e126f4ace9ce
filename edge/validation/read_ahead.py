"""An iterator's items made on a second thread, a bounded number ahead of their use.

A test's checks load and edit images (numpy and decoders, which leave the GIL) and then run
the model on them; made one step ahead, the next image is ready when the model is done with
the last. Errors raised while making an item are raised where it is taken, in order.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


class ReadAhead(Generic[T]):
    """Iterate `items` on a worker thread, at most `ahead` items ahead; close() (or leaving
    a `with`) stops the worker early."""

    def __init__(self, items: Iterator[T], ahead: int = 2, name: str = "edge-test-ahead") -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, ahead))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(items,), name=name, daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, items: Iterator[T]) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(_Failed(exc))
            return
        self._put(_DONE)

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
