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


def calibration_input(recipe, tokenizer):
    """The calibrate pass's input (``run_recipe(..., calibration=...)``): the default
    text's token ids when ``recipe`` needs them (:attr:`Recipe.needs_calibration`) and a
    tokenizer is there, else ``None`` (a pass that needs them then says so).  The one
    rule of ``plait compile``, ``plait hls csim layer`` and ``plait sweep``."""
    if not recipe.needs_calibration or tokenizer is None:
        return None
    return {"ids": tokenizer.encode(default_text())}
