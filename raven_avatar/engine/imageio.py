"""Opening image files that users give: one pixel limit for every entry point, checked before decoding.

Characters, cels, backdrops and ``avatar-render upscale`` input all open their files through :func:`open_image`,
so a huge or hostile image (a 20000x20000 PNG is a few kB on disk and 1.6 GB decoded) is refused from its header
with one clear message, never decoded into memory, and a broken file gives the same kind of error everywhere.

Example:
    >>> with open_image("aria.png") as img:  # doctest: +SKIP
    ...     rgba = img.convert("RGBA")
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import PIL.Image

#: Largest image accepted, in pixels: 4096x4096 (16.8 megapixels; a 4K UHD backdrop is 8.3, a character 0.26).
#: An upscale needs about 300 bytes per input pixel at 2x: ``avatar-render upscale --mode bicubic --device cpu`` of
#: a 4096x4096 PNG peaked at 5.0 GB RSS (GNU time, this project's 2-core CI-class machine), 12000x12000 died at 6.8+.
MAX_PIXELS = 4096 * 4096


class ImageFileError(ValueError):
    """An image file that cannot be used; the message starts with the file's path and says why."""


def _megapixels(n: int) -> str:
    return f"{n / 1e6:.1f} megapixels"


@contextlib.contextmanager
def open_image(path: str | os.PathLike[str], *, formats: tuple[str, ...] | None = None) -> Iterator[PIL.Image.Image]:
    """Yield the decoded image at ``path`` (valid inside the ``with`` block).

    Args:
        path: the image file.
        formats: Pillow format names accepted (e.g. ``("PNG",)``); None accepts any format Pillow reads.

    Raises:
        ImageFileError: missing file, a folder, not an image, another format, larger than :data:`MAX_PIXELS`
            (checked from the header, before decoding), truncated or corrupt data.
    """
    path = Path(path)
    if path.is_dir():
        raise ImageFileError(f"{path}: is a folder, not an image file")
    if not path.is_file():
        raise ImageFileError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            img = PIL.Image.open(path)
    except PIL.Image.DecompressionBombError:
        raise ImageFileError(f"{path}: image too large (more than {_megapixels(MAX_PIXELS)}); scale it down") from None
    except PIL.UnidentifiedImageError:
        raise ImageFileError(f"{path}: cannot read it: not an image file (or a format Pillow does not know)") from None
    except OSError as e:
        raise ImageFileError(f"{path}: cannot read it: {e.strerror or e}") from None
    with img:
        if formats is not None and img.format not in formats:
            raise ImageFileError(f"{path}: a {img.format or 'unknown'} image, not a {' or '.join(formats)}")
        w, h = img.size
        if w * h > MAX_PIXELS:
            side = int(MAX_PIXELS**0.5)
            raise ImageFileError(
                f"{path}: image is {w}x{h} ({_megapixels(w * h)}), larger than the limit of "
                f"{_megapixels(MAX_PIXELS)} ({side}x{side}); scale it down"
            )
        try:
            img.load()
        except (OSError, SyntaxError, ValueError) as e:  # Pillow raises all three for broken files
            raise ImageFileError(f"{path}: cannot read the image, truncated or not a valid image file ({e})") from None
        yield img
