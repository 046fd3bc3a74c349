"""Entry point of `avatar-pose-editor`."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="avatar-pose-editor", description="raven_avatar pose editor.")
    parser.parse_args(argv)
    print("avatar-pose-editor is not yet available in this version; see the README for what works today.")
    return 1


if __name__ == "__main__":
    sys.exit(main())
