"""A character: the base image ``NAME.png`` plus the cels drawn for it, as linear-light tensors.

Files in the character's folder (all full-canvas RGBA, the same framing as the base):

- ``NAME.png``: the base image, 512x512 RGBA; other sizes are padded to a square (transparent, bottom-centre) and
  Lanczos-resized, with a warning in the report. Cels get the same treatment.
- ``NAME_<cel>.png`` for the blending cels in :data:`SUPPORTED_CELS` (blush, shadow, sweat, tears, data eyes, waver),
  blended onto the character before posing.
- ``NAME_fx_<effect><n>.png`` animefx cels for this character; else a shared ``fx_<effect><n>.png`` in the same
  folder; else the shipped set in ``raven_avatar/assets/animefx/``.
- ``NAME_*icon.png`` files are ignored; any other ``NAME_*.png`` is listed as unknown in the report.

Loading never half-succeeds silently: problems with the base image raise :class:`CharacterError` naming the file and
the problem, problems with a cel skip that cel and add a warning to :attr:`Character.report`.

Example:
    >>> character = load_character("characters/aria1.png", device="cuda", dtype=torch.float16)
    >>> print(character.report.summary())
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from raven_avatar.engine.imageio import ImageFileError, open_image
from raven_avatar.engine.paths import asset_path
from raven_avatar.engine.postprocessor.colorspace import srgb_to_linear

log = logging.getLogger(__name__)

#: Blending cels in canonical stacking order, bottom first (the reference's order).
SUPPORTED_CELS: tuple[str, ...] = (
    "blush1",
    "blush2",
    "blush3",
    "shadow1",
    "sweat1",
    "sweat2",
    "sweat3",
    "tears1",
    "tears2",
    "tears3",
    "data1",
    "data2",
    "data3",
    "data4",
    "waver1",
    "waver2",
)

#: The THA3 input size.
IMAGE_SIZE = 512

# How often :func:`reload_character` retries a file that is still being written, and the first pause (doubles).
_RELOAD_RETRIES = 4
_RELOAD_PAUSE_S = 0.05


# The shipped animefx cels, decoded once: path -> ((mtime_ns, size), CPU float32 tensor).
_SHIPPED_CACHE: dict[Path, tuple[tuple[int, int] | None, torch.Tensor]] = {}
# Linear value of each 8-bit sRGB code.
_SRGB8_TO_LINEAR = srgb_to_linear(torch.arange(256, dtype=torch.float64) / 255).float().numpy()


class CharacterError(Exception):
    """A character's base image cannot be used; the message names the file and the problem."""


@dataclass
class CharacterReport:
    """What loading found, for the GUIs to show."""

    cels: list[str] = field(default_factory=list)  # blending cels found, canonical order
    fx_cels: dict[str, str] = field(default_factory=dict)  # fx cel -> "character", "folder" or "shipped"
    unknown_files: list[str] = field(default_factory=list)  # NAME_*.png files that are no known cel
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"cels: {', '.join(self.cels) if self.cels else 'none'}"]
        by_source: dict[str, list[str]] = {}
        for name, source in self.fx_cels.items():
            by_source.setdefault(source, []).append(name)
        fx = "; ".join(f"{len(names)} {source}" for source, names in by_source.items())
        lines.append(f"animefx cels: {fx or 'none'}")
        if self.unknown_files:
            lines.append(f"unknown files (ignored): {', '.join(self.unknown_files)}")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)


@dataclass
class Character:
    """A loaded character. Tensors are ``(4, 512, 512)``, linear light, [0, 1], straight alpha.

    Tensors may be shared with other loads (unchanged files, the shipped animefx): treat them as read-only.
    """

    name: str
    path: Path | None  # None for a character made from loose image files (see :func:`character_from_images`)
    image: torch.Tensor
    cels: dict[str, torch.Tensor] = field(default_factory=dict)
    fx_cels: dict[str, torch.Tensor] = field(default_factory=dict)
    report: CharacterReport = field(default_factory=CharacterReport)
    # (mtime_ns, size) of each file loaded, keyed by path; lets reload skip unchanged files.
    stamps: dict[Path, tuple[int, int]] = field(default_factory=dict, repr=False)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Character:
        """A copy with every tensor on ``device`` (and ``dtype``, if given)."""

        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype or t.dtype)

        return dataclasses.replace(
            self,
            image=move(self.image),
            cels={k: move(v) for k, v in self.cels.items()},
            fx_cels={k: move(v) for k, v in self.fx_cels.items()},
        )


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def _to_rgba(img: PIL.Image.Image, path: Path) -> PIL.Image.Image:
    """Any PNG mode with transparency -> 8-bit RGBA; no transparency -> :class:`CharacterError`."""
    if img.mode == "RGBA":
        return img
    has_alpha = img.mode in ("LA", "La", "PA", "RGBa") or "transparency" in img.info
    if not has_alpha:
        raise CharacterError(
            f"{path}: the image has no alpha channel (mode {img.mode}); THA3 needs the character cut out on a "
            "transparent background. Save it as an RGBA PNG."
        )
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        # 16-bit greyscale with a tRNS colour: scale to 8 bits first, Pillow's convert would clip instead.
        arr = np.asarray(img, dtype=np.float64)
        transparent = arr == img.info["transparency"]
        grey = np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
        alpha = np.where(transparent, 0, 255).astype(np.uint8)
        return PIL.Image.fromarray(np.stack([grey, grey, grey, alpha], axis=-1), "RGBA")
    return img.convert("RGBA")


def _fit(img: PIL.Image.Image, path: Path, warnings: list[str]) -> PIL.Image.Image:
    """Pad to a square on a transparent canvas, aligned bottom-centre, and Lanczos-resize to 512x512.

    Bottom-centre is where THA3 expects a character: the head in the upper middle, the body cut off at the bottom
    edge, so a wide image gains empty space above, a tall one at both sides, and nothing of the drawing is lost.
    (Pillow resamples RGBA premultiplied, so the transparent border does not darken the edge.)
    """
    w, h = img.size
    if (w, h) == (IMAGE_SIZE, IMAGE_SIZE):
        return img
    side = max(w, h)
    steps = []
    if w != h:
        canvas = PIL.Image.new("RGBA", (side, side), (0, 0, 0, 0))
        canvas.paste(img, ((side - w) // 2, side - h))
        img = canvas
        steps.append(f"padded to {side}x{side} on a transparent canvas (aligned bottom-centre)")
    if side != IMAGE_SIZE:
        img = img.resize((IMAGE_SIZE, IMAGE_SIZE), PIL.Image.Resampling.LANCZOS, reducing_gap=3.0)
        steps.append(f"resized to {IMAGE_SIZE}x{IMAGE_SIZE} (Lanczos)")
    warnings.append(
        f"{path.name}: size {w}x{h}, expected {IMAGE_SIZE}x{IMAGE_SIZE}; {' and '.join(steps)}. THA3 expects the "
        "head in the upper middle of a 512x512 canvas; see docs/CHARACTERS.md."
    )
    return img


def load_rgba(path: Path, warnings: list[str]) -> torch.Tensor:
    """Read one PNG as a ``(4, 512, 512)`` float32 CPU tensor, linear RGB, straight alpha; RGB zeroed where α = 0.

    Raises :class:`CharacterError` for a missing, unreadable, truncated or alpha-less file; size fixes are added
    to ``warnings``.
    """
    try:
        with open_image(path) as img:
            rgba = _fit(_to_rgba(img, path), path, warnings)
    except ImageFileError as e:
        raise CharacterError(str(e)) from None
    except (OSError, SyntaxError, ValueError) as e:  # Pillow can fail converting a broken file, too
        raise CharacterError(f"{path}: cannot read the image, truncated or not a valid image file ({e})") from e
    arr = np.asarray(rgba, dtype=np.uint8)
    out = np.empty((4, *arr.shape[:2]), dtype=np.float32)
    out[:3] = _SRGB8_TO_LINEAR[arr.transpose(2, 0, 1)[:3]]  # a table lookup: exact for 8-bit input, and fast
    out[3] = arr[..., 3] * np.float32(1 / 255)
    out[:3] *= out[3] > 0
    return torch.from_numpy(out)


def _discover(path: Path) -> tuple[dict[str, Path], dict[str, tuple[Path, str]], list[str]]:
    """Find the cel files of the character at ``path``: (blending cels, fx cels with source, unknown files)."""
    stem, folder = path.stem, path.parent
    prefix = f"{stem}_"
    cels: dict[str, Path] = {}
    fx: dict[str, tuple[Path, str]] = {}
    unknown: list[str] = []
    shipped = asset_path("animefx")
    if shipped.is_dir():
        for f in sorted(shipped.glob("fx_*.png")):
            fx[f.stem] = (f, "shipped")
    for f in sorted(folder.glob("fx_*.png")):
        fx[f.stem] = (f, "folder")
    for f in sorted(folder.glob(f"{prefix}*.png")):
        suffix = f.stem[len(prefix) :]
        if suffix in SUPPORTED_CELS:
            cels[suffix] = f
        elif suffix.startswith("fx_"):
            fx[suffix] = (f, "character")
        elif not suffix.endswith("icon"):
            unknown.append(f.name)
    ordered = {name: cels[name] for name in SUPPORTED_CELS if name in cels}
    return ordered, dict(sorted(fx.items())), unknown


def _shipped_tensor(f: Path, stamp: tuple[int, int] | None, warnings: list[str]) -> torch.Tensor:
    """A shipped animefx cel: the same few files for every character, decoded once per process."""
    cached = _SHIPPED_CACHE.get(f)
    if cached is None or cached[0] != stamp:
        cached = _SHIPPED_CACHE[f] = (stamp, load_rgba(f, warnings))
    return cached[1]


def _load(
    path: Path,
    device: torch.device | str,
    dtype: torch.dtype,
    previous: Character | None = None,
    strict_cels: bool = False,
) -> Character:
    """Load (or, given ``previous``, refresh) a character; unchanged files reuse ``previous``'s tensors.

    A broken cel is skipped with a warning, unless ``strict_cels``: then it raises, so that a reload can retry a cel
    that is still being written.
    """
    warnings: list[str] = []
    stamps: dict[Path, tuple[int, int]] = {}
    old_tensors: dict[Path, torch.Tensor] = {}
    if previous is not None:
        old_cels, old_fx, _ = _discover(previous.path)
        old_tensors[previous.path] = previous.image
        old_tensors.update({f: previous.cels[n] for n, f in old_cels.items() if n in previous.cels})
        old_tensors.update({f: previous.fx_cels[n] for n, (f, _) in old_fx.items() if n in previous.fx_cels})

    def read(f: Path) -> torch.Tensor:
        stamp = _stamp(f) if f.is_file() else None
        if previous is not None and stamp is not None and previous.stamps.get(f) == stamp and f in old_tensors:
            stamps[f] = stamp
            return old_tensors[f]
        shipped = source_of.get(f) == "shipped"
        tensor = _shipped_tensor(f, stamp, warnings) if shipped else load_rgba(f, warnings)
        stamps[f] = _stamp(f)
        return tensor.to(device=device, dtype=dtype)

    cel_files, fx_files, unknown = _discover(path)
    source_of = {f: source for f, source in fx_files.values()}
    image = read(path)
    if not bool((image[3] > 0).any()):
        raise CharacterError(f"{path}: the image is fully transparent; there is no character to pose")
    report = CharacterReport(unknown_files=unknown, warnings=warnings)
    cels: dict[str, torch.Tensor] = {}
    fx_cels: dict[str, torch.Tensor] = {}
    for name, (f, source) in [*((n, (f, "")) for n, f in cel_files.items()), *fx_files.items()]:
        try:
            tensor = read(f)
        except CharacterError as e:
            if strict_cels:
                raise
            warnings.append(f"cel {name} skipped: {e}")
            continue
        if source:
            fx_cels[name] = tensor
            report.fx_cels[name] = source
        else:
            cels[name] = tensor
            if not bool((tensor[3] > 0).any()):
                warnings.append(f"cel {name} ({f.name}) is fully transparent; it will have no effect")
    report.cels = list(cels)
    for w in warnings:  # a warning about a file already starts with its name
        log.warning("%s", w if w.startswith(f"{path.name}: ") else f"{path.name}: {w}")
    return Character(path.stem, path, image, cels, fx_cels, report, stamps)


def load_character(
    path: str | os.PathLike[str], *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> Character:
    """Load the character ``NAME.png`` and every cel beside it; see the module docstring for the file names."""
    return _load(Path(path), device, dtype)


_FX_NAME = re.compile(r"fx_[a-z][a-z0-9_]*")  # an animefx cel name


def character_from_images(
    name: str,
    base: str | os.PathLike[str],
    cels: Mapping[str, str | os.PathLike[str]] | None = None,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Character:
    """A character from image files that are not a character folder (e.g. uploads the server saved).

    ``base`` is the base image (sized like the base image of :func:`load_character`); ``cels`` maps a blending-cel
    name (:data:`SUPPORTED_CELS`) or an animefx cel name (``fx_<effect><n>``, overriding the shipped one) to its
    image file. Nothing is looked up beside the files: the character has no folder (``path`` is None), so it has no
    emotion files of its own; fx cels not given come from the shipped set. A bad cel name raises ``ValueError``
    (before any file is read); a cel that cannot be decoded raises :class:`CharacterError` naming its file (the
    images are checked as a whole, unlike a folder, where a broken cel is skipped).
    """
    cels = dict(cels or {})
    unknown = [n for n in cels if n not in SUPPORTED_CELS and not _FX_NAME.fullmatch(n)]
    if unknown:
        raise ValueError(
            f"unknown cel name(s) {', '.join(map(repr, unknown))}; blending cels are {', '.join(SUPPORTED_CELS)}, "
            "animefx cels are named fx_<effect><n>"
        )
    warnings: list[str] = []
    image = load_rgba(Path(base), warnings).to(device=device, dtype=dtype)
    if not bool((image[3] > 0).any()):
        raise CharacterError(f"{base}: the image is fully transparent; there is no character to pose")
    report = CharacterReport(warnings=warnings)
    fx_cels: dict[str, torch.Tensor] = {}
    shipped = asset_path("animefx")
    if shipped.is_dir():
        for f in sorted(shipped.glob("fx_*.png")):
            fx_cels[f.stem] = _shipped_tensor(f, _stamp(f), warnings).to(device=device, dtype=dtype)
            report.fx_cels[f.stem] = "shipped"
    blending: dict[str, torch.Tensor] = {}
    order = {n: i for i, n in enumerate(SUPPORTED_CELS)}
    for cel in sorted(cels, key=lambda n: (order.get(n, len(order)), n)):
        tensor = load_rgba(Path(cels[cel]), warnings).to(device=device, dtype=dtype)
        if cel in SUPPORTED_CELS:
            blending[cel] = tensor
            if not bool((tensor[3] > 0).any()):
                warnings.append(f"cel {cel} is fully transparent; it will have no effect")
        else:
            fx_cels[cel] = tensor
            report.fx_cels[cel] = "character"
    report.cels = list(blending)
    return Character(name, None, image, blending, dict(sorted(fx_cels.items())), report)


def reload_character(previous: Character) -> Character:
    """Re-read a character after its files changed (hot reload), reusing every unchanged file's tensor.

    A file that is still being written usually reads as a truncated PNG: that is retried a few times. If the
    character still cannot be loaded, ``previous`` is kept: the result is ``previous`` with the error added to its
    report's warnings, so the GUI keeps showing the last good version and says why.
    """
    if previous.path is None:
        raise CharacterError(f"{previous.name}: made from loose images (character_from_images), not a folder to reload")
    device, dtype = previous.image.device, previous.image.dtype
    pause = _RELOAD_PAUSE_S
    for attempt in range(_RELOAD_RETRIES + 1):
        last = attempt == _RELOAD_RETRIES  # the last try settles for skipping a broken cel
        try:
            return _load(previous.path, device, dtype, previous, strict_cels=not last)
        except CharacterError as e:
            error = e
        if not last:
            time.sleep(pause)
            pause *= 2
    log.warning("reload of %s failed, keeping the previous version: %s", previous.path, error)
    report = dataclasses.replace(
        previous.report, warnings=[*previous.report.warnings, f"reload failed, kept the previous version: {error}"]
    )
    return dataclasses.replace(previous, report=report)
