"""Draw the shipped backdrops (``raven_avatar/assets/backdrops/*.png``), procedurally, so they are our own.

- ``dusk.png``: an evening gradient with soft out-of-focus city lights.
- ``sky.png``: a daytime sky with soft clouds.
- ``grid.png``: a dark synthwave horizon with a glowing perspective grid.

    python scripts/draw_backdrops.py [--output DIR] [--size 1024]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

log = logging.getLogger("draw_backdrops")


def _gradient(size: int, stops: list[tuple[float, tuple[int, int, int]]]) -> np.ndarray:
    """A vertical gradient through (position 0..1, RGB) stops, as float (H, W, 3) in 0..255."""
    y = np.linspace(0.0, 1.0, size)
    pos = [p for p, _ in stops]
    rgb = np.stack([np.interp(y, pos, [c[i] for _, c in stops]) for i in range(3)], axis=-1)
    return np.broadcast_to(rgb[:, None, :], (size, size, 3)).copy()


def _finish(rgb: np.ndarray, seed: int) -> Image.Image:
    """Quantise with a little noise (no banding in the smooth gradients)."""
    noise = np.random.default_rng(seed).uniform(-0.5, 0.5, rgb.shape)
    return Image.fromarray(np.clip(rgb + noise, 0, 255).round().astype(np.uint8), "RGB")


def _glow_layer(size: int, blobs, blur: float) -> np.ndarray:
    """Soft coloured discs, additive, as float (H, W, 3)."""
    layer = Image.new("RGB", (size, size), (0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for x, y, r, colour in blobs:
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    return np.asarray(layer.filter(ImageFilter.GaussianBlur(blur)), dtype=np.float64)


def dusk(size: int) -> Image.Image:
    rgb = _gradient(
        size, [(0.0, (38, 34, 86)), (0.45, (120, 70, 130)), (0.75, (236, 132, 110)), (1.0, (250, 196, 140))]
    )
    rng = np.random.default_rng(1)
    palette = [(255, 200, 120), (255, 150, 170), (160, 200, 255), (255, 230, 170)]
    blobs = [
        (rng.uniform(0, size), rng.uniform(0.45, 1.0) * size, rng.uniform(0.015, 0.05) * size, palette[i % 4])
        for i in range(46)
    ]
    bokeh = _glow_layer(size, blobs, size * 0.006)
    return _finish(np.clip(rgb + 0.45 * bokeh, 0, 255), 1)


def sky(size: int) -> Image.Image:
    rgb = _gradient(size, [(0.0, (70, 130, 215)), (0.6, (140, 195, 240)), (1.0, (214, 236, 250))])
    rng = np.random.default_rng(2)
    clouds = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(clouds)
    for _ in range(9):
        cx, cy = rng.uniform(-0.1, 1.1) * size, rng.uniform(0.1, 0.85) * size
        w = rng.uniform(0.12, 0.3) * size
        for _ in range(7):  # each cloud is a cluster of puffs, flat at the bottom
            px, py = cx + rng.uniform(-0.45, 0.45) * w, cy - abs(rng.normal(0, 0.16)) * w
            r = rng.uniform(0.16, 0.3) * w
            draw.ellipse((px - r, py - r, px + r, min(py + r, cy + 0.05 * w)), fill=255)
    mask = np.asarray(clouds.filter(ImageFilter.GaussianBlur(size * 0.012)), dtype=np.float64)[..., None] / 255
    white = np.array([250.0, 252.0, 255.0])
    return _finish(rgb * (1 - 0.9 * mask) + white * 0.9 * mask, 2)


def grid(size: int) -> Image.Image:
    horizon = int(size * 0.58)
    rgb = _gradient(size, [(0.0, (10, 8, 30)), (0.56, (70, 24, 90)), (0.58, (28, 10, 48)), (1.0, (8, 6, 24))])
    sun = _glow_layer(size, [(size / 2, horizon, size * 0.2, (255, 120, 90))], size * 0.05)
    lines = Image.new("RGB", (size, size), (0, 0, 0))
    draw = ImageDraw.Draw(lines)
    colour = (255, 80, 220)
    width = max(1, size // 400)
    for k in range(-14, 15):  # rays converging on the vanishing point
        draw.line((size / 2, horizon, size / 2 + k * size * 0.16, size), fill=colour, width=width)
    for i in range(1, 16):  # horizontal lines, closer together toward the horizon
        y = horizon + (size - horizon) * (i / 15) ** 2.2
        draw.line((0, y, size, y), fill=colour, width=width)
    glow = np.asarray(lines.filter(ImageFilter.GaussianBlur(size * 0.004)), dtype=np.float64)
    sharp = np.asarray(lines, dtype=np.float64)
    ground = (np.arange(size) >= horizon)[:, None, None]
    return _finish(np.clip(rgb + 0.8 * sun + ground * (0.8 * sharp + 1.5 * glow), 0, 255), 3)


BACKDROPS = {"dusk": dusk, "sky": sky, "grid": grid}


def main(argv: list[str] | None = None) -> int:
    default_out = Path(__file__).resolve().parents[1] / "raven_avatar" / "assets" / "backdrops"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=default_out, help="folder for the backdrop PNGs")
    parser.add_argument("--size", type=int, default=1024, help="square size in pixels (default: 1024)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.output.mkdir(parents=True, exist_ok=True)
    for name, draw in BACKDROPS.items():
        path = args.output / f"{name}.png"
        draw(args.size).save(path, optimize=True)
        log.info("wrote %s (%d KiB)", path, path.stat().st_size // 1024)
    return 0


if __name__ == "__main__":
    sys.exit(main())
