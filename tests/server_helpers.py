"""A real avatar-server (uvicorn on 127.0.0.1, a free port) in a background thread of the test process, and small
helpers for its tests. One server per test module (THA3 on the CPU costs ~1 s a frame)."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import quiet
from PIL import Image

#: Animator settings that keep an idle avatar still: poses repeat, so frames after the first are cheap.
QUIET = {**quiet.QUIET, "postprocessor_chain": [], "target_fps": 5}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ManualClock:
    """An animation clock that moves only when told: poses stay put, so frames after the first are cheap."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@contextlib.contextmanager
def live_server(config, modules=()) -> Iterator[tuple[str, object]]:
    """Run ``create_app(config, modules)`` under uvicorn on 127.0.0.1:<free port>; yields (base URL, app)."""
    import uvicorn

    from raven_avatar.server.app import create_app

    config.host, config.port = "127.0.0.1", free_port()
    app = create_app(config, modules)
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{config.port}"
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("avatar-server did not start")
        time.sleep(0.05)
    try:
        yield url, app
    finally:
        server.should_exit = True
        thread.join(60)


def png_bytes(path: Path) -> bytes:
    return Path(path).read_bytes()


def cel_png(size: int = 512, box: tuple[int, int, int, int] = (200, 150, 320, 200), rgba=(255, 60, 60, 160)) -> bytes:
    """A cel: transparent with one coloured box."""
    arr = np.zeros((size, size, 4), np.uint8)
    x0, y0, x1, y1 = box
    arr[y0:y1, x0:x1] = rgba
    buf = io.BytesIO()
    Image.fromarray(arr, "RGBA").save(buf, "PNG")
    return buf.getvalue()


def load_avatar(client: httpx.Client, character: Path, cels: dict[str, bytes] | None = None, **headers) -> str:
    files = [("file", (character.name, png_bytes(character), "image/png"))]
    files += [(name, (f"{name}.png", data, "image/png")) for name, data in (cels or {}).items()]
    r = client.post("/api/avatar/load", files=files, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["instance_id"]


@contextlib.contextmanager
def server_for_tests(cpu_poser, data_dir: Path, modules=(), **config_fields) -> Iterator[tuple[str, object]]:
    """A live server on the shared CPU poser with a frozen clock, offline, user data in ``data_dir``."""
    import pytest

    from raven_avatar.server.config import ServerConfig

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAVEN_AVATAR_DATA_DIR", str(data_dir))
        mp.setenv("RAVEN_AVATAR_OFFLINE", "1")
        fields = {"poser": cpu_poser, "clock": ManualClock(), "warm_up": False, **config_fields}
        with live_server(ServerConfig(**fields), modules) as (url, app):
            yield url, app


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        assert img.mode == "RGBA", img.mode
        return np.asarray(img)
