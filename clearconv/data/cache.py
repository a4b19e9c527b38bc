"""Where datasets live on disk by default: ``$CLEARCONV_DATA/<name>``, else
``~/.cache/clearconv/<name>``. A leaf module: the readers and the downloader use it."""

from __future__ import annotations

import os
from pathlib import Path

#: the environment variable that moves the cache
DATA_ENV = "CLEARCONV_DATA"


def data_home() -> Path:
    """The cache base folder: ``$CLEARCONV_DATA`` if set, else ``~/.cache/clearconv``."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "clearconv"
