"""An image view on a DearPyGui raw texture: fits its panel, shows an opaque image (the pose editor composites
its renders over a checkerboard or a colour on the device first: ``pose_editor.render.to_display``).

The texture reads straight from one float32 buffer that this view owns and never reallocates (DearPyGui keeps a
pointer to it); a new frame is copied into it, so the upload is a ``memcpy`` and thread-safe enough for a worker.
"""

from __future__ import annotations

import dearpygui.dearpygui as dpg
import numpy as np

PLACEHOLDER = "[No image loaded]"


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
        """Show an opaque float32 ``(H, W, 4)`` image of the view's size."""
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
