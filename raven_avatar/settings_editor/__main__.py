"""Entry point of `avatar-settings-editor`."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="avatar-settings-editor", description="raven_avatar settings editor.")
    parser.parse_args(argv)
    print("avatar-settings-editor is not yet available in this version; see the README for what works today.")
    return 1


if __name__ == "__main__":
    sys.exit(main())
