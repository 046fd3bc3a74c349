"""The settings editor window: DearPyGui widgets bound to :class:`~.model.EditorModel` actions.

Callbacks run on the GUI thread between frames (manual callback management), so they and :meth:`EditorModel.tick`
never race; nothing here does device work (the engine renders in its own thread, slow engine calls go through the
:class:`~.engine_link.EngineLink` worker, the backdrop is rendered in a helper thread).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dearpygui.dearpygui as dpg
import numpy as np

from raven_avatar.engine import settings as settingsmod
from raven_avatar.engine import upscaler as upscalermod
from raven_avatar.engine.export import write_png
from raven_avatar.engine.paths import asset_path
from raven_avatar.gui.dialogs import Dialogs
from raven_avatar.gui.filedrop import FileDrop
from raven_avatar.gui.helpcard import show_help
from raven_avatar.gui.hotkeys import HotkeyTable
from raven_avatar.gui.theme import WARN_COLOUR, apply_theme
from raven_avatar.gui.x11_visibility import WindowVisibility

from . import backdrop as backdropmod
from .model import ActionError, EditorModel
from .panels import RESET, ChainPanel, SettingsPanel, pretty, rgb01, tooltip

logger = logging.getLogger(__name__)

TITLE = "raven_avatar settings editor"
ANIMATOR_GROUPS = ("output", "animation", "blink", "talking", "sway", "breathing", "eyes", "animefx")
IDLE_SLEEP_S = 0.03  # extra sleep per GUI frame while nothing animates (paused), to spare the CPU
MAX_GUI_FPS = 60.0  # the GUI loop never spins faster (vsync may be off, e.g. under Xvfb)


@dataclass(frozen=True)
class Layout:
    """Every size in the window, derived from the viewport size."""

    width: int
    height: int
    controls_w: int = 410
    post_w: int = 470
    margin: int = 8
    status_h: int = 26

    @property
    def view_w(self) -> int:
        return max(64, self.width - self.controls_w - self.post_w - 4 * self.margin)

    @property
    def view_h(self) -> int:
        return max(64, self.height - self.status_h - 3 * self.margin)

    @property
    def column_h(self) -> int:
        return self.view_h


HELP_NOTES = (
    "All changes apply live; sliders push to the engine a moment after you stop dragging.",
    "Save writes the animator settings, crop, backdrop and the postprocessor chain (order and duplicates kept); "
    "switched-off filters are not saved.",
    "The character reloads by itself when its PNG or cels change on disk; a half-written file keeps the last good "
    "version. Emotion templates saved by the pose editor are picked up the same way.",
    "Drop files on the window: a transparent image loads as the character, an opaque one as the backdrop, a JSON "
    "file as settings or emotion templates (whichever it holds).",
)


DEMO_TEXT = "Hello! This is a speech test. The quick brown fox jumps over the lazy dog."


class SettingsEditorApp:
    """Builds the window over ``model`` and runs it. ``run()`` blocks; tests may call :meth:`step` instead."""

    def __init__(self, model: EditorModel, *, width: int = 1700, height: int = 980, speaker: Any = None):
        self.model = model
        self.layout = Layout(width, height)
        self.speaker = speaker
        self.frames_shown = 0  # avatar frames uploaded to the texture
        self.gui_frames = 0
        self._tex: int | None = None
        self._next_avatar: tuple | None = None  # (texture, draw item, size, GUI frame to show it)
        self._tex_size: tuple[int, int] = (0, 0)
        self._bg_tex: int | None = None
        self._next_bg: tuple | None = None  # (texture, draw item, GUI frame to show it)
        self._bg_key: tuple | None = None
        self._bg_result: tuple | None = None
        self._bg_thread: threading.Thread | None = None
        self.dialogs: Dialogs | None = None
        self.hotkeys: HotkeyTable | None = None
        self._visibility: WindowVisibility | None = None
        self._next_visibility = 0.0
        self._emotion_items: list[str] = []
        self.quit_requested = False
        self._speech_ok = False
        self._was_speaking = False
        self._last_step = 0.0

    # ========================================================================================================= build

    def build(self) -> None:
        dpg.create_context()
        dpg.configure_app(manual_callback_management=True)
        dpg.create_viewport(
            title=TITLE,
            width=self.layout.width,
            height=self.layout.height,
            min_width=1000,
            min_height=700,
            disable_close=True,  # the close button asks first when there are unsaved changes (request_quit)
        )
        dpg.set_viewport_resize_callback(lambda: self._relayout())
        dpg.set_exit_callback(self.request_quit)
        apply_theme()
        self.dialogs = Dialogs()
        self.hotkeys = HotkeyTable(self.dialogs)
        self._registry = dpg.add_texture_registry()
        with dpg.window(tag="main", no_scrollbar=True) as self.main:
            with dpg.group(horizontal=True):
                with dpg.child_window(
                    width=self.layout.view_w, height=self.layout.view_h, no_scrollbar=True, border=False
                ) as self.view_child:
                    self.drawlist = dpg.add_drawlist(self.layout.view_w, self.layout.view_h)
                with dpg.child_window(width=self.layout.controls_w, height=self.layout.column_h) as self.controls:
                    self._build_controls()
                with dpg.child_window(width=self.layout.post_w, height=self.layout.column_h) as self.post_col:
                    self._build_postprocessor()
            self.status_text = dpg.add_text("")
        self._build_view_items()
        self._build_handlers()
        dpg.setup_dearpygui()
        dpg.show_viewport()
        dpg.set_primary_window(self.main, True)
        self._visibility = WindowVisibility(TITLE)
        self.filedrop = FileDrop()
        if not self.filedrop.install():
            logger.warning("drag and drop is not available here; use the Load buttons")

    def _build_controls(self) -> None:
        m = self.model
        with dpg.group(horizontal=True):
            dpg.add_button(label="Fullscreen [F11]", callback=self.toggle_fullscreen)
            dpg.add_button(label="Help [F1]", callback=self.show_help)
            self.pause_button = dpg.add_button(label="Pause [Ctrl+P]", callback=self.toggle_pause)

        with dpg.collapsing_header(label="Character", default_open=True):
            with dpg.group(horizontal=True):
                b = dpg.add_button(label="Load [Ctrl+O]", callback=self.open_character_dialog)
                tooltip(b, "A 512x512 RGBA PNG; cels NAME_<cel>.png beside it are found automatically.")
                dpg.add_button(label="Reload [Ctrl+R]", callback=lambda: self._act(m.reload_character))
            self.character_text = dpg.add_text("", wrap=self.layout.controls_w - 30, color=(180, 200, 220))
            self.emotion_text = dpg.add_text("Emotion")
            self.emotion_list = dpg.add_listbox([], num_items=8, width=-1, callback=self._on_emotion_clicked)
            self.hotkeys.add_list(self.emotion_list, m.emotions, lambda name: self._act(m.set_emotion, name))
            with dpg.group(horizontal=True):
                b = dpg.add_button(label="Load templates [Ctrl+Shift+E]", callback=self.open_templates_dialog)
                tooltip(
                    b,
                    "Overlay an emotion templates JSON onto the current ones.\n"
                    "Templates saved by the pose editor are picked up automatically.",
                )
            with dpg.group(horizontal=True):
                self.talk_button = dpg.add_button(label="Start talking [Ctrl+T]", callback=self.toggle_talking)
                dpg.add_checkbox(label="Data eyes", callback=lambda s, a: self._act(m.set_data_eyes, a))

        with dpg.collapsing_header(label="Speech", default_open=False):
            self._build_speech()

        with dpg.collapsing_header(label="Backdrop", default_open=True):
            with dpg.group(horizontal=True):
                dpg.add_button(label=RESET, callback=lambda: self._act(m.clear_backdrop))
                dpg.add_button(label="Load backdrop [Ctrl+B]", callback=self.open_backdrop_dialog)
            self.backdrop_text = dpg.add_text("", wrap=self.layout.controls_w - 30, color=(180, 200, 220))
            s = m.settings
            self.w_blur = dpg.add_checkbox(
                label="Blur",
                default_value=s["backdrop_blur"],
                callback=lambda s_, a: self._act(m.set_setting, "backdrop_blur", a),
            )
            self.w_blur_amount = dpg.add_slider_float(
                label="Blur amount",
                min_value=settingsmod.BY_KEY["backdrop_blur_amount"].low,
                max_value=settingsmod.BY_KEY["backdrop_blur_amount"].high,
                default_value=s["backdrop_blur_amount"],
                callback=lambda s_, a: self._act(m.set_setting, "backdrop_blur_amount", a),
            )
            self.w_fit = dpg.add_combo(
                list(backdropmod.FITS),
                label="Fit",
                default_value=s["backdrop_fit"],
                width=140,
                callback=lambda s_, a: self._act(m.set_setting, "backdrop_fit", a),
            )
            self.w_checker = dpg.add_checkbox(
                label="Checkerboard (transparent colour)",
                default_value=s["backdrop_color"][3] <= 0,
                callback=lambda s_, a: self._set_backdrop_color(checker=a),
            )
            self.w_color = dpg.add_color_edit(
                s["backdrop_color"][:3] + [1.0],
                label="Colour",
                no_alpha=True,
                width=200,
                display_type=dpg.mvColorEdit_float,
                callback=lambda: self._set_backdrop_color(),
            )
            self.w_backdrop_post = dpg.add_checkbox(
                label="Backdrop through the postprocessor",
                default_value=s["backdrop_postprocess"],
                callback=lambda s_, a: self._act(m.set_backdrop_through_postprocessor, a),
            )
            tooltip(self.w_backdrop_post, settingsmod.BY_KEY["backdrop_postprocess"].doc)

        with dpg.collapsing_header(label="Settings file", default_open=True):
            with dpg.group(horizontal=True):
                dpg.add_button(label="Load [Ctrl+Shift+A]", callback=self.open_settings_dialog)
                dpg.add_button(label="Save", callback=self.save_settings)
                dpg.add_button(label="Save as [Ctrl+Shift+S]", callback=self.save_settings_as_dialog)
            self.settings_text = dpg.add_text("", wrap=self.layout.controls_w - 30, color=(180, 200, 220))

        with dpg.collapsing_header(label="Capture", default_open=True):
            with dpg.group(horizontal=True):
                dpg.add_button(label="Screenshot [F12]", callback=lambda: self.screenshot_dialog())
                self.w_shot_backdrop = dpg.add_checkbox(label="with backdrop")
            with dpg.group(horizontal=True):
                self.rec_button = dpg.add_button(label="Record...", callback=self.toggle_recording)
                self.w_rec_backdrop = dpg.add_checkbox(label="with backdrop")
                self.w_rec_video = dpg.add_checkbox(label="+ WebM")
            tooltip(self.rec_button, "PNG sequence + timing.json (real frame times) into a folder you choose.")
            tooltip(self.w_rec_video, "Also write recording.webm (VP9 with alpha, real speed) when you stop.")

        with dpg.collapsing_header(label="View", default_open=False):
            dpg.add_checkbox(
                label="1:1 pixels (else fit the panel)",
                default_value=m.view_one_to_one,
                callback=lambda s_, a: setattr(m, "view_one_to_one", a),
            )
            dpg.add_checkbox(label="Timing overlay", default_value=True, tag="show_stats")

        self.settings_panel = SettingsPanel(m, self.show_error)
        with dpg.collapsing_header(label="Upscaler", default_open=False) as up:
            self._build_upscaler(up)
        for group in ANIMATOR_GROUPS:
            header = dpg.add_collapsing_header(label=f"Animator: {group}", default_open=group == "output")
            self.settings_panel.build_group(group, header)

    def _build_upscaler(self, parent: int) -> None:
        m = self.model
        self.settings_panel.build_setting(settingsmod.BY_KEY["upscale"], parent)
        self._upscale_options = {o.label: o for o in upscalermod.available_modes()}
        labels = list(self._upscale_options)
        self.w_upmode = dpg.add_combo(
            labels,
            label="Mode",
            width=200,
            parent=parent,
            default_value=self._upscale_label(),
            callback=self._on_upscale_mode,
        )
        self.w_upmode_text = dpg.add_text("", parent=parent, wrap=self.layout.controls_w - 30, color=(160, 160, 160))
        self._on_upscale_mode(None, self._upscale_label(), apply=False)
        del m

    def _upscale_label(self) -> str:
        s = self.model.settings
        for label, o in self._upscale_options.items():
            if (o.mode != "anime4k" and o.mode == s["upscale_quality"]) or (
                o.mode == "anime4k" and o.preset == s["upscale_preset"] and o.quality == s["upscale_quality"]
            ):
                return label
        return next(iter(self._upscale_options))

    def _on_upscale_mode(self, sender: Any, label: str, apply: bool = True) -> None:
        o = self._upscale_options[label]
        note = o.runs + (f"\nNeeds a download first: {o.needs_download}" if o.needs_download else "")
        dpg.set_value(self.w_upmode_text, note)
        if apply:
            if o.mode == "anime4k":
                self._act(self.model.set_setting, "upscale_preset", o.preset)
                self._act(self.model.set_setting, "upscale_quality", o.quality)
            else:
                self._act(self.model.set_setting, "upscale_quality", o.mode)

    def _build_speech(self) -> None:
        ok, why = self._speech_ok, self._speech_why = self._speech_available()
        if not ok:
            dpg.add_text(f"Speech test unavailable: {why}", wrap=self.layout.controls_w - 30, color=WARN_COLOUR)
            return
        voices = list(self.speaker.voices())
        self.w_voice = dpg.add_combo(voices, label="Voice", default_value=voices[0] if voices else "", width=180)
        self.w_voice_speed = dpg.add_slider_float(
            label="Speed", default_value=1.0, min_value=0.5, max_value=2.0, width=180
        )
        self.w_av_offset = dpg.add_slider_float(
            callback=lambda s_, a: setattr(self.speaker, "offset", a),
            label="AV offset (s)",
            default_value=0.0,
            min_value=-1.0,
            max_value=1.0,
            width=180,
        )
        self.w_speech_text = dpg.add_input_text(hint="[Enter text to speak]", width=-1, multiline=True, height=60)
        self.speak_button = dpg.add_button(label="Speak [Ctrl+S]", callback=self.toggle_speaking)

    def _speech_available(self) -> tuple[bool, str]:
        if self.speaker is None:
            return False, "the speech engine (raven_avatar.engine.speech Speaker) is not part of this build yet"
        try:
            return self.speaker.available()
        except Exception as exc:  # an optional component; say why it is off
            return False, str(exc)

    def _build_postprocessor(self) -> None:
        m = self.model
        with dpg.collapsing_header(label="Crop", default_open=True):
            crop = m.settings["crop"]
            with dpg.group(horizontal=True):
                dpg.add_button(label="Reset", callback=lambda: (self._act(m.reset_crop), self._refresh_crop()))
                self.w_crop_on = dpg.add_checkbox(
                    label="Crop", default_value=crop["enabled"], callback=lambda s_, a: self._act(m.set_crop, enabled=a)
                )
                dpg.add_checkbox(
                    label="Show box",
                    default_value=m.show_crop_overlay,
                    callback=lambda s_, a: setattr(m, "show_crop_overlay", a),
                )
            self.w_crop = {}
            for edge in ("left", "top", "right", "bottom"):
                with dpg.group(horizontal=True):
                    dpg.add_button(
                        label=RESET,
                        user_data=edge,
                        callback=lambda s_, a, u: (
                            self._act(m.set_crop, **{u: settingsmod.BY_KEY["crop"].default[u]}),
                            self._refresh_crop(),
                        ),
                    )
                    self.w_crop[edge] = dpg.add_slider_float(
                        label=pretty(edge),
                        default_value=crop[edge],
                        min_value=0.0,
                        max_value=1.0,
                        width=220,
                        user_data=edge,
                        callback=lambda s_, a, u: (self._act(m.set_crop, **{u: a}), self._refresh_crop(skip=u)),
                    )
        with dpg.collapsing_header(label="Postprocessor", default_open=True) as header:
            with dpg.group(horizontal=True):
                dpg.add_checkbox(
                    label="Enabled",
                    default_value=m.postprocessor_enabled,
                    callback=lambda s_, a: self._act(m.set_postprocessor_enabled, a),
                )
                self.preset_combo = dpg.add_combo(
                    list(m.chain_presets()), label="Preset", width=150, callback=self._on_preset
                )
                tooltip(self.preset_combo, "Replace the chain with a preset's (shipped, then yours).")
            with dpg.group(horizontal=True):
                self.w_preset_name = dpg.add_input_text(hint="preset name", width=150)
                dpg.add_button(label="Save chain as preset", callback=self._save_preset)
            self.chain_panel = ChainPanel(m, self.show_error)
            self.chain_panel.build(header)

    def _build_view_items(self) -> None:
        dl = self.drawlist
        lay = self.layout
        self._bg_draw = None
        self._avatar_draw = None
        self._crop_items = [
            dpg.draw_rectangle((0, 0), (0, 0), fill=(0, 0, 0, 150), color=(0, 0, 0, 0), parent=dl, show=False)
            for _ in range(4)
        ]
        self._crop_outline = dpg.draw_rectangle(
            (0, 0), (0, 0), color=(255, 220, 60, 220), thickness=2, parent=dl, show=False
        )
        self._stats_text = dpg.draw_text((10, 8), "", color=(90, 255, 120, 255), size=16, parent=dl)
        self._stats_text2 = dpg.draw_text((10, 28), "", color=(90, 255, 120, 255), size=16, parent=dl)
        self._message_text = dpg.draw_text(
            (lay.view_w / 2 - 120, lay.view_h / 2), "", color=(255, 255, 255, 255), size=24, parent=dl
        )
        self._rec_text = dpg.draw_text((10, 68), "", color=(255, 60, 60, 255), size=18, parent=dl)

    def _build_handlers(self) -> None:
        m, h, k = self.model, self.hotkeys, dpg
        h.add(k.mvKey_O, "Load character", self.open_character_dialog, ctrl=True)
        h.add(k.mvKey_R, "Reload character from disk (also automatic when its files change)",
              lambda: self._act(m.reload_character), ctrl=True)  # fmt: skip
        h.add(
            k.mvKey_E, "Focus the emotion list (then Up/Down/Home/End switch at once)", self.focus_emotions, ctrl=True
        )
        h.add(k.mvKey_E, "Load emotion templates", self.open_templates_dialog, ctrl=True, shift=True)
        h.add(k.mvKey_B, "Load backdrop image", self.open_backdrop_dialog, ctrl=True)
        h.add(k.mvKey_T, "Start/stop the generic talking animation", self.toggle_talking, ctrl=True)
        h.add(k.mvKey_P, "Pause/resume the animation", self.toggle_pause, ctrl=True)
        h.add(k.mvKey_A, "Load settings", self.open_settings_dialog, ctrl=True, shift=True)
        h.add(k.mvKey_S, "Save settings as", self.save_settings_as_dialog, ctrl=True, shift=True)
        h.add(k.mvKey_S, "Speak / stop speaking (when speech is available)", self.toggle_speaking, ctrl=True)
        h.add(k.mvKey_F12, "Screenshot of the avatar (PNG; transparent unless 'with backdrop')", self.screenshot_dialog)
        h.add(k.mvKey_F1, "This help card", self.show_help)
        h.add(k.mvKey_F11, "Fullscreen", self.toggle_fullscreen)
        h.note("Up/Down/Home/End", "Switch emotion (after Ctrl+E or a click in the list)")
        h.note("Esc / Enter", "Close / accept a dialog")
        h.note("Ctrl+click", "Type an exact value into a slider")
        h.install()

    # ====================================================================================================== dialogs

    def show_error(self, message: str, title: str = "Error") -> None:
        logger.warning("%s: %s", title, message)
        self.dialogs.error(message, title)

    def confirm_discard(self, action: Callable[[], None]) -> None:
        """Run ``action`` now, or after the user agrees to lose unsaved settings changes."""
        if not self.model.dirty:
            action()
            return
        self.dialogs.confirm("Unsaved changes", "The settings have unsaved changes. Discard them?", action,
                             yes="Discard changes", no="Keep editing")  # fmt: skip

    @property
    def modal_open(self) -> bool:
        return self.dialogs.is_open

    def file_dialog(
        self,
        title: str,
        on_path: Callable[[Path], Any],
        extensions: tuple[str, ...] = (),
        folder: Path | None = None,
        *,
        directory: bool = False,
        default_name: str = "",
    ) -> None:
        """A file (or folder) dialog; ``on_path`` runs as an action (its errors become dialogs)."""
        folder = folder if folder is not None and folder.is_dir() else Path.cwd()

        def picked(path: Path) -> None:
            self._act(on_path, path)

        if directory:
            self.dialogs.pick_folder(title, folder, picked)
        elif default_name:
            self.dialogs.save_file(title, extensions, folder, default_name, picked)
        else:
            self.dialogs.open_file(title, extensions, folder, picked)

    # ====================================================================================================== actions

    def _act(self, action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a model action; an :class:`ActionError` becomes an error dialog listing its problems."""
        try:
            return action(*args, **kwargs)
        except ActionError as exc:
            problems = "\n".join(f"- {p}" for p in exc.problems)
            self.show_error(f"{exc}\n{problems}" if problems else str(exc))
        return None

    def open_character_dialog(self) -> None:
        folder = self.model.character_path().parent
        self.file_dialog("Load character", self.model.load_character, (".png",), folder)

    def open_templates_dialog(self) -> None:
        self.file_dialog("Load emotion templates", self.model.load_templates, (".json",), asset_path("emotions"))

    def open_backdrop_dialog(self) -> None:
        self.file_dialog(
            "Load backdrop",
            self.model.load_backdrop,
            ("Images (*.png *.jpg *.webp){.png,.jpg,.jpeg,.webp}",),
            asset_path("backdrops"),
        )

    def open_settings_dialog(self) -> None:
        self.confirm_discard(
            lambda: self.file_dialog(
                "Load settings", self.load_settings, (".json",), settingsmod.user_settings_path().parent
            )
        )

    def load_settings(self, path: Path) -> None:
        problems = self.model.load_settings(path)
        self.refresh_all()
        if problems:
            self.show_error(
                f"{path}: these values were not used (defaults kept):\n" + "\n".join(f"- {p}" for p in problems),
                "Settings problems",
            )

    def save_settings(self) -> None:
        if self.model.settings_path is None:
            self.save_settings_as_dialog()
        else:
            self._act(self.model.save_settings)

    def save_settings_as_dialog(self) -> None:
        path = self.model.settings_path or settingsmod.user_settings_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file_dialog("Save settings as", self.model.save_settings, (".json",), path.parent, default_name=path.stem)

    def screenshot_dialog(self) -> None:
        with_backdrop = dpg.get_value(self.w_shot_backdrop)
        name = time.strftime("avatar-%Y%m%d-%H%M%S")
        self.file_dialog(
            "Save screenshot",
            lambda p: self.model.screenshot(p.with_suffix(".png"), with_backdrop=with_backdrop),
            (".png",),
            Path.cwd(),
            default_name=name,
        )

    def toggle_recording(self) -> None:
        if self.model.recorder is not None:
            self._act(self.model.stop_recording)
            dpg.set_item_label(self.rec_button, "Record...")
            return
        with_backdrop, video = dpg.get_value(self.w_rec_backdrop), dpg.get_value(self.w_rec_video)

        def start(folder: Path) -> None:
            folder = folder / time.strftime("rec-%Y%m%d-%H%M%S")
            self.model.start_recording(folder, with_backdrop=with_backdrop, video=video)
            dpg.set_item_label(self.rec_button, "Stop recording")

        self.file_dialog("Record into folder", start, (), Path.cwd(), directory=True)

    def open_dropped(self, path: Path) -> None:
        """A file dropped on the window: opened by what it is (settings ask first if there are unsaved changes)."""
        kind = self._act(self.model.classify_file, path)
        if kind == "settings":
            self.confirm_discard(lambda: self._act(self.load_settings, path))
        elif kind is not None:
            self._act(self.model.open_file, path)

    def request_quit(self) -> None:
        """The window's close button: quit, after asking when the settings have unsaved changes."""
        self.confirm_discard(self._quit)

    def _quit(self) -> None:
        self.quit_requested = True

    def toggle_talking(self) -> None:
        talking = self.model.toggle_talking()
        dpg.set_item_label(self.talk_button, "Stop talking [Ctrl+T]" if talking else "Start talking [Ctrl+T]")

    def toggle_pause(self) -> None:
        paused = self.model.toggle_pause()
        dpg.set_item_label(self.pause_button, "Resume [Ctrl+P]" if paused else "Pause [Ctrl+P]")

    def toggle_speaking(self) -> None:
        if self.speaker is None or not self._speech_ok:
            return
        if self.speaker.speaking:
            self.speaker.stop(wait=False)
            return
        self.speaker.offset = dpg.get_value(self.w_av_offset)
        try:
            self.speaker.speak(
                dpg.get_value(self.w_speech_text).strip() or DEMO_TEXT,
                voice=dpg.get_value(self.w_voice),
                speed=dpg.get_value(self.w_voice_speed),
            )
        except RuntimeError as exc:  # e.g. the weights vanished since start-up
            self.show_error(f"Cannot speak: {exc}")

    def _update_speech(self) -> None:
        if self.speaker is None or not self._speech_ok:
            return
        speaking = self.speaker.speaking
        if speaking != self._was_speaking:
            self._was_speaking = speaking
            dpg.set_item_label(self.speak_button, "Stop speaking [Ctrl+S]" if speaking else "Speak [Ctrl+S]")
            if not speaking and self.speaker.last_error:
                self.show_error(self.speaker.last_error)

    def toggle_fullscreen(self) -> None:
        dpg.toggle_viewport_fullscreen()

    def show_help(self) -> None:
        show_help(self.hotkeys, f"{TITLE}: keys", HELP_NOTES)

    def _on_emotion_clicked(self, sender: Any, name: str) -> None:
        self._act(self.model.set_emotion, name)

    def focus_emotions(self) -> None:
        self.hotkeys.focus_list(self.emotion_list)

    def _on_preset(self, sender: Any, name: str) -> None:
        path = self.model.chain_presets().get(name)
        if path is not None:
            self._act(self.model.load_chain_preset, path)
            self.chain_panel.rebuild()

    def _save_preset(self) -> None:
        name = dpg.get_value(self.w_preset_name).strip()
        if self._act(self.model.save_chain_preset, name) is not None:
            dpg.configure_item(self.preset_combo, items=list(self.model.chain_presets()))

    def _set_backdrop_color(self, checker: bool | None = None) -> None:
        rgb = rgb01(dpg.get_value(self.w_color))[:3]
        if checker is None:
            checker = dpg.get_value(self.w_checker)
        self._act(self.model.set_setting, "backdrop_color", [*rgb, 0.0 if checker else 1.0])

    def load_backdrop(self, path: Path) -> None:
        self._act(self.model.load_backdrop, path)

    # ====================================================================================================== refresh

    def refresh_all(self) -> None:
        """Every widget from the model (after loading settings)."""
        s = self.model.settings
        self.settings_panel.refresh()
        self.chain_panel.rebuild()
        self._refresh_crop()
        dpg.set_value(self.w_blur, s["backdrop_blur"])
        dpg.set_value(self.w_blur_amount, s["backdrop_blur_amount"])
        dpg.set_value(self.w_backdrop_post, s["backdrop_postprocess"])
        dpg.set_value(self.w_fit, s["backdrop_fit"])
        dpg.set_value(self.w_checker, s["backdrop_color"][3] <= 0)
        dpg.set_value(self.w_color, s["backdrop_color"][:3] + [1.0])
        dpg.set_value(self.w_upmode, self._upscale_label())

    def _refresh_crop(self, skip: str | None = None) -> None:
        crop = self.model.settings["crop"]
        dpg.set_value(self.w_crop_on, crop["enabled"])
        for edge, w in self.w_crop.items():
            if edge != skip or abs(dpg.get_value(w) - crop[edge]) > 1e-6:
                dpg.set_value(w, crop[edge])

    def _refresh_texts(self) -> None:
        m = self.model
        names = m.emotions()
        if names != self._emotion_items:
            self._emotion_items = names
            dpg.configure_item(self.emotion_list, items=names)
        if dpg.get_value(self.emotion_list) != m.emotion:
            dpg.set_value(self.emotion_list, m.emotion)
            dpg.set_value(self.emotion_text, f"Emotion: {m.emotion}   [Ctrl+E, then Up/Down/Home/End]")
        dpg.set_value(self.character_text, f"{m.character_report()}\n{m.link.templates.summary()}")
        path = m.settings.get("backdrop_path")
        dpg.set_value(self.backdrop_text, f"Image: {Path(path).name}" if path else "No image (colour only)")
        where = m.settings_path.name if m.settings_path else "(not saved yet)"
        dpg.set_value(self.settings_text, f"File: {where}" + (" - unsaved changes" if m.dirty else ""))
        error = m.link.last_error
        notice = m.link.notice
        line = m.status or "Ready. F1: keys and help."
        if error is not None:
            line = f"Render error (frame {error.frame_index}, {error.count}x): {error.message}"
        elif notice:
            line = f"{line}   [{notice}]"
        dpg.set_value(self.status_text, line)

    # =================================================================================================== live view

    def _relayout(self) -> None:
        w, h = dpg.get_viewport_client_width(), dpg.get_viewport_client_height()
        if w <= 0 or h <= 0:
            return
        self.layout = Layout(w, h)
        lay = self.layout
        dpg.configure_item(self.view_child, width=lay.view_w, height=lay.view_h)
        dpg.configure_item(self.drawlist, width=lay.view_w, height=lay.view_h)
        dpg.configure_item(self.controls, height=lay.column_h)
        dpg.configure_item(self.post_col, height=lay.column_h)

    def _upload_frame(self) -> None:
        """Copy a new engine frame into the avatar texture (a dynamic texture: uploaded only when it changes).

        A new size needs a new texture (never a reused id); DearPyGui uploads it lazily, so it is drawn hidden for
        two frames and only then replaces the old one, which avoids a flash of uninitialised pixels.
        """
        f = self.model.frame
        if not self.model.new_frame or f is None or f.rgba_f32 is None:
            return
        self.model.new_frame = False
        size = (f.width, f.height)
        if self._next_avatar is not None and self._next_avatar[2] == size:
            dpg.set_value(self._next_avatar[0], f.rgba_f32)
        elif size != self._tex_size:
            if self._next_avatar is not None:  # superseded before it was shown
                dpg.delete_item(self._next_avatar[1])
                dpg.delete_item(self._next_avatar[0])
            tex = dpg.add_dynamic_texture(f.width, f.height, f.rgba_f32, parent=self._registry)
            draw = dpg.draw_image(tex, (0, 0), (1, 1), parent=self.drawlist, before=self._crop_items[0], show=False)
            self._next_avatar = (tex, draw, size, self.gui_frames + 2)
        else:
            dpg.set_value(self._tex, f.rgba_f32)
        self.frames_shown += 1

    def _swap_textures(self) -> None:
        """Put textures created two frames ago on screen and delete what they replace."""
        nxt = self._next_avatar
        if nxt is not None and self.gui_frames >= nxt[3]:
            for item in (self._avatar_draw, self._tex):
                if item is not None:
                    dpg.delete_item(item)
            self._tex, self._avatar_draw, self._tex_size = nxt[0], nxt[1], nxt[2]
            self._next_avatar = None
        nxt_bg = self._next_bg
        if nxt_bg is not None and self.gui_frames >= nxt_bg[2]:
            for item in (self._bg_draw, self._bg_tex):
                if item is not None:
                    dpg.delete_item(item)
            self._bg_tex, self._bg_draw = nxt_bg[0], nxt_bg[1]
            dpg.configure_item(self._bg_draw, show=True)
            self._next_bg = None

    def avatar_rect(self) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float, float, float]]:
        """Where the avatar image goes in the view: (pmin, pmax) of the frame, and the full square's rect."""
        f = self.model.frame
        lay = self.layout
        full_w, full_h = f.full_size if f.full_size != (0, 0) else (f.width, f.height)
        scale = 1.0 if self.model.view_one_to_one else min(lay.view_w / full_w, lay.view_h / full_h)
        fw, fh = full_w * scale, full_h * scale
        x0, y0 = (lay.view_w - fw) / 2, lay.view_h - fh  # centred, standing on the bottom edge
        if f.crop is not None:
            left, top, right, bottom = f.crop
            pmin = (x0 + left * fw, y0 + top * fh)
            pmax = (x0 + right * fw, y0 + bottom * fh)
        else:
            pmin, pmax = (x0, y0), (x0 + fw, y0 + fh)
        return pmin, pmax, (x0, y0, x0 + fw, y0 + fh)

    def _update_view(self) -> None:
        m, lay = self.model, self.layout
        self._update_backdrop()
        f = m.frame
        paused = m.paused
        if self._avatar_draw is not None and f is not None:
            pmin, pmax, full = self.avatar_rect()
            dpg.configure_item(self._avatar_draw, pmin=pmin, pmax=pmax, show=not paused)
            self._update_crop_overlay(full)
        if self._bg_draw is not None:
            dpg.configure_item(self._bg_draw, show=not paused)
        message = ""
        if paused:
            message = "[Paused]" if m.user_paused else "[Paused: window hidden]"
        elif f is None:
            message = "[Loading...]"
        dpg.configure_item(self._message_text, text=message, pos=(lay.view_w / 2 - 60, lay.view_h / 2))
        show_stats = dpg.get_value("show_stats")
        if show_stats:
            st = m.link.stats
            if paused or f is None:
                line1, line2 = "-- FPS", ""
            else:
                line1 = (
                    f"{st.get('fps', 0):.1f} FPS (target {st.get('target_fps', 0):g})  {f.width}x{f.height}"
                    f"  frame {f.index}"
                )
                stages = [
                    k
                    for k in (
                        "animate",
                        "cels",
                        "pose",
                        "animefx",
                        "crop",
                        "upscale",
                        "postprocess",
                        "output",
                        "transfer",
                    )
                    if k in st
                ]
                parts = [f"{k} {st[k]:.1f}" for k in stages] + [f"total {st.get('total', 0):.0f} ms"]
                line2 = " | ".join(parts[:5]) + "\n" + " | ".join(parts[5:])
            dpg.configure_item(self._stats_text, text=line1)
            dpg.configure_item(self._stats_text2, text=line2)
        else:
            dpg.configure_item(self._stats_text, text="")
            dpg.configure_item(self._stats_text2, text="")
        rec = m.recorder
        dpg.configure_item(
            self._rec_text,
            text=f"REC {rec.count}"
            if rec is not None and int(time.monotonic() * 2) % 2 == 0
            else ("REC" if rec is not None else ""),
        )

    def _update_crop_overlay(self, full: tuple[float, float, float, float]) -> None:
        m = self.model
        crop = m.settings["crop"]
        show = m.show_crop_overlay and crop["enabled"] and not self.modal_open and not m.paused
        x0, y0, x1, y1 = full
        fw, fh = x1 - x0, y1 - y0
        cx0, cy0 = x0 + crop["left"] * fw, y0 + crop["top"] * fh
        cx1, cy1 = x0 + crop["right"] * fw, y0 + crop["bottom"] * fh
        rects = [((x0, y0), (x1, cy0)), ((x0, cy1), (x1, y1)), ((x0, cy0), (cx0, cy1)), ((cx1, cy0), (x1, cy1))]
        for item, (a, b) in zip(self._crop_items, rects, strict=True):
            dpg.configure_item(item, pmin=a, pmax=b, show=show)
        dpg.configure_item(self._crop_outline, pmin=(cx0, cy0), pmax=(cx1, cy1), show=show)

    def _update_backdrop(self) -> None:
        lay = self.layout
        key = (self.model.backdrop_version, lay.view_w, lay.view_h)
        if key != self._bg_key and (self._bg_thread is None or not self._bg_thread.is_alive()):
            self._bg_key = key
            model = self.model

            def work() -> None:
                try:
                    self._bg_result = (key, model.render_backdrop(lay.view_w, lay.view_h))
                except Exception as exc:  # a broken filter or image: show it, keep the old backdrop
                    logger.exception("backdrop")
                    self._bg_result = ("error", f"Could not render the backdrop: {exc}")

            self._bg_thread = threading.Thread(target=work, name="backdrop", daemon=True)
            self._bg_thread.start()
        result, self._bg_result = self._bg_result, None
        if result is None:
            return
        tag, scene = result
        if tag == "error":
            self.show_error(scene)
            return
        h, w = scene.shape[:2]
        if self._next_bg is not None:  # superseded before it was shown
            dpg.delete_item(self._next_bg[1])
            dpg.delete_item(self._next_bg[0])
        buf = np.ascontiguousarray(scene, dtype=np.float32).ravel()
        tex = dpg.add_static_texture(w, h, buf, parent=self._registry)
        below = self._avatar_draw if self._avatar_draw is not None else self._crop_items[0]
        draw = dpg.draw_image(tex, (0, 0), (w, h), parent=self.drawlist, before=below, show=False)
        self._next_bg = (tex, draw, self.gui_frames + 2)

    # ======================================================================================================== loop

    def _check_visibility(self) -> None:
        now = time.monotonic()
        if now < self._next_visibility:
            return
        self._next_visibility = now + 0.3
        w, h = dpg.get_viewport_client_width(), dpg.get_viewport_client_height()
        visible = w > 0 and h > 0 and (self._visibility is None or self._visibility.visible())
        self.model.set_visible(visible)

    def step(self) -> None:
        """One GUI frame: callbacks, model tick, texture upload, overlay, dialogs, render."""
        dpg.run_callbacks(dpg.get_callback_queue())
        self._check_visibility()
        self.model.tick()
        for event in self.model.events:
            if event.error:
                problems = "\n".join(f"- {p}" for p in event.problems)
                self.show_error(f"{event.message}\n{problems}" if problems else event.message)
        self.model.events.clear()
        for drop in self.filedrop.take():
            for path in drop:
                self.open_dropped(path)
        self._update_speech()
        self._swap_textures()
        self._upload_frame()
        self._update_view()
        self._refresh_texts()
        dpg.render_dearpygui_frame()
        self.gui_frames += 1
        now = time.monotonic()
        rest = self._last_step + 1.0 / MAX_GUI_FPS - now
        if self.model.paused:
            rest = max(rest, IDLE_SLEEP_S)
        if rest > 0:
            time.sleep(rest)
        self._last_step = time.monotonic()

    def run(self, until: Callable[[], bool] | None = None) -> None:
        while dpg.is_dearpygui_running() and not self.quit_requested:
            self.step()
            if until is not None and until():
                break

    def window_shot(self, path: Path) -> None:
        """Save the whole window as a PNG (DearPyGui's frame buffer)."""
        box: dict[str, Any] = {}
        dpg.output_frame_buffer(callback=lambda s, a: box.setdefault("buf", a))
        for _ in range(20):
            self.step()
            dpg.run_callbacks(dpg.get_callback_queue())
            if "buf" in box:
                break
        buf = box.get("buf")
        if buf is None:
            raise RuntimeError("DearPyGui returned no frame buffer")
        write_png(framebuffer_to_u8(buf), path)

    def close(self) -> None:
        if self.model.recorder is not None:
            self._act(self.model.stop_recording)
        dpg.destroy_context()


def framebuffer_to_u8(buf: Any) -> np.ndarray:
    """A DearPyGui frame buffer (``mvBuffer``, float RGBA) as an (H, W, 4) uint8 array."""
    w, h = buf.get_width(), buf.get_height()
    arr = np.frombuffer(buf, dtype=np.float32, count=w * h * 4).reshape(h, w, 4)
    return (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
