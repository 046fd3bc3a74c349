"""Draw the shipped animefx cels (``raven_avatar/assets/animefx/fx_*.png``).

Each cel is a full 512x512 RGBA canvas in the THA3 framing: the head of a standard character sits roughly in
x 160..352, y 32..224, so the effects are placed around that box. Shapes are drawn at 4x with Pillow and downsampled
with Lanczos (Pillow resamples RGBA premultiplied, so edges stay clean), in one style: flat fills, a dark outline,
a white highlight.

    python scripts/draw_animefx.py                      # (re)write the assets
    python scripts/draw_animefx.py --preview CHAR.png --preview-output fx_preview.png
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

log = logging.getLogger("draw_animefx")

SIZE = 512
SCALE = 4  # supersampling factor
OUTLINE = (42, 32, 64, 255)  # dark violet-navy ink, shared by every effect
HIGHLIGHT = (255, 255, 255, 235)
INK_WIDTH = 2.5  # outline half-width, in output pixels

Point = tuple[float, float]


@dataclass
class Part:
    """One shape of an effect. All outlines of a frame are drawn before all fills, so touching parts merge."""

    points: list[Point]
    fill: tuple[int, int, int, int]
    stroke: float = 0.0  # > 0: an open polyline of this width instead of a filled polygon
    outline: bool = True


def _s(points: Sequence[Point]) -> list[Point]:
    return [(x * SCALE, y * SCALE) for x, y in points]


def _polyline(draw: ImageDraw.ImageDraw, points: list[Point], width: float, fill) -> None:
    """A polyline with round joins and caps (Pillow's own lines have square ends)."""
    draw.line(points, fill=fill, width=max(1, round(width)))
    r = width / 2
    for x, y in points:
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)


def render(parts: Sequence[Part]) -> Image.Image:
    """Draw ``parts`` at 4x and downsample to a 512x512 RGBA cel."""
    big = Image.new("RGBA", (SIZE * SCALE, SIZE * SCALE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(big)
    ink = 2 * INK_WIDTH * SCALE
    for part in parts:
        if not part.outline:
            continue
        pts = _s(part.points)
        if part.stroke:
            _polyline(draw, pts, part.stroke * SCALE + ink, OUTLINE)
        else:
            draw.polygon(pts, fill=OUTLINE)
            _polyline(draw, [*pts, pts[0]], ink, OUTLINE)
    for part in parts:
        pts = _s(part.points)
        if part.stroke:
            _polyline(draw, pts, part.stroke * SCALE, part.fill)
        else:
            draw.polygon(pts, fill=part.fill)
    return big.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


# --- shape builders (output-pixel coordinates) -------------------------------------------------------------------


def _transform(points: list[Point], cx: float, cy: float, scale: float = 1.0, angle: float = 0.0) -> list[Point]:
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    return [(cx + scale * (x * c - y * s), cy + scale * (x * s + y * c)) for x, y in points]


def heart(cx: float, cy: float, size: float, angle: float = 0.0) -> list[Point]:
    pts = []
    for i in range(96):
        t = 2 * math.pi * i / 96
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        pts.append((x / 32, y / 32))
    return _transform(pts, cx, cy, size, angle)


def drop(cx: float, cy: float, width: float, height: float, angle: float = 0.0) -> list[Point]:
    """A teardrop with its tip up; (cx, cy) is the centre of the round part."""
    pts = []
    for i in range(96):
        t = 2 * math.pi * i / 96
        pts.append((0.5 * width * math.sin(t) * math.sin(t / 2) ** 1.3, -0.5 * height * math.cos(t) - 0.0))
    return _transform(pts, cx, cy, 1.0, angle)


def ellipse(cx: float, cy: float, rx: float, ry: float | None = None, angle: float = 0.0) -> list[Point]:
    ry = rx if ry is None else ry
    pts = [(rx * math.cos(2 * math.pi * i / 64), ry * math.sin(2 * math.pi * i / 64)) for i in range(64)]
    return _transform(pts, cx, cy, 1.0, angle)


def arc(cx: float, cy: float, r: float, start: float, end: float, n: int = 32) -> list[Point]:
    """Points along a circle, angles in degrees (0 = +x, clockwise on screen)."""
    return [
        (cx + r * math.cos(math.radians(a)), cy + r * math.sin(math.radians(a)))
        for a in (start + (end - start) * i / (n - 1) for i in range(n))
    ]


def sparkle(cx: float, cy: float, r: float, angle: float = 0.0) -> list[Point]:
    """A four-pointed star with concave sides."""
    pts = []
    for i in range(128):
        t = 2 * math.pi * i / 128
        pts.append(
            (math.copysign(abs(math.cos(t)) ** 3, math.cos(t)), math.copysign(abs(math.sin(t)) ** 3, math.sin(t)))
        )
    return _transform(pts, cx, cy, r, angle)


def flower(cx: float, cy: float, r: float, angle: float = 0.0) -> list[Point]:
    pts = []
    for i in range(160):
        t = 2 * math.pi * i / 160
        rr = r * (0.55 + 0.45 * abs(math.cos(2.5 * t)))
        pts.append((rr * math.cos(t), rr * math.sin(t)))
    return _transform(pts, cx, cy, 1.0, angle)


# --- the effects --------------------------------------------------------------------------------------------------

RED = (226, 38, 54, 255)
PINK = (255, 105, 150, 255)
WATER = (150, 215, 255, 255)
YELLOW = (255, 214, 64, 255)
CLOUD = (70, 66, 84, 255)


def _shine(points: list[Point]) -> Part:
    return Part(points, HIGHLIGHT, outline=False)


def angervein(frame: int) -> list[Part]:
    """The cross-popping vein, upper right of the head; the second frame pulses bigger."""
    cx, cy, d = 334, 62, 11 + 2 * frame
    parts = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            ox, oy = cx + sx * d * 1.45, cy + sy * d * 1.45
            start = math.degrees(math.atan2(-sy, -sx))
            parts.append(Part(arc(ox, oy, d, start - 42, start + 42), RED, stroke=5 + frame))
    return parts


def sweatdrop(frame: int) -> list[Part]:
    """A big drop on the right side of the head, sliding down."""
    cx, cy = 350, 82 + 14 * frame
    body = drop(cx, cy, 30, 54, angle=-12)
    return [Part(body, WATER), _shine(ellipse(cx + 5, cy + 8, 4, 7, angle=-20))]


def smallsweatdrop(frame: int) -> list[Part]:
    """A small drop at the left temple, sliding down."""
    cx, cy = 172, 118 + 9 * frame
    return [Part(drop(cx, cy, 15, 27, angle=10), WATER), _shine(ellipse(cx - 2, cy + 4, 2, 3.5))]


def heart_fx(frame: int) -> list[Part]:
    """Hearts rising from beside the head, growing."""
    parts = []
    for (x, y, s, a), k in zip(((338, 96, 30, 14), (366, 52, 22, -10), (310, 30, 16, 8)), range(3), strict=True):
        if k > frame:
            break
        rise = 8 * (frame - k)
        size = s * (0.8 + 0.1 * (frame - k))
        pts = heart(x, y - rise, size, a)
        parts += [
            Part(pts, PINK),
            _shine(ellipse(x - size * 0.22, y - rise - size * 0.12, size * 0.1, size * 0.16, a + 30)),
        ]
    return parts


def blackcloud(frame: int) -> list[Part]:
    """A gloomy cloud over the head, drifting a little; a scribble inside."""
    dx = 4 * frame
    puffs = [(220, 40, 20), (250, 30, 24), (284, 34, 22), (308, 46, 17), (196, 50, 15), (262, 50, 20)]
    parts = [Part(ellipse(x + dx * (1 if i % 2 else -1), y + 2 * frame, r), CLOUD) for i, (x, y, r) in enumerate(puffs)]
    spiral = [
        (252 + dx + r * math.cos(t), 42 + r * math.sin(t) * 0.6)
        for t, r in ((k * 0.35, 2 + k * 0.55) for k in range(34))
    ]
    parts.append(Part(spiral, (150, 146, 170, 255), stroke=2.0, outline=False))
    return parts


def flowers(frame: int) -> list[Part]:
    """Small flowers blooming around the head; the second frame turns them."""
    spots = [(150, 70, 16), (372, 60, 14), (130, 150, 12), (388, 140, 17), (176, 20, 11), (340, 16, 12)]
    colours = [PINK, YELLOW, (255, 160, 200, 255), (255, 190, 90, 255), YELLOW, PINK]
    parts = []
    for (x, y, r), colour in zip(spots, colours, strict=True):
        parts.append(Part(flower(x, y, r, angle=18 * frame + x), colour))
        parts.append(Part(ellipse(x, y, r * 0.28), (255, 240, 150, 255) if colour != YELLOW else (255, 140, 60, 255)))
    return parts


def notice(frame: int) -> list[Part]:
    """Three emanata strokes at each upper side of the head ("!" without the "!")."""
    length = 14 + 8 * frame
    parts = []
    for side, cx in ((-1, 178), (1, 334)):
        for angle in (-60, -25, 10):
            a = math.radians(angle if side > 0 else 180 - angle)
            x0, y0 = cx + 22 * math.cos(a), 54 + 22 * math.sin(a)
            x1, y1 = x0 + length * math.cos(a), y0 + length * math.sin(a)
            parts.append(Part([(x0, y0), (x1, y1)], YELLOW, stroke=4))
    return parts


def beaming(frame: int) -> list[Part]:
    """Sparkles around the head, twinkling between two sizes."""
    spots = [(150, 60, 14), (364, 44, 18), (392, 128, 10), (128, 138, 11), (330, 8, 9)]
    parts = []
    for i, (x, y, r) in enumerate(spots):
        big = (i + frame) % 2 == 0
        parts.append(Part(sparkle(x, y, r * (1.25 if big else 0.8), angle=0), YELLOW))
        parts.append(_shine(ellipse(x, y, r * 0.18)))
    return parts


def _question_mark(cx: float, cy: float, h: float, angle: float) -> list[Part]:
    """A '?' of height ``h`` whose hook centre is (cx, cy - h/4)."""
    r = h * 0.22
    hook = arc(0, -h * 0.25, r, 180, 405) + [(r * 0.15, h * 0.08), (0, h * 0.14)]
    width = h * 0.13
    return [
        Part(_transform(hook, cx, cy, 1.0, angle), (120, 200, 255, 255), stroke=width),
        Part(_transform(ellipse(0, h * 0.38, width * 0.62), cx, cy, 1.0, angle), (120, 200, 255, 255)),
    ]


def question(frame: int) -> list[Part]:
    """'?' marks popping up beside the head, one more each frame."""
    marks = [(352, 60, 44, 14), (318, 20, 30, -8), (384, 112, 26, 24)]
    parts = []
    for k, (x, y, h, a) in enumerate(marks[: frame + 1]):
        parts += _question_mark(x, y, h * (1.0 if k < frame else 0.85), a)
    return parts


def _exclaim_mark(cx: float, cy: float, h: float, angle: float) -> list[Part]:
    w = h * 0.13
    bar = [(-w, -h * 0.5), (w, -h * 0.5), (w * 0.45, h * 0.2), (-w * 0.45, h * 0.2)]
    return [
        Part(_transform(bar, cx, cy, 1.0, angle), RED),
        Part(_transform(ellipse(0, h * 0.4, w * 0.75), cx, cy, 1.0, angle), RED),
    ]


def exclaim(frame: int) -> list[Part]:
    """A '!' above the upper right of the head: pops in small, overshoots, settles."""
    h = (30, 54, 46)[frame]
    return _exclaim_mark(352, 46, h, 12)


def shock(_frame: int) -> Image.Image:
    """Vertical gloom lines over the upper face, fading downward (no outline: it is a shadow, not an object)."""
    lines = Image.new("L", (SIZE * SCALE, SIZE * SCALE), 0)
    draw = ImageDraw.Draw(lines)
    for i, x in enumerate(range(196, 320, 9)):
        top = 58 + 10 * ((i * 7) % 3)
        bottom = 126 + 14 * ((i * 5) % 4)
        _polyline(draw, _s([(x, top), (x, bottom)]), (3.0 if i % 2 else 2.0) * SCALE, 255)
    small = lines.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    rows = np.clip((170.0 - np.arange(SIZE)) / 95.0, 0.0, 1.0)[:, None]  # 1 above y=75, 0 below y=170
    alpha = (np.asarray(small, dtype=np.float32) * rows * 0.8).round().astype(np.uint8)
    rgba = np.zeros((SIZE, SIZE, 4), np.uint8)
    rgba[..., :3] = (58, 40, 120)
    rgba[..., 3] = alpha
    return Image.fromarray(rgba, "RGBA")


#: effect name -> (frame count, drawer)
EFFECTS: dict[str, tuple[int, Callable[[int], list[Part] | Image.Image]]] = {
    "angervein": (2, angervein),
    "sweatdrop": (3, sweatdrop),
    "smallsweatdrop": (3, smallsweatdrop),
    "heart": (3, heart_fx),
    "blackcloud": (2, blackcloud),
    "flowers": (2, flowers),
    "shock": (1, shock),
    "notice": (2, notice),
    "beaming": (2, beaming),
    "question": (3, question),
    "exclaim": (3, exclaim),
}


def draw_all(output: Path) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (frames, drawer) in EFFECTS.items():
        for frame in range(frames):
            result = drawer(frame)
            image = result if isinstance(result, Image.Image) else render(result)
            path = output / f"fx_{name}{frame + 1}.png"
            image.save(path, optimize=True)
            written.append(path)
    return written


def preview(character: Path, cels: list[Path], output: Path) -> None:
    """All cels over ``character`` on a light backdrop, one tile each, labelled (sRGB "over" is fine for a look)."""
    base = Image.open(character).convert("RGBA").resize((SIZE, SIZE))
    tile = 256
    cols = 6
    rows = (len(cels) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * tile, rows * tile), (235, 235, 240))
    for i, path in enumerate(cels):
        frame = Image.new("RGBA", (SIZE, SIZE), (214, 222, 232, 255))
        frame.alpha_composite(base)
        frame.alpha_composite(Image.open(path).convert("RGBA"))
        view = frame.crop((96, 0, 416, 320)).resize((tile, tile), Image.Resampling.LANCZOS)
        ImageDraw.Draw(view).text((4, 2), path.stem, fill=(0, 0, 0))
        sheet.paste(view.convert("RGB"), ((i % cols) * tile, (i // cols) * tile))
    sheet.save(output)


def main(argv: list[str] | None = None) -> int:
    default_out = Path(__file__).resolve().parents[1] / "raven_avatar" / "assets" / "animefx"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=default_out, help="folder for the fx_*.png cels")
    parser.add_argument("--preview", type=Path, help="character PNG to composite every cel over, for a look")
    parser.add_argument("--preview-output", type=Path, default=Path("animefx_preview.png"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cels = draw_all(args.output)
    log.info("wrote %d cels to %s", len(cels), args.output)
    if args.preview:
        preview(args.preview, cels, args.preview_output)
        log.info("preview: %s", args.preview_output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
