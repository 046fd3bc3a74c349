"""THA3 posing: our own network code for the official weights, the model store, and the fast poser.

Example:
    >>> from raven_avatar.engine.poser import load_poser
    >>> poser = load_poser("separable_float", device="cpu")     # doctest: +SKIP
    >>> posed = poser.pose(image, pose_vector)                  # (1, 4, 512, 512), linear RGBA in [0, 1]
"""

from .model import NETWORK_NAMES, THA3
from .poser import IMAGE_SIZE, Poser, PoseSession, load_poser
from .store import VARIANTS, default_character, example_character, model_dir

__all__ = [
    "IMAGE_SIZE", "NETWORK_NAMES", "THA3", "VARIANTS", "PoseSession", "Poser",
    "default_character", "example_character", "load_poser", "model_dir",
]  # fmt: skip
