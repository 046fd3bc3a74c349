"""The avatar control calls, one function each, shared by the HTTP routes and the WebSocket.

Each call takes the registry and a validated request model and returns None (the HTTP answer is the reference's
``OK``) or a JSON-able result. Bad input raises :class:`~.errors.ApiError` naming the field; nothing here can stop
another avatar or the server. :data:`CALLS` maps each call's name (its path under ``/api/avatar/``) to its model
and function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from raven_avatar.engine import emotions as emotionsmod
from raven_avatar.engine import settings as settingsmod

from .errors import ApiError
from .registry import AvatarRegistry

_ID = Field(min_length=1, max_length=128, description="the id returned by /api/avatar/load")


class InstanceRequest(BaseModel):
    """``{"instance_id": ...}``."""

    model_config = ConfigDict(strict=True)
    instance_id: str = _ID


class EmotionRequest(InstanceRequest):
    emotion_name: str = Field(min_length=1, max_length=128, description="e.g. joy; see /api/avatar/status")


class TextRequest(InstanceRequest):
    text: str = Field(min_length=1, max_length=20_000, description="what the character says")


class FollowTextRequest(InstanceRequest):
    chunk: str = Field("", max_length=20_000, description="the next piece of a streamed reply (any size)")
    done: bool = Field(False, description="true with (or after) the last chunk")


class OverridesRequest(InstanceRequest):
    overrides: dict[str, float] = Field(description="{pose key or cel name: value}; {} clears all overrides")


class ModifyOverridesRequest(InstanceRequest):
    action: Literal["set", "unset"]
    overrides: dict[str, float] | list[str] = Field(description="set: {key: value}; unset: [keys] or {key: any}")


class SettingsRequest(InstanceRequest):
    animator_settings: dict[str, Any] = Field(
        default_factory=dict, description="the whole settings dict (see the settings editor); {} = the defaults"
    )


class TemplatesRequest(InstanceRequest):
    emotions: dict[str, Any] = Field(
        default_factory=dict, description='{emotion: {"pose": {...}, "cels": {...}}} over the defaults; {} = defaults'
    )


def _started(reg: AvatarRegistry, req: InstanceRequest) -> None:
    inst = reg.get(req.instance_id)
    inst.avatar.start()
    reg.events.emit("started", inst.id)


def _stopped(reg: AvatarRegistry, req: InstanceRequest) -> None:
    # The reference's "stop" pauses: nothing renders, and "start" continues where the animation was.
    inst = reg.get(req.instance_id)
    inst.avatar.pause()
    reg.events.emit("stopped", inst.id)


def _talking(on: bool) -> Callable[[AvatarRegistry, InstanceRequest], None]:
    def call(reg: AvatarRegistry, req: InstanceRequest) -> None:
        inst = reg.get(req.instance_id)
        (inst.avatar.start_talking if on else inst.avatar.stop_talking)()
        reg.events.emit("talking_started" if on else "talking_stopped", inst.id, speech=False)

    return call


def _data_eyes(on: bool) -> Callable[[AvatarRegistry, InstanceRequest], None]:
    def call(reg: AvatarRegistry, req: InstanceRequest) -> None:
        inst = reg.get(req.instance_id)
        (inst.avatar.start_data_eyes if on else inst.avatar.stop_data_eyes)()
        reg.events.emit("data_eyes_started" if on else "data_eyes_stopped", inst.id)

    return call


def set_emotion(reg: AvatarRegistry, req: EmotionRequest) -> None:
    inst = reg.get(req.instance_id)
    try:
        inst.avatar.set_emotion(req.emotion_name)
    except ValueError as e:
        raise ApiError(400, "emotion_name", str(e)) from None
    reg.events.emit("emotion", inst.id, emotion=req.emotion_name)


def _text_emotion_failed(e: Exception) -> ApiError:
    """The classifier cannot run here (transformers missing, model not downloaded): 503 with the fix."""
    return ApiError(503, "classify", str(e))


def set_emotion_from_text(reg: AvatarRegistry, req: TextRequest) -> dict[str, Any]:
    inst = reg.get(req.instance_id)
    try:
        name, score = inst.avatar.set_emotion_from_text(req.text)
    except (ImportError, OSError, RuntimeError) as e:  # OfflineError/DownloadError are OSErrors
        raise _text_emotion_failed(e) from None
    reg.events.emit("emotion", inst.id, emotion=name)
    return {"emotion": name, "score": round(float(score), 6)}


def follow_text(reg: AvatarRegistry, req: FollowTextRequest) -> None:
    reg.get(req.instance_id).avatar.follow_text(req.chunk, done=req.done)


def set_overrides(reg: AvatarRegistry, req: OverridesRequest) -> None:
    inst = reg.get(req.instance_id)
    try:
        inst.avatar.set_overrides(req.overrides)
    except (TypeError, ValueError) as e:
        raise ApiError(400, "overrides", str(e)) from None


def modify_overrides(reg: AvatarRegistry, req: ModifyOverridesRequest) -> None:
    inst = reg.get(req.instance_id)
    if req.action == "set" and not isinstance(req.overrides, dict):
        raise ApiError(400, "overrides", "action 'set' needs {key: value}")
    try:
        inst.avatar.modify_overrides(req.action, req.overrides)
    except (TypeError, ValueError) as e:
        raise ApiError(400, "overrides", str(e)) from None


def load_animator_settings(reg: AvatarRegistry, req: SettingsRequest) -> None:
    inst = reg.get(req.instance_id)
    problems = settingsmod.validate(req.animator_settings)
    if problems:
        texts = [f"animator_settings.{p}" for p in problems]
        first = problems[0]
        raise ApiError(400, f"animator_settings.{first.key}", f"{first.value!r}: {first.why}", problems=texts)
    try:
        inst.avatar.load_settings(reg.settings_for(req.animator_settings))
    except ValueError as e:  # e.g. a postprocessor chain the pipeline refuses
        raise ApiError(400, "animator_settings", str(e)) from None
    inst.format = inst.avatar.settings["format"]
    reg.events.emit("settings", inst.id)


def load_emotion_templates(reg: AvatarRegistry, req: TemplatesRequest) -> None:
    inst = reg.get(req.instance_id)
    problems: list[str] = []
    for name, data in req.emotions.items():
        try:
            emotionsmod.validate_emotion_name(name)
        except ValueError as e:
            raise ApiError(400, f"emotions.{name}", str(e)) from None
        problems += emotionsmod.template_from_json(name, data).problems
    if problems:
        raise ApiError(400, "emotions", problems[0], problems=problems)
    try:
        inst.avatar.load_templates(dict(req.emotions) or None)
    except ValueError as e:
        raise ApiError(400, "emotions", str(e)) from None
    reg.events.emit("templates", inst.id, emotions=inst.avatar.emotions)


def status(reg: AvatarRegistry, instance_id: str) -> dict[str, Any]:
    """What a frontend may want to show about one avatar."""
    inst = reg.get(instance_id)
    a = inst.avatar
    error = a.last_error
    speaker = inst.speaker
    return {
        "instance_id": inst.id,
        "character": a.character.name,
        "cels": list(a.character.cels),
        "running": a.running and not a.paused,
        "emotion": a.emotion,
        "emotions": a.emotions,
        "talking": a.is_talking,
        "speaking": bool(speaker is not None and speaker.speaking),
        "overrides": a.overrides,
        "feeds": inst.feed.feeds,
        "format": inst.format,
        "target_fps": a.renderer.target_fps,
        "stats": {k: round(v, 3) if isinstance(v, float) else v for k, v in a.stats.items()},
        "notices": a.notices,
        "last_error": None if error is None else {"message": error.message, "count": error.count},
        "problems": [str(p) for p in a.settings_problems] + list(a.templates.problems),
    }


#: name -> (request model, function); the HTTP route is ``POST /api/avatar/<name>``, the WebSocket call ``name``.
CALLS: dict[str, tuple[type[BaseModel], Callable[[AvatarRegistry, Any], Any]]] = {
    "start": (InstanceRequest, _started),
    "stop": (InstanceRequest, _stopped),
    "start_talking": (InstanceRequest, _talking(True)),
    "stop_talking": (InstanceRequest, _talking(False)),
    "start_data_eyes": (InstanceRequest, _data_eyes(True)),
    "stop_data_eyes": (InstanceRequest, _data_eyes(False)),
    "set_emotion": (EmotionRequest, set_emotion),
    "set_overrides": (OverridesRequest, set_overrides),
    "modify_overrides": (ModifyOverridesRequest, modify_overrides),
    "load_animator_settings": (SettingsRequest, load_animator_settings),
    "load_emotion_templates": (TemplatesRequest, load_emotion_templates),
    "set_emotion_from_text": (TextRequest, set_emotion_from_text),
    "follow_text": (FollowTextRequest, follow_text),
}

DOCS = {
    "start": "Start (or resume) animating and rendering.",
    "set_emotion_from_text": "Classify the text (go-emotions) and show its emotion at once: {emotion, score}.",
    "follow_text": "Let the emotion follow a streamed reply: send chunks as they come (classified at sentence "
    "ends, with the hysteresis of the emotion_* settings); returns at once.",
    "stop": "Pause: nothing is rendered until start; the feed keeps showing the last frame.",
    "start_talking": "Generic talking animation (random mouth, no lipsync).",
    "stop_talking": "End the generic talking animation.",
    "start_data_eyes": "Cycle the data1..N cels (no effect without them).",
    "stop_data_eyes": "Fade the data eyes out.",
    "set_emotion": "Change emotion (smoothly; triggers its animefx). Unknown name: 400 with suggestions.",
    "set_overrides": "Replace all overrides ({pose key or cel: value}); {} clears them.",
    "modify_overrides": "Set some overrides or unset some keys (what lipsync calls each tick).",
    "load_animator_settings": "Apply animator settings (the whole dict; omitted keys revert to the defaults).",
    "load_emotion_templates": "Overlay emotion templates over the defaults; {} restores the defaults.",
}
