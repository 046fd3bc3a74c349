"""Every error a client sees is a 4xx/5xx with a JSON body ``{"error": "<field>: <what is wrong>"}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A request that cannot be served: HTTP ``status``, the ``field`` at fault (may be ""), and why."""

    def __init__(self, status: int, field: str, message: str, **extra: Any):
        self.status, self.field, self.message, self.extra = status, field, message, extra
        super().__init__(self.text)

    @property
    def text(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    def body(self) -> dict[str, Any]:
        return {"error": self.text, **self.extra}


def validation_error(error: ValidationError | RequestValidationError) -> ApiError:
    """A pydantic validation failure as a 400 naming the first bad field (all of them under ``problems``)."""
    problems = []
    for e in error.errors():
        loc = [str(x) for x in e.get("loc", ()) if x not in ("body", "query")]
        field = ".".join(loc)
        kind = e.get("type", "")
        if kind == "json_invalid":
            ctx = e.get("ctx") or {}
            problems.append(("body", f"malformed JSON ({ctx.get('error', e.get('msg'))})"))
        elif kind == "missing":
            problems.append((field, "required field missing"))
        else:
            problems.append((field or "body", e.get("msg", "invalid")))
    if not problems:
        return ApiError(400, "body", "invalid request")
    field, message = problems[0]
    more = [f"{f}: {m}" for f, m in problems]
    return ApiError(400, field, message, problems=more) if len(more) > 1 else ApiError(400, field, message)


def install_handlers(app: FastAPI) -> None:
    """Answer every error with ``{"error": ...}`` (FastAPI's default is ``{"detail": ...}`` and 422)."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        log.info("%s %s -> %d %s", request.method, request.url.path, exc.status, exc.text)
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return await _api_error(request, validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path} (see /docs)"
        elif exc.status_code == 405:
            message = f"{request.url.path} does not take {request.method}"
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=getattr(exc, "headers", None))
