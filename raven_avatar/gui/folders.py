"""The folder each kind of file dialog last used ("character", "settings", "export", ...), remembered across runs.

Stored as ``gui_folders.json`` in the user data dir, shared by both apps. A folder that no longer exists, or one
inside the model cache or the installed package (where the default character and the factory assets live, and
where users must not save), is never proposed: the user's home folder is, instead.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from raven_avatar.engine.fileio import atomic_write_json
from raven_avatar.engine.paths import asset_path, user_cache_dir, user_data_dir

log = logging.getLogger(__name__)

FILE_NAME = "gui_folders.json"


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return False
    return True


def writable_default(folder: Path | None) -> Path:
    """``folder`` if a user would save there, else the home folder (for the default character in the cache)."""
    roots = (user_cache_dir(), asset_path())
    if folder is not None and folder.is_dir() and not any(_inside(folder, root) for root in roots):
        return folder
    return Path.home()


class FolderMemory:
    """Last folder per dialog kind; :meth:`get` falls back to a given folder, :meth:`remember` saves at once."""

    def __init__(self, path: Path | None = None):
        self.path = path or user_data_dir() / FILE_NAME
        self._folders: dict[str, str] = {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                self._folders = {str(k): str(v) for k, v in data.items() if isinstance(v, str)}
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as e:  # a damaged memory only loses the remembered folders
            log.warning("%s: not read (%s); starting with no remembered folders", self.path, e)

    def get(self, kind: str, fallback: Path | None = None, *, for_saving: bool = False) -> Path:
        remembered = self._folders.get(kind)
        if remembered and Path(remembered).is_dir():
            return Path(remembered)
        if fallback is not None and fallback.is_dir():
            return writable_default(fallback) if for_saving else fallback
        return Path.home()

    def remember(self, kind: str, folder: Path) -> None:
        folder = folder.expanduser().resolve()
        if self._folders.get(kind) == str(folder):
            return
        self._folders[kind] = str(folder)
        try:
            atomic_write_json(self.path, self._folders)
        except OSError as e:
            log.warning("%s: could not remember the folder (%s)", self.path, e)
