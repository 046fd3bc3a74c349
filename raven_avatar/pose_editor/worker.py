"""A background worker that runs the newest request only, and publishes the newest result.

The GUI submits a request on every edit; while one render runs, further requests replace each other, so a fast
slider drag costs one render after the current one instead of a queue. An exception in a job is published as the
result's error; the worker keeps running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Result:
    request_id: int
    request: Any
    value: Any = None
    error: BaseException | None = None
    seconds: float = 0.0


class LatestWorker:
    """Runs ``job(request)`` on its own thread for the newest submitted request."""

    def __init__(self, job: Callable[[Any], Any], name: str = "render-worker",
                 on_done: Callable[[], None] | None = None):  # fmt: skip
        """``on_done()`` runs on the worker thread after each result is published (to wake the GUI loop)."""
        self._job = job
        self._on_done = on_done
        self._cond = threading.Condition()
        self._pending: tuple[int, Any] | None = None
        self._result: Result | None = None
        self._taken = 0  # id of the last result handed out by poll()
        self._next_id = 0
        self._busy = False
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, request: Any) -> int:
        """Queue ``request``, replacing any not yet started; returns its id."""
        with self._cond:
            self._next_id += 1
            self._pending = (self._next_id, request)
            self._cond.notify_all()
            return self._next_id

    def poll(self) -> Result | None:
        """The newest finished result, once; ``None`` when nothing new finished since the last poll."""
        with self._cond:
            r = self._result
            if r is None or r.request_id <= self._taken:
                return None
            self._taken = r.request_id
            return r

    @property
    def idle(self) -> bool:
        with self._cond:
            return not self._busy and self._pending is None

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no request is pending or running (for tests and shutdown)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy and self._pending is None, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stop or self._pending is not None)
                if self._stop:
                    return
                request_id, request = self._pending  # type: ignore[misc]
                self._pending = None
                self._busy = True
            start = time.perf_counter()
            try:
                result = Result(request_id, request, value=self._job(request))
            except Exception as e:  # published, shown by the GUI; the worker lives on
                log.exception("background job failed")
                result = Result(request_id, request, error=e)
            result.seconds = time.perf_counter() - start
            with self._cond:
                self._result = result
                self._busy = False
                self._cond.notify_all()
            if self._on_done is not None:
                self._on_done()
