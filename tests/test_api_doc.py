"""The examples in docs/API.md run as written (real THA3 weights, on the CPU here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

API_MD = Path(__file__).resolve().parent.parent / "docs" / "API.md"


@pytest.mark.slow
def test_api_md_example_runs(tha3_models, example_character_png, stable_cache_dir, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("RAVEN_AVATAR_MODELS_DIR", str(tha3_models.parent))
    monkeypatch.setenv("RAVEN_AVATAR_CACHE_DIR", str(stable_cache_dir))
    monkeypatch.setenv("RAVEN_AVATAR_OFFLINE", "1")
    monkeypatch.setenv("RAVEN_AVATAR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", API_MD.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "docs/API.md has no python example"
    for block in blocks:
        exec(compile(block, str(API_MD), "exec"), {"__name__": "api_example"})
    out = capsys.readouterr().out
    assert "now 768 x 768" in out and "frames rendered" in out
    assert "ready: lambda_00" in out  # the first-start example (everything is cached here: no events)
    with Image.open(tmp_path / "surprise.png") as img:
        assert img.mode == "RGBA" and img.size == (512, 512)
