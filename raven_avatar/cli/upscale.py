"""``avatar-render upscale``: upscale one RGB or RGBA PNG with the avatar upscaler (Anime4K or resampling).

The PNG is taken as sRGB, decoded to linear light for the engine and encoded back when written (8-bit, same
channels as the input). Bad input is reported and nothing is written; the output is replaced atomically.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch

from raven_avatar.engine.fileio import atomic_path, check_writable
from raven_avatar.engine.imageio import ImageFileError, open_image
from raven_avatar.engine.postprocessor.colorspace import linear_to_srgb, srgb_to_linear
from raven_avatar.engine.upscaler import MAX_FACTOR, MIN_FACTOR, MODES, PRESETS, QUALITIES, Upscaler

log = logging.getLogger(__name__)


def _factor(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not MIN_FACTOR <= value <= MAX_FACTOR:
        raise argparse.ArgumentTypeError(f"must be between {MIN_FACTOR} and {MAX_FACTOR}, got {value}")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "upscale",
        help="upscale an RGB/RGBA PNG (Anime4K or bilinear/bicubic/Lanczos)",
        description="Upscale one PNG by 1x-2x. Anime4K presets: A = restore + upscale (blurry input), "
        "B = soft restore + upscale (ringing/aliasing; needs the Anime4K v4 download), "
        "C = upscale only (clean renders; default). Presets that cannot be loaded fall back to bicubic.",
    )
    p.add_argument("--input", required=True, type=Path, help="input PNG (RGB or RGBA, sRGB)")
    p.add_argument("--output", required=True, type=Path, help="output PNG (replaced atomically)")
    p.add_argument("--factor", type=_factor, default=2.0, help="scale factor, 1.0-2.0 (default 2.0)")
    p.add_argument("--mode", choices=MODES, default="anime4k", help="default anime4k")
    p.add_argument("--preset", choices=PRESETS, default="C", help="Anime4K preset (default C)")
    p.add_argument("--quality", choices=QUALITIES, default="high", help="Anime4K model size (default high)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: cuda if available")
    return p


def _read_png(path: Path) -> torch.Tensor:
    """(C, H, W) linear float32 in [0, 1], C = 3 or 4. Raises ValueError with a readable message."""
    try:
        with open_image(path, formats=("PNG",)) as img:
            has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
            data = np.asarray(img.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32) / 255.0
    except ImageFileError as exc:
        raise ValueError(str(exc)) from None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    x = torch.from_numpy(np.ascontiguousarray(data)).permute(2, 0, 1)
    return torch.cat([srgb_to_linear(x[:3]), x[3:]], dim=0)


def _write_png(image: torch.Tensor, path: Path) -> None:
    from PIL import Image

    x = image.detach().float().cpu()
    x = torch.cat([linear_to_srgb(x[:3]), x[3:]], dim=0)
    data = (x.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    with atomic_path(path) as tmp:
        Image.fromarray(data, "RGBA" if data.shape[2] == 4 else "RGB").save(tmp, format="PNG")


def run(args: argparse.Namespace) -> int:
    if args.device == "cuda" and not torch.cuda.is_available():
        log.error("--device cuda: no CUDA device is available")
        return 1
    try:
        check_writable(args.output)
        image = _read_png(args.input)
    except (ValueError, OSError) as exc:
        log.error("%s", exc)
        return 1
    upscaler = Upscaler(
        factor=args.factor,
        mode=args.mode,
        preset=args.preset,
        quality=args.quality,
        device=None if args.device == "auto" else args.device,
    )
    out = upscaler(image)
    try:
        _write_png(out, args.output)
    except OSError as exc:
        log.error("cannot write %s: %s", args.output, exc)
        return 1
    log.info(
        "%s: %dx%d -> %dx%d with %s",
        args.output,
        image.shape[2],
        image.shape[1],
        out.shape[2],
        out.shape[1],
        upscaler.description,
    )
    return 0
