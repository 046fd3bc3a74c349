"""Emotion from text: a go-emotions text classifier whose 28 labels are the 28 emotion templates.

:class:`EmotionClassifier` runs a ``transformers`` text-classification pipeline (default
:data:`DEFAULT_MODEL`, a distilBERT student of go-emotions, about 270 MB) and returns *all* label scores. A long text
is split into sentences and the last ones weigh most: what the character feels *now*. Labels become template names
through one table (:data:`LABEL_TO_TEMPLATE`, overlaid by the ``emotion_label_map`` setting), so a classifier with
other labels (e.g. a 6-class model) can drive the avatar too.

Provisioning, like the other models: a local folder, else the Hugging Face Hub cache, else a download from the Hub
(unless offline: ``RAVEN_AVATAR_OFFLINE`` / ``HF_HUB_OFFLINE``). Without the model, loading raises one
:class:`~raven_avatar.engine.download.OfflineError` saying what to run where the network is. ``transformers`` is the
optional extra ``emotion`` (``pip install raven-avatar[emotion]``).

Command line::

    python -m raven_avatar.engine.emotion_text download [--model ID]   # fetch into the Hugging Face cache
    python -m raven_avatar.engine.emotion_text where [--model ID]      # cached? where?
    python -m raven_avatar.engine.emotion_text classify "I can't believe it worked!"

Example:
    >>> clf = EmotionClassifier(device="cpu")  # doctest: +SKIP
    >>> top(clf.classify("Thank you so much!"), 3)  # doctest: +SKIP
    [('gratitude', 0.93), ('admiration', 0.02), ('joy', 0.01)]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, overload

import torch

from raven_avatar.engine.cudagraph import capture
from raven_avatar.engine.device import resolve_device
from raven_avatar.engine.download import DownloadError, OfflineError, is_offline
from raven_avatar.engine.emotions import EMOTION_NAMES

log = logging.getLogger(__name__)

DEFAULT_MODEL = "joeddav/distilbert-base-uncased-go-emotions-student"
NEUTRAL = "neutral"
INSTALL_HINT = "install the emotion extra: `pip install raven-avatar[emotion]`"
DOWNLOAD_COMMAND = "python -m raven_avatar.engine.emotion_text download"

#: Classifier label (lower case) -> emotion template. The 28 go-emotions labels are template names; the others are
#: labels of common smaller emotion classifiers. The ``emotion_label_map`` setting overlays this table.
LABEL_TO_TEMPLATE: dict[str, str] = {
    **{name: name for name in EMOTION_NAMES},
    "happy": "joy",
    "happiness": "joy",
    "sad": "sadness",
    "angry": "anger",
    "fearful": "fear",
    "scared": "fear",
    "worry": "nervousness",
    "surprised": "surprise",
    "disgusted": "disgust",
    "fun": "amusement",
    "enthusiasm": "excitement",
    "others": NEUTRAL,
    "empty": NEUTRAL,
}

# Files a text-classification model needs: config, tokenizer; weights are chosen separately (one format only).
_FILES = ["config.json", "tokenizer*", "vocab*", "merges.txt", "special_tokens_map.json", "*.model"]
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def available() -> tuple[bool, str]:
    """``(True, "")`` when ``transformers`` is installed, else ``(False, how to install it)``. Imports nothing."""
    if importlib.util.find_spec("transformers") is None:
        return False, f"emotion from text needs the transformers package; {INSTALL_HINT}"
    return True, ""


def missing_model_hint(model: str) -> str:
    """What to do when ``model`` is not on this machine (download where the Hub is reachable, or a local folder)."""
    return (
        f"run `{DOWNLOAD_COMMAND} --model {model}` once where the Hugging Face Hub is reachable (it fills the "
        "Hugging Face cache, ~/.cache/huggingface/hub; copy that folder here), or set the emotion_model setting to "
        "a local model folder"
    )


def _is_path(model: str | os.PathLike[str]) -> bool:
    """A folder, or what can only be meant as one (absolute, ``./``, ``../``, ``~``), rather than a Hub id."""
    text = str(model)
    return Path(text).expanduser().is_dir() or os.path.isabs(text) or text.startswith((".", "~"))


def find_model(
    model: str | os.PathLike[str] = DEFAULT_MODEL, *, cache_dir: str | os.PathLike[str] | None = None
) -> Path | None:
    """The local folder holding ``model`` (a folder path, or a Hub id found in the Hugging Face cache), or None."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path if (path / "config.json").is_file() else None
    if _is_path(model):
        return None  # a path that does not exist: not a Hub id either
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(str(model), local_files_only=True, cache_dir=cache_dir))
    except (OSError, ValueError):  # LocalEntryNotFoundError is an OSError
        return None
    complete = (folder / "config.json").is_file() and any((folder / w).is_file() for w in _WEIGHTS)
    return folder if complete else None


def download(
    model: str = DEFAULT_MODEL, *, cache_dir: str | os.PathLike[str] | None = None, progress: bool = True
) -> Path:
    """Fetch a Hub model's config, tokenizer and weights (safetensors if published, else the PyTorch ``.bin``) into
    the Hugging Face cache, with progress bars; returns its folder. Raises ``OfflineError`` / ``DownloadError``."""
    if is_offline():
        raise OfflineError(
            f"cannot download the emotion model {model}: offline mode (RAVEN_AVATAR_OFFLINE or HF_HUB_OFFLINE is "
            f"set); {missing_model_hint(model)}"
        )
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    quiet = not progress and not are_progress_bars_disabled()
    if quiet:
        disable_progress_bars()
    try:
        files = set(HfApi().list_repo_files(model))
        weights = next((w for w in _WEIGHTS if w in files), None)
        if weights is None:
            raise DownloadError(f"the Hub model {model} has no PyTorch weights ({' or '.join(_WEIGHTS)})")
        return Path(snapshot_download(model, allow_patterns=[*_FILES, weights], cache_dir=cache_dir))
    except DownloadError:
        raise
    except Exception as err:
        hint = missing_model_hint(model)
        raise DownloadError(f"could not download the emotion model {model}: {err}. {hint}") from err
    finally:
        if quiet:
            enable_progress_bars()


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (the speech module's splitter: line breaks, ``. ! ? …``, abbreviations kept)."""
    from raven_avatar.engine.speech.tts import split_sentences as split

    return split(text)


def recency_weights(n: int, recency: float) -> list[float]:
    """Weights of ``n`` sentences, oldest first, summing to 1: each sentence weighs ``recency`` times the next one
    (1: all equal; 0: only the last counts)."""
    raw = [recency ** (n - 1 - i) for i in range(n)]
    total = sum(raw)
    return [w / total for w in raw]


def top(scores: Mapping[str, float], k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` best ``(label, score)`` pairs, best first."""
    return sorted(scores.items(), key=lambda kv: kv[1], reverse=True)[:k]


def classification_json(scores: Mapping[str, float]) -> dict[str, list[dict[str, Any]]]:
    """The reference server's ``/api/classify`` answer: ``{"classification": [{"label", "score"}, ...]}``, best
    first, every label."""
    return {"classification": [{"label": k, "score": float(v)} for k, v in top(scores, len(scores))]}


def label_table(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """:data:`LABEL_TO_TEMPLATE` with ``overrides`` (``{label: template}``, e.g. the ``emotion_label_map``
    setting) on top; keys are lower case."""
    table = dict(LABEL_TO_TEMPLATE)
    table.update({str(k).lower(): v for k, v in (overrides or {}).items()})
    return table


def to_templates(
    scores: Mapping[str, float], table: Mapping[str, str], known: Sequence[str] | None = None
) -> tuple[dict[str, float], list[str]]:
    """Label scores -> template scores through ``table`` (labels that map to one template add up), best first.

    A label missing from ``table`` keeps its own name (lower case). With ``known`` (the templates that exist),
    scores of other templates are dropped. Returns ``(template scores, labels dropped)``.
    """
    out: dict[str, float] = {}
    dropped: list[str] = []
    for label, score in scores.items():
        name = table.get(label.lower(), label.lower())
        if known is not None and name not in known:
            dropped.append(label)
            continue
        out[name] = out.get(name, 0.0) + float(score)
    return dict(top(out, len(out))), dropped


class EmotionClassifier:
    """Text -> scores of every emotion label, on the ``transformers`` text-classification pipeline.

    Args:
        model: a Hugging Face Hub id (default :data:`DEFAULT_MODEL`) or a local model folder.
        device: ``auto`` (the first CUDA GPU, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``; unusable CUDA falls
            back to the CPU with :attr:`notice`.
        cache_dir: the Hugging Face cache to use (default: huggingface_hub's, ``HF_HUB_CACHE``).
        allow_download: fetch a Hub model that is not cached (never in offline mode).
        dtype: the network's dtype (default: as saved, float32). ``torch.bfloat16`` is faster on CPUs with AMX or
            AVX512-BF16 and much slower on CPUs without; the scores are computed in float32 either way.
        cuda_graphs: replay the network as CUDA graphs (default: on CUDA; captured on first use of each batch and
            length bucket, in ``thread_local`` mode so a render thread's GPU work cannot break a capture).

    Raises:
        RuntimeError: ``transformers`` is not installed (the message says how to install it).
        OfflineError: the model is not cached and cannot be downloaded (the message says what to run where).
        DownloadError: the download failed.

    Thread-safe: one classification runs at a time.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_MODEL,
        device: str | torch.device = "auto",
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        allow_download: bool = True,
        dtype: torch.dtype | None = None,
        cuda_graphs: bool | None = None,
    ) -> None:
        ok, why = available()
        if not ok:
            raise RuntimeError(why)
        self.model = str(model)
        folder = find_model(model, cache_dir=cache_dir)
        if folder is None:
            if _is_path(model):
                raise OfflineError(f"{model}: not a model folder (no config.json); {missing_model_hint(DEFAULT_MODEL)}")
            if not allow_download or is_offline():
                raise OfflineError(f"the emotion model {model} is not downloaded; {missing_model_hint(self.model)}")
            folder = download(self.model, cache_dir=cache_dir)
        self.folder = folder
        self.device, self.notice = resolve_device(device)
        from transformers import pipeline

        #: The transformers text-classification pipeline: it loads the model and tokenizer (see :meth:`raw_scores`).
        self.pipeline = pipeline("text-classification", model=str(folder), top_k=None, device=self.device)
        self.tokenizer, self.network = self.pipeline.tokenizer, self.pipeline.model
        if dtype is not None:
            self.network.to(dtype)
        config = self.network.config
        #: The model's labels, in its output order.
        self.labels: list[str] = [config.id2label[i] for i in range(config.num_labels)]
        # The pipeline's default output function: none for regression, sigmoid for multi-label, else softmax.
        if config.problem_type == "regression":
            self._activation = lambda x: x
        elif config.problem_type == "multi_label_classification" or config.num_labels == 1:
            self._activation = torch.sigmoid
        else:
            self._activation = lambda x: torch.softmax(x, dim=-1)
        #: Replay the network as CUDA graphs (default: on CUDA), captured per batch and length bucket.
        self.cuda_graphs = self.device.type == "cuda" if cuda_graphs is None else cuda_graphs
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, dict[str, torch.Tensor], torch.Tensor]] = {}
        self._max_length = int(getattr(config, "max_position_embeddings", 512))
        self._lock = threading.Lock()

    def raw_scores(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """The scores of every label for each text as given (no sentence splitting), in one padded batch.

        The same numbers as ``self.pipeline(texts, top_k=None)``, without the pipeline's per-item machinery
        (which costs more than the network for one short sentence on a 2-core CPU).
        """
        if not texts:
            return []
        with self._lock, torch.inference_mode():
            batch = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
            logits = self._logits({k: v.to(self.device, non_blocking=True) for k, v in batch.items()})
            rows = self._activation(logits.float()).tolist()
        return [dict(zip(self.labels, row, strict=True)) for row in rows]

    def _logits(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        n, length = inputs["input_ids"].shape
        if not self.cuda_graphs or length > self._max_length:
            return self.network(**inputs).logits
        # One CUDA graph per (batch, length) bucket, powers of two: a sentence costs one replay instead of ~100
        # kernel launches (eager distilBERT on a GPU is launch-bound). Padding is masked out.
        key = (1 << (n - 1).bit_length(), max(16, 1 << (length - 1).bit_length()), tuple(sorted(inputs)))
        entry = self._graphs.get(key)
        if entry is None:
            static = {k: torch.zeros(key[:2], dtype=v.dtype, device=self.device) for k, v in inputs.items()}
            self._fill(static, inputs)
            graph, logits = capture(lambda: self.network(**static).logits, self.device)
            entry = self._graphs[key] = (graph, static, logits)
        graph, static, logits = entry
        self._fill(static, inputs)
        graph.replay()
        return logits[:n]

    @staticmethod
    def _fill(static: dict[str, torch.Tensor], inputs: dict[str, torch.Tensor]) -> None:
        n, length = inputs["input_ids"].shape
        for k, v in static.items():
            v.zero_()
            v[:n, :length].copy_(inputs[k])
        if "attention_mask" in static:
            static["attention_mask"][n:, 0] = 1  # padding rows attend to one token (no all-masked softmax)

    @overload
    def classify(self, text: str, *, last: int = 3, recency: float = 0.5) -> dict[str, float]: ...

    @overload
    def classify(self, text: Sequence[str], *, last: int = 3, recency: float = 0.5) -> list[dict[str, float]]: ...

    def classify(self, text, *, last=3, recency=0.5):
        """Scores of every label (in :attr:`labels` order) for one text, or a list of them for a batch.

        Each text is split into sentences; the ``last`` sentences are classified (all texts' sentences in one
        batch) and averaged with :func:`recency_weights`, so the newest sentence weighs most. A text with no
        sentence (empty, only punctuation) is classified as it is.
        """
        if not isinstance(text, str) and not all(isinstance(t, str) for t in text):
            raise TypeError("classify takes a string or a list of strings")
        if not last >= 1 or not 0.0 <= recency <= 1.0:
            raise ValueError(f"need last >= 1 and 0 <= recency <= 1, got last={last}, recency={recency}")
        texts = [text] if isinstance(text, str) else list(text)
        pieces = [split_sentences(t)[-last:] or [t] for t in texts]
        flat = self.raw_scores([s for p in pieces for s in p])
        results, i = [], 0
        for p in pieces:
            weights = recency_weights(len(p), recency)
            results.append({lab: sum(w * flat[i + j][lab] for j, w in enumerate(weights)) for lab in self.labels})
            i += len(p)
        return results[0] if isinstance(text, str) else results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m raven_avatar.engine.emotion_text", description="The emotion-from-text classifier's model."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("download", "fetch the model into the Hugging Face cache (about 270 MB for the default)"),
        ("where", "say whether the model is available offline, and where"),
        ("classify", "print the top emotions of a text"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--model", default=DEFAULT_MODEL, help=f"Hub id or local folder (default: {DEFAULT_MODEL})")
        if name == "classify":
            p.add_argument("text")
            p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "download":
            print(f"{args.model}: {download(args.model)}")
        elif args.command == "where":
            folder = find_model(args.model)
            print(f"{args.model}: {folder or 'not downloaded; run ' + DOWNLOAD_COMMAND}")
            return 0 if folder else 1
        else:
            clf = EmotionClassifier(args.model, args.device, allow_download=False)
            for label, score in top(clf.classify(args.text), 5):
                print(f"{label:16s} {score:.3f}")
    except (DownloadError, RuntimeError) as err:
        logging.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
