"""A Python client for ``avatar-server`` (httpx), with the engine's method names.

::

    from raven_avatar.client import AvatarServer

    server = AvatarServer("http://127.0.0.1:5100")          # api_key="..." when the server needs one
    avatar = server.load("characters/aria.png", cels={"blush1": "characters/aria_blush1.png"})
    avatar.load_settings({"target_fps": 25})
    avatar.start()
    avatar.set_emotion("joy")
    avatar.modify_overrides("set", {"mouth_aaa_index": 0.8})
    for frame in avatar.frames():                            # the live feed: FeedFrame objects
        image = frame.image()                                # a PIL image (PNG, TGA, IM; QOI with `qoi`)
        break
    avatar.unload()

Only httpx (and Pillow, for :meth:`FeedFrame.image`) is imported: no torch. Every non-2xx answer raises
:class:`ServerError` with the server's ``{"error": ...}`` message.
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:5100"

ImageSource = str | os.PathLike[str] | bytes


class ServerError(Exception):
    """The server answered with an error: ``status`` and the server's message."""

    def __init__(self, status: int, message: str):
        self.status, self.message = status, message
        super().__init__(f"HTTP {status}: {message}")


@dataclass
class FeedFrame:
    """One part of the live feed (or one ``frame``): encoded bytes and what the headers say."""

    data: bytes
    content_type: str
    crop: dict[str, Any] = field(default_factory=dict)
    full_size: tuple[int, int] = (0, 0)
    stats: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_headers(cls, data: bytes, headers: Mapping[str, str]) -> FeedFrame:
        h = {k.lower(): v for k, v in headers.items()}
        width, _, height = h.get("x-full-size", "0 0").partition(" ")
        return cls(
            data,
            h.get("content-type", ""),
            json.loads(h.get("x-crop", "{}")),
            (int(width or 0), int(height or 0)),
            json.loads(h.get("x-server-stats", "{}")),
        )

    def image(self) -> Any:
        """The frame as a ``PIL.Image`` (RGBA)."""
        from PIL import Image

        if self.content_type == "image/qoi":
            import qoi

            return Image.fromarray(qoi.decode(self.data), "RGBA")
        with Image.open(io.BytesIO(self.data)) as img:
            return img.convert("RGBA")


def _file(source: ImageSource, name: str) -> tuple[str, bytes, str]:
    if isinstance(source, bytes):
        return (f"{name}.png", source, "application/octet-stream")
    path = Path(source)
    return (path.name, path.read_bytes(), "application/octet-stream")


def _parts(base: ImageSource, cels: Mapping[str, ImageSource] | None) -> list[tuple[str, tuple[str, bytes, str]]]:
    files = [("file", _file(base, "character"))]
    files += [(name, _file(src, name)) for name, src in (cels or {}).items()]
    return files


def iter_parts(chunks: Iterable[bytes]) -> Iterator[FeedFrame]:
    """Parse a ``multipart/x-mixed-replace`` byte stream into frames."""
    buf = b""
    it = iter(chunks)
    while True:
        while b"\r\n\r\n" not in buf:
            try:
                buf += next(it)
            except StopIteration:
                return
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines if ": " in line)
        length = int({k.lower(): v for k, v in headers.items()}["content-length"])
        while len(buf) < length + 2:
            try:
                buf += next(it)
            except StopIteration:
                return
        yield FeedFrame.from_headers(buf[:length], headers)
        buf = buf[length + 2 :]


class AvatarServer:
    """A connection to one ``avatar-server``."""

    def __init__(self, url: str = DEFAULT_URL, *, api_key: str | None = None, timeout: float = 60.0):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> AvatarServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 300:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise ServerError(response.status_code, message)
        return response

    def health(self) -> bool:
        try:
            return self.http.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    def modules(self) -> list[str]:
        return self.request("GET", "/api/modules").json()["modules"]

    def available_filters(self) -> list:
        return self.request("GET", "/api/avatar/get_available_filters").json()["filters"]

    def status(self) -> dict[str, Any]:
        """All loaded avatars' status."""
        return self.request("GET", "/api/avatar/status").json()

    def load(self, character: ImageSource, cels: Mapping[str, ImageSource] | None = None) -> RemoteAvatar:
        """Upload a character (a path or the bytes of an image) and its cels ``{cel name: path or bytes}``."""
        answer = self.request("POST", "/api/avatar/load", files=_parts(character, cels)).json()
        return RemoteAvatar(self, answer["instance_id"])

    def avatar(self, instance_id: str) -> RemoteAvatar:
        """An avatar already loaded (e.g. ``"default"``, the server's ``--character``)."""
        return RemoteAvatar(self, instance_id)


class RemoteAvatar:
    """One avatar on the server; the methods are the engine ``Avatar``'s."""

    def __init__(self, server: AvatarServer, instance_id: str):
        self.server, self.instance_id = server, instance_id

    def __repr__(self) -> str:
        return f"RemoteAvatar({self.instance_id!r})"

    def _call(self, name: str, **fields: Any) -> httpx.Response:
        return self.server.request("POST", f"/api/avatar/{name}", json={"instance_id": self.instance_id, **fields})

    # The engine Avatar's methods.
    def start(self) -> None:
        self._call("start")

    def stop(self) -> None:
        """Pause rendering (the reference's stop); :meth:`start` continues."""
        self._call("stop")

    def start_talking(self) -> None:
        self._call("start_talking")

    def stop_talking(self) -> None:
        self._call("stop_talking")

    def set_emotion(self, name: str) -> None:
        self._call("set_emotion", emotion_name=name)

    def set_overrides(self, overrides: Mapping[str, float]) -> None:
        self._call("set_overrides", overrides=dict(overrides))

    def modify_overrides(self, action: str, overrides: Mapping[str, float] | Iterable[str]) -> None:
        value = dict(overrides) if isinstance(overrides, Mapping) else list(overrides)
        self._call("modify_overrides", action=action, overrides=value)

    def clear_overrides(self) -> None:
        self.set_overrides({})

    def start_data_eyes(self) -> None:
        self._call("start_data_eyes")

    def stop_data_eyes(self) -> None:
        self._call("stop_data_eyes")

    def load_settings(self, settings: Mapping[str, Any] | None = None) -> None:
        """The whole settings dict (omitted keys revert to the server's defaults; None or {}: the defaults)."""
        self._call("load_animator_settings", animator_settings=dict(settings or {}))

    def load_templates(self, templates: Mapping[str, Any] | None = None) -> None:
        """Overlay emotion templates ``{emotion: {"pose": ..., "cels": ...}}``; None: the defaults."""
        self._call("load_emotion_templates", emotions=dict(templates or {}))

    def load_character(self, character: ImageSource, cels: Mapping[str, ImageSource] | None = None) -> None:
        """Replace the images, keeping the avatar's state (the reference's reload)."""
        files = [("json", ("json", json.dumps({"instance_id": self.instance_id}).encode(), "application/json"))]
        self.server.request("POST", "/api/avatar/reload", files=files + _parts(character, cels))

    def speak(self, text: str, voice: str | None = None, speed: float = 1.0, *, play: bool = True) -> dict:
        """Speak with lipsync. ``play=False``: the answer has ``wav`` (bytes) and the ``phonemes`` timeline; the
        avatar lipsyncs from now, so play the audio at once."""
        answer = self._call("speak", text=text, voice=voice, speed=speed, play=play).json()
        if "wav_base64" in answer:
            answer["wav"] = base64.b64decode(answer.pop("wav_base64"))
        return answer

    def stop_speaking(self) -> None:
        self._call("stop_speaking")

    @property
    def status(self) -> dict[str, Any]:
        return self.server.request("GET", "/api/avatar/status", params={"instance_id": self.instance_id}).json()

    @property
    def emotion(self) -> str:
        return self.status["emotion"]

    @property
    def emotions(self) -> list[str]:
        return self.status["emotions"]

    @property
    def is_talking(self) -> bool:
        return self.status["talking"]

    def frame(self, format: str = "PNG") -> FeedFrame:
        """One frame rendered after this call (the last one if the avatar is stopped)."""
        params = {"instance_id": self.instance_id, "format": format}
        r = self.server.request("GET", "/api/avatar/frame", params=params)
        return FeedFrame.from_headers(r.content, r.headers)

    def frames(self, format: str | None = None) -> Iterator[FeedFrame]:
        """The live feed, frame by frame, until the avatar is unloaded (or you stop iterating)."""
        params = {"instance_id": self.instance_id, **({"format": format} if format else {})}
        with self.server.http.stream("GET", "/api/avatar/result_feed", params=params, timeout=None) as r:
            if r.status_code >= 300:
                r.read()
                raise ServerError(r.status_code, r.json().get("error", r.text))
            yield from iter_parts(r.iter_bytes())

    def unload(self) -> None:
        self.server.request("POST", "/api/avatar/unload", json={"instance_id": self.instance_id})

    def __enter__(self) -> RemoteAvatar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unload()
