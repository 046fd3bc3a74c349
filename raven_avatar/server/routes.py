"""The HTTP routes of the avatar API: the reference's paths, methods, fields and answers, plus ``frame`` and
``status``.

(No ``from __future__ import annotations`` here: FastAPI reads the request models from the annotations of the
endpoint functions made in a loop below.)
"""

import asyncio
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from raven_avatar.engine.character import CharacterError, character_from_images

from . import controls, feed
from .errors import ApiError
from .filters import available_filters
from .limits import Upload, read_upload
from .registry import AvatarRegistry

log = logging.getLogger(__name__)

NO_CACHE = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache", "Expires": "0"}
FRAME_TIMEOUT_S = 30.0


def ok() -> PlainTextResponse:
    return PlainTextResponse("OK")


def registry_of(request: Request) -> AvatarRegistry:
    return request.app.state.registry


def check_format(fmt: str | None) -> str:
    if not fmt:
        return ""
    if fmt.upper() not in feed.FORMATS:
        raise ApiError(400, "format", f"unknown format {fmt!r}; choose one of {', '.join(feed.FORMATS)}")
    return fmt.upper()


class FeedResponse(StreamingResponse):
    """The multipart stream of one viewer; frees its feed slot however the connection ends."""

    def __init__(self, hub: feed.FeedHub, fmt: str):
        self.hub, self.fmt = hub, fmt
        super().__init__(hub.stream(fmt), media_type=feed.MEDIA_TYPE, headers=NO_CACHE)

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.hub.leave(self.fmt, feed=True)


def _character(reg: AvatarRegistry, upload: Upload) -> Any:
    """The uploaded character. The images go through the engine's file loader from a private temporary folder,
    under names the server makes (``part0``, ``part1``, ...): nothing of the request names a file."""
    poser = reg.poser
    with tempfile.TemporaryDirectory(prefix="avatar-upload-") as folder:
        parts = {"file": upload.base, **upload.cels}
        paths = {}
        for i, (part, data) in enumerate(parts.items()):
            paths[part] = Path(folder) / f"part{i}"
            paths[part].write_bytes(data)
        try:
            return character_from_images(
                upload.name,
                paths.pop("file"),
                paths,
                device=poser.device,
                dtype=poser.dtype,
            )
        except ValueError as e:  # unknown cel part names
            raise ApiError(400, "cels", str(e)) from None
        except CharacterError as e:
            text, field = str(e), "file"
            for part, path in {"file": Path(folder) / "part0", **paths}.items():
                if text.startswith(f"{path}:"):
                    field = part
                text = text.replace(str(path), part)
            raise ApiError(400, field, text.removeprefix(f"{field}: ")) from None


def _make_control(name: str, model: type, func: Any):
    async def endpoint(request: Request, body: model) -> Response:  # type: ignore[valid-type]
        result = await run_in_threadpool(func, registry_of(request), body)
        return ok() if result is None else JSONResponse(result)  # the reference's "OK", or a call's answer

    endpoint.__name__ = name
    return endpoint


def build_router() -> APIRouter:
    router = APIRouter()

    @router.get("/health", tags=["server"])
    async def health() -> dict[str, str]:
        """200 while the server runs (what the reference's clients check at start)."""
        return {"status": "ok"}

    @router.post("/api/avatar/load", tags=["avatar"])
    async def load(request: Request) -> dict[str, str]:
        """Multipart: ``file`` (the character, any image format Pillow reads, scaled to 512x512) and optional
        parts named by cel (``blush1`` ... ``waver2``, ``data1`` ... ``data4``, ``fx_<effect><n>``). Returns the new
        avatar's ``instance_id``; it starts paused (POST start)."""
        reg = registry_of(request)
        upload = await read_upload(request, reg.config.limits)

        def make() -> str:
            return reg.load(_character(reg, upload)).id

        return {"instance_id": await run_in_threadpool(make)}

    @router.post("/api/avatar/reload", tags=["avatar"])
    async def reload(request: Request) -> PlainTextResponse:
        """Multipart: a ``json`` part ``{"instance_id": ...}`` plus ``file`` and cel parts as in load. Replaces the
        images and keeps the avatar's state (emotion, settings, templates)."""
        reg = registry_of(request)
        upload = await read_upload(request, reg.config.limits)
        raw = upload.fields.get("json")
        if raw is None:
            raise ApiError(400, "json", 'required part missing: {"instance_id": ...}')
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ApiError(400, "json", f"malformed JSON ({e})") from None
        if not isinstance(data, dict) or not isinstance(data.get("instance_id"), str):
            raise ApiError(400, "json.instance_id", "required string field missing")
        inst = reg.get(data["instance_id"])

        def swap() -> None:
            inst.avatar.load_character(_character(reg, upload))
            reg.events.emit("character", inst.id, character=inst.avatar.character.name)

        await run_in_threadpool(swap)
        return ok()

    @router.post("/api/avatar/unload", tags=["avatar"])
    async def unload(request: Request, body: controls.InstanceRequest) -> PlainTextResponse:
        """Stop and forget the avatar; its feeds end. OK also for an unknown id."""
        await run_in_threadpool(registry_of(request).unload, body.instance_id)
        return ok()

    for name, (model, func) in controls.CALLS.items():
        router.add_api_route(
            f"/api/avatar/{name}", _make_control(name, model, func), methods=["POST"], tags=["avatar"],
            summary=name, description=controls.DOCS[name], response_class=PlainTextResponse,
        )  # fmt: skip

    @router.get("/api/avatar/result_feed", tags=["avatar"], response_class=StreamingResponse)
    async def result_feed(
        request: Request,
        instance_id: str = Query(..., max_length=128),
        format: str | None = Query(None, description="PNG, QOI, TGA or IM; default: the avatar's format setting"),
    ) -> Response:
        """The live video: ``multipart/x-mixed-replace; boundary=frame``, one image per part with ``X-Crop``,
        ``X-Full-Size`` and ``X-Server-Stats`` headers, at most ``target_fps``; ends when the avatar is unloaded.
        503 when the avatar already has ``--max-feeds`` viewers."""
        fmt = check_format(format)
        inst = registry_of(request).get(instance_id)
        try:
            inst.feed.join(fmt, feed=True)
        except feed.FeedLimitError:
            raise ApiError(
                503, "instance_id", f"this avatar already has {inst.feed.max_feeds} feed connections (--max-feeds)"
            ) from None
        except feed.FeedClosedError:
            raise ApiError(404, "instance_id", f"avatar {instance_id!r} was unloaded") from None
        return FeedResponse(inst.feed, fmt)

    @router.get("/api/avatar/frame", tags=["avatar"], response_class=Response)
    async def frame(
        request: Request,
        instance_id: str = Query(..., max_length=128),
        format: str | None = Query("PNG", description="PNG (default), QOI, TGA or IM"),
    ) -> Response:
        """One frame as an image (for scripts): rendered after this request while the avatar runs, else the last
        one. Same headers as a feed part."""
        fmt = check_format(format) or "PNG"
        inst = registry_of(request).get(instance_id)
        try:
            enc = await inst.feed.next_frame(fmt, FRAME_TIMEOUT_S)
        except feed.FeedClosedError:
            raise ApiError(404, "instance_id", f"avatar {instance_id!r} was unloaded") from None
        if enc is None:
            if not inst.avatar.running:
                raise ApiError(409, "instance_id", "the avatar has not rendered a frame yet; POST start first")
            raise ApiError(503, "instance_id", f"no frame within {FRAME_TIMEOUT_S:.0f} s")
        headers = {**feed.frame_headers(enc), **NO_CACHE}
        headers.pop("Content-Length")
        return Response(enc.data, media_type=enc.content_type, headers=headers)

    @router.get("/api/avatar/status", tags=["avatar"])
    async def status(request: Request, instance_id: str | None = Query(None, max_length=128)) -> dict[str, Any]:
        """One avatar's state (emotion, talking, feeds, stats, notices, last error), or ``{"avatars": [...]}``."""
        reg = registry_of(request)
        if instance_id is not None:
            return controls.status(reg, instance_id)
        avatars = []
        for i in reg.ids():
            try:
                avatars.append(controls.status(reg, i))
            except ApiError:  # unloaded meanwhile
                continue
        return {"avatars": avatars, "max_avatars": reg.config.max_avatars}

    @router.get("/api/avatar/get_available_filters", tags=["avatar"])
    async def get_available_filters() -> JSONResponse:
        """The postprocessor filters with defaults, ranges and docs, in the reference's shape."""
        return JSONResponse({"filters": await asyncio.to_thread(available_filters)})

    return router
