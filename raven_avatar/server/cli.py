"""``avatar-server``: the command line (argparse) and uvicorn."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig, needs_key

log = logging.getLogger("raven_avatar.server")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="avatar-server",
        description=(
            "Serve live THA3 avatars over HTTP: the reference (Raven) avatar API on the same port, so its clients "
            "work unchanged, plus a WebSocket, one-frame PNGs, speech and an OBS overlay page. API docs: "
            "http://HOST:PORT/docs; examples: docs/SERVER.md."
        ),
    )
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}: this machine only). Any other address "
        "needs an API key, which is then generated once and printed.",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT}, Raven's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto: CUDA if usable)")
    p.add_argument(
        "--variant",
        default=None,
        choices=["standard_float", "separable_float", "standard_half", "separable_half"],
        help="THA3 variant (default: separable_half on CUDA, separable_float on the CPU)",
    )
    p.add_argument(
        "--character",
        type=Path,
        default=None,
        help="preload this character (NAME.png, cels beside it) as instance 'default', started "
        "(what /overlay shows by default)",
    )
    p.add_argument(
        "--settings",
        type=Path,
        default=None,
        help="animator settings JSON every avatar starts from, and that {} resets to "
        "(default: the shipped animator.json)",
    )
    p.add_argument("--max-avatars", type=int, default=8, help="avatars loaded at once (default 8)")
    p.add_argument("--max-feeds", type=int, default=4, help="result_feed connections per avatar (default 4)")
    p.add_argument(
        "--api-key-file",
        type=Path,
        default=None,
        help="file holding the API key (created with a new random key if missing). Given, the key is "
        "required on every address; without it a key is required only off loopback, and kept in "
        "the user data dir.",
    )
    p.add_argument(
        "--emotion-model",
        default=None,
        help="the go-emotions text classifier of /api/classify: a Hugging Face Hub id (fetch it with python -m "
        "raven_avatar.engine.emotion_text download) or a local folder (default: the reference's model)",
    )
    p.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="INFO logs one line per request (default)",
    )
    return p


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    from .auth import default_key_file, load_or_create_key

    if args.max_avatars < 1 or args.max_feeds < 1:
        raise SystemExit("--max-avatars and --max-feeds must be at least 1")
    if args.character is not None and not args.character.is_file():
        raise SystemExit(f"{args.character}: character file not found")
    key = None
    if args.api_key_file is not None or needs_key(args.host):
        key_file = args.api_key_file or default_key_file()
        key = load_or_create_key(key_file)
        print(f"API key (from {key_file}): {key}", flush=True)
        print("Send it as 'Authorization: Bearer KEY' (or add ?key=KEY to /overlay and result_feed URLs).", flush=True)
    return ServerConfig(
        host=args.host, port=args.port, device=args.device, variant=args.variant, character=args.character,
        settings=args.settings, max_avatars=args.max_avatars, max_feeds=args.max_feeds, api_key=key,
        **({"emotion_model": args.emotion_model} if args.emotion_model else {}),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvicorn

        from .app import create_app
    except ImportError as e:
        print(f"avatar-server needs the server extra: pip install 'raven-avatar[server]' ({e})", file=sys.stderr)
        return 1
    config = config_from_args(args)
    if config.settings is not None:
        from raven_avatar.engine.settings import SettingsError, read_settings_file, validate

        try:
            problems = validate(read_settings_file(config.settings), source=str(config.settings))
        except SettingsError as e:
            print(e, file=sys.stderr)
            return 1
        for problem in problems:
            log.warning("%s (the next layer's value is used)", problem)
    app = create_app(config)
    # uvicorn's own access log is off: RequestLogMiddleware logs one line per request (without the query string,
    # which may carry the API key).
    uvicorn.run(app, host=config.host, port=config.port, log_level=args.log_level.lower(), access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
