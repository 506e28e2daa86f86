"""Accuracy measurement: perplexity on a text.

The default text is CPython's own ``pydoc_data.topics`` (ships with Python, no
download).  Perplexity is computed over non-overlapping windows of ``window``
tokens covering the first ``max_tokens`` tokens: ``exp(mean NLL)`` of every
token predicted from at least one previous token of its window.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np

from plait.passes.textdata import default_text  # noqa: F401  (re-exported; calibration uses it too)


def token_windows(ids: list[int], max_tokens: int, window: int) -> list[np.ndarray]:
    ids = np.asarray(ids[:max_tokens], np.int64)
    return [ids[i:i + window] for i in range(0, len(ids) - 1, window) if len(ids[i:i + window]) > 1]


def nll_of_window(logits: np.ndarray, ids: np.ndarray) -> tuple[float, int]:
    """Sum of negative log-likelihoods of ids[1:] given logits[:-1] ([S, V]) and the count."""
    lg = logits[:-1].astype(np.float64)
    lg = lg - lg.max(-1, keepdims=True)
    logp = lg - np.log(np.exp(lg).sum(-1, keepdims=True))
    tgt = ids[1:]
    return float(-logp[np.arange(len(tgt)), tgt].sum()), len(tgt)


def perplexity(logits_fn: Callable[[np.ndarray], np.ndarray], ids: list[int], *, max_tokens: int = 4096,
               window: int = 512, progress: bool = True) -> tuple[float, int]:
    """``logits_fn(ids[S]) -> logits[S, V]`` for one fresh window. Returns (ppl, tokens scored)."""
    windows = token_windows(ids, max_tokens, window)
    if not windows:
        raise ValueError("text is too short: fewer than 2 tokens")
    total, count = 0.0, 0
    it = windows
    if progress:
        from tqdm import tqdm
        it = tqdm(windows, desc="perplexity", unit="window")
    for w in it:
        s, n = nll_of_window(logits_fn(w), w)
        total += s
        count += n
    return math.exp(total / count), count


def session_perplexity(session, ids: list[int], *, max_tokens: int = 4096, window: int = 512,
                       progress: bool = True) -> tuple[float, int]:
    """:func:`perplexity` of a :class:`~plait.runtime.session.Session`: every window on a
    fresh KV cache, through the session's device (``plait eval``, ``plait sweep``)."""
    return perplexity(lambda w: session.forward(w, session.new_cache()), ids, max_tokens=max_tokens,
                      window=window, progress=progress)


def eval_window(window: Optional[int], context: int) -> int:
    """The evaluation window: ``window`` checked against the model's ``context`` (0:
    unknown), or by default 512 tokens, or the context when it is shorter."""
    from plait.ir.limits import LimitError
    if window is None:
        return min(512, context) if context else 512
    if context and window > context:
        raise LimitError(f"--window {window} is longer than the model's context of {context} tokens; "
                         f"use --window {context} or less")
    return window
