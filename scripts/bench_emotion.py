"""Benchmark emotion from text: ``EmotionClassifier.classify`` latency on the CPU and CUDA.

The default model's weights (``joeddav/distilbert-base-uncased-go-emotions-student``) are on the Hugging Face Hub,
which is unreachable here, so this times **the same architecture with random weights**: distilBERT base (6 layers,
dim 768, 12 heads, vocab 30522) with the 28 go-emotions labels, saved to a temporary folder and loaded through
``EmotionClassifier`` like the real model. The tokenizer is a WordPiece vocabulary of the same size that holds the
benchmark's words, so a sentence has about as many tokens as with the real vocabulary (printed). Pass ``--model``
to time a real model folder or a cached Hub id instead.

Timing is wall clock (``classify`` returns the scores on the host, so that is its latency), median of many runs
after warm-up. Cases: one sentence; a three-sentence text (``classify`` batches the sentences).

On CUDA both ways are timed: CUDA graphs (the default) and eager.

Usage: ``python scripts/bench_emotion.py [--cpu-iters 50] [--cuda-iters 200] [--no-cuda] [--dtype D] [--model M]``
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import torch

from raven_avatar.engine.emotion_text import EmotionClassifier
from raven_avatar.engine.emotions import EMOTION_NAMES

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import add_device_arguments, markdown_table, median_ms, run_standalone  # noqa: E402

logger = logging.getLogger(__name__)

SENTENCE = "I honestly can't believe you remembered my birthday, thank you so much!"
TEXT = "The demo crashed twice this morning. Then it worked on the first try. I can't believe it, we did it!"


def build_random_default(folder: Path) -> Path:
    """distilBERT base with random weights, 28 go-emotions labels and a 30522-entry WordPiece vocabulary."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification, DistilBertTokenizerFast

    words = sorted({w.strip(".,!?").lower() for w in f"{SENTENCE} {TEXT}".replace("'", " ' ").split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "?", "'", *words]
    vocab += [f"[unused{i}]" for i in range(30522 - len(vocab))]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    DistilBertTokenizerFast.from_pretrained(folder, model_max_length=512).save_pretrained(folder)
    labels = list(EMOTION_NAMES)
    config = DistilBertConfig(id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    torch.manual_seed(0)
    DistilBertForSequenceClassification(config).eval().save_pretrained(folder)
    return folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="a model folder or cached Hub id (default: random distilBERT base)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                        help="the network's dtype (default: float32)")  # fmt: skip
    add_device_arguments(parser, cuda_iters=200, cpu_iters=50)


def time_device(model: str | Path, device: str, iters: int, dtype: torch.dtype, graphs: bool) -> list[list[object]]:
    """Table rows for one device: classify() of one sentence and of three, and the network alone (eager)."""
    clf = EmotionClassifier(model, device, allow_download=False, dtype=dtype, cuda_graphs=graphs)
    tokenizer, network = clf.tokenizer, clf.network
    tokens = len(tokenizer(SENTENCE)["input_ids"])
    where = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    where += f", {str(dtype).removeprefix('torch.')}" + (", CUDA graphs" if graphs else "")
    rows: list[list[object]] = []
    for case, text in (("one sentence", SENTENCE), ("3 sentences (one batch)", TEXT)):
        # Host clock: classify returns the scores on the host, so wall time is what a caller waits.
        ms = median_ms(lambda i, text=text: clf.classify(text), torch.device("cpu"), iters=iters, warmup=5)
        rows.append([where, f"classify(): {case}", tokens if case == "one sentence" else "", f"{ms:.2f}"])
        logger.info("%s %s: %.2f ms", where, case, ms)
    if not graphs:
        inputs = {k: v.to(clf.device) for k, v in tokenizer(SENTENCE, return_tensors="pt").items()}
        with torch.inference_mode():  # the network alone (CUDA: device time by events)
            ms = median_ms(lambda i: network(**inputs), clf.device, iters=iters, warmup=5)
        rows.append([where, "network forward only (eager): one sentence", tokens, f"{ms:.2f}"])
    return rows


def run(args: argparse.Namespace) -> None:
    dtype = getattr(torch, args.dtype)
    cases = []
    if torch.cuda.is_available() and not args.no_cuda:
        cases += [("cuda", args.cuda_iters, True), ("cuda", args.cuda_iters, False)]
    if not args.no_cpu:
        cases.append(("cpu", args.cpu_iters, False))
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or build_random_default(Path(tmp))
        rows = [row for device, iters, graphs in cases for row in time_device(model, device, iters, dtype, graphs)]
    weights = args.model or "random weights, distilBERT base architecture (the default model's)"
    print(f"Emotion classifier, median ms per call ({weights}; torch {torch.__version__})\n")
    print(markdown_table(["device", "case", "tokens", "ms"], rows))


if __name__ == "__main__":
    run_standalone(__doc__, add_arguments, run)
