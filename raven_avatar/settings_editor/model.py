"""The settings editor's state and actions, with no GUI: every button, hotkey, file watcher and test calls these.

:class:`EditorModel` owns the complete animator settings (schema keys only, canonical), the editable postprocessor
chain, the backdrop, and the engine's :class:`~raven_avatar.engine.Avatar`. Actions never do GPU work themselves:
they hand the engine new settings, characters or emotions, and the engine's render thread does the rest. Slider
drags are coalesced: :meth:`tick` (called once per GUI frame) pushes settings after a short quiet period, checks the
character and template files for changes, and feeds the recorder.

Errors a user should see are raised as :class:`ActionError` (the message names the file and the problem); the GUI
shows them in a dialog.
"""

from __future__ import annotations

import copy
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image

from raven_avatar.engine import emotions as emotionsmod
from raven_avatar.engine import settings as settingsmod
from raven_avatar.engine.export import encode_png
from raven_avatar.engine.fileio import atomic_path
from raven_avatar.engine.paths import asset_path
from raven_avatar.engine.wording import plural

from . import backdrop as backdropmod
from .chain_edit import EditableChain
from .engine_link import EngineLink, Event
from .recorder import Encoding, Recorder

logger = logging.getLogger(__name__)

PUSH_DEBOUNCE_S = 0.15  # slider drags: push settings after this long without another change
RELOAD_DEBOUNCE_S = 0.5  # file changes: reload after the files stayed unchanged this long
CROP_MIN_GAP = 0.05  # opposite crop edges stay at least this far apart
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
WATCH_INTERVAL_S = 0.25  # how often the character and template files are checked for changes


class ActionError(Exception):
    """An action failed in a way the user must be told about; ``problems`` holds validation details, if any."""

    def __init__(self, message: str, problems: list | None = None):
        super().__init__(message)
        self.problems = list(problems or [])


def _noting(status: str, problems: list) -> str:
    """A status line with its problem count, if any: ``loaded settings a.json (1 problem)``."""
    return f"{status} ({plural(len(problems), 'problem')})" if problems else status


def _tree_stamp(paths: list[Path]) -> tuple:
    """(name, mtime_ns, size) of each existing file, to notice any change."""
    out = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(sorted(out))


class EditorModel:
    """Settings editor state over one engine avatar.

    Args:
        link: an :class:`EngineLink` over the engine's ``Avatar`` (the model never starts or closes it).
        settings: initial complete settings (default: the user's file → shipped → built-in, via
            :func:`settings.load_settings`).
        settings_path: the file ``settings`` came from (``None``: nothing loaded yet; Save asks where).
        clock: monotonic seconds (tests may drive it).
    """

    def __init__(
        self,
        link: EngineLink,
        *,
        settings: dict[str, Any] | None = None,
        settings_path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.link = link
        self.clock = clock
        if settings is None:
            settings, problems = settingsmod.load_settings()
            for p in problems:
                logger.warning("%s", p)
        self.settings: dict[str, Any] = copy.deepcopy(settings)
        self.settings_path = settings_path
        self.frame: Any = None  # the newest engine Frame taken (its arrays are valid until two newer are taken)
        self.new_frame = False  # tick() took a frame the GUI has not shown yet
        self.events: list[Event] = []  # engine outcomes the GUI has not shown yet
        self._next_watch = 0.0
        self.chain = EditableChain.from_chain(self.settings["postprocessor_chain"])
        self._saved = self.snapshot()
        self.postprocessor_enabled = True  # master switch; off sends an empty chain (the chain itself is kept)
        self.show_crop_overlay = True  # UI preference, never saved
        self.view_one_to_one = False  # UI preference: 1:1 pixels instead of fit-to-panel
        self.backdrop_image: PIL.Image.Image | None = None
        self.backdrop_version = 0  # bumped whenever the backdrop needs re-rendering
        self.visible = True
        self.user_paused = False
        self.recorder: Recorder | None = None
        #: The result of the last :meth:`feel`: (emotion, score, [(label, score)] * 3), None while it runs.
        self.feeling: tuple[str, float, list[tuple[str, float]]] | None = None
        self.encoding: Encoding | None = None  # the WebM of the last recording, while it is being encoded
        self.status = ""  # one line for the status bar
        self._push_due: float | None = None
        self._watch_stamp: tuple | None = None
        self._watch_changed_at: float | None = None
        self._templates_stamp = _tree_stamp(self._template_files())
        self._templates_changed_at: float | None = None
        self._load_backdrop_from_settings(quiet=True, relative_to=settings_path.parent if settings_path else None)

    # -------------------------------------------------------------------------------------------------- settings

    def snapshot(self) -> dict[str, Any]:
        """The settings as they would be saved (the chain from the editor: enabled instances, in order)."""
        out = copy.deepcopy(self.settings)
        out["postprocessor_chain"] = self.chain.to_chain()
        return out

    @property
    def dirty(self) -> bool:
        """Unsaved changes since the last load or save."""
        return self.snapshot() != self._saved

    def engine_settings(self) -> dict[str, Any]:
        """What the engine gets: the snapshot, with the master switch applied to the chain."""
        out = self.snapshot()
        if not self.postprocessor_enabled:
            out["postprocessor_chain"] = []
        return out

    def set_setting(self, key: str, value: Any) -> Any:
        """Set one schema setting (validated; numbers clamped to the range); pushed to the engine debounced."""
        setting = settingsmod.BY_KEY[key]
        if setting.kind in ("int", "float") and isinstance(value, (int, float)) and not isinstance(value, bool):
            lo = setting.low if setting.low is not None else value
            hi = setting.high if setting.high is not None else value
            value = min(max(value, lo), hi)
            value = int(round(value)) if setting.kind == "int" else float(value)
        problems = settingsmod.check_value(setting, value)
        if problems:
            raise ActionError(str(problems[0]), problems)
        if setting.kind == "color" and len(value) == 3:
            value = [*value, 1.0]
        self.settings[key] = copy.deepcopy(value)
        for lo_key, hi_key in settingsmod.ORDERED_PAIRS:  # keep min <= max by moving the other end
            if key == lo_key and self.settings[lo_key] > self.settings[hi_key]:
                self.settings[hi_key] = self.settings[lo_key]
            elif key == hi_key and self.settings[hi_key] < self.settings[lo_key]:
                self.settings[lo_key] = self.settings[hi_key]
        if key.startswith("backdrop_"):
            if key == "backdrop_path":
                self._load_backdrop_from_settings()
            self.backdrop_version += 1
        self.schedule_push()
        return self.settings[key]

    def reset_setting(self, key: str) -> Any:
        return self.set_setting(key, copy.deepcopy(settingsmod.BY_KEY[key].default))

    def set_crop(self, **edges: Any) -> dict[str, Any]:
        """Change crop fields (``enabled``, ``left``...); a moved edge stays :data:`CROP_MIN_GAP` from its pair."""
        box = dict(self.settings["crop"])
        for name, value in edges.items():
            if name not in settingsmod.CROP_KEYS:
                raise ActionError(f"unknown crop field {name!r}")
            box[name] = bool(value) if name == "enabled" else min(max(float(value), 0.0), 1.0)
        for lo, hi in (("left", "right"), ("top", "bottom")):
            if box[hi] - box[lo] < CROP_MIN_GAP:
                if hi in edges:
                    box[hi] = min(1.0, box[lo] + CROP_MIN_GAP)
                    box[lo] = box[hi] - CROP_MIN_GAP
                else:
                    box[lo] = max(0.0, box[hi] - CROP_MIN_GAP)
                    box[hi] = box[lo] + CROP_MIN_GAP
        return self.set_setting("crop", box)

    def reset_crop(self) -> dict[str, Any]:
        return self.set_setting("crop", dict(settingsmod.BY_KEY["crop"].default))

    def schedule_push(self) -> None:
        self._push_due = self.clock() + PUSH_DEBOUNCE_S

    def push_now(self) -> None:
        """Send the settings to the engine now (what :meth:`tick` does once the debounce time has passed)."""
        self._push_due = None
        self.link.load_settings(self.engine_settings())

    def load_settings(self, path: str | os.PathLike) -> list[settingsmod.Problem]:
        """Load a settings file (merged over shipped → built-in defaults); returns the problems that were skipped.

        A file that cannot be read at all raises :class:`ActionError`; a file with invalid values still loads
        (those keys keep their defaults; a postprocessor chain loses only its broken entries, and a bad filter
        parameter takes its default) and the problems come back for the GUI to show.
        """
        path = Path(path)
        try:
            settings, problems = settingsmod.load_settings(path)
        except settingsmod.SettingsError as exc:
            raise ActionError(str(exc)) from None
        ours = [p for p in problems if p.source == str(path)]
        chain = EditableChain.from_chain(settings["postprocessor_chain"])  # valid: merge checked it
        self.settings, self.chain, self.settings_path = settings, chain, path
        self._saved = self.snapshot()
        self._load_backdrop_from_settings(relative_to=path.parent)
        self.backdrop_version += 1
        self.push_now()
        self.status = _noting(f"loaded settings {path.name}", ours)
        return ours

    def save_settings(self, path: str | os.PathLike | None = None) -> Path:
        """Save the complete settings (chain order and duplicates kept) atomically; returns the path written."""
        path = Path(path) if path is not None else self.settings_path
        if path is None:
            raise ActionError("no settings file chosen yet: use Save settings as")
        data = self.snapshot()
        try:
            settingsmod.save_settings(data, path)
        except (ValueError, OSError) as exc:
            raise ActionError(f"{path}: could not save the settings: {exc}") from None
        self.settings_path = path
        self._saved = data
        self.status = f"saved settings {path.name}"
        return path

    # ------------------------------------------------------------------------------------------ postprocessor chain

    def chain_changed(self) -> None:
        self.settings["postprocessor_chain"] = self.chain.to_chain()
        if self.settings["backdrop_postprocess"]:
            self.backdrop_version += 1
        self.schedule_push()

    def add_filter(self, name: str) -> int:
        try:
            self.chain.add(name)
        except KeyError as exc:
            raise ActionError(str(exc.args[0])) from None
        self.chain_changed()
        return len(self.chain) - 1

    def remove_filter(self, index: int) -> None:
        self.chain.remove(index)
        self.chain_changed()

    def move_filter(self, index: int, delta: int) -> int:
        new = self.chain.move(index, delta)
        self.chain_changed()
        return new

    def duplicate_filter(self, index: int) -> int:
        self.chain.duplicate(index)
        self.chain_changed()
        return index + 1

    def set_filter_enabled(self, index: int, enabled: bool) -> None:
        self.chain.set_enabled(index, enabled)
        self.chain_changed()

    def set_filter_param(self, index: int, name: str, value: Any) -> Any:
        try:
            out = self.chain.set_param(index, name, value)
        except (KeyError, ValueError, TypeError) as exc:
            raise ActionError(str(exc)) from None
        self.chain_changed()
        return out

    def reset_filter_param(self, index: int, name: str) -> Any:
        out = self.chain.reset_param(index, name)
        self.chain_changed()
        return out

    def reset_filter(self, index: int) -> None:
        self.chain.reset_filter(index)
        self.chain_changed()

    def clear_filters(self) -> None:
        self.chain.clear()
        self.chain_changed()

    def set_postprocessor_enabled(self, enabled: bool) -> None:
        self.postprocessor_enabled = bool(enabled)
        self.backdrop_version += 1
        self.schedule_push()

    def chain_presets(self) -> dict[str, Path]:
        """Settings presets that carry a postprocessor chain (shipped, then the user's), by name."""
        found = dict(settingsmod.presets())
        found.setdefault("default", settingsmod.shipped_settings_path())
        return found

    def load_chain_preset(self, path: str | os.PathLike) -> list[settingsmod.Problem]:
        """Replace the chain with the one in a settings file (other settings untouched); returns its problems.

        As with :meth:`load_settings`, a broken entry is skipped and a bad parameter takes its default; a file
        without a usable chain raises :class:`ActionError` and keeps the current chain.
        """
        path = Path(path)
        try:
            data = settingsmod.read_settings_file(path)
        except settingsmod.SettingsError as exc:
            raise ActionError(str(exc)) from None
        if "postprocessor_chain" not in data:
            raise ActionError(f"{path}: has no postprocessor_chain")
        chain, problems = settingsmod.usable_chain(data["postprocessor_chain"], source=str(path))
        if chain is None:
            raise ActionError(f"{path}: no usable postprocessor chain", problems)
        self.chain = EditableChain.from_chain(chain)
        self.chain_changed()
        self.status = _noting(f"postprocessor preset {path.stem}", problems)
        return problems

    def save_chain_preset(self, name: str) -> Path:
        """Save the chain as a user preset ``<user data>/settings/<name>.json``; returns its path."""
        try:
            emotionsmod.validate_emotion_name(name)  # same rules: a safe file stem
        except ValueError:
            raise ActionError(f"{name!r} is not a usable preset name (letters, digits, _ and -)") from None
        path = settingsmod.user_settings_path().parent / f"{name}.json"
        try:
            settingsmod.save_settings({"postprocessor_chain": self.chain.to_chain()}, path)
        except (ValueError, OSError) as exc:
            raise ActionError(f"{path}: {exc}") from None
        return path

    # ------------------------------------------------------------------------------------------------ opening files

    def classify_file(self, path: str | os.PathLike) -> str:
        """What a dropped file is: ``character`` (an image with transparency), ``backdrop`` (an opaque image),
        ``settings`` (JSON with settings keys) or ``templates`` (JSON of emotion templates)."""
        path = Path(path)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            try:
                return "character" if backdropmod.has_transparency(path) else "backdrop"
            except backdropmod.BackdropError as exc:
                raise ActionError(str(exc)) from None
        if path.suffix.lower() == ".json":
            try:
                data = settingsmod.read_settings_file(path)
            except settingsmod.SettingsError as exc:
                raise ActionError(str(exc)) from None
            if any(key in settingsmod.BY_KEY for key in data):
                return "settings"
            try:
                emotionsmod.parse_template_file(path)
            except (emotionsmod.TemplateError, OSError) as exc:
                raise ActionError(f"{path}: neither settings nor emotion templates ({exc})") from None
            return "templates"
        raise ActionError(f"{path}: not an image ({', '.join(IMAGE_SUFFIXES)}) or a JSON file")

    def open_file(self, path: str | os.PathLike) -> str:
        """Open a file by what it is (see :meth:`classify_file`); returns the kind."""
        kind = self.classify_file(path)
        {
            "character": self.load_character,
            "backdrop": self.load_backdrop,
            "settings": self.load_settings,
            "templates": self.load_templates,
        }[kind](path)
        return kind

    # ----------------------------------------------------------------------------------------------------- backdrop

    def _load_backdrop_from_settings(self, *, quiet: bool = False, relative_to: Path | None = None) -> None:
        raw = self.settings.get("backdrop_path")
        if not raw:
            self.backdrop_image = None
            return
        path = Path(raw)
        if not path.is_absolute():  # relative: beside the settings file, else the working directory, else shipped
            for base in (relative_to, Path.cwd(), asset_path("backdrops")):
                if base is not None and (base / path).exists():
                    path = base / path
                    break
        try:
            self.backdrop_image = backdropmod.load_image(path)
        except backdropmod.BackdropError as exc:
            self.backdrop_image = None
            if not quiet:
                raise ActionError(str(exc)) from None
            logger.warning("%s", exc)

    def load_backdrop(self, path: str | os.PathLike) -> None:
        path = Path(path).resolve()
        if not path.is_file():
            raise ActionError(f"{path}: backdrop image not found")
        try:
            image = backdropmod.load_image(path)
        except backdropmod.BackdropError as exc:  # the old backdrop stays
            raise ActionError(str(exc)) from None
        self.settings["backdrop_path"] = str(path)
        self.backdrop_image = image
        self.backdrop_version += 1
        self.schedule_push()
        self.status = f"backdrop {path.name}"

    def clear_backdrop(self) -> None:
        self.set_setting("backdrop_path", None)

    def set_backdrop_through_postprocessor(self, on: bool) -> None:
        self.set_setting("backdrop_postprocess", bool(on))

    def render_backdrop(self, width: int, height: int) -> np.ndarray:
        """The scene behind the avatar at a view size ((H, W, 4) float32 sRGB); CPU work, call off the GUI thread."""
        s = self.settings
        scene = backdropmod.render_backdrop(
            self.backdrop_image,
            width,
            height,
            fit=s["backdrop_fit"],
            blur=s["backdrop_blur"],
            blur_amount=s["backdrop_blur_amount"],
            color=tuple(s["backdrop_color"]),
        )
        if s["backdrop_postprocess"] and self.postprocessor_enabled and self.chain.to_chain():
            scene = _postprocess_still(scene, self.chain.to_chain())
        return scene

    # --------------------------------------------------------------------------------------- character and emotions

    def character_path(self) -> Path:
        return self.link.character_path

    def character_report(self) -> str:
        return self.link.character_report()

    def load_character(self, path: str | os.PathLike) -> None:
        """Switch to the character ``path`` and its cels (done by the engine worker; the outcome is an event)."""
        path = Path(path)
        if not path.is_file():
            raise ActionError(f"{path}: character image not found")
        self.link.load_character(path.resolve())
        self._watch_stamp = None
        self.status = f"loading character {path.name}..."

    def reload_character(self) -> None:
        """Re-read the current character from disk (Ctrl+R); a broken file keeps the previous version."""
        self.link.reload_character()
        self._watch_stamp = None
        self.status = f"reloading character {self.link.character_path.name}..."

    def emotions(self) -> list[str]:
        """The emotions of the loaded templates, ``neutral`` first, then alphabetical."""
        names = sorted(self.link.emotions)
        if "neutral" in names:
            names.remove("neutral")
            names.insert(0, "neutral")
        return names

    @property
    def emotion(self) -> str:
        return self.link.emotion

    def set_emotion(self, name: str) -> None:
        try:
            self.link.set_emotion(name)
        except (KeyError, ValueError) as exc:
            raise ActionError(str(exc)) from None

    def feel(self, text: str) -> None:
        """ "Say or feel": the avatar takes the emotion of ``text``. The classifier runs on a helper thread (its
        first use loads the model); :attr:`feeling` then holds ``(emotion, score, top three)``, or an error event
        arrives through the engine link (:meth:`tick` shows it)."""
        text = text.strip()
        if not text:
            raise ActionError("Type a line for the avatar to feel.")
        avatar = self.link.avatar

        def work() -> None:
            try:
                name, score = avatar.set_emotion_from_text(text)
                top = list(avatar.text_emotion.last_scores.items())[:3]
                self.feeling = (name, score, top)
            except Exception as exc:  # transformers missing, model not downloaded: the message says what to do
                logger.warning("emotion from text failed: %s", exc)
                self.link.events.put(Event("emotion", f"Cannot feel the text: {exc}", error=True))

        self.feeling = None
        threading.Thread(target=work, name="feel", daemon=True).start()

    def step_emotion(self, delta: int = 0, *, to: str | None = None) -> str:
        """Next/previous emotion (``delta``), or the first/last (``to`` = ``"first"``/``"last"``); applied at once."""
        names = self.emotions()
        i = names.index(self.emotion) if self.emotion in names else 0
        if to == "first":
            i = 0
        elif to == "last":
            i = len(names) - 1
        else:
            i = min(max(i + delta, 0), len(names) - 1)
        self.set_emotion(names[i])
        return names[i]

    def load_templates(self, path: str | os.PathLike) -> None:
        """Overlay the emotions in a templates JSON file onto the resolved ones (Ctrl+Shift+E)."""
        path = Path(path)
        try:
            found = emotionsmod.parse_template_file(path)
        except (emotionsmod.TemplateError, OSError) as exc:
            raise ActionError(f"could not load emotion templates {path}: {exc}") from None
        if not [n for n in found if n != emotionsmod.ZERO]:
            raise ActionError(f"{path}: no emotion templates in this file")
        self.link.load_templates(path)
        self.status = f"loading emotion templates {path.name}..."

    def reload_templates(self) -> None:
        """Re-resolve the templates (character's, user's, factory) for the current character."""
        self.link.load_templates(None)

    def _template_files(self) -> list[Path]:
        folder = emotionsmod.user_templates_dir()
        return sorted(folder.glob("*.json")) if folder.is_dir() else []

    # ------------------------------------------------------------------------------------- talking, pause, visible

    @property
    def talking(self) -> bool:
        return self.link.is_talking

    def toggle_talking(self) -> bool:
        if self.link.is_talking:
            self.link.stop_talking()
        else:
            self.link.start_talking()
        return self.link.is_talking

    def set_data_eyes(self, on: bool) -> None:
        if on:
            self.link.start_data_eyes()
        else:
            self.link.stop_data_eyes()

    @property
    def paused(self) -> bool:
        return self.user_paused or not self.visible

    def toggle_pause(self) -> bool:
        self.user_paused = not self.user_paused
        self._apply_pause()
        return self.user_paused

    def set_visible(self, visible: bool) -> None:
        """The window was minimised/hidden (False) or shown again (True): rendering stops while hidden."""
        if visible != self.visible:
            self.visible = bool(visible)
            self._apply_pause()

    def _apply_pause(self) -> None:
        if self.paused:
            self.link.pause()
        else:
            self.link.resume()

    # ---------------------------------------------------------------------------------------------------- capture

    def latest(self) -> tuple[np.ndarray, int, float] | None:
        """The newest frame as ((H, W, 4) float32 sRGB view, frame index, animation time), or None before the first."""
        f = self.frame
        if f is None or f.rgba_f32 is None:
            return None
        return f.rgba_f32.reshape(f.height, f.width, 4), f.index, f.t

    def screenshot(self, path: str | os.PathLike, *, with_backdrop: bool = False) -> Path:
        """The current frame as an RGBA PNG (transparent where the avatar is, unless ``with_backdrop``)."""
        got = self.latest()
        if got is None:
            raise ActionError("no frame rendered yet")
        rgba = got[0]
        if with_backdrop:
            h, w = rgba.shape[:2]
            rgba = backdropmod.over(rgba, self.render_backdrop(w, h))
        path = Path(path)
        data = encode_png((np.clip(rgba, 0, 1) * 255 + 0.5).astype(np.uint8))
        try:
            with atomic_path(path) as tmp:
                tmp.write_bytes(data)
        except OSError as exc:
            raise ActionError(f"{path}: could not write the screenshot: {exc}") from None
        self.status = f"screenshot {path.name}"
        return path

    def start_recording(self, folder: str | os.PathLike, *, with_backdrop: bool = False, video: bool = False) -> None:
        """Record every new frame (PNG sequence + timing.json; ``video``: also a WebM, encoded after stopping)."""
        if self.recorder is not None:
            raise ActionError("already recording")
        if self.encoding is not None:
            raise ActionError(f"still encoding {self.encoding.path}: wait for it, or cancel it")
        try:
            self.recorder = Recorder(folder, fps=self.settings["target_fps"], backdrop=with_backdrop, video=video)
        except OSError as exc:
            raise ActionError(f"{folder}: cannot record there: {exc}") from None
        self._record_backdrop: np.ndarray | None = None
        self.status = f"recording to {folder}"

    def stop_recording(self) -> Path | None:
        """Finish the PNG sequence and timing.json (returns its path); a WebM is then encoded in the background.

        While it is, :attr:`encoding` reports ``done``/``total`` frames (``str()``: "Encoding recording.webm:
        40/75 frames", also shown as :attr:`status`); :meth:`tick` clears it at the end and reports a failure as an
        error event. :meth:`cancel_encoding` stops it.
        """
        rec, self.recorder = self.recorder, None
        if rec is None:
            return None
        path = rec.stop()
        self.status = f"recorded {plural(rec.count, 'frame')} to {rec.folder}"
        self.encoding = rec.encoding
        if self.encoding is not None:
            self.status = str(self.encoding)
        if rec.error:
            raise ActionError(f"recording failed: {rec.error}")
        return path

    def cancel_encoding(self) -> None:
        """Stop the WebM encode of the last recording (its PNG sequence and timing.json stay)."""
        if self.encoding is not None:
            self.encoding.cancel()

    def _watch_encoding(self) -> None:
        enc = self.encoding
        self.status = str(enc)
        if not enc.finished:
            return
        self.encoding = None
        if enc.error is not None:
            self.events.append(Event("recording", str(enc), error=True))

    # ------------------------------------------------------------------------------------------------------ tick

    def tick(self) -> None:
        """Once per GUI frame: take the newest frame, debounced settings push, engine events, file watching,
        recording. Cheap when nothing changed."""
        now = self.clock()
        frame = self.link.latest_frame()
        if frame is not None and (self.frame is None or frame.index != self.frame.index):
            self.frame, self.new_frame = frame, True
            if self.recorder is not None:
                self._feed_recorder()
        if self._push_due is not None and now >= self._push_due:
            self.push_now()
        while True:
            try:
                event = self.link.events.get_nowait()
            except queue.Empty:
                break
            self.events.append(event)
            self.status = event.message.splitlines()[0]
            if event.kind == "character":
                self._watch_stamp = None
        if self.encoding is not None:
            self._watch_encoding()
        if now >= self._next_watch:
            self._next_watch = now + WATCH_INTERVAL_S
            self._watch_character(now)
            self._watch_templates(now)

    def next_tick_due(self) -> float:
        """When (on :attr:`clock`) :meth:`tick` next has work of its own: a debounced push or a file check."""
        due = self._next_watch
        return due if self._push_due is None else min(due, self._push_due)

    def _watch_character(self, now: float) -> None:
        files = self.link.character_files()
        stamp = _tree_stamp(files)
        if self._watch_stamp is None:
            self._watch_stamp = stamp
            return
        if stamp != self._watch_stamp:
            self._watch_stamp = stamp
            self._watch_changed_at = now
        elif self._watch_changed_at is not None and now - self._watch_changed_at >= RELOAD_DEBOUNCE_S:
            self._watch_changed_at = None
            logger.info("character files changed on disk; reloading")
            self.reload_character()
            self._watch_stamp = _tree_stamp(self.link.character_files())

    def _watch_templates(self, now: float) -> None:
        stamp = _tree_stamp(self._template_files())
        if stamp != self._templates_stamp:
            self._templates_stamp = stamp
            self._templates_changed_at = now
        elif self._templates_changed_at is not None and now - self._templates_changed_at >= RELOAD_DEBOUNCE_S:
            self._templates_changed_at = None
            logger.info("user emotion templates changed on disk; reloading")
            self.reload_templates()

    def _feed_recorder(self) -> None:
        rgba, _, t = self.latest()
        if self.recorder.backdrop:
            h, w = rgba.shape[:2]
            if self._record_backdrop is None or self._record_backdrop.shape[:2] != (h, w):
                self._record_backdrop = self.render_backdrop(w, h)
            rgba = backdropmod.over(rgba, self._record_backdrop)
        self.recorder.add(rgba.copy(), t)


def _postprocess_still(scene: np.ndarray, chain: list) -> np.ndarray:
    """One postprocessed copy of a static sRGB scene (frozen at t = 0), on the CPU."""
    import torch

    from raven_avatar.engine.postprocessor import Postprocessor, linear_to_srgb, srgb_to_linear

    img = srgb_to_linear(torch.from_numpy(np.ascontiguousarray(scene)).permute(2, 0, 1).float())
    rgb_a = torch.cat([img[:3], torch.from_numpy(scene[..., 3]).unsqueeze(0)])
    out = Postprocessor(chain)(rgb_a, t=0.0)
    srgb = torch.cat([linear_to_srgb(out[:3].clamp(0, 1)), out[3:4].clamp(0, 1)])
    return srgb.permute(1, 2, 0).contiguous().numpy().astype(np.float32)
