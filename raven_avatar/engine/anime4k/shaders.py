"""Where the Anime4K shader files come from: fetched at run time, cached in ``user_cache_dir()/anime4k``, checked.

Two sources:

- **Mode A file** (offline-friendly): ``Anime4K_ModeA.glsl`` from the ``anime4k-python==1.1.3`` wheel on PyPI.
  It holds Clamp_Highlights, Restore_CNN_VL, Upscale_CNN_x2_VL and Upscale_CNN_x2_M (plus AutoDownscalePre).
  Pinned by SHA-256.
- **Anime4K v4 pack** (GitHub release zip): every size (S…UL), Restore_CNN_Soft_* and Upscale_Denoise_CNN_x2_*.
  Downloaded only on request (:func:`fetch_pack`); its ``.glsl`` files are extracted into ``anime4k/v4.0/``.
  **Not pinned**: ``Anime4K_v4.0.zip`` is the one download whose SHA-256 is not in the code, because GitHub could
  not be reached from the machines this was built on, so its digest could not be taken (``PACK_SHA256`` is None).
  Trust on first use instead: the digest of the first download is recorded in ``anime4k/v4.0/SOURCE.txt``, and
  every later download of the pack must match it (else :class:`~raven_avatar.engine.download.ChecksumError`).
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

from raven_avatar.engine.download import (
    ChecksumError,
    DownloadError,
    download_file,
    extract_from_wheel,
    file_sha256,
    pypi_wheel,
)
from raven_avatar.engine.fileio import atomic_path
from raven_avatar.engine.paths import user_cache_dir

log = logging.getLogger(__name__)

MODE_A_PACKAGE = ("anime4k-python", "1.1.3")
MODE_A_WHEEL_SHA256 = "27c3c3270097b2cf6170661d1cf7449eea269d11fad5ffa18ad4d0d03cf1604a"
MODE_A_MEMBER = "anime4k_python/shaders/Anime4K_ModeA.glsl"
MODE_A_SHA256 = "70fece05ad75d0267871dd9eaf9e51e32e10e60b8036574b47d1c62c08c532db"
#: Networks the Mode A file provides (the rest need the pack).
MODE_A_NETWORKS = frozenset({"Clamp_Highlights", "Restore_CNN_VL", "Upscale_CNN_x2_VL", "Upscale_CNN_x2_M"})

PACK_URL = "https://github.com/bloc97/Anime4K/releases/download/v4.0.1/Anime4K_v4.0.zip"
PACK_VERSION = "v4.0"
#: The pack's SHA-256, when known; None: unknown (see the module docstring), the first download's is recorded.
PACK_SHA256: str | None = None


def shader_dir() -> Path:
    return user_cache_dir() / "anime4k"


def mode_a_path() -> Path:
    """The Mode A shader, extracted from the cached (or freshly downloaded) wheel and verified.

    Raises:
        OfflineError / DownloadError / ChecksumError: from :mod:`raven_avatar.engine.download`; a cache that cannot
            be written is a DownloadError naming the folder.
    """
    dest = shader_dir() / "Anime4K_ModeA.glsl"
    if dest.is_file() and file_sha256(dest) == MODE_A_SHA256:
        return dest
    try:
        wheel = pypi_wheel(*MODE_A_PACKAGE, sha256=MODE_A_WHEEL_SHA256)
        return extract_from_wheel(wheel, MODE_A_MEMBER, dest, sha256=MODE_A_SHA256)
    except OSError as e:  # a read-only cache: callers fall back (the upscaler to bicubic) on a DownloadError
        raise DownloadError(f"{e}. Set RAVEN_AVATAR_CACHE_DIR to a writable folder to cache the Anime4K shaders") from e


def mode_a_cached() -> bool:
    """True when the Mode A shader, or the wheel it comes from, is already cached (no network needed)."""
    package, version = MODE_A_PACKAGE
    wheel = user_cache_dir() / "wheels" / f"{package.replace('-', '_')}-{version}-py3-none-any.whl"
    return (shader_dir() / "Anime4K_ModeA.glsl").is_file() or wheel.is_file()


def pack_dir() -> Path:
    return shader_dir() / PACK_VERSION


def pack_shader(name: str) -> Path | None:
    """The cached pack file for network ``name`` (e.g. ``Upscale_Denoise_CNN_x2_VL``), or None if not downloaded."""
    path = pack_dir() / f"Anime4K_{name}.glsl"
    return path if path.is_file() else None


def recorded_pack_sha256() -> str | None:
    """The digest of the first download of the pack, from ``SOURCE.txt`` (None before the first download)."""
    try:
        lines = (pack_dir() / "SOURCE.txt").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    found = [line.split()[1] for line in lines if line.startswith("sha256 ") and len(line.split()) == 2]
    return found[0].lower() if found else None


def fetch_pack(*, timeout: float = 30) -> Path:
    """Download the Anime4K v4 release zip and extract its ``.glsl`` files into :func:`pack_dir`.

    Raises:
        DownloadError (or OfflineError): with a message saying the URL and what to do instead.
        ChecksumError: the download differs from the one recorded at the first download.
    """
    target = pack_dir()
    zip_path = shader_dir() / PACK_URL.rsplit("/", 1)[-1]
    expected = PACK_SHA256 or recorded_pack_sha256()
    try:
        download_file(PACK_URL, zip_path, sha256=expected, desc="Anime4K v4 shaders", timeout=timeout)
    except ChecksumError as exc:
        source = target / "SOURCE.txt"
        raise ChecksumError(
            zip_path,
            exc.expected,
            exc.actual,
            f"It differs from the first download, recorded in {source}; it was "
            "deleted. If upstream really changed the file, delete SOURCE.txt to accept the new one",
        ) from exc
    except DownloadError as exc:
        raise type(exc)(
            f"{exc}. The Anime4K v4 shader pack is needed for this preset; alternatively unzip it yourself "
            f"so that the Anime4K_*.glsl files are in {target}"
        ) from exc
    digest = file_sha256(zip_path)
    log.info("Anime4K pack %s has sha256 %s", zip_path.name, digest)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            members = [m for m in zf.namelist() if m.endswith(".glsl") and Path(m).name.startswith("Anime4K_")]
            if not members:
                raise DownloadError(f"{zip_path} holds no Anime4K_*.glsl files; delete it and try again")
            for member in members:
                with zf.open(member) as src, atomic_path(target / Path(member).name) as tmp:
                    tmp.write_bytes(src.read())
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{zip_path} is not a valid zip ({exc}); delete it and try again") from exc
    with atomic_path(target / "SOURCE.txt") as tmp:
        tmp.write_text(f"{PACK_URL}\nsha256 {digest}\n")
    return target
