"""``/api/classify``: the reference's emotion classifier endpoints (go-emotions labels and scores for a text).

``POST /api/classify`` ``{"text"}`` answers ``{"classification": [{"label", "score"}, ...]}``, best first, every
label; ``GET /api/classify/labels`` answers ``{"labels": [...]}``. One classifier serves the whole server (the
``emotion_model`` of the server's config, default the reference's model), loaded on first use. The module is listed
in ``/api/modules`` when ``transformers`` is installed and the model is on this machine; otherwise its endpoints
answer 503 saying what to install or download. Per avatar, ``set_emotion_from_text`` and ``follow_text`` (see
:mod:`~raven_avatar.server.controls`) use the avatar's own settings.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from raven_avatar.engine import emotion_text

from .errors import ApiError
from .modules import ServerModule
from .registry import AvatarRegistry

log = logging.getLogger(__name__)


class ClassifyRequest(BaseModel):
    text: str = Field(min_length=1, max_length=20_000, description="the text to classify")


class _Classifier:
    """The server's one classifier, built on first use (a failed build is retried on the next request)."""

    def __init__(self, reg: AvatarRegistry):
        self.reg = reg
        self._lock = threading.Lock()

    def status(self) -> tuple[bool, str]:
        if self.reg.config.classifier is not None:
            return True, ""
        ok, why = emotion_text.available()
        if not ok:
            return ok, why
        model = self.reg.config.emotion_model
        if emotion_text.find_model(model) is None:
            return False, f"the emotion model {model} is not on this machine; " + emotion_text.missing_model_hint(model)
        return True, ""

    def get(self) -> Any:
        with self._lock:
            config = self.reg.config
            if config.classifier is None:
                ok, why = self.status()
                if not ok:
                    raise ApiError(503, "classify", why)
                try:
                    config.classifier = emotion_text.EmotionClassifier(config.emotion_model, device=config.device)
                except (ImportError, OSError, RuntimeError, ValueError) as e:
                    raise ApiError(503, "classify", f"cannot load the emotion model: {e}") from None
            return config.classifier


def classify_module(reg: AvatarRegistry) -> ServerModule:
    classifier = _Classifier(reg)
    router = APIRouter()

    @router.post("/api/classify", tags=["classify"])
    async def classify(body: ClassifyRequest) -> dict[str, Any]:
        """Scores of every go-emotions label for ``text`` (long texts: the last sentences weigh most)."""
        model = await run_in_threadpool(classifier.get)
        scores = await run_in_threadpool(model.classify, body.text)
        return emotion_text.classification_json(scores)

    @router.get("/api/classify/labels", tags=["classify"])
    async def labels() -> dict[str, list[str]]:
        """The classifier's labels, in its output order."""
        model = await run_in_threadpool(classifier.get)
        return {"labels": list(model.labels)}

    return ServerModule("classify", available=lambda: classifier.status()[0], router=router)
