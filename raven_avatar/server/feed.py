"""Frames out: each rendered frame is encoded once per format in use, then streamed to every viewer.

One :class:`FeedHub` per avatar. While somebody watches (a ``result_feed`` connection or a ``frame`` request), its
encoder thread takes each new frame from the avatar, encodes it (PNG, QOI, TGA or IM, per the avatar's ``format``
setting or a viewer's ``?format=``) and publishes it; nobody watching: the thread ends, the avatar's renderer stops
after one more frame (it never renders a frame nobody takes). Viewers run in the event loop and never block it: each
sends the newest encoded frame, at most ``target_fps`` a second, so a slow viewer skips frames instead of holding up
the others. A viewer with no new frame for :data:`KEEPALIVE_S` gets the last one again (a stopped avatar's picture
stays up, and proxies keep the connection).

The stream is the reference's: ``multipart/x-mixed-replace; boundary=frame``, each part
``--frame`` / ``Content-Type`` / ``Content-Length`` / ``X-Crop`` / ``X-Full-Size`` / ``X-Server-Stats``, a blank
line, the bytes and ``\\r\\n``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image

log = logging.getLogger(__name__)

BOUNDARY = "frame"
MEDIA_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"
FORMATS = ("PNG", "QOI", "TGA", "IM")
KEEPALIVE_S = 2.0
_WAIT_S = 0.25  # how often the encoder thread re-checks whether anybody still watches
_PACE_SLACK = 0.8  # a viewer sends at most every 0.8 / target_fps s: pacing jitter must not drop frames


class FeedLimitError(Exception):
    """Too many feed connections to one avatar."""


class FeedClosedError(Exception):
    """The avatar was unloaded."""


def encode(rgba: np.ndarray, fmt: str) -> tuple[bytes, str]:
    """``(H, W, 4)`` uint8 RGBA -> (bytes, MIME type) in ``fmt`` (one of :data:`FORMATS`)."""
    fmt = fmt.upper()
    if fmt == "QOI":
        import qoi

        return qoi.encode(np.ascontiguousarray(rgba)), "image/qoi"
    if fmt not in FORMATS:
        raise ValueError(f"unknown frame format {fmt!r}; choose one of {', '.join(FORMATS)}")
    buf = io.BytesIO()
    img = PIL.Image.fromarray(rgba, "RGBA")
    if fmt == "PNG":
        img.save(buf, "PNG", compress_level=1)  # level 1: several times faster than the default, ~10% larger
    elif fmt == "TGA":
        img.save(buf, "TGA", compression="tga_rle")
    else:
        img.save(buf, fmt)
    return buf.getvalue(), f"image/{fmt.lower()}"


@dataclass(frozen=True)
class EncodedFrame:
    """One frame, encoded, with what the part headers need."""

    seq: int  # the renderer's frame index
    data: bytes
    content_type: str
    crop: dict[str, Any]
    full_size: tuple[int, int]
    render: dict[str, float]  # render_ms, render_fps, wait_ms, target_fps
    encode_ms: float
    encode_fps: float


def frame_headers(enc: EncodedFrame, output_ms: float = 0.0, output_fps: float = 0.0) -> dict[str, str]:
    """The headers of one part (also what ``GET /api/avatar/frame`` sends)."""
    stats = {
        **enc.render,
        "encode_ms": round(enc.encode_ms, 3),
        "encode_fps": round(enc.encode_fps, 2),
        "output_ms": round(output_ms, 3),
        "output_fps": round(output_fps, 2),
    }
    return {
        "Content-Type": enc.content_type,
        "Content-Length": str(len(enc.data)),
        "X-Crop": json.dumps(enc.crop),
        "X-Full-Size": f"{enc.full_size[0]} {enc.full_size[1]}",
        "X-Server-Stats": json.dumps(stats),
    }


def part(enc: EncodedFrame, output_ms: float = 0.0, output_fps: float = 0.0) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in frame_headers(enc, output_ms, output_fps).items())
    return f"--{BOUNDARY}\r\n{head}\r\n".encode("latin-1") + enc.data + b"\r\n"


def _crop_json(crop: tuple[float, float, float, float] | None) -> dict[str, Any]:
    if crop is None:
        return {"enabled": False, "left": 0.0, "top": 0.0, "right": 1.0, "bottom": 1.0}
    left, top, right, bottom = crop
    return {"enabled": True, "left": left, "top": top, "right": right, "bottom": bottom}


class _Rate:
    """Events per second, smoothed."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.value = 0.0

    def tick(self, now: float) -> float:
        if self.last is not None and now > self.last:
            fps = 1.0 / (now - self.last)
            self.value = fps if self.value == 0.0 else 0.8 * self.value + 0.2 * fps
        self.last = now
        return self.value


class FeedHub:
    """Encodes one avatar's frames for its viewers (see the module docstring).

    Args:
        avatar: the :class:`~raven_avatar.engine.avatar.Avatar` (rendering with ``output="u8"``).
        max_feeds: ``result_feed`` connections allowed at once.
        default_format: the avatar's ``format`` setting now (a viewer without ``?format=`` follows it).
        on_frame: called on the encoder thread with each new frame (events, stats).
    """

    def __init__(
        self,
        avatar: Any,
        *,
        max_feeds: int,
        default_format: Callable[[], str],
        on_frame: Callable[[Any], None] | None = None,
    ):
        self.avatar = avatar
        self.max_feeds = max_feeds
        self.default_format = default_format
        self.on_frame = on_frame
        self._cond = threading.Condition()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._formats: Counter[str] = Counter()  # "" = follows the settings
        self._latest: dict[str, EncodedFrame] = {}
        self._feeds = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._encode_rate = _Rate()
        self.frames_encoded = 0

    @property
    def feeds(self) -> int:
        """``result_feed`` connections now."""
        return self._feeds

    @property
    def closed(self) -> bool:
        return self._closed

    # ----------------------------------------------------------------------------------------------- viewers

    def join(self, fmt: str = "", *, feed: bool) -> None:
        """Start watching in ``fmt`` ("" = the settings' format); ``feed`` counts against ``max_feeds``.
        Raises :class:`FeedLimitError` or :class:`FeedClosedError`. Pair with :meth:`leave`."""
        with self._cond:
            if self._closed:
                raise FeedClosedError
            if feed and self._feeds >= self.max_feeds:
                raise FeedLimitError
            self._feeds += int(feed)
            self._formats[fmt.upper()] += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._encode_loop, name="raven-avatar-feed", daemon=True)
                self._thread.start()

    def leave(self, fmt: str = "", *, feed: bool) -> None:
        with self._cond:
            self._feeds -= int(feed)
            self._formats[fmt.upper()] -= 1
            if self._formats[fmt.upper()] <= 0:
                del self._formats[fmt.upper()]
            self._cond.notify_all()

    def close(self) -> None:
        """End every stream (the avatar is being unloaded)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._wake()

    def latest(self, fmt: str = "") -> EncodedFrame | None:
        with self._cond:
            return self._latest.get(fmt.upper())

    async def stream(self, fmt: str = "") -> AsyncIterator[bytes]:
        """The multipart parts for one viewer that has :meth:`join` ed; ends when the avatar is unloaded."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        waiter = (loop, event)
        key = fmt.upper()
        with self._cond:
            self._waiters.add(waiter)
        try:
            sent = -1
            last_send = -1e9
            rate = _Rate()
            output_ms = 0.0
            while True:
                event.clear()
                with self._cond:
                    if self._closed:
                        return
                    enc = self._latest.get(key)
                if enc is None or enc.seq == sent:
                    try:
                        await asyncio.wait_for(event.wait(), KEEPALIVE_S)
                    except asyncio.TimeoutError:  # noqa: UP041  (TimeoutError only from Python 3.11)
                        if enc is not None:  # nothing new for a while: the same picture again
                            yield part(enc, output_ms, rate.value)
                            last_send = loop.time()
                    continue
                fps = max(float(enc.render.get("target_fps", 25.0)), 1.0)
                delay = last_send + _PACE_SLACK / fps - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                    continue  # take the newest frame after sleeping
                t0 = loop.time()
                yield part(enc, output_ms, rate.value)
                now = loop.time()
                output_ms = (now - t0) * 1000.0
                rate.tick(now)
                sent, last_send = enc.seq, t0
        finally:
            with self._cond:
                self._waiters.discard(waiter)

    async def next_frame(self, fmt: str = "", timeout: float = 30.0) -> EncodedFrame | None:
        """A frame rendered after this call (the last one, at once, when the avatar is not running); None if there
        is none within ``timeout`` seconds."""
        avatar = self.avatar
        if not avatar.running or avatar.paused:
            frame = avatar.latest_frame()
            if frame is None:
                return None
            return await asyncio.to_thread(self._encode, frame, fmt.upper() or self.default_format())
        key = fmt.upper()
        with self._cond:
            was_watched = self._thread is not None
            start = self._latest.get(key)
        # An idle encoder's first frame may have been rendered long ago (it waited in the slot): wait for two.
        need = 1 if was_watched else 2
        self.join(fmt, feed=False)
        try:
            deadline = time.monotonic() + timeout
            seen = start.seq if start is not None else -1
            got = 0
            while time.monotonic() < deadline:
                await asyncio.sleep(0.02)
                enc = self.latest(fmt)
                if enc is not None and enc.seq != seen:
                    got, seen = got + 1, enc.seq
                    if got >= need:
                        return enc
            return None
        finally:
            self.leave(fmt, feed=False)

    # ----------------------------------------------------------------------------------------------- encoder

    def _wake(self) -> None:
        with self._cond:
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(event.set)

    def _encode(self, frame: Any, fmt: str) -> EncodedFrame:
        t0 = time.perf_counter()
        data, ctype = encode(frame.rgba_u8, fmt)
        encode_ms = (time.perf_counter() - t0) * 1000.0
        stats = frame.stats
        avatar_stats = self.avatar.stats
        render = {
            "frame": frame.index,
            "render_ms": round(stats.get("total", 0.0), 3),
            "render_fps": round(avatar_stats.get("fps", 0.0), 2),
            "wait_ms": round(stats.get("wait", 0.0), 3),
            "target_fps": avatar_stats.get("target_fps", 25.0),
            "pose_batch": stats.get("pose_batch", 1),
        }
        return EncodedFrame(
            frame.index, data, ctype, _crop_json(frame.crop), frame.full_size, render, encode_ms,
            self._encode_rate.value,
        )  # fmt: skip

    def _encode_loop(self) -> None:
        last = 0
        while True:
            with self._cond:
                if self._closed or not self._formats:
                    self._thread = None
                    return
                wanted = list(self._formats)
            frame = self.avatar.wait_frame(after=last, timeout=_WAIT_S)
            if frame is None:
                continue
            last = frame.index
            self._encode_rate.tick(time.monotonic())
            default = self.default_format()
            try:
                encoded = {key: self._encode(frame, key or default) for key in wanted}
            except Exception:
                log.exception("encoding frame %d failed", frame.index)
                continue
            with self._cond:
                self._latest = encoded
                self.frames_encoded += 1
            self._wake()
            if self.on_frame is not None:
                try:
                    self.on_frame(frame)
                except Exception:
                    log.exception("frame callback failed")
