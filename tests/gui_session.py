"""One app under real input, in its own process (DearPyGui allows one context per process).

``python tests/gui_session.py {pose,settings} {sweep,journey} --out DIR --character PNG [...]`` opens the app on
a display (Xvfb, from the test), runs the scenario on a driver thread and writes ``DIR/report.json``; the pytest
side (tests/test_gui_controls.py, tests/test_gui_journeys.py) reads it. The scenarios live in
tests/gui_scenarios.py; this file only knows how to open, drive and describe each app.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import sys
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

log = logging.getLogger("gui_session")


class PoseEditorSession:
    """The pose editor as the robot sees it."""

    def __init__(self, args: argparse.Namespace):
        from raven_avatar.pose_editor.app import TITLE, create_app

        self.title = TITLE
        self.app = create_app(args.character, device="cpu")
        self.main_window = "pe_main"

    def call(self, fn):
        return self.app.call(fn).result(120)

    def run(self, driver) -> int:
        return self.app.run(lambda _app: driver())

    def state(self) -> dict[str, Any]:
        m, app = self.app.model, self.app
        return {
            "pose": [round(v, 4) for v in m.pose], "cels": {k: round(v, 4) for k, v in m.cels.items()},
            "linked": {c.value: v for c, v in m.linked.items()}, "groups": {c.value: g for c, g in
            app.selected_group.items()}, "output_index": m.output_index, "show_cels": m.show_cels_in_source,
            "background": m.background, "preset": m.preset, "undo": len(getattr(m, "_undo", [])),
            "redo": len(getattr(m, "_redo", [])), "batch": app.batch is not None,
        }  # fmt: skip

    def dialogs_open(self) -> str | None:
        return self.app.dialogs.open_kind

    def screenshot(self, path) -> None:
        self.app.screenshot(path)

    #: Controls that only hold a choice another action reads.
    options = {
        "Export idle loops too [mvCheckbox]":
            "read by Batch export (the journey exports with it)",
    }  # fmt: skip
    texts: dict[str, str] = {}


class SettingsEditorSession:
    """The settings editor as the robot sees it."""

    def __init__(self, args: argparse.Namespace):
        from raven_avatar.settings_editor.__main__ import create_app
        from raven_avatar.settings_editor.app import TITLE

        self.title = TITLE
        self.app = create_app(args.character, args.settings, device="cpu")
        self.main_window = self.app.main

    def call(self, fn):
        return self.app.call(fn).result(120)

    def run(self, driver) -> int:
        from raven_avatar.settings_editor.__main__ import close_app

        try:
            return self.app.run(driver=lambda _app: driver())
        finally:
            close_app(self.app)

    def state(self) -> dict[str, Any]:
        m = self.app.model
        return {
            "settings": json.loads(json.dumps(m.settings, default=str)),
            "chain": json.loads(json.dumps([[i.name, i.enabled, i.params] for i in m.chain.instances], default=str)),
            "chain_n": len(m.chain.instances), "enabled": m.postprocessor_enabled, "emotion": m.emotion,
            "paused": m.paused, "talking": m.link.avatar.is_talking, "view_1to1": m.view_one_to_one,
            "crop_box": m.show_crop_overlay, "backdrop": m.backdrop_version, "recording": m.recorder is not None,
            "data_eyes": getattr(m.link.avatar.animator, "_data_state", None), "status": m.status,
            "presets": sorted(m.chain_presets()),
        }  # fmt: skip

    def dialogs_open(self) -> str | None:
        return self.app.dialogs.open_kind

    def screenshot(self, path) -> None:
        self.app.window_shot(path)

    options = {
        "Capture / with backdrop [mvCheckbox]": "read by Screenshot and Record (the journey records)",
        "Capture / + WebM [mvCheckbox]": "read by Record (the journey records to WebM)",
        "Postprocessor /  (preset name) [mvInputText]": "read by 'Save chain as preset'",
        "Postprocessor /  (filter to add) [mvCombo]": "the filter that 'Add filter' appends",
    }
    texts: dict[str, str] = {}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("app", choices=("pose", "settings"))
    p.add_argument("scenario")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--character", type=Path)
    p.add_argument("--settings", type=Path)
    p.add_argument("--extra", type=Path, help="a folder of files the scenario uses")
    args = p.parse_args()
    faulthandler.enable()  # a crash in native code (GL, DearPyGui, torch) prints every thread's stack
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import gui_scenarios

    session = (PoseEditorSession if args.app == "pose" else SettingsEditorSession)(args)
    report: dict[str, Any] = {"ok": False}

    def driver() -> None:
        try:
            getattr(gui_scenarios, f"{args.app}_{args.scenario}")(session, args, report)
            report["ok"] = True
        except BaseException as e:
            report["error"] = f"{type(e).__name__}: {e}"
            report["traceback"] = traceback.format_exc()
            raise
        finally:
            report["dialogs"] = session.app.dialogs.history
            (args.out / "report.json").write_text(json.dumps(report, indent=1, default=str))

    args.out.mkdir(parents=True, exist_ok=True)
    rc = session.run(driver)
    if not (args.out / "report.json").is_file():  # the loop ended under a scenario still running
        report["error"] = f"the app's loop ended while the scenario was waiting for {gui_scenarios.STEP[0]!r}"
        report["dialogs"] = session.app.dialogs.history
        (args.out / "report.json").write_text(json.dumps(report, indent=1, default=str))
        rc = rc or 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
