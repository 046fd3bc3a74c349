"""``/api/modules``: which optional parts this server offers, and how optional modules are added.

A module is a name, a test of whether it works here, and optionally a router with its endpoints. The avatar API is
always there; ``tts`` is listed when speech works (Kokoro installed and its weights found). More modules (e.g.
``classify``: emotion from text) register the same way: add a factory ``(registry) -> ServerModule`` to
:data:`~raven_avatar.server.app.MODULES`, or pass ready modules to :func:`~raven_avatar.server.app.create_app`.
A module whose ``available()`` is False is not listed; its router is mounted all the same, so that its endpoints
can answer why they do not work here (503 with the fix).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter

log = logging.getLogger(__name__)


@dataclass
class ServerModule:
    """One entry of ``/api/modules``."""

    name: str
    available: Callable[[], bool] = lambda: True
    router: APIRouter | None = None


class ModuleList:
    """The modules of one app, in registration order."""

    def __init__(self) -> None:
        self._modules: dict[str, ServerModule] = {}

    def register(self, module: ServerModule) -> bool:
        """Add ``module``; returns whether it is available now (and so listed)."""
        if module.name in self._modules:
            raise ValueError(f"module {module.name!r} is registered twice")
        self._modules[module.name] = module
        try:
            return bool(module.available())
        except Exception as e:  # a broken optional module must not stop the server
            log.warning("module %s is unavailable: %s", module.name, e)
            return False

    def available(self) -> list[str]:
        names = []
        for m in self._modules.values():
            try:
                if m.available():
                    names.append(m.name)
            except Exception:
                continue
        return names

    def router(self) -> APIRouter:
        router = APIRouter()

        @router.get("/api/modules", tags=["server"])
        async def modules() -> dict[str, list[str]]:
            """The modules this server offers, e.g. ``{"modules": ["avatar", "tts"]}``."""
            return {"modules": self.available()}

        return router
