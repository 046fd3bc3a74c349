"""``python -m raven_avatar.server``: the same as ``avatar-server``."""

import sys

from .cli import main

sys.exit(main())
