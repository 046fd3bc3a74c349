"""The real settings editor under Xvfb with the real engine on the CPU (THA3 at about 1 frame per second here).

Keys are sent with xdotool to the real window, pixels are read back from DearPyGui's frame buffer. One app per
module (DearPyGui allows one context per process); tests run in file order and each waits for conditions with
generous timeouts instead of sleeping fixed times.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

pytestmark = [pytest.mark.gui, pytest.mark.slow]

if shutil.which("Xvfb") is None or shutil.which("xdotool") is None:
    pytest.skip("needs Xvfb and xdotool", allow_module_level=True)

REFERENCE = Path(__file__).parent / "data" / "reference"
BACKDROP_RGB = (20, 120, 220)
WIDTH, HEIGHT = 1700, 980
FRAME_TIMEOUT = 150.0


@pytest.fixture(scope="module")
def display():
    """A private Xvfb display for this module."""
    read, write = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1920x1080x24", "-nolisten", "tcp"], pass_fds=(write,)
    )
    os.close(write)
    number = b""
    while not number.endswith(b"\n"):
        chunk = os.read(read, 16)
        if not chunk:
            break
        number += chunk
    os.close(read)
    yield f":{number.decode().strip()}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def env(display, stable_cache_dir, tha3_models, example_character_png, tmp_path_factory):
    """Environment and files: a scratch character, a solid-colour backdrop, calm settings (no sway or blinks)."""
    root = tmp_path_factory.mktemp("gui")
    character = root / "chars" / "hero.png"
    character.parent.mkdir()
    shutil.copy(example_character_png, character)
    backdrop = root / "backdrop.png"
    PIL.Image.new("RGB", (300, 200), BACKDROP_RGB).save(backdrop)
    settings = root / "calm.json"
    settings.write_text(
        json.dumps(
            {
                "backdrop_path": str(backdrop),
                "backdrop_blur": False,
                "pose_interpolator_step": 1.0,
                "sway_macro_strength": 0.0,
                "sway_micro_strength": 0.0,
                "blink_probability": 0.0,
                "saccade_enabled": False,
                "breathing_cycle_duration": 30.0,
                "postprocessor_chain": [["vignetting", {}], ["scanlines", {"dynamic": False}]],
            }
        )
    )
    variables = {
        "DISPLAY": display,
        "RAVEN_AVATAR_CACHE_DIR": str(stable_cache_dir),
        "RAVEN_AVATAR_OFFLINE": "1",
        "RAVEN_AVATAR_DATA_DIR": str(root / "data"),
    }
    mp = pytest.MonkeyPatch()
    for k, v in variables.items():
        mp.setenv(k, v)
    yield {"root": root, "character": character, "settings": settings, "env": {**os.environ, **variables}}
    mp.undo()


def _pixel(img: np.ndarray, x: int, y: int) -> tuple[int, int, int]:
    return tuple(int(c) for c in img[y, x, :3])


def _view_geometry() -> tuple[int, int, int]:
    """(x0, y0, size) of the full 512² square in the window, from the app's layout rules (8 px window padding)."""
    from raven_avatar.settings_editor.app import Layout

    lay = Layout(WIDTH, HEIGHT)
    size = min(lay.view_w, lay.view_h)
    return 8 + (lay.view_w - size) // 2, 8 + lay.view_h - size, size


def _check_scene(img: np.ndarray) -> None:
    x0, y0, size = _view_geometry()
    corner = _pixel(img, 20, y0 - 20)  # above the character: backdrop only
    assert np.allclose(corner, BACKDROP_RGB, atol=6), corner
    face = np.asarray(
        img[y0 + int(0.25 * size) : y0 + int(0.4 * size), x0 + int(0.4 * size) : x0 + int(0.6 * size), :3]
    )
    distance = np.abs(face.astype(int) - np.array(BACKDROP_RGB)).sum(axis=-1)
    assert (distance > 60).mean() > 0.8  # the character covers its face region


def test_console_script_shows_character_over_backdrop(env):
    out = env["root"] / "window.png"
    script = Path(sys.executable).with_name("avatar-settings-editor")
    headless = {k: v for k, v in env["env"].items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    no_display = subprocess.run([str(script)], capture_output=True, text=True, timeout=120, env=headless)
    assert no_display.returncode == 1 and "no display" in no_display.stderr
    result = subprocess.run(
        [
            str(script),
            "--device",
            "cpu",
            "--character",
            str(env["character"]),
            "--settings",
            str(env["settings"]),
            "--width",
            str(WIDTH),
            "--height",
            str(HEIGHT),
            "--window-shot",
            str(out),
        ],
        env=env["env"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    img = np.asarray(PIL.Image.open(out).convert("RGBA"))
    assert img.shape[:2] == (HEIGHT, WIDTH)
    _check_scene(img)


# ------------------------------------------------------------------------------------------ the app in-process


class Driver:
    """The running app plus helpers: pump frames until a condition holds, send keys, read the window."""

    def __init__(self, app, avatar):
        self.app, self.avatar, self.model = app, avatar, app.model
        self.window: str | None = None

    def pump_until(self, condition, timeout: float = FRAME_TIMEOUT, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.app.step()
            if condition():
                return
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.app.step()

    def keys(self, *keys: str) -> None:
        if self.window is None:
            found = subprocess.run(["xdotool", "search", "--name", "settings editor"], capture_output=True, text=True)
            self.window = found.stdout.split()[0]
        subprocess.Popen(["xdotool", "windowfocus", "--sync", self.window, "key", "--delay", "60", *keys])
        self.pump(1.0)

    def next_frame(self, what: str = "a new frame"):
        index = self.model.frame.index if self.model.frame is not None else 0
        self.pump_until(lambda: self.model.frame is not None and self.model.frame.index > index, what=what)
        return self.model.frame

    def frame_rgba(self) -> np.ndarray:
        f = self.model.frame
        return f.rgba_f32.reshape(f.height, f.width, 4).copy()

    def window_pixels(self) -> np.ndarray:
        import dearpygui.dearpygui as dpg

        from raven_avatar.gui.shell import framebuffer_to_u8

        box = {}
        dpg.output_frame_buffer(callback=lambda s, a: box.setdefault("buf", a))
        self.pump_until(lambda: "buf" in box, 10, "the frame buffer")
        return framebuffer_to_u8(box["buf"])


@pytest.fixture(scope="module")
def driver(env):
    from raven_avatar.engine import Avatar
    from raven_avatar.engine import settings as settingsmod
    from raven_avatar.settings_editor.app import SettingsEditorApp
    from raven_avatar.settings_editor.engine_link import EngineLink
    from raven_avatar.settings_editor.model import EditorModel

    settings, problems = settingsmod.load_settings(env["settings"])
    assert problems == []
    avatar = Avatar(env["character"], settings, device="cpu", seed=3)
    link = EngineLink(avatar)
    model = EditorModel(link, settings=settings, settings_path=env["settings"])
    app = SettingsEditorApp(model, width=WIDTH, height=HEIGHT)
    app.build()
    avatar.start()
    d = Driver(app, avatar)
    d.pump_until(lambda: app.frames_shown >= 1 and app._bg_tex is not None, what="the first frame")
    yield d
    link.close()
    app.close()


def _mean_rgb(rgba: np.ndarray) -> np.ndarray:
    return rgba[rgba[..., 3] > 0.8][:, :3].mean(axis=0)


def _tint(path: Path, rgb: tuple[int, int, int]) -> None:
    img = np.asarray(PIL.Image.open(path).convert("RGBA")).copy()
    img[..., :3] = rgb
    tmp = path.with_name(".tmp.png")
    PIL.Image.fromarray(img, "RGBA").save(tmp)
    os.replace(tmp, path)


def test_first_frame_over_backdrop_in_window(driver):
    driver.pump(0.5)
    _check_scene(driver.window_pixels())


def test_emotion_keys_switch_at_once_and_change_the_frame(driver):
    model = driver.model
    driver.keys("ctrl+e", "Home")
    assert model.emotion == "neutral"
    driver.pump_until(lambda: model.frame.emotion == "neutral", what="a neutral frame")
    neutral = driver.next_frame() and driver.frame_rgba()
    again = driver.next_frame() and driver.frame_rgba()
    driver.keys("End")
    last = model.emotions()[-1]
    assert model.emotion == last
    driver.keys("Up")
    target = model.emotions()[-2]
    assert model.emotion == target
    driver.pump_until(lambda: model.frame.emotion == target, what=f"a {target} frame")
    other = driver.next_frame() and driver.frame_rgba()
    face = (slice(100, 260), slice(170, 340))
    idle = np.abs(again[face] - neutral[face]).mean()
    changed = np.abs(other[face] - neutral[face]).mean()
    assert changed > 2 * idle + 0.005, (changed, idle)


def test_ctrl_r_and_file_change_reload_the_character(driver, env, monkeypatch):
    from raven_avatar.settings_editor import model as modelmod

    monkeypatch.setattr(modelmod, "RELOAD_DEBOUNCE_S", 1e9)  # only Ctrl+R may reload in the first half
    _tint(env["character"], (255, 0, 0))
    driver.pump(1.0)
    assert driver.model.character_report().startswith("hero.png")
    driver.keys("ctrl+r")
    driver.pump_until(lambda: "reloaded" in driver.model.status, what="the Ctrl+R reload")
    driver.next_frame()
    r, g, b = _mean_rgb(driver.next_frame() and driver.frame_rgba())
    assert r > 0.5 and r > 3 * g and r > 3 * b

    monkeypatch.setattr(modelmod, "RELOAD_DEBOUNCE_S", 0.5)
    driver.model.status = ""
    _tint(env["character"], (0, 255, 0))
    driver.pump_until(lambda: "reloaded" in driver.model.status, what="the automatic reload")
    driver.next_frame()
    r, g, b = _mean_rgb(driver.next_frame() and driver.frame_rgba())
    assert g > 0.5 and g > 3 * r and g > 3 * b


def _buttons(group: int, label: str) -> list[int]:
    import dearpygui.dearpygui as dpg

    found = []
    for child in dpg.get_item_children(group, 1) or []:
        if dpg.get_item_type(child) == "mvAppItemType::mvButton" and dpg.get_item_label(child) == label:
            found.append(child)
        found += _buttons(child, label) if dpg.get_item_children(child, 1) else []
    return found


def _headers(group: int) -> list[int]:
    import dearpygui.dearpygui as dpg

    return [c for c in dpg.get_item_children(group, 1) if dpg.get_item_type(c).endswith("CollapsingHeader")]


def _click(button: int) -> None:
    import dearpygui.dearpygui as dpg

    # As DearPyGui dispatches a click: (sender, app_data, user_data) through run_callbacks.
    dpg.run_callbacks([(dpg.get_item_callback(button), button, None, dpg.get_item_user_data(button))])


def test_chain_panel_reorder_duplicate_then_save_load_round_trip(driver, env):

    app, model = driver.app, driver.model
    group = app.chain_panel.group
    assert [i.name for i in model.chain.instances] == ["vignetting", "scanlines"]
    _click(_buttons(group, "Dup")[0])  # vignetting, vignetting, scanlines
    _click(_buttons(group, "Down")[1])  # vignetting, scanlines, vignetting
    _click(_buttons(group, "Up")[1])  # scanlines, vignetting, vignetting  (second block moved up)
    chain = model.chain.to_chain()
    assert [n for n, _ in chain] == ["scanlines", "vignetting", "vignetting"]
    assert len(_headers(group)) == len(model.chain.instances) == 3
    import dearpygui.dearpygui as dpg

    # The first filter cannot move up nor the last down: those buttons are disabled (a no-op click rebuilt the panel).
    usable = {
        label: [dpg.get_item_configuration(b)["enabled"] for b in _buttons(group, label)] for label in ("Up", "Down")
    }
    assert usable == {"Up": [False, True, True], "Down": [True, True, False]}
    path = env["root"] / "saved.json"
    app._act(model.save_settings, path)
    assert json.loads(path.read_text())["postprocessor_chain"] == chain
    app._act(model.clear_filters)
    app.load_settings(path)
    assert model.chain.to_chain() == chain
    assert not model.dirty
    driver.pump(0.5)
    assert not app.dialogs.is_open


@pytest.mark.parametrize("name", ["animator.json", "glitchyholo.json", "redsepia.json"])
def test_reference_presets_load_into_the_widgets(driver, name):
    import dearpygui.dearpygui as dpg

    app = driver.app
    app.load_settings(REFERENCE / name)
    driver.pump(0.3)
    assert not app.dialogs.is_open
    data = json.loads((REFERENCE / name).read_text())
    assert dpg.get_value(app.settings_panel.widgets["target_fps"]) == data.get("target_fps", 25)
    assert len(_headers(app.chain_panel.group)) == len(data["postprocessor_chain"])
    crop = data.get("crop", {"enabled": False})
    assert dpg.get_value(app.w_crop_on) == crop["enabled"]


def test_dropped_files_open_by_kind(driver, env):
    app, model = driver.app, driver.model
    scene = env["root"] / "dropped_scene.png"
    PIL.Image.new("RGBA", (64, 48), (200, 30, 30, 255)).save(scene)
    app.shell.filedrop.inject([scene])
    driver.pump_until(lambda: model.settings["backdrop_path"] == str(scene.resolve()), 10, "the dropped backdrop")
    model.set_setting("backdrop_color", [0.1, 0.1, 0.1, 1.0])
    app.shell.filedrop.inject([REFERENCE / "redsepia.json"])  # unsaved changes: asks first
    driver.pump_until(lambda: app.dialogs.open_kind == "confirm", 10, "the unsaved-changes question")
    app.dialogs.accept()
    driver.pump_until(lambda: model.settings_path == REFERENCE / "redsepia.json", 10, "the dropped settings")


def test_bad_files_give_dialogs(driver, env):
    app = driver.app
    bad_json = env["root"] / "broken.json"
    bad_json.write_text("{ not json")
    seen = len(app.dialogs.history)
    app._act(app.load_settings, bad_json)
    driver.pump_until(lambda: app.dialogs.is_open, 10, "the error dialog")
    title, text = app.dialogs.history[seen]
    assert "broken.json" in text and "not valid JSON" in text
    driver.keys("ctrl+r")  # ignored while the dialog is open
    assert "reloading" not in driver.model.status
    driver.keys("Escape")
    assert not app.dialogs.is_open

    bad_png = env["root"] / "chars" / "broken.png"
    bad_png.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    seen = len(app.dialogs.history)
    app._act(driver.model.load_character, bad_png)
    driver.pump_until(lambda: app.dialogs.is_open, 60, "the character error dialog")
    assert "broken.png" in app.dialogs.history[seen][1]
    assert driver.model.character_path() == env["character"]
    driver.keys("Escape")


def test_hotkeys_talk_pause_help_screenshot_and_quit(driver, env):
    app, model, avatar = driver.app, driver.model, driver.avatar
    driver.keys("ctrl+t")
    assert model.talking
    driver.keys("ctrl+t")
    assert not model.talking
    driver.keys("ctrl+p")
    assert avatar.paused and model.user_paused
    driver.keys("ctrl+p")
    assert not avatar.paused
    driver.keys("F1")
    assert app.dialogs.open_kind == "panel"
    driver.keys("Escape")
    assert not app.dialogs.is_open
    driver.keys("F12")
    assert app.dialogs.open_kind == "file"
    shot = env["root"] / "shot.png"
    app.dialogs.file_dialog.confirm(str(shot))
    driver.pump(0.3)
    rgba = np.asarray(PIL.Image.open(shot))
    assert rgba.shape[2] == 4 and rgba[..., 3].min() == 0  # transparent around the character
    assert "Speech test unavailable" in "".join(str(dpg_value) for dpg_value in _texts(app.controls)) or app._speech_ok

    model.set_setting("talking_fps", 10.0)  # an unsaved change
    _close_window(int(driver.window))  # the window manager's close button
    driver.pump_until(lambda: app.dialogs.open_kind == "confirm", 10, "the unsaved-changes question")
    assert not app.quit_requested
    driver.keys("Escape")  # cancel: keep editing
    assert not app.quit_requested
    model.save_settings(env["root"] / "before_quit.json")
    app.request_quit()
    assert app.quit_requested
    app.quit_requested = False


def _close_window(window: int) -> None:
    """Send WM_DELETE_WINDOW to ``window``, as a window manager's close button does."""
    import ctypes
    import ctypes.util

    x = ctypes.CDLL(ctypes.util.find_library("X11"))
    x.XOpenDisplay.restype = ctypes.c_void_p
    x.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x.XInternAtom.restype = ctypes.c_ulong
    x.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    x.XFlush.argtypes = x.XCloseDisplay.argtypes = [ctypes.c_void_p]

    class ClientMessage(ctypes.Structure):
        _fields_ = [
            ("type", ctypes.c_int),
            ("serial", ctypes.c_ulong),
            ("send_event", ctypes.c_int),
            ("display", ctypes.c_void_p),
            ("window", ctypes.c_ulong),
            ("message_type", ctypes.c_ulong),
            ("format", ctypes.c_int),
            ("data", ctypes.c_long * 5),
        ]

    class XEvent(ctypes.Union):
        _fields_ = [("xclient", ClientMessage), ("pad", ctypes.c_long * 24)]

    display = x.XOpenDisplay(None)
    event = XEvent()
    event.xclient.type = 33  # ClientMessage
    event.xclient.window = window
    event.xclient.message_type = x.XInternAtom(display, b"WM_PROTOCOLS", 0)
    event.xclient.format = 32
    event.xclient.data[0] = x.XInternAtom(display, b"WM_DELETE_WINDOW", 0)
    x.XSendEvent(display, window, 0, 0, ctypes.byref(event))
    x.XFlush(display)
    x.XCloseDisplay(display)


def _texts(parent: int) -> list[str]:
    import dearpygui.dearpygui as dpg

    out = []
    for child in dpg.get_item_children(parent, 1) or []:
        if dpg.get_item_type(child).endswith("mvText"):
            out.append(str(dpg.get_value(child)))
        out += _texts(child)
    return out


def test_each_new_avatar_frame_costs_a_few_window_frames_not_a_burst(driver):
    """A new avatar frame wakes the loop; that wake is not the user's input, so the window draws the frame (and
    its texture swap) and goes back to sleep. Counted as input it drew at 60 Hz for 0.6 s after every avatar
    frame: ~8 software-OpenGL frames per avatar frame, which took the CPU from THA3 (pose 505 -> 725 ms)."""
    app, avatar = driver.app, driver.avatar
    driver.pump(1.0)
    drawn, shown = app.shell.frames, app.frames_shown
    driver.pump(8.0)
    drawn, shown = app.shell.frames - drawn, app.frames_shown - shown
    assert shown >= 2, avatar.last_error
    assert drawn <= 4 * shown + 6, (drawn, shown)  # upload + texture swap (+ overlay), and the 2 s idle look-around


def test_hidden_window_stops_rendering(driver):
    model, avatar = driver.model, driver.avatar
    driver.keys("Escape")
    subprocess.run(["xdotool", "windowunmap", "--sync", driver.window], check=True)
    try:
        driver.pump_until(lambda: model.paused and avatar.paused, 10, "the pause")
        rendered = avatar.renderer.frames_rendered
        driver.pump(4.0)
        assert avatar.renderer.frames_rendered <= rendered + 1  # at most the frame already in progress
    finally:
        subprocess.run(["xdotool", "windowmap", "--sync", driver.window], check=True)
    driver.pump_until(lambda: not avatar.paused, 10, "the resume")
    driver.next_frame("a frame after showing the window again")
