"""The real pose editor window under Xvfb, driven by tests/pose_editor_gui_driver.py (actions + xdotool keys)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from raven_avatar.engine.emotions import parse_template_file

DRIVER = Path(__file__).with_name("pose_editor_gui_driver.py")


def make_character(folder: Path, base_png: Path) -> Path:
    """The THA3 example character plus a blush cel (two pink ellipses on the cheeks)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tester.png"
    shutil.copy(base_png, path)
    cel = Image.new("RGBA", (512, 512), (0, 0, 0, 0))
    draw = ImageDraw.Draw(cel)
    for cx in (233, 290):
        draw.ellipse((cx - 18, 152, cx + 18, 164), fill=(255, 60, 90, 160))
    cel.save(folder / "tester_blush1.png")
    return path


def load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


@pytest.mark.gui
@pytest.mark.slow
def test_pose_editor_window(tmp_path, xvfb_env, example_character_png, stable_cache_dir):
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed")
    character = make_character(tmp_path / "character", example_character_png)
    out = tmp_path / "out"
    out.mkdir()
    env = {**xvfb_env, "RAVEN_AVATAR_DATA_DIR": str(tmp_path / "data"),
           "RAVEN_AVATAR_CACHE_DIR": str(stable_cache_dir), "RAVEN_AVATAR_OFFLINE": "1"}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(DRIVER), "--character", str(character), "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").is_file() else {}
    assert proc.returncode == 0 and report.get("ok"), f"{report}\n{proc.stderr[-4000:]}"

    # Keyboard: Down/End browse the focused preset list, Ctrl+Z undoes; keys are ignored under a dialog.
    assert report["after_action"] == "surprise"
    assert (report["after_up"], report["after_end"]) == ("sadness", "surprise")
    assert report["eyebrow_groups"][0] != report["eyebrow_groups"][1]
    assert report["after_undo_pose"] == pytest.approx(report["surprise_pose"])
    assert report["head_x_while_dialog"] == pytest.approx(0.8)
    errors = [text for title, text in report["dialogs"] if title == "Error"]
    assert any("not_an_image.png" in text and "cannot read" in text for text in errors)

    # Ctrl+S wrote the posed PNG and its template, which load back.
    saved_png, saved_json = out / "saved" / "my_joy.png", out / "saved" / "my_joy.json"
    with Image.open(saved_png) as im:
        assert im.mode == "RGBA" and im.size == (512, 512)
    assert list(parse_template_file(saved_json)) == ["my_joy"]
    assert report["saved_status"] is False  # not dirty after saving
    assert report["replace_asked"] and any(title == "Replace files?" for title, _ in report["dialogs"])

    # Ctrl+Shift+S exported sprites until cancelled, with a summary.
    assert report["batch_cancelled"] is True and "cancelled" in report["batch_summary"]
    exported = sorted((out / "batch").glob("*.png"))
    assert exported and all(parse_template_file(p.with_suffix(".json")) for p in exported if p.stem[0] != "_")

    # Drag and drop: a dropped template is applied; several files at once are refused with a dialog.
    assert report["dropped_template_pose"] == pytest.approx(report["saved_pose"])
    assert any(title == "Cannot open several files at once" for title, _ in report["dialogs"])

    # Screenshots change with what is shown: a new emotion changes the output panel.
    start, surprise, joy = (load(out / f) for f in ("0_start.png", "1_surprise.png", "2_joy.png"))
    assert start.shape == surprise.shape
    assert np.abs(start - surprise).mean() > 0.2 and np.abs(surprise - joy).mean() > 0.2
    assert load(out / "6_small.png").shape[:2] == (768, 1366)
    assert report["dirty_at_end"] and report["still_running"]
    assert any(title == "Unsaved edits" for title, _ in report["dialogs"])
    assert "tester *" in report["title"] and "THA3" in report["title"] and "CPU" in report["title"]
