"""Modal dialogs (message, confirm, text prompt) and file dialogs, shown one at a time.

DearPyGui cannot stack modals (a second one is silently invisible), so :class:`Dialogs` queues them: a dialog asked
for while another is open appears when that one closes. Enter accepts and Esc cancels the open dialog (wire
:meth:`Dialogs.accept` / :meth:`Dialogs.cancel` to those keys; :mod:`raven_avatar.gui.hotkeys` does). Every dialog
is deleted when closed, so no item tag is ever reused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dearpygui.dearpygui as dpg

log = logging.getLogger(__name__)

WIDTH = 640


@dataclass
class _Open:
    window: int | str
    on_accept: Callable[[], None] | None
    on_cancel: Callable[[], None] | None
    kind: str  # "message", "confirm", "text", "file"
    on_file: Callable[[Path], None] | None = None


class Dialogs:
    """The app's dialogs; create after the DearPyGui context exists."""

    def __init__(self) -> None:
        self._queue: list[Callable[[], None]] = []
        self._open: _Open | None = None
        #: Every message shown (title, text), newest last; lets tests and logs see what the user saw.
        self.history: list[tuple[str, str]] = []

    # -- state ------------------------------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._open is not None

    @property
    def open_kind(self) -> str | None:
        return self._open.kind if self._open else None

    def _show(self, build: Callable[[], None]) -> None:
        if self._open is None:
            build()
        else:
            self._queue.append(build)

    def _close(self) -> None:
        current, self._open = self._open, None
        if current is not None and dpg.does_item_exist(current.window):
            dpg.delete_item(current.window)
        if self._queue:
            self._queue.pop(0)()

    def _finish(self, action: Callable[[], None] | None) -> None:
        self._close()
        if action is not None:
            action()

    def accept(self) -> None:
        """Enter: the default button of the open dialog."""
        if self._open is not None and self._open.kind != "file":
            self._finish(self._open.on_accept)

    def cancel(self) -> None:
        """Esc: close the open dialog without acting (a confirm dialog's "no" action is not run either)."""
        if self._open is not None:
            self._finish(self._open.on_cancel if self._open.kind == "file" else None)

    def submit_file(self, path: str | Path) -> None:
        """Pick ``path`` in the open file dialog, as if the user had chosen it (for tests and drag and drop)."""
        if self._open is None or self._open.kind != "file" or self._open.on_file is None:
            raise RuntimeError("no file dialog is open")
        on_file = self._open.on_file
        self._finish(lambda: on_file(Path(path)))

    # -- building -----------------------------------------------------------------------------------------------------

    def _window(self, title: str) -> int | str:
        vw, vh = dpg.get_viewport_client_width(), dpg.get_viewport_client_height()
        return dpg.add_window(
            label=title, modal=True, no_collapse=True, no_close=True, autosize=True,
            pos=(max(0, (vw - WIDTH) // 2), max(0, vh // 3)), min_size=(WIDTH // 2, 80),
        )  # fmt: skip

    def message(self, title: str, text: str, on_close: Callable[[], None] | None = None) -> None:
        """An information or error box with one OK button (Enter or Esc close it)."""
        self.history.append((title, text))
        log.info("dialog %r: %s", title, text)

        def build() -> None:
            win = self._window(title)
            dpg.add_text(text, wrap=WIDTH - 20, parent=win)
            dpg.add_button(label="OK", width=100, parent=win, callback=lambda: self._finish(on_close))
            self._open = _Open(win, on_close, on_close, "message")

        self._show(build)

    def panel(self, title: str, build_body: Callable[[int | str], None], width: int, height: int) -> None:
        """A larger modal (help card, report) whose body ``build_body(window)`` adds; Esc/Enter close it."""

        def build() -> None:
            vw, vh = dpg.get_viewport_client_width(), dpg.get_viewport_client_height()
            w, h = min(width, vw - 40), min(height, vh - 60)
            win = dpg.add_window(
                label=title, modal=True, no_close=True, no_collapse=True, width=w, height=h,
                pos=(max(0, (vw - w) // 2), max(0, (vh - h) // 2)),
            )  # fmt: skip
            build_body(win)
            dpg.add_button(label="Close [Esc]", parent=win, callback=lambda: self._finish(None))
            self._open = _Open(win, None, None, "panel")

        self._show(build)

    def error(self, text: str, title: str = "Error") -> None:
        self.message(title, text)

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

        def build() -> None:
            win = self._window(title)
            dpg.add_text(text, wrap=WIDTH - 20, parent=win)
            row = dpg.add_group(horizontal=True, parent=win)
            dpg.add_button(label=yes, parent=row, callback=lambda: self._finish(on_yes))
            dpg.add_button(label=no, parent=row, callback=lambda: self._finish(on_no))
            dpg.add_button(label="Cancel", parent=row, callback=lambda: self._finish(None))
            self._open = _Open(win, on_yes, None, "confirm")

        self._show(build)

    def ask_text(self, title: str, prompt: str, default: str, on_ok: Callable[[str], None]) -> None:
        """Ask for one line of text; Enter or OK calls ``on_ok(text)``."""

        def build() -> None:
            win = self._window(title)
            dpg.add_text(prompt, wrap=WIDTH - 20, parent=win)
            field = dpg.add_input_text(default_value=default, width=WIDTH - 40, parent=win, on_enter=True)

            def ok() -> None:
                text = dpg.get_value(field)
                self._finish(lambda: on_ok(text))

            dpg.configure_item(field, callback=ok)
            row = dpg.add_group(horizontal=True, parent=win)
            dpg.add_button(label="OK", width=100, parent=row, callback=ok)
            dpg.add_button(label="Cancel", width=100, parent=row, callback=lambda: self._finish(None))
            self._open = _Open(win, ok, None, "text")
            dpg.focus_item(field)

        self._show(build)

    def _file(
        self,
        title: str,
        on_pick: Callable[[Path], None],
        *,
        folder: Path,
        extensions: Sequence[str] = (),
        default_name: str = "",
        directory: bool = False,
    ) -> None:
        def build() -> None:
            def chosen(_sender: object, app_data: dict) -> None:
                picked = app_data.get("file_path_name") or ""
                if directory:
                    picked = app_data.get("current_path") or picked
                if picked:
                    self._finish(lambda: on_pick(Path(picked)))
                else:
                    self._finish(None)

            vw, vh = dpg.get_viewport_client_width(), dpg.get_viewport_client_height()
            dlg = dpg.add_file_dialog(
                label=title, directory_selector=directory, modal=True, show=True, callback=chosen,
                cancel_callback=lambda *_: self._finish(None), default_path=str(folder),
                default_filename=default_name, width=min(900, vw - 40), height=min(560, vh - 80),
            )  # fmt: skip
            for ext in extensions:
                dpg.add_file_extension(ext, parent=dlg)
            if extensions:
                dpg.add_file_extension(".*", parent=dlg)
            self._open = _Open(dlg, None, None, "file", on_file=on_pick)

        self._show(build)

    def open_file(self, title: str, extensions: Sequence[str], folder: Path, on_pick: Callable[[Path], None]) -> None:
        self._file(title, on_pick, folder=folder, extensions=extensions)

    def save_file(
        self, title: str, extensions: Sequence[str], folder: Path, default_name: str, on_pick: Callable[[Path], None]
    ) -> None:
        self._file(title, on_pick, folder=folder, extensions=extensions, default_name=default_name)

    def pick_folder(self, title: str, folder: Path, on_pick: Callable[[Path], None]) -> None:
        self._file(title, on_pick, folder=folder, directory=True)
