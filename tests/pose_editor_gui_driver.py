"""Drives the real pose editor window under Xvfb (run by tests/test_pose_editor_gui.py in a subprocess).

The app runs on the main thread; this scenario runs on the driver thread, calling actions through ``app.call`` (on
the GUI thread) and pressing real keys with xdotool. It writes screenshots and ``report.json`` into ``--out`` and
exits non-zero if a step fails; the pytest side checks the files.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import time
from pathlib import Path

from raven_avatar.pose_editor.app import TITLE, PoseEditorApp, create_app

TIMEOUT = 400.0  # one CPU render takes 2-15 s on a loaded 2-core machine


def wait(app: PoseEditorApp, what: str, predicate, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.call(predicate).result(timeout):
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


def rendered(app: PoseEditorApp) -> bool:
    return app.shown_key == app.state_key() and app.worker.idle


def key(*chords: str) -> None:
    window = subprocess.run(
        ["xdotool", "search", "--name", TITLE], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    subprocess.run(["xdotool", "windowfocus", "--sync", window], check=True)
    for chord in chords:
        subprocess.run(["xdotool", "key", "--window", window, "--delay", "80", chord], check=True)
        time.sleep(0.3)


def shot(app: PoseEditorApp, path: Path) -> None:
    path.unlink(missing_ok=True)
    time.sleep(0.3)  # a few frames, so the last texture upload is drawn
    app.call(lambda: app.screenshot(path)).result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (path.is_file() and path.stat().st_size > 0):
        time.sleep(0.1)
    time.sleep(0.3)


def scenario(app: PoseEditorApp, out: Path, report: dict) -> None:
    m = app.model
    wait(app, "the first render", lambda: rendered(app))
    shot(app, out / "0_start.png")

    app.call(lambda: m.apply_emotion("surprise")).result(30)
    wait(app, "the surprise render", lambda: rendered(app))
    shot(app, out / "1_surprise.png")
    report["after_action"] = app.call(lambda: m.preset).result(30)

    # Real keys: focus the preset list and browse it (surprise is the last emotion); Ctrl+Z undoes.
    key("ctrl+p", "Up")
    wait(app, "Up to select the previous preset", lambda: m.preset == "sadness", 30)
    report["after_up"] = app.call(lambda: m.preset).result(30)
    key("End")
    wait(app, "End to select the last preset", lambda: m.preset == m.preset_names()[-1], 30)
    report["after_end"] = app.call(lambda: m.preset).result(30)
    key("Home")
    wait(app, "Home to select [custom]", lambda: m.preset == "[custom]", 30)
    key("Down", "Down")
    wait(app, "Down twice to select admiration (via [reset])", lambda: m.preset == "admiration", 30)
    key("ctrl+z", "ctrl+z")
    wait(app, "Ctrl+Z twice to go back before [reset]", lambda: m.preset == "[custom]", 30)
    report["after_undo_pose"] = app.call(lambda: list(m.pose)).result(30)
    report["surprise_pose"] = app.call(lambda: m.templates["surprise"].pose_vector().tolist()).result(30)

    # The reference's unreachable lists: Ctrl+1 (eyebrow group) and Ctrl+I (output index), browsed with Down/Home.
    from raven_avatar.engine.pose import Category

    shown = app.call(lambda: app.selected_group[Category.EYEBROW]).result(30)
    key("ctrl+1", "Down")
    wait(app, "Down in the eyebrow group list", lambda: app.selected_group[Category.EYEBROW] != shown, 30)
    report["eyebrow_groups"] = [shown, app.call(lambda: app.selected_group[Category.EYEBROW]).result(30)]
    key("ctrl+i", "Down")
    wait(app, "Down in the output index list", lambda: m.output_index == 1, 30)
    wait(app, "the intermediate output render", lambda: rendered(app))
    key("Home")
    wait(app, "Home in the output index list", lambda: m.output_index == 0, 30)

    # Ctrl+S: the save dialog opens; pick a file in it as the user would, then the files appear.
    app.call(lambda: m.apply_emotion("joy")).result(30)
    wait(app, "the joy render", lambda: rendered(app))
    shot(app, out / "2_joy.png")
    key("ctrl+s")
    wait(app, "the save dialog", lambda: app.dialogs.open_kind == "file", 30)
    app.call(lambda: app.dialogs.submit_file(out / "saved" / "my_joy.png")).result(30)
    wait(app, "the saved files", lambda: (out / "saved" / "my_joy.json").is_file(), 120)
    report["saved_status"] = app.call(lambda: app.model.dirty).result(30)
    report["saved_pose"] = app.call(lambda: list(m.pose)).result(30)
    # Saving over existing files asks first; Enter replaces them.
    before = (out / "saved" / "my_joy.png").stat().st_mtime_ns
    key("ctrl+s")
    wait(app, "the save dialog again", lambda: app.dialogs.open_kind == "file", 30)
    app.call(lambda: app.dialogs.submit_file(out / "saved" / "my_joy.png")).result(30)
    wait(app, "the replace question", lambda: app.dialogs.open_kind == "confirm", 30)
    key("Return")
    wait(app, "the replaced file", lambda: (out / "saved" / "my_joy.png").stat().st_mtime_ns != before, 60)
    report["replace_asked"] = True

    # An edit, a key that must be ignored while a dialog is open, and an error dialog naming the file.
    app.call(lambda: m.set_value("head_x", 0.8)).result(30)
    bad = out / "not_an_image.png"
    bad.write_text("this is not a PNG")
    app.call(lambda: app.open_character(bad)).result(30)
    wait(app, "the error dialog", lambda: app.dialogs.is_open, 30)
    key("ctrl+z")  # ignored: a dialog is open
    report["head_x_while_dialog"] = app.call(lambda: m.value("head_x")).result(30)
    shot(app, out / "3_error.png")
    key("Escape")
    wait(app, "Esc to close the dialog", lambda: not app.dialogs.is_open, 30)

    # Drag and drop: a template JSON (through GLFW's C callback, as a real drop arrives), then two files at once.
    import ctypes

    report["filedrop_installed"] = app.call(lambda: app.filedrop.installed).result(30)
    app.call(lambda: m.apply_emotion("anger")).result(30)
    dropped = str(out / "saved" / "my_joy.json").encode()
    array = (ctypes.c_char_p * 1)(dropped)
    app.filedrop._callback(None, 1, array)
    wait(app, "the dropped template", lambda: m.preset == "[custom]" and m.last_name == "my_joy", 30)
    report["dropped_template_pose"] = app.call(lambda: list(m.pose)).result(30)
    app.filedrop.inject([out / "a.png", out / "b.json"])
    wait(app, "the several-files dialog", lambda: app.dialogs.is_open, 30)
    key("Escape")
    wait(app, "Esc to close it", lambda: not app.dialogs.is_open, 30)

    # F1 help card, closed with Esc.
    key("F1")
    wait(app, "the help card", lambda: app.dialogs.open_kind == "panel", 30)
    shot(app, out / "4_help.png")
    key("Escape")
    wait(app, "the help card to close", lambda: not app.dialogs.is_open, 30)

    # Ctrl+Shift+S: batch export into a folder, cancelled after the first sprites; a summary dialog follows.
    key("ctrl+shift+s")
    wait(app, "the folder dialog", lambda: app.dialogs.open_kind == "file", 30)
    app.call(lambda: app.dialogs.submit_file(out / "batch")).result(30)
    wait(app, "the batch to start", lambda: app.batch is not None, 30)
    wait(app, "the first batch sprites", lambda: app.batch is None or app.batch.done >= 1)
    shot(app, out / "5_batch.png")
    app.call(app.cancel_batch).result(30)
    wait(app, "the batch to end", lambda: app.batch is None)
    report["batch_summary"] = app.call(lambda: app.last_batch.summary()).result(30)
    report["batch_cancelled"] = app.call(lambda: app.last_batch.cancelled).result(30)
    key("Return")
    wait(app, "Enter to close the summary", lambda: not app.dialogs.is_open, 30)

    # The smallest supported window, with the cels shown in the source and a colour background.
    app.call(lambda: m.set_value("blush1", 1.0)).result(30)
    key("ctrl+k", "ctrl+b")
    wait(app, "the cel render", lambda: rendered(app) and m.show_cels_in_source and m.background is not None)
    import dearpygui.dearpygui as dpg

    app.call(lambda: (dpg.set_viewport_width(1366), dpg.set_viewport_height(768))).result(30)
    time.sleep(1.0)
    app.call(app.relayout).result(30)
    shot(app, out / "6_small.png")
    report["title"] = app.call(lambda: dpg.get_viewport_title()).result(30)
    report["dirty_at_end"] = app.call(lambda: m.dirty).result(30)
    # Quitting with unsaved edits asks first; Esc keeps the editor open.
    key("ctrl+q")
    wait(app, "the unsaved-edits question", lambda: app.dialogs.open_kind == "confirm", 30)
    key("Escape")
    wait(app, "Esc to keep editing", lambda: not app.dialogs.is_open, 30)
    report["still_running"] = app.call(lambda: not app._quit).result(30)
    report["dialogs"] = app.call(lambda: list(app.dialogs.history)).result(30)
    # A picture for the README: the default size, an emotion with its blush cel, over the checkerboard.
    app.call(lambda: (dpg.set_viewport_width(1600), dpg.set_viewport_height(940))).result(30)
    app.call(lambda: m.apply_emotion("joy")).result(30)
    app.call(lambda: m.set_value("blush1", 0.8)).result(30)
    key("ctrl+b")
    wait(app, "the README render", lambda: rendered(app) and m.background is None)
    app.call(app.relayout).result(30)
    shot(app, out / "7_readme.png")
    report["ok"] = True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--character", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("raven_avatar.gui.hotkeys").setLevel(logging.DEBUG)
    report: dict = {"ok": False}
    app = create_app(args.character, device="cpu")

    def driver(a: PoseEditorApp) -> None:
        try:
            scenario(a, args.out, report)
        finally:
            (args.out / "report.json").write_text(json.dumps(report, indent=2, default=str))

    return app.run(driver)


if __name__ == "__main__":
    raise SystemExit(main())
