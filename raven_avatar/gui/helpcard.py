"""The F1 help card: every hotkey of a :class:`~raven_avatar.gui.hotkeys.HotkeyTable`, plus a few notes."""

from __future__ import annotations

from collections.abc import Sequence

import dearpygui.dearpygui as dpg

from raven_avatar.gui.hotkeys import HotkeyTable


def help_rows(table: HotkeyTable) -> list[tuple[str, str]]:
    """(chord, description) for every hotkey and documented key, in the order they were added."""
    return [(h.chord, h.description) for h in table.entries] + list(table.notes)


def show_help(table: HotkeyTable, title: str, notes: Sequence[str] = ()) -> None:
    """Open the help card as a modal dialog (Esc or Enter closes it)."""

    def body(win: int | str) -> None:
        with dpg.table(header_row=True, parent=win, borders_innerH=True, policy=dpg.mvTable_SizingStretchProp):
            dpg.add_table_column(label="Key", width_fixed=True, init_width_or_weight=170)
            dpg.add_table_column(label="Action")
            for chord, description in help_rows(table):
                with dpg.table_row():
                    dpg.add_text(chord)
                    dpg.add_text(description, wrap=520)
        for note in notes:
            dpg.add_text(note, wrap=700, parent=win)

    table.dialogs.panel(title, body, width=780, height=720)
