"""Kokoro-82M text to speech with a timestamp for every phoneme.

Kokoro predicts a duration (in frames) for every input symbol; the audio is exactly those frames laid end to end.
:func:`phoneme_timeline` turns the durations into per-phoneme start and end times, so the lipsync sees each phoneme
when it is actually spoken (the reference split each *word's* time evenly over its letters).

Weights (``hexgrad/Kokoro-82M``: ``config.json``, ``kokoro-v1_0.pth``, ``voices/*.pt``) come from
``user_cache_dir()/kokoro`` or the Hugging Face cache; :func:`download` fetches them. Without them,
:func:`status` says why and how to get them; nothing else in the engine needs them.

Text goes to phonemes with misaki: its full English G2P when spaCy's ``en_core_web_sm`` is installed, else misaki's
espeak-ng G2P (the ``espeakng-loader`` wheel ships espeak-ng), which works offline.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import threading
import unicodedata
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raven_avatar.engine.download import OfflineError, is_offline
from raven_avatar.engine.paths import user_cache_dir

log = logging.getLogger(__name__)

REPO_ID = "hexgrad/Kokoro-82M"
MODEL_FILE = "kokoro-v1_0.pth"
CONFIG_FILE = "config.json"
SAMPLE_RATE = 24000
DEFAULT_VOICE = "af_bella"
MAX_PHONEMES = 510  # Kokoro's context is 512 symbols including the two boundary tokens
DOWNLOAD_HINT = "run `python -m raven_avatar.engine.speech download` once with network access (about 360 MB)"
INSTALL_HINT = "install the speech extra: `pip install raven-avatar[speech]`"

_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc", "e.g", "i.e", "jr", "sr", "no", "fig"}
_LINE_PREFIX = re.compile(r"^\s*(#{1,6}\s+|[-*+>]\s+|\d+[.)]\s+)")
_MARKUP = re.compile(r"\*+|(?<!\w)_+|_+(?!\w)|`+|~~")
_CLOSERS = "\"'”’)]"
_MAYBE_END = re.compile(r"(?<=[.!?…\"'”’)\]])\s+")


@dataclass(frozen=True)
class Phoneme:
    """One phoneme symbol and when it sounds, in seconds from the start of its utterance."""

    symbol: str
    start: float
    end: float


@dataclass
class Utterance:
    """One synthesized piece of speech (a sentence, or a part of a very long one)."""

    text: str
    phonemes: str
    audio: np.ndarray  # float32 mono, SAMPLE_RATE
    timeline: list[Phoneme] = field(default_factory=list)
    sample_rate: int = SAMPLE_RATE

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


def _speakable(c: str) -> bool:
    """False for emoji and other pictographs, which espeak would read out by name ("grinning face")."""
    return not (unicodedata.category(c) == "So" or c in "\u200d\ufe0f" or 0x1F000 <= ord(c) <= 0x1FAFF)


def clean_text(text: str) -> str:
    """Drop what should not be read aloud: Markdown markers (emphasis, code, headings, bullets, quotes) and emoji."""
    lines = []
    for line in text.splitlines():
        line = _MARKUP.sub("", _LINE_PREFIX.sub("", line))
        lines.append("".join(c for c in line if _speakable(c)))
    return "\n".join(lines)


def split_sentences(text: str) -> list[str]:
    """Split text into sentences: at line breaks and after ``. ! ? …`` (and closing quotes) followed by a space,
    except after abbreviations such as "Dr."; pieces with nothing to say are dropped."""
    out: list[str] = []
    for line in text.splitlines():
        pending = ""
        for piece in _MAYBE_END.split(line.strip()):
            pending = f"{pending} {piece}" if pending else piece
            bare = pending.rstrip(_CLOSERS)
            last_word = bare.rsplit(None, 1)[-1].rstrip(".").lower() if bare else ""
            if bare.endswith(("!", "?", "…")) or (bare.endswith(".") and last_word not in _ABBREVIATIONS):
                out.append(pending)
                pending = ""
        if pending:
            out.append(pending)
    return [s for s in out if any(c.isalnum() for c in s)]


def chunk_phonemes(phonemes: str, limit: int = MAX_PHONEMES) -> list[str]:
    """Cut a phoneme string into pieces Kokoro accepts, preferring punctuation, then spaces."""
    chunks = []
    rest = phonemes.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind(c) for c in ".!?;:,—")
        if cut <= 0:
            cut = window.rfind(" ")
        cut = cut if cut > 0 else limit - 1  # no break anywhere: cut mid-word
        chunks.append(rest[: cut + 1].strip())
        rest = rest[cut + 1 :].strip()
    if rest:
        chunks.append(rest)
    return chunks


def phoneme_timeline(
    phonemes: str, vocab: Mapping[str, int], durations: torch.Tensor | np.ndarray, n_samples: int, sample_rate: int
) -> list[Phoneme]:
    """Per-phoneme times from Kokoro's predicted durations.

    ``durations`` has one entry per model input: the start token, every phoneme that is in ``vocab`` (KModel drops
    the others), the end token. The audio is the frames laid end to end, so one frame lasts
    ``n_samples / sum(durations)`` samples (600 at 24 kHz for the real model).
    """
    symbols = [p for p in phonemes if p in vocab]
    dur = np.asarray(durations, dtype=np.int64).reshape(-1)
    if len(dur) != len(symbols) + 2:
        raise ValueError(f"{len(dur)} durations for {len(symbols)} phonemes (expected phonemes + 2)")
    seconds_per_frame = n_samples / max(int(dur.sum()), 1) / sample_rate
    edges = np.cumsum(dur) * seconds_per_frame  # edges[k] = end of input k
    return [Phoneme(s, float(edges[i]), float(edges[i + 1])) for i, s in enumerate(symbols)]


# ------------------------------------------------------------------------------------------------ weights


def weights_dir() -> Path:
    """Where :func:`download` puts the Kokoro files."""
    return user_cache_dir() / "kokoro"


def find_weights() -> Path | None:
    """The folder holding ``config.json`` and ``kokoro-v1_0.pth``: ours, else the Hugging Face cache; or None."""
    ours = weights_dir()
    if (ours / CONFIG_FILE).is_file() and (ours / MODEL_FILE).is_file():
        return ours
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub is a core dependency
        return None
    config = try_to_load_from_cache(REPO_ID, CONFIG_FILE)
    model = try_to_load_from_cache(REPO_ID, MODEL_FILE)
    if isinstance(config, str) and isinstance(model, str):
        return Path(config).parent
    return None


def status() -> tuple[bool, str]:
    """``(True, "")`` when speech can run; else ``(False, why and how to fix it)``. Cheap: imports nothing heavy."""
    missing = [name for name in ("kokoro", "misaki", "espeakng_loader") if importlib.util.find_spec(name) is None]
    if missing:
        return False, f"speech needs the packages {', '.join(missing)}; {INSTALL_HINT}"
    if find_weights() is None:
        return False, f"the Kokoro-82M weights are not downloaded; {DOWNLOAD_HINT}"
    return True, ""


def download(voices: list[str] | None = None, *, progress: bool = True) -> Path:
    """Fetch config, weights and voices (all, or the named ones) from the Hugging Face Hub into :func:`weights_dir`."""
    if is_offline():
        raise OfflineError(f"cannot download {REPO_ID}: offline mode (RAVEN_AVATAR_OFFLINE or HF_HUB_OFFLINE is set)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    patterns = [CONFIG_FILE, MODEL_FILE] + ([f"voices/{v}.pt" for v in voices] if voices else ["voices/*.pt"])
    quiet = not progress and not are_progress_bars_disabled()
    if quiet:
        disable_progress_bars()
    try:
        return Path(snapshot_download(REPO_ID, allow_patterns=patterns, local_dir=weights_dir()))
    except Exception as err:
        raise OfflineError(f"could not download {REPO_ID} from the Hugging Face Hub: {err}") from err
    finally:
        if quiet:
            enable_progress_bars()


def list_voices(folder: Path | None) -> list[str]:
    """Voice names (``af_bella`` ...) found as ``voices/<name>.pt`` in ``folder``."""
    return sorted(p.stem for p in (folder / "voices").glob("*.pt")) if folder else []


# ------------------------------------------------------------------------------------------------ G2P


def english_g2p(british: bool = False) -> Callable[[str], str]:
    """Text -> Misaki phonemes: misaki's English G2P if spaCy's model is installed, else espeak-ng (offline)."""
    from misaki import espeak

    try:
        import spacy

        has_spacy_model = spacy.util.is_package("en_core_web_sm")
    except ImportError:
        has_spacy_model = False
    if has_spacy_model:
        from kokoro import KPipeline
        from misaki import en

        g2p = en.G2P(trf=False, british=british, fallback=espeak.EspeakFallback(british=british), unk="")
        return lambda text: KPipeline.tokens_to_ps(g2p(text)[1])
    log.info("spaCy's en_core_web_sm is not installed: using espeak-ng for English phonemes")
    g2p = espeak.EspeakG2P(language="en-gb" if british else "en-us")
    return lambda text: g2p(text)[0]


# ------------------------------------------------------------------------------------------------ synthesis


class Synthesizer:
    """Kokoro model + voices + G2P: text in, :class:`Utterance` per sentence out.

    Args:
        model: a ``kokoro.KModel`` (tests build one from a small config); default: load from :func:`find_weights`.
        voices: name -> voice pack tensor (510, 1, 256) or ``.pt`` path; default: the downloaded voices.
        g2p: text -> phoneme string; default :func:`english_g2p`.
        device: torch device for the default model (default: CUDA when available).
    """

    def __init__(
        self,
        model: Any = None,
        voices: Mapping[str, torch.Tensor | str | Path] | None = None,
        g2p: Callable[[str], str] | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        folder = None
        if model is None or voices is None:
            ok, why = status()
            if not ok:
                raise RuntimeError(why)
            folder = find_weights()
        if model is None:
            from kokoro import KModel

            device = device or ("cuda" if torch.cuda.is_available() else "cpu")
            config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
            with warnings.catch_warnings():  # kokoro's weight_norm deprecation and one-layer LSTM dropout notes
                warnings.filterwarnings("ignore", message=".*weight_norm.*is deprecated", category=FutureWarning)
                warnings.filterwarnings("ignore", message="dropout option adds dropout", category=UserWarning)
                model = KModel(repo_id=REPO_ID, config=config, model=str(folder / MODEL_FILE)).to(device).eval()
        self.model = model
        if voices is None:
            voices = {name: folder / "voices" / f"{name}.pt" for name in list_voices(folder)}
        self._voices: dict[str, torch.Tensor | str | Path] = dict(voices)
        self._g2p = g2p
        self._lock = threading.Lock()  # one synthesis at a time per model

    @property
    def voices(self) -> list[str]:
        return sorted(self._voices)

    def voice_pack(self, voice: str) -> torch.Tensor:
        """The style tensor of a voice; ``"a,b"`` averages voices (as kokoro does)."""
        names = [v.strip() for v in voice.split(",") if v.strip()]
        packs = []
        for name in names:
            if name not in self._voices:
                raise ValueError(f"unknown voice {name!r}; available: {', '.join(self.voices) or '(none)'}")
            pack = self._voices[name]
            if not isinstance(pack, torch.Tensor):
                pack = self._voices[name] = torch.load(pack, map_location="cpu", weights_only=True)
            packs.append(pack)
        if not packs:
            raise ValueError("no voice given")
        return packs[0] if len(packs) == 1 else torch.stack(packs).mean(0)

    def phonemize(self, text: str) -> str:
        if self._g2p is None:
            self._g2p = english_g2p()
        return self._g2p(text)

    def synthesize_phonemes(self, phonemes: str, voice: str, speed: float = 1.0, text: str = "") -> Utterance:
        """Speak one phoneme string (at most :data:`MAX_PHONEMES` symbols) with per-phoneme timestamps."""
        from kokoro import KPipeline

        if not phonemes.strip():
            raise ValueError("nothing to say: empty phoneme string")
        if len(phonemes) > MAX_PHONEMES:
            raise ValueError(f"phoneme string too long ({len(phonemes)} > {MAX_PHONEMES}); use chunk_phonemes")
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed}")
        pack = self.voice_pack(voice).to(self.model.device)
        with self._lock:
            out = KPipeline.infer(self.model, phonemes, pack, speed)
        audio = out.audio.detach().float().cpu().numpy().astype(np.float32).reshape(-1)
        timeline = phoneme_timeline(phonemes, self.model.vocab, out.pred_dur.cpu(), len(audio), SAMPLE_RATE)
        return Utterance(text=text, phonemes=phonemes, audio=audio, timeline=timeline)

    def synthesize(self, text: str, voice: str = DEFAULT_VOICE, speed: float = 1.0) -> Iterator[Utterance]:
        """One :class:`Utterance` per sentence (long sentences in several), lazily, in order; Markdown markers and
        emoji are not read out (:func:`clean_text`)."""
        for sentence in split_sentences(clean_text(text)):
            for chunk in chunk_phonemes(self.phonemize(sentence)):
                yield self.synthesize_phonemes(chunk, voice, speed, text=sentence)
