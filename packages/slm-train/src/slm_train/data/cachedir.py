"""Where slm keeps what it can make again: extracted document text, hub revisions."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """$SLM_CACHE_DIR, else $XDG_CACHE_HOME/slm, else ~/.cache/slm."""
    if "SLM_CACHE_DIR" in os.environ:
        return Path(os.environ["SLM_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "slm"
