"""Atomic file writes and safe reads: users' data is never left half-written, bad files never crash a reader.

Every user-facing write goes through :func:`atomic_path` (or its two shorthands): the data goes to a temporary file
beside the destination, is fsynced, then renamed over it, so a crash or a full disk leaves the old file intact.
A folder of files that belong together (a PNG sequence and its ``timing.json``, a backup) is written by
:class:`StagedFolder`: into a hidden folder beside the target, moved in at the end with its marker file last.

Temporary files and folders are named ``.<name>.<pid>.<random>.tmp``. A process killed with ``kill -9`` leaves
them behind; the first write into a folder in a later process removes those of processes that no longer run
(:func:`clean_stale_temp`). :func:`check_writable` tells, before any slow work, whether an output can be written.
:func:`read_json` reads a JSON file with one kind of error for every way it can be bad, naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

#: JSON nested deeper than this is refused (our files nest 4 levels; deep nesting only ever comes from bad input).
MAX_JSON_DEPTH = 32
_TEMP_RE = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$")
_cleaned: dict[str, int] = {}  # folder -> its mtime when last swept for stale temporary files


class JsonFileError(ValueError):
    """A JSON file that cannot be used (unreadable, not UTF-8, malformed, too deep); the message names the file."""


def fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; directories cannot be opened on Windows, where this is skipped.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(dest: Path) -> Path:
    """A hidden temporary path beside ``dest`` that :func:`clean_stale_temp` recognises as this process's."""
    return dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process: leave its files alone
    return True


def clean_stale_temp(folder: Path) -> list[Path]:
    """Remove the temporary files and folders in ``folder`` left by processes that no longer run; returns them.

    Best effort (a read-only folder is left as it is). A folder is swept again only after it changed (its mtime).
    """
    folder = Path(folder)
    key = str(folder.absolute())
    try:
        mtime = folder.stat().st_mtime_ns
        if _cleaned.get(key) == mtime:
            return []
        entries = list(os.scandir(folder))
    except OSError:
        return []
    removed = []
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if m is None or int(m.group(1)) == os.getpid() or _pid_running(int(m.group(1))):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError as e:
            log.debug("cannot remove stale %s: %s", entry.path, e)
            continue
        removed.append(Path(entry.path))
    if removed:
        log.info("removed %d stale temporary file(s) left in %s by an interrupted run", len(removed), folder)
    with contextlib.suppress(OSError):
        _cleaned[key] = folder.stat().st_mtime_ns
    return removed


def _named(e: OSError, dest: Path) -> OSError:
    """The same kind of OSError, naming ``dest`` (not the temporary file) and, if read-only, the folder."""
    reason = e.strerror or str(e)
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        reason = f"{reason} (the folder {dest.parent} is not writable)"
    named = type(e)(f"cannot write {dest}: {reason}")
    named.errno = e.errno
    return named


def check_writable(dest: str | os.PathLike[str]) -> Path:
    """Raise ``OSError`` naming ``dest`` unless a file can be written there (creates missing parent folders).

    Call it before slow work, so that a read-only or missing output folder is reported at once.
    """
    dest = Path(dest)
    if dest.is_dir():
        raise _named(IsADirectoryError(errno.EISDIR, "it is a folder, expected a file name"), dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        probe = temp_name(dest)
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise _named(e, dest) from None
    return dest


class AtomicFile:
    """A temporary file beside ``dest`` (:attr:`tmp`) that :meth:`commit` fsyncs and renames onto ``dest``.

    For writers that fill a file over time (a clip, frame by frame); :func:`atomic_path` is the ``with`` form.
    :meth:`discard` removes the temporary file and leaves ``dest`` untouched.
    """

    def __init__(self, dest: str | os.PathLike[str]) -> None:
        self.dest = Path(dest)
        try:
            self.dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _named(e, self.dest) from None
        clean_stale_temp(self.dest.parent)
        self.tmp = temp_name(self.dest)

    def commit(self) -> Path:
        try:
            _fsync_file(self.tmp)
            os.replace(self.tmp, self.dest)
        except OSError as e:
            self.discard()
            raise _named(e, self.dest) from e
        fsync_dir(self.dest.parent)
        return self.dest

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success it is fsynced and renamed onto ``dest``.

    On any exception the temporary file is removed and ``dest`` is untouched; an ``OSError`` about the temporary
    file is raised naming ``dest`` instead. Use it for every user-facing write:
    ``with atomic_path(p) as tmp: torch.save(obj, tmp)``.
    """
    f = AtomicFile(dest)
    try:
        yield f.tmp
    except OSError as e:
        f.discard()
        if e.filename is not None and Path(e.filename) == f.tmp:
            raise _named(e, f.dest) from e
        raise
    except BaseException:
        f.discard()
        raise
    f.commit()


def atomic_write(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def atomic_write_json(path: str | os.PathLike[str], data: object, *, indent: int = 4) -> Path:
    """Write ``data`` as UTF-8 JSON (with a final newline) atomically."""
    return atomic_write(path, (json.dumps(data, indent=indent, ensure_ascii=False) + "\n").encode("utf-8"))


class StagedFolder:
    """Files that belong together, written into a hidden folder beside ``dest`` and moved in by :meth:`publish`.

    ``marker`` (e.g. ``timing.json``) is the file that says the folder is complete: :meth:`publish` first removes
    ``dest``'s old marker, then moves the new files in (removing old files matching ``replaces`` that the new set
    lacks), and the marker last. A process killed at any moment leaves either the old complete set, or files
    without a marker, never a marker beside files of another set. Files in ``dest`` that do not match
    ``replaces`` are left alone. Use as a context manager: an exception removes the staging folder.
    """

    def __init__(self, dest: str | os.PathLike[str], *, marker: str, replaces: str = "*") -> None:
        self.dest = Path(dest)
        if self.dest.exists() and not self.dest.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"cannot write into {self.dest}: it is a file, not a folder")
        self.marker, self.replaces = marker, replaces
        try:
            self.dest.parent.mkdir(parents=True, exist_ok=True)
            clean_stale_temp(self.dest.parent)
            self.path = temp_name(self.dest)
            self.path.mkdir()
        except OSError as e:
            raise _named(e, self.dest) from None

    def __enter__(self) -> StagedFolder:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is not None:
            self.abort()

    def abort(self) -> None:
        """Forget the staged files (``dest`` is untouched)."""
        shutil.rmtree(self.path, ignore_errors=True)

    def publish(self) -> Path:
        """Move the staged files into ``dest`` (marker last); returns ``dest``."""
        if not (self.path / self.marker).is_file():
            raise FileNotFoundError(errno.ENOENT, f"{self.marker} was not written", str(self.path / self.marker))
        fsync_dir(self.path)
        if not self.dest.exists():
            os.rename(self.path, self.dest)  # one atomic step
            fsync_dir(self.dest.parent)
            return self.dest
        (self.dest / self.marker).unlink(missing_ok=True)
        fsync_dir(self.dest)
        new = {p.name for p in self.path.iterdir()}
        for old in self.dest.glob(self.replaces):
            if old.name not in new and old.is_file():
                old.unlink()
        for name in sorted(new - {self.marker}):
            os.replace(self.path / name, self.dest / name)
        fsync_dir(self.dest)
        os.replace(self.path / self.marker, self.dest / self.marker)
        fsync_dir(self.dest)
        self.path.rmdir()
        return self.dest


def _depth(data: object) -> int:
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth <= MAX_JSON_DEPTH:
                stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def read_json(path: str | os.PathLike[str]) -> object:
    """The parsed content of a UTF-8 JSON file.

    Raises:
        FileNotFoundError: no such file.
        JsonFileError: a folder, unreadable, not UTF-8, malformed JSON (with line and column), or nested deeper
            than :data:`MAX_JSON_DEPTH`; the message starts with the file's path.
    """
    path = Path(path)
    if path.is_dir():
        raise JsonFileError(f"{path}: is a folder, expected a JSON file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise JsonFileError(f"{path}: cannot read it: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise JsonFileError(f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise JsonFileError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from None
    except RecursionError:
        raise JsonFileError(f"{path}: JSON nested far too deep (more than {MAX_JSON_DEPTH} levels)") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise JsonFileError(f"{path}: JSON nested more than {MAX_JSON_DEPTH} levels deep; not a file of ours")
    return data
