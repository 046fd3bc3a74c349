"""The examples in docs/SERVER.md (curl, WebSocket, Python client) run as written against a real server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from server_helpers import cel_png, server_for_tests  # noqa: E402

SERVER_MD = Path(__file__).resolve().parent.parent / "docs" / "SERVER.md"


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_server_md_examples_run(cpu_poser, example_character_png, tmp_path):
    text = SERVER_MD.read_text(encoding="utf-8")
    bash = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    python = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(bash) >= 6 and len(python) >= 2
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(example_character_png, work / "character.png")
    (work / "character_blush1.png").write_bytes(cel_png())
    with server_for_tests(cpu_poser, tmp_path / "data") as (url, _):
        env = {**os.environ, "SERVER": url, "PYTHONPATH": os.pathsep.join(sys.path)}
        # python3 in the examples: this interpreter (it has Pillow).
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "python3").symlink_to(sys.executable)
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
        script = "set -euo pipefail\n" + "\n".join(bash)
        run = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout + run.stderr
        out = run.stdout
        for block in python:
            r = subprocess.run([sys.executable, "-c", block], cwd=work, env=env, capture_output=True, text=True,
                               timeout=600)  # fmt: skip
            assert r.returncode == 0, r.stdout + r.stderr
            out += r.stdout
    lines = out.splitlines()
    assert lines[0] == '{"status":"ok"}' and '"avatar"' in lines[1] and lines[2].endswith(" filters")
    assert re.search(r"^instance [0-9a-f]{32}$", out, flags=re.M)
    assert lines.count("OK") >= 15, out
    assert "emotion_name: unknown emotion 'glee'" in out
    assert "frame (512, 512)" in out and "joy True" in out and "1 avatar(s)" in out
    assert "--frame\nContent-Type: image/png" in out
    assert "'ok': False" in out and "client frame (512, 512)" in out and "feed frame (512, 512) 10.0" in out
