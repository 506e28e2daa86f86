"""Pruning (the ``sparsify`` pass): N:M or unstructured, by magnitude, Wanda or SparseGPT.

For every selected linear weight ``W[N, K]`` (float, not yet quantized) the pass
keeps, in each block of M consecutive inputs of a row, the N entries of largest
score -- :func:`plait.ir.numerics.dsp.prune_nm` applied to the score matrix, the
same block/tie definition the sparse DSP chain's golden model uses -- and zeroes
the rest.  ``method``:

* ``"magnitude"`` (default): score ``|W_ij|``;
* ``"wanda"`` (Sun et al., 2023, "A Simple and Effective Pruning Approach for
  LLMs"): score ``|W_ij| * ||X_j||_2``, the L2 norm of input feature ``j`` over
  the calibration tokens, i.e. ``sqrt`` of the ``<weight>.act_sqsum`` statistics
  the :mod:`calibrate <plait.passes.calibrate>` pass records (an error says to
  run it first if they are missing).  No weight is updated; only the mask
  differs;
* ``"sparsegpt"`` (Frantar & Alistarh, 2023): the mask and an update of the kept
  weights from the Hessian of the weight's inputs, computed layer by layer on the
  calibration tokens (:mod:`plait.passes.obs`, :mod:`plait.passes.sequential`;
  options ``tokens``/``window``/``take``/``damp``).  The mask within each block of
  M is the N largest ``w^2 / [H^-1]_jj`` (the same :func:`prune_nm` block rule).

Then:

* the store entry ``<weight>`` is replaced by the pruned float matrix
  (dense storage with zeros in place; compression into values + indices is the
  packing pass's job, with :func:`~plait.ir.numerics.dsp.compress_nm`);
* every ``param`` node naming it gets ``SparsitySpec(n, m)`` (``indices=None``:
  mask semantics, see :mod:`plait.ir.types`).

Patterns are the ones the sparse DSP chain executes: ``2:4`` and ``N:16`` with
N in {2, 4, 8}; and ``"unstructured"``: the ``sparsity`` fraction of each row
(magnitude, Wanda: the row's smallest scores; SparseGPT: per block of 128
columns) is zeroed, the weight stays dense to the engines (no sparsity type: an
accuracy study, or a start for N:M), and the details record the density.  Run ``sparsify`` before ``quantize`` (pruning quantized codes
would need a requantization; the pass refuses it).  A weight already carrying
the same pattern is skipped (idempotent); a different pattern is an error.
"""
from __future__ import annotations

import numpy as np

from plait.ir.numerics.dsp import prune_nm
from plait.ir.types import SparsitySpec

from .calibrate import CALIBRATION_OPTIONS, activation_sqsum
from .framework import Option, Pass, PassError, PassOptionError, register_pass
from .obs import sparsegpt
from .select import select
from .sequential import run_by_groups

PATTERNS = ("2:4", "2:16", "4:16", "8:16", "unstructured")


def _fraction_ok(v):
    return None if 0 < v < 1 else f"must be in (0, 1), got {v}"


def prune_rows(score: np.ndarray, sparsity: float) -> np.ndarray:
    """Unstructured mask: in every row, False at the ``sparsity`` fraction of smallest scores."""
    r, k = score.shape
    cut = int(k * sparsity)
    mask = np.ones_like(score, dtype=bool)
    if cut:
        idx = np.argsort(score, axis=1, kind="stable")[:, :cut]
        np.put_along_axis(mask, idx, False, axis=1)
    return mask


@register_pass
class Sparsify(Pass):
    """N:M pruning (magnitude or Wanda scores) of linear weights selected by glob."""

    name = "sparsify"
    OPTIONS = {
        "pattern": Option("str", "2:4", "N:M pattern", choices=PATTERNS),
        "include": Option("list[str]", ("*",), "globs on weight names / module paths to prune"),
        "exclude": Option("list[str]", (), "globs on weight names / module paths to keep dense"),
        "method": Option("str", "magnitude", "score: |W| (magnitude), |W| * ||X_j|| (wanda; needs the "
                         "calibrate pass) or sparsegpt (OBS update; needs calibration tokens)",
                         choices=("magnitude", "wanda", "sparsegpt")),
        "sparsity": Option("float", None, "pattern 'unstructured': the fraction of each row to prune",
                           check=_fraction_ok),
        "damp": Option("float", 0.01, "sparsegpt: Hessian damping, a fraction of its mean diagonal",
                       check=_fraction_ok),
        **CALIBRATION_OPTIONS,
    }

    def __init__(self, **options):
        super().__init__(**options)
        self.NEEDS_CALIBRATION = self.options["method"] == "sparsegpt"

    @classmethod
    def check_options(cls, o):
        if (o["pattern"] == "unstructured") != (o["sparsity"] is not None):
            raise PassOptionError(cls.name, "sparsity", "required with pattern 'unstructured'"
                                  if o["sparsity"] is None else f"only used with pattern 'unstructured' "
                                  f"(pattern {o['pattern']!r} fixes the density at N/M)")

    def run(self, graph, weights, ctx):
        unstructured = self.options["pattern"] == "unstructured"
        n, m = (0, 0) if unstructured else (int(v) for v in self.options["pattern"].split(":"))
        frac = self.options["sparsity"]
        selected, skipped = select(graph, self.options["include"], self.options["exclude"], self.name,
                                   explicit_include=self.options["include"] != ["*"])
        work = []
        for item in selected:
            w = item.weight
            t = item.weight_type(self.name)
            if t.sparsity is not None:
                if (t.sparsity.n, t.sparsity.m) == (n, m):
                    skipped[w] = f"already {n}:{m} sparse"
                    continue
                raise PassError(f"sparsify: weight {w!r} is already {t.sparsity.n}:{t.sparsity.m} sparse; "
                                f"cannot re-prune it to {self.options['pattern']}")
            if t.quant is not None:
                raise PassError(f"sparsify: weight {w!r} is already quantized ({t.text()}); "
                                f"run sparsify before quantize")
            reason = item.unfit_reason(t)
            if reason:
                skipped[w] = reason
                continue
            k = item.matrix_shape(t, self.name)[1]
            if m and k % m:
                raise PassError(f"sparsify: weight {w!r} has K={k}, not a multiple of M={m} "
                                f"(pattern {n}:{m}); exclude it or pick another pattern")
            work.append(item)
        method = self.options["method"]
        counts = [0, 0]      # kept, total

        def store(item, pruned):
            weights[item.weight] = pruned
            counts[0] += int(np.count_nonzero(pruned))
            counts[1] += pruned.size
            if m:
                new = item.weight_type(self.name).with_(sparsity=SparsitySpec(n, m))
                for p in item.params:
                    p.type = new

        if method == "sparsegpt" and work:
            losses = {}
            chosen = {it.weight for it in work}

            def process(group):
                h = group.hessian()
                for item in group.items:
                    if item.weight in chosen:
                        arr = np.asarray(weights[item.weight], np.float32)
                        pruned, losses[item.weight] = sparsegpt(arr, h, n=n, m=m, sparsity=frac or 0.0,
                                                                damp=self.options["damp"],
                                                                what=f"sparsify: weight {item.weight!r}")
                        store(item, pruned.astype(arr.dtype))
            ctx.details["calibration"] = run_by_groups(graph, weights, ctx, self.options, work, process, self.name)
            missed = [it.weight for it in work if it.weight not in losses]
            if missed:
                raise PassError(f"sparsify: weight {missed[0]!r} is not reached by the calibration run "
                                f"(dead code?); exclude it or run canonicalize first")
            ctx.details["sparsegpt_loss"] = {w: round(v, 6) for w, v in losses.items()}
        else:
            for item in work:
                w = item.weight
                norms = None
                if method == "wanda":
                    norms = np.sqrt(activation_sqsum(item, weights, self.name).astype(np.float64))
                if weights.has_data(w):
                    arr = np.asarray(weights[w])
                    score = np.abs(arr.astype(np.float64)) * (1.0 if norms is None else norms[None, :])
                    mask = prune_rows(score, frac) if unstructured else prune_nm(score, n, m)
                    store(item, np.where(mask, arr, arr.dtype.type(0)))
                elif m:
                    new = item.weight_type(self.name).with_(sparsity=SparsitySpec(n, m))
                    for p in item.params:
                        p.type = new
                else:
                    raise PassError(f"sparsify: weight {w!r} has no data (shape-only model); unstructured "
                                    f"pruning changes no type, so there is nothing to plan")
        done = [it.weight for it in work]
        ctx.details.update({"pattern": self.options["pattern"], "method": method, "pruned": len(done),
                            "weights": done, "skipped": skipped})
        if counts[1]:
            ctx.details["density"] = counts[0] / counts[1]
        return bool(done)
