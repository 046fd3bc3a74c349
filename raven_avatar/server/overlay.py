"""``GET /overlay``: a page for an OBS Browser Source that shows one avatar live on a transparent background.

Query: ``instance_id`` (default ``default``, the ``--character`` avatar), ``backdrop`` (a CSS colour behind the
avatar, e.g. ``%2300ff00`` for a chroma key; default transparent), ``scale`` (size as a multiple of the frame's
pixels; default: fit the page, keeping the aspect ratio), ``key`` (the API key, when the server needs one). The
page (``raven_avatar/assets/overlay/overlay.html``) reads ``result_feed`` and reconnects by itself after a server
restart.
"""

from __future__ import annotations

import functools
import json
import re

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from raven_avatar.engine.paths import asset_path

from .errors import ApiError
from .registry import DEFAULT_ID

_COLOUR = re.compile(r"transparent|#[0-9a-fA-F]{3,8}|[a-zA-Z]{1,30}|rgba?\(\s*[0-9.,%\s]{1,60}\)")


@functools.cache
def _template() -> str:
    return asset_path("overlay", "overlay.html").read_text(encoding="utf-8")


def page(instance_id: str, backdrop: str, scale: float | None, key: str | None) -> str:
    config = {"instance_id": instance_id, "backdrop": backdrop, "scale": scale, "key": key}
    # JSON inside <script>: "<" escaped, so no value can close the tag.
    return _template().replace("__CONFIG__", json.dumps(config).replace("<", "\\u003c"))


def build_router() -> APIRouter:
    router = APIRouter()

    @router.get("/overlay", response_class=HTMLResponse, tags=["overlay"])
    async def overlay(
        instance_id: str = Query(DEFAULT_ID, max_length=128),
        backdrop: str = Query("transparent", max_length=80, description="CSS colour, e.g. #00ff00"),
        scale: float | None = Query(None, gt=0.0, le=8.0, description="multiple of the frame size; none: fit"),
        key: str | None = Query(None, max_length=256, description="the API key, if the server needs one"),
    ) -> HTMLResponse:
        """The OBS overlay page (see the README for the three-step Browser Source setup)."""
        if not _COLOUR.fullmatch(backdrop):
            raise ApiError(400, "backdrop", f"not a CSS colour: {backdrop!r} (e.g. transparent, #00ff00, black)")
        return HTMLResponse(page(instance_id, backdrop, scale, key), headers={"Cache-Control": "no-cache"})

    return router
