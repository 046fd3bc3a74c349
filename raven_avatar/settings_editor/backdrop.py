"""The scene behind the avatar: a backdrop image fitted to the view, blurred, over a colour or a checkerboard.

Images here are NumPy arrays ``(H, W, 4)`` float32, sRGB, straight alpha, [0, 1] (what a DearPyGui texture takes).
Compositing (:func:`over`) is done in linear light, like the engine does it.
"""

from __future__ import annotations

import os

import numpy as np
import PIL.Image
import PIL.ImageFilter

from raven_avatar.engine.imageio import ImageFileError, open_image

FITS = ("cover", "contain", "stretch", "center")


class BackdropError(Exception):
    """A backdrop image that cannot be used; the message names the file."""


def load_image(path: str | os.PathLike) -> PIL.Image.Image:
    """The image at ``path`` as RGBA (any format Pillow reads); :class:`BackdropError` names the file."""
    try:
        with open_image(path) as img:
            return img.convert("RGBA")
    except ImageFileError as exc:
        raise BackdropError(f"backdrop: {exc}") from None
    except (OSError, ValueError) as exc:
        raise BackdropError(f"{path}: cannot read the backdrop image: {exc}") from None


def has_transparency(path: str | os.PathLike) -> bool:
    """Whether some pixel of the image is not fully opaque (decides character vs backdrop on drop)."""
    img = load_image(path)
    return img.getextrema()[3][0] < 255


def fit_image(img: PIL.Image.Image, width: int, height: int, fit: str) -> tuple[PIL.Image.Image, tuple[int, int]]:
    """``img`` resized for a ``width`` x ``height`` view, and where its top-left goes (may be negative: cropped).

    ``cover`` fills the view (centred, edges cut), ``contain`` shows it whole, ``stretch`` ignores the aspect
    ratio, ``center`` keeps its pixels 1:1 in the middle.
    """
    if fit not in FITS:
        raise ValueError(f"backdrop fit must be one of {', '.join(FITS)}, got {fit!r}")
    w, h = img.size
    if fit == "stretch":
        size = (width, height)
    elif fit == "center":
        size = (w, h)
    else:
        pick = max if fit == "cover" else min
        scale = pick(width / w, height / h)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size != (w, h):
        img = img.resize(size, PIL.Image.Resampling.LANCZOS)
    return img, ((width - size[0]) // 2, (height - size[1]) // 2)


def checkerboard(width: int, height: int, cell: int = 16) -> np.ndarray:
    """Opaque light/dark grey squares, the usual sign for "transparent here"."""
    y, x = np.mgrid[0:height, 0:width]
    light = ((x // cell + y // cell) % 2).astype(np.float32)
    grey = 0.30 + 0.12 * light
    return np.dstack([grey, grey, grey, np.ones_like(grey)]).astype(np.float32)


def solid(width: int, height: int, color: tuple[float, ...]) -> np.ndarray:
    """A flat sRGB colour (alpha taken from ``color[3]`` when given)."""
    rgba = (list(color) + [1.0])[:4] if len(color) == 3 else list(color)
    return np.broadcast_to(np.asarray(rgba, np.float32), (height, width, 4)).copy()


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def over(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """``top`` over ``bottom`` (same size, sRGB straight alpha), blended in linear light."""
    ta, ba = top[..., 3:4], bottom[..., 3:4]
    out_a = ta + ba * (1.0 - ta)
    rgb = _srgb_to_linear(top[..., :3]) * ta + _srgb_to_linear(bottom[..., :3]) * ba * (1.0 - ta)
    rgb = np.divide(rgb, out_a, out=np.zeros_like(rgb), where=out_a > 1e-6)
    return np.concatenate([_linear_to_srgb(rgb), out_a], axis=-1).astype(np.float32)


def paste(canvas: np.ndarray, img: np.ndarray, pos: tuple[int, int]) -> np.ndarray:
    """``img`` composited over ``canvas`` with its top-left at ``pos`` (clipped to the canvas); a new array."""
    out = canvas.copy()
    x, y = pos
    h, w = img.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, canvas.shape[1]), min(y + h, canvas.shape[0])
    if x0 < x1 and y0 < y1:
        out[y0:y1, x0:x1] = over(img[y0 - y : y1 - y, x0 - x : x1 - x], canvas[y0:y1, x0:x1])
    return out


def render_backdrop(
    image: PIL.Image.Image | None,
    width: int,
    height: int,
    *,
    fit: str = "cover",
    blur: bool = True,
    blur_amount: float = 12.0,
    color: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0),
) -> np.ndarray:
    """The whole scene behind the avatar for a ``width`` x ``height`` view.

    The base is ``color``; a colour with alpha 0 shows a checkerboard instead. The image (if any) is fitted, blurred
    (``blur_amount`` px per 1000 px of view, so the look does not depend on the window size) and laid over it.
    """
    width, height = max(1, int(width)), max(1, int(height))
    base = checkerboard(width, height) if len(color) == 4 and color[3] <= 0.0 else solid(width, height, color)
    if image is None:
        return base
    fitted, pos = fit_image(image, width, height, fit)
    if blur:
        radius = blur_amount * max(width, height) / 1000.0
        # Blur premultiplied so transparent edges do not bleed black into the picture.
        fitted = fitted.convert("RGBa").filter(PIL.ImageFilter.GaussianBlur(radius)).convert("RGBA")
    arr = np.asarray(fitted, dtype=np.float32) / 255.0
    return paste(base, arr, pos)
