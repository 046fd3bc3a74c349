"""Animation export: APNG/GIF/PNG-sequence/sprite-sheet writers, ``avatar-render clip`` and ``still --settings``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageSequence

from raven_avatar.cli.clip import _output_kind
from raven_avatar.cli.render import main
from raven_avatar.engine import export


def _frames(n: int, size: tuple[int, int] = (24, 32)) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    frames = []
    for k in range(n):
        f = rng.integers(0, 256, (*size, 4), dtype=np.uint8)
        f[..., 3] = 255
        f[: 4 + k, :, 3] = 0  # a transparent band that grows: frames must not show the previous one through it
        frames.append(f)
    return frames


def test_frame_durations_do_not_drift():
    assert export.frame_durations(3, 30) == [33, 34, 33]
    assert export.frame_durations(3, 30, unit_ms=10) == [30, 40, 30]
    many = export.frame_durations(300, 30, unit_ms=10)
    assert sum(many) == 10_000 and set(many) == {30, 40}
    with pytest.raises(ValueError):
        export.frame_durations(3, 0)


def test_apng_is_lossless_with_alpha_and_timing(tmp_path):
    frames = _frames(3)
    path = export.write_apng(frames, tmp_path / "a.png", fps=30)
    with Image.open(path) as img:
        assert img.n_frames == 3 and img.info.get("loop") == 0
        for k, page in enumerate(ImageSequence.Iterator(img)):
            assert page.info["duration"] == [33, 34, 33][k]
            np.testing.assert_array_equal(np.asarray(page.convert("RGBA"))[..., 3], frames[k][..., 3])
            opaque = frames[k][..., 3] == 255
            np.testing.assert_array_equal(np.asarray(page.convert("RGBA"))[opaque], frames[k][opaque])


def test_gif_keeps_transparency_and_timing(tmp_path):
    frames = _frames(3)
    path = export.write_gif(frames, tmp_path / "a.gif", fps=30)
    with Image.open(path) as img:
        assert img.n_frames == 3
        for k, page in enumerate(ImageSequence.Iterator(img)):
            assert page.info["duration"] == [30, 40, 30][k]
            alpha = np.asarray(page.convert("RGBA"))[..., 3]
            np.testing.assert_array_equal(alpha == 0, frames[k][..., 3] == 0)


def test_webm_has_alpha_and_exact_frame_times(tmp_path):
    av = pytest.importorskip("av")
    frames = _frames(4, (32, 48))
    path = export.write_webm(frames, tmp_path / "a.webm", fps=30)
    decoder = av.codec.CodecContext.create("libvpx-vp9", "r")  # the native vp9 decoder drops alpha
    with av.open(str(path)) as container:
        decoded = [f for packet in container.demux(video=0) if packet.size for f in decoder.decode(packet)]
    assert len(decoded) == 4
    assert [round(float(f.pts * f.time_base) * 1000) for f in decoded] == [0, 33, 67, 100]
    for f, src in zip(decoded, frames, strict=True):
        alpha = f.to_ndarray(format="rgba")[..., 3].astype(int)
        assert np.abs(alpha - src[..., 3]).mean() < 8  # lossy, but the transparent band is there
    with pytest.raises(ValueError, match="even"):
        export.write_webm(_frames(2, (5, 8)), tmp_path / "odd.webm", fps=10)


def test_writers_reject_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        export.write_apng([], tmp_path / "x.png", fps=10)
    with pytest.raises(ValueError, match="frame 1"):
        export.write_gif([_frames(1)[0], _frames(1, (8, 8))[0]], tmp_path / "x.gif", fps=10)
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x.gif").exists()


def test_png_sequence_and_sprite_sheet(tmp_path):
    frames = _frames(5)
    writer = export.PngSequenceWriter(tmp_path / "seq", fps=12)
    for k, f in enumerate(frames):
        writer.add(f, t=k / 12)
    timing = json.loads(writer.close().read_text())
    assert timing["fps"] == 12 and timing["frame_count"] == 5
    assert [f["file"] for f in timing["frames"]] == [f"frame_{k:05d}.png" for k in range(5)]
    assert sum(f["duration_ms"] for f in timing["frames"]) == round(5000 / 12)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "seq" / "frame_00002.png")), frames[2])

    sheet = export.write_sprite_sheet(frames, tmp_path / "sheet.png", columns=2)
    meta = json.loads((tmp_path / "sheet.json").read_text())
    img = np.asarray(Image.open(sheet))
    assert img.shape == (3 * 24, 2 * 32, 4) and meta["frames"][3] == [32, 24, 32, 24]
    x, y, w, h = meta["frames"][4]
    np.testing.assert_array_equal(img[y : y + h, x : x + w], frames[4])


@pytest.mark.parametrize(("count", "columns", "rows"), [(1, 1, 1), (2, 2, 1), (5, 3, 2), (9, 3, 3), (28, 6, 5)])
def test_sprite_sheet_is_near_square_with_a_named_atlas(tmp_path, count, columns, rows):
    frames = _frames(count)
    names = [f"emotion{k}" for k in range(count)]
    sheet = export.write_sprite_sheet(frames, tmp_path / "s.png", names=names)
    atlas = json.loads((tmp_path / "s.json").read_text())
    img = np.asarray(Image.open(sheet))
    assert (atlas["columns"], atlas["rows"]) == (columns, rows)
    assert img.shape == (rows * 24, columns * 32, 4)
    assert atlas["image"] == "s.png" and atlas["names"] == names and list(atlas["atlas"]) == names
    for name, frame in zip(names, frames, strict=True):
        r = atlas["atlas"][name]
        np.testing.assert_array_equal(img[r["y"] : r["y"] + r["h"], r["x"] : r["x"] + r["w"]], frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "s.png"]  # no temporary files left


def test_sprite_sheet_columns_override_and_bad_input(tmp_path):
    frames = _frames(3)
    export.write_sprite_sheet(frames, tmp_path / "row.png", columns=10)  # more columns than sprites: one row
    assert json.loads((tmp_path / "row.json").read_text())["columns"] == 3
    export.write_sprite_sheet(frames, tmp_path / "col.png", columns=1)
    assert np.asarray(Image.open(tmp_path / "col.png")).shape == (3 * 24, 32, 4)
    with pytest.raises(ValueError, match="at least 1"):
        export.write_sprite_sheet(frames, tmp_path / "x.png", columns=0)
    with pytest.raises(ValueError, match="3 distinct names"):
        export.write_sprite_sheet(frames, tmp_path / "x.png", names=["a", "a", "b"])
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_clip_writes_frames_timed_by_the_animation_clock(tmp_path, offline_models, example_character_png):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"postprocessor_chain": [], "breathing_cycle_duration": 1.0}))
    out = tmp_path / "clip"
    args = ["clip", "--character", str(example_character_png), "--emotion", "joy", "--seconds", "0.3", "--fps", "10",
            "--output", str(out), "--settings", str(settings), "--device", "cpu", "--seed", "7"]  # fmt: skip
    assert main(args) == 0
    timing = json.loads((out / "timing.json").read_text())
    assert timing["fps"] == 10 and timing["frame_count"] == 3
    assert [f["t"] for f in timing["frames"]] == pytest.approx([0.0, 0.1, 0.2])
    assert [f["duration_ms"] for f in timing["frames"]] == [100, 100, 100]
    images = [np.asarray(Image.open(out / f["file"])) for f in timing["frames"]]
    assert all(i.shape == (512, 512, 4) for i in images)
    # Animation time moved (breathing at 1 s per breath): frames differ.
    assert np.abs(images[0].astype(int) - images[2].astype(int)).sum() > 0


def test_clip_output_kind_by_extension(tmp_path):
    (tmp_path / "dir.png").mkdir()
    kinds = {name: _output_kind(tmp_path / name) for name in ("out", "dir.png", "a.PNG", "a.apng", "a.gif", "a.webm")}
    assert kinds == {"out": "folder", "dir.png": "folder", "a.PNG": "apng", "a.apng": "apng", "a.gif": "gif",
                     "a.webm": "webm"}  # fmt: skip
    assert _output_kind(tmp_path / "a.mp4") is None


def test_clip_usage_errors(tmp_path, caplog):
    assert main(["clip", "--output", str(tmp_path / "x.mp4")]) == 2
    assert ".webm" in caplog.text
    assert main(["clip", "--output", str(tmp_path / "x.gif"), "--fps", "0"]) == 2


def test_clip_bad_input_writes_nothing(tmp_path, offline_models, example_character_png, caplog):
    out = tmp_path / "x.gif"
    args = ["clip", "--character", str(example_character_png), "--output", str(out), "--device", "cpu"]
    assert main([*args, "--emotion", "no_such_emotion"]) == 1
    assert "unknown emotion" in caplog.text
    (tmp_path / "bad.json").write_text("{oops")
    assert main([*args, "--settings", str(tmp_path / "bad.json")]) == 1
    assert "not valid JSON" in caplog.text and not out.exists()


@pytest.mark.slow
def test_still_with_settings_applies_crop_upscale_and_chain(tmp_path, offline_models, example_character_png):
    settings = tmp_path / "s.json"
    settings.write_text(json.dumps({
        "crop": {"enabled": True, "left": 0.25, "top": 0.0, "right": 0.75, "bottom": 0.5},
        "upscale": 2.0, "upscale_quality": "bilinear", "postprocessor_chain": [["desaturate", {"strength": 1.0}]],
    }))  # fmt: skip
    out = tmp_path / "s.png"
    assert main(["still", "--character", str(example_character_png), "--settings", str(settings),
                 "--output", str(out), "--device", "cpu"]) == 0  # fmt: skip
    img = np.asarray(Image.open(out))
    assert img.shape == (512, 512, 4)
    opaque = img[..., 3] == 255
    assert opaque.any() and np.abs(img[opaque][:, 0].astype(int) - img[opaque][:, 2].astype(int)).mean() < 2
