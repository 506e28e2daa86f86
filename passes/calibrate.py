"""The ``calibrate`` pass: input-activation statistics of every linear layer.

The pass runs the graph on calibration tokens with the reference interpreter
(:class:`plait.ir.Interpreter`, float32, its ``observer`` hook) and records, for
every weight used as a linear weight ``W[N, K]``, statistics of that linear's
input ``x[..., K]`` over all calibration tokens, per input feature ``j``:

* ``<weight>.act_sqsum`` -- float32 ``[K]``: ``sum_t x[t, j]**2`` (accumulated in
  float64, rounded once): ``sqrt`` of it is the L2 norm ``||X_j||_2`` that
  Wanda-style pruning (``sparsify`` with ``method = "wanda"``) weighs ``|W_ij|`` by;
* ``<weight>.act_absmax`` -- float32 ``[K]``: ``max_t |x[t, j]|`` (for int8
  activation quantization);

both new weight-store entries (weights live outside the graph).  Every ``param``
node naming the weight gets the attributes ``"act_sqsum"`` and ``"act_absmax"``
(the store names above) and ``"act_tokens"`` (int: how many token rows the
statistics cover).  A weight read by several linears (rare; e.g. one shared
projection) gets the statistics of all their inputs together.  Running the pass
again replaces the statistics.

Calibration data comes from the caller, not from the pass (passes do not
tokenize: the tokenizer lives in the frontend, above the passes): the pass
context's ``calibration`` dict holds ``{"ids": token ids}`` (1-D), handed in by
``run_recipe(..., calibration=...)``; ``plait compile`` and
``benchmarks/perplexity.py`` tokenize :func:`plait.passes.textdata.default_text`
(CPython's ``pydoc_data.topics``) for recipes that contain this pass
(:attr:`plait.passes.Recipe.needs_calibration`).  Options:

* ``tokens`` (2048): how many of the ids to use; ``take`` (``"last"``) picks the
  last ones by default -- perplexity is measured on the *first* tokens of the
  same text, so calibration and evaluation do not overlap; ``"first"`` picks
  the first ones.  Fewer ids than ``tokens``: all of them are used (``details``
  records the count);
* ``window`` (512): the ids are cut into windows of this many tokens, each run
  as a fresh sequence (empty KV cache).
"""
from __future__ import annotations

import numpy as np

from plait.ir import Interpreter

from .framework import Option, Pass, positive, PassError, register_pass
from .select import linear_weights

SQSUM, ABSMAX, TOKENS = "act_sqsum", "act_absmax", "act_tokens"



def stat_names(weight: str) -> tuple[str, str]:
    """Weight-store names of the statistics of ``weight``'s linear input."""
    return f"{weight}.{SQSUM}", f"{weight}.{ABSMAX}"


# the options of every pass that runs the model on calibration tokens
CALIBRATION_OPTIONS = {
    "tokens": Option("int", 2048, "how many calibration token ids to run", check=positive),
    "window": Option("int", 512, "tokens per independent sequence", check=positive),
    "take": Option("str", "last", "which ids to use: the first or the last `tokens` of them",
                   choices=("first", "last")),
}


def calibration_ids(ctx, options: dict, pass_name: str) -> np.ndarray:
    """The calibration token ids (int64, 1-D) a pass with :data:`CALIBRATION_OPTIONS`
    runs: the first or last ``options["tokens"]`` of the context's ids."""
    cal = getattr(ctx, "calibration", None)
    if not cal or cal.get("ids") is None:
        raise PassError(f"{pass_name}: no calibration data: the pass needs token ids in the pass context "
                        "(run_recipe(..., calibration={'ids': ids}); `plait compile` and "
                        "benchmarks/perplexity.py tokenize pydoc_data.topics for it, which needs a model with "
                        "a tokenizer)")
    ids = np.asarray(cal["ids"])
    if ids.dtype.kind not in "iu" or ids.ndim != 1:
        raise PassError(f"{pass_name}: calibration ids must be a 1-D integer sequence, "
                        f"got {ids.dtype} of shape {list(ids.shape)}")
    if ids.size == 0:
        raise PassError(f"{pass_name}: calibration ids are empty")
    n = options["tokens"]
    ids = ids[-n:] if options["take"] == "last" else ids[:n]
    return ids.astype(np.int64)


def require_data(graph, weights, pass_name: str) -> None:
    """A PassError unless every param of ``graph`` has data (calibration runs the model)."""
    missing = [p.attrs["weight"] for p in graph.params() if not weights.has_data(p.attrs["weight"])]
    if missing:
        raise PassError(f"{pass_name}: weight {missing[0]!r} has no data (shape-only model?); "
                        f"calibration runs the model and needs real weights")


class _Acc:
    __slots__ = ("sq", "mx", "n")

    def __init__(self, k: int):
        self.sq = np.zeros(k, np.float64)
        self.mx = np.zeros(k, np.float64)
        self.n = 0


@register_pass
class Calibrate(Pass):
    """Record per-feature input-activation statistics of every linear layer."""

    name = "calibrate"
    NEEDS_CALIBRATION = True   # the caller must hand calibration={"ids": ...} (run_recipe)
    OPTIONS = dict(CALIBRATION_OPTIONS)

    def run(self, graph, weights, ctx):
        ids = calibration_ids(ctx, self.options, self.name)
        lw = linear_weights(graph)
        if not lw:
            ctx.details.update({"tokens": 0, "weights": []})
            return False
        if len(graph.inputs) != 1:
            raise PassError(f"calibrate: graph {graph.name!r} has inputs {graph.inputs}; "
                            f"calibration feeds token ids to a single input")
        require_data(graph, weights, self.name)

        target = {lin.name: w for w, item in lw.items() for lin in item.linears}
        acc: dict[str, _Acc] = {}

        def observe(node, args, out):
            w = target.get(node.name)
            if w is None:
                return
            x = args[0]
            x = x.reshape(-1, x.shape[-1]).astype(np.float64)
            a = acc.get(w)
            if a is None:
                a = acc[w] = _Acc(x.shape[1])
            a.sq += np.square(x).sum(axis=0)
            np.maximum(a.mx, np.abs(x).max(axis=0), out=a.mx)
            a.n += x.shape[0]

        interp = Interpreter(graph, weights, observer=observe)
        win = self.options["window"]
        for i in range(0, ids.size, win):
            interp.reset()
            interp.run(ids[None, i:i + win])

        done = []
        for w, item in lw.items():
            a = acc.get(w)
            if a is None:   # a linear the outputs do not depend on (dead code)
                continue
            sq_name, mx_name = stat_names(w)
            weights[sq_name] = a.sq.astype(np.float32)
            weights[mx_name] = a.mx.astype(np.float32)
            for p in item.params:
                p.attrs.update({SQSUM: sq_name, ABSMAX: mx_name, TOKENS: int(a.n)})
            done.append(w)
        ctx.details.update({"tokens": int(ids.size), "windows": -(-ids.size // win), "weights": done})
        ctx.log(f"calibrate: {len(done)} linear weights over {ids.size} tokens")
        return bool(done)


def activation_sqsum(item, weights, pass_name: str) -> np.ndarray:
    """The recorded ``act_sqsum`` [K] of a :class:`~plait.passes.select.LinearWeight`,
    or a PassError telling to run ``calibrate`` first."""
    w = item.weight
    names = {p.attrs.get(SQSUM) for p in item.params}
    name = names.pop() if len(names) == 1 else None
    if name is None or name not in weights or not weights.has_data(name):
        raise PassError(f"{pass_name}: weight {w!r} has no input-activation statistics "
                        f"({w}.{SQSUM}); run the calibrate pass first")
    sq = np.asarray(weights[name])
    k = item.params[0].type.shape[-1]
    if sq.shape != (k,):
        raise PassError(f"{pass_name}: {name!r} has shape {list(sq.shape)}, expected [{k}] "
                        f"(stale statistics? run the calibrate pass again)")
    return sq
