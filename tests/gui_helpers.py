"""Running real DearPyGui windows in tests: a private Xvfb display (for the pose and settings editor GUI tests)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def xvfb_display(size: str = "1920x1080x24") -> Iterator[str]:
    """Start Xvfb on a free display number; yields the ``DISPLAY`` value. Skips the test when Xvfb is missing."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb xdotool)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", size, "-nolisten", "tcp"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as f:
            number = f.readline().strip()  # Xvfb writes the display number once it is ready
        if not number:
            pytest.fail("Xvfb did not start")
        yield f":{number}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


SESSION = Path(__file__).with_name("gui_session.py")


def run_session(app: str, scenario: str, out: Path, env: dict, *args: str, timeout: float = 1500) -> dict:
    """Run ``app`` ("pose" or "settings") under ``scenario`` in tests/gui_session.py; its report, asserted ok."""
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed")
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, str(SESSION), app, scenario, "--out", str(out), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    (out / "log.txt").write_text(proc.stdout + proc.stderr)
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").is_file() else {}
    assert proc.returncode == 0 and report.get("ok"), (
        f"exit code {proc.returncode}; {report.get('traceback') or report.get('error') or report}\n"
        f"{proc.stderr[-6000:]}"
    )
    return report
