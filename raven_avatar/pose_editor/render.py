"""Turning the editor's state into pixels: cels blended onto the character, THA3, the chosen output, display colours.

One :class:`EditorRenderer` per editor owns a posing session, so an unchanged character image skips the decomposer
stage and a pose that only turns the head skips the face stages. Images follow the engine convention: linear RGBA in
[0, 1], straight alpha.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from raven_avatar.engine.character import Character
from raven_avatar.engine.compositing import composite_cels
from raven_avatar.engine.poser import IMAGE_SIZE, THA3, Poser
from raven_avatar.engine.postprocessor.colorspace import linear_to_srgb

#: Names of the THA3 outputs the output-index selector offers (index 0 is the final image).
OUTPUT_NAMES: tuple[str, ...] = tuple(THA3.OUTPUT_NAMES)


def intermediate_to_rgba(output: torch.Tensor) -> torch.Tensor:
    """Show one THA3 intermediate output ``(1, C, h, w)`` in [-1, 1] as a linear ``(4, 512, 512)`` RGBA image.

    4 channels are an image (as is); 3 are colour (opaque); 1 is a mask or alpha (grey); 2 are a flow field (red/green
    around mid grey). Other sizes are scaled to 512 (nearest), so the debug view stays pixel-honest.
    """
    x = output[:1].detach().float().cpu()
    c = x.shape[1]
    if c >= 4:
        x = x[:, :4]
    elif c == 3:
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
    elif c == 2:
        x = torch.cat([x, torch.zeros_like(x[:, :1]), torch.ones_like(x[:, :1])], dim=1)
    else:
        x = torch.cat([x[:, :1].expand(-1, 3, -1, -1), torch.ones_like(x[:, :1])], dim=1)
    x = (x * 0.5 + 0.5).clamp(0.0, 1.0)
    if tuple(x.shape[-2:]) != (IMAGE_SIZE, IMAGE_SIZE):
        x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="nearest")
    return x[0]


class EditorRenderer:
    """Renders editor states with one poser session; thread-safe through the poser's lock (one caller at a time)."""

    def __init__(self, poser: Poser):
        self.poser = poser
        self.session = poser.session()
        self._batch_session = poser.session()  # its own buffers: batches must not evict the interactive graphs
        self._blend_key: tuple | None = None
        self._blended: torch.Tensor | None = None

    def blended(self, character: Character, cels: Mapping[str, float]) -> torch.Tensor:
        """The character with ``cels`` blended in, on the poser's device; the same tensor object while unchanged."""
        key = (id(character), tuple(sorted((k, float(v)) for k, v in cels.items() if k in character.cels and v > 0)))
        if key != self._blend_key or self._blended is None:
            base = character.image.to(self.poser.device)
            layers = {k: v.to(self.poser.device) for k, v in character.cels.items()}
            self._blended = composite_cels(base, layers, cels)
            self._blend_key = key
        return self._blended

    def render(
        self, character: Character, pose: torch.Tensor, cels: Mapping[str, float], output_index: int = 0
    ) -> torch.Tensor:
        """One frame as a linear ``(4, 512, 512)`` float32 tensor; ``output_index`` > 0 shows a THA3 internal.

        The main output stays on the poser's device: :func:`to_display` converts it there and copies it once.
        """
        image = self.blended(character, cels)
        if output_index == 0:
            return self.session.pose(image, pose)[0].float()
        outputs = self.poser.pose_all(image, pose)
        if not 0 <= output_index < len(outputs):
            raise ValueError(f"output index {output_index} out of range 0..{len(outputs) - 1}")
        return intermediate_to_rgba(outputs[output_index])

    def render_many(
        self,
        character: Character,
        poses: Sequence[torch.Tensor],
        cels: Sequence[Mapping[str, float]],
        output_index: int = 0,
    ) -> list[torch.Tensor]:
        """Render several states; states sharing a cel blend are posed as one batch (much faster on the CPU)."""
        results: list[torch.Tensor | None] = [None] * len(poses)
        if output_index != 0:
            return [self.render(character, p, c, output_index) for p, c in zip(poses, cels, strict=True)]
        groups: dict[tuple, list[int]] = {}
        for i, c in enumerate(cels):
            key = tuple(sorted((k, float(v)) for k, v in c.items() if k in character.cels and v > 0))
            groups.setdefault(key, []).append(i)
        for indices in groups.values():
            image = self.blended(character, cels[indices[0]])
            batch = torch.stack([torch.as_tensor(poses[i], dtype=torch.float32) for i in indices])
            out = self._batch_session.pose(image, batch).float().cpu()
            for j, i in enumerate(indices):
                results[i] = out[j]
        return [r for r in results if r is not None]


def to_display(image: torch.Tensor, background: tuple[float, float, float] | None = None,
               checker: int = 16) -> np.ndarray:  # fmt: skip
    """A linear RGBA ``(4, H, W)`` image over an opaque background, as the float32 sRGB ``(H, W, 4)`` buffer a GUI
    texture takes.

    ``background`` is an sRGB colour in [0, 1]; ``None`` draws a grey checkerboard with ``checker``-pixel squares.
    Blending is done in display (sRGB) space, as image editors show transparency. All of it runs on the image's
    device and the result is copied once: the sRGB curve and the composite on the host cost more than a GPU's whole
    pose, and they cost the GUI thread ~7 ms per view and render on a 2-core CPU.
    """
    image = image.detach().float().clamp(0.0, 1.0)
    _, h, w = image.shape
    if background is None:
        bg = _checkerboard(h, w, checker, image.device)
    else:
        bg = torch.tensor(background, dtype=torch.float32, device=image.device).view(3, 1, 1)
    alpha = image[3:4]
    out = torch.ones((4, h, w), dtype=torch.float32, device=image.device)
    out[:3] = linear_to_srgb(image[:3]) * alpha + bg * (1.0 - alpha)
    return out.permute(1, 2, 0).contiguous().cpu().numpy()


@functools.lru_cache(maxsize=8)
def _checkerboard(h: int, w: int, checker: int, device: torch.device) -> torch.Tensor:
    """Grey squares of 0.40 and 0.60 (sRGB), ``(1, H, W)``, one per size and device."""
    yy = torch.arange(h, device=device).view(h, 1) // checker
    xx = torch.arange(w, device=device).view(1, w) // checker
    return (0.40 + 0.20 * ((yy + xx) % 2)).float().unsqueeze(0)
