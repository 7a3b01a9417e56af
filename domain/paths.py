"""Where obliviate keeps what it builds (dequantized built-in models, evaluation caches, the
embedded service's database and artifacts), importable without torch."""

from __future__ import annotations

import os
from pathlib import Path


def cache_home() -> Path:
    """OBLIVIATE_HOME, else $XDG_CACHE_HOME/obliviate, else ~/.cache/obliviate."""
    if env := os.environ.get("OBLIVIATE_HOME"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "obliviate"
