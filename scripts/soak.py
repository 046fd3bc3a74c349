#!/usr/bin/env python
"""Live-engine soak: an Avatar rendering for N seconds at a target FPS while a consumer takes frames like a GUI.

Reports delivered FPS, frames the consumer found stale (no new frame at its tick: a dropped engine frame), the
largest gap between new frames, the render thread's stage timings, and memory at start and end. Run it on a GPU:
``python scripts/soak.py --seconds 60 --fps 60 --device cuda``.

``--follow-text`` also streams an LLM-like reply into ``avatar.follow_text`` (about 30 words per second, over and
over) while it runs, so the emotion follows the text: classification on its own thread must add no dropped frames.
The classifier is distilBERT base with random weights (``scripts/bench_emotion.py`` builds it), on the avatar's device.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from raven_avatar.engine import Avatar

REPLY = (
    "Oh, you're back! I was starting to worry. Did the demo work this time? Wait, it crashed again? That's awful, "
    "I'm so sorry. Let's look at the log together. Hmm, this line is strange. Oh! I see it now, the path was wrong. "
    "Try again? Yes! It works! I knew you could do it, I'm so proud of you. Thank you for not giving up.\n"
)


def _stream_text(avatar: Avatar, stop: threading.Event, words_per_second: float = 30.0) -> int:
    """Feed REPLY word by word until ``stop``; returns the number of chunks sent."""
    sent = 0
    while not stop.is_set():
        for word in REPLY.split(" "):
            if stop.wait(1.0 / words_per_second):
                break
            avatar.follow_text(word + " ")
            sent += 1
        avatar.follow_text("", done=True)
    return sent


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--fps", type=float, default=60.0)
    p.add_argument("--device", default="auto")
    p.add_argument("--upscale", type=float, default=2.0, help="upscale factor (Anime4K C high when > 1)")
    p.add_argument("--follow-text", action="store_true", help="stream text into follow_text while running")
    args = p.parse_args()
    settings = {"target_fps": args.fps, "upscale": args.upscale, "upscale_preset": "C", "upscale_quality": "high"}
    tmp = tempfile.TemporaryDirectory()
    if args.follow_text:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_emotion import build_random_default

        model = build_random_default(Path(tmp.name))  # random weights: near-even scores, so no threshold or margin
        settings |= {
            "emotion_model": str(model),
            "emotion_hold_time": 1.0,
            "emotion_neutral_threshold": 0.0,
            "emotion_margin": 0.0,
        }
    stop, streamer, sent = threading.Event(), None, [0]
    with Avatar(settings=settings, device=args.device, seed=0) as avatar:
        emotions = [e for e in ("joy", "surprise", "anger", "neutral", "curiosity") if e in avatar.emotions]
        if args.follow_text:
            avatar.set_emotion_from_text("Hello!")  # load the classifier before timing

            def stream() -> None:
                sent[0] = _stream_text(avatar, stop)

            streamer = threading.Thread(target=stream, daemon=True)
        avatar.start()
        first = avatar.wait_frame(timeout=300)
        assert first is not None, avatar.last_error
        if streamer is not None:
            streamer.start()
        rss0 = _rss_mb()
        gpu0 = torch.cuda.memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
        period, last_index, stale, gaps = 1.0 / args.fps, first.index, 0, []
        t_last_new = t0 = time.perf_counter()
        ticks, changes, shown = 0, 0, avatar.emotion
        while (now := time.perf_counter()) - t0 < args.seconds:
            ticks += 1
            if ticks % int(args.fps * 5) == 0:
                avatar.set_emotion(emotions[(ticks // int(args.fps * 5)) % len(emotions)])
            if avatar.emotion != shown:
                shown, changes = avatar.emotion, changes + 1
            frame = avatar.latest_frame()
            if frame is not None and frame.index != last_index:
                gaps.append(now - t_last_new)
                t_last_new, last_index = now, frame.index
            else:
                stale += 1
            time.sleep(max(0.0, t0 + ticks * period - time.perf_counter()))
        elapsed = time.perf_counter() - t0
        stop.set()
        if streamer is not None:
            streamer.join()
            avatar.text_emotion.wait(10)
            print(f"follow_text: {sent[0]} chunks streamed; last error {avatar.text_emotion.last_error}")
        print(f"emotion changes seen by the consumer: {changes}")
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
    tmp.cleanup()


if __name__ == "__main__":
    main()
