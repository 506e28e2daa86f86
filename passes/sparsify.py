"""N:M structured pruning (the ``sparsify`` pass): magnitude or Wanda.

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
  differs.

Then:

* the store entry ``<weight>`` is replaced by the pruned float matrix
  (dense storage with zeros in place; compression into values + indices is the
  packing pass's job, with :func:`~plait.ir.numerics.dsp.compress_nm`);
* every ``param`` node naming it gets ``SparsitySpec(n, m)`` (``indices=None``:
  mask semantics, see :mod:`plait.ir.types`).

Patterns are the ones the sparse DSP chain executes: ``2:4`` and ``N:16`` with
N in {2, 4, 8}.  Run ``sparsify`` before ``quantize`` (pruning quantized codes
would need a requantization; the pass refuses it).  A weight already carrying
the same pattern is skipped (idempotent); a different pattern is an error.
"""
from __future__ import annotations

import numpy as np

from plait.ir.numerics.dsp import prune_nm
from plait.ir.types import SparsitySpec

from .calibrate import activation_sqsum
from .framework import Option, Pass, PassError, register_pass
from .select import select

PATTERNS = ("2:4", "2:16", "4:16", "8:16")


@register_pass
class Sparsify(Pass):
    """N:M pruning (magnitude or Wanda scores) of linear weights selected by glob."""

    name = "sparsify"
    OPTIONS = {
        "pattern": Option("str", "2:4", "N:M pattern", choices=PATTERNS),
        "include": Option("list[str]", ("*",), "globs on weight names / module paths to prune"),
        "exclude": Option("list[str]", (), "globs on weight names / module paths to keep dense"),
        "method": Option("str", "magnitude", "score: |W| (magnitude) or |W| * ||X_j|| (wanda; "
                         "needs the calibrate pass)", choices=("magnitude", "wanda")),
    }

    def run(self, graph, weights, ctx):
        n, m = (int(v) for v in self.options["pattern"].split(":"))
        selected, skipped = select(graph, self.options["include"], self.options["exclude"], self.name,
                                   explicit_include=self.options["include"] != ["*"])
        done = []
        kept = total = 0
        for item in selected:
            w = item.weight
            t = item.weight_type(self.name)
            if t.sparsity is not None:
                if (t.sparsity.n, t.sparsity.m) == (n, m):
                    skipped[w] = f"already {n}:{m} sparse"
                    continue
                raise PassError(f"sparsify: weight {w!r} is already {t.sparsity.n}:{t.sparsity.m} sparse; "
                                f"cannot re-prune it to {n}:{m}")
            if t.quant is not None:
                raise PassError(f"sparsify: weight {w!r} is already quantized ({t.text()}); "
                                f"run sparsify before quantize")
            reason = item.unfit_reason(t)
            if reason:
                skipped[w] = reason
                continue
            k = item.matrix_shape(t, self.name)[1]
            if k % m:
                raise PassError(f"sparsify: weight {w!r} has K={k}, not a multiple of M={m} "
                                f"(pattern {n}:{m}); exclude it or pick another pattern")
            norms = None
            if self.options["method"] == "wanda":
                norms = np.sqrt(activation_sqsum(item, weights, self.name).astype(np.float64))
            if weights.has_data(w):
                arr = np.asarray(weights[w])
                score = arr if norms is None else np.abs(arr.astype(np.float64)) * norms[None, :]
                mask = prune_nm(score, n, m)
                weights[w] = np.where(mask, arr, arr.dtype.type(0))
                kept += int(np.count_nonzero(weights[w]))
                total += arr.size
            new = t.with_(sparsity=SparsitySpec(n, m))
            for p in item.params:
                p.type = new
            done.append(w)
        ctx.details.update({"pattern": f"{n}:{m}", "method": self.options["method"], "pruned": len(done), "weights": done, "skipped": skipped})
        if total:
            ctx.details["density"] = kept / total
        return bool(done)
