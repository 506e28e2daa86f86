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


def calibration_input(recipe, tokenizer, text: "str | None" = None):
    """The calibrating passes' input (``run_recipe(..., calibration=...)``): the token
    ids of ``text`` (default: the default text) when ``recipe`` needs them
    (:attr:`Recipe.needs_calibration`) and a tokenizer is there, else ``None`` (a pass
    that needs them then says so).  How many of them and which end is each pass's
    ``tokens``/``take`` options.  The one rule of ``plait compile``, ``plait hls csim
    layer`` and ``plait sweep``."""
    if not recipe.needs_calibration or tokenizer is None:
        return None
    return {"ids": tokenizer.encode(default_text() if text is None else text)}


def argparse_source() -> str:
    """The source of CPython's ``argparse.py``: a second, reproducible text (code and
    English docstrings) that ships with Python, for scoring on a text unlike the default."""
    import argparse
    from pathlib import Path
    return Path(argparse.__file__).read_text(encoding="utf-8")


# the texts compression is scored on (benchmarks/compression.py, the llm-compressor peer)
TEXTS = {"pydoc_topics": default_text, "argparse_py": argparse_source}

# fixed prompts whose greedy answers the compression benchmark shows per method
PROMPTS = ("The capital of France is", "def fibonacci(n):", "Water boils at")
