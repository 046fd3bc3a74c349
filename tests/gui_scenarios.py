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


def wait(session, what: str, predicate, timeout: float = TIMEOUT) -> None:
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
        return f"{value}"
    if kind == "mvSelectable":
        return True
    return None


def dispatch(session, options: dict[str, str], view_only: dict[str, str]) -> list[dict[str, Any]]:
    """Every control's callback run through ``dpg.run_callbacks`` with (sender, app_data, user_data) as DearPyGui
    passes them after a real event; each must change the app's state or open a dialog (or be a listed option)."""
    results = []
    items = session.call(lambda: [(p, i, item_type(i)) for p, i in inventory(session.main_window)])
    done: set[str] = set()
    tries: dict[str, int] = {}
    for path, item, kind in items:
        if path in done or kind in ("mvCollapsingHeader", "mvTreeNode"):
            continue
        tries[path] = tries.get(path, 0) + 1
        last_try = tries[path] >= 3 or sum(p == path for p, _, _ in items) <= tries[path]

        def run(item=item, kind=kind) -> dict[str, Any]:
            if not dpg.does_item_exist(item) or not shown(item):
                return {"skipped": True}
            callback = dpg.get_item_callback(item)
            if callback is None:
                return {"effect": "", "detail": "no callback"}
            before = session.state()
            value = _dispatch_value(item, kind)
            if value is not None and kind != "mvSelectable":
                dpg.set_value(item, value)
            dpg.run_callbacks([(callback, item, value, dpg.get_item_user_data(item))])
            effect = "dialog" if session.app.dialogs.is_open else "state" if session.state() != before else ""
            while session.app.dialogs.is_open:
                session.app.dialogs.tick()
                session.app.dialogs.cancel()
            return {"effect": effect}

        try:
            result = session.call(run)
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


def settings_sweep(session, args, report: dict[str, Any]) -> None:
    app = session.app
    wait(session, "the first frame", lambda: app.frames_shown >= 1)
    robot = Robot(session.call, session.title, session.screenshot)
    robot.key("ctrl+p")  # paused, the sweep does not wait behind THA3 frames
    wait(session, "pause", lambda: app.model.paused, 30)
    view_only = {"View / Timing overlay [mvCheckbox]": "the overlay on the view"}
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

    report["sweep"] = _sweep(session, robot, after)
