"""``POST /api/avatar/speak``: text -> Kokoro speech with the engine's phoneme lipsync on one avatar.

``"play": true`` (default): the server plays the audio on its output device (silently on the wall clock when it has
none) and moves the avatar's mouth in sync; the call returns at once. ``"play": false``: the answer carries the
audio (WAV, base64) and the phoneme timeline, and the avatar lipsyncs on the server's clock from the moment the
answer is sent: play the audio on receipt. Without Kokoro or its weights: 503 with the same message (and fix) as
the apps.
"""

from __future__ import annotations

import base64
import io
import logging
import wave
from collections.abc import Iterator
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from .controls import InstanceRequest
from .errors import ApiError
from .modules import ServerModule
from .registry import AvatarRegistry, Instance

log = logging.getLogger(__name__)


class SpeakRequest(InstanceRequest):
    text: str = Field(min_length=1, max_length=20_000, description="what to say (sentences are split by the engine)")
    voice: str | None = Field(None, max_length=64, description="a Kokoro voice, e.g. af_bella (the default)")
    speed: float = Field(1.0, ge=0.5, le=2.0)
    play: bool = Field(True, description="play on the server (true) or return WAV + phoneme timeline (false)")


def speech_status(reg: AvatarRegistry) -> tuple[bool, str]:
    """``(True, "")`` when speech works here; else ``(False, why and how to fix it)``."""
    if reg.config.synthesizer is not None:
        return True, ""
    try:
        from raven_avatar.engine.speech import tts
    except ImportError as e:
        return False, f"speech is not installed ({e}); pip install raven-avatar[speech]"
    return tts.status()


def _synthesizer(reg: AvatarRegistry) -> Any:
    synth = reg.config.synthesizer
    if synth is None:
        from raven_avatar.engine.speech import tts

        synth = reg.config.synthesizer = tts.Synthesizer()
    return synth


class _Replay:
    """A synthesizer that hands out utterances already made (lipsync for audio the client plays)."""

    def __init__(self, utterances: list, voices: list[str]):
        self.utterances, self.voices = utterances, voices

    def synthesize(self, text: str, voice: str, speed: float) -> Iterator:
        return iter(self.utterances)


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """Mono float audio in [-1, 1] as a 16-bit PCM WAV file."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def _speak(reg: AvatarRegistry, inst: Instance, req: SpeakRequest) -> dict[str, Any]:
    from raven_avatar.engine.speech import DEFAULT_VOICE, Speaker

    synth = _synthesizer(reg)
    voice = req.voice or DEFAULT_VOICE
    voices = list(synth.voices)
    if voices and voice not in voices:
        if req.voice is not None:
            raise ApiError(400, "voice", f"unknown voice {voice!r}; known: {', '.join(voices)}")
        voice = voices[0]
    if inst.speaker is not None:
        inst.speaker.stop()

    def done() -> None:
        reg.events.emit("talking_stopped", inst.id, speech=True)

    if req.play:
        inst.speaker = Speaker(inst.avatar, synthesizer=synth)
        inst.speaker.speak(req.text, voice, req.speed, on_done=done)
        reg.events.emit("talking_started", inst.id, speech=True)
        return {"playing": True, "voice": voice}
    utterances = list(synth.synthesize(req.text, voice, req.speed))
    if not utterances:
        raise ApiError(400, "text", "nothing to say (no speakable words)")
    sample_rate = utterances[0].sample_rate
    phonemes, sentences, start = [], [], 0.0
    for u in utterances:
        phonemes += [{"symbol": p.symbol, "start": start + p.start, "end": start + p.end} for p in u.timeline]
        sentences.append({"text": u.text, "phonemes": u.phonemes, "start": start, "end": start + u.duration})
        start += u.duration
    audio = np.concatenate([u.audio for u in utterances])
    inst.speaker = Speaker(inst.avatar, synthesizer=_Replay(utterances, voices), silent=True)
    inst.speaker.speak(req.text, voice, req.speed, on_done=done)
    reg.events.emit("talking_started", inst.id, speech=True)
    return {
        "voice": voice,
        "sample_rate": sample_rate,
        "duration": start,
        "wav_base64": base64.b64encode(wav_bytes(audio, sample_rate)).decode("ascii"),
        "phonemes": phonemes,
        "sentences": sentences,
    }


def speech_module(reg: AvatarRegistry) -> ServerModule:
    router = APIRouter()

    @router.post("/api/avatar/speak", tags=["speech"])
    async def speak(request: Request, body: SpeakRequest) -> dict[str, Any]:
        """Speak ``text`` with lipsync on the avatar (see the module docs for ``play``)."""
        ok, why = speech_status(reg)
        if not ok:
            raise ApiError(503, "speech", why)
        inst = reg.get(body.instance_id)
        return await run_in_threadpool(_speak, reg, inst, body)

    @router.post("/api/avatar/stop_speaking", tags=["speech"])
    async def stop_speaking(request: Request, body: InstanceRequest) -> dict[str, bool]:
        """Stop speech in progress; the mouth eases back to the emotion's shape."""
        inst = reg.get(body.instance_id)
        if inst.speaker is not None:
            await run_in_threadpool(inst.speaker.stop)
        return {"stopped": True}

    return ServerModule("tts", available=lambda: speech_status(reg)[0], router=router)
