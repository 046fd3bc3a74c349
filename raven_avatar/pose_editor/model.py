"""The pose editor's state and actions, with no GUI: what the window, the hotkeys, drag and drop and tests all call.

An :class:`EditorModel` holds the character, the emotion templates in effect for it, and the edited template (45 pose
values and the cel strengths). Every edit goes through an action method; edits are undoable, and :attr:`dirty` says
whether the current state differs from what was last saved or loaded. Actions raise on failure (``CharacterError``,
``TemplateError``, ``OSError``, ``ValueError``) and change nothing then; the GUI turns the exception into a dialog.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from raven_avatar.engine.character import SUPPORTED_CELS, Character, load_character
from raven_avatar.engine.emotions import (
    EmotionTemplate,
    TemplateError,
    TemplateSet,
    load_templates,
    parse_template_file,
    save_template,
    validate_emotion_name,
)
from raven_avatar.engine.export import write_png
from raven_avatar.engine.pose import KEYS, PARAMS, Category, PoseParam, param, params_in
from raven_avatar.pose_editor.render import EditorRenderer

log = logging.getLogger(__name__)

CUSTOM = "[custom]"
RESET = "[reset]"
#: Cels with a slider: all of them (the animator cycles waver and data cels over the template's values).
EDITABLE_CELS: tuple[str, ...] = SUPPORTED_CELS
#: Morph categories, one panel each, in display order.
MORPH_CATEGORIES: tuple[Category, ...] = (Category.EYEBROW, Category.EYE, Category.IRIS_MORPH, Category.MOUTH)
#: Pose sliders (one parameter each), in display order.
POSE_SLIDERS: tuple[PoseParam, ...] = tuple(
    p
    for c in (Category.IRIS_ROTATION, Category.FACE_ROTATION, Category.BODY_ROTATION, Category.BREATHING)
    for p in params_in(c)
)


def morph_groups(category: Category) -> list[str]:
    """The parameter groups of a morph category, in THA3 order."""
    return list(dict.fromkeys(p.group for p in params_in(category)))


def group_params(group: str) -> list[PoseParam]:
    """The one (arity 1) or two (left, right) parameters of a group."""
    return [p for p in PARAMS if p.group == group]


@dataclass(frozen=True)
class EditState:
    """One undoable snapshot: pose values (THA3 order), cel strengths (``SUPPORTED_CELS`` order), preset name."""

    pose: tuple[float, ...]
    cels: tuple[float, ...]
    preset: str


@dataclass
class Change:
    """What an action changed, for listeners (the GUI refreshes widgets, the renderer re-renders)."""

    values: bool = False  # pose or cels
    character: bool = False
    presets: bool = False  # the preset list
    view: bool = False  # output index, background, source view
    edit: bool = False  # a single slider edit (the GUI keeps its panels as they are)


@dataclass
class EditorModel:
    """The editor's state and actions. ``renderer`` is needed only by :meth:`save` (and batch export)."""

    renderer: EditorRenderer | None = None
    character: Character | None = None
    templates: TemplateSet | None = None
    pose: list[float] = field(default_factory=lambda: [0.0] * len(PARAMS))
    cels: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SUPPORTED_CELS, 0.0))
    preset: str = CUSTOM
    output_index: int = 0
    show_cels_in_source: bool = False
    background: tuple[float, float, float] | None = None  # None: checkerboard
    linked: dict[Category, bool] = field(default_factory=lambda: dict.fromkeys(MORPH_CATEGORIES, False))
    listeners: list[Callable[[Change], None]] = field(default_factory=list)
    _undo: list[EditState] = field(default_factory=list)
    _redo: list[EditState] = field(default_factory=list)
    _coalesce_key: str | None = None
    _clean: EditState | None = None
    #: The template name last saved or loaded (a default for the next save).
    last_name: str = "custom"
    #: The folder of the last file opened or saved (the file dialogs start there).
    last_dir: Path = field(default_factory=Path.cwd)

    def __post_init__(self) -> None:
        self._clean = self.state()
        if self.templates is None:
            self.templates = self._load_templates()

    # -- state -----------------------------------------------------------------------------------------------------

    def state(self) -> EditState:
        return EditState(tuple(self.pose), tuple(self.cels[c] for c in SUPPORTED_CELS), self.preset)

    def _restore(self, s: EditState) -> None:
        self.pose = list(s.pose)
        self.cels = dict(zip(SUPPORTED_CELS, s.cels, strict=True))
        self.preset = s.preset

    @property
    def dirty(self) -> bool:
        """Whether the pose or cels differ from what was last saved, loaded or picked from the presets."""
        clean = self._clean
        return clean is None or (clean.pose, clean.cels) != (tuple(self.pose), self.state().cels)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def pose_vector(self) -> torch.Tensor:
        return torch.tensor(self.pose, dtype=torch.float32)

    def value(self, key: str) -> float:
        """A pose value (reference key or THA3 name) or a cel strength."""
        if key in self.cels:
            return self.cels[key]
        return self.pose[param(key).index]

    def template(self, name: str | None = None) -> EmotionTemplate:
        """The current edit as a template called ``name`` (default: the last saved/loaded name)."""
        t = EmotionTemplate(validate_emotion_name(name or self.last_name))
        t.pose = {k: float(v) for k, v in zip(KEYS, self.pose, strict=True)}
        t.cels = {c: float(self.cels[c]) for c in SUPPORTED_CELS}
        return t

    def preset_names(self) -> list[str]:
        """The preset list: ``[custom]``, ``[reset]``, then every emotion in effect for the character, sorted."""
        return [CUSTOM, RESET, *sorted(self.templates or [])]

    def _notify(self, change: Change) -> None:
        for listener in list(self.listeners):
            listener(change)

    def _push_undo(self, coalesce: str | None = None) -> None:
        """Remember the state before an edit; consecutive edits of one slider (``coalesce``) make one undo step."""
        if coalesce is None or coalesce != self._coalesce_key:
            self._undo.append(self.state())
            del self._undo[:-200]
        self._coalesce_key = coalesce
        self._redo.clear()

    def _load_templates(self) -> TemplateSet:
        ts = load_templates(self.character.path if self.character else None)
        for p in ts.problems:
            log.warning("emotion templates: %s", p)
        return ts

    # -- actions ---------------------------------------------------------------------------------------------------

    def load_character(self, path: str | os.PathLike[str]) -> Character:
        """Load a character image (and its cels); the edit is kept. Raises ``CharacterError`` and changes nothing."""
        character = load_character(path)
        templates = load_templates(character.path)
        self.character, self.templates = character, templates
        for p in templates.problems:
            log.warning("emotion templates: %s", p)
        self.last_dir = character.path.parent
        self._notify(Change(character=True, presets=True, values=True))
        return character

    def reload_templates(self) -> None:
        """Re-read the templates in effect (after a save into the user templates, or a factory reset)."""
        self.templates = self._load_templates()
        self._notify(Change(presets=True))

    def set_value(self, key: str, value: float) -> None:
        """Set one pose value (key or THA3 name) or cel strength, clamped into range; a linked side follows."""
        value = float(value)
        if key in self.cels:
            if key not in EDITABLE_CELS:
                raise KeyError(f"cel {key!r} has no slider; editable cels: {', '.join(EDITABLE_CELS)}")
            new = min(max(value, 0.0), 1.0)
            if self.cels[key] == new:
                return
            self._push_undo(coalesce=key)
            self.cels[key] = new
        else:
            p = param(key)
            new = min(max(value, p.low), p.high)
            targets = [p]
            if p.side is not None and self.linked.get(p.category, False):
                targets = group_params(p.group)
            if all(self.pose[t.index] == new for t in targets):
                return
            self._push_undo(coalesce=p.key)
            for t in targets:
                self.pose[t.index] = new
        self.preset = CUSTOM
        self._notify(Change(values=True, edit=True))

    def set_linked(self, category: Category, linked: bool) -> None:
        """Link the left and right sliders of a morph category; linking copies left onto right for the nonzero ones."""
        self.linked[category] = bool(linked)
        if linked:
            pairs = [group_params(g) for g in morph_groups(category)]
            if any(len(ps) == 2 and self.pose[ps[0].index] != self.pose[ps[1].index] for ps in pairs):
                self._push_undo()
                for ps in pairs:
                    if len(ps) == 2:
                        self.pose[ps[1].index] = self.pose[ps[0].index]
                self.preset = CUSTOM
                self._notify(Change(values=True, edit=True))

    def apply_emotion(self, name: str) -> None:
        """Pick a preset: ``[custom]`` keeps the edit, ``[reset]`` is the all-zero pose, else an emotion template."""
        if name == CUSTOM:
            self.preset = CUSTOM
            self._notify(Change(values=True))
            return
        if name == RESET:
            template = self.templates.zero if self.templates else EmotionTemplate(RESET)
        elif self.templates is not None and name in self.templates:
            template = self.templates[name]
        else:
            raise KeyError(f"unknown emotion {name!r}")
        self._apply_template(template, preset=name)
        if name != RESET:
            self.last_name = name

    def _apply_template(self, template: EmotionTemplate, preset: str) -> None:
        self._push_undo()
        self.pose = [float(template.pose[k]) for k in KEYS]
        self.cels = {c: float(template.cels.get(c, 0.0)) for c in SUPPORTED_CELS}
        self.preset = preset
        self._clean = self.state()
        self._notify(Change(values=True))

    def load_template(self, path: str | os.PathLike[str]) -> list[str]:
        """Load the first emotion of a template file (``_emotions.json`` files too); returns problems fixed up.

        Raises ``FileNotFoundError`` / ``TemplateError`` (malformed, or no emotion in it) and changes nothing then.
        """
        path = Path(path)
        found = parse_template_file(path)
        if not found:
            raise TemplateError(f"{path}: the file holds no emotion")
        name, template = next(iter(found.items()))
        problems = list(template.problems)
        if len(found) > 1:
            problems.insert(0, f"{path.name}: holds {len(found)} emotions; loaded the first, {name!r}")
        self._apply_template(template, preset=CUSTOM)
        self.last_name, self.last_dir = name, path.parent
        for p in problems:
            log.warning("%s", p)
        return problems

    def undo(self) -> bool:
        if not self._undo:
            return False
        self._redo.append(self.state())
        self._restore(self._undo.pop())
        self._coalesce_key = None
        self._notify(Change(values=True))
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        self._undo.append(self.state())
        self._restore(self._redo.pop())
        self._coalesce_key = None
        self._notify(Change(values=True))
        return True

    def end_edit(self) -> None:
        """Close the current slider drag, so the next change of the same slider is its own undo step."""
        self._coalesce_key = None

    def set_output_index(self, index: int) -> None:
        if not 0 <= index < 29:
            raise ValueError(f"output index {index} out of range 0..28")
        self.output_index = int(index)
        self._notify(Change(view=True))

    def set_background(self, colour: tuple[float, float, float] | None) -> None:
        """``None`` shows a checkerboard behind transparent pixels, else an sRGB colour in [0, 1]."""
        self.background = None if colour is None else tuple(float(c) for c in colour[:3])  # type: ignore[assignment]
        self._notify(Change(view=True))

    def set_show_cels_in_source(self, show: bool) -> None:
        self.show_cels_in_source = bool(show)
        self._notify(Change(view=True))

    def render(self) -> torch.Tensor:
        """The current output (linear ``(4, 512, 512)``); needs a character and a renderer."""
        if self.character is None:
            raise RuntimeError("no character loaded")
        if self.renderer is None:
            raise RuntimeError("no renderer")
        return self.renderer.render(self.character, self.pose_vector(), self.cels, self.output_index)

    def save(self, png_path: str | os.PathLike[str], image: torch.Tensor | None = None) -> tuple[Path, Path]:
        """Write the posed image ``NAME.png`` and the template ``NAME.json`` (emotion ``NAME``) beside it.

        ``image`` is the already rendered output for the current state (rendered now when not given). Both writes are
        atomic; the name is checked before anything is written.
        """
        png_path = Path(png_path)
        if png_path.suffix.lower() != ".png":
            png_path = png_path.with_name(png_path.name + ".png")
        template = self.template(png_path.stem)
        if image is None:
            image = self.render()
        write_png(image, png_path)
        json_path = save_template(template, png_path.parent)
        self.mark_saved(template.name, png_path.parent)
        return png_path, json_path

    def save_to_user_templates(self, name: str) -> Path:
        """Save the edit as the user's template ``name`` (the settings editor and the engine pick it up)."""
        path = save_template(self.template(name))
        self.mark_saved(name, self.last_dir)
        self.reload_templates()
        return path

    def mark_saved(self, name: str, folder: Path) -> None:
        self.last_name, self.last_dir = name, folder
        self._clean = self.state()
        self._notify(Change())
