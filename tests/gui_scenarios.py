"""What the robot does in each app (run by tests/gui_session.py on the driver thread; results go into ``report``).

``*_sweep``: every control through DearPyGui's own callback dispatch, then every control by real input.
``*_journey``: one user's session end to end, mouse and keyboard only (the checks are in the pytest files).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import dearpygui.dearpygui as dpg
from gui_robot import INTERACTIVE, Robot, inventory, item_type, shown, sweep

TIMEOUT = 600.0  # one CPU render takes 1-15 s on a loaded 2-core machine


#: What the scenario waits for now (a session's report names it when the app ends under the scenario).
STEP = [""]


def wait(session, what: str, predicate, timeout: float = TIMEOUT) -> None:
    STEP[0] = what
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if session.call(predicate):
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


def close_dialogs(robot: Robot, session, path: str = "", outcome: Any = None) -> None:
    """Esc until no dialog is open (real keys)."""
    for _ in range(6):
        if not session.call(lambda: session.app.dialogs.is_open):
            return
        robot.key("Escape")
        time.sleep(0.3)


# ------------------------------------------------------------------------------------------- callback dispatch


def _dispatch_value(item: int | str, kind: str) -> Any:
    """A value DearPyGui would hand a callback after a user changed ``item``, different from its current one."""
    value = dpg.get_value(item)
    conf = dpg.get_item_configuration(item)
    if kind == "mvCheckbox":
        return not value
    if kind.startswith("mvSlider") or kind.startswith("mvDrag"):
        low, high = conf.get("min_value", 0.0), conf.get("max_value", 1.0)
        new = low + (high - low) * (0.8 if (value - low) < (high - low) / 2 else 0.2)
        return int(round(new)) if kind.endswith("Int") else float(new)
    if kind == "mvCombo":
        items = list(conf["items"])
        return next((i for i in items if i != value), value)
    if kind == "mvColorEdit":
        return [0.2, 0.5, 0.7, 1.0]
    if kind == "mvInputText":
        return f"{value}x"
    if kind == "mvSelectable":
        return True
    return None


def dispatch(session, options: dict[str, str], view_only: dict[str, str]) -> list[dict[str, Any]]:
    """Every control's callback run through ``dpg.run_callbacks`` with (sender, app_data, user_data) as DearPyGui
    passes them after a real event; each must change the app's state or open a dialog (or be a listed option)."""
    from gui_robot import _ordered

    results = []
    items = session.call(lambda: _ordered(inventory(session.main_window)))  # values before their reset buttons
    done: set[str] = set()
    tries: dict[str, int] = {}
    for path, item, kind in items:
        if path in done or kind in ("mvCollapsingHeader", "mvTreeNode"):
            continue
        tries[path] = tries.get(path, 0) + 1
        last_try = tries[path] >= 3 or sum(p == path for p, _, _ in items) <= tries[path]

        def fire(item: Any, kind: str) -> Any:
            """Run ``item``'s callback as DearPyGui dispatches it; the state before (None: item gone)."""
            if not dpg.does_item_exist(item) or not shown(item):
                return None
            callback = dpg.get_item_callback(item)
            before = session.state()
            if callback is not None:
                value = _dispatch_value(item, kind)
                if value is not None and kind != "mvSelectable":
                    dpg.set_value(item, value)
                dpg.run_callbacks([(callback, item, value, dpg.get_item_user_data(item))])
            return before

        def effect(before: Any, wait_s: float = 3.0) -> str:
            """What the dispatched call did, waiting a moment for work it handed to a thread (an error dialog)."""
            deadline = time.monotonic() + wait_s
            while True:
                found = session.call(lambda: "dialog" if session.app.dialogs.is_open else
                                     "state" if session.state() != before else "")  # fmt: skip
                if found or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            session.call(_close_all)
            return found

        def _close_all() -> None:
            while session.app.dialogs.is_open:
                session.app.dialogs.tick()
                session.app.dialogs.cancel()

        try:
            before = session.call(lambda i=item, k=kind: fire(i, k))
            listed = path in options or path in view_only  # nothing in the state to wait for
            result = {"skipped": True} if before is None else {"effect": effect(before, 0.0 if listed else 3.0)}
            if not result.get("skipped") and not result["effect"] and kind == "mvButton":
                from gui_robot import _value_sibling

                # A reset button with nothing to reset: change the value beside it first, then try again.
                neighbour = session.call(lambda i=item: _value_sibling(i))
                if neighbour is not None:
                    session.call(lambda n=neighbour: fire(n, item_type(n)))
                    effect(None)
                    before = session.call(lambda i=item, k=kind: fire(i, k))
                    result = {"effect": effect(before)} if before is not None else result
        except Exception as e:
            result = {"effect": "", "detail": f"{type(e).__name__}: {e}"}
        if result.get("skipped") or not result["effect"] and not last_try:
            continue  # another instance of this control (another row of the list) may show its effect
        done.add(path)
        if not result["effect"] and path in options:
            result["effect"] = f"option: {options[path]}"
        if not result["effect"] and path in view_only:
            result["effect"] = f"view: {view_only[path]}"
        results.append({"path": path, "kind": kind, **result, "ok": bool(result["effect"])})
    return results


def _sweep(session, robot: Robot, after=None) -> dict[str, Any]:
    report = sweep(robot, session.main_window, session.state, dialogs_open=session.dialogs_open,
                   screenshot=session.screenshot, options=session.options, texts=session.texts,
                   after=after or (lambda p, o: close_dialogs(robot, session)))  # fmt: skip
    return asdict(report)


# ----------------------------------------------------------------------------------------------- pose editor


def pose_rendered(session) -> bool:
    app = session.app
    return app.shown_key == app.state_key() and app.worker.idle


def pose_sweep(session, args, report: dict[str, Any]) -> None:
    wait(session, "the first render", lambda: pose_rendered(session))
    robot = Robot(session.call, session.title, session.screenshot)
    report["interactive_types"] = sorted(INTERACTIVE)
    report["dispatch"] = dispatch(session, session.options, {"Checkerboard [Ctrl+B] [mvCheckbox]": "the views"})
    session.call(lambda: session.app.model.apply_emotion("[reset]"))
    report["sweep"] = _sweep(session, robot)


# ----------------------------------------------------------------------------------------------- settings editor


def keep_three_filters(session) -> None:
    """At least three filters in the chain, so that every instance control (Up is disabled on the first, Down on
    the last) exists for the sweep after a preset, Clear or Del shrank the chain."""
    app = session.app

    def top_up() -> None:
        if len(app.model.chain.instances) < 3:
            for name in ("bloom", "vignetting", "scanlines")[len(app.model.chain.instances) :]:
                app.model.add_filter(name)
            app.chain_panel.rebuild()

    session.call(top_up)


def settings_sweep(session, args, report: dict[str, Any]) -> None:
    app = session.app
    wait(session, "the first frame", lambda: app.frames_shown >= 1)
    robot = Robot(session.call, session.title, session.screenshot)
    robot.key("ctrl+p")  # paused, the sweep does not wait behind THA3 frames
    wait(session, "pause", lambda: app.model.paused, 30)
    view_only = {
        "View / Timing overlay [mvCheckbox]": "the overlay on the view",
        "Fullscreen [F11] [mvButton]": "the window's size (the sweep checks its pixels)",
    }
    report["dispatch"] = dispatch(session, session.options, view_only)
    if not session.call(lambda: app.model.paused):
        session.call(app.toggle_pause)

    def after(path: str, outcome) -> None:
        close_dialogs(robot, session)
        if path.startswith("Fullscreen"):
            robot.key("F11")  # back to the window
        if not session.call(lambda: app.model.paused):
            robot.key("ctrl+p")
        if session.call(lambda: app.model.recorder is not None):
            session.call(app.toggle_recording)
        keep_three_filters(session)

    report["sweep"] = _sweep(session, robot, after)


# ------------------------------------------------------------------------------------------------- journeys


def region(robot: Robot, item: int | str, pixels) -> Any:
    """The part of a window screenshot covered by ``item``."""
    x0, y0, x1, y1 = robot.rect(item)
    ox, oy = robot.origin()
    return pixels[int(y0 - oy) : int(y1 - oy), int(x0 - ox) : int(x1 - ox), :3].astype(int)


def shot(robot: Robot, session) -> Any:
    from gui_robot import window_pixels

    robot.park()
    return window_pixels(session.call, session.screenshot)


def type_path(robot: Robot, session, path: Any, kind: str = "file") -> None:
    """With a file dialog open: type an absolute path into its name field and press Enter."""
    wait(session, f"the {kind} dialog", lambda: session.app.dialogs.open_kind == "file", 60)
    robot.key("ctrl+a")
    robot.type(str(path))
    robot.key("Return")


def pose_journey(session, args, report: dict[str, Any]) -> None:
    from raven_avatar.engine.pose import Category

    app, m = session.app, session.app.model
    win = session.main_window
    wait(session, "the first render", lambda: pose_rendered(session))
    robot = Robot(session.call, session.title, session.screenshot)
    out = args.out

    # Eyebrows: Link L/R on, a group picked in the combo, its L slider dragged: both sides move together.
    robot.operate(robot.find(win, "Link L/R (eyebrow) [mvCheckbox]"), "mvCheckbox")
    robot.pick(robot.find(win, " (eyebrow group) [mvCombo]"), "eyebrow_raised")
    wait(session, "the eyebrow group", lambda: app.selected_group[Category.EYEBROW] == "eyebrow_raised", 30)
    robot.operate(robot.find(win, "L (eyebrow) [mvSliderFloat]"), "mvSliderFloat")
    wait(session, "the eyebrow edit", lambda: m.pose[_index("eyebrow_raised_left_index")] > 0, 30)
    report["eyebrows"] = session.call(lambda: [m.pose[_index("eyebrow_raised_left_index")],
                                               m.pose[_index("eyebrow_raised_right_index")]])  # fmt: skip
    robot.pick(robot.find(win, " (mouth group) [mvCombo]"), "mouth_ooo")
    wait(session, "the mouth group", lambda: app.selected_group[Category.MOUTH] == "mouth_ooo", 30)
    report["mouth_group"] = session.call(lambda: app.selected_group[Category.MOUTH])

    # A head slider and a cel slider change the rendered output.
    wait(session, "the eyebrow render", lambda: pose_rendered(session))
    before = region(robot, app.output_view.image, shot(robot, session))
    robot.operate(robot.find(win, "head_x [mvSliderFloat]"), "mvSliderFloat")
    robot.operate(robot.find(win, "blush1 [mvSliderFloat]"), "mvSliderFloat")
    wait(session, "the head and blush edits", lambda: m.cels["blush1"] > 0 and abs(m.pose[_index("head_x_index")]) > 0)
    wait(session, "their render", lambda: pose_rendered(session))
    after = region(robot, app.output_view.image, shot(robot, session))
    report["output_change"] = float(abs(before - after).mean())
    blush = session.call(lambda: m.cels["blush1"])

    # Undo / redo with the keys.
    robot.key("ctrl+z")
    wait(session, "undo", lambda: m.cels["blush1"] == 0, 30)
    robot.key("ctrl+shift+z")
    wait(session, "redo", lambda: m.cels["blush1"] == blush, 30)
    report["undo_redo"] = True

    # Ctrl+B: the checkerboard behind the views off (the plain background colour shows), then on again; the views
    # show it once the render worker has composited the new background.
    checker = region(robot, app.output_view.image, shot(robot, session))
    robot.key("ctrl+b")
    wait(session, "the plain-background render", lambda: m.background is not None and pose_rendered(session), 60)
    plain = region(robot, app.output_view.image, shot(robot, session))
    robot.key("ctrl+b")
    wait(session, "the checkerboard render", lambda: m.background is None and pose_rendered(session), 60)
    again = region(robot, app.output_view.image, shot(robot, session))
    # a transparent corner: how much each colour channel varies there (the squares), the largest of the three
    report["corner_std"] = [float(im[:48, :48].std(axis=(0, 1)).max()) for im in (checker, plain, again)]

    # Ctrl+O takes a JPEG as it is (the old dialog renamed it to .png); the engine says why it cannot be used.
    from PIL import Image

    jpeg = out / "photo.jpg"
    Image.new("RGB", (512, 512), (200, 120, 90)).save(jpeg)
    robot.key("ctrl+o")
    type_path(robot, session, jpeg)
    wait(session, "the JPEG's error", lambda: app.dialogs.open_kind == "message", 60)
    report["jpeg_error"] = session.call(lambda: app.dialogs.history[-1])
    robot.key("Escape")
    wait(session, "the error to close", lambda: not app.dialogs.is_open, 30)

    # Save through the file dialog, typing an absolute path; the files appear.
    saved = out / "saved" / "journey.png"
    saved.parent.mkdir(parents=True, exist_ok=True)
    robot.key("ctrl+s")
    type_path(robot, session, saved)
    wait(session, "the saved files", lambda: saved.with_suffix(".json").is_file() and saved.is_file(), 300)
    report["saved_pose"] = session.call(lambda: list(m.pose))

    # Change something, then load the saved template back (Ctrl+Shift+O, typed path).
    robot.operate(robot.find(win, "head_y [mvSliderFloat]"), "mvSliderFloat")
    wait(
        session,
        "the head_y edit",
        lambda: m.pose[_index("head_y_index")] != report["saved_pose"][_index("head_y_index")],
        30,
    )
    robot.key("ctrl+shift+o")
    type_path(robot, session, saved.with_suffix(".json"))
    wait(session, "the loaded template", lambda: list(m.pose) == report["saved_pose"], 60)
    report["loaded_pose"] = session.call(lambda: list(m.pose))

    # Batch export into a new folder typed in the dialog; cancelled with the Cancel button after a few sprites.
    batch = out / "batch"
    robot.key("ctrl+shift+s")
    type_path(robot, session, batch, "folder")
    wait(session, "the batch export", lambda: app.batch is not None, 60)
    wait(session, "two sprites", lambda: len(list(batch.glob("*.png"))) >= 2, 600)
    robot.settle(2)
    robot.operate(robot.find(win, "Cancel [mvButton]"), "mvButton")
    wait(session, "the batch summary", lambda: app.batch is None and app.dialogs.open_kind == "message", 600)
    report["batch_summary"] = session.call(lambda: app.last_batch.summary() if app.last_batch else "")
    robot.key("Return")
    wait(session, "the summary to close", lambda: not app.dialogs.is_open, 30)

    # An unsaved edit, then quit: the question appears; Enter quits without saving.
    robot.operate(robot.find(win, "body_y [mvSliderFloat]"), "mvSliderFloat")
    wait(session, "the body edit", lambda: m.dirty, 30)
    robot.key("ctrl+q")
    wait(session, "the unsaved-edits question", lambda: app.dialogs.open_kind == "confirm", 30)
    report["quit_question"] = session.call(lambda: app.dialogs.history[-1][0])
    robot.key("Return", settle=False)  # quits: the window may be gone before another frame
    deadline = time.monotonic() + 30
    while not app._quit and time.monotonic() < deadline:  # the loop ends now: no more calls to the GUI thread
        time.sleep(0.1)
    report["quit"] = app._quit


def _index(key: str) -> int:
    from raven_avatar.engine.pose import KEYS

    return list(KEYS).index(key)


def settings_journey(session, args, report: dict[str, Any]) -> None:
    from PIL import Image, ImageDraw

    app, m = session.app, session.app.model
    win = session.main_window
    extra = args.extra
    wait(session, "the first frame", lambda: app.frames_shown >= 1)
    robot = Robot(session.call, session.title, session.screenshot)

    # Load the test character (Ctrl+O, its path typed).
    character = extra / "character" / "tester.png"
    robot.key("ctrl+o")
    type_path(robot, session, character)
    wait(session, "the character", lambda: m.character_path().name == "tester.png", 120)
    report["character"] = session.call(lambda: m.character_report())

    # Emotions by keyboard: Ctrl+E, then Down twice.
    robot.key("ctrl+e", "Down")
    first = session.call(lambda: m.emotion)
    robot.key("Down")
    wait(session, "the second emotion", lambda: m.emotion != first, 30)
    report["emotions"] = [first, session.call(lambda: m.emotion)]

    # A settings file with one unknown filter: the rest applies, the problem is shown.
    robot.key("ctrl+shift+a")
    wait(session, "the settings dialog (or the discard question)", lambda: app.dialogs.open_kind is not None, 30)
    if session.call(lambda: app.dialogs.open_kind) == "confirm":
        robot.key("Return")
    type_path(robot, session, extra / "one_bad_filter.json")
    wait(session, "the settings problems", lambda: app.dialogs.open_kind == "message", 120)
    report["settings_problem"] = session.call(lambda: app.dialogs.history[-1])
    report["chain_after_load"] = session.call(lambda: [n for n, _ in m.chain.to_chain()])
    robot.key("Escape")

    # "Say or feel": a line typed into the box, Enter; the avatar takes its emotion (a tiny random classifier).
    box = robot.find(win, "Say or feel /  (say or feel) [mvInputText]")
    robot.operate(box, "mvInputText", "I am so happy, thank you!")
    wait(session, "the felt emotion", lambda: m.feeling is not None, 120)
    report["feeling"] = session.call(lambda: [m.feeling[0], m.emotion, dpg.get_value(app.feel_text)])

    # The upscaler with the mouse: the factor slider, then the Mode combo; the frames grow.
    size0 = session.call(lambda: (m.frame.width, m.frame.height))
    robot.operate(robot.find(win, "Upscaler / Upscale [mvSliderFloat]"), "mvSliderFloat")
    robot.pick(robot.find(win, "Upscaler / Mode [mvCombo]"), "Bicubic")
    wait(session, "the bicubic setting", lambda: m.settings["upscale_quality"] == "bicubic", 60)
    wait(session, "a larger frame", lambda: m.frame is not None and m.frame.width > size0[0], 300)
    report["sizes"] = [size0, session.call(lambda: (m.frame.width, m.frame.height))]
    report["upscale_quality"] = session.call(lambda: m.settings["upscale_quality"])

    # A backdrop that is not an image: an error dialog, the old backdrop kept, the app alive.
    backdrop0 = session.call(lambda: m.settings.get("backdrop_path"))
    robot.key("ctrl+b")
    type_path(robot, session, extra / "not_an_image.png")
    wait(session, "the backdrop error", lambda: app.dialogs.open_kind == "message", 60)
    report["backdrop_error"] = session.call(lambda: app.dialogs.history[-1])
    robot.key("Escape")
    report["backdrop_kept"] = session.call(lambda: m.settings.get("backdrop_path")) == backdrop0

    # Pause: the last frame stays on screen.
    view = app.view_child
    live = region(robot, view, shot(robot, session))
    robot.key("ctrl+p")
    wait(session, "pause", lambda: m.paused, 30)
    paused = region(robot, view, shot(robot, session))
    report["paused_view_diff"] = float(abs(live - paused).mean())
    report["paused_view_std"] = float(paused.std())
    robot.key("ctrl+p")
    wait(session, "resume", lambda: not m.paused, 30)

    # Ctrl+R after the PNG changed on disk: a green patch over the face shows in the next frames.
    with Image.open(character) as im:
        edited = im.convert("RGBA")
    ImageDraw.Draw(edited).rectangle((200, 60, 312, 110), fill=(0, 255, 0, 255))
    edited.save(character)
    index = session.call(lambda: m.frame.index)
    robot.key("ctrl+r")
    wait(session, "a frame after the reload", lambda: m.frame.index > index + 1, 300)
    # The reload is prepared on a worker while frames of the old image keep coming: look for a while.
    deadline = time.monotonic() + 120
    while (share := session.call(lambda: _green_share(m.frame))) <= 0.05 and time.monotonic() < deadline:
        time.sleep(0.5)
    report["green_after_reload"] = share

    # Record 3 s to WebM: "+ WebM", Record..., a folder typed, Stop; the encode shows its progress.
    robot.operate(robot.find(win, "Capture / + WebM [mvCheckbox]"), "mvCheckbox")
    robot.operate(robot.find(win, "Capture / Record... [mvButton]"), "mvButton")
    type_path(robot, session, extra / "recordings", "folder")
    wait(session, "the recording", lambda: m.recorder is not None, 60)
    time.sleep(3)
    wait(session, "two recorded frames", lambda: m.recorder.count >= 2, 300)
    robot.operate(robot.find(win, "Capture / Stop recording [mvButton]"), "mvButton")
    seen = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:  # until the recording stopped and its encode is done, watching the bar
        state = session.call(lambda: (m.recorder is not None or m.encoding is not None,
                                      dpg.is_item_shown(app.encode_row),
                                      dpg.get_item_configuration(app.encode_bar)["overlay"]))  # fmt: skip
        seen.append(state)
        if not state[0]:
            break
    report["encode_progress"] = sorted({s[2] for s in seen if s[1]})
    report["recordings"] = [str(p.relative_to(extra)) for p in sorted((extra / "recordings").rglob("*"))
                            if p.suffix in (".json", ".webm")]  # fmt: skip

    # Save the settings under a typed name, change one, load them back.
    saved = extra / "saved_settings.json"
    robot.key("ctrl+shift+s")
    type_path(robot, session, saved)
    wait(session, "the saved settings", lambda: saved.is_file(), 60)
    report["saved_settings"] = session.call(lambda: {k: m.settings[k] for k in ("upscale", "upscale_quality")})
    robot.pick(robot.find(win, "Upscaler / Mode [mvCombo]"), "Bilinear")
    wait(session, "bilinear", lambda: m.settings["upscale_quality"] == "bilinear", 60)
    robot.key("ctrl+shift+a")
    wait(session, "the discard question", lambda: app.dialogs.open_kind == "confirm", 30)
    robot.key("Return")
    type_path(robot, session, saved)
    wait(session, "the reloaded settings", lambda: m.settings["upscale_quality"] == "bicubic", 60)
    report["reloaded_settings"] = session.call(lambda: {k: m.settings[k] for k in ("upscale", "upscale_quality")})


def _green_share(frame) -> float:
    """Share of opaque pixels in the upper middle of the frame that are strongly green."""
    import numpy as np

    rgba = np.asarray(frame.rgba_f32, dtype=np.float32).reshape(frame.height, frame.width, 4)
    h, w = rgba.shape[:2]
    patch = rgba[int(h * 0.05) : int(h * 0.3), int(w * 0.35) : int(w * 0.65)]
    green = (patch[..., 1] > 0.6) & (patch[..., 0] < 0.4) & (patch[..., 2] < 0.4) & (patch[..., 3] > 0.5)
    return float(green.mean())
