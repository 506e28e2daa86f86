"""Where plait keeps what it builds once and reuses: ``$PLAIT_CACHE`` or ``<repo>/.plait_cache``.

The lowest layer owns the location so that every layer above finds the same folder:
simulation builds (``sim/``), synthesis results (``synth/``), kernels (``kernels/``,
``fast/``), converted tokenizers (``tokenizers/``).  Every user writes its entries
atomically (a temporary name, then a rename) and treats an entry it cannot read as
missing.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parents[1]


def cache_dir() -> Path:
    """Root of plait's build caches: ``$PLAIT_CACHE`` or ``<repo>/.plait_cache``."""
    return Path(os.environ.get("PLAIT_CACHE") or REPO_ROOT / ".plait_cache")
