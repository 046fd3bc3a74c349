"""Speech: Kokoro-82M text to speech in-process, phoneme-accurate lipsync, playback, audio export and recording.

Everything heavy is optional: this package imports with the core dependencies only; ``kokoro`` (``pip install
raven-avatar[speech]``), ``sounddevice``, ``soundfile`` and ``av`` are imported when used. Without the Kokoro
weights (``python -m raven_avatar.engine.speech download``, about 330 MB from the Hugging Face Hub) speech reports
itself unavailable and nothing else is affected.

API (for apps)::

    from raven_avatar.engine.speech import Speaker

    speaker = Speaker(avatar, offset=-0.1)      # avatar/animator: has modify_overrides(action, dict)
    ok, why = speaker.available()               # (False, "... run `python -m raven_avatar.engine.speech download`")
    speaker.voices()                            # ["af_bella", "af_heart", ...]
    speaker.speak(text, voice="af_bella", speed=1.0, on_done=callback)   # returns at once
    speaker.speaking                            # True while speaking
    speaker.stop()                              # at any time; the mouth eases back to the emotion's shape
    speaker.offset = -0.2                       # AV offset in seconds, live (negative: mouth ahead of audio)
    speaker.export_audio(text, "hello.flac", voice="af_bella", speed=1.0)   # .wav / .flac / .ogg
    record_speech(speaker, text, render, "talk.mp4", fps=25)   # or a folder: PNGs + audio.wav + timing.json

Lower level: :class:`Synthesizer` (text -> :class:`Utterance` per sentence: audio + per-phoneme
:class:`Phoneme` times from Kokoro's predicted durations), :func:`mouth_track` / :class:`LipsyncDriver`
(``LipsyncDriver(target, clock, offset).run(track, playing)``), :class:`Player` (sounddevice, or a silent wall clock
when there is no output device), :func:`save_audio`, :class:`SpeechRecorder`.
"""

from .audio import Player, load_audio, save_audio
from .lipsync import MOUTH_KEYS, PHONEME_TO_MORPH, LipsyncDriver, MouthEvent, mouth_track, shape_at
from .recording import SpeechRecorder, record_speech
from .speaker import Speaker
from .tts import (
    DEFAULT_VOICE,
    SAMPLE_RATE,
    Phoneme,
    Synthesizer,
    Utterance,
    download,
    phoneme_timeline,
    split_sentences,
    status,
)

__all__ = [
    "DEFAULT_VOICE",
    "MOUTH_KEYS",
    "PHONEME_TO_MORPH",
    "SAMPLE_RATE",
    "LipsyncDriver",
    "MouthEvent",
    "Phoneme",
    "Player",
    "Speaker",
    "SpeechRecorder",
    "Synthesizer",
    "Utterance",
    "download",
    "load_audio",
    "mouth_track",
    "phoneme_timeline",
    "record_speech",
    "save_audio",
    "shape_at",
    "split_sentences",
    "status",
]
