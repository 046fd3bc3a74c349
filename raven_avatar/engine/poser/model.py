"""THA3 end to end: the five networks wired together, split into the stages the poser can reuse.

Stages and what they depend on:

- ``decompose``: the source image only (runs when the character or its cels change);
- ``morph_face``: + the 39 eyebrow/eye/mouth/iris parameters (runs when the expression changes);
- ``turn_body``: + the 6 head/neck/body/breathing parameters (runs every animated frame).

Images are THA3's (B, 4, 512, 512) in [-1, 1]; poses are (B, 45) in THA3 order.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..pose import BODY_SLICE, EYEBROW_SLICE, FACE_SLICE
from .networks import BodyRotator, Editor, EyebrowDecomposer, EyebrowMorphingCombiner, FaceMorpher

# Where the stages look, in the 512² source image (rows, cols): fixed by how THA3 was trained.
EYEBROW_BOX = (slice(64, 192), slice(192, 320))
FACE_BOX = (slice(32, 224), slice(160, 352))
EYEBROW_IN_FACE = (slice(32, 160), slice(32, 160))

NETWORK_NAMES = (
    "eyebrow_decomposer",
    "eyebrow_morphing_combiner",
    "face_morpher",
    "two_algo_face_body_rotator",
    "editor",
)

#: Modules a half-precision poser keeps in float32. The body rotator's encoder (its 256² stem and downsampling blocks)
#: is where fp16 rounding hurts most: its features are upsampled back and warp the whole body. 6 test poses on the
#: H200: final-image max difference from fp32 3.8e-02 with it in fp16, 2.3e-02 in fp32, for +0.06 ms per pose
#: (the whole rotator in fp32: 2.2e-02 for +0.64 ms; docs/PERFORMANCE.md).
FLOAT32_MODULES = ("two_algo_face_body_rotator.encoder_decoder.downsample_blocks",)


class THA3(nn.Module):
    """The full poser network. ``separable=True`` for the ``separable_*`` variants, False for ``standard_*``."""

    #: Names of the 29 outputs of :meth:`forward_all`, in the reference implementation's order.
    OUTPUT_NAMES = (
        Editor.OUTPUTS + BodyRotator.OUTPUTS + FaceMorpher.OUTPUTS + EyebrowMorphingCombiner.OUTPUTS
        + EyebrowDecomposer.OUTPUTS
    )  # fmt: skip

    def __init__(self, *, separable: bool = True):
        super().__init__()
        self.eyebrow_decomposer = EyebrowDecomposer(separable=separable)
        self.eyebrow_morphing_combiner = EyebrowMorphingCombiner(separable=separable)
        self.face_morpher = FaceMorpher(separable=separable)
        self.two_algo_face_body_rotator = BodyRotator(separable=separable)
        self.editor = Editor(separable=separable)

    def decompose(self, image: Tensor) -> tuple[Tensor, ...]:
        return self.eyebrow_decomposer(image[(..., *EYEBROW_BOX)])

    def morph_face(
        self, image: Tensor, decomposed: tuple[Tensor, ...], pose: Tensor
    ) -> tuple[Tensor, tuple[Tensor, ...], tuple[Tensor, ...]]:
        """Eyebrows, then eyes/mouth/irises; returns the full 512² image with the new face pasted in."""
        combined = self.eyebrow_morphing_combiner(decomposed[3], decomposed[0], pose[:, EYEBROW_SLICE])
        face = image[(..., *FACE_BOX)].clone()
        face[(..., *EYEBROW_IN_FACE)] = combined[2]  # the eyebrow image without the combine alpha
        morphed = self.face_morpher(face, pose[:, FACE_SLICE])
        full = image.clone()
        full[(..., *FACE_BOX)] = morphed[0]
        return full, combined, morphed

    def turn_body(self, face_full: Tensor, pose: Tensor) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        """Rotation and breathing at 256², refined by the editor at 512²."""
        body_pose = pose[:, BODY_SLICE]
        half = F.interpolate(face_full, size=(256, 256), mode="bilinear", align_corners=False)
        rotated = self.two_algo_face_body_rotator(half, body_pose)
        size = face_full.shape[-2:]
        warped = F.interpolate(rotated[1], size=size, mode="bilinear", align_corners=False)
        grid_change = F.interpolate(rotated[2], size=size, mode="bilinear", align_corners=False)
        return self.editor(face_full, warped, grid_change, body_pose), rotated

    def forward(self, image: Tensor, pose: Tensor) -> Tensor:
        """The posed image, (B, 4, 512, 512) in [-1, 1]."""
        face_full, _, _ = self.morph_face(image, self.decompose(image), pose)
        return self.turn_body(face_full, pose)[0][0]

    def forward_all(self, image: Tensor, pose: Tensor) -> list[Tensor]:
        """All 29 outputs (see :attr:`OUTPUT_NAMES`), for inspecting what each stage does."""
        decomposed = self.decompose(image)
        face_full, combined, morphed = self.morph_face(image, decomposed, pose)
        edited, rotated = self.turn_body(face_full, pose)
        return [*edited, *rotated, *morphed, *combined, *decomposed]


def tha3_state_dicts_to_model(state_dicts: dict[str, dict[str, Tensor]], *, separable: bool) -> THA3:
    """Build a :class:`THA3` from the five official weight files' state dicts (keys: :data:`NETWORK_NAMES`)."""
    model = THA3(separable=separable)
    for name in NETWORK_NAMES:
        sd = state_dicts[name]
        if name == "face_morpher" and not separable and not any(k.startswith("body.") for k in sd):
            # The dense face morpher's file stores its encoder-decoder at the top level.
            sd = {(f"body.{k}" if k.split(".")[0].endswith("_blocks") else k): v for k, v in sd.items()}
        getattr(model, name).load_state_dict(sd, strict=True)
    return model.eval().requires_grad_(False)


__all__ = ["THA3", "NETWORK_NAMES", "tha3_state_dicts_to_model"]
