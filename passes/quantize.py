"""Per-group weight quantization (the ``quantize`` pass): RTN or GPTQ.

For every selected linear weight ``W[N, K]`` (float) the pass computes codes on
the per-group grid of :mod:`plait.ir.numerics.common` (``group_grid`` /
``round_to_grid``, the one definition of the grid and of rounding), with
``method``:

* ``"rtn"`` (default): round to nearest, :func:`plait.ir.numerics.quantize_rtn`;
* ``"gptq"``: GPTQ (:mod:`plait.passes.obs`) on the Hessian of the weight's
  inputs over the calibration tokens, computed layer by layer
  (:mod:`plait.passes.sequential`; options ``tokens``/``window``/``take`` as for
  ``calibrate``, plus ``damp``, ``act_order`` and ``clip_search``, on by default:
  each group row's range shrunk by the factor with the least Hessian-weighted
  rounding error, which helps most at 2-3 bits).  The codes, scales and zeros
  have the same format as RTN's, so every later pass and engine is unchanged.

and rewrites the weight in place:

* the store entry ``<weight>`` becomes the ``uint8`` codes ``[N, K]``;
* ``<weight>.scales`` (float32 ``[N, K/G]``) and, for ``asym``, ``<weight>.zeros``
  (int32 ``[N, K/G]``) are added;
* every ``param`` node naming the weight gets the code dtype
  (``u8``/``u4``/``u3``/``u2``/``u1``/``ternary``) and a :class:`QuantSpec` naming
  those arrays.  The interpreter dequantizes such a param on the fly, so the
  float semantics of the graph is "the model with RTN-dequantized weights".

Schemes and the bits each takes come from one table,
:data:`plait.ir.numerics.SCHEME_BITS`: ``sym`` 2/3/4/8, ``asym`` 1/2/3/4/8,
``odd`` (the LUT core's table-symmetrized levels) 1-4, ``ternary`` (2-bit codes
of {-1, 0, +1}).

Mixed precision: with ``plan = true``, a weight whose params carry a ``plan_bits``
attribute (written by the ``mixed_precision`` pass) is quantized with those bits;
``bits`` is then only the width of weights outside the plan (and may be omitted
if every selected weight has one).

N:M-sparse weights (``sparsify`` before ``quantize``) keep their zeros (GPTQ
keeps them at 0 while it updates the others: after ``sparsify method=sparsegpt``
this is joint SparseGPT + GPTQ): the pass checks that every pruned position has
signed weight exactly 0 (``sym``, ``asym``
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

from plait.ir.numerics.common import SCHEME_BITS, SCHEMES, dequantize, quantize_rtn, signed_weight
from plait.ir.types import QuantSpec, code_dtype

from .calibrate import CALIBRATION_OPTIONS
from .framework import Option, Pass, PassError, PassOptionError, register_pass
from .obs import gptq, hessian_error
from .select import select
from .sequential import run_by_groups

PLAN_BITS = "plan_bits"      # param attribute: this weight's bits in a mixed-precision plan


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


def _damp_ok(v):
    return None if 0 < v < 1 else f"must be in (0, 1), got {v}"


def check_format_options(cls, o, bits_key: str = "bits", allow_missing: bool = False):
    """The ``scheme``/``bits`` cross-check of a quantizing pass, from :data:`SCHEME_BITS`."""
    scheme, bits = o["scheme"], o[bits_key]
    if scheme == "ternary":
        if bits not in (None, 2):
            raise PassOptionError(cls.name, bits_key, f"ternary weights are 2-bit codes; got bits={bits}")
        o[bits_key] = 2
    elif bits is None:
        if not allow_missing:
            raise PassOptionError(cls.name, bits_key, f"required option is missing (scheme {scheme!r} "
                                  f"takes {', '.join(map(str, SCHEME_BITS[scheme]))})")
    elif bits not in SCHEME_BITS[scheme]:
        raise PassOptionError(cls.name, bits_key, f"scheme {scheme!r} supports "
                              f"{', '.join(map(str, SCHEME_BITS[scheme]))} bits, got {bits}")


def group_for(pass_name: str, weight: str, k: int, group_size: int, fallbacks) -> int:
    """The first of ``group_size`` and ``fallbacks`` that divides ``K``."""
    tried = [group_size] + list(fallbacks)
    for g in tried:
        if k % g == 0:
            return g
    raise PassError(f"{pass_name}: weight {weight!r} has K={k}, which no group size in "
                    f"{tried} divides; add a divisor of {k} to fallback_group_sizes or exclude the weight")


FORMAT_OPTIONS = {
    "bits": Option("int", None, "code width (see plait.ir.numerics.SCHEME_BITS: 2/3/4/8 sym, 1/2/3/4/8 asym, "
                   "1-4 odd; ternary: 2 or unset)"),
    "scheme": Option("str", "sym", "sym | asym | odd | ternary", choices=SCHEMES),
    "group_size": Option("int", 128, "inputs per quantization group (divides K)", check=_group_ok),
    "fallback_group_sizes": Option("list[int]", (), "group sizes to try when group_size does not divide K",
                                   check=_groups_ok),
}


@register_pass
class Quantize(Pass):
    """Per-group weight quantization (RTN or GPTQ) of linear weights selected by glob."""

    name = "quantize"
    OPTIONS = {
        **FORMAT_OPTIONS,
        "plan": Option("bool", False, "take each weight's bits from the mixed_precision pass's plan "
                       "(`bits`, if given, for weights outside it)"),
        "method": Option("str", "rtn", "rtn (round to nearest) | gptq (needs calibration tokens)",
                         choices=("rtn", "gptq")),
        "act_order": Option("bool", False, "gptq: visit inputs by decreasing Hessian diagonal"),
        "damp": Option("float", 0.01, "gptq: Hessian damping, a fraction of its mean diagonal", check=_damp_ok),
        "clip_search": Option("bool", True, "gptq: per row and group, the grid of the range shrunk by the "
                              "factor (1 .. 0.5) with the least Hessian-weighted rounding error"),
        **CALIBRATION_OPTIONS,
        "include": Option("list[str]", ("*",), "globs on weight names / module paths to quantize"),
        "exclude": Option("list[str]", (), "globs on weight names / module paths to leave in float"),
    }

    def __init__(self, **options):
        super().__init__(**options)
        self.NEEDS_CALIBRATION = self.options["method"] == "gptq"

    @classmethod
    def check_options(cls, o):
        check_format_options(cls, o, allow_missing=o["plan"])
        if o["method"] == "rtn":
            for key in ("act_order", "damp", "clip_search"):
                if o[key] != cls.OPTIONS[key].default:
                    raise PassOptionError(cls.name, key, "only used by method 'gptq'")

    def run(self, graph, weights, ctx):
        o = self.options
        scheme = o["scheme"]
        selected, skipped = select(graph, o["include"], o["exclude"], self.name,
                                   explicit_include=o["include"] != ["*"])
        work = {}      # weight -> (item, type, group size, bits)
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
            bits = self._bits_for(item)
            if t.sparsity is not None and scheme == "odd":
                raise PassError(f"quantize: weight {w!r} is {t.sparsity.n}:{t.sparsity.m} sparse, but scheme "
                                f"'odd' has no zero level, so pruned weights would not stay zero; "
                                f"use sym, asym or ternary for sparse weights")
            g = group_for(self.name, w, k, o["group_size"], o["fallback_group_sizes"])
            for side in (f"{w}.scales", f"{w}.zeros" if scheme == "asym" else None):
                if side is not None and side in weights:
                    raise PassError(f"quantize: weight-store entry {side!r} already exists; "
                                    f"refusing to overwrite it")
            work[w] = (item, t, g, bits)
        losses, kept_rtn = {}, []
        if o["method"] == "gptq" and work:
            def process(group):
                h = group.hessian()
                for item in group.items:
                    if item.weight not in work:
                        continue
                    _, t, g, bits = work[item.weight]
                    arr = np.asarray(weights[item.weight], np.float32)
                    mask = (arr != 0) if t.sparsity is not None else None
                    qw, _ = gptq(arr, h, bits, g, scheme, damp=o["damp"], act_order=o["act_order"],
                                 mask=mask, clip_search=o["clip_search"],
                                 what=f"quantize: weight {item.weight!r}")
                    rtn = quantize_rtn(arr, bits, g, scheme)
                    errs = (hessian_error(arr, dequantize(qw), h), hessian_error(arr, dequantize(rtn), h))
                    losses[item.weight] = errs
                    if errs[1] < errs[0]:   # coarse grids (1 bit): keep the better
                        qw = rtn
                        kept_rtn.append(item.weight)
                    self._store(weights, item, t, g, qw)
            ctx.details["calibration"] = run_by_groups(graph, weights, ctx, o, [v[0] for v in work.values()],
                                                       process, self.name)
            missed = [w for w in work if w not in losses]
            if missed:
                raise PassError(f"quantize: weight {missed[0]!r} is not reached by the calibration run "
                                f"(dead code?); exclude it or run canonicalize first")
        else:
            for w, (item, t, g, bits) in work.items():
                qw = quantize_rtn(weights[w], bits, g, scheme) if weights.has_data(w) else None
                self._store(weights, item, t, g, qw, bits)
        ctx.details.update({
            "method": o["method"], "scheme": scheme, "bits": o["bits"],
            "quantized": len(work),
            "group_sizes": {str(g): sum(1 for v in work.values() if v[2] == g)
                            for g in sorted({v[2] for v in work.values()})},
            "weights": list(work),
            "skipped": skipped,
        })
        if o["plan"]:
            ctx.details["plan_bits"] = {w: v[3] for w, v in work.items()}
        if losses:
            # per weight: (GPTQ, RTN) output error on the calibration inputs, tr(dW H dW^T)
            ctx.details["hessian_error"] = {w: [float(f"{e:.6g}") for e in v] for w, v in losses.items()}
            ctx.details["kept_rtn"] = kept_rtn
        return bool(work)

    def _bits_for(self, item) -> int:
        plans = {p.attrs[PLAN_BITS] for p in item.params if PLAN_BITS in p.attrs} if self.options["plan"] else set()
        if len(plans) > 1:
            raise PassError(f"quantize: params naming weight {item.weight!r} disagree on {PLAN_BITS}: {sorted(plans)}")
        bits = plans.pop() if plans else self.options["bits"]
        scheme = self.options["scheme"]
        if bits is None:
            raise PassOptionError(self.name, "bits", f"required option is missing: weight {item.weight!r} "
                                  f"has no mixed-precision plan (scheme {scheme!r} takes "
                                  f"{', '.join(map(str, SCHEME_BITS[scheme]))})")
        if scheme != "ternary" and bits not in SCHEME_BITS[scheme]:
            raise PassError(f"quantize: the mixed-precision plan gives weight {item.weight!r} {bits} bits, "
                            f"which scheme {scheme!r} does not support")
        return 2 if scheme == "ternary" else bits

    def _store(self, weights, item, t, g, qw, bits=None) -> None:
        """Write one weight's codes/scales/zeros (or declare them: shape-only) and retype its params."""
        w, scheme = item.weight, self.options["scheme"]
        n, k = item.matrix_shape(t, self.name)
        scales, zeros = f"{w}.scales", (f"{w}.zeros" if scheme == "asym" else None)
        if qw is not None:
            if t.sparsity is not None:
                pruned = np.asarray(weights[w]) == 0
                bad = int(np.count_nonzero(signed_weight(qw)[pruned]))
                if bad:
                    raise PassError(f"quantize: {bad} pruned weights of {w!r} did not quantize to 0")
            weights[w] = qw.codes
            weights[scales] = qw.scales
            if zeros is not None:
                weights[zeros] = qw.zeros
            bits = qw.bits
        else:
            weights.declare(w, (n, k), "uint8")
            weights.declare(scales, (n, k // g), "float32")
            if zeros is not None:
                weights.declare(zeros, (n, k // g), "int32")
        new = t.with_(dtype=code_dtype(bits, scheme), quant=QuantSpec(bits, g, scheme, scales, zeros))
        for p in item.params:
            p.type = new
