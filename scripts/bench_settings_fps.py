"""Frames per second the settings editor shows on this machine (issue 16: ">= 2 FPS of idle animation on the CPU").

    python scripts/bench_settings_fps.py [--seconds 60] [--warmup 20] [--device cpu] [--character PNG] [--headless]

Opens the settings editor on a private Xvfb display (1366x768) with its default settings (idle animation: blinks,
breathing, head sway; the default postprocessor chain), waits for the first frame plus ``--warmup`` seconds, then
counts the new avatar frames the window put on screen during ``--seconds``. Prints that rate next to the engine's
own FPS figure, the CPU backend in use, the median per-stage times and how many frames needed which THA3 stages
(full / face / body / none: what stage reuse saved). No speech, no emotion changes.
``--headless``: the same engine (settings editor defaults, each frame taken as soon as it is published) without a
window, for machines without X (the GPU host); it shows what the GUI's own drawing costs by comparison.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from screenshots import xvfb  # noqa: E402


def measure(args: argparse.Namespace) -> dict:
    from raven_avatar.settings_editor.__main__ import close_app, create_app

    app = create_app(args.character, None, device=args.device, size=(1366, 768))
    result: dict = {}
    tally = _stage_tally(app.model.link.avatar)

    def driver(_app) -> None:
        deadline = time.monotonic() + 900
        while app.call(lambda: app.frames_shown).result(60) < 1:
            if time.monotonic() > deadline:
                raise TimeoutError("no frame within 15 minutes")
            time.sleep(0.2)
        time.sleep(args.warmup)
        shown0, drawn0 = app.call(lambda: (app.frames_shown, app.shell.frames)).result(60)
        tally.clear()
        t0 = time.monotonic()
        stats = []
        while time.monotonic() - t0 < args.seconds:
            time.sleep(1.0)
            stats.append(app.call(lambda: dict(app.model.link.stats)).result(60))
        shown1, drawn1 = app.call(lambda: (app.frames_shown, app.shell.frames)).result(60)
        elapsed = time.monotonic() - t0
        shown = (shown1 - shown0) / elapsed
        result["gui_fps"] = (drawn1 - drawn0) / elapsed
        result.update(_summary(shown, stats, getattr(app.model.link.avatar.poser, "backend", "?")))
        result["stages"] = dict(tally)

    try:
        app.run(driver=driver)
    finally:
        close_app(app)
    return result


def measure_headless(args: argparse.Namespace) -> dict:
    from raven_avatar.engine import Avatar
    from raven_avatar.engine.settings import load_settings

    settings, _ = load_settings(None)  # what the settings editor starts with
    taken = []
    with Avatar(args.character, settings, device=args.device) as avatar:
        avatar.add_frame_listener(lambda: taken.append(avatar.latest_frame().index))
        tally = _stage_tally(avatar)
        avatar.start()
        if avatar.wait_frame(timeout=900) is None:
            raise TimeoutError("no frame within 15 minutes")
        time.sleep(args.warmup)
        tally.clear()
        n0, t0 = len(taken), time.monotonic()
        stats = []
        while time.monotonic() - t0 < args.seconds:
            time.sleep(1.0)
            stats.append(dict(avatar.stats))
        shown = (len(taken) - n0) / (time.monotonic() - t0)
        backend = getattr(avatar.poser, "backend", "?")
    return {**_summary(shown, stats, backend), "stages": dict(tally)}


def _stage_tally(avatar) -> collections.Counter:
    """Counts, per published frame, the THA3 stages it ran (the renderer's ``pose_stages`` stat)."""
    tally: collections.Counter = collections.Counter()
    avatar.add_frame_listener(lambda: tally.update([str(avatar.stats.get("pose_stages"))]))
    return tally


def _summary(shown_fps: float, stats: list[dict], backend: str) -> dict:
    skip = {"fps", "target_fps", "frames", "errors", "paused"}
    keys = [k for k, v in stats[-1].items() if k not in skip and isinstance(v, float)]
    return {
        "shown_fps": shown_fps,
        "engine_fps": statistics.median(float(s.get("fps", 0.0)) for s in stats),
        "stage_ms": {k: statistics.median(float(s.get(k, 0.0)) for s in stats) for k in keys},
        "backend": backend,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--warmup", type=float, default=20.0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--character", type=Path)
    p.add_argument("--headless", action="store_true", help="the engine alone, no window (no X needed)")
    args = p.parse_args()
    if args.headless:
        r = measure_headless(args)
    else:
        with xvfb(1366, 768) as display:
            os.environ["DISPLAY"] = display
            r = measure(args)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"affinity {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"backend: {r['backend']}  device: {args.device}  measured over {args.seconds:g} s")
    if "gui_fps" in r:
        print(f"GUI frames drawn: {r['gui_fps']:.2f} per second")
    what = "taken" if args.headless else "shown by the window"
    print(f"frames {what}: {r['shown_fps']:.2f} FPS   engine's FPS (median): {r['engine_fps']:.2f}")
    for k, v in sorted(r["stage_ms"].items()):
        print(f"  {k:12} {v:9.1f} ms")
    print("THA3 stages per frame: " + ", ".join(f"{k} {n}" for k, n in sorted(r["stages"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
