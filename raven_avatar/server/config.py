"""The server's configuration: what the command line sets."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from raven_avatar.engine.emotion_text import DEFAULT_MODEL as DEFAULT_EMOTION_MODEL

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5100  # the reference server's port, so its clients work unchanged


@dataclass(frozen=True)
class Limits:
    """What one request may send. Past a limit the answer is 413 (too large) or 400, naming the field."""

    max_file_bytes: int = 16 * 1024 * 1024  # one uploaded image
    max_files: int = 48  # parts of one upload: base image + 16 blending cels + animefx cels
    max_pixels: int = 4096 * 4096  # one uploaded image, checked from its header before decoding
    max_json_bytes: int = 1024 * 1024  # one JSON body (or WebSocket message)
    max_body_bytes: int = 96 * 1024 * 1024  # one request body of any kind
    max_text_chars: int = 20_000  # text for /api/avatar/speak


@dataclass
class ServerConfig:
    """Everything :func:`~raven_avatar.server.app.create_app` needs.

    ``api_key``: None: no key is asked (only allowed on a loopback address; see :func:`needs_key`).
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    device: str = "auto"
    variant: str | None = None
    character: Path | None = None  # preloaded as instance "default", started
    settings: Path | None = None  # the settings every avatar starts from (and `{}` resets to)
    max_avatars: int = 8
    max_feeds: int = 4  # result_feed connections per avatar
    api_key: str | None = None
    limits: Limits = field(default_factory=Limits)
    #: Tests and embedders: a ready Poser instead of loading one from ``device``/``variant``.
    poser: object | None = None
    #: Tests: a ready speech Synthesizer instead of the downloaded Kokoro weights.
    synthesizer: object | None = None
    #: The go-emotions text classifier of /api/classify (a Hub id in the Hugging Face cache, or a local folder).
    emotion_model: str = DEFAULT_EMOTION_MODEL
    #: Tests: a ready EmotionClassifier for /api/classify.
    classifier: object | None = None
    warm_up: bool | None = None  # None: on CUDA only (see Renderer)
    #: Tests: the avatars' animation clock (seconds); None: the wall clock. A frozen clock keeps poses still, so
    #: that frames after the first cost almost nothing on a CPU.
    clock: Callable[[], float] | None = None


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost: may resolve to anything


def needs_key(host: str) -> bool:
    """Binding anything but loopback requires an API key."""
    return not is_loopback(host)
