"""The app factory: :func:`create_app` builds the FastAPI app of one server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

import raven_avatar

from . import overlay, routes, websocket
from .auth import ApiKeyMiddleware
from .classify import classify_module
from .config import ServerConfig
from .errors import install_handlers
from .limits import BodyLimitMiddleware
from .modules import ModuleList, ServerModule
from .registry import DEFAULT_ID, AvatarRegistry
from .speech import speech_module

log = logging.getLogger("raven_avatar.server")

#: The optional modules every app registers: factories ``(registry) -> ServerModule``. A new module (e.g. classify)
#: adds its factory here; ``/api/modules`` lists those that are available.
MODULES: tuple[Callable[[AvatarRegistry], ServerModule], ...] = (speech_module, classify_module)


class RequestLogMiddleware:
    """One INFO line per request: method, path (never the query: it may hold the key), status, ms to the answer."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()

        async def logged(message):
            if message["type"] == "http.response.start":
                ms = (time.perf_counter() - t0) * 1000.0
                log.info("%s %s -> %d (%.1f ms)", scope["method"], scope["path"], message["status"], ms)
            await send(message)

        await self.app(scope, receive, logged)


def create_app(config: ServerConfig | None = None, modules: Iterable[ServerModule] = ()) -> FastAPI:
    """The avatar server's app. ``modules``: more optional modules (see :mod:`~raven_avatar.server.modules`)."""
    config = config or ServerConfig()
    registry = AvatarRegistry(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        poser = await asyncio.to_thread(lambda: registry.poser)  # loaded now, not at the first request
        log.info("THA3 %s on %s", poser.variant, poser.device)
        if config.character is not None:
            inst = await asyncio.to_thread(registry.load, config.character, DEFAULT_ID)
            inst.avatar.start()
            log.info("avatar %r: %s, started", DEFAULT_ID, config.character)
        try:
            yield
        finally:
            await asyncio.to_thread(registry.close)

    app = FastAPI(
        title="avatar-server",
        version=raven_avatar.__version__,
        description="Live THA3 avatars over HTTP: the reference (Raven) avatar API, a WebSocket, an OBS overlay.",
        lifespan=lifespan,
    )
    app.state.registry = registry
    install_handlers(app)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)

    module_list = ModuleList()
    module_list.register(ServerModule("avatar"))
    for module in [*(make(registry) for make in MODULES), *modules]:
        module_list.register(module)
        if module.router is not None:
            app.include_router(module.router)
    app.state.modules = module_list
    app.include_router(module_list.router())
    app.include_router(routes.build_router())
    app.include_router(websocket.build_router())
    app.include_router(overlay.build_router())

    app.add_middleware(BodyLimitMiddleware, limits=config.limits)
    if config.api_key is not None:
        app.add_middleware(ApiKeyMiddleware, key=config.api_key)
    app.add_middleware(RequestLogMiddleware)
    return app
