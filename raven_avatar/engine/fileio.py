"""Atomic file writes: users' data is never left half-written.

Every user-facing write goes through :func:`atomic_path` (or its two shorthands): the data goes to a temporary file
beside the destination, is fsynced, then renamed over it, so a crash or a full disk leaves the old file intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


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


@contextlib.contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success it is fsynced and renamed onto ``dest``.

    On any exception the temporary file is removed and ``dest`` is untouched. Use it for every user-facing
    write: ``with atomic_path(p) as tmp: torch.save(obj, tmp)``.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(dest.parent)


def atomic_write(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def atomic_write_json(path: str | os.PathLike[str], data: object, *, indent: int = 4) -> Path:
    """Write ``data`` as UTF-8 JSON (with a final newline) atomically."""
    return atomic_write(path, (json.dumps(data, indent=indent, ensure_ascii=False) + "\n").encode("utf-8"))
