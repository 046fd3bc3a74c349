"""A tiny randomly initialised DistilBERT with the 28 go-emotions labels and a small tokenizer, built offline."""

from __future__ import annotations

from pathlib import Path

_TEXT = """i you we it this that is are am was so very not really thank thanks love hate happy sad angry scared sorry
great terrible wow what why how oh no yes and the a to of my your me can believe worked failed again"""
WORDS = _TEXT.split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PUNCT = list(".,!?'\"-")


def build_tiny_model(folder: Path, labels: list[str], seed: int = 0) -> Path:
    """Save a tiny DistilBERT text classifier (random weights, ``labels`` in this order) and its WordPiece tokenizer
    into ``folder``: what ``EmotionClassifier(folder)`` loads."""
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification, DistilBertTokenizerFast

    vocab = SPECIAL + PUNCT + WORDS
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = DistilBertTokenizerFast.from_pretrained(folder, model_max_length=64)
    config = DistilBertConfig(
        vocab_size=len(vocab), dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64,
        initializer_range=0.5,
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
    )  # fmt: skip
    torch.manual_seed(seed)
    model = DistilBertForSequenceClassification(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
