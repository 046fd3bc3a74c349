"""Request limits: body size (JSON and uploads), number and size of uploaded files, image pixels before decoding."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field

import PIL.Image
from fastapi import HTTPException, Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from .config import Limits
from .errors import ApiError


class BodyTooLarge(HTTPException):
    """Raised while a body is being read, past its limit (an HTTPException, so every layer passes it on)."""

    def __init__(self, limit: int, what: str):
        super().__init__(413, f"body: {what} is over the limit of {limit} bytes")


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MiB" if n >= 1024 * 1024 else f"{n} bytes"


class BodyLimitMiddleware:
    """Pure ASGI middleware: JSON bodies up to ``max_json_bytes``, any other body up to ``max_body_bytes``.

    A declared ``Content-Length`` over the limit is refused before reading; a body without one is counted while it
    is read and refused at the limit (nothing past it is buffered).
    """

    def __init__(self, app, limits: Limits):
        self.app, self.limits = app, limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers", ()))
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        is_json = ctype in (b"application/json", b"")
        limit = self.limits.max_json_bytes if is_json else self.limits.max_body_bytes
        what = "the JSON body" if is_json else "the request body"
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            error = BodyTooLarge(limit, f"{what} ({int(declared)} bytes)")
            return await self._refuse(send, error)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit, what)
            return message

        await self.app(scope, counted, send)

    @staticmethod
    async def _refuse(send, error: BodyTooLarge) -> None:
        body = json.dumps({"error": error.detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})


_NAME = re.compile(r"[^A-Za-z0-9_-]+")


def character_name(filename: str | None) -> str:
    """A display name from an uploaded file's name: never a path, only letters, digits, ``_`` and ``-``."""
    stem = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return _NAME.sub("_", stem).strip("_")[:64] or "upload"


def check_image(data: bytes, part: str, limits: Limits) -> None:
    """Refuse an upload that is no image Pillow can read, or has too many pixels (read from its header, before
    anything is decoded: a decompression bomb is refused here)."""
    if not data:
        raise ApiError(400, part, "empty file")
    try:
        with PIL.Image.open(io.BytesIO(data)) as img:
            width, height = img.size
    except PIL.Image.DecompressionBombError as e:
        raise ApiError(413, part, f"image too large to decode ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ApiError(400, part, f"not an image Pillow can read ({e})") from None
    if width * height > limits.max_pixels:
        raise ApiError(
            413, part, f"image is {width}x{height} pixels, over the limit of {limits.max_pixels} pixels in all"
        )


@dataclass
class Upload:
    """A parsed character upload: the base image and the cel images by part name, plus the plain fields."""

    name: str
    base: bytes
    cels: dict[str, bytes] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)


async def read_upload(request: Request, limits: Limits) -> Upload:
    """Parse a multipart character upload (``file`` + one part per cel), enforcing :class:`Limits`."""
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise ApiError(400, "body", f"expected multipart/form-data with a 'file' part, got {ctype or 'no body'}")
    try:
        form = await request.form(
            max_files=limits.max_files, max_fields=limits.max_files, max_part_size=limits.max_json_bytes
        )
    except BodyTooLarge:
        raise
    except StarletteHTTPException as e:  # python-multipart's limits (number of parts, size of a field)
        raise ApiError(e.status_code, "files", str(e.detail)) from None
    try:
        base: bytes | None = None
        name = "upload"
        cels: dict[str, bytes] = {}
        fields: dict[str, str] = {}
        for part, value in form.multi_items():
            if isinstance(value, UploadFile):
                if value.size is not None and value.size > limits.max_file_bytes:
                    raise ApiError(
                        413, part, f"{value.size} bytes is over the limit of {_mib(limits.max_file_bytes)} per file"
                    )
                data = await value.read()
                if part in fields or part in cels or (part == "file" and base is not None):
                    raise ApiError(400, part, "given twice")
                if part == "json":  # the reference's reload sends its JSON as a file part
                    fields[part] = data.decode("utf-8", errors="replace")
                    continue
                check_image(data, part, limits)
                if part == "file":
                    base, name = data, character_name(value.filename)
                else:
                    cels[part] = data
            else:
                fields[part] = value
        if base is None:
            raise ApiError(400, "file", "required part missing (the base image)")
        return Upload(name, base, cels, fields)
    finally:
        await form.close()
