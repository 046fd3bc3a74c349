"""Benchmark the whole frame: cels + pose + animefx + crop + upscale + postprocessor chain + sRGB + host copy.

Scenarios (each a median over many frames, one frame = one ``Pipeline.render`` call, ending with the host copy):

- ``full``: a new expression every frame and changing cel strengths (every THA3 stage runs, cels re-blended);
- ``idle``: only head/body/breathing move (what the idle animation mostly does: THA3's last stage only);
- ``animator``: the real animator advancing 1/25 s per frame (joy, with its animefx) and its per-frame cost.

Columns: ``frame`` = wall time of the call (the latency a viewer sees), ``device`` = sum of the per-stage device
times (CUDA events), ``overhead`` = frame - device: host time not hidden behind GPU work. The ``thread`` line runs the
real render thread (``Avatar``) with a consumer for a few seconds at an unreachable target FPS and reports FPS.

Usage: ``python scripts/bench_frame.py [--device cuda] [--upscale 2.0] [--quality high] [--iters 200]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

from raven_avatar.engine.animator import Animator
from raven_avatar.engine.avatar import Avatar
from raven_avatar.engine.character import load_character
from raven_avatar.engine.device import describe, resolve_device
from raven_avatar.engine.emotions import load_templates
from raven_avatar.engine.pipeline import STAGES, Pipeline
from raven_avatar.engine.poser import default_character, load_poser
from raven_avatar.engine.settings import defaults

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import markdown_table, run_standalone  # noqa: E402

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``frame`` benchmark."""
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--variant", default=None, help="THA3 variant (default: separable_half on CUDA)")
    parser.add_argument("--upscale", type=float, default=2.0, help="upscale factor (default 2.0 -> 1024²)")
    parser.add_argument("--quality", default="high", help="upscale_quality: low, high, bilinear, bicubic, lanczos")
    parser.add_argument("--preset", default="C", help="Anime4K preset (default C)")
    parser.add_argument("--no-chain", action="store_true", help="no postprocessor chain (default: the default chain)")
    parser.add_argument("--metrics", action="store_true", help="metrics_enabled: sync after every stage")
    parser.add_argument("--iters", type=int, default=None, help="frames per scenario (default 200 CUDA, 3 CPU)")
    parser.add_argument("--thread-seconds", type=float, default=None, help="render-thread run (default 5 CUDA, 0 CPU)")


def _character(device: torch.device, dtype: torch.dtype):
    """The example character plus a synthetic blush cel and, if no animefx cels are shipped, a synthetic one."""
    character = load_character(default_character(), device=device, dtype=dtype)
    cel = torch.zeros(4, 512, 512, device=device, dtype=dtype)
    cel[0, 150:260, 180:330] = 0.8
    cel[3, 150:260, 180:330] = 0.6
    fx = dict(character.fx_cels)
    if not fx:
        fx["fx_flowers1"] = fx["fx_flowers2"] = cel.roll(200, dims=-1)
    return dataclasses.replace(character, cels={**character.cels, "blush1": cel}, fx_cels=fx)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _time_frames(pipe: Pipeline, frames: list[tuple], warmup: int) -> dict[str, float]:
    for args in frames[:warmup]:
        pipe.render(*args)
    stats = [pipe.render(*args).stats for args in frames[warmup:]]
    out = {key: _median([s[key] for s in stats]) for key in stats[0]}
    out["device"] = _median([sum(s[k] for k in STAGES) for s in stats])
    out["overhead"] = _median([s["total"] - sum(s[k] for k in STAGES) for s in stats])
    return out


def _scenarios(pipe: Pipeline, settings: dict, iters: int, warmup: int) -> dict[str, dict[str, float]]:
    gen = torch.Generator().manual_seed(0)
    n = iters + warmup
    fx = {"fx_flowers1": 0.7}
    poses = torch.rand(n, 45, generator=gen) * 0.8
    poses[:, 37:44] = poses[:, 37:44] * 2 - 0.8
    full = [(poses[i], {"blush1": 0.3 + 0.5 * (i % 2)}, fx, i / 25) for i in range(n)]
    idle_poses = poses[:1].repeat(n, 1)
    idle_poses[:, 39:] = poses[:, 39:]
    idle = [(idle_poses[i], {"blush1": 0.5}, fx, i / 25) for i in range(n)]

    clock = [0.0]
    animator = Animator(settings, load_templates(pipe.character.path), seed=0, clock=lambda: clock[0], emotion="joy")
    animate_ms: list[float] = []
    animated = []
    for i in range(n):
        clock[0] = i / 25
        t0 = time.perf_counter()
        state = animator.advance()
        animate_ms.append((time.perf_counter() - t0) * 1000)
        animated.append((state.pose, state.cels, state.fx, state.t))
    results = {"full": _time_frames(pipe, full, warmup), "idle": _time_frames(pipe, idle, warmup)}
    results["animator"] = _time_frames(pipe, animated, warmup)
    results["animator"]["animate"] = _median(animate_ms)
    return results


def _thread_fps(poser, settings: dict, seconds: float) -> tuple[float, dict]:
    avatar = Avatar(default_character(), {**settings, "target_fps": 240}, poser=poser, seed=0)
    taken = [0]
    stop = threading.Event()

    def consume() -> None:
        last = 0
        while not stop.is_set():
            frame = avatar.wait_frame(after=last, timeout=0.5)
            if frame is not None:
                last = frame.index
                taken[0] += 1

    with avatar:
        avatar.start()
        avatar.wait_frame(timeout=120)
        consumer = threading.Thread(target=consume)
        consumer.start()
        time.sleep(seconds)
        stop.set()
        consumer.join()
        stats = avatar.stats
    return taken[0] / seconds, stats


def run(args: argparse.Namespace) -> None:
    device, notice = resolve_device(args.device)
    if notice:
        logger.warning(notice)
    cuda = device.type == "cuda"
    iters = args.iters or (200 if cuda else 3)
    warmup = 10 if cuda else 1
    poser = load_poser(args.variant, device, progress=False)
    settings = defaults()
    settings.update(upscale=args.upscale, upscale_preset=args.preset, metrics_enabled=args.metrics)
    settings["upscale_quality"] = args.quality
    if args.no_chain:
        settings["postprocessor_chain"] = []
    pipe = Pipeline(poser, settings)
    pipe.set_character(_character(poser.device, poser.dtype))
    if pipe.notice:
        logger.warning(pipe.notice)
    results = _scenarios(pipe, settings, iters, warmup)

    size = round(512 * args.upscale)
    upscaler = f"{args.quality}" + (f" (Anime4K {args.preset})" if args.quality in ("low", "high") else "")
    chain = "none" if args.no_chain else ", ".join(n for n, _ in settings["postprocessor_chain"])
    print(f"Full frame {size}², {describe(poser.device)}, {poser.variant} ({str(poser.dtype).split('.')[-1]}), "
          f"torch {torch.__version__}; upscale {args.upscale}x {upscaler}; chain: {chain}; "
          f"median of {iters} frames{' (metrics: sync per stage)' if args.metrics else ''}\n")  # fmt: skip
    header = ["scenario", "frame ms", "device ms", "overhead ms", *(f"{s} ms" for s in STAGES), "animate ms"]
    rows = []
    for name, r in results.items():
        cells = [r["total"], r["device"], r["overhead"], *(r[s] for s in STAGES), r.get("animate", float("nan"))]
        rows.append([name, *(f"{v:.3f}" for v in cells)])
    print(markdown_table(header, rows))
    if pipe.notice:
        print(f"\nnote: {pipe.notice}")
    seconds = args.thread_seconds if args.thread_seconds is not None else (5.0 if cuda else 0.0)
    if seconds > 0:
        fps, stats = _thread_fps(poser, settings, seconds)
        print(f"\nrender thread + consumer, {seconds:g} s uncapped: {fps:.1f} frames/s taken; "
              f"renderer stats: fps {stats['fps']:.1f}, total {stats.get('total', 0):.3f} ms, "
              f"wait {stats.get('wait', 0):.3f} ms, animate {stats.get('animate', 0):.3f} ms")  # fmt: skip


if __name__ == "__main__":
    run_standalone(__doc__, add_arguments, run)
