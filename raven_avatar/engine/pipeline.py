"""One frame on the device: cels -> pose -> animefx -> crop -> upscale -> postprocess -> sRGB -> host buffer.

A :class:`Pipeline` turns one :class:`~raven_avatar.engine.animator.AnimationState` into a :class:`Frame`. It keeps
what makes a frame cheap: the blended character image is only recomputed when cel strengths change (and the same
tensor object is passed on, so the poser's stage reuse sees an unchanged image); the upscaler is only rebuilt when
its mode changes; the host buffers are allocated once per output size (pinned on CUDA) and reused in a ring of three,
so a consumer may keep showing the frame it took while the next one is being written.

Output is what a DearPyGui raw texture wants, computed on the device and copied to the host once: float32 RGBA,
sRGB-encoded, straight alpha, flattened to ``H*W*4``. ``Frame.rgba_u8`` (H, W, 4) is derived from it on demand for
exports (or produced directly on the device with ``output="u8"``).

Several pipelines sharing a poser can pose in one batched THA3 call: :meth:`Pipeline.begin` (cels) for each,
:func:`pose_batch` once, :meth:`Pipeline.finish` (the rest) for each (what
:class:`~raven_avatar.engine.group.RenderGroup` does).

Timings: each stage is timed with CUDA events on CUDA (no synchronisation between stages; the one sync is the host
copy at the end), or with ``time.perf_counter`` on the CPU. With ``metrics=True`` the device is synchronised after
every stage, so the numbers include host overhead (slower; for diagnosis).

Example:
    >>> pipe = Pipeline(load_poser(device="cpu"))                      # doctest: +SKIP
    >>> pipe.set_character(load_character("aria.png"))
    >>> frame = pipe.render(animator.advance())
    >>> frame.rgba_f32.shape, frame.width, frame.stats["pose"]
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from . import settings as settingsmod
from .character import Character
from .compositing import composite_cels
from .postprocessor import Postprocessor
from .postprocessor.colorspace import linear_to_srgb
from .upscaler import Upscaler

#: Stage names, in pipeline order, as they appear in :attr:`Frame.stats` (milliseconds).
STAGES = ("cels", "pose", "animefx", "crop", "upscale", "postprocess", "output", "transfer")

#: Settings keys the pipeline reads (the rest belong to the animator and the apps).
PIPELINE_KEYS = ("crop", "upscale", "upscale_preset", "upscale_quality", "postprocessor_chain", "metrics_enabled")

_RING = 3  # host buffers: the one being written, the newest published one, and the one before it
_INTERPOLATIONS = ("bilinear", "bicubic", "lanczos")


@dataclass
class Frame:
    """One rendered frame on the host.

    ``rgba_f32`` is float32 sRGB RGBA with straight alpha, flattened (``height * width * 4``): pass it to a DearPyGui
    raw texture of ``width`` x ``height`` with ``format=mvFormat_Float_rgba``. Live frames' arrays are reused: they
    stay valid until two newer frames have been taken; copy them to keep them longer.
    """

    rgba_f32: np.ndarray | None
    width: int
    height: int
    index: int = 0  # frame counter of the renderer (0 for stills)
    t: float = 0.0  # animation time, seconds
    emotion: str = ""
    stats: dict[str, float] = field(default_factory=dict)  # stage -> ms, plus "total"
    crop: tuple[float, float, float, float] | None = None  # (left, top, right, bottom) applied, unit square
    full_size: tuple[int, int] = (0, 0)  # (width, height) the uncropped frame would have had
    _u8: np.ndarray | None = field(default=None, repr=False)

    @property
    def rgba_u8(self) -> np.ndarray:
        """(H, W, 4) uint8 sRGB RGBA, straight alpha (computed from ``rgba_f32`` on first use, then kept)."""
        if self._u8 is None:
            if self.rgba_f32 is None:
                raise ValueError("frame has no pixel data")
            f = self.rgba_f32.reshape(self.height, self.width, 4)
            # The same rounding as the device path (and export.to_srgb8): floor(x * 255 + 0.5).
            self._u8 = (np.clip(f, 0.0, 1.0) * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)
        return self._u8


@dataclass(frozen=True)
class _Output:
    """The output part of the settings, normalised."""

    crop: tuple[float, float, float, float] | None
    factor: float
    upscale_mode: tuple[str, str, str]  # (mode, preset, quality)
    chain: list
    metrics: bool


def check_settings(settings: object) -> Mapping[str, Any]:
    """``settings`` if it is a mapping whose crop box is usable, else ``TypeError``/``ValueError`` saying why."""
    if not isinstance(settings, Mapping):
        raise TypeError(f"settings must be a dict of animator settings (or None), got {type(settings).__name__}")
    if "crop" in settings:
        problems = settingsmod.validate({"crop": settings["crop"]})
        if problems:
            raise ValueError("; ".join(str(p) for p in problems))
    return settings


def check_strengths(values: object, what: str) -> dict[str, float]:
    """``{name: number}`` (cel or animefx strengths) as floats, else ``TypeError`` saying what was expected."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise TypeError(f"{what} must be a dict {{name: strength 0..1}}, got {type(values).__name__}")
    out = {}
    for name, value in values.items():
        if not isinstance(name, str):
            raise TypeError(f"{what}: names must be strings, got {name!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TypeError(f"{what}[{name!r}] must be a finite number 0..1, got {value!r}")
        out[name] = float(value)
    return out


def output_config(settings: Mapping[str, Any]) -> _Output:
    """The pipeline's part of complete, valid animator settings (see :mod:`raven_avatar.engine.settings`)."""
    box = {**settingsmod.BY_KEY["crop"].default, **(settings.get("crop") or {})}
    crop = None
    if box.get("enabled"):
        crop = (float(box["left"]), float(box["top"]), float(box["right"]), float(box["bottom"]))
        if crop == (0.0, 0.0, 1.0, 1.0):
            crop = None
    quality = settings.get("upscale_quality", "bicubic")
    if quality in _INTERPOLATIONS:
        mode = (quality, "C", "high")
    else:
        mode = ("anime4k", settings.get("upscale_preset", "C"), quality)
    return _Output(
        crop=crop,
        factor=float(settings.get("upscale", 1.0)),
        upscale_mode=mode,
        chain=list(settings.get("postprocessor_chain") or []),
        metrics=bool(settings.get("metrics_enabled", False)),
    )


def crop_pixels(box: tuple[float, float, float, float], height: int, width: int) -> tuple[int, int, int, int]:
    """Unit-square box -> pixel (top, bottom, left, right), at least one pixel each way."""
    left, top, right, bottom = box
    x0 = min(max(round(left * width), 0), width - 1)
    y0 = min(max(round(top * height), 0), height - 1)
    x1 = min(max(round(right * width), x0 + 1), width)
    y1 = min(max(round(bottom * height), y0 + 1), height)
    return y0, y1, x0, x1


class _Timer:
    """Per-stage timing: CUDA events (resolved after the final sync) or perf_counter."""

    def __init__(self, device: torch.device, sync_each: bool):
        self.cuda = device.type == "cuda"
        self.sync_each = sync_each
        self.device = device
        self.marks: list[tuple[str, Any]] = []
        self._start = self._now()

    def _now(self) -> Any:
        if self.cuda and not self.sync_each:
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device))
            return event
        if self.cuda:
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def mark(self, stage: str) -> None:
        """End ``stage`` now (it started at the previous mark); a stage named ``""`` is time not counted."""
        self.marks.append((stage, self._now()))

    def result(self) -> dict[str, float]:
        """Stage -> ms; call after the device work is complete (the host copy synchronised)."""
        out: dict[str, float] = {}
        prev = self._start
        for stage, now in self.marks:
            ms = prev.elapsed_time(now) if self.cuda and not self.sync_each else (now - prev) * 1000.0
            if stage:
                out[stage] = out.get(stage, 0.0) + ms
            prev = now
        return out


@dataclass
class PendingFrame:
    """A frame between :meth:`Pipeline.begin` and :meth:`Pipeline.finish`: its cels are blended, its pose is due."""

    character: Character
    image: torch.Tensor  # the blended (4, 512, 512) character image
    pose: torch.Tensor  # (45,), CPU
    timer: _Timer
    start: float  # perf_counter at begin
    batch: int = 1  # how many frames the pose call served


def pose_batch(session: Any, frames: Sequence[PendingFrame]) -> torch.Tensor:
    """Pose several pending frames (of pipelines sharing ``session``'s poser) in one THA3 call; returns their
    (B, 4, 512, 512) posed images, one row per frame, for :meth:`Pipeline.finish`."""
    with torch.inference_mode():
        out = session.pose([f.image for f in frames], torch.stack([torch.as_tensor(f.pose) for f in frames]))
    for f in frames:
        f.timer.mark("pose")
        f.batch = len(frames)
    return out


class Pipeline:
    """The per-frame device work for one avatar. Not thread-safe: one thread renders (see :mod:`.renderer`).

    Args:
        poser: a loaded :class:`~raven_avatar.engine.poser.Poser`; it may be shared with other pipelines (each
            pipeline poses through its own session).
        settings: complete animator settings (only :data:`PIPELINE_KEYS` are read); ``None``: no crop, no upscale,
            no postprocessing.
        allow_download: whether the upscaler may fetch shader files it lacks.
    """

    def __init__(self, poser: Any, settings: Mapping[str, Any] | None = None, *, allow_download: bool = True):
        self.poser = poser
        self.session = poser.session()
        self.device: torch.device = poser.device
        self.dtype: torch.dtype = poser.dtype
        self.allow_download = allow_download
        self.character: Character | None = None
        self._blend_key: tuple | None = None
        self._blended: torch.Tensor | None = None
        self._upscaler: Upscaler | None = None
        self._spare_upscaler: Upscaler | None = None
        self._postprocessor = Postprocessor([])
        self._config = output_config({})
        self._ring: list[tuple[torch.Tensor, np.ndarray]] = []
        self._ring_next = 0
        if settings is not None:
            self.configure(settings)

    # ------------------------------------------------------------------------------------------------ configuration

    @property
    def notice(self) -> str | None:
        """The upscaler's fallback message, if any (the poser's is on the poser)."""
        return self._upscaler.notice if self._upscaler is not None else None

    @property
    def postprocessor(self) -> Postprocessor:
        return self._postprocessor

    def prepare_character(self, character: Character) -> Character:
        """``character`` on this pipeline's device and dtype (may be called from any thread)."""
        image = character.image
        if image.device == self.device and image.dtype == self.dtype:
            return character
        return character.to(self.device, self.dtype)

    def set_character(self, character: Character) -> None:
        """Use ``character`` from the next frame on (moved to the device first if needed)."""
        self.character = self.prepare_character(character)
        self._blend_key, self._blended = None, None

    def prepare_upscaler(self, settings: Mapping[str, Any]) -> Upscaler | None:
        """The upscaler ``settings`` ask for: the current one if only the factor changed, else a new one.

        Building a new Anime4K upscaler loads shader weights, so call this outside the render loop and hand the
        result to :meth:`configure`.
        """
        cfg = output_config(check_settings(settings))
        if cfg.factor == 1.0:
            return None
        for current in (self._upscaler, self._spare_upscaler):
            if current is not None and current.requested == cfg.upscale_mode:
                return current
        mode, preset, quality = cfg.upscale_mode
        return Upscaler(
            cfg.factor,
            mode,
            preset,
            quality,
            device=self.device,
            dtype=self.dtype,
            allow_download=self.allow_download,
            cuda_graphs=True,
        )

    def configure(self, settings: Mapping[str, Any], upscaler: Upscaler | None | str = "auto") -> None:
        """Apply the output settings (crop, upscale, postprocessor chain, metrics) from the next frame on.

        ``upscaler``: what :meth:`prepare_upscaler` returned for these settings, or ``"auto"`` to build it here.
        Raises :class:`~raven_avatar.engine.postprocessor.ChainError` for an invalid chain, ``TypeError`` for
        settings that are not a dict and ``ValueError`` for an unusable crop box (nothing is changed then).
        """
        cfg = output_config(check_settings(settings))
        if isinstance(upscaler, str):
            upscaler = self.prepare_upscaler(settings)
        self._postprocessor.set(cfg.chain)
        if upscaler is not None:
            upscaler.factor = cfg.factor
            self._spare_upscaler = upscaler  # kept while upscaling is off (factor 1), so turning it on is instant
        self._upscaler = upscaler
        self._config = cfg

    # ------------------------------------------------------------------------------------------------------ frames

    def _blend(self, character: Character, cels: Mapping[str, float]) -> torch.Tensor:
        key = (id(character), tuple(sorted((n, float(s)) for n, s in cels.items() if s > 0 and n in character.cels)))
        if key != self._blend_key or self._blended is None:
            self._blended = composite_cels(character.image, character.cels, dict(key[1]))
            self._blend_key = key
        return self._blended

    def _process(
        self,
        character: Character,
        x: torch.Tensor,
        fx: Mapping[str, float],
        t: float,
        timer: _Timer,
        postprocess: bool = True,
    ) -> tuple[torch.Tensor, tuple[float, float, float, float] | None, tuple[int, int]]:
        """Device work after posing, up to the sRGB image: ``(1, 4, H, W)`` float32, plus the crop applied and the
        full size."""
        cfg = self._config
        with torch.inference_mode():
            if fx and character.fx_cels:
                x = composite_cels(x, character.fx_cels, fx)
            timer.mark("animefx")
            height, width = x.shape[-2:]
            if cfg.crop is not None:
                y0, y1, x0, x1 = crop_pixels(cfg.crop, height, width)
                x = x[..., y0:y1, x0:x1]
            timer.mark("crop")
            up = self._upscaler
            factor = up.factor if up is not None else 1.0
            full = (round(width * factor), round(height * factor))
            if up is not None:
                x = up(x)
            timer.mark("upscale")
            if postprocess:
                x = self._postprocessor(x, t)
            timer.mark("postprocess")
            srgb = linear_to_srgb(x.float())
        return srgb, cfg.crop, full

    def _host_buffer(self, size: int) -> tuple[torch.Tensor, np.ndarray]:
        if not self._ring or self._ring[0][0].numel() != size:
            pin = self.device.type == "cuda"
            self._ring = []
            for _ in range(_RING):
                t = torch.empty(size, dtype=torch.float32, pin_memory=pin)
                self._ring.append((t, t.numpy()))
            self._ring_next = 0
        buf = self._ring[self._ring_next]
        self._ring_next = (self._ring_next + 1) % _RING
        return buf

    def render(
        self,
        pose: torch.Tensor,
        cels: Mapping[str, float] | None = None,
        fx: Mapping[str, float] | None = None,
        t: float = 0.0,
        *,
        character: Character | None = None,
        output: str = "f32",
        postprocess: bool = True,
        owned: bool = False,
    ) -> Frame:
        """Render one frame.

        Args:
            pose: (45,) pose vector (CPU).
            cels: blending-cel strengths by name; fx: animefx cel strengths by name.
            t: animation time in seconds (drives the animated postprocessor filters).
            character: default: the one given to :meth:`set_character` (must be on this pipeline's device).
            output: ``"f32"`` (``Frame.rgba_f32``, the GUI format) or ``"u8"`` (``Frame.rgba_u8`` converted on the
                device; ``rgba_f32`` is then None).
            postprocess: False skips the postprocessor chain (crop and upscale still apply).
            owned: give the frame its own arrays instead of the reused ring buffers (stills, exports).
        """
        pending = self.begin(pose, cels, character=character)
        with torch.inference_mode():
            posed = self.session.pose(pending.image, pending.pose)
        pending.timer.mark("pose")
        return self.finish(pending, posed, fx, t, output=output, postprocess=postprocess, owned=owned)

    def begin(
        self, pose: torch.Tensor, cels: Mapping[str, float] | None = None, *, character: Character | None = None
    ) -> PendingFrame:
        """The first part of :meth:`render`: blend the cels. Pose the result with :func:`pose_batch` (or this
        pipeline's ``session``), then :meth:`finish`."""
        character = character or self.character
        if character is None:
            raise RuntimeError("no character loaded")
        start = time.perf_counter()
        timer = _Timer(self.device, self._config.metrics)
        # Not inference_mode: the poser tells an unchanged image by its version counter, which inference tensors
        # lack.
        with torch.no_grad():
            image = self._blend(character, cels or {})
        timer.mark("cels")
        return PendingFrame(character, image, pose, timer, start)

    def finish(
        self,
        pending: PendingFrame,
        posed: torch.Tensor,
        fx: Mapping[str, float] | None = None,
        t: float = 0.0,
        *,
        output: str = "f32",
        postprocess: bool = True,
        owned: bool = False,
    ) -> Frame:
        """The rest of :meth:`render` for a pending frame whose posed ``(1, 4, 512, 512)`` image is ``posed``."""
        if output not in ("f32", "u8"):
            raise ValueError(f"output must be 'f32' or 'u8', got {output!r}")
        timer = pending.timer
        if pending.batch > 1:
            timer.mark("")  # the other frames of the batch were finished meanwhile: not this frame's time
        srgb, crop, full = self._process(pending.character, posed, fx or {}, t, timer, postprocess)
        height, width = srgb.shape[-2:]
        cuda = self.device.type == "cuda"
        with torch.inference_mode():
            hwc = srgb[0].permute(1, 2, 0)
            if output == "u8":
                dev = (hwc * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8).contiguous()
                timer.mark("output")
                u8 = dev.cpu().numpy() if cuda else dev.numpy().copy()
                timer.mark("transfer")
                f32 = None
            else:
                # On CUDA the HWC layout is made on the device; on the CPU the one copy into the buffer does it.
                dev = hwc.contiguous() if cuda else hwc
                timer.mark("output")
                size = height * width * 4
                if owned:
                    host = torch.empty(size, dtype=torch.float32, pin_memory=cuda)
                    f32 = host.numpy()
                else:
                    host, f32 = self._host_buffer(size)
                host.view(height, width, 4).copy_(dev, non_blocking=cuda)
                timer.mark("transfer")
                u8 = None
        if cuda:
            torch.cuda.current_stream(self.device).synchronize()
        stats = timer.result()
        # A batched frame's wall time includes the other frames' work: its total is the sum of its own stages.
        wall = (time.perf_counter() - pending.start) * 1000.0
        stats["total"] = wall if pending.batch == 1 else sum(stats.values())
        stats["pose_batch"] = pending.batch
        return Frame(f32, width, height, t=t, stats=stats, crop=crop, full_size=full, _u8=u8)

    def warm_up(self) -> None:
        """One throw-away frame of the current character with a neutral pose: CUDA graph capture, cuDNN algorithm
        choice and upscaler matrices happen here instead of in the first visible frame."""
        if self.character is not None:
            self.render(torch.zeros(45), owned=True)
            self.session.reset()


def render_still(
    character: Character,
    pose: torch.Tensor,
    cels: Mapping[str, float] | None = None,
    *,
    poser: Any = None,
    settings: Mapping[str, Any] | None = None,
    postprocess: bool = True,
    fx: Mapping[str, float] | None = None,
    t: float = 0.0,
) -> Frame:
    """Render one still frame without an animator (pose editor, sprite export).

    ``settings`` (complete animator settings) supplies crop, upscale and the postprocessor chain; ``None`` renders
    the plain posed 512x512 image. ``postprocess=False`` skips the chain but keeps crop and upscale. The returned
    frame owns its arrays (both ``rgba_f32`` and ``rgba_u8`` are usable). For many stills, make one
    :class:`Pipeline` and call :meth:`Pipeline.render` with ``owned=True``: it keeps the upscaler and stage reuse.
    """
    cels, fx = check_strengths(cels, "cels"), check_strengths(fx, "fx")
    if settings is not None:
        check_settings(settings)
    if poser is None:
        from .poser import load_poser

        poser = load_poser(device=character.image.device)
    pipe = Pipeline(poser, settings)
    character = pipe.prepare_character(character)
    return pipe.render(pose, cels, fx, t, character=character, owned=True, postprocess=postprocess)
