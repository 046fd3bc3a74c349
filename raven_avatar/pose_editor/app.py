"""The pose editor window: widgets bound to :class:`~raven_avatar.pose_editor.model.EditorModel` actions.

This module only builds widgets, binds buttons and hotkeys to actions, and moves pixels: rendering runs on a
:class:`~raven_avatar.pose_editor.worker.LatestWorker` thread (newest request wins), batch export on its own thread,
and the GUI thread uploads finished frames. All DearPyGui callbacks run on the GUI thread (manual callback
management), so the model is only ever touched from one thread.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dearpygui.dearpygui as dpg
import numpy as np
import torch

from raven_avatar import __version__
from raven_avatar.engine.character import Character, CharacterError
from raven_avatar.engine.device import describe
from raven_avatar.engine.emotions import TemplateError
from raven_avatar.engine.poser import Poser
from raven_avatar.engine.wording import plural
from raven_avatar.gui import layout
from raven_avatar.gui.filedialog import IMAGE_EXTENSIONS
from raven_avatar.gui.helpcard import show_help
from raven_avatar.gui.hotkeys import ComboList
from raven_avatar.gui.listview import ListView
from raven_avatar.gui.loading import load_with_view
from raven_avatar.gui.shell import Shell
from raven_avatar.gui.text import fit_lines, tooltip
from raven_avatar.gui.texture import ImageView
from raven_avatar.gui.theme import ERROR_COLOUR, OK_COLOUR
from raven_avatar.pose_editor.batch import BatchResult, batch_export
from raven_avatar.pose_editor.model import (
    EDITABLE_CELS,
    MORPH_CATEGORIES,
    POSE_SLIDERS,
    Change,
    EditorModel,
    group_params,
    morph_groups,
)
from raven_avatar.pose_editor.render import OUTPUT_NAMES, EditorRenderer, to_display
from raven_avatar.pose_editor.worker import LatestWorker

log = logging.getLogger(__name__)

TITLE = "raven_avatar pose editor"
IMAGE_SIZE = 512
CONTROL_COLUMN_W = 310  # each of the two slider columns
_CATEGORY_TITLES = {"eyebrow": "Eyebrow", "eye": "Eye", "iris_morph": "Iris size", "mouth": "Mouth"}
#: The window's preferred and smallest sizes (it is fitted to the screen's work area).
WINDOW_SIZE, MIN_WINDOW_SIZE = (1600, 940), (1024, 600)
_HELP_NOTES = (
    "Ctrl+click a slider to type an exact value. Sliders show the real parameter value.",
    "A morph panel edits one group at a time (pick it in its list); groups marked * are nonzero and all are kept.",
    "Link L/R makes the left and right sliders of a morph category move together.",
    "Presets: [custom] keeps your edit, [reset] is the all-zero pose. Edits are undoable (Ctrl+Z).",
    "Templates saved with Ctrl+U go to your user templates; the settings editor and the engine use them.",
    "Drop a character image (.png with alpha) or an emotion template (.json) onto the window to open it.",
    "File dialogs: type a name, a relative or absolute path or ~/...; Enter confirms; double-click opens a folder.",
)


@dataclass(frozen=True)
class RenderRequest:
    key: tuple
    character: Character
    pose: torch.Tensor
    cels: dict[str, float]
    output_index: int
    show_cels_in_source: bool
    background: tuple[float, float, float] | None  # sRGB; None: the checkerboard


@dataclass
class RenderOutput:
    key: tuple
    image: torch.Tensor  # linear (4, 512, 512), for saving
    output: np.ndarray  # opaque sRGB (512, 512, 4) over the background, for display
    source: np.ndarray


class BatchJob:
    """A batch export on its own thread; progress and result are read by the GUI thread."""

    def __init__(self, renderer: EditorRenderer, model: EditorModel, folder: Path, formats: list[str]):
        self.cancel = threading.Event()
        self.done = self.total = 0
        self.current = ""
        self.result: BatchResult | None = None
        self.error: BaseException | None = None
        assert model.character is not None and model.templates is not None
        args = (renderer, model.character, dict(model.templates.templates), folder)
        kwargs = {"formats": formats, "output_index": model.output_index, "cancel": self.cancel,
                  "progress": self._progress}  # fmt: skip
        self.total = len(model.templates)
        self.thread = threading.Thread(target=self._run, args=(args, kwargs), name="batch-export", daemon=True)
        self.thread.start()

    def _progress(self, done: int, total: int, name: str) -> None:
        self.done, self.total, self.current = done, total, name

    def _run(self, args: tuple, kwargs: dict) -> None:
        try:
            self.result = batch_export(*args, **kwargs)
        except Exception as e:  # reported in a dialog by the GUI thread
            log.exception("batch export failed")
            self.error = e

    @property
    def finished(self) -> bool:
        return not self.thread.is_alive()


class PoseEditorApp:
    """The editor window. ``build()``, then ``run()``; tests pass a ``driver`` to ``run`` (see :meth:`run`)."""

    def __init__(self, model: EditorModel, poser: Poser):
        self.model = model
        self.poser = poser
        self.renderer = model.renderer or EditorRenderer(poser)
        model.renderer = self.renderer
        self.shell: Shell | None = None
        self.worker = LatestWorker(self._render_job, on_done=self._wake)
        self._quit = False
        self._last_output: RenderOutput | None = None
        # The source view's buffer, kept while its image and the background stay (render worker only): most edits
        # change the pose alone, and the source needs no new composite or device-to-host copy then.
        self._source_display: tuple[torch.Tensor, tuple | None, np.ndarray] | None = None
        self._pending_save: Path | None = None
        self.batch: BatchJob | None = None
        self.last_batch: BatchResult | None = None
        #: Count of frames shown, and the key of the state they show (tests wait on these).
        self.render_count = 0
        self.shown_key: tuple | None = None
        self.last_render_s = 0.0
        self.selected_group = {c: morph_groups(c)[0] for c in MORPH_CATEGORIES}
        self.lists: dict[str, ComboList] = {}  # the keyboard-browsable combos, by name
        self.w: dict[str, Any] = {}  # widget ids by name
        self._status_width = 400
        model.listeners.append(self._on_change)

    # -- thread plumbing --------------------------------------------------------------------------------------------

    def call(self, fn: Callable[[], Any]):
        """Run ``fn`` on the GUI thread between frames; the future holds its result (for drivers and tests)."""
        return self.shell.call(fn)

    def _wake(self) -> None:
        if self.shell is not None:
            self.shell.wake()

    def state_key(self) -> tuple:
        m = self.model
        return (id(m.character), tuple(m.pose), tuple(sorted(m.cels.items())), m.output_index, m.show_cels_in_source,
                m.background)  # fmt: skip

    def request_render(self) -> None:
        m = self.model
        if m.character is None:
            return
        request = RenderRequest(self.state_key(), m.character, m.pose_vector(), dict(m.cels), m.output_index,
                                m.show_cels_in_source, m.background)  # fmt: skip
        self.worker.submit(request)

    def _render_job(self, req: RenderRequest) -> RenderOutput:
        image = self.renderer.render(req.character, req.pose, req.cels, req.output_index)
        source = self.renderer.blended(req.character, req.cels) if req.show_cels_in_source else req.character.image
        kept = self._source_display
        if kept is None or kept[0] is not source or kept[1] != req.background:
            kept = self._source_display = (source, req.background, to_display(source, req.background))
        return RenderOutput(req.key, image, to_display(image, req.background), kept[2])

    # -- building -----------------------------------------------------------------------------------------------------

    def build(self, shell: Shell | None = None) -> None:
        """Build the window into ``shell`` (one already showing a loading view), or a new one."""
        self.shell = shell = shell or Shell(TITLE, size=WINDOW_SIZE, min_size=MIN_WINDOW_SIZE)
        self.cb, self.dialogs, self.hotkeys = shell.callbacks, shell.dialogs, shell.hotkeys
        registry = dpg.add_texture_registry()
        self._slider_end = dpg.add_item_handler_registry()
        dpg.add_item_deactivated_after_edit_handler(parent=self._slider_end,
                                                    callback=self.cb.click(self.model.end_edit))  # fmt: skip
        with dpg.window(tag="pe_main", no_scrollbar=True) as main, dpg.group(horizontal=True):
            with dpg.child_window(border=False, no_scrollbar=True) as left:
                self.w["left"] = left
                self._build_source(left, registry)
            with dpg.child_window(border=False, width=CONTROL_COLUMN_W) as morphs:
                self.w["morphs"] = morphs
                self._build_morphs(morphs)
            with dpg.child_window(border=False, width=CONTROL_COLUMN_W) as poses:
                self.w["poses"] = poses
                self._build_pose_and_cels(poses)
            with dpg.child_window(border=False, no_scrollbar=True) as right:
                self.w["right"] = right
                self._build_output(right, registry)
        dpg.set_primary_window(main, True)
        self._bind_hotkeys()
        dpg.set_viewport_resize_callback(self.cb.click(self.relayout))
        dpg.set_exit_callback(self.cb.click(self.request_quit))
        shell.show()
        self.relayout()
        self._sync_widgets()
        self._update_title()

    def _build_source(self, parent: int, registry: int) -> None:
        row = dpg.add_group(horizontal=True, parent=parent)
        dpg.add_text("Source", parent=row)
        self.w["show_cels"] = dpg.add_checkbox(label="Show cels blended in [Ctrl+K]", parent=row,
                                               callback=self.cb.value(self.model.set_show_cels_in_source))  # fmt: skip
        self.source_view = ImageView(parent, IMAGE_SIZE, IMAGE_SIZE, texture_registry=registry)
        dpg.add_text("Emotion preset [Ctrl+P, then Up/Down]", parent=parent)
        self.presets = ListView(self.cb, parent, height=180, label="Emotion presets", on_select=self.apply_preset)
        self.presets.set_items(self.model.preset_names())
        self.w["presets"] = self.presets.item
        self.hotkeys.add_list(self.presets)
        dpg.add_button(label="Load character [Ctrl+O]", parent=parent,
                       callback=self.cb.click(self.action_load_character))  # fmt: skip
        dpg.add_button(label="Load template [Ctrl+Shift+O]", parent=parent,
                       callback=self.cb.click(self.action_load_template))  # fmt: skip

    def apply_preset(self, name: str) -> None:
        self._guard(lambda: self.model.apply_emotion(name))

    def set_value(self, key: str, value: float) -> None:
        self._guard(lambda: self.model.set_value(key, value))

    def _slider(self, parent: int, label: str, key: str, low: float, high: float, width: int) -> int:
        s = dpg.add_slider_float(label=label, parent=parent, min_value=low, max_value=high, format="%.3f",
                                 width=width, clamped=True, callback=self.cb.value(self.set_value, key))  # fmt: skip
        dpg.bind_item_handler_registry(s, self._slider_end)
        return s

    def _build_morphs(self, parent: int) -> None:
        dpg.add_text("Morphs [Ctrl+click a slider to type]", parent=parent)
        for n, category in enumerate(MORPH_CATEGORIES, start=1):
            cat = category.value
            dpg.add_separator(parent=parent)
            row = dpg.add_group(horizontal=True, parent=parent)
            dpg.add_text(f"{_CATEGORY_TITLES[cat]} [Ctrl+{n}]", parent=row)
            has_pairs = any(len(group_params(g)) == 2 for g in morph_groups(category))
            self.w[f"link_{cat}"] = dpg.add_checkbox(label=f"Link L/R##{cat}", parent=row, show=has_pairs,
                                                     callback=self.cb.value(self.set_linked, category))  # fmt: skip
            groups = morph_groups(category)
            # A category with one group (iris size) names it instead of offering a one-entry list.
            if len(groups) == 1:
                dpg.add_text(groups[0], parent=parent)
            combo = dpg.add_combo(groups, parent=parent, width=-1, default_value=groups[0], label=f"##{cat} group",
                                  show=len(groups) > 1,
                                  callback=self.cb.value(self._select_group, category))  # fmt: skip
            self.w[f"combo_{cat}"] = combo
            self.lists[cat] = ComboList(combo, functools.partial(self._group_labels, category),
                                        functools.partial(self._select_group, category))  # fmt: skip
            self.hotkeys.add_list(self.lists[cat])
            self.w[f"L_{cat}"] = self._slider(parent, "L", "", 0.0, 1.0, -50)
            self.w[f"R_{cat}"] = self._slider(parent, "R", "", 0.0, 1.0, -50)
        self._bind_morph_sliders()

    def set_linked(self, category, linked: bool) -> None:
        self._guard(lambda: self.model.set_linked(category, linked))

    def _group_labels(self, category) -> list[str]:
        labels = []
        for g in morph_groups(category):
            nonzero = any(self.model.pose[p.index] != 0 for p in group_params(g))
            labels.append(f"{g} *" if nonzero else g)
        return labels

    def _select_group(self, category, label: str) -> None:
        self.selected_group[category] = label.split(" ")[0]
        self._bind_morph_sliders()
        self._sync_widgets()

    def _bind_morph_sliders(self) -> None:
        for category in MORPH_CATEGORIES:
            cat = category.value
            params = group_params(self.selected_group[category])
            left, right = self.w[f"L_{cat}"], self.w[f"R_{cat}"]
            pairs = [(left, params[0]), *([(right, params[1])] if len(params) == 2 else [])]
            for slider, p in pairs:
                side = ("L" if p.side == "left" else "R") if p.side else "value"
                label = f"{side}##{cat}"  # the id part names the panel for tests and screen readers
                dpg.configure_item(slider, label=label, min_value=p.low, max_value=p.high, show=True,
                                   callback=self.cb.value(self.set_value, p.key))  # fmt: skip
            dpg.configure_item(right, show=len(params) == 2)

    def _build_pose_and_cels(self, parent: int) -> None:
        dpg.add_text("Pose", parent=parent)
        for p in POSE_SLIDERS:
            self.w[f"pose_{p.key}"] = self._slider(parent, p.name, p.key, p.low, p.high, -120)
        dpg.add_separator(parent=parent)
        dpg.add_text("Cels (blend strength)", parent=parent)
        for cel in EDITABLE_CELS:
            self.w[f"cel_{cel}"] = self._slider(parent, cel, cel, 0.0, 1.0, -120)

    def _build_output(self, parent: int, registry: int) -> None:
        row = dpg.add_group(horizontal=True, parent=parent)
        dpg.add_text("Output", parent=row)
        self.w["render_time"] = dpg.add_text("", parent=row, color=OK_COLOUR)
        self.output_view = ImageView(parent, IMAGE_SIZE, IMAGE_SIZE, texture_registry=registry)
        row = dpg.add_group(horizontal=True, parent=parent)
        dpg.add_text("Output index [Ctrl+I]", parent=row)
        items = [f"{i}: {name}" for i, name in enumerate(OUTPUT_NAMES)]
        self.w["output_index"] = dpg.add_combo(items, default_value=items[0], parent=row, width=-1,
                                               label="##output index",
                                               callback=self.cb.value(self._select_output))  # fmt: skip
        self.lists["output_index"] = ComboList(self.w["output_index"], lambda: items, self._select_output)
        self.hotkeys.add_list(self.lists["output_index"])
        row = dpg.add_group(horizontal=True, parent=parent)
        self.w["checker"] = dpg.add_checkbox(label="Checkerboard [Ctrl+B]", default_value=True, parent=row,
                                             callback=self.cb.click(self._background_changed))  # fmt: skip
        self.w["bg_colour"] = dpg.add_color_edit((40, 60, 90, 255), parent=row, no_alpha=True, no_inputs=True,
                                                 label="##background colour",
                                                 callback=self.cb.click(self._background_changed))  # fmt: skip
        row = dpg.add_group(horizontal=True, parent=parent)
        dpg.add_button(label="Save [Ctrl+S]", parent=row, callback=self.cb.click(self.action_save))
        dpg.add_button(label="Save as my template [Ctrl+U]", parent=row, callback=self.cb.click(self.action_save_user))
        row = dpg.add_group(horizontal=True, parent=parent)
        dpg.add_button(label="Batch export [Ctrl+Shift+S]", parent=row,
                       callback=self.cb.click(self.action_batch_export))  # fmt: skip
        dpg.add_button(label="Help [F1]", parent=row, callback=self.cb.click(self.action_help))
        self.w["loops"] = dpg.add_checkbox(label="Export idle loops too", parent=parent)
        tooltip(self.w["loops"], "Batch export also writes an animated idle loop per emotion (APNG + GIF; slow on CPU)")
        row = dpg.add_group(horizontal=True, parent=parent)
        dpg.add_button(label="Undo [Ctrl+Z]", parent=row, callback=self.cb.click(self.model.undo))
        dpg.add_button(label="Redo [Ctrl+Shift+Z]", parent=row, callback=self.cb.click(self.model.redo))
        row = dpg.add_group(horizontal=True, parent=parent, show=False)
        self.w["batch_row"] = row
        self.w["progress"] = dpg.add_progress_bar(parent=row, width=-90, overlay="")
        dpg.add_button(label="Cancel", parent=row, callback=self.cb.click(self.cancel_batch))
        self.w["status"] = dpg.add_text("", parent=parent)

    def _select_output(self, label: str) -> None:
        self._guard(lambda: self.model.set_output_index(int(label.split(":")[0])))

    def relayout(self) -> None:
        """Size the columns and images from the viewport (works from 1366×768 up)."""
        vw, vh = dpg.get_viewport_client_width(), dpg.get_viewport_client_height()
        cols = layout.columns(vw, vh, (None, CONTROL_COLUMN_W, CONTROL_COLUMN_W, None))
        flex = cols.widths[0]
        for name in ("left", "right"):
            dpg.configure_item(self.w[name], width=flex, height=cols.height)
        for name in ("morphs", "poses"):
            dpg.configure_item(self.w[name], height=cols.height)
        side = min(flex, cols.height - 250)
        self.source_view.fit(flex, side)
        self.output_view.fit(flex, side)
        self.presets.set_height(max(90, cols.height - side - 128))  # room for the two Load buttons
        self._status_width = flex - 10

    # -- hotkeys ------------------------------------------------------------------------------------------------------

    def _bind_hotkeys(self) -> None:
        h = self.hotkeys
        add = h.add
        add(dpg.mvKey_O, "Load a character image", self.action_load_character, ctrl=True)
        add(dpg.mvKey_O, "Load an emotion template (first emotion of a JSON file)", self.action_load_template,
            ctrl=True, shift=True)  # fmt: skip
        add(dpg.mvKey_S, "Save the posed image + its template JSON", self.action_save, ctrl=True)
        add(dpg.mvKey_U, "Save as one of my templates (the settings editor uses them)", self.action_save_user,
            ctrl=True)  # fmt: skip
        add(dpg.mvKey_S, "Batch export every emotion (PNG + JSON + _emotions.json + sprite sheet)",
            self.action_batch_export, ctrl=True, shift=True)  # fmt: skip
        add(dpg.mvKey_Z, "Undo", self.model.undo, ctrl=True)
        add(dpg.mvKey_Z, "Redo", self.model.redo, ctrl=True, shift=True)
        add(dpg.mvKey_Y, "Redo", self.model.redo, ctrl=True)
        focus = self.hotkeys.focus_list
        add(dpg.mvKey_P, "Focus the emotion preset list", functools.partial(focus, self.presets), ctrl=True)
        add(dpg.mvKey_I, "Focus the output index list", functools.partial(focus, self.lists["output_index"]),
            ctrl=True)  # fmt: skip
        for n, category in enumerate(MORPH_CATEGORIES, start=1):
            add(getattr(dpg, f"mvKey_{n}"), f"Focus the {_CATEGORY_TITLES[category.value]} morph group list",
                functools.partial(focus, self.lists[category.value]), ctrl=True)  # fmt: skip
        add(dpg.mvKey_L, "Link / unlink left and right in every morph category", self.toggle_links, ctrl=True)
        add(dpg.mvKey_K, "Show the cels blended into the source image", self.toggle_show_cels, ctrl=True)
        add(dpg.mvKey_B, "Checkerboard / colour behind transparent pixels", self.toggle_checker, ctrl=True)
        add(dpg.mvKey_F1, "This help card", self.action_help)
        add(dpg.mvKey_Q, "Quit (asks first if there are unsaved edits)", self.request_quit, ctrl=True)
        h.note("Up / Down", "Previous / next item of the focused list (presets, output index, morph groups)")
        h.note("PageUp / PageDown", "Ten items up / down in the focused list")
        h.note("Home / End", "First / last item of the focused list")
        h.note("Enter / Esc", "OK / close in dialogs")
        h.note("Ctrl+click", "Type an exact value into a slider")

    def toggle_links(self) -> None:
        link = not all(self.model.linked.values())
        for category in MORPH_CATEGORIES:
            self.model.set_linked(category, link)
        self._sync_widgets()

    def toggle_show_cels(self) -> None:
        self.model.set_show_cels_in_source(not self.model.show_cels_in_source)

    def toggle_checker(self) -> None:
        dpg.set_value(self.w["checker"], not dpg.get_value(self.w["checker"]))
        self._background_changed()

    def _background_changed(self) -> None:
        if dpg.get_value(self.w["checker"]):
            self.model.set_background(None)
        else:
            rgba = dpg.get_value(self.w["bg_colour"])
            scale = 255.0 if max(rgba[:3]) > 1.0 else 1.0
            self.model.set_background(tuple(c / scale for c in rgba[:3]))

    # -- actions (open dialogs; the work is in the model) -------------------------------------------------------------

    def _guard(self, fn: Callable[[], Any], what: str = "") -> Any:
        """Run an action; a failure becomes an error dialog (the action itself changed nothing)."""
        try:
            return fn()
        except (CharacterError, TemplateError, FileNotFoundError, KeyError, ValueError, OSError) as e:
            msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
            self.dialogs.error(f"{what}{msg}" if what else msg)
            return None

    def open_character(self, path: Path) -> None:
        character = self._guard(lambda: self.model.load_character(path), f"Could not load the character {path}:\n")
        if character is not None and character.report.warnings:
            self.dialogs.message("Character loaded with warnings", character.report.summary())

    def open_template(self, path: Path) -> None:
        problems = self._guard(lambda: self.model.load_template(path), f"Could not load the template {path}:\n")
        if problems:
            self.dialogs.message("Template loaded with problems", "\n".join(problems))

    def handle_drop(self, paths: list[Path]) -> None:
        """Open dropped files by type: an image as the character, a ``.json`` as a template."""
        if self.dialogs.is_open:
            log.info("drop ignored while a dialog is open: %s", paths)
            return
        accepts = "Drop one character image (.png with alpha) or one emotion template (.json)."
        if len(paths) != 1:
            self.dialogs.message("Cannot open several files at once", f"{len(paths)} files dropped. {accepts}")
            return
        path = paths[0]
        suffix = path.suffix.lower()
        if suffix == ".json":
            self.open_template(path)
        elif suffix in IMAGE_EXTENSIONS:
            self.open_character(path)
        else:
            self.dialogs.message("Cannot open this", f"{path}: not a character image or template. {accepts}")

    def action_load_character(self) -> None:
        self.dialogs.open_file("Load character image", "character", IMAGE_EXTENSIONS, self.model.last_dir,
                               self.open_character)  # fmt: skip

    def action_load_template(self) -> None:
        self.dialogs.open_file("Load emotion template", "template", (".json",), self.model.last_dir, self.open_template)

    def action_save(self) -> None:
        if self.model.character is None:
            self.dialogs.error("Load a character first (Ctrl+O).")
            return
        name = self.model.last_name if self.model.preset != "[reset]" else "custom"
        self.dialogs.save_file("Save posed image and template", "save", (".png",), self.model.last_dir,
                               f"{name}.png", self._confirm_save)  # fmt: skip

    def _confirm_save(self, path: Path) -> None:
        path = path if path.suffix.lower() == ".png" else path.with_name(path.name + ".png")
        existing = [p.name for p in (path, path.with_suffix(".json")) if p.exists()]
        if existing:
            self.dialogs.confirm("Replace files?", f"{', '.join(existing)} already exist in {path.parent}. Replace "
                                 "them? (A replaced template JSON is backed up first.)", lambda: self.save_to(path),
                                 yes="Replace", no="Cancel")  # fmt: skip
        else:
            self.save_to(path)

    def save_to(self, path: Path) -> None:
        """Save the current output to ``path`` (PNG) and its template JSON; waits for the render if one is running."""
        if self._last_output is not None and self._last_output.key == self.state_key():
            self._write_save(path, self._last_output.image)
        else:
            self._pending_save = Path(path)
            self.request_render()
            self.set_status(f"Saving {path} after the current render...")

    def _write_save(self, path: Path, image: torch.Tensor) -> None:
        saved = self._guard(lambda: self.model.save(path, image=image), f"Could not save {path}:\n")
        if saved is not None:
            self.set_status(f"Saved {saved[0]} and {saved[1].name}")
            self.model.reload_templates()

    def action_save_user(self) -> None:
        name = self.model.preset if self.model.preset not in ("[custom]", "[reset]") else self.model.last_name
        self.dialogs.ask_text("Save as my template", "Emotion name (letters, digits, _ or -):", name,
                              self.save_user_template)  # fmt: skip

    def save_user_template(self, name: str) -> None:
        path = self._guard(lambda: self.model.save_to_user_templates(name.strip()), "Could not save the template:\n")
        if path is not None:
            self.set_status(f"Saved your template {name} to {path}")

    def action_batch_export(self) -> None:
        if self.model.character is None:
            self.dialogs.error("Load a character first (Ctrl+O).")
            return
        if self.batch is not None:
            self.dialogs.error("A batch export is already running.")
            return
        self.dialogs.pick_folder("Batch export: choose (or type) the output folder", "export", self.model.last_dir,
                                 self._confirm_batch)  # fmt: skip

    def _confirm_batch(self, folder: Path) -> None:
        names = [*(self.model.templates or []), "_emotions", "_sheet"]
        clash = [n for n in names if (folder / f"{n}.png").exists() or (folder / f"{n}.json").exists()]
        if clash:
            names = ", ".join(clash[:5]) + ("..." if len(clash) > 5 else "")
            self.dialogs.confirm("Replace exported files?", f"{folder} already holds sprites or templates of "
                                 f"{plural(len(clash), 'emotion')} ({names}). Replace them?",
                                 lambda: self.start_batch(folder), yes="Replace", no="Cancel")  # fmt: skip
        else:
            self.start_batch(folder)

    def start_batch(self, folder: Path, formats: tuple[str, ...] | None = None) -> None:
        if self.model.character is None or self.batch is not None:
            return
        if formats is None:
            formats = ("png", "sheet", "apng", "gif") if dpg.get_value(self.w["loops"]) else ("png", "sheet")
        self.batch = BatchJob(EditorRenderer(self.poser), self.model, Path(folder), list(formats))
        dpg.configure_item(self.w["batch_row"], show=True)
        self.set_status(f"Batch export to {folder}...")

    def cancel_batch(self) -> None:
        if self.batch is not None:
            self.batch.cancel.set()
            self.set_status("Cancelling the batch export after the current sprites...")

    def action_help(self) -> None:
        show_help(self.hotkeys, f"{TITLE}: keys", _HELP_NOTES)

    def request_quit(self) -> None:
        if self.model.dirty:
            self.dialogs.confirm("Unsaved edits", "Your edits are not saved. Quit anyway?", self._stop,
                                 yes="Quit without saving", no="Keep editing")  # fmt: skip
        else:
            self._stop()

    def _stop(self) -> None:
        self._quit = True

    def set_status(self, text: str, error: bool = False) -> None:
        dpg.set_value(self.w["status"], fit_lines(text, self._status_width))
        dpg.configure_item(self.w["status"], color=ERROR_COLOUR if error else (220, 220, 220))

    def screenshot(self, path: str | Path) -> None:
        """Save the whole window as a PNG (call on the GUI thread)."""
        self.shell.screenshot(Path(path))

    # -- model -> widgets ---------------------------------------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        if change.presets:
            self.presets.set_items(self.model.preset_names())
        if change.values and not change.edit:
            self._select_nonzero_groups()
        if change.values or change.character:
            self._sync_widgets()
        if change.view:  # the views change with the next render (a background is composited on the device)
            dpg.set_value(self.w["show_cels"], self.model.show_cels_in_source)
        if change.values or change.character or change.view:
            self.request_render()
        self._update_title()

    def _select_nonzero_groups(self) -> None:
        """After a preset or undo, show in each morph panel a group that is set (if the shown one is not)."""
        for category in MORPH_CATEGORIES:
            shown = group_params(self.selected_group[category])
            if any(self.model.pose[p.index] != 0 for p in shown):
                continue
            for g in morph_groups(category):
                if any(self.model.pose[p.index] != 0 for p in group_params(g)):
                    self.selected_group[category] = g
                    break
        self._bind_morph_sliders()

    def _sync_widgets(self) -> None:
        m = self.model
        for category in MORPH_CATEGORIES:
            cat = category.value
            params = group_params(self.selected_group[category])
            dpg.set_value(self.w[f"L_{cat}"], m.pose[params[0].index])
            if len(params) == 2:
                dpg.set_value(self.w[f"R_{cat}"], m.pose[params[1].index])
            labels = self._group_labels(category)
            dpg.configure_item(self.w[f"combo_{cat}"], items=labels)
            dpg.set_value(self.w[f"combo_{cat}"], labels[morph_groups(category).index(self.selected_group[category])])
            dpg.set_value(self.w[f"link_{cat}"], m.linked[category])
        for p in POSE_SLIDERS:
            dpg.set_value(self.w[f"pose_{p.key}"], m.pose[p.index])
        have = set(m.character.cels) if m.character else set()
        for cel in EDITABLE_CELS:
            dpg.set_value(self.w[f"cel_{cel}"], m.cels[cel])
            dpg.configure_item(self.w[f"cel_{cel}"], label=cel if cel in have else f"{cel} (no cel)")
        self.presets.select(m.preset)

    def _update_title(self) -> None:
        m = self.model
        name = m.character.name if m.character else "no character"
        dirty = " *" if m.dirty else ""
        dpg.set_viewport_title(
            f"{TITLE} {__version__} - {name}{dirty} - {describe(self.poser.device)} - THA3 {self.poser.variant}"
        )

    # -- main loop ----------------------------------------------------------------------------------------------------

    def _poll(self) -> bool:
        """Dropped files, a finished render, batch progress; whether anything on screen changed."""
        changed = False
        for drop in self.shell.filedrop.take():
            self.handle_drop(drop)
            changed = True
        result = self.worker.poll()
        if result is not None:
            changed = True
            if result.error is not None:
                self.dialogs.error(f"Could not render: {type(result.error).__name__}: {result.error}")
                self.output_view.clear()
            else:
                self._last_output = out = result.value
                self.last_render_s = result.seconds
                self.output_view.set_image(out.output)
                self.source_view.set_image(out.source)
                self.render_count += 1
                self.shown_key = result.value.key
                dpg.set_value(self.w["render_time"], f"render {result.seconds * 1000:.0f} ms")
                if self._pending_save is not None and result.value.key == self.state_key():
                    path, self._pending_save = self._pending_save, None
                    self._write_save(path, result.value.image)
        job = self.batch
        if job is not None:
            changed = True
            dpg.set_value(self.w["progress"], job.done / max(1, job.total))
            dpg.configure_item(self.w["progress"], overlay=f"{job.done}/{job.total} {job.current}")
            if job.finished:
                self.batch = None
                dpg.configure_item(self.w["batch_row"], show=False)
                if job.error is not None:
                    self.dialogs.error(f"Batch export failed: {type(job.error).__name__}: {job.error}")
                elif job.result is not None:
                    self.last_batch = job.result
                    title = "Batch export done" if job.result.ok else "Batch export finished with problems"
                    self.dialogs.message(title, job.result.summary())
                    self.set_status(job.result.summary().splitlines()[0])
        return changed

    def run(self, driver: Callable[[PoseEditorApp], None] | None = None) -> int:
        """The frame loop. ``driver(app)``, if given, runs on its own thread once the window is up; the app quits
        when it returns, with exit code 1 if it raised."""
        if driver is not None:
            self.shell.drive(lambda: driver(self))
        self.request_render()
        while self.shell.running() and not self._quit and not self.shell.driver_done:
            # Batch progress is polled at a few Hz; renders wake the loop themselves (LatestWorker.on_done).
            self.shell.frame(next_deadline=time.monotonic() + 0.25 if self.batch is not None else None,
                             before_draw=self._poll)  # fmt: skip
        self.worker.stop()
        if self.batch is not None:
            self.batch.cancel.set()
            self.batch.thread.join(30)
        self.shell.close()
        return 1 if self.shell.driver_error is not None else 0


def create_app(character: str | Path | None = None, device: str = "auto", variant: str | None = None) -> PoseEditorApp:
    """Load THA3 and the character, build the window (the default character when none is given)."""
    from raven_avatar.engine.poser import default_character, load_poser

    shell = Shell(TITLE, size=WINDOW_SIZE, min_size=MIN_WINDOW_SIZE)
    shell.show()  # at once: the first start downloads the weights, and the loading view says so

    def load() -> tuple[Poser, Path | None, Exception | None]:
        poser = load_poser(variant, device)
        if character is not None:
            return poser, Path(character), None
        try:
            return poser, default_character(), None
        except Exception as e:  # offline and nothing cached: start empty, say why
            return poser, None, e

    try:
        poser, path, problem = load_with_view(shell, "Loading THA3", load)
    except BaseException:
        shell.close()
        raise
    model = EditorModel(renderer=EditorRenderer(poser))
    app = PoseEditorApp(model, poser)
    app.build(shell)
    if problem is not None:
        app.dialogs.error(f"Could not get the default character: {problem}\nLoad one with Ctrl+O.")
    if path is not None:
        app.open_character(path)
    if poser.notice:
        app.dialogs.message("Device", poser.notice)
    return app


def window_shot(path: Path, timeout: float = 600) -> Callable[[PoseEditorApp], None]:
    """A ``run`` driver that saves a screenshot of the window once the first render is on screen."""

    def driver(app: PoseEditorApp) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if app.call(lambda: app.render_count > 0 and app.worker.idle).result(timeout):
                break
            time.sleep(0.2)
        time.sleep(0.5)
        app.call(lambda: app.screenshot(path)).result(60)
        log.info("wrote %s", path)

    return driver
