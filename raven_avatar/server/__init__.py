"""``avatar-server``: drive live avatars from any program over HTTP (Raven's avatar web API, plus more).

A FastAPI app over the same engine as the desktop apps (``raven_avatar.engine``; the engine knows nothing of HTTP).
Several avatars share one THA3 :class:`~raven_avatar.engine.poser.Poser` and one render thread that poses the
avatars due together in one batched call (:class:`~raven_avatar.engine.group.RenderGroup`).

Modules, one job each:

- :mod:`.cli`: the ``avatar-server`` command (argparse, uvicorn).
- :mod:`.app`: :func:`create_app`, the app factory (error handlers, middleware, routers, start-up and shut-down).
- :mod:`.config`: :class:`ServerConfig` and :class:`Limits`.
- :mod:`.errors`: :class:`ApiError` and the ``{"error": ...}`` answers.
- :mod:`.auth`: the API key (file, header and ``?key=`` checks).
- :mod:`.limits`: request body and upload limits, image checks.
- :mod:`.registry`: the loaded avatars (:class:`AvatarRegistry`) and their events.
- :mod:`.controls`: the control calls, shared by the HTTP routes and the WebSocket.
- :mod:`.feed`: encoding frames once and streaming them (``result_feed``, ``frame``).
- :mod:`.routes`: the HTTP routes of the avatar API.
- :mod:`.websocket`: ``/api/avatar/ws``.
- :mod:`.overlay`: the OBS overlay page.
- :mod:`.speech`: ``/api/avatar/speak``.
- :mod:`.modules`: ``/api/modules`` and the registration of optional modules.
- :mod:`.filters`: postprocessor metadata in the reference's shape.

Documented with curl examples in ``docs/SERVER.md``.
"""

from __future__ import annotations

from typing import Any


def create_app(*args: Any, **kwargs: Any) -> Any:
    """See :func:`raven_avatar.server.app.create_app` (imported on use: FastAPI is an optional extra)."""
    from .app import create_app as create

    return create(*args, **kwargs)


__all__ = ["create_app"]
