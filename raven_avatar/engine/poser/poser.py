"""The poser: THA3 on a device, with stage reuse, CUDA graphs and batching.

A :class:`Poser` owns one loaded THA3 model. Each avatar poses through its own :class:`PoseSession`, which holds the
per-avatar state that makes posing fast:

- **Stage reuse.** The session remembers the last image and pose. When only the head/neck/body/breathing values
  changed (idle animation), the eyebrow and face stages are skipped; when the image is the same, the eyebrow
  decomposer is skipped; when nothing changed, the last frame is returned as is. Changes are detected on the host
  from the pose values and the image tensor's identity and version counter, so no GPU→host sync is needed.
- **CUDA graphs.** On CUDA each stage is captured once per batch size into a graph over static buffers, which removes
  the ~300 kernel-launch overheads per frame that make eager THA3 launch-bound.
- **Mixed precision.** A half-precision variant runs in float16 except :data:`~.model.FLOAT32_MODULES` (the body
  rotator's encoder), whose fp16 rounding would be most of fp16's error on the final image.

Several sessions may share one poser (one set of weights); a lock serialises their GPU work. One session can also pose
several avatars in one batched call: give it one image per pose row (what
:class:`~raven_avatar.engine.group.RenderGroup` does each tick).

Images are (B, 4, 512, 512) or (4, 512, 512) RGBA in linear light, [0, 1], straight alpha (the engine's convention);
poses are (B, 45) or (45,) in THA3 order (see :mod:`raven_avatar.engine.pose`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from ..device import available_cpu_cores, resolve_device
from ..pose import FACE_SLICE, NUM_PARAMS, sanitize_pose
from .cpu_backend import CpuStages, requested_backend, resolve_cpu_backend
from .fused import fuse, kernels_work
from .model import FLOAT32_MODULES, NETWORK_NAMES, THA3, tha3_state_dicts_to_model
from .stages import STAGE_NAMES, stage_modules
from .store import VARIANTS, load_state_dict, model_dir

log = logging.getLogger(__name__)

IMAGE_SIZE = 512
_BODY_START = FACE_SLICE.stop  # pose[:, :39] drives the eyebrow/face stages, pose[:, 39:] the body stage


@dataclass
class _Buffers:
    """Static tensors of one batch size: inputs, stage outputs, and the CUDA graphs that fill them."""

    image: Tensor  # (B, 4, 512, 512) in [-1, 1], poser dtype
    pose: Tensor  # (B, 45), poser dtype
    stage_out: dict[str, tuple[Tensor, ...]] = field(default_factory=dict)
    graphs: dict[str, torch.cuda.CUDAGraph] = field(default_factory=dict)


class PoseSession:
    """One avatar's (or one batch of avatars') posing state on a shared :class:`Poser`. Create with
    :meth:`Poser.session`.

    ``batch_sizes``: how many batch sizes keep their buffers (and CUDA graphs) at once; a session that poses batches
    of changing size (avatars joining and leaving a batch) keeps more than one so that it does not re-capture.
    """

    def __init__(self, poser: Poser, batch_sizes: int = 1):
        self.poser = poser
        self.batch_sizes = batch_sizes
        self._buffers: dict[int, _Buffers] = {}
        self._last_images: tuple[Tensor, ...] = ()
        self._last_versions: tuple[int, ...] = ()
        self._last_pose: Tensor | None = None  # host copy, float32
        self._last_output: Tensor | None = None
        self._reported: set[str] = set()
        #: Which stages the last call ran: "full", "face", "body" or "none".
        self.last_stages = "none"

    def reset(self) -> None:
        """Forget the cached image, pose and output (the next call recomputes everything)."""
        self._last_images, self._last_versions = (), ()
        self._last_pose, self._last_output = None, None

    def pose(self, image: Tensor | Sequence[Tensor], pose: Tensor) -> Tensor:
        """Pose ``image`` with ``pose``; returns (B, 4, 512, 512) linear RGBA in [0, 1] (poser device and dtype).

        ``image``: one image (batch 1, or B images for B pose rows), or a list of B single images, one per pose row
        (several avatars posed in one call). ``pose`` should be a CPU tensor (or anything ``torch.as_tensor``
        accepts): change detection reads it on the host. Out-of-range values are clamped and NaN replaced by 0,
        reported once per kind in the log.
        """
        # The identity + version of the caller's tensors tell whether an image changed.
        sources = tuple(image) if isinstance(image, (list, tuple)) else (image,)
        images, pose_host = self._check(sources, pose)
        batch = pose_host.shape[0]
        if len(images) > 1 and (len(images) != batch or any(im.shape[0] != 1 for im in images)):
            raise ValueError(f"a list of images needs one single image per pose row ({batch} rows)")
        if len(images) == 1 and images[0].shape[0] not in (1, batch):
            raise ValueError(f"image batch {images[0].shape[0]} does not match pose batch {batch}")
        image_same = len(sources) == len(self._last_images) and all(
            s is old and s._version == v
            for s, old, v in zip(sources, self._last_images, self._last_versions, strict=True)
        )
        last = self._last_pose
        if image_same and last is not None and last.shape == pose_host.shape:
            if torch.equal(last[:, :_BODY_START], pose_host[:, :_BODY_START]):
                stages = "none" if torch.equal(last, pose_host) else "body"
            else:
                stages = "face"
        else:
            stages = "full"
        if stages == "none" and self._last_output is not None:
            self.last_stages = "none"
            return self._last_output
        with self.poser._lock:
            out = self._run(images, pose_host, stages)
        self._last_images, self._last_versions = sources, tuple(s._version for s in sources)
        self._last_pose, self._last_output, self.last_stages = pose_host, out, stages
        return out

    # -- internals -----------------------------------------------------------------------------------------------

    @staticmethod
    def _check_image(image: Tensor) -> Tensor:
        if not isinstance(image, Tensor):
            raise TypeError(f"image must be a torch.Tensor, got {type(image).__name__}")
        if image.dim() == 3:
            image = image.unsqueeze(0)
        if image.dim() != 4 or image.shape[1] != 4 or tuple(image.shape[-2:]) != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"image must be (B, 4, 512, 512) or (4, 512, 512) RGBA, got shape {tuple(image.shape)}")
        if not image.is_floating_point():
            raise TypeError(f"image must be a float tensor in [0, 1], got dtype {image.dtype}")
        return image

    def _check(self, images: Sequence[Tensor], pose: Tensor) -> tuple[list[Tensor], Tensor]:
        if not images:
            raise ValueError("no image given")
        checked = [self._check_image(im) for im in images]
        try:
            pose_host = torch.as_tensor(pose).detach().to("cpu", torch.float32)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"pose must be a tensor of {NUM_PARAMS} numbers: {e}") from None
        if pose_host.dim() == 1:
            pose_host = pose_host.unsqueeze(0)
        if pose_host.dim() != 2 or pose_host.shape[1] != NUM_PARAMS:
            raise ValueError(f"pose must be ({NUM_PARAMS},) or (B, {NUM_PARAMS}), got shape {tuple(pose_host.shape)}")
        pose_host, problems = sanitize_pose(pose_host)
        for p in problems:
            kind = p.split(":")[0]
            if kind not in self._reported:
                self._reported.add(kind)
                log.warning("pose input: %s (reported once)", p)
        return checked, pose_host.clone()

    def _buffers_for(self, batch: int) -> _Buffers:
        buf = self._buffers.get(batch)
        if buf is None:
            p = self.poser
            buf = _Buffers(
                image=torch.zeros(batch, 4, IMAGE_SIZE, IMAGE_SIZE, device=p.device, dtype=p.dtype),
                pose=torch.zeros(batch, NUM_PARAMS, device=p.device, dtype=p.dtype),
            )
            if p.channels_last:
                buf.image = buf.image.contiguous(memory_format=torch.channels_last)
            while len(self._buffers) >= self.batch_sizes:  # graphs hold memory: keep the most recent sizes only
                del self._buffers[next(iter(self._buffers))]
            self._buffers[batch] = buf
        else:
            self._buffers[batch] = self._buffers.pop(batch)  # most recently used last
        return buf

    def _stage_fns(self, buf: _Buffers) -> dict[str, Callable[[], tuple[Tensor, ...]]]:
        p = self.poser

        def inputs(name: str) -> tuple[Tensor, ...]:
            if name == "decompose":
                return (buf.image,)
            if name == "face":
                return (buf.image, *buf.stage_out["decompose"], buf.pose)
            return (*buf.stage_out["face"], buf.pose)

        def stage(name: str) -> Callable[[], tuple[Tensor, ...]]:
            if p.cpu_stages is not None:
                return lambda: p.cpu_stages.run(name, inputs(name))  # type: ignore[union-attr]
            module = p.stages[name]

            def run() -> tuple[Tensor, ...]:
                out = module(*inputs(name))
                return out if isinstance(out, tuple) else (out,)

            return run

        return {name: stage(name) for name in STAGE_NAMES}

    def _run(self, images: list[Tensor], pose_host: Tensor, stages: str) -> Tensor:
        p = self.poser
        batch = pose_host.shape[0]
        buf = self._buffers_for(batch)
        names = {"full": ("decompose", "face", "body"), "face": ("face", "body"), "body": ("body",)}[stages]
        if not buf.stage_out:
            names = ("decompose", "face", "body")  # fresh buffers: everything
        buf.pose.copy_(pose_host, non_blocking=True)
        if "decompose" in names:
            if len(images) == 1:
                src = images[0].to(device=p.device, dtype=p.dtype, non_blocking=True)
                buf.image.copy_((src * 2 - 1).expand(batch, -1, -1, -1))
            else:
                for row, image in enumerate(images):
                    src = image.to(device=p.device, dtype=p.dtype, non_blocking=True)
                    buf.image[row : row + 1].copy_(src * 2 - 1)
        fns = self._stage_fns(buf)
        with torch.inference_mode():
            for name in names:
                if p.use_cuda_graphs:
                    self._replay_or_capture(buf, name, fns[name])
                else:
                    buf.stage_out[name] = fns[name]()
        # The output buffer is overwritten by the next call; hand out a copy the caller may keep.
        return buf.stage_out["body"][0].clone()

    def _replay_or_capture(self, buf: _Buffers, name: str, fn: Callable[[], tuple[Tensor, ...]]) -> None:
        graph = buf.graphs.get(name)
        if graph is not None:
            graph.replay()
            return
        # Warm up on a side stream (cuDNN picks its algorithms), then capture; outputs become static buffers.
        stream = torch.cuda.Stream(self.poser.device)
        stream.wait_stream(torch.cuda.current_stream(self.poser.device))
        with torch.cuda.stream(stream):
            for _ in range(2):
                buf.stage_out[name] = fn()
        torch.cuda.current_stream(self.poser.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        # thread_local: another avatar or a still rendering on another thread must not break this capture.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            buf.stage_out[name] = fn()
        buf.graphs[name] = graph
        graph.replay()


class Poser:
    """A loaded THA3 model on one device. Use :func:`load_poser` to make one."""

    def __init__(
        self,
        model: THA3,
        *,
        variant: str,
        device: torch.device,
        dtype: torch.dtype,
        use_cuda_graphs: bool | None = None,
        channels_last: bool = False,
        notice: str | None = None,
        cpu_stages: CpuStages | None = None,
        triton: bool | None = None,
    ):
        self.variant, self.device, self.dtype, self.channels_last = variant, device, dtype, channels_last
        self.use_cuda_graphs = device.type == "cuda" if use_cuda_graphs is None else use_cuda_graphs
        #: A message for the user when the poser is not running where they asked (CPU fallback), else None.
        self.notice = notice
        model = model.to(device=device, dtype=dtype)
        if dtype != torch.float32:
            for name in FLOAT32_MODULES:
                model.get_submodule(name).float()
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model
        if triton is None:
            triton = device.type == "cuda" and not channels_last and self._kernels_work()
        elif triton and (device.type != "cuda" or not self._kernels_work()):
            raise ValueError(f"the Triton kernels need CUDA and a working Triton (device {device})")
        #: How many modules :func:`.fused.fuse` swapped (Triton kernels, merged output heads; 0: PyTorch's ops only).
        self.triton_modules = fuse(self.model) if triton else 0
        self.stages = stage_modules(self.model)
        if cpu_stages is not None and device.type != "cpu":
            raise ValueError(f"CPU backend stages given for a poser on {device}")
        #: The stages on a fast CPU backend (ONNX Runtime, OpenVINO), or None when PyTorch runs them.
        self.cpu_stages = cpu_stages
        #: Which library runs the stages: "pytorch", "onnxruntime" or "openvino".
        self.backend = cpu_stages.backend if cpu_stages is not None else "pytorch"
        self._lock = threading.RLock()
        self._default_session: PoseSession | None = None

    def _kernels_work(self) -> bool:
        # a half-precision poser runs FLOAT32_MODULES in float32: the kernels must work in both
        return all(kernels_work(self.device, d) for d in {self.dtype, torch.float32})

    def session(self, batch_sizes: int = 1) -> PoseSession:
        """A new posing session (one per avatar sharing this poser; see :class:`PoseSession` for ``batch_sizes``)."""
        return PoseSession(self, batch_sizes)

    def pose(self, image: Tensor, pose: Tensor) -> Tensor:
        """Pose with this poser's default session (see :meth:`PoseSession.pose`)."""
        if self._default_session is None:
            self._default_session = self.session()
        return self._default_session.pose(image, pose)

    def pose_all(self, image: Tensor, pose: Tensor) -> list[Tensor]:
        """All 29 THA3 outputs (names: ``THA3.OUTPUT_NAMES``) in THA3's [-1, 1] range, eagerly; for inspection."""
        session = self.session()
        (image,), pose_host = session._check((image,), pose)
        with self._lock, torch.inference_mode():
            x = image.to(self.device, self.dtype) * 2 - 1
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            return self.model.forward_all(
                x.expand(pose_host.shape[0], -1, -1, -1), pose_host.to(self.device, self.dtype)
            )

    def warm_up(self) -> None:
        """Run one pose so that the first real frame does not pay for lazy initialisation (and graph capture)."""
        self.pose(torch.zeros(4, IMAGE_SIZE, IMAGE_SIZE, device=self.device), torch.zeros(NUM_PARAMS))


def _default_variant(device: torch.device) -> str:
    return "separable_half" if device.type == "cuda" else "separable_float"


def load_poser(
    variant: str | None = None,
    device: str | torch.device = "auto",
    *,
    models_dir: Path | None = None,
    use_cuda_graphs: bool | None = None,
    channels_last: bool = False,
    progress: bool = True,
    cpu_backend: str | None = None,
    triton: bool | None = None,
) -> Poser:
    """Load THA3 ``variant`` onto ``device``, fetching weights through the model store if needed.

    ``variant`` defaults to ``separable_half`` on CUDA and ``separable_float`` on the CPU. Half-precision variants
    run in fp32 on the CPU (PyTorch's CPU fp16 convolutions are slow and inexact), with a notice. When CUDA is
    missing or runs out of memory, the poser falls back to the CPU and says so in :attr:`Poser.notice`.

    On the CPU the stages run on ``cpu_backend``: ``auto`` (the default, or ``$RAVEN_AVATAR_CPU_BACKEND``),
    ``pytorch``, ``onnxruntime`` or ``openvino`` (see :mod:`.cpu_backend`: exported and verified on first use, then
    cached); a fast backend that is missing or fails falls back to PyTorch with a notice. PyTorch's own CPU thread
    count is capped at the cores this process may use.

    On CUDA, ``triton`` (default: whenever Triton works there and ``$RAVEN_AVATAR_TRITON`` is not ``0``) runs each
    InstanceNorm with its activation (and the resnet blocks' residual add), the depthwise transposed convs and the
    2× upsamplings as Triton kernels, and each network's output heads as one conv (:mod:`.fused`); False keeps
    PyTorch's own ops. The CPU never uses them.
    """
    requested_backend(cpu_backend)  # a typo fails here on every device
    dev, notice = resolve_device(device)
    variant = variant or _default_variant(dev)
    if variant not in VARIANTS:
        raise ValueError(f"unknown THA3 variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    folder = model_dir(variant, user_dir=models_dir, progress=progress)
    state_dicts = {name: load_state_dict(folder / f"{name}.pt") for name in NETWORK_NAMES}
    model = tha3_state_dicts_to_model(
        {n: {k: v.float() for k, v in sd.items()} for n, sd in state_dicts.items()},
        separable=variant.startswith("separable"),
    )
    dtype = torch.float16 if variant.endswith("_half") else torch.float32
    cpu_stages = None
    if dev.type == "cpu":
        if dtype == torch.float16:
            dtype = torch.float32
            notice = notice or f"{variant} runs in float32 on the CPU"
        cores = available_cpu_cores()
        if torch.get_num_threads() > cores:
            torch.set_num_threads(cores)
        cpu_stages, backend_notice = resolve_cpu_backend(model, variant, cpu_backend, threads=cores, progress=progress)
        notice = notice or backend_notice
    try:
        poser = Poser(
            model, variant=variant, device=dev, dtype=dtype, use_cuda_graphs=use_cuda_graphs,
            channels_last=channels_last, notice=notice, cpu_stages=cpu_stages, triton=triton,
        )  # fmt: skip
        poser.warm_up()
        return poser
    except torch.cuda.OutOfMemoryError:
        if dev.type != "cuda":
            raise
        torch.cuda.empty_cache()
        notice = f"out of GPU memory on {dev}; THA3 runs on the CPU instead (slow)"
        log.warning(notice)
        poser = Poser(model.float(), variant=variant, device=torch.device("cpu"), dtype=torch.float32, notice=notice)
        poser.warm_up()
        return poser
