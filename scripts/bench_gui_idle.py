"""CPU used by the apps' GUI loops when nothing changes, under Xvfb (the figure in docs/PERFORMANCE.md, "GUI loop").

    python scripts/bench_gui_idle.py [--seconds 20] [--settle 90] [--character PNG]

Starts each app on a private Xvfb display, waits ``--settle`` seconds for it to load and render, then samples
/proc (what ``ps`` reads) for ``--seconds``: the main (GUI) thread, Mesa's llvmpipe threads and the whole process,
in % of one core. Cases: pose editor idle; settings editor paused (Ctrl+P); settings editor animating (the render
thread's THA3 work shows in the process total, not in the GUI thread).
"""

from __future__ import annotations

import argparse
import os
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--settle", type=float, default=90.0)
    p.add_argument("--character", type=Path)
    args = p.parse_args()
    extra = ["--character", str(args.character)] if args.character else []
    rows = []
    with xvfb(1366, 768) as display:
        env = {**os.environ, "DISPLAY": display}
        for module, label in (("raven_avatar.pose_editor", "pose editor, idle"),
                              ("raven_avatar.settings_editor", "settings editor")):  # fmt: skip
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
    print(f"{'case':44} {'GUI thread':>10} {'llvmpipe':>9} {'other':>7} {'process':>8}   (% of one core)")
    for label, u in rows:
        print(f"{label:44} {u['MAIN']:10.1f} {u['llvmpipe']:9.1f} {u['other']:7.1f} {u['process']:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
