"""``python -m clearconv``: the ``clearconv`` command (clearconv.cli)."""

import sys

from .cli import main

sys.exit(main())
