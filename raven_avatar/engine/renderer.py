"""The render thread: animator + pipeline in one background thread, paced, with a latest-frame handoff.

Rules (PRODUCT.md §3):

- **One thread does all device work** for an avatar (splitting GPU work over Python threads is slower: the GIL).
- **No frame is rendered that nobody consumes.** There is one slot: the renderer fills it, a consumer takes it with
  :meth:`Renderer.latest_frame`, and only then may the next frame be rendered. A consumer that polls faster than the
  renderer gets the same frame again (compare :attr:`Frame.index`). A consumer that sleeps between frames registers
  a listener (:meth:`Renderer.add_listener`) and takes each frame as soon as it is published, so that the renderer
  starts the next one while the consumer shows the last (not a polling interval later).
- **Paced to ``target_fps``**: a frame starts no sooner than ``1/target_fps`` after the previous one started.
  Animation time follows the wall clock (the animator reads it at each frame), so a slow device shows fewer frames
  at the right speed, never slow motion.
- **Pause really stops**: no rendering and no device work while paused; animation time freezes.
- **An exception in one frame** is logged (with its traceback, once per distinct message), kept as
  :attr:`Renderer.last_error`, and the thread carries on; the last good frame stays available.
- **Hot swaps without tearing**: :meth:`Renderer.frame_boundary` holds the frame lock, so whatever is changed inside
  it (character, templates, settings) changes between two frames, all at once.

A renderer given a :class:`Scheduler` (a :class:`~raven_avatar.engine.group.RenderGroup`) has no thread of its
own: the group's one thread renders all its members, posing those that are due together in one batched THA3 call.
The rules above hold per member.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from .animator import AnimationState, Animator
from .pipeline import Frame, Pipeline

log = logging.getLogger(__name__)

_STATS_WINDOW = 30  # frames averaged in Renderer.stats
_IDLE_WAIT_S = 0.5  # how often a waiting render thread re-checks its flags (it is also woken on every change)
_MAX_LOGGED = 64  # distinct error messages remembered (a varying message cannot grow memory)


@dataclass(frozen=True)
class RenderError:
    """A frame that failed: what went wrong, when, and how often so far."""

    message: str
    traceback: str
    frame_index: int  # index the failed frame would have had
    time: float  # time.time() of the failure
    count: int  # failures since the renderer started


class Scheduler(Protocol):
    """What renders a renderer that has no thread of its own (a :class:`~raven_avatar.engine.group.RenderGroup`)."""

    condition: threading.Condition

    def add(self, renderer: Renderer) -> None: ...
    def remove(self, renderer: Renderer) -> None: ...
    def has(self, renderer: Renderer) -> bool: ...


class Renderer:
    """Renders one avatar's frames in a background thread.

    Args:
        pipeline: the avatar's :class:`~raven_avatar.engine.pipeline.Pipeline` (with its character set).
        animator: the avatar's :class:`~raven_avatar.engine.animator.Animator` (its clock is the animation clock).
        target_fps: frames per second to aim for.
        warm_up: render one throw-away frame before the first one and after :meth:`request_warm_up` (default: on
            CUDA only, where it takes graph capture and cuDNN tuning out of the first visible frame).
        group: render in this group's thread (poses batched with the other members) instead of a thread of its own.
        output: ``"f32"`` (``Frame.rgba_f32``, what a DearPyGui texture takes) or ``"u8"`` (``Frame.rgba_u8`` made
            on the device: a quarter of the bytes to copy, what an encoder takes).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        animator: Animator,
        *,
        target_fps: float = 25.0,
        warm_up: bool | None = None,
        group: Scheduler | None = None,
        output: str = "f32",
    ):
        if output not in ("f32", "u8"):
            raise ValueError(f"output must be 'f32' or 'u8', got {output!r}")
        self.output = output
        self.pipeline = pipeline
        self.animator = animator
        self.target_fps = target_fps
        self.group = group
        self._warm_up_enabled = pipeline.device.type == "cuda" if warm_up is None else warm_up
        self._needs_warm_up = self._warm_up_enabled
        self._frame_lock = threading.RLock()  # held while a frame renders; swaps take it
        # Guards the flags and the slot below; a group member shares the group's, so that the group's thread wakes
        # up when a frame is taken or a member resumes.
        self._cond = group.condition if group is not None else threading.Condition()
        self._due = 0.0  # monotonic time the next frame may start
        self._idle_since = time.monotonic()  # when the last frame was published (for the "wait" stat)
        self._latest: Frame | None = None
        self._consumed = True
        self._taken: Frame | None = None  # the last frame handed out
        self._paused = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._index = 0
        self._history: deque[tuple[float, dict[str, float]]] = deque(maxlen=_STATS_WINDOW)
        self._listeners: list[Callable[[], None]] = []
        self._failed_listeners: set[int] = set()
        self._errors = 0
        self._logged: set[str] = set()
        self.last_error: RenderError | None = None

    # ------------------------------------------------------------------------------------------------------ control

    @property
    def target_fps(self) -> float:
        return self._target_fps

    @target_fps.setter
    def target_fps(self, value: float) -> None:
        if not value > 0:
            raise ValueError(f"target_fps must be positive, got {value!r}")
        self._target_fps = float(value)

    @property
    def running(self) -> bool:
        if self.group is not None:
            return self.group.has(self)
        return self._thread is not None and self._thread.is_alive()

    @property
    def paused(self) -> bool:
        return self._paused

    def start(self) -> None:
        """Start the render thread (no-op if running); also resumes a paused renderer."""
        self.resume()
        if self.running:
            return
        with self._cond:
            self._stopping = False
        if self.group is not None:
            self.group.add(self)
            return
        self._thread = threading.Thread(target=self._loop, name="raven-avatar-render", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the render thread after the frame in progress; the last frame stays available."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self.group is not None:
            self.group.remove(self)
            with self._frame_lock:  # the group's frame in progress, if any, is done when we get it
                return
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("render thread did not stop within %s s", timeout)
        self._thread = None

    def pause(self) -> None:
        """Stop rendering and freeze animation time until :meth:`resume` (e.g. while the window is minimised)."""
        with self._cond:
            self._paused = True
        self.animator.pause()

    def resume(self) -> None:
        self.animator.resume()
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def request_warm_up(self) -> None:
        """Warm up again before the next frame (after a new character or output size), if warm-up is enabled."""
        self._needs_warm_up = self._warm_up_enabled

    @contextlib.contextmanager
    def frame_boundary(self) -> Iterator[None]:
        """Hold off the render thread: changes made inside take effect together, between two frames.

        Do slow preparation (loading files, building an upscaler) before entering; the render thread waits here.
        """
        with self._frame_lock:
            yield

    # ------------------------------------------------------------------------------------------------------ frames

    def latest_frame(self) -> Frame | None:
        """The newest frame (None before the first). Taking it lets the renderer start the next one."""
        with self._cond:
            if self._latest is not None and not self._consumed:
                self._consumed, self._taken = True, self._latest
                self._cond.notify_all()
            return self._latest

    def drop_untaken(self) -> None:
        """Forget a frame rendered before a change that nobody has taken yet, so that the next frame handed out
        shows the change (call inside :meth:`frame_boundary`)."""
        with self._cond:
            if self._latest is not None and not self._consumed:
                self._latest, self._consumed = self._taken, True
                self._cond.notify_all()

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (on the render thread, after the frame is in the slot) whenever a frame is published:
        a GUI wakes its loop with it and takes the frame. It must be quick and must not take the frame lock."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def wait_frame(self, after: int = 0, timeout: float | None = None) -> Frame | None:
        """Wait for a frame with ``index > after`` and take it; None on timeout (see also :attr:`last_error`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._latest is None or self._latest.index <= after:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining if remaining is not None else _IDLE_WAIT_S)
        return self.latest_frame()

    @property
    def frames_rendered(self) -> int:
        return self._index

    @property
    def stats(self) -> dict[str, Any]:
        """Averages over the last frames: ``fps`` (rendered per second), ``target_fps``, per-stage ms (see
        :data:`~raven_avatar.engine.pipeline.STAGES`, plus ``animate``, ``total`` and ``wait``), ``frames`` rendered,
        ``errors``, ``paused``, ``pose_stages`` (THA3 stages the last frame ran: full/face/body/none)."""
        with self._cond:
            history = list(self._history)
        out: dict[str, Any] = {
            "fps": 0.0,
            "target_fps": self._target_fps,
            "frames": self._index,
            "errors": self._errors,
            "paused": self._paused,
            "pose_stages": self.pipeline.session.last_stages,
        }
        if len(history) >= 2:
            span = history[-1][0] - history[0][0]
            out["fps"] = (len(history) - 1) / span if span > 0 else 0.0
        if history:
            keys = dict.fromkeys(k for _, s in history for k in s)
            for key in keys:
                values = [s[key] for _, s in history if key in s]
                out[key] = sum(values) / len(values)
        return out

    # ------------------------------------------------------------------------------------------------------- thread

    def ready(self) -> bool:
        """Whether a frame may be rendered now, due time aside: not stopping, not paused, the last frame taken.
        (Call with the condition held; for the group's scheduler.)"""
        return not self._stopping and not self._paused and self._consumed

    @property
    def due(self) -> float:
        """Monotonic time at which the next frame may start (``1/target_fps`` after the last one started)."""
        return self._due

    def _wait_turn(self) -> bool:
        """Block until a frame may be rendered: :meth:`ready` and due. False when stopping."""
        with self._cond:
            while True:
                if self._stopping:
                    return False
                if not self.ready():
                    self._cond.wait(_IDLE_WAIT_S)
                    continue
                delay = self._due - time.monotonic()
                if delay <= 0:
                    return True
                self._cond.wait(delay)

    def _loop(self) -> None:
        self._due = self._idle_since = time.monotonic()
        while True:
            if not self._wait_turn():
                return
            with self._frame_lock:
                if self._paused:  # paused while we took the lock
                    continue
                frame = self.render_frame()
            if frame is not None:
                self.publish(frame)

    def begin_frame(self) -> tuple[AnimationState, float]:
        """Start a frame (warm-up if due, then the animator): ``(state, animate_ms)``; sets the next due time.
        Called with :meth:`frame_boundary` held; the group's thread uses this, :meth:`complete` and
        :meth:`publish` (an exception here or in between goes to :meth:`report`)."""
        self._due = time.monotonic() + 1.0 / self._target_fps
        if self._needs_warm_up:
            self._needs_warm_up = False
            self.pipeline.warm_up()
        t0 = time.perf_counter()
        state = self.animator.advance()
        return state, (time.perf_counter() - t0) * 1000.0

    def complete(self, frame: Frame, state: AnimationState, animate_ms: float) -> Frame:
        """Number and annotate a rendered frame (see :meth:`begin_frame`)."""
        self._index += 1
        frame.index = self._index
        frame.emotion = state.emotion
        frame.stats["animate"] = animate_ms
        frame.stats["total"] += animate_ms
        frame.stats["wait"] = max(0.0, (self._due - 1.0 / self._target_fps - self._idle_since) * 1000.0)
        return frame

    def publish(self, frame: Frame) -> None:
        """Hand a completed frame to consumers."""
        with self._cond:
            self._latest, self._consumed = frame, False
            self._history.append((time.monotonic(), frame.stats))
            self._idle_since = time.monotonic()
            self._cond.notify_all()
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:  # a consumer's bug must not stop the renderer (logged once per listener)
                if id(listener) not in self._failed_listeners:
                    self._failed_listeners.add(id(listener))
                    log.exception("frame listener %r failed (further failures are not logged)", listener)

    def render_frame(self) -> Frame | None:
        """Render, number and annotate one frame now (None if it failed: see :attr:`last_error`); call with
        :meth:`frame_boundary` held, then :meth:`publish` it."""
        try:
            state, animate_ms = self.begin_frame()
            frame = self.pipeline.render(state.pose, state.cels, state.fx, state.t, output=self.output)
        except Exception as e:  # one bad frame must not end the avatar
            self.report(e)
            return None
        return self.complete(frame, state, animate_ms)

    def report(self, error: Exception) -> None:
        """Record a failed frame (call from the ``except`` block: the traceback is taken from there)."""
        index = self._index + 1
        self._errors += 1
        message = f"{type(error).__name__}: {error}"
        tb = traceback.format_exc()
        self.last_error = RenderError(message, tb, index, time.time(), self._errors)
        if message not in self._logged:
            if len(self._logged) >= _MAX_LOGGED:
                self._logged.clear()
            self._logged.add(message)
            log.error(
                "frame %d failed (the renderer keeps going; repeats of this error are not logged):\n%s", index, tb
            )
