"""Upscale rendered avatar frames by 1×–2×: Anime4K CNNs rebuilt from the original shaders, or plain resampling.

Modes:

- ``anime4k``: Anime4K presets at two qualities. The CNN always runs at exactly 2× (never 4× like the
  reference, whose second ×2 stage never switched off); other factors are a Lanczos reduction of that 2× result.
  Which networks run, and where their weights come from:

  ======  =======  ====================================================  ==================================
  preset  quality  networks                                              source
  ======  =======  ====================================================  ==================================
  A       high     Restore_CNN_VL → Upscale_CNN_x2_VL                    Mode A file (PyPI wheel), offline
  A       low      Restore_CNN_S → Upscale_CNN_x2_S                      Anime4K v4 pack (download)
  B       high     Restore_CNN_Soft_VL → Upscale_CNN_x2_VL               Anime4K v4 pack (download)
  B       low      Restore_CNN_Soft_S → Upscale_CNN_x2_S                 Anime4K v4 pack (download)
  C       high     Upscale_Denoise_CNN_x2_VL                             pack if downloaded, else the Mode A
                                                                         file's Upscale_CNN_x2_VL (stand-in)
  C       low      Upscale_Denoise_CNN_x2_S                              pack if downloaded, else the Mode A
                                                                         file's Upscale_CNN_x2_M (stand-in)
  ======  =======  ====================================================  ==================================

  Every preset ends with Clamp_Highlights (de-ring). A is for blurry input: on clean renders Restore sharpens what
  is not degraded and scores below bicubic; C (upscale only) is the default for clean renders.
  Presets A low and B download the pack when first used; C never reaches for the network on its own (it uses
  the Mode A stand-in until :func:`raven_avatar.engine.anime4k.shaders.fetch_pack` has been run once).
  When a preset's shaders cannot be had (offline, GitHub unreachable), the upscaler falls back to ``bicubic``, logs
  a warning and sets :attr:`Upscaler.notice` for the GUI to show.
- ``bilinear``, ``bicubic``, ``lanczos`` (separable Lanczos-3, ours): plain resampling.

RGBA: colour under (nearly) transparent pixels is garbage, so before any resampling the RGB is replaced by an
alpha-weighted fill (push-pull pyramid) that keeps opaque pixels exact and extends the nearby opaque colours
outwards. Edges then carry their own colour, not the garbage, and show no dark halo over a backdrop. Alpha is
resampled bilinearly (bicubic and Lanczos overshoot rings around silhouettes) and clamped. The Anime4K networks were
trained on display-encoded (sRGB) frames, so they run on sRGB-encoded RGB and the result is decoded back to linear.

Everything is static-shaped and sync-free (no ``.item()``), so a call can be captured in a CUDA graph (after one
warm-up call at that size, which builds the cached Lanczos matrices).

Example:
    >>> up = Upscaler(factor=2.0, mode="bicubic", device="cpu")
    >>> up(torch.rand(4, 16, 12)).shape
    torch.Size([4, 32, 24])
"""

from __future__ import annotations

import copy
import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raven_avatar.engine.anime4k import shaders
from raven_avatar.engine.anime4k.glsl import ShaderError, load_shader
from raven_avatar.engine.anime4k.modules import Anime4KCNN, ClampHighlights, build_network
from raven_avatar.engine.cudagraph import Replayer
from raven_avatar.engine.download import DownloadError
from raven_avatar.engine.postprocessor.colorspace import linear_to_srgb, srgb_to_linear

log = logging.getLogger(__name__)

MODES = ("anime4k", "bilinear", "bicubic", "lanczos")
PRESETS = ("A", "B", "C")
QUALITIES = ("low", "high")
MIN_FACTOR, MAX_FACTOR = 1.0, 2.0
_FILL_LEVELS = 4  # push-pull depth: fills 2**4 = 16 px around the silhouette, more than any kernel here reaches


@dataclass(frozen=True)
class _Recipe:
    networks: tuple[str, ...]  # the real Anime4K preset
    stand_in: tuple[str, ...] | None  # from the Mode A file, used until the pack is downloaded


_RECIPES = {
    ("A", "high"): _Recipe(("Restore_CNN_VL", "Upscale_CNN_x2_VL"), None),
    ("A", "low"): _Recipe(("Restore_CNN_S", "Upscale_CNN_x2_S"), None),
    ("B", "high"): _Recipe(("Restore_CNN_Soft_VL", "Upscale_CNN_x2_VL"), None),
    ("B", "low"): _Recipe(("Restore_CNN_Soft_S", "Upscale_CNN_x2_S"), None),
    ("C", "high"): _Recipe(("Upscale_Denoise_CNN_x2_VL",), ("Upscale_CNN_x2_VL",)),
    ("C", "low"): _Recipe(("Upscale_Denoise_CNN_x2_S",), ("Upscale_CNN_x2_M",)),
}

_PRESET_HELP = {
    "A": "restore then upscale: for blurry or resampled input (sharpens clean renders too much)",
    "B": "soft restore then upscale: for input with ringing or aliasing",
    "C": "upscale only: for clean renders with no degradation (default)",
}


@dataclass(frozen=True)
class UpscaleOption:
    """One choice the settings editor can offer, with what it runs and whether it needs a download first."""

    mode: str
    preset: str | None
    quality: str | None
    label: str
    runs: str
    needs_download: str | None  # None when usable now without network


_RESAMPLERS = {
    "bilinear": "bilinear resampling",
    "bicubic": "bicubic RGB, bilinear alpha",
    "lanczos": "Lanczos-3 RGB, bilinear alpha",
}
_NEED_WHEEL = "anime4k-python wheel from PyPI (110 kB)"
_NEED_PACK = "Anime4K v4 shader pack from GitHub"


def _pack_has(names: tuple[str, ...]) -> bool:
    return all(shaders.pack_shader(n) is not None for n in names)


def _plan(recipe: _Recipe) -> tuple[tuple[str, ...], str, str | None]:
    """The networks a recipe runs with what is cached now, a description, and the download still needed."""
    chain = " → ".join(recipe.networks)
    if _pack_has(recipe.networks):
        return recipe.networks, f"{chain} (Anime4K v4 pack)", None
    need_wheel = None if shaders.mode_a_cached() else _NEED_WHEEL
    if set(recipe.networks) <= shaders.MODE_A_NETWORKS:
        return recipe.networks, f"{chain} (from Anime4K_ModeA.glsl)", need_wheel
    if recipe.stand_in is not None:
        stand_in = " → ".join(recipe.stand_in)
        description = f"{stand_in} (from Anime4K_ModeA.glsl), standing in for {chain} until the pack is downloaded"
        return recipe.stand_in, description, need_wheel
    return recipe.networks, f"{chain} (Anime4K v4 pack)", _NEED_PACK


def available_modes() -> list[UpscaleOption]:
    """Every mode/preset/quality with a label, what it runs, and what (if anything) must be downloaded first.

    Looks only at the cache; never touches the network.
    """
    options = [UpscaleOption(mode, None, None, mode.capitalize(), runs, None) for mode, runs in _RESAMPLERS.items()]
    for (preset, quality), recipe in _RECIPES.items():
        _, description, need = _plan(recipe)
        runs = f"{description}; {_PRESET_HELP[preset]}"
        options.append(UpscaleOption("anime4k", preset, quality, f"Anime4K {preset} ({quality})", runs, need))
    return options


@functools.lru_cache(maxsize=8)
def _parsed(path: str, mtime_ns: int):
    return load_shader(path)


def _build(path: Path, name: str) -> nn.Module:
    shader = _parsed(str(path), path.stat().st_mtime_ns)
    if name not in shader.networks:
        raise ShaderError(path, 0, f"no network {name!r} in this file (it has: {', '.join(shader.networks)})")
    return build_network(shader.networks[name])


class _Anime4KPipeline(nn.Module):
    """Clamp_Highlights statistics → CNN stages (the last one ×2) → clamp, on sRGB-encoded RGB."""

    def __init__(self, clamp: ClampHighlights, stages: list[Anime4KCNN]):
        super().__init__()
        self.clamp = clamp
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stats = self.clamp.stats(x)
        for stage in self.stages:
            x = stage(x)
        return self.clamp(x, stats)


def _shader_path(name: str) -> Path:
    """The file holding network ``name``: the downloaded pack first, else the Mode A file."""
    path = shaders.pack_shader(name)
    if path is None and name in shaders.MODE_A_NETWORKS:
        path = shaders.mode_a_path()
    if path is None:
        raise DownloadError(f"{name} is only in the Anime4K v4 shader pack, which is not downloaded")
    return path


def _choose_networks(recipe: _Recipe, allow_download: bool) -> tuple[tuple[str, ...], str]:
    """Which networks run for a recipe, and how to describe them; downloads the pack when the recipe needs it."""
    names, description, need = _plan(recipe)
    if need == _NEED_PACK:
        if not allow_download:
            raise DownloadError("the Anime4K v4 shader pack is not downloaded and downloads are disabled")
        shaders.fetch_pack()
        names, description, need = _plan(recipe)
        if need == _NEED_PACK:
            raise DownloadError(f"the downloaded Anime4K pack lacks {', '.join(recipe.networks)}")
    return names, description


def _load_pipeline(recipe: _Recipe, allow_download: bool) -> tuple[_Anime4KPipeline, str]:
    """The modules for a recipe and a description of what they are. Raises DownloadError/ShaderError."""
    names, description = _choose_networks(recipe, allow_download)
    clamp = _build(_shader_path("Clamp_Highlights"), "Clamp_Highlights")
    stages = [_build(_shader_path(n), n) for n in names]
    if [s.scale for s in stages][-1:] != [2] or any(s.scale != 1 for s in stages[:-1]):
        raise ShaderError(_shader_path(names[-1]), 0, f"{' → '.join(names)}: expected restore stages, then one ×2")
    return _Anime4KPipeline(clamp, stages), description


def lanczos_matrix(in_size: int, out_size: int, a: int = 3) -> np.ndarray:
    """(out_size, in_size) Lanczos-``a`` resampling weights, pixel centres aligned, edges replicated.

    For downscaling the kernel is stretched by the ratio (antialiasing), so any size pair works.
    """
    scale = out_size / in_size
    stretch = max(1.0, 1.0 / scale)
    centers = (np.arange(out_size) + 0.5) / scale - 0.5
    support = a * stretch
    taps = np.arange(-math.ceil(support), math.ceil(support) + 1)
    idx = np.floor(centers)[:, None] + taps[None, :]
    d = (centers[:, None] - idx) / stretch
    w = np.sinc(d) * np.sinc(d / a) * (np.abs(d) < a)
    w /= w.sum(axis=1, keepdims=True)
    rows = np.repeat(np.arange(out_size), len(taps))
    cols = np.clip(idx, 0, in_size - 1).astype(int).ravel()
    m = np.zeros((out_size, in_size), dtype=np.float64)
    np.add.at(m, (rows, cols), w.ravel())
    return m


def _fill_transparent(rgba: torch.Tensor) -> torch.Tensor:
    """Straight RGB of (B, 4, H, W) RGBA in [0, 1], transparent areas filled from nearby opaque colours.

    Alpha-weighted push-pull: opaque pixels are unchanged; a pixel of alpha a keeps weight a for its own colour and
    takes the rest from coarser levels. Whatever colour sits under alpha 0 has no influence at all. Colour and alpha
    travel together as premultiplied RGBA, so each level costs four kernels.
    """
    q = torch.cat([rgba[:, :3] * rgba[:, 3:], rgba[:, 3:]], dim=1)
    pyramid = [q]
    for _ in range(_FILL_LEVELS):
        pyramid.append(F.avg_pool2d(pyramid[-1], 2, ceil_mode=True))
    acc = pyramid[-1]
    for q in reversed(pyramid[:-1]):
        up = F.interpolate(acc, size=q.shape[-2:], mode="bilinear", align_corners=False)
        acc = torch.addcmul(q, 1.0 - q[:, 3:], up)  # premultiplied "q over up"
    return acc[:, :3] / acc[:, 3:].clamp_min(1e-3)


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Upscaler:
    """Callable upscaler for (B, 4|3, H, W) or (4|3, H, W) linear RGB(A) in [0, 1]; see the module docstring.

    Args:
        factor: output size = round(factor × input size), 1.0–2.0. 1.0 returns the input (clamped), unchanged.
        mode: ``anime4k``, ``bilinear``, ``bicubic`` or ``lanczos``.
        preset, quality: the Anime4K preset (A/B/C) and model size (low/high); ignored by the other modes.
        device, dtype: default CUDA + float16 when available, else CPU + float32.
        channels_last: run the CNN in channels-last memory format. Off by default: the per-layer edge-replicating
            pad may not keep that layout on CUDA; ``scripts/bench_upscaler.py`` times both.
        allow_download: may fetch shaders (the PyPI wheel; the GitHub pack for presets that need it).
        cuda_graphs: on CUDA, replay the upscale from a CUDA graph per input size (one launch instead of ~100; see
            :class:`~raven_avatar.engine.cudagraph.Replayer`). The returned tensor is then overwritten by the next
            call: for a caller that uses each result before asking for the next (the frame pipeline).

    Attributes:
        mode: the mode actually running (``bicubic`` after a fallback).
        notice: None, or a one-line message for the GUI when the requested mode could not be used.
        description: what runs, in words (which networks, from which file).
    """

    def __init__(
        self,
        factor: float = 2.0,
        mode: str = "anime4k",
        preset: str = "C",
        quality: str = "high",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        channels_last: bool = False,
        allow_download: bool = True,
        cuda_graphs: bool = False,
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        if quality not in QUALITIES:
            raise ValueError(f"quality must be one of {', '.join(QUALITIES)}, got {quality!r}")
        self.device = torch.device(device) if device is not None else _default_device()
        self.dtype = dtype or (torch.float16 if self.device.type == "cuda" else torch.float32)
        self.channels_last = channels_last
        self.factor = factor
        self.requested = (mode, preset, quality)
        self.mode = mode
        self.notice: str | None = None
        self._net: _Anime4KPipeline | None = None
        self._lanczos: dict[tuple[int, int], torch.Tensor] = {}
        self.description = _RESAMPLERS.get(mode, "")
        if mode == "anime4k":
            self._setup_anime4k(preset, quality, allow_download)
        use_graphs = cuda_graphs and self.device.type == "cuda"
        self._replayer = Replayer(self._upscale, self.device) if use_graphs else None

    def _setup_anime4k(self, preset: str, quality: str, allow_download: bool) -> None:
        try:
            net, self.description = _load_pipeline(_RECIPES[preset, quality], allow_download)
        except (DownloadError, ShaderError) as exc:
            self.mode = "bicubic"
            self.description = f"{_RESAMPLERS['bicubic']} (fallback)"
            self.notice = f"Anime4K {preset} ({quality}) is unavailable, using bicubic instead: {exc}"
            log.warning("%s", self.notice)
            return
        net = copy.deepcopy(net).to(self.device, self.dtype).eval()
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self._net = net
        log.info("upscaler: %s", self.description)

    @property
    def factor(self) -> float:
        return self._factor

    @factor.setter
    def factor(self, value: float) -> None:
        value = float(value)
        if not MIN_FACTOR <= value <= MAX_FACTOR:
            raise ValueError(f"upscale factor must be between {MIN_FACTOR} and {MAX_FACTOR}, got {value}")
        self._factor = value

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return round(height * self._factor), round(width * self._factor)

    def _lanczos_resize(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        (h, w), (oh, ow) = x.shape[-2:], size
        mats = []
        for key in ((h, oh), (w, ow)):
            if key not in self._lanczos:
                self._lanczos[key] = torch.from_numpy(lanczos_matrix(*key)).to(self.device, self.dtype)
            mats.append(self._lanczos[key])
        return torch.matmul(mats[0], torch.matmul(x, mats[1].T))

    def _resize_rgb(self, rgb: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if self.mode == "anime4k":
            x = linear_to_srgb(rgb)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = srgb_to_linear(self._net(x)).contiguous()
            # 2x -> factor: an antialiased Lanczos reduction (a matmul: any dtype, any device, graph-safe).
            return y if y.shape[-2:] == size else self._lanczos_resize(y, size)
        if self.mode == "lanczos":
            return self._lanczos_resize(rgb, size)
        return F.interpolate(rgb, size=size, mode=self.mode, align_corners=False)

    @torch.inference_mode()
    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Upscale; returns the same layout (batched or not, 3 or 4 channels), clamped to [0, 1]."""
        if not isinstance(image, torch.Tensor) or image.dim() not in (3, 4) or image.shape[-3] not in (3, 4):
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(f"expected an image tensor (B, 3|4, H, W) or (3|4, H, W), got {shape}")
        batched = image.dim() == 4
        x = (image if batched else image.unsqueeze(0)).to(self.device, self.dtype)
        if self._factor == 1.0:
            out = x.clamp(0.0, 1.0)
        elif self._replayer is not None:
            out = self._replayer(x, self._factor)
        else:
            out = self._upscale(x)
        return out if batched else out.squeeze(0)

    def _upscale(self, x: torch.Tensor) -> torch.Tensor:
        size = self.output_size(*x.shape[-2:])
        x = x.clamp(0.0, 1.0)
        if x.shape[1] == 3:
            return self._resize_rgb(x, size).clamp_(0.0, 1.0)
        rgb = self._resize_rgb(_fill_transparent(x), size).clamp_(0.0, 1.0)
        alpha = F.interpolate(x[:, 3:], size=size, mode="bilinear", align_corners=False).clamp_(0.0, 1.0)
        return torch.cat([rgb, alpha], dim=1)
