"""``avatar-render``: the headless, scriptable entry point.

Each subcommand lives in its own module under ``raven_avatar.cli`` with two functions:
``add_parser(subparsers)`` and ``run(args) -> int``. Exit code 0 on success, 1 on a reported error, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

#: Subcommand name -> module under raven_avatar.cli.
SUBCOMMANDS = {
    "still": "raven_avatar.cli.still",
    "clip": "raven_avatar.cli.clip",
    "upscale": "raven_avatar.cli.upscale",
}

log = logging.getLogger("raven_avatar.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avatar-render", description="Render THA3 avatars headless: stills, clips, upscaled images."
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument(
        "--cpu-backend",
        help="library that runs THA3 on a CPU: auto, pytorch, onnxruntime or openvino "
        "(default: $RAVEN_AVATAR_CPU_BACKEND, else auto: the fastest one installed)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in SUBCOMMANDS.values():
        importlib.import_module(module_name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2, argparse printed the one line): a return code
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    if args.cpu_backend:
        from raven_avatar.engine.poser.cpu_backend import CPU_BACKEND_ENV, requested_backend

        try:
            os.environ[CPU_BACKEND_ENV] = requested_backend(args.cpu_backend)  # every poser of this process
        except ValueError as e:
            log.error("%s", e)
            return 2
    module = importlib.import_module(SUBCOMMANDS[args.command])
    try:
        return int(module.run(args))
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception as e:  # the last line of defence: one line for the user, the traceback at DEBUG
        log.debug("unexpected error", exc_info=True)
        log.error("%s: %s (unexpected %s; --log-level DEBUG shows where)", args.command, e, type(e).__name__)
        return 1


if __name__ == "__main__":
    sys.exit(main())
