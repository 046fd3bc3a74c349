"""Postprocessor: each filter does its job, keeps alpha and dtype, works at odd sizes; chains, validation, presets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from raven_avatar.engine import postprocessor as pp
from raven_avatar.engine.postprocessor import colorspace, ops

REFERENCE = Path(__file__).parent / "data" / "reference"

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# The reference's filters and their parameters in signature order (raven-engine.md section 5.1).
REFERENCE_FILTERS = {
    "zoom": ["center_x", "center_y", "factor", "quality"],
    "bloom": ["threshold", "exposure", "sigma"],
    "chromatic_aberration": ["scale", "sigma"],
    "noise": ["strength", "sigma", "channel", "double_size"],
    "vignetting": ["strength"],
    "desaturate": ["strength", "tint_rgb", "bandpass_reference_rgb", "bandpass_q"],
    "analog_lowres": ["sigma"],
    "chroma_subsample": ["mode", "subsampling", "upscale", "double_size", "sigma"],
    "analog_rippling_hsync": ["speed", "amplitude1", "density1", "amplitude2", "density2", "amplitude3", "density3"],
    "analog_runaway_hsync": [
        "speed",
        "asymmetry",
        "ripple_amplitude",
        "ripple_density1",
        "ripple_density2",
        "ripple_density3",
        "placement",
    ],
    "analog_vhs_noise": ["strength", "mode", "double_size", "ntsc_chroma"],
    "analog_vhsglitches": [
        "strength",
        "unboost",
        "max_glitches",
        "min_glitch_height",
        "max_glitch_height",
        "hold_min",
        "hold_max",
    ],
    "analog_vhs_headswitching": ["speed", "height", "max_displacement", "noise_blend", "double_size"],
    "analog_vhstracking": ["base_offset", "max_dynamic_offset", "speed", "double_size"],
    "digital_glitches": [
        "strength",
        "unboost",
        "max_glitches",
        "min_glitch_height",
        "max_glitch_height",
        "hold_min",
        "hold_max",
    ],
    "translucent_display": ["alpha"],
    "monochrome_display": ["strength", "tint_rgb"],
    "banding": ["strength", "density", "speed"],
    "scanlines": ["field", "dynamic", "double_size", "channel", "strength"],
}
ALL_FILTERS = [s.name for s in pp.filters()]


def character(h: int = 33, w: int = 47, dtype=torch.float32, device="cpu", seed: int = 0) -> torch.Tensor:
    """A smooth colourful opaque blob with a few highlights, on a transparent background."""
    gen = torch.Generator().manual_seed(seed)
    img = torch.rand((1, 4, max(2, h // 6), max(2, w // 6)), generator=gen)
    img = torch.nn.functional.interpolate(img, size=(h, w), mode="bilinear", align_corners=False)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    img[:, 3] = ((xs**2 + ys**2) < 0.7).float()
    return img[0].to(device=device, dtype=dtype)


def uniform(value, h=32, w=32, alpha=1.0) -> torch.Tensor:
    img = torch.empty(4, h, w)
    img[:3] = torch.tensor(value, dtype=torch.float32).view(3, 1, 1)
    img[3] = alpha
    return img


# --- registry and metadata ---------------------------------------------------------------------------------


def test_every_reference_filter_with_its_parameters_in_signature_order():
    for name, params in REFERENCE_FILTERS.items():
        spec = pp.get_filter(name)
        assert spec is not None, name
        assert [p.name for p in spec.params] == params, name
    assert {"crt", "atmospheric_dust", "outline"} <= set(ALL_FILTERS)


def test_metadata_is_complete_for_the_gui():
    specs = pp.filters()
    assert [s.priority for s in specs] == sorted(s.priority for s in specs)
    for spec in specs:
        assert spec.category in pp.CATEGORIES and spec.summary and spec.doc.startswith(spec.summary)
        for p in spec.params:
            assert p.kind in pp.KINDS and p.doc, (spec.name, p.name)
            if p.kind in ("int", "float"):
                assert p.range[0] <= p.default <= p.range[1], (spec.name, p.name)
            if p.kind == "choice":
                assert p.default == p.choices[0] or p.default in p.choices
            if p.kind == "rgb":
                assert len(p.default) == 3
    bloom = pp.get_filter("bloom")
    assert bloom.defaults() == {"threshold": 0.56, "exposure": 0.842, "sigma": 7.0}
    assert pp.get_filter("scanlines").param("field").kind == "int"
    assert pp.get_filter("desaturate").param("tint_rgb").kind == "rgb"
    assert pp.get_filter("noise").param("channel").choices == ("Y", "A")


def test_reference_defect_fixed_runaway_hsync_default_inside_its_range():
    p = pp.get_filter("analog_runaway_hsync").param("ripple_amplitude")
    assert p.default == 0.05 and p.range[0] <= p.default <= p.range[1]


# --- every filter: shape, dtype, no mutation, range, odd sizes -----------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("name", ALL_FILTERS)
def test_filter_contract(name, dtype, device):
    spec = pp.get_filter(name)
    img = character(29, 51, dtype=dtype, device=device)
    before = img.clone()
    out = spec.func(img, t=1.234)
    assert out.shape == img.shape and out.dtype == dtype and out.device == img.device
    assert torch.equal(img, before), "the input must not be modified"
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    batch = torch.stack((img, img.flip(-1)))
    out_b = spec.func(batch, t=1.234)
    assert out_b.shape == batch.shape
    if not spec.dynamic or name in ("banding", "scanlines", "analog_rippling_hsync"):
        torch.testing.assert_close(out_b[0], out, atol=2e-3, rtol=0)


ALPHA_UNTOUCHED = {
    "vignetting",
    "desaturate",
    "monochrome_display",
    "chroma_subsample",
    "analog_vhs_noise",
    "analog_vhsglitches",
    "banding",
    "scanlines",
    "noise",
    "outline",
}
NEVER_ADD_OPACITY = set(ALL_FILTERS) - {"atmospheric_dust", "analog_vhstracking"}  # light and signal noise


@pytest.mark.parametrize("name", ALL_FILTERS)
def test_alpha_invariants(name):
    spec = pp.get_filter(name)
    img = character(64, 48)
    out = spec.func(img, t=0.7)
    if name in ALPHA_UNTOUCHED:  # (noise and scanlines with their default channel "Y", outline in "rim" mode)
        assert torch.equal(out[3], img[3])
    empty = torch.zeros(4, 64, 48)
    if name in NEVER_ADD_OPACITY:
        assert torch.equal(spec.func(empty, t=0.7)[3], empty[3])


STABLE_IN_FP16 = [s.name for s in pp.filters() if not s.dynamic] + [
    "banding",
    "scanlines",
    "analog_rippling_hsync",
    "analog_runaway_hsync",
]


@pytest.mark.parametrize("name", STABLE_IN_FP16)
def test_fp16_matches_fp32(name):
    img = character(40, 56)
    full = pp.get_filter(name).func(img, t=0.3)
    half = pp.get_filter(name).func(img.half(), t=0.3)
    torch.testing.assert_close(half.float(), full, atol=1e-2, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_no_host_device_sync_in_the_hot_path():
    img = character(96, 80, dtype=torch.float16, device="cuda")
    chains = [[[s.name, {}]] for s in pp.filters()] + [list(pp.DEFAULT_CHAIN)]
    posts = [pp.Postprocessor(c) for c in chains]
    for post in posts:  # warm-up builds the caches (kernels, grids, masks)
        post(img, t=0.0)
        post(img, t=0.041)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for post in posts:
            for t in (0.0, 0.041, 0.5, 1.3, 7.9):
                post(img, t=t)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("name", ALL_FILTERS)
def test_tiny_and_non_square_frames(name):
    for h, w in ((1, 1), (2, 7), (17, 3)):
        out = pp.get_filter(name).func(character(h, w), t=0.5)
        assert out.shape == (4, h, w) and torch.isfinite(out).all()


# --- what each filter does ----------------------------------------------------------------------------------


def test_bloom_brightens_around_highlights():
    img = uniform((0.1, 0.1, 0.1), 48, 48)
    img[:3, 20:28, 20:28] = 0.9
    out = pp.bloom(img)
    near, far = out[0, 24, 31], out[0, 24, 45]  # 3 px and 17 px from the highlight, equal before
    assert near > far + 0.02
    assert torch.equal(out[3], img[3])
    dark = pp.bloom(img, threshold=0.95)  # nothing is bright enough: only the tonemap
    assert dark[0, 24, 31] == pytest.approx(float(dark[0, 24, 45]), abs=1e-5)


def test_bloom_glow_shows_over_a_transparent_background():
    img = torch.zeros(4, 40, 40)
    img[:, 18:22, 18:22] = 1.0
    out = pp.bloom(img)
    assert out[3, 20, 25] > 0 and out[3, 2, 2] < out[3, 20, 25]


def test_chromatic_aberration_moves_red_and_blue_but_not_green():
    img = uniform((0, 0, 0), 40, 100)
    img[:3, :, 90:] = 1.0  # white bar near the right edge
    out = pp.chromatic_aberration(img, scale=0.05, sigma=0.1)
    assert torch.equal(out[1], img[1])
    red_edge = (out[0, 20] > 0.5).nonzero()[0].item()
    blue_edge = (out[2, 20] > 0.5).nonzero()[0].item()
    assert red_edge < 90 < blue_edge  # the red image shrinks toward the centre, the blue one grows


def test_vignetting_darkens_corners_only():
    img = uniform((0.8, 0.6, 0.4), 41, 41, alpha=0.7)
    out = pp.vignetting(img)
    assert torch.equal(out[3], img[3])
    center, corner = out[:3, 20, 20], out[:3, 0, 0]
    torch.testing.assert_close(center, img[:3, 20, 20], atol=2e-3, rtol=0)
    assert (corner < 0.5 * img[:3, 0, 0]).all()
    diag = out[0].diagonal()
    assert (diag[:20].diff() >= 0).all() and (diag[20:].diff() <= 0).all()


def test_desaturate_keeps_the_reference_hue():
    img = uniform((0, 0, 0), 8, 16)
    img[:3, :, :8] = torch.tensor([0.8, 0.1, 0.1]).view(3, 1, 1)  # red
    img[:3, :, 8:] = torch.tensor([0.1, 0.8, 0.1]).view(3, 1, 1)  # green
    out = pp.desaturate(img, bandpass_reference_rgb=[1.0, 0.0, 0.0], bandpass_q=0.2)
    torch.testing.assert_close(out[:, :, :8], img[:, :, :8])
    green = out[:3, 0, 12]
    assert green.max() - green.min() < 1e-5  # gray
    assert green[0] == pytest.approx(colorspace.KR * 0.1 + colorspace.KG * 0.8 + colorspace.KB * 0.1, abs=1e-5)
    sepia = pp.desaturate(img, tint_rgb=[1.0, 0.5, 0.25])
    assert sepia[0, 0, 12] > sepia[1, 0, 12] > sepia[2, 0, 12]


def test_monochrome_display_collapses_colour_to_tinted_luminance_and_keeps_alpha():
    img = character()
    out = pp.monochrome_display(img, tint_rgb=[0.5, 1.0, 0.5])
    torch.testing.assert_close(out[0], out[2])
    torch.testing.assert_close(out[0] * 2, out[1])
    assert torch.equal(out[3], img[3])


def test_analog_lowres_blurs_but_keeps_flat_areas():
    img = torch.rand(4, 20, 30, generator=torch.Generator().manual_seed(0))
    out = pp.analog_lowres(img)
    assert out[:3].diff(dim=-1).abs().mean() < 0.7 * img[:3].diff(dim=-1).abs().mean()
    flat = uniform((0.3, 0.5, 0.7), 9, 9)
    torch.testing.assert_close(pp.analog_lowres(flat), flat)


def test_chroma_subsample_keeps_luminance_and_blocks_colour():
    img = character(32, 32)
    img[:3] = img[:3] * 0.5 + 0.25  # stay in gamut so no clamping
    for kwargs in ({"mode": "analog"}, {"mode": "digital"}, {"mode": "digital", "upscale": "bilinear"}):
        out = pp.chroma_subsample(img, **kwargs)
        torch.testing.assert_close(colorspace.luminance(out), colorspace.luminance(img), atol=1e-5, rtol=0)
        assert torch.equal(out[3], img[3])
    uv = colorspace.rgb_to_yuv(pp.chroma_subsample(img, mode="digital", double_size=True))[1:3]
    blocks = uv.unfold(1, 2, 2).unfold(2, 4, 4)  # 4:1:0 -> constant in 2x4 blocks
    assert (blocks.amax((-1, -2)) - blocks.amin((-1, -2))).abs().max() < 1e-5


def test_rippling_hsync_shifts_rows_only_sideways_and_moves_in_time():
    img = character(64, 64)
    rows_only = uniform((0, 0, 0), 64, 64)
    rows_only[:3] = torch.linspace(0, 1, 64).view(1, 64, 1)
    big = {"amplitude1": 0.01, "amplitude2": 0.01, "amplitude3": 0.01}
    torch.testing.assert_close(pp.analog_rippling_hsync(rows_only, t=0.3, **big), rows_only, atol=1e-5, rtol=0)
    a = pp.analog_rippling_hsync(img, t=0.3, **big)
    assert torch.equal(a, pp.analog_rippling_hsync(img, t=0.3, **big))
    assert not torch.equal(a, pp.analog_rippling_hsync(img, t=0.7, **big))
    assert (a - img).abs().max() > 0.01


@pytest.mark.parametrize("placement", ["bottom", "top"])
def test_runaway_hsync_shears_one_edge_only(placement):
    img = character(64, 64)
    out = pp.analog_runaway_hsync(img, t=0.2, placement=placement)
    changed = (out != img).flatten(0, 0).any(0).any(-1)
    edge = slice(56, 64) if placement == "bottom" else slice(0, 8)
    assert changed[edge].any() and not changed[8:56].any()


def test_vhs_noise_grain_on_luminance_keeps_alpha_and_follows_time():
    img = character()
    for mode in ("PAL", "NTSC"):
        a = pp.analog_vhs_noise(img, t=1.0, mode=mode)
        assert torch.equal(a[3], img[3]) and not torch.equal(a[:3], img[:3])
        assert torch.equal(a, pp.analog_vhs_noise(img, t=1.01, mode=mode))  # same 1/25 s
        assert not torch.equal(a, pp.analog_vhs_noise(img, t=1.05, mode=mode))


def test_noise_on_luminance_or_alpha():
    img = character()
    y = pp.noise(img, t=2.0)
    assert torch.equal(y[3], img[3]) and (colorspace.luminance(y) <= colorspace.luminance(img) + 1e-6).all()
    a = pp.noise(img, t=2.0, channel="A")
    assert torch.equal(a[:3], img[:3]) and (a[3] <= img[3]).all() and not torch.equal(a[3], img[3])
    assert torch.equal(y, pp.noise(img, t=2.0)) and not torch.equal(y, pp.noise(img, t=2.1))


def _changed_rows(out, img):
    return (out != img).any(0).any(-1)


def test_vhsglitches_change_some_whole_rows_of_rgb_only():
    img = character(64, 64)
    seen = 0
    for i in range(10):
        out = pp.analog_vhsglitches(img, t=i * 0.2, unboost=0.1, max_glitches=5, strength=0.9)
        assert torch.equal(out[3], img[3])
        rows = _changed_rows(out, img)
        assert rows.sum() < 64 * 0.6
        seen += int(rows.any())
        assert torch.equal(out, pp.analog_vhsglitches(img, t=i * 0.2, unboost=0.1, max_glitches=5, strength=0.9))
    assert seen >= 5


def test_digital_glitches_shift_some_blocks_of_rows_sideways():
    img = character(128, 64)
    seen = 0
    for i in range(10):
        out = pp.digital_glitches(img, t=i * 0.2, unboost=0.1, max_glitches=4, min_glitch_height=5, strength=0.0625)
        rows = _changed_rows(out, img)
        assert rows.sum() <= 4 * 30
        if rows.any():
            seen += 1
            r = rows.nonzero()[0].item()
            # strength 0.0625 of a width of 2 is 2 px to the right: the row reads from 2 px left
            torch.testing.assert_close(out[:, r, 4:], img[:, r, 2:-2], atol=1e-3, rtol=0)
    assert seen >= 5


def test_glitch_patterns_hold_for_whole_frames_and_change_later():
    img = character(128, 64)
    kwargs = {"unboost": 0.1, "max_glitches": 6, "strength": 0.1, "hold_min": 3, "hold_max": 3}
    frames = [pp.digital_glitches(img, t=k / 25 + 0.001, **kwargs) for k in range(9)]
    assert torch.equal(frames[0], frames[1]) and torch.equal(frames[1], frames[2])
    assert not all(torch.equal(frames[0], f) for f in frames[3:])


def test_headswitching_touches_only_the_bottom_band():
    img = character(100, 64)
    out = pp.analog_vhs_headswitching(img, t=0.37, noise_blend=0.5)
    rows = _changed_rows(out, img)
    assert not rows[:96].any() and rows[96:].any()


def test_vhstracking_noise_band_replaces_the_bottom_rows():
    img = character(100, 64)
    out = pp.analog_vhstracking(img, t=0.0, base_offset=0.2, max_dynamic_offset=0.0)
    band = out[:, 90:]
    assert torch.equal(band[0], band[3]) and torch.equal(band[0], band[1])  # gray noise, alpha included
    torch.testing.assert_close(out[:, :90], img[:, :90])
    floated = pp.analog_vhstracking(img, t=0.3, base_offset=0.0, max_dynamic_offset=0.1)
    assert not torch.equal(floated, img)


def test_translucent_display_scales_alpha_only():
    img = character()
    out = pp.translucent_display(img, alpha=0.5)
    assert torch.equal(out[:3], img[:3])
    torch.testing.assert_close(out[3], img[3] * 0.5)


def test_banding_scales_whole_rows_and_travels():
    img = uniform((0.5, 0.4, 0.3), 40, 20, alpha=0.6)
    out = pp.banding(img, t=0.0)
    gain = out[0] / img[0]
    torch.testing.assert_close(gain, gain[:, :1].expand_as(gain))
    assert gain.min() >= 1 - 1e-6 and gain.max() > 1.2
    torch.testing.assert_close(out[1] / img[1], gain)
    assert torch.equal(out[3], img[3])
    assert not torch.equal(out, pp.banding(img, t=0.03))


def test_scanlines_alternate_rows():
    img = uniform((0.5, 0.5, 0.5), 16, 8, alpha=0.8)
    out = pp.scanlines(img, double_size=False, dynamic=False, strength=0.5)
    torch.testing.assert_close(out[:3, 0::2], img[:3, 0::2] * 0.5)
    assert torch.equal(out[:, 1::2], img[:, 1::2]) and torch.equal(out[3], img[3])
    pairs = pp.scanlines(img, double_size=True, dynamic=False, strength=0.5)
    dimmed = pairs[0, :, 0] < 0.4
    assert dimmed.tolist() == [True, True, False, False] * 4
    flipped = pp.scanlines(img, double_size=False, t=1 / 25 + 0.001, strength=0.5)  # next field
    assert torch.equal(flipped[:, 0::2], img[:, 0::2])
    alpha = pp.scanlines(img, double_size=False, dynamic=False, channel="A", strength=0.5)
    assert torch.equal(alpha[:3], img[:3])
    torch.testing.assert_close(alpha[3, 0::2], img[3, 0::2] * 0.5)


def test_crt_curves_the_glass_and_adds_a_phosphor_mask():
    img = uniform((0.5, 0.5, 0.5), 60, 60)
    out = pp.crt(img, glow=0.0)
    assert out[3, 0, 0] == 0 and out[3, 30, 30] == 1  # corners fall outside the tube
    row = out[:3, 30, 20:29]
    assert (row.amax(-1) - row.amin(-1) > 0.1).all()  # stripes
    torch.testing.assert_close(row.mean(-1), torch.full((3,), 0.5), atol=0.03, rtol=0)  # brightness kept


def test_atmospheric_dust_adds_drifting_light():
    img = torch.zeros(4, 64, 64)
    a = pp.atmospheric_dust(img, t=1.0, count=30, size=0.02, brightness=1.0)
    assert a[3].max() > 0.3 and (a[:3] >= 0).all()
    assert torch.equal(a, pp.atmospheric_dust(img, t=1.0, count=30, size=0.02, brightness=1.0))
    b = pp.atmospheric_dust(img, t=3.0, count=30, size=0.02, brightness=1.0, speed=0.2)
    assert (a - b).abs().max() > 0.1
    opaque = uniform((0.2, 0.2, 0.2), 64, 64)
    lit = pp.atmospheric_dust(opaque, t=1.0, count=30, size=0.02, brightness=1.0)
    assert (lit >= opaque - 1e-6).all() and lit[0].max() > 0.5


def test_outline_and_rim_light_follow_the_alpha_edge():
    img = torch.zeros(4, 40, 40)
    img[:, 10:30, 10:30] = torch.tensor([0.2, 0.2, 0.2, 1.0]).view(4, 1, 1)
    line = pp.outline(img, mode="outline", width=3.0, strength=1.0)
    assert line[3, 20, 8] > 0 and line[3, 20, 0] == 0
    torch.testing.assert_close(line[:, 20, 20], img[:, 20, 20])
    rim = pp.outline(img, mode="rim", width=3.0, strength=1.0)
    assert rim[2, 20, 10] > img[2, 20, 10] + 0.1
    torch.testing.assert_close(rim[:, 20, 20], img[:, 20, 20])
    assert torch.equal(rim[3], img[3])


def test_zoom_magnifies_around_its_centre_and_uses_the_upscaler():
    img = uniform((0, 0, 0), 40, 40)
    img[0] = torch.linspace(0, 1, 40).view(1, 40)
    assert torch.equal(pp.zoom(img, factor=1.0), img)
    out = pp.zoom(img, center_x=0.0, center_y=0.0, factor=2.0)
    assert out[0, 20, 0] == pytest.approx(0.25, abs=0.03) and out[0, 20, -1] == pytest.approx(0.75, abs=0.03)
    hi = pp.zoom(img, center_x=0.0, center_y=0.0, factor=2.0, quality="high")
    torch.testing.assert_close(hi[0, 20], out[0, 20], atol=0.03, rtol=0)
    calls = []

    def upscale(crop, size, quality):
        calls.append((tuple(crop.shape), size, quality))
        return torch.nn.functional.interpolate(crop, size=size, mode="nearest")

    chain = pp.Postprocessor([["zoom", {"quality": "ultra"}]], upscale=upscale)
    assert chain(img, t=0.0).shape == img.shape
    assert calls == [((1, 4, 20, 20), (40, 40), "ultra")]


# --- time, state, chains ------------------------------------------------------------------------------------


def test_dynamic_filters_are_functions_of_time():
    img = character(96, 64)
    for spec in pp.filters():
        if not spec.dynamic:
            continue
        params = {"unboost": 0.1, "max_glitches": 10} if "unboost" in spec.defaults() else {}
        a1 = pp.Postprocessor([[spec.name, params]])(img, t=2.5)
        a2 = pp.Postprocessor([[spec.name, params]])(img, t=2.5)
        assert torch.equal(a1, a2), spec.name
        others = [pp.Postprocessor([[spec.name, params]])(img, t=2.5 + k * 0.37) for k in range(1, 6)]
        assert any(not torch.equal(a1, o) for o in others), spec.name


def test_chain_applies_filters_in_list_order():
    img = character()
    a = pp.Postprocessor([["monochrome_display", {"tint_rgb": [1.0, 0.2, 0.2]}], ["desaturate", {}]])(img, t=0)
    b = pp.Postprocessor([["desaturate", {}], ["monochrome_display", {"tint_rgb": [1.0, 0.2, 0.2]}]])(img, t=0)
    assert not torch.allclose(a, b)
    expected = pp.desaturate(pp.monochrome_display(img, tint_rgb=[1.0, 0.2, 0.2]))
    torch.testing.assert_close(a, expected)


def test_duplicate_instances_keep_separate_state():
    img = uniform((0.5, 0.5, 0.5), 32, 32, alpha=1.0)
    once = pp.Postprocessor([["noise", {"channel": "A"}]])(img, t=1.0)[3]  # alpha = m1
    twice = pp.Postprocessor([["noise", {"channel": "A"}], ["noise", {"channel": "A", "name": None}]])(img, t=1.0)[3]
    assert not torch.allclose(twice, once * once, atol=1e-3)  # m1 * m2, not the same grain twice
    named = pp.Postprocessor([["noise", {"name": "a"}], ["noise", {"name": "b"}]])
    keys = [st.key for _, _, st in named._compiled]
    assert keys == ["a", "b"]
    clash = pp.Postprocessor([["noise", {"name": "a"}], ["noise", {"name": "a"}]])
    assert len({st.key for _, _, st in clash._compiled}) == 2


def test_instances_keep_their_state_across_set():
    post = pp.Postprocessor([["vignetting", {}]])
    img = character()
    post(img, t=0)
    state = post._compiled[0][2]
    post.set([["vignetting", {"strength": 0.3}], ["bloom", {}]])
    assert post._compiled[0][2] is state
    assert [name for name, _ in post.chain] == ["vignetting", "bloom"]


def test_chain_does_not_modify_its_input_and_handles_batches():
    img = torch.stack([character(seed=1), character(seed=2)])
    before = img.clone()
    out = pp.Postprocessor(pp.DEFAULT_CHAIN)(img, t=3.0)
    assert torch.equal(img, before) and out.shape == img.shape
    assert pp.Postprocessor([])(img, t=0.0) is img


@pytest.mark.parametrize(
    ("chain", "needle"),
    [
        ([["blom", {}]], "unknown filter 'blom'"),
        ([["bloom", {"treshold": 0.5}]], "unknown parameter 'treshold'"),
        ([["bloom", {"threshold": 1.5}]], "'threshold' = 1.5 is outside its range [0.0, 1.0]"),
        ([["bloom", {"threshold": "high"}]], "'threshold' must be a number"),
        ([["scanlines", {"dynamic": 1}]], "'dynamic' must be true or false"),
        ([["scanlines", {"field": 0.5}]], "'field' must be a whole number"),
        ([["noise", {"channel": "B"}]], "'channel' must be one of ['Y', 'A']"),
        ([["desaturate", {"tint_rgb": [1, 2, 0]}]], "'tint_rgb' must be an RGB list"),
        ([["bloom"]], "expected [filter_name, {params}]"),
        ("bloom", "expected a list"),
    ],
)
def test_validation_messages(chain, needle):
    problems = pp.validate_chain(chain)
    assert len(problems) == 1 and needle in str(problems[0]), problems


def test_validation_reports_every_problem_and_set_keeps_the_old_chain():
    post = pp.Postprocessor([["bloom", {}]])
    bad = [["bloom", {"threshold": 2.0}], ["nope", {}], ["vignetting", {"strength": 0.3}]]
    with pytest.raises(pp.ChainError) as err:
        post.set(bad)
    assert [p.index for p in err.value.problems] == [0, 1]
    assert "entry 1 (nope)" in str(err.value)
    assert [name for name, _ in post.chain] == ["bloom"]


def test_float32_rounded_gui_values_at_a_range_edge_are_accepted():
    assert pp.validate_chain([["translucent_display", {"alpha": 0.8999999761581421}]]) == []
    assert pp.validate_chain([["translucent_display", {"alpha": 0.9000000238418579}]]) == []
    assert pp.validate_chain([["scanlines", {"field": 1.0}]]) == []


def test_older_filter_names_are_aliases():
    chain = [
        ["translucency", {"alpha": 0.5}],
        ["lumanoise", {"magnitude": 0.2, "sigma": 0.0}],
        ["alphanoise", {"magnitude": 0.1}],
        ["analog_badhsync", {"speed": 4.0}],
        ["analog_distort", {"strength": 0.2, "edge": "bottom"}],
        ["shift_distort", {"strength": -0.05, "name": "left"}],
    ]
    assert pp.validate_chain(chain) == []
    norm = pp.normalize_chain(chain)
    assert [n for n, _ in norm] == [
        "translucent_display",
        "noise",
        "noise",
        "analog_rippling_hsync",
        "analog_runaway_hsync",
        "digital_glitches",
    ]
    assert norm[1][1]["strength"] == 0.2 and norm[1][1]["channel"] == "Y" and norm[1][1]["sigma"] == 0.1
    assert norm[2][1]["channel"] == "A"
    assert norm[4][1]["asymmetry"] == 0.2 and norm[4][1]["placement"] == "bottom"
    assert pp.normalize_chain([["analog_distort", {}]])[0][1]["placement"] == "top"
    assert norm[5][1]["name"] == "left"
    out = pp.Postprocessor(chain)(character(), t=1.0)
    assert out.shape == (4, 33, 47)
    assert "lumanoise -> noise" in str(pp.validate_chain([["lumanoise", {"bogus": 1}]])[0])


@pytest.mark.parametrize("preset", ["animator.json", "glitchyholo.json", "redsepia.json"])
def test_reference_presets_load_and_run(preset):
    chain = json.loads((REFERENCE / preset).read_text())["postprocessor_chain"]
    assert pp.validate_chain(chain) == []
    post = pp.Postprocessor(chain)
    img = character(40, 30)
    for t in (0.0, 0.5, 1.0):
        out = post(img, t=t)
        assert out.shape == img.shape and torch.isfinite(out).all()
    # "name": null entries get distinct, stable keys per chain position
    keys = [st.key for _, _, st in post._compiled]
    assert len(set(keys)) == len(keys) and "None" not in " ".join(keys)
    assert json.loads(json.dumps(pp.normalize_chain(chain)))  # JSON-ready


def test_reference_chain_is_kept_as_a_preset_and_the_default_is_ours_everywhere():
    from raven_avatar.engine import settings

    ref = json.loads((REFERENCE / "animator.json").read_text())["postprocessor_chain"]
    assert [list(e) for e in pp.REFERENCE_CHAIN] == ref
    preset = settings.read_settings_file(settings.presets()["reference_look"])
    assert preset == {"postprocessor_chain": ref}
    ours = [list(e) for e in pp.DEFAULT_CHAIN]
    assert settings.defaults()["postprocessor_chain"] == ours
    assert settings.read_settings_file(settings.shipped_settings_path())["postprocessor_chain"] == ours


# --- building blocks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("border", ["replicate", "zeros"])
def test_blur_convolution_path_matches_the_slice_path(monkeypatch, border):
    x = torch.rand(2, 3, 13, 22, generator=torch.Generator().manual_seed(3))
    slices = ops.gaussian_blur(x, 1.7, 0.6, border=border)
    monkeypatch.setattr(ops, "_use_slices", lambda _: False)  # the GPU path, run on the CPU
    torch.testing.assert_close(ops.gaussian_blur(x, 1.7, 0.6, border=border), slices, atol=1e-6, rtol=0)
    flat = torch.full((1, 1, 9, 9), 0.4)
    torch.testing.assert_close(ops.gaussian_blur(flat, 2.0), flat)


# --- colour space ------------------------------------------------------------------------------------------


def test_srgb_transfer_functions_are_exact_and_invert():
    x = torch.linspace(0, 1, 101)
    img = torch.stack([x, x.flip(0), x, torch.full_like(x, 0.3)]).view(4, 1, 101)
    enc = pp.linear_to_srgb(img)
    assert enc[0, 0, 50].item() == pytest.approx(1.055 * 0.5 ** (1 / 2.4) - 0.055, abs=1e-6)
    assert torch.equal(enc[3], img[3])
    torch.testing.assert_close(pp.srgb_to_linear(enc), img, atol=1e-6, rtol=0)
    assert pp.srgb_to_linear(torch.tensor([[[0.04045]]] * 3))[0, 0, 0] == pytest.approx(0.04045 / 12.92)


def test_yuv_round_trip_and_luminance():
    img = character()
    torch.testing.assert_close(pp.yuv_to_rgb(pp.rgb_to_yuv(img)), img, atol=1e-5, rtol=0)
    yuv = pp.rgb_to_yuv(uniform((1.0, 1.0, 1.0), 2, 2))
    torch.testing.assert_close(yuv[:3, 0, 0], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6, rtol=0)
    blue = pp.rgb_to_yuv(uniform((0.0, 0.0, 1.0), 2, 2))
    assert blue[1, 0, 0] == pytest.approx(0.5, abs=1e-6)
    assert pp.luminance(uniform((0.0, 1.0, 0.0), 2, 2))[0, 0, 0] == pytest.approx(colorspace.KG)
    assert math.isclose(colorspace.KR + colorspace.KG + colorspace.KB, 1.0)
