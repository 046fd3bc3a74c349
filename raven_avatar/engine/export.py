"""Writing frames to files: linear tensors to sRGB 8-bit, atomic PNG writes.

Every writer here is atomic (temporary file, fsync, rename): an interrupted export never leaves a half-written
file where a good one was.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .download import atomic_path
from .postprocessor.colorspace import linear_to_srgb


def to_srgb8(image: torch.Tensor) -> np.ndarray:
    """A linear RGBA image (4, H, W) or (1, 4, H, W) in [0, 1] as an (H, W, 4) uint8 sRGB array."""
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 4:
        raise ValueError(f"expected an RGBA image (4, H, W), got shape {tuple(image.shape)}")
    srgb = linear_to_srgb(image.detach().float().clamp(0, 1))
    return (srgb * 255 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def encode_png(rgba: np.ndarray, *, compress_level: int = 6) -> bytes:
    """PNG bytes of an (H, W, 4) uint8 array."""
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def write_png(rgba: np.ndarray | torch.Tensor, path: str | Path) -> Path:
    """Write an RGBA image atomically; a tensor is taken as linear light (see :func:`to_srgb8`)."""
    array = to_srgb8(rgba) if isinstance(rgba, torch.Tensor) else rgba
    data = encode_png(array)  # encode first: a failure leaves nothing behind
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path
