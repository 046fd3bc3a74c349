"""The one DearPyGui callback convention of both apps.

DearPyGui calls a callback with as many of ``(sender, app_data, user_data)`` as the callable has parameters, and it
counts parameters that have defaults: ``lambda s, v, k=key: ...`` receives ``user_data`` (``None``) in ``k`` when a
real event is dispatched through ``run_callbacks``. So no widget callback in the apps is written by hand. They are
made here, from plain actions, by :class:`Callbacks`: every callback takes exactly the three arguments DearPyGui
passes, binds its own arguments by closure (never by default values), and routes any exception from the action to
the app's error handler, so one failing control shows a dialog instead of ending the frame loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: What DearPyGui calls: ``callback(sender, app_data, user_data)``.
Callback = Callable[[Any, Any, Any], None]
#: Receives an exception that escaped an action, with a short description of the control that ran it.
ErrorHandler = Callable[[BaseException, str], None]


class Callbacks:
    """Factory of widget callbacks for one app; ``on_error`` shows what went wrong (an error dialog)."""

    def __init__(self, on_error: ErrorHandler):
        self.on_error = on_error

    def _run(self, what: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception as e:  # the frame loop must survive any control
            log.exception("%s failed", what)
            self.on_error(e, what)

    def click(self, action: Callable[..., Any], *args: Any) -> Callback:
        """A callback that runs ``action(*args)`` (buttons, menu items, handlers that need no value)."""
        what = _name(action)

        def callback(sender: Any, app_data: Any, user_data: Any) -> None:
            self._run(what, lambda: action(*args))

        return callback

    def value(self, action: Callable[..., Any], *args: Any) -> Callback:
        """A callback that runs ``action(*args, app_data)``: the new value of a slider, checkbox, combo, field."""
        what = _name(action)

        def callback(sender: Any, app_data: Any, user_data: Any) -> None:
            self._run(what, lambda: action(*args, app_data))

        return callback

    def sender(self, action: Callable[..., Any], *args: Any) -> Callback:
        """A callback that runs ``action(*args, sender, app_data)`` (when the action must read the widget itself)."""
        what = _name(action)

        def callback(sender: Any, app_data: Any, user_data: Any) -> None:
            self._run(what, lambda: action(*args, sender, app_data))

        return callback


def _name(action: Callable[..., Any]) -> str:
    return getattr(action, "__qualname__", None) or repr(action)
