"""``/api/avatar/ws``: the control calls as JSON messages, and the avatars' events pushed, on one connection.

Send ``{"call": NAME, "id": ANY, ...fields}``; NAME is any control call (the path under ``/api/avatar/``:
``set_emotion``, ``start_talking``, ``modify_overrides``, ...), ``unload``, ``status`` or ``subscribe``. The same
fields as the HTTP body. The answer is ``{"reply": NAME, "id": ANY, "ok": true, "result": ...}`` or
``{"reply": NAME, "id": ANY, "ok": false, "error": "<field>: <what is wrong>"}``; a bad message never closes the
connection. Events arrive as ``{"event": ..., "instance_id": ..., "time": ...}`` (see
:mod:`~raven_avatar.server.registry`), for every avatar until ``{"call": "subscribe", "instance_ids": [...]}``
narrows them (``null``: all again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from . import controls
from .errors import ApiError, validation_error
from .registry import AvatarRegistry

log = logging.getLogger(__name__)


async def _handle(reg: AvatarRegistry, token: int, message: Any) -> Any:
    """The result of one call; raises ApiError."""
    if not isinstance(message, dict):
        raise ApiError(400, "message", 'expected a JSON object {"call": ..., ...}')
    call = message.get("call")
    if not isinstance(call, str):
        raise ApiError(400, "call", "required string field missing")
    fields = {k: v for k, v in message.items() if k not in ("call", "id")}
    if call == "subscribe":
        ids = fields.get("instance_ids")
        if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
            raise ApiError(400, "instance_ids", "expected a list of instance ids, or null for all")
        reg.events.set_filter(token, None if ids is None else set(ids))
        return {"instance_ids": ids}
    if call == "status":
        instance_id = fields.get("instance_id")
        if not isinstance(instance_id, str):
            raise ApiError(400, "instance_id", "required string field missing")
        return await run_in_threadpool(controls.status, reg, instance_id)
    if call == "unload":
        req = _parse(controls.InstanceRequest, fields)
        await run_in_threadpool(reg.unload, req.instance_id)
        return None
    entry = controls.CALLS.get(call)
    if entry is None:
        known = ", ".join(sorted([*controls.CALLS, "subscribe", "status", "unload"]))
        raise ApiError(400, "call", f"unknown call {call!r}; known: {known}")
    model, func = entry
    return await run_in_threadpool(func, reg, _parse(model, fields))


def _parse(model: Any, fields: dict[str, Any]) -> Any:
    try:
        return model.model_validate(fields)
    except ValidationError as e:
        raise validation_error(e) from None


def build_router() -> APIRouter:
    router = APIRouter()

    @router.websocket("/api/avatar/ws")
    async def avatar_ws(ws: WebSocket) -> None:
        reg: AvatarRegistry = ws.app.state.registry
        limit = reg.config.limits.max_json_bytes
        await ws.accept()
        token, queue = reg.events.subscribe(None)
        send_lock = asyncio.Lock()

        async def send(data: dict[str, Any]) -> None:
            async with send_lock:
                await ws.send_text(json.dumps(data))

        async def pump() -> None:
            while True:
                await send(await queue.get())

        pump_task = asyncio.create_task(pump())
        log.info("WS /api/avatar/ws connected")
        try:
            while True:
                raw = await ws.receive()
                if raw["type"] == "websocket.disconnect":
                    return
                text = raw.get("text")
                if text is None:
                    text = (raw.get("bytes") or b"").decode("utf-8", errors="replace")
                reply: dict[str, Any] = {"reply": None, "id": None}
                try:
                    if len(text) > limit:
                        raise ApiError(413, "message", f"{len(text)} bytes is over the limit of {limit}")
                    try:
                        message = json.loads(text)
                    except json.JSONDecodeError as e:
                        raise ApiError(400, "message", f"malformed JSON ({e})") from None
                    if isinstance(message, dict):
                        reply.update(reply=message.get("call"), id=message.get("id"))
                    result = await _handle(reg, token, message)
                    reply.update(ok=True, result=result)
                except ApiError as e:
                    reply.update(ok=False, error=e.text)
                except Exception as e:  # a bug in one call must not end the connection
                    log.exception("WebSocket call failed")
                    reply.update(ok=False, error=f"internal error: {type(e).__name__}: {e}")
                log.info("WS %s -> %s", reply["reply"], "ok" if reply.get("ok") else reply.get("error"))
                await send(reply)
        except WebSocketDisconnect:
            return
        finally:
            pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump_task
            reg.events.unsubscribe(token)
            log.info("WS /api/avatar/ws disconnected")

    return router
