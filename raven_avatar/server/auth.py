"""The API key: generated once into the user data dir, checked on every request when the server is not loopback-only.

Accepted forms: ``Authorization: Bearer KEY``, the reference client's bare ``Authorization: KEY``, and ``?key=KEY``
on the URLs a browser or OBS opens itself (the overlay page, ``result_feed``, ``frame`` and the WebSocket, where a
browser cannot set headers). ``/health`` and the OpenAPI pages need no key.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path
from urllib.parse import parse_qs

from raven_avatar.engine.fileio import atomic_write
from raven_avatar.engine.paths import user_data_dir

log = logging.getLogger(__name__)

KEY_FILE = "server_api_key"
OPEN_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})
QUERY_KEY_PATHS = frozenset({"/overlay", "/api/avatar/result_feed", "/api/avatar/frame", "/api/avatar/ws"})


def default_key_file() -> Path:
    return user_data_dir() / KEY_FILE


def load_or_create_key(path: Path | None = None) -> str:
    """The key in ``path`` (default: the user data dir); a new random one is written there (mode 600) if the file
    does not exist. An empty or unreadable file is an error naming the file (never silently replaced)."""
    path = Path(path) if path is not None else default_key_file()
    if path.exists():
        try:
            key = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise SystemExit(f"{path}: cannot read the API key file ({e})") from e
        if not key:
            raise SystemExit(f"{path}: the API key file is empty; delete it to have a new key generated")
        return key
    key = secrets.token_urlsafe(32)
    atomic_write(path, (key + "\n").encode("ascii"))
    os.chmod(path, 0o600)
    log.info("generated a new API key in %s", path)
    return key


def presented_key(headers: dict[str, str], query: str, path: str) -> str | None:
    """The key a request carries, if any."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, rest = auth.partition(" ")
        return rest.strip() if scheme.lower() == "bearer" and rest else auth.strip()
    if path in QUERY_KEY_PATHS:
        values = parse_qs(query).get("key")
        if values:
            return values[0]
    return None


class ApiKeyMiddleware:
    """Pure ASGI middleware: 401 ``{"error": ...}`` (HTTP) or close code 4401 (WebSocket) without the right key."""

    def __init__(self, app, key: str):
        self.app, self.key = app, key

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        given = presented_key(headers, scope.get("query_string", b"").decode("latin-1"), scope["path"])
        if given is not None and secrets.compare_digest(given.encode(), self.key.encode()):
            return await self.app(scope, receive, send)
        why = "missing" if given is None else "wrong"
        message = f"Authorization: API key {why}; send 'Authorization: Bearer KEY'"
        if scope["path"] in QUERY_KEY_PATHS:
            message += " or add ?key=KEY to the URL"
        log.info("%s %s -> 401 (key %s)", scope.get("method", "WS"), scope["path"], why)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401, "reason": "API key " + why})
            return
        body = json.dumps({"error": message}).encode()
        await send({
            "type": "http.response.start",
            "status": 401,
            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": body})
