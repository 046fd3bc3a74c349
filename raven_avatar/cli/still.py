"""``avatar-render still``: one posed RGBA PNG of a character, from a pose file or an emotion.

Without ``--settings`` the image is the plain 512×512 pose; with it, the settings' crop, upscale and postprocessor
chain are applied as in the live view.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("raven_avatar.cli.still")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("still", help="render one posed frame to a PNG", description=__doc__)
    p.add_argument("--character", type=Path, help="character PNG (default: the THA3 example character lambda_00)")
    p.add_argument("--pose", type=Path, help="JSON dict of pose keys (missing keys are 0)")
    p.add_argument("--emotion", help="emotion template name (character's, user's, then factory templates)")
    p.add_argument("--output", type=Path, required=True, help="PNG file to write")
    p.add_argument("--settings", type=Path, help="animator settings JSON: apply its crop, upscale, postprocessor chain")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--variant", default=None, help="THA3 variant (default: separable_half on CUDA, else float)")


def _read_pose(path: Path) -> dict:
    from ..engine.fileio import read_json

    try:
        data = read_json(path)
    except FileNotFoundError:
        raise ValueError(f"cannot read pose file {path}: file not found") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a pose file is a JSON object of pose keys, got {type(data).__name__}")
    return data


def run(args: argparse.Namespace) -> int:
    from ..engine import pose as posemod
    from ..engine.avatar import resolve_settings
    from ..engine.character import CharacterError, load_character
    from ..engine.download import DownloadError
    from ..engine.emotions import TemplateError, load_templates
    from ..engine.export import write_png
    from ..engine.fileio import check_writable
    from ..engine.pipeline import render_still
    from ..engine.poser import default_character, load_poser
    from ..engine.postprocessor import ChainError
    from ..engine.report import capped
    from ..engine.settings import SettingsError

    if args.pose and args.emotion:
        log.error("give --pose or --emotion, not both")
        return 2
    if args.output.suffix.lower() != ".png":
        log.error("--output must be a .png file, got %s", args.output)
        return 2
    try:
        check_writable(args.output)  # before the slow work: a read-only folder is reported at once
        character = load_character(args.character or default_character())
        values: dict = {}
        cels: dict[str, float] = {}
        if args.pose:
            values = _read_pose(args.pose)
        elif args.emotion:
            templates = load_templates(character.path)
            for line in capped(templates.problems):
                log.warning("%s", line)
            if args.emotion == "zero":
                template = templates.zero
            elif args.emotion not in templates:
                raise ValueError(f"unknown emotion {args.emotion!r}; known: {', '.join(sorted(templates))}, zero")
            else:
                template = templates[args.emotion]
            log.info("emotion %s from %s", args.emotion, templates.sources.get(args.emotion, "factory"))
            values, cels = template.pose, template.cels
        vector, problems = posemod.pose_from_dict(values)
        for line in capped(problems):
            log.warning("%s", line)
        settings = None
        if args.settings:
            settings, problems = resolve_settings(args.settings)
            for line in capped([str(p) for p in problems]):
                log.warning("settings: %s (not applied)", line)
        poser = load_poser(args.variant, args.device)
        if poser.notice:
            log.warning("%s", poser.notice)
        frame = render_still(character, vector, cels, poser=poser, settings=settings)
        write_png(frame.rgba_u8, args.output)
    except (CharacterError, TemplateError, DownloadError, SettingsError, ChainError, ValueError, OSError) as e:
        log.error("%s", e)
        return 1
    log.info("wrote %s", args.output)
    return 0
