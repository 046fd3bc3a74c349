"""Device and dtype selection: ``auto | cpu | cuda | cuda:N``, with a CPU fallback that says why.

The fallback is a *notice*, not a silent switch: :func:`resolve_device` returns the message so apps can show it, and
logs it once.
"""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path

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


def available_cpu_cores(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """CPU cores this process may really use: its affinity mask, capped by a cgroup CPU quota (containers), ≥ 1.

    ``os.cpu_count()`` counts the host's cores, which oversubscribes a container limited to a few of them.
    ``cgroup_root`` is where the cgroup file system is mounted.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_quota(cgroup_root)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def _cgroup_cpu_quota(root: Path) -> float | None:
    """CPUs allowed by the cgroup (v2 ``cpu.max``, else v1 ``cpu.cfs_quota_us``), or None when unlimited/unknown."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None
