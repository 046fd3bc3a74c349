#!/usr/bin/env python
"""Live-engine soak: an Avatar rendering for N seconds at a target FPS while a consumer takes frames like a GUI.

Reports delivered FPS, frames the consumer found stale (no new frame at its tick: a dropped engine frame), the
largest gap between new frames, the render thread's stage timings, and memory at start and end. Run it on a GPU:
``python scripts/soak.py --seconds 60 --fps 60 --device cuda``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from raven_avatar.engine import Avatar


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--fps", type=float, default=60.0)
    p.add_argument("--device", default="auto")
    p.add_argument("--upscale", type=float, default=2.0, help="upscale factor (Anime4K C high when > 1)")
    args = p.parse_args()
    settings = {"target_fps": args.fps, "upscale": args.upscale, "upscale_preset": "C", "upscale_quality": "high"}
    with Avatar(settings=settings, device=args.device, seed=0) as avatar:
        emotions = [e for e in ("joy", "surprise", "anger", "neutral", "curiosity") if e in avatar.emotions]
        avatar.start()
        first = avatar.wait_frame(timeout=300)
        assert first is not None, avatar.last_error
        rss0 = _rss_mb()
        gpu0 = torch.cuda.memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
        period, last_index, stale, gaps = 1.0 / args.fps, first.index, 0, []
        t_last_new = t0 = time.perf_counter()
        ticks = 0
        while (now := time.perf_counter()) - t0 < args.seconds:
            ticks += 1
            if ticks % int(args.fps * 5) == 0:
                avatar.set_emotion(emotions[(ticks // int(args.fps * 5)) % len(emotions)])
            frame = avatar.latest_frame()
            if frame is not None and frame.index != last_index:
                gaps.append(now - t_last_new)
                t_last_new, last_index = now, frame.index
            else:
                stale += 1
            time.sleep(max(0.0, t0 + ticks * period - time.perf_counter()))
        elapsed = time.perf_counter() - t0
        stats = avatar.stats
        print(f"device {avatar.notice or args.device}; target {args.fps:g} FPS for {elapsed:.1f} s; "
              f"output {first.width}x{first.height}")  # fmt: skip
        print(f"consumer ticks {ticks}, new frames {len(gaps)} ({len(gaps) / elapsed:.1f} FPS), "
              f"stale ticks (dropped) {stale}, max gap {max(gaps) * 1000:.1f} ms, "
              f"median gap {statistics.median(gaps) * 1000:.1f} ms")  # fmt: skip
        print("render stats:", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in stats.items()})
        gpu1 = torch.cuda.memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
        print(
            f"RSS {rss0:.0f} -> {_rss_mb():.0f} MB; GPU allocated {gpu0:.0f} -> {gpu1:.0f} MB; "
            f"errors {stats.get('errors')}"
        )


if __name__ == "__main__":
    main()
