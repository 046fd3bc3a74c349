"""The poser's three stages as modules with fixed tensor signatures: what PyTorch runs and what the CPU backends export.

Every backend runs exactly these modules (PyTorch directly, ONNX Runtime and OpenVINO through an export of them), so
the stage boundaries, and with them stage reuse, are the same everywhere:

- ``decompose``: ``image`` → ``eyebrow``, ``background`` (the eyebrow decomposer's two layers the next stage reads);
- ``face``: ``image``, ``eyebrow``, ``background``, ``pose`` → ``face_full`` (the 512² image with the new face);
- ``body``: ``face_full``, ``pose`` → ``output`` (the posed image, RGBA in [0, 1]).

``image`` is (B, 4, 512, 512) in THA3's [-1, 1]; ``pose`` is the full (B, 45) pose (each stage reads its slice).
"""

from __future__ import annotations

from torch import Tensor, nn

from .model import THA3

STAGE_NAMES = ("decompose", "face", "body")
#: Input and output names of each stage, in call order (also the names in the exported graphs).
STAGE_INPUTS = {
    "decompose": ("image",),
    "face": ("image", "eyebrow", "background", "pose"),
    "body": ("face_full", "pose"),
}
STAGE_OUTPUTS = {"decompose": ("eyebrow", "background"), "face": ("face_full",), "body": ("output",)}


class Decompose(nn.Module):
    def __init__(self, model: THA3):
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        d = self.model.decompose(image)
        return d[0], d[3]


class Face(nn.Module):
    def __init__(self, model: THA3):
        super().__init__()
        self.model = model

    def forward(self, image: Tensor, eyebrow: Tensor, background: Tensor, pose: Tensor) -> Tensor:
        decomposed = (eyebrow, None, None, background)
        return self.model.morph_face(image, decomposed, pose)[0]  # type: ignore[arg-type]


class Body(nn.Module):
    def __init__(self, model: THA3):
        super().__init__()
        self.model = model

    def forward(self, face_full: Tensor, pose: Tensor) -> Tensor:
        out = self.model.turn_body(face_full, pose)[0][0]
        return (out * 0.5 + 0.5).clamp(0.0, 1.0)


def stage_modules(model: THA3) -> dict[str, nn.Module]:
    """The three stages of ``model`` (sharing its weights), by name."""
    return {"decompose": Decompose(model), "face": Face(model), "body": Body(model)}


__all__ = ["STAGE_INPUTS", "STAGE_NAMES", "STAGE_OUTPUTS", "stage_modules"]
