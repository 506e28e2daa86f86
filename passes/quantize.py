"""Round-to-nearest per-group weight quantization (the ``quantize`` pass).

For every selected linear weight ``W[N, K]`` (float) the pass calls
:func:`plait.ir.numerics.quantize_rtn` -- the one definition of RTN in plait --
and rewrites the weight in place:

* the store entry ``<weight>`` becomes the ``uint8`` codes ``[N, K]``;
* ``<weight>.scales`` (float32 ``[N, K/G]``) and, for ``asym``, ``<weight>.zeros``
  (int32 ``[N, K/G]``) are added;
* every ``param`` node naming the weight gets the code dtype
  (``u8``/``u4``/``u3``/``u2``/``u1``/``ternary``) and a :class:`QuantSpec` naming
  those arrays.  The interpreter dequantizes such a param on the fly, so the
  float semantics of the graph is "the model with RTN-dequantized weights".

Schemes (see :mod:`plait.ir.numerics.common`): ``sym`` and ``asym`` with 2/3/4/8
bits, ``odd`` (the LUT core's table-symmetrized levels) with 1-4 bits, and
``ternary`` (2-bit codes of {-1, 0, +1}).

N:M-sparse weights (``sparsify`` before ``quantize``) keep their zeros: the pass
checks that every pruned position has signed weight exactly 0 (``sym``, ``asym``
and ``ternary`` always have a zero level; ``odd`` has none and is refused for
sparse weights).  Quantizing before sparsifying is refused by ``sparsify``.

Group size: ``group_size`` must divide K; ``fallback_group_sizes`` lists the
group sizes to try, in order, for a weight whose K it does not divide (e.g.
SmolLM2's K = 576 with G = 128 falls back to 64).  The group size actually used
is recorded in each weight's type.  A weight no listed size divides is an error.

Shape-only stores (planning a model without its weights) get the same types and
``declare``\\ d codes/scales/zeros, so costs reflect the quantized sizes.
Weights already quantized are skipped (the pass is idempotent), so two passes
with different ``include`` globs give mixed precision: the first match wins.
"""
from __future__ import annotations

import numpy as np

from plait.ir.numerics.common import SCHEMES, quantize_rtn, signed_weight
from plait.ir.types import QuantSpec, code_dtype

from .framework import Option, Pass, PassError, PassOptionError, register_pass
from .select import select

BITS = {"sym": (2, 3, 4, 8), "asym": (2, 3, 4, 8), "odd": (1, 2, 3, 4), "ternary": (2,)}


def _group_ok(g: int):
    if g <= 0 or g % 4:
        return f"must be a positive multiple of 4 (the LUT core reads activations 4 at a time), got {g}"
    return None


def _groups_ok(gs):
    for g in gs:
        msg = _group_ok(g)
        if msg:
            return msg
    return None


@register_pass
class Quantize(Pass):
    """RTN per-group weight quantization of linear weights selected by glob."""

    name = "quantize"
    OPTIONS = {
        "bits": Option("int", None, "code width (2/3/4/8 for sym/asym, 1-4 for odd; ternary: 2 or unset)"),
        "scheme": Option("str", "sym", "sym | asym | odd | ternary", choices=SCHEMES),
        "group_size": Option("int", 128, "inputs per quantization group (divides K)", check=_group_ok),
        "fallback_group_sizes": Option("list[int]", (), "group sizes to try when group_size does not divide K",
                                       check=_groups_ok),
        "include": Option("list[str]", ("*",), "globs on weight names / module paths to quantize"),
        "exclude": Option("list[str]", (), "globs on weight names / module paths to leave in float"),
    }

    @classmethod
    def check_options(cls, o):
        scheme, bits = o["scheme"], o["bits"]
        if scheme == "ternary":
            if bits not in (None, 2):
                raise PassOptionError(cls.name, "bits", f"ternary weights are 2-bit codes; got bits={bits}")
            o["bits"] = 2
        elif bits is None:
            raise PassOptionError(cls.name, "bits", f"required option is missing (scheme {scheme!r} "
                                  f"takes {', '.join(map(str, BITS[scheme]))})")
        elif bits not in BITS[scheme]:
            raise PassOptionError(cls.name, "bits", f"scheme {scheme!r} supports "
                                  f"{', '.join(map(str, BITS[scheme]))} bits, got {bits}")

    def _group_for(self, weight: str, k: int) -> int:
        tried = [self.options["group_size"]] + list(self.options["fallback_group_sizes"])
        for g in tried:
            if k % g == 0:
                return g
        raise PassError(f"quantize: weight {weight!r} has K={k}, which no group size in "
                        f"{tried} divides; add a divisor of {k} to fallback_group_sizes or exclude the weight")

    def run(self, graph, weights, ctx):
        o = self.options
        bits, scheme = o["bits"], o["scheme"]
        selected, skipped = select(graph, o["include"], o["exclude"], self.name,
                                   explicit_include=o["include"] != ["*"])
        done = {}
        for item in selected:
            w = item.weight
            t = item.weight_type(self.name)
            if t.quant is not None:
                skipped[w] = "already quantized"
                continue
            reason = item.unfit_reason(t)
            if reason:
                skipped[w] = reason
                continue
            n, k = item.matrix_shape(t, self.name)
            if t.sparsity is not None and scheme == "odd":
                raise PassError(f"quantize: weight {w!r} is {t.sparsity.n}:{t.sparsity.m} sparse, but scheme "
                                f"'odd' has no zero level, so pruned weights would not stay zero; "
                                f"use sym, asym or ternary for sparse weights")
            g = self._group_for(w, k)
            scales, zeros = f"{w}.scales", (f"{w}.zeros" if scheme == "asym" else None)
            for side in (scales, zeros):
                if side is not None and side in weights:
                    raise PassError(f"quantize: weight-store entry {side!r} already exists; "
                                    f"refusing to overwrite it")
            if weights.has_data(w):
                arr = weights[w]
                qw = quantize_rtn(arr, bits, g, scheme)
                if t.sparsity is not None:
                    pruned = np.asarray(arr) == 0
                    bad = int(np.count_nonzero(signed_weight(qw)[pruned]))
                    if bad:
                        raise PassError(f"quantize: {bad} pruned weights of {w!r} did not quantize to 0")
                weights[w] = qw.codes
                weights[scales] = qw.scales
                if zeros is not None:
                    weights[zeros] = qw.zeros
            else:
                weights.declare(w, (n, k), "uint8")
                weights.declare(scales, (n, k // g), "float32")
                if zeros is not None:
                    weights.declare(zeros, (n, k // g), "int32")
            new = t.with_(dtype=code_dtype(bits, scheme), quant=QuantSpec(bits, g, scheme, scales, zeros))
            for p in item.params:
                p.type = new
            done[w] = g
        ctx.details.update({
            "scheme": scheme, "bits": bits,
            "quantized": len(done),
            "group_sizes": {str(g): sum(1 for v in done.values() if v == g) for g in sorted(set(done.values()))},
            "weights": list(done),
            "skipped": skipped,
        })
        return bool(done)
