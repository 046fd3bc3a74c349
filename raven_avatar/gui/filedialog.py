"""The apps' file dialog: open a file, save a file, or choose a folder, with the keyboard as well as the mouse.

DearPyGui's own file dialog joins a typed absolute path onto the current folder, rewrites names to its filter's
extension and cannot be driven by keys, so this one is built from plain widgets. The name field takes a file
name, a relative path, an absolute path or ``~/...``; Enter in it confirms. A folder double-clicked (or typed,
when a file is asked for) is opened; when a folder is asked for, a typed one is the choice (created if new).
Problems (no such file, a folder where a file is needed) are shown inside the dialog, which stays open.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dearpygui.dearpygui as dpg

from raven_avatar.gui.callbacks import Callbacks
from raven_avatar.gui.listview import ListView, stepped
from raven_avatar.gui.theme import ERROR_COLOUR

log = logging.getLogger(__name__)

#: Image files Pillow reads that a character or backdrop may come in (the engine says what it cannot use).
IMAGE_EXTENSIONS = (".png", ".webp", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".tga", ".qoi")
ALL_FILES = "All files"
UP = "../"


@dataclass(frozen=True)
class FileRequest:
    """What a dialog asks for. ``mode``: ``open`` (an existing file), ``save`` (any file name) or ``folder``."""

    title: str
    mode: str
    folder: Path
    extensions: Sequence[str] = ()
    default_name: str = ""

    @property
    def button(self) -> str:
        return {"open": "Open", "save": "Save", "folder": "Choose this folder"}[self.mode]


def resolve(text: str, folder: Path) -> Path:
    """The path a user means by ``text`` typed while looking at ``folder`` (``~`` expanded, absolute kept)."""
    path = Path(os.path.expandvars(text.strip())).expanduser()
    return path if path.is_absolute() else folder / path


class FileDialog:
    """The body of one file dialog in ``window``; ``on_done(path)`` when the user confirms a valid choice."""

    def __init__(self, callbacks: Callbacks, window: int | str, request: FileRequest, on_done: Callable[[Path], None],
                 width: int, list_height: int):  # fmt: skip
        self.request = request
        self._cb = callbacks
        self._on_done = on_done
        self.folder = request.folder.expanduser()
        if not self.folder.is_dir():
            self.folder = Path.home()
        self._filters = self._filter_choices(request.extensions)
        row = dpg.add_group(horizontal=True, parent=window)
        dpg.add_button(label="Up", parent=row, callback=callbacks.click(self.go_up))
        dpg.add_button(label="Home", parent=row, callback=callbacks.click(self.open_folder, Path.home()))
        self.folder_text = dpg.add_text("", parent=row)
        self.list = ListView(callbacks, window, height=list_height, width=width - 20, label="Files",
                             on_select=self._selected,
                             on_activate=self._activated)  # fmt: skip
        row = dpg.add_group(horizontal=True, parent=window)
        label = "Folder or path" if request.mode == "folder" else "Name or path"
        dpg.add_text(label, parent=row)
        self.name_field = dpg.add_input_text(default_value=request.default_name, parent=row, width=width - 330,
                                             on_enter=True, callback=callbacks.value(self.confirm))  # fmt: skip
        self.filter_combo = dpg.add_combo(list(self._filters), default_value=next(iter(self._filters)), parent=row,
                                          width=170, callback=callbacks.click(self.refresh))  # fmt: skip
        self.problem_text = dpg.add_text("", parent=window, color=ERROR_COLOUR, wrap=width - 20)
        row = dpg.add_group(horizontal=True, parent=window)
        self.ok_button = dpg.add_button(label=f"{request.button} [Enter]", parent=row,
                                        callback=callbacks.click(self.confirm_field))  # fmt: skip
        self.cancel_button = dpg.add_button(label="Cancel [Esc]", parent=row)
        self.refresh()
        dpg.focus_item(self.name_field)

    @staticmethod
    def _filter_choices(extensions: Sequence[str]) -> dict[str, tuple[str, ...]]:
        exts = tuple(e.lower() for e in extensions)
        choices: dict[str, tuple[str, ...]] = {}
        if exts:
            choices[" ".join(f"*{e}" for e in exts)] = exts
        choices[ALL_FILES] = ()
        return choices

    # -- the listing --------------------------------------------------------------------------------------------------

    def entries(self) -> tuple[list[str], list[str]]:
        """(folders, files) shown in the current folder: no hidden ones; files matching the filter."""
        exts = self._filters.get(dpg.get_value(self.filter_combo), ())
        folders, files = [], []
        try:
            with os.scandir(self.folder) as it:
                for entry in it:
                    if entry.name.startswith("."):
                        continue
                    try:
                        is_dir = entry.is_dir()
                    except OSError:
                        continue
                    if is_dir:
                        folders.append(entry.name + "/")
                    elif self.request.mode != "folder" and (not exts or Path(entry.name).suffix.lower() in exts):
                        files.append(entry.name)
        except OSError as e:
            self.problem(f"Cannot list {self.folder}: {e.strerror or e}")
        key = str.casefold
        return sorted(folders, key=key), sorted(files, key=key)

    def refresh(self) -> None:
        folders, files = self.entries()
        rows = ([UP] if self.folder.parent != self.folder else []) + folders + files
        self.list.set_items(rows)
        dpg.set_value(self.folder_text, f"Folder: {self.folder}")

    def open_folder(self, folder: Path) -> None:
        self.folder = folder
        self.problem("")
        self.refresh()
        self.list.scroll_to(0)

    def go_up(self) -> None:
        if self.folder.parent != self.folder:
            self.open_folder(self.folder.parent)

    def problem(self, text: str) -> None:
        dpg.set_value(self.problem_text, text)

    # -- choosing -----------------------------------------------------------------------------------------------------

    def _selected(self, row: str) -> None:
        if row != UP and not row.endswith("/"):
            dpg.set_value(self.name_field, row)

    def _activated(self, row: str) -> None:
        if row == UP:
            self.go_up()
        elif row.endswith("/"):
            self.open_folder(self.folder / row.rstrip("/"))
        else:
            self.confirm(row)

    def confirm_field(self) -> None:
        self.confirm(dpg.get_value(self.name_field))

    def enter(self) -> None:
        """Enter outside the name field: open the selected folder, or confirm the name (a selected file)."""
        row = self.list.get()
        if row is not None and (row == UP or row.endswith("/")):
            self._activated(row)
        else:
            self.confirm_field()

    def confirm(self, text: str) -> None:
        """Accept ``text`` (a name, a relative or absolute path): finish, open a folder, or say what is wrong."""
        mode = self.request.mode
        if not text.strip():
            if mode == "folder":
                self._on_done(self.folder)
            else:
                self.problem("Type a file name or pick a file.")
            return
        path = resolve(text, self.folder)
        if mode == "folder":
            self._choose_folder(path)
            return
        if path.is_dir():
            dpg.set_value(self.name_field, "")
            self.open_folder(path)
            return
        if mode == "open":
            if not path.exists():
                self.problem(f"{path} does not exist.")
                return
            self._on_done(path)
        elif mode == "save":
            if not path.suffix and self.request.extensions:
                path = path.with_name(path.name + self.request.extensions[0])
            if not path.parent.is_dir():
                self.problem(f"The folder {path.parent} does not exist.")
                return
            self._on_done(path)

    def _choose_folder(self, path: Path) -> None:
        """A typed folder is the choice; a new one is made when its parent exists (an export's fresh folder)."""
        if path.is_dir():
            self._on_done(path)
        elif path.exists():
            self.problem(f"{path} is a file, not a folder.")
        elif not path.parent.is_dir():
            self.problem(f"The folder {path.parent} does not exist.")
        else:
            try:
                path.mkdir()
            except OSError as e:
                self.problem(f"Cannot create {path}: {e.strerror or e}")
                return
            self._on_done(path)

    def browse(self, step: int | str) -> None:
        """Up/Down/Home/End in the listing while the dialog is open."""
        rows = self.list.items()
        if rows:
            self.list.choose(stepped(rows, self.list.get(), step))
