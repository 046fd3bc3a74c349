"""The settings editor window: DearPyGui widgets bound to :class:`~.model.EditorModel` actions.

Callbacks run on the GUI thread between frames (manual callback management), so they and :meth:`EditorModel.tick`
never race; nothing here does device work (the engine renders in its own thread, slow engine calls go through the
:class:`~.engine_link.EngineLink` worker, the backdrop is rendered in a helper thread).
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

from raven_avatar.engine import settings as settingsmod
from raven_avatar.engine import upscaler as upscalermod
from raven_avatar.engine.paths import asset_path
from raven_avatar.gui.filedialog import IMAGE_EXTENSIONS
from raven_avatar.gui.helpcard import show_help
from raven_avatar.gui.listview import ListView
from raven_avatar.gui.shell import Shell
from raven_avatar.gui.text import fit_lines, tooltip
from raven_avatar.gui.theme import WARN_COLOUR
from raven_avatar.gui.x11_visibility import WindowVisibility

from . import backdrop as backdropmod
from .model import ActionError, EditorModel
from .panels import RESET, ChainPanel, SettingsPanel, pretty, rgb01

logger = logging.getLogger(__name__)

TITLE = "raven_avatar settings editor"
ANIMATOR_GROUPS = ("output", "animation", "blink", "talking", "sway", "breathing", "eyes", "animefx", "emotion_text")
MIN_WINDOW_SIZE = (1024, 600)


@dataclass(frozen=True)
class Layout:
    """Every size in the window, derived from the viewport size."""

    width: int
    height: int
    margin: int = 8
    status_h: int = 26

    @property
    def controls_w(self) -> int:  # narrower columns on a laptop screen leave the view room
        return 410 if self.width >= 1600 else 360

    @property
    def post_w(self) -> int:
        return 470 if self.width >= 1600 else 400

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
        """``width`` × ``height``: the preferred window size (it is fitted into the screen's work area)."""
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
        self.shell: Shell | None = None
        self._visibility: WindowVisibility | None = None
        self._next_visibility = 0.0
        self._emotion_items: list[str] = []
        self.quit_requested = False
        self._speech_ok = False
        self._was_speaking = False
        self._overlay_key: tuple | None = None  # what the view overlay last showed (redraw when it changes)

    # ========================================================================================================= build

    def build(self, shell: Shell | None = None) -> None:
        """Build the window into ``shell`` (one already showing a loading view), or a new one."""
        self.shell = shell = shell or Shell(TITLE, size=(self.layout.width, self.layout.height),
                                            min_size=MIN_WINDOW_SIZE)  # fmt: skip
        self.cb, self.dialogs, self.hotkeys = shell.callbacks, shell.dialogs, shell.hotkeys
        # Each new avatar frame wakes the loop, which takes it at once: the renderer starts the next pose while this
        # one is shown (not a polling interval later).
        self.model.link.avatar.add_frame_listener(shell.wake)
        # The close button asks first when there are unsaved changes (request_quit).
        dpg.set_viewport_resize_callback(self.cb.click(self._relayout))
        dpg.set_exit_callback(self.cb.click(self.request_quit))
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
        shell.show()
        dpg.set_primary_window(self.main, True)
        self._relayout()
        self._visibility = WindowVisibility(TITLE)

    def _build_controls(self) -> None:
        m = self.model
        with dpg.group(horizontal=True):
            dpg.add_button(label="Fullscreen [F11]", callback=self.cb.click(self.toggle_fullscreen))
            dpg.add_button(label="Help [F1]", callback=self.cb.click(self.show_help))
            self.pause_button = dpg.add_button(label="Pause [Ctrl+P]", callback=self.cb.click(self.toggle_pause))

        with dpg.collapsing_header(label="Character", default_open=True):
            with dpg.group(horizontal=True):
                b = dpg.add_button(label="Load [Ctrl+O]", callback=self.cb.click(self.open_character_dialog))
                tooltip(b, "A 512x512 RGBA PNG; cels NAME_<cel>.png beside it are found automatically.")
                dpg.add_button(label="Reload [Ctrl+R]", callback=self.cb.click(self._act, m.reload_character))
            self.character_text = dpg.add_text("", color=(180, 200, 220))
            self.emotion_text = dpg.add_text("Emotion")
            self.emotions = ListView(self.cb, dpg.top_container_stack(), height=170, label="Emotions",
                                     on_select=functools.partial(self._act, m.set_emotion))  # fmt: skip
            self.hotkeys.add_list(self.emotions)
            with dpg.group(horizontal=True):
                b = dpg.add_button(
                    label="Load templates [Ctrl+Shift+E]", callback=self.cb.click(self.open_templates_dialog)
                )
                tooltip(
                    b,
                    "Overlay an emotion templates JSON onto the current ones.\n"
                    "Templates saved by the pose editor are picked up automatically.",
                )
            with dpg.group(horizontal=True):
                self.talk_button = dpg.add_button(
                    label="Start talking [Ctrl+T]", callback=self.cb.click(self.toggle_talking)
                )
                dpg.add_checkbox(label="Data eyes", callback=self.cb.value(self._act, m.set_data_eyes))

        with dpg.collapsing_header(label="Say or feel", default_open=True):
            self.w_feel = dpg.add_input_text(hint="A line the character says; Enter: the avatar feels it", width=-1,
                                             label="##say or feel",
                                             on_enter=True, callback=self.cb.value(self.feel))  # fmt: skip
            tooltip(self.w_feel, "The go-emotions classifier picks the emotion (Emotion from text settings).")
            self.w_feel_speak = dpg.add_checkbox(label="Also speak it (needs speech)", show=False)
            self.feel_text = dpg.add_text("", color=(180, 200, 220))

        with dpg.collapsing_header(label="Speech", default_open=False):
            self._build_speech()
        dpg.configure_item(self.w_feel_speak, show=self._speech_ok)

        with dpg.collapsing_header(label="Backdrop", default_open=True):
            with dpg.group(horizontal=True):
                dpg.add_button(label=RESET, callback=self.cb.click(self._act, m.clear_backdrop))
                dpg.add_button(label="Load backdrop [Ctrl+B]", callback=self.cb.click(self.open_backdrop_dialog))
            self.backdrop_text = dpg.add_text("", color=(180, 200, 220))
            s = m.settings
            self.w_blur = dpg.add_checkbox(
                label="Blur",
                default_value=s["backdrop_blur"],
                callback=self.cb.value(self._act, m.set_setting, "backdrop_blur"),
            )
            self.w_blur_amount = dpg.add_slider_float(
                label="Blur amount",
                min_value=settingsmod.BY_KEY["backdrop_blur_amount"].low,
                max_value=settingsmod.BY_KEY["backdrop_blur_amount"].high,
                default_value=s["backdrop_blur_amount"],
                callback=self.cb.value(self._act, m.set_setting, "backdrop_blur_amount"),
            )
            self.w_fit = dpg.add_combo(
                list(backdropmod.FITS),
                label="Fit",
                default_value=s["backdrop_fit"],
                width=140,
                callback=self.cb.value(self._act, m.set_setting, "backdrop_fit"),
            )
            self.w_checker = dpg.add_checkbox(
                label="Checkerboard (transparent colour)",
                default_value=s["backdrop_color"][3] <= 0,
                callback=self.cb.value(self._set_backdrop_checker),
            )
            self.w_color = dpg.add_color_edit(
                s["backdrop_color"][:3] + [1.0],
                label="Colour",
                no_alpha=True,
                width=200,
                display_type=dpg.mvColorEdit_float,
                callback=self.cb.click(self._set_backdrop_color),
            )
            self.w_backdrop_post = dpg.add_checkbox(
                label="Backdrop through the postprocessor",
                default_value=s["backdrop_postprocess"],
                callback=self.cb.value(self._act, m.set_backdrop_through_postprocessor),
            )
            tooltip(self.w_backdrop_post, settingsmod.BY_KEY["backdrop_postprocess"].doc)

        with dpg.collapsing_header(label="Settings file", default_open=True):
            with dpg.group(horizontal=True):
                dpg.add_button(label="Load [Ctrl+Shift+A]", callback=self.cb.click(self.open_settings_dialog))
                dpg.add_button(label="Save [Ctrl+S]", callback=self.cb.click(self.save_settings))
                b = dpg.add_button(label="Save as...", callback=self.cb.click(self.save_settings_as_dialog))
                tooltip(b, "Save the settings under another name [Ctrl+Shift+S]")
            self.settings_text = dpg.add_text("", color=(180, 200, 220))

        with dpg.collapsing_header(label="Capture", default_open=True):
            with dpg.group(horizontal=True):
                dpg.add_button(label="Screenshot [F12]", callback=self.cb.click(self.screenshot_dialog))
                self.w_shot_backdrop = dpg.add_checkbox(label="with backdrop")
            with dpg.group(horizontal=True):
                self.rec_button = dpg.add_button(label="Record...", callback=self.cb.click(self.toggle_recording))
                self.w_rec_backdrop = dpg.add_checkbox(label="with backdrop")
                self.w_rec_video = dpg.add_checkbox(label="+ WebM")
            with dpg.group(horizontal=True, show=False) as self.encode_row:
                self.encode_bar = dpg.add_progress_bar(width=-80, overlay="")
                dpg.add_button(label="Cancel", callback=self.cb.click(self._act, self.model.cancel_encoding))
            tooltip(self.rec_button, "PNG sequence + timing.json (real frame times) into a folder you choose.")
            tooltip(self.w_rec_video, "Also write recording.webm (VP9 with alpha, real speed) when you stop.")

        with dpg.collapsing_header(label="View", default_open=False):
            dpg.add_checkbox(
                label="1:1 pixels (else fit the panel)",
                default_value=m.view_one_to_one,
                callback=self.cb.value(setattr, m, "view_one_to_one"),
            )
            self.w_show_stats = dpg.add_checkbox(label="Timing overlay", default_value=True)

        self.settings_panel = SettingsPanel(m, self.cb, self.show_error)
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
            callback=self.cb.value(self._on_upscale_mode),
        )
        self.w_upmode_text = dpg.add_text("", parent=parent, wrap=self.layout.controls_w - 30, color=(160, 160, 160))
        self._describe_upscale_mode(self._upscale_label())
        del m

    def _upscale_label(self) -> str:
        s = self.model.settings
        for label, o in self._upscale_options.items():
            if (o.mode != "anime4k" and o.mode == s["upscale_quality"]) or (
                o.mode == "anime4k" and o.preset == s["upscale_preset"] and o.quality == s["upscale_quality"]
            ):
                return label
        return next(iter(self._upscale_options))

    def _describe_upscale_mode(self, label: str) -> None:
        o = self._upscale_options[label]
        note = o.runs + (f"\nNeeds a download first: {o.needs_download}" if o.needs_download else "")
        dpg.set_value(self.w_upmode_text, note)

    def _on_upscale_mode(self, label: str) -> None:
        """The Mode combo: apply the chosen upscaler (the engine rebuilds it) and describe it."""
        self._describe_upscale_mode(label)
        o = self._upscale_options[label]
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
            callback=self.cb.value(setattr, self.speaker, "offset"),
            label="AV offset (s)",
            default_value=0.0,
            min_value=-1.0,
            max_value=1.0,
            width=180,
        )
        self.w_speech_text = dpg.add_input_text(hint="[Enter text to speak]", width=-1, multiline=True, height=60)
        self.speak_button = dpg.add_button(label="Speak [Ctrl+K]", callback=self.cb.click(self.toggle_speaking))

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
                dpg.add_button(label="Reset", callback=self.cb.click(self._reset_crop))
                self.w_crop_on = dpg.add_checkbox(label="Crop", default_value=crop["enabled"],
                                                  callback=self.cb.value(self._set_crop, "enabled"))  # fmt: skip
                dpg.add_checkbox(label="Show box", default_value=m.show_crop_overlay,
                                 callback=self.cb.value(setattr, m, "show_crop_overlay"))  # fmt: skip
            self.w_crop = {}
            for edge in ("left", "top", "right", "bottom"):
                with dpg.group(horizontal=True):
                    default = settingsmod.BY_KEY["crop"].default[edge]
                    dpg.add_button(label=RESET, callback=self.cb.click(self._set_crop, edge, default))
                    self.w_crop[edge] = dpg.add_slider_float(
                        label=pretty(edge), default_value=crop[edge], min_value=0.0, max_value=1.0, width=220,
                        callback=self.cb.value(self._set_crop, edge),
                    )  # fmt: skip
        with dpg.collapsing_header(label="Postprocessor", default_open=True) as header:
            with dpg.group(horizontal=True):
                dpg.add_checkbox(label="Enabled", default_value=m.postprocessor_enabled,
                                 callback=self.cb.value(self._set_postprocessor_enabled))  # fmt: skip
                self.preset_combo = dpg.add_combo(list(m.chain_presets()), label="Preset", width=150,
                                                  callback=self.cb.value(self._on_preset))  # fmt: skip
                tooltip(self.preset_combo, "Replace the chain with a preset's (shipped, then yours).")
            with dpg.group(horizontal=True):
                self.w_preset_name = dpg.add_input_text(hint="preset name", width=150, label="##preset name")
                dpg.add_button(label="Save chain as preset", callback=self.cb.click(self._save_preset))
            self.chain_panel = ChainPanel(m, self.cb, self.show_error)
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
        h.add(k.mvKey_S, "Save settings (asks for a file the first time)", self.save_settings, ctrl=True)
        h.add(k.mvKey_K, "Speak / stop speaking (when speech is available)", self.toggle_speaking, ctrl=True)
        h.add(k.mvKey_F12, "Screenshot of the avatar (PNG; transparent unless 'with backdrop')", self.screenshot_dialog)
        h.add(k.mvKey_F1, "This help card", self.show_help)
        h.add(k.mvKey_F11, "Fullscreen", self.toggle_fullscreen)
        h.note("Up/Down/Home/End", "Switch emotion (after Ctrl+E or a click in the list)")
        h.note("Esc / Enter", "Close / accept a dialog")
        h.note("Ctrl+click", "Type an exact value into a slider")

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
        kind: str,
        on_path: Callable[[Path], Any],
        extensions: tuple[str, ...] = (),
        folder: Path | None = None,
        *,
        mode: str = "open",
        default_name: str = "",
    ) -> None:
        """A file (``mode`` open/save) or folder dialog that starts where ``kind`` was last used, else in
        ``folder``; ``on_path`` runs as an action (its errors become dialogs)."""

        def picked(path: Path) -> None:
            self._act(on_path, path)

        if mode == "folder":
            self.dialogs.pick_folder(title, kind, folder, picked)
        elif mode == "save":
            self.dialogs.save_file(title, kind, extensions, folder, default_name, picked)
        else:
            self.dialogs.open_file(title, kind, extensions, folder, picked)

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
        self.file_dialog("Load character", "character", self.model.load_character, IMAGE_EXTENSIONS, folder)

    def open_templates_dialog(self) -> None:
        self.file_dialog("Load emotion templates", "template", self.model.load_templates, (".json",),
                         asset_path("emotions"))  # fmt: skip

    def open_backdrop_dialog(self) -> None:
        self.file_dialog("Load backdrop", "backdrop", self.model.load_backdrop, IMAGE_EXTENSIONS,
                         asset_path("backdrops"))  # fmt: skip

    def open_settings_dialog(self) -> None:
        self.confirm_discard(
            lambda: self.file_dialog(
                "Load settings", "settings", self.load_settings, (".json",), settingsmod.user_settings_path().parent
            )  # fmt: skip
        )

    def load_settings(self, path: Path) -> None:
        problems = self.model.load_settings(path)
        self.refresh_all()
        if problems:
            self.show_error(
                f"{path}: some settings had problems (the rest apply):\n" + "\n".join(f"- {p}" for p in problems),
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
        self.file_dialog("Save settings as", "settings", self.model.save_settings, (".json",), path.parent,
                         mode="save", default_name=path.name)  # fmt: skip

    def screenshot_dialog(self) -> None:
        with_backdrop = dpg.get_value(self.w_shot_backdrop)
        name = time.strftime("avatar-%Y%m%d-%H%M%S.png")
        self.file_dialog("Save screenshot", "screenshot",
                         lambda p: self.model.screenshot(p.with_suffix(".png"), with_backdrop=with_backdrop),
                         (".png",), Path.cwd(), mode="save", default_name=name)  # fmt: skip

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

        self.file_dialog("Record into folder", "record", start, (), Path.cwd(), mode="folder")

    def open_dropped(self, path: Path) -> None:
        """A file dropped on the window: opened by what it is (settings ask first if there are unsaved changes)."""
        kind = self._act(self.model.classify_file, path)
        if kind == "settings":
            self.confirm_discard(lambda: self._act(self.load_settings, path))
        elif kind is not None:
            self._act(self.model.open_file, path)

    def request_quit(self) -> None:
        """The window's close button: quit, after asking when the settings have unsaved changes or a recording
        is still being encoded."""
        if self.model.encoding is not None:
            self.dialogs.confirm("Recording still encoding", f"{self.model.encoding}. Quit and lose the video? "
                                 "(The PNG frames and timing.json are already written.)",
                                 lambda: (self.model.cancel_encoding(), self.confirm_discard(self._quit)),
                                 yes="Cancel the video and quit", no="Keep waiting")  # fmt: skip
            return
        self.confirm_discard(self._quit)

    def _quit(self) -> None:
        self.quit_requested = True

    def toggle_talking(self) -> None:
        talking = self.model.toggle_talking()
        dpg.set_item_label(self.talk_button, "Stop talking [Ctrl+T]" if talking else "Start talking [Ctrl+T]")

    def toggle_pause(self) -> None:
        paused = self.model.toggle_pause()
        dpg.set_item_label(self.pause_button, "Resume [Ctrl+P]" if paused else "Pause [Ctrl+P]")

    def feel(self, text: str) -> None:
        """The "Say or feel" box: the avatar takes the line's emotion (and speaks it when asked)."""
        if self._act(self.model.feel, text) is None and self.model.feeling is None:
            dpg.set_value(self.feel_text, "Feeling it...")
        if self._speech_ok and dpg.get_value(self.w_feel_speak) and text.strip():
            dpg.set_value(self.w_speech_text, text)
            if not self.speaker.speaking:
                self.toggle_speaking()

    def _update_feeling(self) -> str:
        f = self.model.feeling
        if f is not None:
            name, score, top = f
            text = fit_lines(f"Feels {name} ({score:.2f}). Top: " + ", ".join(f"{k} {v:.2f}" for k, v in top),
                             self.layout.controls_w - 30)  # fmt: skip
            if dpg.get_value(self.feel_text) != text:
                dpg.set_value(self.feel_text, text)
        return dpg.get_value(self.feel_text)

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
            dpg.set_item_label(self.speak_button, "Stop speaking [Ctrl+K]" if speaking else "Speak [Ctrl+K]")
            if not speaking and self.speaker.last_error:
                self.show_error(self.speaker.last_error)

    def toggle_fullscreen(self) -> None:
        dpg.toggle_viewport_fullscreen()

    def show_help(self) -> None:
        show_help(self.hotkeys, f"{TITLE}: keys", HELP_NOTES)

    def focus_emotions(self) -> None:
        self.hotkeys.focus_list(self.emotions)

    def _on_preset(self, name: str) -> None:
        path = self.model.chain_presets().get(name)
        if path is not None:
            problems = self._act(self.model.load_chain_preset, path)
            if problems:
                self.show_error(f"{path}: the preset had problems (the rest applies):\n"
                                + "\n".join(f"- {p}" for p in problems), "Preset problems")  # fmt: skip
            self.chain_panel.rebuild()

    def _save_preset(self) -> None:
        name = dpg.get_value(self.w_preset_name).strip()
        if self._act(self.model.save_chain_preset, name) is not None:
            dpg.configure_item(self.preset_combo, items=list(self.model.chain_presets()))

    def _set_crop(self, edge: str, value: Any) -> None:
        self._act(self.model.set_crop, **{edge: value})
        self._refresh_crop(skip=edge if edge != "enabled" else None)

    def _reset_crop(self) -> None:
        self._act(self.model.reset_crop)
        self._refresh_crop()

    def _set_postprocessor_enabled(self, on: bool) -> None:
        self._act(self.model.set_postprocessor_enabled, on)
        self.chain_panel.update_summary()

    def _set_backdrop_checker(self, checker: bool) -> None:
        self._set_backdrop_color(checker)

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

    def _refresh_texts(self) -> tuple[str, ...]:
        """The emotion list and the info and status lines from the model; returns the texts shown."""
        m = self.model
        names = m.emotions()
        if names != self._emotion_items:
            self._emotion_items = names
            self.emotions.set_items(names)
        if self.emotions.get() != m.emotion:
            self.emotions.select(m.emotion)
        width = self.layout.controls_w - 30
        path = m.settings.get("backdrop_path")
        where = m.settings_path.name if m.settings_path else "(not saved yet)"
        error, notice = m.link.last_error, m.link.notice
        line = m.status or "Ready. F1: keys and help."
        if error is not None:
            line = f"Render error (frame {error.frame_index}, {error.count}x): {error.message}"
        elif notice:
            line = f"{line}   [{notice}]"
        texts = {
            self.emotion_text: f"Emotion: {m.emotion}   [Ctrl+E, then Up/Down]",
            self.character_text: fit_lines(f"{m.character_report()}\n{m.link.templates.summary()}", width),
            self.backdrop_text: fit_lines(f"Image: {Path(path).name}" if path else "No image (colour only)", width),
            self.settings_text: fit_lines(f"File: {where}" + (" - unsaved changes" if m.dirty else ""), width),
            self.status_text: fit_lines(line, self.layout.width - 20),
        }
        for item, text in texts.items():
            if dpg.get_value(item) != text:
                dpg.set_value(item, text)
        return tuple(texts.values())

    # =================================================================================================== live view

    def _relayout(self) -> None:
        w, h = dpg.get_viewport_client_width(), dpg.get_viewport_client_height()
        if w <= 0 or h <= 0:
            return
        self.layout = Layout(w, h)
        lay = self.layout
        dpg.configure_item(self.view_child, width=lay.view_w, height=lay.view_h)
        dpg.configure_item(self.drawlist, width=lay.view_w, height=lay.view_h)
        dpg.configure_item(self.controls, width=lay.controls_w, height=lay.column_h)
        dpg.configure_item(self.post_col, width=lay.post_w, height=lay.column_h)

    def _upload_frame(self) -> bool:
        """Copy a new engine frame into the avatar texture (a dynamic texture: uploaded only when it changes).

        A new size needs a new texture (never a reused id); DearPyGui uploads it lazily, so it is drawn hidden for
        two frames and only then replaces the old one, which avoids a flash of uninitialised pixels.
        """
        f = self.model.frame
        if not self.model.new_frame or f is None or f.rgba_f32 is None:
            return False
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
        return True

    def _swap_textures(self) -> bool:
        """Put textures created two frames ago on screen and delete what they replace; whether it did."""
        swapped = False
        nxt = self._next_avatar
        if nxt is not None and self.gui_frames >= nxt[3]:
            for item in (self._avatar_draw, self._tex):
                if item is not None:
                    dpg.delete_item(item)
            self._tex, self._avatar_draw, self._tex_size = nxt[0], nxt[1], nxt[2]
            self._next_avatar = None
            swapped = True
        nxt_bg = self._next_bg
        if nxt_bg is not None and self.gui_frames >= nxt_bg[2]:
            for item in (self._bg_draw, self._bg_tex):
                if item is not None:
                    dpg.delete_item(item)
            self._bg_tex, self._bg_draw = nxt_bg[0], nxt_bg[1]
            dpg.configure_item(self._bg_draw, show=True)
            self._next_bg = None
            swapped = True
        return swapped

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

    def _update_view(self) -> tuple:
        """Place the avatar, backdrop and overlays; returns what the overlay shows (to know when to redraw)."""
        m, lay = self.model, self.layout
        self._update_backdrop()
        f = m.frame
        paused = m.paused
        if self._avatar_draw is not None and f is not None:
            pmin, pmax, full = self.avatar_rect()
            dpg.configure_item(self._avatar_draw, pmin=pmin, pmax=pmax, show=True)  # paused: the last frame stays
            self._update_crop_overlay(full)
        message = ""
        if paused:
            message = "Paused [Ctrl+P]" if m.user_paused else "Paused: window hidden"
            pos = (lay.view_w - 200, 8)
        elif f is None:
            message = "[Loading...]"
            pos = (lay.view_w / 2 - 60, lay.view_h / 2)
        if message:
            dpg.configure_item(self._message_text, text=message, pos=pos)
        else:
            dpg.configure_item(self._message_text, text="")
        show_stats = dpg.get_value(self.w_show_stats)
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
        rec_text = "" if rec is None else f"REC {rec.count}" if int(time.monotonic() * 2) % 2 == 0 else "REC"
        dpg.configure_item(self._rec_text, text=rec_text)
        return (message, rec_text, dpg.get_item_configuration(self._stats_text)["text"],
                dpg.get_item_configuration(self._stats_text2)["text"], self.layout)  # fmt: skip

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

    def _update(self) -> bool:
        """Everything between callbacks and drawing: model tick, textures, overlay, texts; whether the screen
        changed (a new avatar frame, a texture swap, a message, a new overlay or text)."""
        self._check_visibility()
        self.model.tick()
        changed = bool(self.model.events)
        for event in self.model.events:
            if event.error:
                problems = "\n".join(f"- {p}" for p in event.problems)
                self.show_error(f"{event.message}\n{problems}" if problems else event.message)
        self.model.events.clear()
        for drop in self.shell.filedrop.take():
            changed = True
            for path in drop:
                self.open_dropped(path)
        self._update_speech()
        changed |= self._update_encoding()
        changed |= self._swap_textures()
        changed |= self._upload_frame()
        shown = (self._update_view(), self._refresh_texts(), self._update_feeling())
        changed |= shown != self._overlay_key
        self._overlay_key = shown
        return changed

    def _update_encoding(self) -> bool:
        """The progress bar of a recording's WebM encode; whether it is shown."""
        enc = self.model.encoding
        dpg.configure_item(self.encode_row, show=enc is not None)
        if enc is None:
            return False
        dpg.set_value(self.encode_bar, enc.fraction)
        dpg.configure_item(self.encode_bar, overlay=str(enc))
        return True

    def step(self) -> bool:
        """One turn of the frame loop: wait for a reason, then callbacks, update, draw. Whether it drew."""
        m = self.model
        busy = (
            self._next_avatar is not None
            or self._next_bg is not None
            or (self._bg_thread is not None and self._bg_thread.is_alive())
        )
        due = m.next_tick_due()
        if not m.paused:
            due = min(due, time.monotonic() + 1.0 / max(1.0, float(m.settings.get("target_fps", 25))))
        if m.recorder is not None or m.encoding is not None:
            due = min(due, time.monotonic() + 0.25)  # the REC indicator blinks, the encode progresses
        drew = self.shell.frame(busy=busy, next_deadline=due, before_draw=self._update)
        if drew:
            self.gui_frames += 1
        return drew

    def run(self, until: Callable[[], bool] | None = None,
            driver: Callable[[SettingsEditorApp], None] | None = None) -> int:  # fmt: skip
        """The frame loop, until the window closes or ``until()`` holds. ``driver(app)``, if given, runs on its own
        thread (tests); the loop ends when it returns. Returns 1 if the driver raised, else 0."""
        if driver is not None:
            self.shell.drive(lambda: driver(self))
        while self.shell.running() and not self.quit_requested and not self.shell.driver_done:
            self.step()
            if until is not None and until():
                break
        return 1 if self.shell.driver_error is not None else 0

    def call(self, fn: Callable[[], Any]):
        """Run ``fn`` on the GUI thread between frames (from any thread); the future holds its result."""
        return self.shell.call(fn)

    def window_shot(self, path: Path) -> None:
        """Save the whole window as a PNG (DearPyGui's frame buffer)."""
        self.shell.screenshot(path)

    def close(self) -> None:
        if self.model.recorder is not None:
            self._act(self.model.stop_recording)
        self.model.link.avatar.remove_frame_listener(self.shell.wake)
        self.shell.close()
