"""An image view on a DearPyGui raw texture: fits its panel, shows alpha over a checkerboard or a colour.

The texture reads straight from one float32 buffer that this view owns and never reallocates (DearPyGui keeps a
pointer to it); a new frame is copied into it, so the upload is a ``memcpy`` and thread-safe enough for a worker.
"""

from __future__ import annotations

import functools

import dearpygui.dearpygui as dpg
import numpy as np

PLACEHOLDER = "[No image loaded]"


def flatten_over(
    rgba: np.ndarray, background: tuple[float, float, float] | None = None, checker: int = 16
) -> np.ndarray:
    """Composite a straight-alpha sRGB float image ``(H, W, 4)`` onto an opaque background, for display.

    ``background`` is an sRGB colour in [0, 1]; ``None`` draws a grey checkerboard with ``checker``-pixel squares.
    Blending is done in display (sRGB) space, as image editors show transparency.
    """
    h, w = rgba.shape[:2]
    if background is None:
        bg = _checkerboard(h, w, checker)
    else:
        bg = np.asarray(background, dtype=np.float32).reshape(1, 1, 3)
    alpha = np.clip(rgba[..., 3:4], 0.0, 1.0)
    out = np.empty((h, w, 4), dtype=np.float32)
    out[..., :3] = np.clip(rgba[..., :3], 0.0, 1.0) * alpha + bg * (1.0 - alpha)
    out[..., 3] = 1.0
    return out


@functools.lru_cache(maxsize=8)
def _checkerboard(h: int, w: int, checker: int) -> np.ndarray:
    yy, xx = np.indices((h, w))
    board = (0.40 + 0.20 * (((yy // checker) + (xx // checker)) % 2)).astype(np.float32)[..., None]
    board.setflags(write=False)
    return board


class ImageView:
    """A fixed-size texture shown as large as fits in a given box, centred; a placeholder text until it has pixels."""

    def __init__(self, parent: int | str, width: int, height: int, *, texture_registry: int | str | None = None):
        self.width, self.height = width, height
        self._buffer = np.zeros(width * height * 4, dtype=np.float32)
        registry = texture_registry if texture_registry is not None else dpg.add_texture_registry()
        self.texture = dpg.add_raw_texture(width, height, self._buffer, format=dpg.mvFormat_Float_rgba, parent=registry)
        self.group = dpg.add_group(parent=parent)
        self.placeholder = dpg.add_text(PLACEHOLDER, parent=self.group)
        self.image = dpg.add_image(self.texture, parent=self.group, width=width, height=height, show=False)
        self.has_image = False

    def set_image(self, rgba: np.ndarray) -> None:
        """Show an opaque float32 ``(H, W, 4)`` image of the view's size (see :func:`flatten_over`)."""
        if rgba.shape != (self.height, self.width, 4):
            raise ValueError(f"image shape {rgba.shape} does not match the view ({self.height}, {self.width}, 4)")
        np.copyto(self._buffer, rgba.astype(np.float32, copy=False).reshape(-1))
        dpg.set_value(self.texture, self._buffer)
        if not self.has_image:
            self.has_image = True
            dpg.configure_item(self.placeholder, show=False)
            dpg.configure_item(self.image, show=True)

    def clear(self) -> None:
        self.has_image = False
        dpg.configure_item(self.image, show=False)
        dpg.configure_item(self.placeholder, show=True)

    def fit(self, box_width: int, box_height: int) -> None:
        """Scale the image to the largest size that fits ``box_width`` × ``box_height``, keeping its aspect."""
        scale = max(0.05, min(box_width / self.width, box_height / self.height))
        w, h = int(self.width * scale), int(self.height * scale)
        dpg.configure_item(self.image, width=w, height=h, indent=max(0, (box_width - w) // 2))
