"""The five THA3 networks (Khungurn 2022), written against the layout of the official weight files.

Each network takes and returns tensors in THA3's convention: images (B, 4, H, W) in [-1, 1] (linear RGB + alpha),
pose slices (B, P). ``forward`` returns every output of the network in the reference's order, because the pose editor
can display any of them; the poser only keeps what the next stage needs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .blocks import PoseEncoderDecoder, ResizeEncoderDecoder, ResizeUNet, blend, blend_rgb, grid_head, head, warp


class _WithHeads(nn.Module):
    """A network whose output heads (3×3 convs, each with its tanh/sigmoid) all read one feature map.

    ``HEADS`` names them; :meth:`heads` runs them in that order, or as one merged conv once :func:`.fused.fuse` has
    set :attr:`merged_heads` (same weights, concatenated: one cuDNN call and one layout conversion instead of several).
    """

    HEADS: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.merged_heads: Callable[[Tensor], tuple[Tensor, ...]] | None = None

    def heads(self, f: Tensor) -> tuple[Tensor, ...]:
        if self.merged_heads is not None:
            return self.merged_heads(f)
        return tuple(getattr(self, name)(f) for name in self.HEADS)


class EyebrowDecomposer(_WithHeads):
    """Splits the 128² forehead crop into an eyebrow layer and the background behind it."""

    OUTPUTS = ("eyebrow_layer", "eyebrow_layer_alpha", "eyebrow_layer_color_change",
               "background_layer", "background_layer_alpha", "background_layer_color_change")  # fmt: skip

    HEADS = ("background_layer_alpha", "background_layer_color_change", "eyebrow_layer_alpha",
             "eyebrow_layer_color_change")  # fmt: skip

    def __init__(self, *, separable: bool):
        super().__init__()
        self.body = PoseEncoderDecoder(128, 4, 0, bottleneck_size=16, separable=separable)
        self.background_layer_alpha = head(64, 1, nn.Sigmoid())
        self.background_layer_color_change = head(64, 4, nn.Tanh())
        self.eyebrow_layer_alpha = head(64, 1, nn.Sigmoid())
        self.eyebrow_layer_color_change = head(64, 4, nn.Tanh())

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        bg_alpha, bg_change, eb_alpha, eb_change = self.heads(self.body(image))
        # Note the swapped roles: the eyebrow layer keeps the image where alpha is high.
        return (
            blend(eb_alpha, image, eb_change),
            eb_alpha,
            eb_change,
            blend(bg_alpha, bg_change, image),
            bg_alpha,
            bg_change,
        )


class EyebrowMorphingCombiner(_WithHeads):
    """Warps and recolours the eyebrow layer for the 12 eyebrow parameters and puts it back on the background."""

    OUTPUTS = ("eyebrow_image", "combine_alpha", "eyebrow_image_no_combine_alpha", "morphed_eyebrow_layer",
               "morphed_eyebrow_layer_alpha", "morphed_eyebrow_layer_color_change", "warped_eyebrow_layer",
               "morphed_eyebrow_layer_grid_change")  # fmt: skip

    HEADS = ("morphed_eyebrow_layer_grid_change", "morphed_eyebrow_layer_alpha", "morphed_eyebrow_layer_color_change",
             "combine_alpha")  # fmt: skip

    def __init__(self, *, separable: bool):
        super().__init__()
        self.body = PoseEncoderDecoder(128, 8, 12, bottleneck_size=16, separable=separable)
        self.morphed_eyebrow_layer_grid_change = grid_head(64)
        self.morphed_eyebrow_layer_alpha = head(64, 1, nn.Sigmoid())
        self.morphed_eyebrow_layer_color_change = head(64, 4, nn.Tanh())
        self.combine_alpha = head(64, 1, nn.Sigmoid())

    def forward(self, background: Tensor, eyebrow: Tensor, pose: Tensor) -> tuple[Tensor, ...]:
        f = self.body(torch.cat([background, eyebrow], dim=1), pose)
        grid_change, alpha, change, combine_alpha = self.heads(f)
        warped = warp(eyebrow, grid_change)
        morphed = blend(alpha, change, warped)
        image = blend_rgb(combine_alpha, morphed, background)
        image_no_combine_alpha = blend_rgb((morphed[:, 3:4] + 1.0) / 2.0, morphed, background)
        return image, combine_alpha, image_no_combine_alpha, morphed, alpha, change, warped, grid_change


class FaceMorpher(_WithHeads):
    """Moves irises and mouth (grid warp + colour change) and redraws the eyes on the 192² face crop."""

    OUTPUTS = ("face_image", "eye_alpha", "eye_color_change", "iris_mouth_image_1", "iris_mouth_alpha",
               "iris_mouth_color_change", "iris_mouth_image_0")  # fmt: skip

    HEADS = ("iris_mouth_grid_change", "iris_mouth_color_change", "iris_mouth_alpha", "eye_color_change", "eye_alpha")

    def __init__(self, *, separable: bool):
        super().__init__()
        self.body = PoseEncoderDecoder(192, 4, 27, bottleneck_size=24, separable=separable)
        self.iris_mouth_grid_change = grid_head(64)
        self.iris_mouth_color_change = head(64, 4, nn.Tanh())
        self.iris_mouth_alpha = head(64, 1, nn.Sigmoid())
        self.eye_color_change = head(64, 4, nn.Tanh())
        self.eye_alpha = head(64, 1, nn.Sigmoid())

    def forward(self, image: Tensor, pose: Tensor) -> tuple[Tensor, ...]:
        grid_change, im_change, im_alpha, eye_change, eye_alpha = self.heads(self.body(image, pose))
        warped = warp(image, grid_change)
        iris_mouth = blend(im_alpha, im_change, warped)
        return blend(eye_alpha, eye_change, iris_mouth), eye_alpha, eye_change, iris_mouth, im_alpha, im_change, warped


class BodyRotator(_WithHeads):
    """Turns head, neck and body and applies breathing at 256²: a direct image and a warp, for the editor to fuse."""

    OUTPUTS = ("rotator_direct_image", "rotator_warped_image", "rotator_grid_change")

    HEADS = ("direct_creator", "grid_change_creator")

    def __init__(self, *, separable: bool):
        super().__init__()
        self.encoder_decoder = ResizeEncoderDecoder(256, 4 + 6, start=64, bottleneck_size=32, separable=separable)
        self.direct_creator = head(64, 4, nn.Tanh())
        self.grid_change_creator = grid_head(64)

    def forward(self, image: Tensor, pose: Tensor) -> tuple[Tensor, ...]:
        n, h, w = image.shape[0], image.shape[2], image.shape[3]
        f = self.encoder_decoder(torch.cat([image, pose.view(n, -1, 1, 1).expand(n, pose.shape[1], h, w)], dim=1))
        direct, grid_change = self.heads(f)
        return direct, warp(image, grid_change), grid_change


class Editor(_WithHeads):
    """Refines the rotator's 512² warp and repaints what warping cannot produce: the final image."""

    OUTPUTS = ("output_image", "editor_color_change_alpha", "editor_color_change", "editor_warped_image",
               "editor_grid_change")  # fmt: skip

    HEADS = ("color_change_creator", "alpha_creator", "grid_change_creator")

    def __init__(self, *, separable: bool):
        super().__init__()
        self.body = ResizeUNet(512, 2 * 4 + 2 + 6, start=32, bottleneck_size=64, separable=separable)
        self.color_change_creator = head(32, 4, nn.Tanh())
        self.alpha_creator = head(32, 4, nn.Sigmoid())
        self.grid_change_creator = grid_head(32)

    def forward(self, original: Tensor, warped: Tensor, grid_change: Tensor, pose: Tensor) -> tuple[Tensor, ...]:
        n, h, w = original.shape[0], original.shape[2], original.shape[3]
        posemap = pose.view(n, -1, 1, 1).expand(n, pose.shape[1], h, w)
        change, alpha, grid_delta = self.heads(self.body(torch.cat([original, warped, grid_change, posemap], dim=1)))
        out_grid = grid_change + grid_delta
        out_warped = warp(original, out_grid)
        return blend(alpha, change, out_warped), alpha, change, out_warped, out_grid
