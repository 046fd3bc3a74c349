"""Several avatars on one poser, rendered by one thread, their poses batched: one THA3 call per tick.

A :class:`RenderGroup` replaces the members' own render threads (``Avatar(..., poser=poser, group=group)``). Each
tick it takes the members that may render (started, not paused, last frame taken) and are due, and renders them
together: the animator and cel blending of each, **one** batched pose for all of them
(:func:`~raven_avatar.engine.pipeline.pose_batch`), then the rest of each frame. On a GPU a batch of 8 costs far
less than 8 single poses (THA3 at batch 1 is launch-bound); on a CPU it costs about the same as 8 single poses but
no more.

Members that are due within half a frame of each other are rendered together, so members with the same
``target_fps`` fall into step after their first frame and stay batched. A member whose consumer is slow simply
misses a tick (it is not ready); the others go on without it. Each member keeps the rules of
:mod:`~raven_avatar.engine.renderer`: no frame nobody takes, paced to its own ``target_fps``, a failing frame is
reported on that member and the others are unaffected. One member due alone is rendered through its own pipeline
session (which keeps its stage reuse).

Example:
    >>> poser = load_poser(device="cuda")                                                  # doctest: +SKIP
    >>> group = RenderGroup(poser)
    >>> avatars = [Avatar(path, poser=poser, group=group) for path in paths]
    >>> for a in avatars:
    ...     a.start()
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from .pipeline import Frame, pose_batch
from .renderer import Renderer

log = logging.getLogger(__name__)

_IDLE_WAIT_S = 0.5  # how often the waiting thread re-checks (it is also woken on every change)


class RenderGroup:
    """One render thread for several :class:`~raven_avatar.engine.renderer.Renderer` members sharing a poser.

    Args:
        poser: the :class:`~raven_avatar.engine.poser.Poser` all members pose with.
        max_batch: the largest batch posed in one call (more due members are split over several calls).
    """

    def __init__(self, poser: Any, *, max_batch: int = 8):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.poser = poser
        self.max_batch = max_batch
        #: The condition every member shares: a taken frame or a resumed member wakes the group's thread.
        self.condition = threading.Condition()
        self._members: list[Renderer] = []
        self._thread: threading.Thread | None = None
        # Keeps the buffers (and CUDA graphs) of several batch sizes, so that a member missing a tick does not
        # make the next full batch re-capture.
        self._session = poser.session(batch_sizes=max_batch)
        #: How many frames each batched pose call of the last tick served (for stats and tests).
        self.last_batch_sizes: list[int] = []

    def has(self, renderer: Renderer) -> bool:
        with self.condition:
            return renderer in self._members

    @property
    def members(self) -> list[Renderer]:
        with self.condition:
            return list(self._members)

    def add(self, renderer: Renderer) -> None:
        """Render ``renderer`` from now on (it must pose with this group's poser); starts the thread if needed."""
        if renderer.pipeline.poser is not self.poser:
            raise ValueError("a RenderGroup member must use the group's poser")
        with self.condition:
            if renderer not in self._members:
                self._members.append(renderer)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="raven-avatar-group", daemon=True)
                self._thread.start()
            self.condition.notify_all()

    def remove(self, renderer: Renderer) -> None:
        """Stop rendering ``renderer`` (a frame of it in progress still completes). The thread ends with the last
        member."""
        with self.condition:
            if renderer in self._members:
                self._members.remove(renderer)
            self.condition.notify_all()

    # ------------------------------------------------------------------------------------------------------ thread

    def _next_batch(self) -> list[Renderer] | None:
        """Block until some members are ready and due; None when the group has no members left."""
        with self.condition:
            while True:
                if not self._members:
                    self._thread = None
                    return None
                ready = [r for r in self._members if r.ready()]
                now = time.monotonic()
                if not ready:
                    self.condition.wait(_IDLE_WAIT_S)
                    continue
                first = min(r.due for r in ready)
                if first > now:
                    self.condition.wait(first - now)
                    continue
                # Due within half a frame: render now, so members of the same frame rate fall into step.
                return [r for r in ready if r.due <= now + 0.5 / r.target_fps]

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            sizes = []
            for start in range(0, len(batch), self.max_batch):
                sizes.append(self._render(batch[start : start + self.max_batch]))
            self.last_batch_sizes = sizes

    def _render(self, batch: list[Renderer]) -> int:
        """Render one frame of each member of ``batch`` (one pose call); returns how many were posed together."""
        done: list[tuple[Renderer, Frame]] = []
        with contextlib.ExitStack() as stack:
            for r in batch:
                stack.enter_context(r.frame_boundary())
            with self.condition:  # paused or removed while we took the locks
                batch = [r for r in batch if r.ready() and r in self._members]
            if len(batch) == 1:
                r = batch[0]
                frame = r.render_frame()
                if frame is not None:
                    done.append((r, frame))
            elif batch:
                done = self._render_batched(batch)
        for r, frame in done:
            r.publish(frame)
        return len(batch)

    def _render_batched(self, batch: list[Renderer]) -> list[tuple[Renderer, Frame]]:
        jobs = []
        for r in batch:
            try:
                state, animate_ms = r.begin_frame()
                pending = r.pipeline.begin(state.pose, state.cels)
            except Exception as e:  # one member's failure must not stop the others
                r.report(e)
                continue
            jobs.append((r, state, animate_ms, pending))
        if not jobs:
            return []
        try:
            posed = pose_batch(self._session, [job[3] for job in jobs])
        except Exception as e:
            for r, *_ in jobs:
                r.report(e)
            return []
        done = []
        for row, (r, state, animate_ms, pending) in enumerate(jobs):
            try:
                frame = r.pipeline.finish(pending, posed[row : row + 1], state.fx, state.t, output=r.output)
            except Exception as e:
                r.report(e)
                continue
            done.append((r, r.complete(frame, state, animate_ms)))
        return done
