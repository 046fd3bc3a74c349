"""Modal dialogs (message, confirm, text prompt, panel) and file dialogs, shown one at a time.

DearPyGui cannot stack modals, and a modal opened in the frame in which another one closed is invisible yet
blocks all input. So :class:`Dialogs` queues every dialog and :meth:`Dialogs.tick` (called once per frame, before
rendering) shows the next one only on a frame after the previous one closed. Enter accepts and Esc cancels the open
dialog (:mod:`raven_avatar.gui.hotkeys` sends them here). Every dialog window is deleted when closed, so no item tag
is ever reused. File dialogs remember their folder per kind (:class:`~raven_avatar.gui.folders.FolderMemory`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dearpygui.dearpygui as dpg

from raven_avatar.gui.callbacks import Callbacks
from raven_avatar.gui.filedialog import FileDialog, FileRequest
from raven_avatar.gui.folders import FolderMemory

log = logging.getLogger(__name__)

WIDTH = 640
FILE_WIDTH, FILE_HEIGHT = 820, 540


@dataclass(eq=False)
class _Open:
    """One dialog. Its buttons close *it* (a late second click, or Enter seen twice, cannot close the next one)."""

    kind: str  # "message", "confirm", "text", "panel", "file"
    window: int | str = 0
    on_accept: Callable[[], None] | None = None
    file: FileDialog | None = None


class Dialogs:
    """The app's dialogs; create after the DearPyGui context exists."""

    def __init__(self, callbacks: Callbacks, folders: FolderMemory | None = None) -> None:
        self._cb = callbacks
        self.folders = folders or FolderMemory()
        self._queue: list[tuple[_Open, Callable[[], None]]] = []
        self._open: _Open | None = None
        self._frame = 0
        self._closed_frame = -1
        #: Every message shown (title, text), newest last; lets tests and logs see what the user saw.
        self.history: list[tuple[str, str]] = []

    # -- state ------------------------------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether a dialog is open or about to open (hotkeys stay off until the queue is empty)."""
        return self._open is not None or bool(self._queue)

    @property
    def open_kind(self) -> str | None:
        return self._open.kind if self._open else None

    @property
    def open_window(self) -> int | str | None:
        return self._open.window if self._open else None

    @property
    def file_dialog(self) -> FileDialog | None:
        return self._open.file if self._open else None

    def tick(self) -> bool:
        """Once per frame, before rendering: open the next queued dialog if its turn has come. Whether it did."""
        self._frame += 1
        if self._open is not None or not self._queue or self._frame <= self._closed_frame + 1:
            return False
        dialog, build = self._queue.pop(0)
        self._open = dialog
        build()
        return True

    def _finish(self, dialog: _Open, action: Callable[[], None] | None) -> None:
        """Close ``dialog`` (if it is still the open one) and run ``action``."""
        if dialog is not self._open:
            return
        self._open = None
        self._closed_frame = self._frame
        if dpg.does_item_exist(dialog.window):
            dpg.delete_item(dialog.window)
        if action is not None:
            action()

    def accept(self) -> None:
        """Enter: the default button of the open dialog (a file dialog's Open/Save)."""
        dialog = self._open
        if dialog is None:
            return
        if dialog.file is not None:
            dialog.file.enter()
        else:
            self._finish(dialog, dialog.on_accept)

    def cancel(self) -> None:
        """Esc: close the open dialog without acting (a confirm dialog's "no" action is not run either)."""
        if self._open is not None:
            self._finish(self._open, None)

    def browse(self, step: int | str) -> bool:
        """Up/Down/Home/End while a file dialog is open move its selection; whether they were used."""
        if self._open is None or self._open.file is None:
            return False
        self._open.file.browse(step)
        return True

    # -- building -----------------------------------------------------------------------------------------------------

    def _window(self, title: str, width: int = WIDTH, height: int = 0) -> int | str:
        vw, vh = dpg.get_viewport_client_width(), dpg.get_viewport_client_height()
        width = min(width, vw - 20)
        kwargs = {"width": width, "height": min(height, vh - 40)} if height else {"autosize": True}
        y = max(0, (vh - height) // 2) if height else max(0, vh // 3)
        return dpg.add_window(label=title, modal=True, no_collapse=True, no_close=True,
                              pos=(max(0, (vw - width) // 2), y), min_size=(width // 2, 80), **kwargs)  # fmt: skip

    def _button(self, dialog: _Open, label: str, parent: int | str, action: Callable[[], None] | None,
                width: int = 0) -> None:  # fmt: skip
        dpg.add_button(label=label, parent=parent, width=width, callback=self._cb.click(self._finish, dialog, action))

    def message(self, title: str, text: str, on_close: Callable[[], None] | None = None) -> None:
        """An information or error box with one OK button (Enter or Esc close it)."""
        self.history.append((title, text))
        log.info("dialog %r: %s", title, text)

        dialog = _Open("message", on_accept=on_close)

        def build() -> None:
            dialog.window = win = self._window(title)
            dpg.add_text(text, wrap=WIDTH - 20, parent=win)
            self._button(dialog, "OK [Enter]", win, on_close, 120)

        self._queue.append((dialog, build))

    def error(self, text: str, title: str = "Error") -> None:
        self.message(title, text)

    def panel(self, title: str, build_body: Callable[[int | str], None], width: int, height: int) -> None:
        """A larger modal (help card, report) whose body ``build_body(window)`` adds; Esc/Enter close it."""

        dialog = _Open("panel")

        def build() -> None:
            dialog.window = win = self._window(title, width, height)
            build_body(win)
            self._button(dialog, "Close [Esc]", win, None)

        self._queue.append((dialog, build))

    def confirm(
        self,
        title: str,
        text: str,
        on_yes: Callable[[], None],
        on_no: Callable[[], None] | None = None,
        yes: str = "Yes",
        no: str = "No",
    ) -> None:
        """A yes/no question; Enter is yes, Esc closes without either action."""
        self.history.append((title, text))

        dialog = _Open("confirm", on_accept=on_yes)

        def build() -> None:
            dialog.window = win = self._window(title)
            dpg.add_text(text, wrap=WIDTH - 20, parent=win)
            row = dpg.add_group(horizontal=True, parent=win)
            self._button(dialog, f"{yes} [Enter]", row, on_yes)
            self._button(dialog, no, row, on_no)
            self._button(dialog, "Cancel [Esc]", row, None)

        self._queue.append((dialog, build))

    def ask_text(self, title: str, prompt: str, default: str, on_ok: Callable[[str], None]) -> None:
        """Ask for one line of text; Enter or OK calls ``on_ok(text)``."""

        dialog = _Open("text")

        def build() -> None:
            dialog.window = win = self._window(title)
            dpg.add_text(prompt, wrap=WIDTH - 20, parent=win)
            field = dpg.add_input_text(default_value=default, width=WIDTH - 40, parent=win, on_enter=True)

            def ok() -> None:
                text = dpg.get_value(field)
                self._finish(dialog, lambda: on_ok(text))

            dialog.on_accept = ok
            dpg.configure_item(field, callback=self._cb.click(ok))
            row = dpg.add_group(horizontal=True, parent=win)
            dpg.add_button(label="OK [Enter]", width=120, parent=row, callback=self._cb.click(ok))
            self._button(dialog, "Cancel [Esc]", row, None, 120)
            dpg.focus_item(field)

        self._queue.append((dialog, build))

    def _file(self, request: FileRequest, kind: str, on_pick: Callable[[Path], None]) -> None:
        dialog = _Open("file")

        def done(path: Path) -> None:
            if dialog is self._open:
                self.folders.remember(kind, path if request.mode == "folder" else path.parent)
                self._finish(dialog, lambda: on_pick(path))

        def build() -> None:
            dialog.window = win = self._window(request.title, FILE_WIDTH, FILE_HEIGHT)
            dialog.file = FileDialog(self._cb, win, request, done, FILE_WIDTH, FILE_HEIGHT - 190)
            dpg.configure_item(dialog.file.cancel_button, callback=self._cb.click(self._finish, dialog, None))

        self._queue.append((dialog, build))

    def open_file(self, title: str, kind: str, extensions: Sequence[str], folder: Path | None,
                  on_pick: Callable[[Path], None]) -> None:  # fmt: skip
        """Ask for an existing file; starts in the folder last used for ``kind``, else ``folder``."""
        start = self.folders.get(kind, folder)
        self._file(FileRequest(title, "open", start, tuple(extensions)), kind, on_pick)

    def save_file(self, title: str, kind: str, extensions: Sequence[str], folder: Path | None, default_name: str,
                  on_pick: Callable[[Path], None]) -> None:  # fmt: skip
        """Ask for a file name to write; never starts in the model cache or the installed package."""
        start = self.folders.get(kind, folder, for_saving=True)
        self._file(FileRequest(title, "save", start, tuple(extensions), default_name), kind, on_pick)

    def pick_folder(self, title: str, kind: str, folder: Path | None, on_pick: Callable[[Path], None]) -> None:
        start = self.folders.get(kind, folder, for_saving=True)
        self._file(FileRequest(title, "folder", start), kind, on_pick)
