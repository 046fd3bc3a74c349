"""Entry point of `avatar-pose-editor`: the editor window, or a headless factory reset, restore or batch export."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("raven_avatar.pose_editor")

_ANIMATED = ("apng", "gif")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="avatar-pose-editor",
        description="Edit the emotion templates on your character and export every emotion as a sprite. "
        "Without options, opens the editor window with the default character.",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--model", default=None, help="THA3 variant: separable_float (CPU default), separable_half "
                   "(CUDA default), standard_float or standard_half")  # fmt: skip
    p.add_argument("--character", type=Path, help="character PNG to open (default: the THA3 example character)")
    p.add_argument(
        "--factory-reset",
        nargs="*",
        metavar="EMOTION",
        help="reset your templates for these emotions (none: all) to factory, after a backup; then exit",
    )
    p.add_argument("--factory-reset-all", action="store_true", help="same as --factory-reset with no names")
    p.add_argument(
        "--restore-backup",
        nargs="?",
        const="",
        metavar="FOLDER",
        help="put back a template backup (default: the newest that is not a before-restore one) and exit; "
        "running it twice changes nothing the second time",
    )
    p.add_argument("--list-backups", action="store_true", help="list the template backups (date, what each holds)")
    p.add_argument("--pin-backup", metavar="FOLDER", help="keep this backup forever (only the newest 20 are kept)")
    p.add_argument("--unpin-backup", metavar="FOLDER", help="let this backup be pruned again")
    p.add_argument(
        "--batch-export",
        type=Path,
        metavar="CHARACTER",
        help="headless: export every emotion of CHARACTER (a PNG) to --output, then exit",
    )
    p.add_argument("--output", type=Path, metavar="DIR", help="folder for --batch-export")
    p.add_argument(
        "--format",
        action="append",
        choices=("png", "sheet", *_ANIMATED),
        dest="formats",
        help="what --batch-export writes: png (sprites + templates, always), sheet (also a sprite "
        "sheet), apng/gif (idle loops); repeatable",
    )
    p.add_argument("--emotions", nargs="+", metavar="EMOTION", help="--batch-export only these emotions")
    p.add_argument("--sheet-columns", type=_positive_int, metavar="N",
                   help="sprites per row of the sprite sheet (default: a near-square grid)")  # fmt: skip
    p.add_argument("--output-index", type=int, default=0, help="THA3 output to export (0: the posed image)")
    p.add_argument(
        "--window-shot",
        type=Path,
        metavar="PNG",
        help="open the window, save a screenshot of it once the first render shows, then exit (docs)",
    )
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
    return p  # fmt: skip


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _factory_reset(names: list[str] | None) -> int:
    from raven_avatar.engine.emotions import factory_reset, factory_templates, user_templates_dir

    if names:
        known = sorted(set(factory_templates()) - {"zero"} | {p.stem for p in user_templates_dir().glob("*.json")})
        bad = [n for n in names if n not in known]
        if bad:
            log.error("unknown emotion(s): %s. Valid names: %s", ", ".join(bad), ", ".join(known))
            return 1
    backup = factory_reset(names or None)
    print(f"Reset {'all emotion templates' if not names else ', '.join(names)} to factory.")
    print(f"Backup: {backup}\nTo undo: avatar-pose-editor --restore-backup {backup}")
    return 0


def _restore(folder: str) -> int:
    from raven_avatar.engine.emotions import restore_backup

    restored = restore_backup(folder or None)
    if restored.undo is None:
        print(f"The emotion templates already match {restored.source}; nothing changed.")
    else:
        print(f"Restored {', '.join(restored.changed)} from {restored.source}")
        print(f"The files it replaced are in {restored.undo}")
        print(f"To undo: avatar-pose-editor --restore-backup {restored.undo}")
    return 0


def _list_backups() -> int:
    from raven_avatar.engine.emotions import BACKUPS_DIR, KEEP_BACKUPS, backups, user_templates_dir

    found = backups()
    print(f"{len(found)} backup(s) in {user_templates_dir() / BACKUPS_DIR} (newest {KEEP_BACKUPS} kept, plus pinned)")
    for b in reversed(found):
        print(f"{b.describe()}\n    {b.path}")
    return 0


def _pin(folder: str, pinned: bool) -> int:
    from raven_avatar.engine.emotions import pin_backup

    backup = pin_backup(folder, pinned)
    print(f"{'Pinned' if pinned else 'Unpinned'} {backup.path}")
    return 0


def _batch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from raven_avatar.engine.character import load_character
    from raven_avatar.engine.emotions import load_templates
    from raven_avatar.engine.poser import load_poser
    from raven_avatar.pose_editor.batch import batch_export
    from raven_avatar.pose_editor.render import EditorRenderer

    formats = set(args.formats or ["png"])
    if formats & set(_ANIMATED):
        try:
            import raven_avatar.pose_editor.loops  # noqa: F401  (needs the engine's APNG/GIF writers)
        except ImportError as e:
            log.error("APNG/GIF idle loops are not available in this version (%s); use png or sheet", e)
            return 1
    character = load_character(args.batch_export)
    templates = load_templates(character.path)
    for problem in templates.problems:
        log.warning("emotion templates: %s", problem)
    chosen = templates.templates
    if args.emotions:
        unknown = [n for n in args.emotions if n not in templates]
        if unknown:
            log.error("unknown emotion(s): %s. Known: %s", ", ".join(unknown), ", ".join(templates))
            return 1
        chosen = {n: templates[n] for n in args.emotions}
    poser = load_poser(args.model, args.device)
    if poser.notice:
        log.warning("%s", poser.notice)
    with tqdm(total=len(chosen), desc="batch export", unit="emotion") as bar:

        def progress(done: int, total: int, name: str) -> None:
            if done < bar.n:  # the idle loops count again from 1
                bar.reset(total)
            bar.set_postfix_str(name)
            bar.update(done - bar.n)

        result = batch_export(
            EditorRenderer(poser), character, chosen, args.output,
            formats=sorted(formats), output_index=args.output_index, progress=progress,
            sheet_columns=args.sheet_columns,
        )  # fmt: skip
    print(result.summary())
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    from raven_avatar.engine.character import CharacterError
    from raven_avatar.engine.download import DownloadError
    from raven_avatar.engine.emotions import TemplateError

    try:
        if args.factory_reset is not None or args.factory_reset_all:
            return _factory_reset(None if args.factory_reset_all else args.factory_reset)
        if args.restore_backup is not None:
            return _restore(args.restore_backup)
        if args.list_backups:
            return _list_backups()
        if args.pin_backup or args.unpin_backup:
            return _pin(args.pin_backup or args.unpin_backup, pinned=bool(args.pin_backup))
        if args.batch_export is not None:
            if args.output is None:
                log.error("--batch-export needs --output DIR")
                return 2
            from raven_avatar.engine.poser.model import THA3

            if not 0 <= args.output_index < len(THA3.OUTPUT_NAMES):  # checked before loading anything
                log.error("--output-index must be 0..%d (0: the posed image), got %d", len(THA3.OUTPUT_NAMES) - 1,
                          args.output_index)  # fmt: skip
                return 2
            return _batch(args)
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            log.error("no display (DISPLAY is not set): the editor window needs a desktop session. "
                      "Headless, use --batch-export or --factory-reset.")  # fmt: skip
            return 1
        from raven_avatar.gui.loading import LoadingCancelledError
        from raven_avatar.pose_editor.app import create_app, window_shot

        try:
            app = create_app(character=args.character, device=args.device, variant=args.model)
        except LoadingCancelledError:  # the window's Cancel during the first download
            log.info("cancelled while loading")
            return 1
        return app.run(None if args.window_shot is None else window_shot(args.window_shot))
    except (CharacterError, TemplateError, DownloadError, FileNotFoundError, ValueError, OSError) as e:
        log.error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
