"""CPU used by the apps' GUI loops when nothing changes, under Xvfb (the figure in docs/PERFORMANCE.md, "GUI loop").

    python scripts/bench_gui_idle.py [--seconds 20] [--settle 90] [--character PNG] [--calls 40] [--wake-only]

Starts each app on a private Xvfb display, waits ``--settle`` seconds for it to load and render, then samples
/proc (what ``ps`` reads) for ``--seconds``: the main (GUI) thread, Mesa's llvmpipe threads and the whole process,
in % of one core. Cases: pose editor idle; settings editor paused (Ctrl+P); settings editor animating (the render
thread's THA3 work shows in the process total, not in the GUI thread).

Then the wake-up latency: the settings editor in this process, paused, and a worker thread asking the GUI thread
for ``--calls`` calls in a row (what a finished render or a new avatar frame does through ``glfwPostEmptyEvent``):
the median time until each is answered, next to the time DearPyGui spends drawing a frame. A lost wake-up shows
as answers taking up to the loop's idle timeout (2 s) instead of about one frame.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from screenshots import xvfb  # noqa: E402


def thread_ticks(pid: int) -> dict[str, int]:
    """CPU ticks per thread group: MAIN (the GUI thread), llvmpipe (Mesa), other; from /proc/PID/task/*/stat."""
    out = {"MAIN": 0, "llvmpipe": 0, "other": 0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        key = "MAIN" if task.name == str(pid) else "llvmpipe" if name.startswith("llvmpipe") else "other"
        out[key] += ticks
    return out


def sample(pid: int, seconds: float) -> dict[str, float]:
    hz = os.sysconf("SC_CLK_TCK")
    a = thread_ticks(pid)
    time.sleep(seconds)
    b = thread_ticks(pid)
    usage = {k: 100.0 * (b[k] - a[k]) / (hz * seconds) for k in a}
    usage["process"] = sum(usage.values())
    return usage


def wake_latency(calls: int, character: Path | None) -> tuple[float, float]:
    """(median ms until a worker's call is answered, median ms of one DearPyGui frame), settings editor paused."""
    import dearpygui.dearpygui as dpg

    from raven_avatar.gui import shell
    from raven_avatar.settings_editor.__main__ import close_app, create_app

    drawn: list[float] = []
    render = dpg.render_dearpygui_frame

    def timed_render() -> None:
        t = time.perf_counter()
        render()
        drawn.append(time.perf_counter() - t)

    shell.dpg.render_dearpygui_frame = timed_render  # the shell looks the function up on the module each frame
    app = create_app(character, None, device="cpu", size=(1366, 768))
    answers: list[float] = []

    def driver(_app) -> None:
        while app.call(lambda: app.frames_shown).result(900) < 1:
            time.sleep(0.2)
        app.call(app.toggle_pause).result(60)
        time.sleep(3.0)
        del drawn[:]
        for _ in range(calls):
            t = time.perf_counter()
            app.call(lambda: None).result(60)
            answers.append(time.perf_counter() - t)

    try:
        app.run(driver=driver)
    finally:
        close_app(app)
        shell.dpg.render_dearpygui_frame = render
    return 1000 * statistics.median(answers), 1000 * statistics.median(drawn)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--settle", type=float, default=90.0)
    p.add_argument("--character", type=Path)
    p.add_argument("--calls", type=int, default=40, help="calls for the wake-up latency (0: skip it)")
    p.add_argument("--wake-only", action="store_true", help="only the wake-up latency (no CPU sampling)")
    args = p.parse_args()
    extra = ["--character", str(args.character)] if args.character else []
    rows = []
    with xvfb(1366, 768) as display:
        env = {**os.environ, "DISPLAY": display}
        apps = () if args.wake_only else (("raven_avatar.pose_editor", "pose editor, idle"),
                                          ("raven_avatar.settings_editor", "settings editor"))  # fmt: skip
        for module, label in apps:
            proc = subprocess.Popen([sys.executable, "-m", module, "--device", "cpu", *extra], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            try:
                time.sleep(args.settle)
                if module.endswith("settings_editor"):
                    rows.append((f"{label}, animating (CPU THA3)", sample(proc.pid, args.seconds)))
                    window = subprocess.run(["xdotool", "search", "--name", "settings editor"], env=env,
                                            capture_output=True, text=True).stdout.split()[0]  # fmt: skip
                    subprocess.run(["xdotool", "key", "--window", window, "ctrl+p"], env=env, check=True)
                    time.sleep(5)
                    rows.append((f"{label}, paused", sample(proc.pid, args.seconds)))
                else:
                    rows.append((label, sample(proc.pid, args.seconds)))
            finally:
                proc.terminate()
                proc.wait(30)
        if args.calls:
            os.environ["DISPLAY"] = display
            answer_ms, frame_ms = wake_latency(args.calls, args.character)
    if rows:
        print(f"{'case':44} {'GUI thread':>10} {'llvmpipe':>9} {'other':>7} {'process':>8}   (% of one core)")
    for label, u in rows:
        print(f"{label:44} {u['MAIN']:10.1f} {u['llvmpipe']:9.1f} {u['other']:7.1f} {u['process']:8.1f}")
    if args.calls:
        print(
            f"wake-up: a worker's call answered after {answer_ms:.1f} ms (median of {args.calls}); "
            f"one DearPyGui frame {frame_ms:.1f} ms (median)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
