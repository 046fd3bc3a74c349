"""The app's side of the engine: slow engine calls run in one worker thread, never in a GUI callback.

``Avatar.load_settings``, ``load_character`` and ``load_templates`` wait for the frame in progress (a frame boundary),
which on a CPU is up to a second of THA3. :class:`EngineLink` queues them to a worker thread (settings pushes are
coalesced: only the newest is applied) and reports each outcome as an :class:`Event` for the GUI thread to show.
Cheap calls (emotion, talking, pause, frames) go straight to the avatar.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """The outcome of a queued engine call: ``kind`` names the call; ``error`` is set when it failed."""

    kind: str
    message: str
    error: bool = False
    problems: tuple = ()


class EngineLink:
    """Wraps an :class:`~raven_avatar.engine.Avatar` for the settings editor (see the module docstring)."""

    def __init__(self, avatar: Any):
        self.avatar = avatar
        self.events: queue.Queue[Event] = queue.Queue()
        self._jobs: queue.Queue[tuple[str, Callable[[], Event | None]] | None] = queue.Queue()
        self._pending_settings: dict | None = None
        self._settings_lock = threading.Lock()
        self._busy = threading.Event()
        self._idle = threading.Condition()
        self._outstanding = 0
        self._thread = threading.Thread(target=self._run, name="settings-editor-engine", daemon=True)
        self._thread.start()

    # -------------------------------------------------------------------------------------------------- worker

    def _submit(self, kind: str, job: Callable[[], Event | None]) -> None:
        with self._idle:
            self._outstanding += 1
        self._jobs.put((kind, job))

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            kind, job = item
            try:
                event = job()
            except Exception as exc:  # every failure becomes a message for the user; the worker carries on
                logger.exception("%s failed", kind)
                event = Event(
                    kind, str(exc) or type(exc).__name__, error=True, problems=tuple(getattr(exc, "problems", ()) or ())
                )
            if event is not None:
                self.events.put(event)
            with self._idle:
                self._outstanding -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every queued call has finished (tests, shutdown); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._outstanding == 0, timeout)

    @property
    def busy(self) -> bool:
        return self._outstanding > 0

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)
        self.avatar.close()

    # ------------------------------------------------------------------------------------------------ queued calls

    def load_settings(self, settings: dict) -> None:
        """Apply complete settings (coalesced: a burst of pushes applies only the newest)."""
        with self._settings_lock:
            first = self._pending_settings is None
            self._pending_settings = settings
        if first:
            self._submit("settings", self._apply_settings)

    def _apply_settings(self) -> Event | None:
        with self._settings_lock:
            settings, self._pending_settings = self._pending_settings, None
        if settings is None:
            return None
        problems = self.avatar.load_settings(settings)
        if problems:
            return Event("settings", "the engine passed over some settings", error=True, problems=tuple(problems))
        return None

    def load_character(self, path: Path) -> None:
        def job() -> Event:
            character = self.avatar.load_character(path)
            return Event("character", f"loaded {character.path.name}\n{character.report.summary()}")

        self._submit("character", job)

    def reload_character(self) -> None:
        def job() -> Event:
            character = self.avatar.reload_character()
            return Event("character", f"reloaded {character.path.name}\n{character.report.summary()}")

        self._submit("character", job)

    def load_templates(self, source: Path | None) -> None:
        def job() -> Event:
            problems = self.avatar.load_templates(source)
            what = f"loaded templates {Path(source).name}" if source is not None else "reloaded emotion templates"
            return Event("templates", what, error=bool(problems) and source is not None, problems=tuple(problems))

        self._submit("templates", job)

    # ---------------------------------------------------------------------------------------- direct (cheap) calls

    @property
    def character_path(self) -> Path:
        return self.avatar.character.path

    def character_report(self) -> str:
        c = self.avatar.character
        return f"{c.path.name}\n{c.report.summary()}"

    def character_files(self) -> list[Path]:
        """Every file the character was loaded from, plus any new ``NAME_*.png`` / emotions file beside it."""
        c = self.avatar.character
        files = set(c.stamps) | {c.path}
        folder = c.path.parent
        try:
            files.update(folder.glob(f"{c.path.stem}_*.png"))
            files.update(folder.glob(f"{c.path.stem}_emotions.json"))
        except OSError:
            pass
        return sorted(files)

    def __getattr__(self, name: str) -> Any:
        # emotions, emotion, set_emotion, talking, data eyes, pause/resume, latest_frame, stats, last_error, ...
        return getattr(self.avatar, name)
