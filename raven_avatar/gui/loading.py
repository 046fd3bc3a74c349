"""The loading view: the window opens at once and shows what is being fetched while the models load.

The first start downloads the THA3 weights (tens of MB, possibly from a fallback source), which takes a while; a
silent start looks like a hang. :func:`load_with_view` runs the slow work on a thread, subscribed to the engine's
fetch events (:mod:`raven_avatar.engine.progress`), and shows the newest one: what, from where, a progress bar with
bytes and time left, and the fallback message when a source is unreachable. Cancel stops the downloads (their
partial files resume next time) and quits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import dearpygui.dearpygui as dpg

from raven_avatar.engine import progress
from raven_avatar.gui.shell import Shell
from raven_avatar.gui.text import fit_lines

T = TypeVar("T")
WIDTH = 620


class LoadingCancelledError(Exception):
    """The user pressed Cancel (or closed the window) while loading."""


def describe(event: progress.FetchEvent) -> tuple[str, float | None, str]:
    """(headline, fraction or None, detail line) for one fetch event."""
    if event.kind in ("start", "progress") and event.total:
        done, total = progress.format_size(event.done), progress.format_size(event.total)
        rate = f", {progress.format_size(event.rate)}/s" if event.rate else ""
        left = f", {event.eta:.0f} s left" if event.eta is not None else ""
        where = f" from {event.source}" if event.source else ""
        return event.what or event.file, event.fraction, f"{event.file}{where}: {done} of {total}{rate}{left}"
    return event.message, None, event.source


def load_with_view(shell: Shell, title: str, work: Callable[[], T]) -> T:
    """Run ``work()`` on a thread while ``shell`` shows its progress; its result, or its exception re-raised.

    Raises :class:`LoadingCancelledError` when the user cancels or closes the window.
    """
    events: list[progress.FetchEvent] = []
    outcome: dict[str, Any] = {}
    lock = threading.Lock()

    def listener(event: progress.FetchEvent) -> None:
        with lock:
            events.append(event)
        shell.wake()

    def run(sub: progress.Subscription) -> None:
        try:
            outcome["value"] = work()
        except BaseException as e:  # re-raised on the GUI thread
            outcome["error"] = e
        finally:
            sub.close()
            shell.wake()

    vw, vh = dpg.get_viewport_client_width(), dpg.get_viewport_client_height()
    with dpg.window(label=title, no_close=True, no_collapse=True, no_move=True, width=WIDTH, autosize=True,
                    pos=(max(0, (vw - WIDTH) // 2), max(0, vh // 3))) as window:  # fmt: skip
        headline = dpg.add_text("Starting...")
        bar = dpg.add_progress_bar(width=-1, overlay="", show=False)
        detail = dpg.add_text("", color=(170, 180, 190))
        dpg.add_button(label="Cancel and quit", callback=shell.callbacks.click(lambda: sub.cancel()))
    sub = progress.subscribe(listener)
    threading.Thread(target=run, args=(sub,), name="loading", daemon=True).start()
    try:
        while not outcome and shell.running() and not sub.cancelled:
            with lock:
                newest = events[-1] if events else None
            if newest is not None:
                text, fraction, line = describe(newest)
                dpg.set_value(headline, fit_lines(text, WIDTH - 20))
                dpg.set_value(detail, fit_lines(line, WIDTH - 20))
                dpg.configure_item(bar, show=fraction is not None)
                if fraction is not None:
                    dpg.set_value(bar, fraction)
                    dpg.configure_item(bar, overlay=f"{fraction * 100:.0f} %")
            shell.frame(busy=newest is not None and newest.kind == "progress")
    finally:
        dpg.delete_item(window)
    if sub.cancelled or "value" not in outcome and "error" not in outcome:
        # Cancelled (or the window closed): whatever the work raised on seeing that (a download stopped midway)
        # is the cancellation, not an error to report.
        sub.cancel()
        raise LoadingCancelledError("cancelled while loading") from outcome.get("error")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
