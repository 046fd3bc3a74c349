"""``avatar-render still`` end to end: real weights, real files, bad input never writes anything."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from raven_avatar.cli.render import main


@pytest.mark.slow
def test_still_from_pose_file_writes_a_posed_rgba_png(tmp_path, offline_models, example_character_png):
    pose = tmp_path / "pose.json"
    pose.write_text(json.dumps({"head_x_index": 0.8, "mouth_aaa_index": 1.0}))
    out = tmp_path / "posed.png"
    neutral = tmp_path / "neutral.png"
    assert main(["still", "--character", str(example_character_png), "--pose", str(pose), "--output", str(out),
                 "--device", "cpu"]) == 0  # fmt: skip
    assert main(["still", "--character", str(example_character_png), "--output", str(neutral), "--device", "cpu"]) == 0
    img = Image.open(out)
    assert img.mode == "RGBA" and img.size == (512, 512)
    a, b = np.asarray(img).astype(int), np.asarray(Image.open(neutral)).astype(int)
    src = np.asarray(Image.open(example_character_png).convert("RGBA")).astype(int)
    # The neutral render stays close to the source; the posed one moved the head.
    assert np.abs(b - src).mean() < np.abs(a - src).mean()
    assert np.abs(a - b)[..., 3].sum() > 1000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pose", "{missing}"], "cannot read pose file"),
        (["--pose", "{badjson}"], "not valid JSON"),
        (["--pose", "{list}"], "JSON object"),
        (["--character", "{rgb}"], "alpha"),
        (["--character", "{missing}"], "missing"),
        (["--emotion", "nonexistent_emotion"], "unknown emotion"),
    ],
)
def test_bad_input_exits_nonzero_and_writes_nothing(tmp_path, offline_models, example_character_png, caplog,
                                                     args, message):  # fmt: skip
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    Image.new("RGB", (512, 512), "white").save(tmp_path / "rgb.png")
    files = {"missing": tmp_path / "missing.json", "badjson": tmp_path / "bad.json", "list": tmp_path / "list.json",
             "rgb": tmp_path / "rgb.png"}  # fmt: skip
    args = [a.format(**{k: str(v) for k, v in files.items()}) if "{" in a else a for a in args]
    if "--character" not in args:
        args += ["--character", str(example_character_png)]
    out = tmp_path / "out.png"
    assert main(["still", *args, "--output", str(out), "--device", "cpu"]) == 1
    assert not out.exists()
    assert message in caplog.text


def test_usage_errors(tmp_path):
    assert main(["still", "--pose", "a.json", "--emotion", "joy", "--output", str(tmp_path / "x.png")]) == 2
    assert main(["still", "--output", str(tmp_path / "x.jpg")]) == 2
    r = subprocess.run([sys.executable, "-m", "raven_avatar.cli.render", "still", "--help"], capture_output=True,
                       text=True, check=True)  # fmt: skip
    assert "--character" in r.stdout and "--emotion" in r.stdout
