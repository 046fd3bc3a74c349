"""The loaded avatars: one shared poser and render group, instances by id, and the events they emit.

Every avatar the server loads poses with one :class:`~raven_avatar.engine.poser.Poser` and renders in one
:class:`~raven_avatar.engine.group.RenderGroup` (avatars due together are posed in one batched THA3 call). An
instance is its :class:`~raven_avatar.engine.avatar.Avatar`, the :class:`~.feed.FeedHub` that streams it, and (on
first use) a speech :class:`~raven_avatar.engine.speech.Speaker`.

Events (``{"event": name, "instance_id": id, ...}``) go to every :class:`EventBus` subscriber (the WebSocket
connections): ``loaded``, ``unloaded``, ``started``, ``stopped``, ``emotion``, ``talking_started``,
``talking_stopped``, ``settings``, ``templates``, ``character`` and ``frame`` (stats, at most once a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raven_avatar.engine.avatar import Avatar
from raven_avatar.engine.character import Character

from .config import ServerConfig
from .errors import ApiError
from .feed import FeedHub

log = logging.getLogger(__name__)

DEFAULT_ID = "default"
_FRAME_EVENT_INTERVAL_S = 1.0
_EVENT_QUEUE = 256  # events buffered per subscriber; a subscriber that falls further behind loses the oldest


class EventBus:
    """Thread-safe fan-out of event dicts to asyncio subscribers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Queue, set[str] | None]] = {}
        self._next = 0

    def subscribe(self, instance_ids: set[str] | None = None) -> tuple[int, asyncio.Queue]:
        """A queue receiving the events of ``instance_ids`` (None: all); call from the event loop."""
        queue: asyncio.Queue = asyncio.Queue(_EVENT_QUEUE)
        with self._lock:
            self._next += 1
            self._subs[self._next] = (asyncio.get_running_loop(), queue, instance_ids)
            return self._next, queue

    def set_filter(self, token: int, instance_ids: set[str] | None) -> None:
        with self._lock:
            loop, queue, _ = self._subs[token]
            self._subs[token] = (loop, queue, instance_ids)

    def unsubscribe(self, token: int) -> None:
        with self._lock:
            self._subs.pop(token, None)

    def emit(self, event: str, instance_id: str, **data: Any) -> None:
        message = {"event": event, "instance_id": instance_id, "time": time.time(), **data}
        with self._lock:
            targets = [(loop, q) for loop, q, ids in self._subs.values() if ids is None or instance_id in ids]
        for loop, queue in targets:
            with contextlib.suppress(RuntimeError):  # the loop is gone
                loop.call_soon_threadsafe(_put_latest, queue, message)


def _put_latest(queue: asyncio.Queue, message: dict) -> None:
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(message)


@dataclass
class Instance:
    """One loaded avatar."""

    id: str
    avatar: Avatar
    feed: FeedHub
    format: str = "PNG"  # the avatar's "format" setting
    speaker: Any = None
    loaded_at: float = field(default_factory=time.time)
    _last_frame_event: float = 0.0


class AvatarRegistry:
    """The avatars of one server (thread-safe)."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.events = EventBus()
        self._lock = threading.Lock()
        self._instances: dict[str, Instance] = {}
        self._loading = 0  # loads in progress (they count against max_avatars)
        self._poser: Any = config.poser
        self._group: Any = None
        self._base_settings: dict[str, Any] = {}
        if config.settings is not None:
            from raven_avatar.engine.settings import read_settings_file

            self._base_settings = dict(read_settings_file(Path(config.settings)))

    # ------------------------------------------------------------------------------------------------ engine

    @property
    def poser(self) -> Any:
        """The shared poser (loaded on first use)."""
        with self._lock:
            if self._poser is None:
                from raven_avatar.engine.poser import load_poser

                self._poser = load_poser(self.config.variant, self.config.device)
                if self._poser.notice:
                    log.warning("%s", self._poser.notice)
            return self._poser

    @property
    def group(self) -> Any:
        poser = self.poser
        with self._lock:
            if self._group is None:
                from raven_avatar.engine.group import RenderGroup

                self._group = RenderGroup(poser, max_batch=max(1, self.config.max_avatars))
            return self._group

    def settings_for(self, requested: Mapping[str, Any]) -> dict[str, Any]:
        """``requested`` over the server's ``--settings`` file (``{}``: exactly the server's defaults)."""
        return {**self._base_settings, **requested}

    # --------------------------------------------------------------------------------------------- instances

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._instances)

    def get(self, instance_id: str) -> Instance:
        with self._lock:
            inst = self._instances.get(instance_id)
        if inst is None:
            raise ApiError(404, "instance_id", f"no avatar {instance_id!r} is loaded (POST /api/avatar/load first)")
        return inst

    def load(self, character: Character | Path, instance_id: str | None = None) -> Instance:
        """Make a new avatar of ``character`` (an uploaded :class:`Character`, or a path from the command line)."""
        with self._lock:
            if len(self._instances) + self._loading >= self.config.max_avatars:
                raise ApiError(
                    429, "max_avatars",
                    f"{self.config.max_avatars} avatars are loaded, the most this server allows (--max-avatars); "
                    "unload one first",
                )  # fmt: skip
            self._loading += 1
        try:
            group = self.group
            avatar = Avatar(
                character,
                self.settings_for({}),
                poser=group.poser,
                group=group,
                warm_up=self.config.warm_up,
                output="u8",
                **({"clock": self.config.clock} if self.config.clock is not None else {}),
            )
            new_id = instance_id or uuid.uuid4().hex
            inst = Instance(new_id, avatar, feed=None, format=avatar.settings["format"])  # type: ignore[arg-type]
            inst.feed = FeedHub(
                avatar,
                max_feeds=self.config.max_feeds,
                default_format=lambda: inst.format,
                on_frame=lambda frame: self._frame_event(inst, frame),
            )
            with self._lock:
                self._instances[new_id] = inst
        finally:
            with self._lock:
                self._loading -= 1
        log.info("loaded avatar %s (%s)", new_id, avatar.character.name)
        self.events.emit("loaded", new_id, character=avatar.character.name)
        return inst

    def unload(self, instance_id: str) -> bool:
        """Stop and forget an avatar; False if there was none by that id."""
        with self._lock:
            inst = self._instances.pop(instance_id, None)
        if inst is None:
            return False
        inst.feed.close()
        if inst.speaker is not None:
            inst.speaker.close()
        inst.avatar.close()
        log.info("unloaded avatar %s", instance_id)
        self.events.emit("unloaded", instance_id)
        return True

    def close(self) -> None:
        for instance_id in self.ids():
            self.unload(instance_id)

    def _frame_event(self, inst: Instance, frame: Any) -> None:
        now = time.monotonic()
        if now - inst._last_frame_event < _FRAME_EVENT_INTERVAL_S:
            return
        inst._last_frame_event = now
        stats = {k: round(v, 3) if isinstance(v, float) else v for k, v in frame.stats.items()}
        self.events.emit(
            "frame", inst.id, index=frame.index, width=frame.width, height=frame.height, emotion=frame.emotion,
            stats=stats, fps=round(inst.avatar.stats.get("fps", 0.0), 2),
        )  # fmt: skip
