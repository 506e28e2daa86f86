"""The default text for calibration and evaluation: CPython's ``pydoc_data.topics``.

It ships with Python (no download), so both the calibration pass's callers and
the perplexity evaluation (:mod:`plait.runtime.evaluate`, which re-exports
:func:`default_text`) use the same text.  Perplexity scores its *first* tokens;
calibration takes its *last* ones by default (``calibrate`` option ``take``),
so the two do not overlap.
"""
from __future__ import annotations


def default_text() -> str:
    """All ``pydoc_data.topics`` entries, sorted by key, separated by blank lines."""
    from pydoc_data import topics
    return "\n\n".join(topics.topics[k] for k in sorted(topics.topics))
