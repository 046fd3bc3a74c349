"""Device and dtype selection: ``auto | cpu | cuda | cuda:N``, with a CPU fallback that says why.

The fallback is a *notice*, not a silent switch: :func:`resolve_device` returns the message so apps can show it, and
logs it once.
"""

from __future__ import annotations

import logging
import re

import torch

from raven_avatar.engine.wording import plural

log = logging.getLogger(__name__)

_SPEC = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(spec: str | torch.device = "auto") -> tuple[torch.device, str | None]:
    """Turn a user's device choice into a usable ``torch.device`` and an optional notice.

    ``auto`` picks the first CUDA GPU when there is one, else the CPU. Asking for CUDA on a machine without it, or for
    a GPU index that does not exist, falls back to the CPU with a notice. A malformed spec raises ``ValueError``.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = spec.strip().lower()
    if not _SPEC.match(spec):
        raise ValueError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N")
    if spec == "cpu":
        return torch.device("cpu"), None
    if not torch.cuda.is_available():
        if spec == "auto":
            return torch.device("cpu"), None
        notice = f"device {spec!r} requested but CUDA is not available here; running on the CPU (slow)"
        log.warning(notice)
        return torch.device("cpu"), notice
    if spec == "auto":
        return torch.device("cuda:0"), None
    index = int(spec.split(":")[1]) if ":" in spec else 0
    if index >= torch.cuda.device_count():
        count = plural(torch.cuda.device_count(), "CUDA device")
        notice = f"device {spec!r} requested but this machine has {count}; using the CPU"
        log.warning(notice)
        return torch.device("cpu"), notice
    return torch.device("cuda", index), None


def describe(device: torch.device) -> str:
    """A short human-readable name, for window titles and benchmark tables."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device})"
    return f"CPU ({torch.get_num_threads()} threads)"
