"""Benchmark the pose editor's render path and batch export, without a window (issue 7's targets).

- *edit → texture data*: one slider change (head turn, so THA3's body stage reruns; and a mouth change, so the face
  stages rerun), rendered and converted to the float32 sRGB texture buffer the GUI uploads. Median of many runs.
- *batch export*: every emotion to PNG + JSON + ``_emotions.json`` (one run after a warm-up export).

Runs on CUDA when available (timed with ``torch.cuda.synchronize`` around wall-clock, since the result must reach
the host anyway), else on the CPU. Prints a Markdown table for docs/PERFORMANCE.md.

    python scripts/bench_pose_editor.py --device cuda --runs 50
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from raven_avatar.engine.device import describe
from raven_avatar.engine.poser import default_character, load_poser
from raven_avatar.pose_editor.batch import batch_export
from raven_avatar.pose_editor.model import EditorModel
from raven_avatar.pose_editor.render import EditorRenderer, to_display


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_edits(model: EditorModel, key: str, values: list[float], device: torch.device) -> list[float]:
    times = []
    for v in values:
        _sync(device)
        start = time.perf_counter()
        model.set_value(key, v)
        buffer = to_display(model.render(), None)
        times.append((time.perf_counter() - start) * 1000)
        assert buffer.shape == (512, 512, 4)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default=None, help="THA3 variant (default: separable_half on CUDA)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--no-batch", action="store_true", help="skip the batch export timing")
    args = parser.parse_args()

    poser = load_poser(args.model, args.device)
    model = EditorModel(renderer=EditorRenderer(poser))
    model.load_character(default_character())
    model.apply_emotion("neutral")
    model.render()  # warm-up (graph capture on CUDA)
    n = max(2, args.runs)
    rows = []
    for key, label in (("head_x", "edit → texture (body stage)"), ("mouth_aaa", "edit → texture (face stages)")):
        values = [(i % 10) / 10 for i in range(1, n + 1)]
        time_edits(model, key, values[:3], poser.device)  # warm-up
        times = time_edits(model, key, values, poser.device)
        rows.append((label, statistics.median(times), min(times), len(times)))
    print(f"\nDevice: {describe(poser.device)}, THA3 {poser.variant}\n")
    print("| measurement | median ms | min ms | runs |\n|---|---:|---:|---:|")
    for label, med, low, count in rows:
        print(f"| {label} | {med:.1f} | {low:.1f} | {count} |")
    if not args.no_batch:
        templates = model.templates.templates
        renderer = EditorRenderer(poser)
        with tempfile.TemporaryDirectory() as tmp:
            batch_export(renderer, model.character, templates, tmp)  # warm-up (batch graphs)
            _sync(poser.device)
            start = time.perf_counter()
            result = batch_export(renderer, model.character, templates, tmp)
            _sync(poser.device)
            seconds = time.perf_counter() - start
        print(f"| batch export of {result.total} emotions (PNG + JSON) | {seconds * 1000:.0f} | | 1 |")


if __name__ == "__main__":
    main()
