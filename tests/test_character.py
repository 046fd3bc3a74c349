"""Character loading: real PNG files written in the test, every bad input PRODUCT.md names, cel discovery, reload."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw
import pytest
import torch

from raven_avatar.engine.character import (
    SUPPORTED_CELS,
    CharacterError,
    load_character,
    reload_character,
)
from raven_avatar.engine.paths import asset_path


def _srgb_to_linear(v: float) -> float:
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def _draw_character(path: Path, size: tuple[int, int] = (512, 512), colour=(200, 150, 100, 255)) -> Path:
    """A stand-in character: an opaque 'head' disc on a transparent canvas (garbage RGB under alpha 0)."""
    img = PIL.Image.new("RGBA", size, (17, 99, 230, 0))
    w, h = size
    PIL.ImageDraw.Draw(img).ellipse((w * 0.3, h * 0.05, w * 0.7, h * 0.45), fill=colour)
    img.save(path)
    return path


def _draw_cel(path: Path, box=(200, 120, 240, 140), colour=(255, 80, 80, 160)) -> Path:
    img = PIL.Image.new("RGBA", (512, 512), (0, 0, 0, 0))
    PIL.ImageDraw.Draw(img).rectangle(box, fill=colour)
    img.save(path)
    return path


def _png_bytes(width: int, height: int, colour_type: int, bit_depth: int, rows: bytes, trns: bytes = b"") -> bytes:
    """A minimal PNG writer, for formats Pillow cannot write (16-bit RGBA, 16-bit grey with a tRNS colour)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    extra = chunk(b"tRNS", trns) if trns else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + extra
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_loads_rgba_as_linear_straight_alpha(tmp_path):
    c = load_character(_draw_character(tmp_path / "aria.png"))
    assert c.name == "aria"
    assert c.image.shape == (4, 512, 512) and c.image.dtype == torch.float32
    centre = c.image[:, 100, 256]
    expected = [_srgb_to_linear(v / 255) for v in (200, 150, 100)] + [1.0]
    torch.testing.assert_close(centre, torch.tensor(expected), atol=1e-6, rtol=0)
    # Fully transparent pixels have their garbage RGB zeroed.
    assert torch.all(c.image[:, 500, 10] == 0)
    assert c.report.cels == [] and c.report.unknown_files == [] and c.report.warnings == []


def test_discovers_cels_fx_overrides_and_unknown_files(tmp_path):
    path = _draw_character(tmp_path / "aria.png")
    for cel in ("waver1", "blush2", "tears1"):
        _draw_cel(tmp_path / f"aria_{cel}.png")
    _draw_cel(tmp_path / "aria_fx_heart1.png", colour=(255, 0, 0, 255))  # per character
    _draw_cel(tmp_path / "fx_heart1.png", colour=(0, 255, 0, 255))  # shared, overridden
    _draw_cel(tmp_path / "fx_heart2.png", colour=(0, 0, 255, 255))  # shared, used
    _draw_cel(tmp_path / "aria_blush9.png")
    _draw_cel(tmp_path / "aria_smallicon.png")
    _draw_cel(tmp_path / "other_blush1.png")  # another character's cel
    c = load_character(path)
    assert list(c.cels) == ["blush2", "tears1", "waver1"] == c.report.cels
    assert c.report.unknown_files == ["aria_blush9.png"]
    assert c.report.fx_cels["fx_heart1"] == "character"
    assert c.report.fx_cels["fx_heart2"] == "folder"
    assert c.fx_cels["fx_heart1"][0, 130, 220] == 1.0 and c.fx_cels["fx_heart1"][1, 130, 220] == 0.0
    assert c.fx_cels["fx_heart2"][2, 130, 220] == 1.0
    # Everything else comes from the shipped set.
    shipped = {p.stem for p in asset_path("animefx").glob("fx_*.png")}
    assert {n for n, s in c.report.fx_cels.items() if s == "shipped"} == shipped - {"fx_heart1", "fx_heart2"}
    summary = c.report.summary()
    assert "blush2, tears1, waver1" in summary and "aria_blush9.png" in summary


def test_supported_cels_canonical_order():
    assert (
        *("blush1", "blush2", "blush3", "shadow1", "sweat1", "sweat2", "sweat3"),
        *("tears1", "tears2", "tears3", "data1", "data2", "data3", "data4", "waver1", "waver2"),
    ) == SUPPORTED_CELS


def test_rgb_without_alpha_is_a_clear_error(tmp_path):
    path = tmp_path / "flat.png"
    PIL.Image.new("RGB", (512, 512), (10, 20, 30)).save(path)
    with pytest.raises(CharacterError, match=r"flat\.png.*no alpha channel"):
        load_character(path)
    PIL.Image.new("RGB", (512, 512), (10, 20, 30)).quantize(8).save(path)  # palette, no transparent entry
    with pytest.raises(CharacterError, match=r"flat\.png.*no alpha channel \(mode P\)"):
        load_character(path)


def test_palette_with_trns_is_converted(tmp_path):
    path = tmp_path / "pal.png"
    rgba = PIL.Image.open(_draw_character(tmp_path / "src.png"))
    pal = rgba.convert("RGB").quantize(4)
    pal.info["transparency"] = int(np.asarray(pal)[500, 10])  # the background's palette index
    pal.save(path, transparency=pal.info["transparency"])
    assert PIL.Image.open(path).mode == "P"
    c = load_character(path)
    assert c.image[3, 500, 10] == 0 and c.image[3, 100, 256] == 1
    assert torch.all(c.image[:3, 500, 10] == 0)


def test_la_and_16bit_rgba_are_converted(tmp_path):
    la = tmp_path / "la.png"
    PIL.Image.open(_draw_character(tmp_path / "src.png")).convert("LA").save(la)
    c = load_character(la)
    assert c.image[3, 100, 256] == 1 and c.image[3, 500, 10] == 0
    assert c.image[0, 100, 256] == c.image[1, 100, 256] == c.image[2, 100, 256]

    # 16-bit RGBA: left half opaque orange, right half transparent.
    w = h = 512
    row = (
        b"\x00" + struct.pack(">HHHH", 65535, 32896, 0, 65535) * (w // 2) + struct.pack(">HHHH", 1, 2, 3, 0) * (w // 2)
    )
    deep = tmp_path / "deep.png"
    deep.write_bytes(_png_bytes(w, h, 6, 16, row * h))
    c = load_character(deep)
    torch.testing.assert_close(c.image[:, 10, 10], torch.tensor([1.0, _srgb_to_linear(128 / 255), 0.0, 1.0]))
    assert torch.all(c.image[:, 10, 500] == 0)

    # 16-bit grey with a transparent grey level (tRNS): left half grey 40000/65535, right half transparent.
    row = b"\x00" + struct.pack(">H", 40000) * (w // 2) + struct.pack(">H", 7) * (w // 2)
    grey = tmp_path / "grey16.png"
    grey.write_bytes(_png_bytes(w, h, 0, 16, row * h, trns=struct.pack(">H", 7)))
    c = load_character(grey)
    level = _srgb_to_linear(round(40000 / 257) / 255)
    torch.testing.assert_close(c.image[:, 10, 10], torch.tensor([level, level, level, 1.0]))
    assert torch.all(c.image[:, 10, 500] == 0)


def test_non_square_image_is_padded_bottom_centre_not_cropped(tmp_path, caplog):
    # 512x400: nothing to resize; the drawing goes to the bottom of a 512x512 transparent canvas, untouched.
    img = PIL.Image.new("RGBA", (512, 400), (0, 0, 0, 0))
    draw = PIL.ImageDraw.Draw(img)
    draw.rectangle((0, 0, 15, 399), fill=(0, 0, 255, 255))  # the left edge: a centre crop would cut it off
    draw.rectangle((496, 0, 511, 399), fill=(255, 0, 0, 255))  # the right edge
    path = tmp_path / "aria_400.png"
    img.save(path)
    with caplog.at_level("WARNING", logger="raven_avatar.engine.character"):
        c = load_character(path)
    assert c.image.shape == (4, 512, 512)
    assert torch.all(c.image[3, :112] == 0)  # the padding: above the drawing, transparent
    assert torch.all(c.image[2:, 112:, :16] == 1) and torch.all(c.image[0, 112:, 496:] == 1)  # both edges kept
    (warning,) = c.report.warnings
    assert warning == (
        "aria_400.png: size 512x400, expected 512x512; padded to 512x512 on a transparent canvas (aligned "
        "bottom-centre). THA3 expects the head in the upper middle of a 512x512 canvas; see docs/CHARACTERS.md."
    )
    assert "aria_400.png: size 512x400" in caplog.text and "aria_400.png: aria_400.png" not in caplog.text


def test_tall_image_is_padded_at_the_sides_and_resized(tmp_path):
    # 384x768: padded to 768x768 (192 columns each side), then scaled by 2/3: the drawing is columns 128..383.
    img = PIL.Image.new("RGBA", (384, 768), (0, 0, 0, 0))
    PIL.ImageDraw.Draw(img).rectangle((0, 0, 383, 767), fill=(0, 255, 0, 255))
    path = tmp_path / "tall.png"
    img.save(path)
    c = load_character(path)
    alpha = c.image[3]
    assert torch.all(alpha[:, :124] == 0) and torch.all(alpha[:, 388:] == 0)  # Lanczos rings ~2 px
    assert torch.all(alpha[:, 130:382] > 0.99)  # the drawing, full height, centred
    assert (
        "padded to 768x768 on a transparent canvas (aligned bottom-centre) and resized to 512x512 (Lanczos)"
        in (c.report.warnings[0])
    )


def test_huge_image_is_downscaled(tmp_path):
    path = tmp_path / "huge.png"
    img = PIL.Image.new("RGBA", (4096, 4096), (0, 0, 0, 0))  # the largest accepted (engine.imageio.MAX_PIXELS)
    PIL.ImageDraw.Draw(img).ellipse((1229, 205, 2867, 1843), fill=(90, 180, 40, 255))
    img.save(path, compress_level=1)
    del img
    c = load_character(path)
    assert c.image.shape == (4, 512, 512)
    assert c.image[3, 128, 256] == 1.0 and c.image[3, 500, 10] == 0.0
    assert any("4096x4096" in w for w in c.report.warnings)


def test_all_transparent_missing_and_truncated_are_errors(tmp_path):
    empty = tmp_path / "empty.png"
    PIL.Image.new("RGBA", (512, 512), (255, 255, 255, 0)).save(empty)
    with pytest.raises(CharacterError, match=r"empty\.png.*fully transparent"):
        load_character(empty)
    with pytest.raises(CharacterError, match=r"nobody\.png.*not found"):
        load_character(tmp_path / "nobody.png")
    full = _draw_character(tmp_path / "full.png").read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.raises(CharacterError, match=r"cut\.png.*truncated"):
        load_character(cut)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png at all")
    with pytest.raises(CharacterError, match=r"junk\.png"):
        load_character(junk)


def test_broken_cel_is_skipped_with_warning(tmp_path):
    path = _draw_character(tmp_path / "aria.png")
    _draw_cel(tmp_path / "aria_blush1.png")
    (tmp_path / "aria_sweat1.png").write_bytes(b"\x89PNG broken")
    PIL.Image.new("RGBA", (512, 512), (0, 0, 0, 0)).save(tmp_path / "aria_tears1.png")
    c = load_character(path)
    assert list(c.cels) == ["blush1", "tears1"]
    assert any("sweat1" in w and "aria_sweat1.png" in w for w in c.report.warnings)
    assert any("tears1" in w and "fully transparent" in w for w in c.report.warnings)


def test_device_dtype_and_to(tmp_path):
    path = _draw_character(tmp_path / "aria.png")
    _draw_cel(tmp_path / "aria_blush1.png")
    c = load_character(path, dtype=torch.float16)
    assert c.image.dtype == torch.float16 and c.cels["blush1"].dtype == torch.float16
    d = c.to("cpu", torch.float64)
    assert d.image.dtype == torch.float64 and all(t.dtype == torch.float64 for t in d.fx_cels.values())
    assert c.image.dtype == torch.float16  # the original is untouched


def _touch_later(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))


def test_reload_reuses_unchanged_files_and_picks_up_changes(tmp_path):
    path = _draw_character(tmp_path / "aria.png")
    _draw_cel(tmp_path / "aria_blush1.png")
    c = load_character(path)
    same = reload_character(c)
    assert same.image is c.image and same.cels["blush1"] is c.cels["blush1"]
    _draw_character(path, colour=(10, 250, 10, 255))
    _touch_later(path)
    _draw_cel(tmp_path / "aria_sweat1.png")
    new = reload_character(c)
    assert new.image is not c.image and new.image[1, 100, 256] > 0.9
    assert new.cels["blush1"] is c.cels["blush1"]
    assert list(new.cels) == ["blush1", "sweat1"]


def test_reload_keeps_previous_on_failure(tmp_path):
    path = _draw_character(tmp_path / "aria.png")
    c = load_character(path)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 3])  # half-written and never finished
    kept = reload_character(c)
    assert kept.image is c.image
    assert any("reload failed" in w and "aria.png" in w for w in kept.report.warnings)
    path.unlink()  # deleted while hot reloading
    assert reload_character(c).image is c.image
    path.write_bytes(good)
    assert reload_character(c).report.warnings == []


def test_reload_retries_a_file_still_being_written(tmp_path, monkeypatch):
    path = _draw_character(tmp_path / "aria.png")
    c = load_character(path)
    _draw_character(path, colour=(10, 250, 10, 255))
    good = path.read_bytes()
    path.write_bytes(good[:100])
    _touch_later(path)
    import raven_avatar.engine.character as character_module

    sleeps: list[float] = []

    def finish_writing(seconds: float) -> None:  # the artist's program finishes while we wait
        sleeps.append(seconds)
        path.write_bytes(good)

    monkeypatch.setattr(character_module.time, "sleep", finish_writing)
    new = reload_character(c)
    assert len(sleeps) == 1
    assert new.image[1, 100, 256] > 0.9 and new.report.warnings == []


def test_example_character_loads(example_character_png):
    c = load_character(example_character_png)
    assert c.image.shape == (4, 512, 512)
    alpha = c.image[3]
    assert 0.05 < float(alpha.mean()) < 0.9
    assert c.report.warnings == []


ANIMEFX_FRAMES = {
    "angervein": 2,
    "sweatdrop": 3,
    "smallsweatdrop": 3,
    "heart": 3,
    "blackcloud": 2,
    "flowers": 2,
    "shock": 1,
    "notice": 2,
    "beaming": 2,
    "question": 3,
    "exclaim": 3,
}


def test_shipped_animefx_and_backdrops():
    expected = {f"fx_{name}{i}" for name, n in ANIMEFX_FRAMES.items() for i in range(1, n + 1)}
    files = {p.stem: p for p in asset_path("animefx").glob("fx_*.png")}
    assert set(files) == expected
    for name, path in files.items():
        with PIL.Image.open(path) as img:
            assert img.size == (512, 512) and img.mode == "RGBA", name
            alpha = np.asarray(img)[..., 3]
        assert 0 < (alpha > 0).mean() < 0.2, name  # something drawn, and not over the whole frame
        assert ((alpha > 0) & (alpha < 255)).any(), name  # anti-aliased edges
    backdrops = sorted(asset_path("backdrops").glob("*.png"))
    assert len(backdrops) >= 2
    for path in backdrops:
        with PIL.Image.open(path) as img:
            assert min(img.size) >= 512
