"""Command line: download the Kokoro weights, list voices, speak or export text.

python -m raven_avatar.engine.speech download [--voice af_bella ...]
python -m raven_avatar.engine.speech voices
python -m raven_avatar.engine.speech say "Hello there." [--voice af_bella] [--speed 1.0] [--out hello.flac]
"""

from __future__ import annotations

import argparse
import logging
import sys

from . import tts
from .speaker import Speaker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m raven_avatar.engine.speech", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    dl = sub.add_parser("download", help=f"fetch {tts.REPO_ID} (config, weights, voices) from the Hugging Face Hub")
    dl.add_argument("--voice", action="append", help="only this voice (repeatable; default: all voices)")
    sub.add_parser("voices", help="list the downloaded voices")
    say = sub.add_parser("say", help="speak text aloud, or write it to an audio file with --out")
    say.add_argument("text")
    say.add_argument("--voice", default=tts.DEFAULT_VOICE)
    say.add_argument("--speed", type=float, default=1.0)
    say.add_argument("--out", help="write .wav/.flac/.ogg instead of playing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if args.command == "download":
        try:
            folder = tts.download(args.voice)
        except Exception as err:
            logging.error("%s", err)
            return 1
        print(f"Kokoro weights in {folder}")
        return 0
    speaker = Speaker()
    ok, why = speaker.available()
    if not ok:
        logging.error("speech unavailable: %s", why)
        return 1
    if args.command == "voices":
        print("\n".join(speaker.voices()))
        return 0
    if args.out:
        print(speaker.export_audio(args.text, args.out, args.voice, args.speed))
        return 0
    speaker.speak(args.text, args.voice, args.speed)
    speaker.wait()
    speaker.close()
    if speaker.last_error:
        logging.error("%s", speaker.last_error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
