"""The ``mixed_precision`` pass: a per-layer choice of weight bits under a bit budget.

Not every linear is equally hurt by fewer bits.  The pass measures, for every
selected linear weight ``W`` and every candidate width ``b`` in ``choices``, the
output error of quantizing it alone,

    ``E_W(b) = tr((W - Q_b(W)) H (W - Q_b(W))^T)``  (``||(W - Q_b(W)) X^T||^2`` up to ``2/T``)

on its calibration inputs ``X`` (Hessian ``H``; layer by layer,
:mod:`plait.passes.sequential`; ``Q_b`` is RTN of the pass's ``scheme`` and
``group_size``), then picks the widths that minimise ``sum_W E_W(b_W)`` under
the budget ``sum_W b_W n_W <= target_bits * sum_W n_W`` (``n_W``: its number of
weights): start every weight at the narrowest width and repeatedly widen the
weight with the largest error drop per added bit that still fits (greedy on the
Lagrangian, optimal when the error curves are convex, which per-group RTN's
nearly are).

The plan is written into the graph -- every param of a planned weight gets the
attribute ``plan_bits`` -- so it is stored in the artifact, shown by
``plait inspect`` and used by a later ``quantize`` pass with ``plan = true``
(RTN or GPTQ).  The pass details hold the plan, the measured errors and the
average width; the log prints the plan.  Weights stay float here.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from plait.ir.numerics.common import SCHEME_BITS, dequantize, quantize_rtn

from .calibrate import CALIBRATION_OPTIONS
from .framework import Option, Pass, PassError, PassOptionError, register_pass
from .obs import hessian_error
from .quantize import FORMAT_OPTIONS, PLAN_BITS, group_for
from .select import select
from .sequential import run_by_groups


def _target_ok(v):
    return None if 1 <= v <= 8 else f"must be in [1, 8], got {v}"


def allocate(errors: dict[str, dict[int, float]], sizes: dict[str, int], target: float) -> dict[str, int]:
    """Greedy bit allocation: ``{weight: bits}`` minimising the summed error with
    ``sum bits * size <= target * sum size``.  ``errors[w][b]``: the error at ``b`` bits."""
    total = sum(sizes.values())
    budget = target * total
    plan = {w: min(e) for w, e in errors.items()}
    used = sum(plan[w] * sizes[w] for w in plan)
    if used > budget + 1e-9:
        raise PassError(f"mixed_precision: target {target} bits is below the narrowest choice "
                        f"({min(min(e) for e in errors.values())} bits)")
    while True:
        best = None
        for w, e in errors.items():
            wider = sorted(b for b in e if b > plan[w])
            for b in wider:   # not only the next width: a curve may be flat then steep
                cost = (b - plan[w]) * sizes[w]
                if used + cost > budget + 1e-9:
                    continue
                gain = (e[plan[w]] - e[b]) / cost
                if best is None or gain > best[0]:
                    best = (gain, w, b, cost)
        if best is None or best[0] <= 0:
            return plan
        _, w, b, cost = best
        plan[w] = b
        used += cost


@register_pass
class MixedPrecision(Pass):
    """Choose each linear weight's bits from measured sensitivity under an average-bits budget."""

    name = "mixed_precision"
    NEEDS_CALIBRATION = True
    OPTIONS = {
        "target_bits": Option("float", 4.0, "average code bits per weight over the selected weights",
                              check=_target_ok),
        "choices": Option("list[int]", (2, 3, 4, 8), "candidate widths"),
        **{k: v for k, v in FORMAT_OPTIONS.items() if k != "bits"},
        **CALIBRATION_OPTIONS,
        "include": Option("list[str]", ("*",), "globs on linear weight names / module paths"),
        "exclude": Option("list[str]", (), "globs on linear weight names / module paths to leave alone"),
    }

    @classmethod
    def check_options(cls, o):
        allowed = SCHEME_BITS[o["scheme"]]
        if not o["choices"] or len(set(o["choices"])) != len(o["choices"]):
            raise PassOptionError(cls.name, "choices", f"needs distinct widths, got {o['choices']}")
        bad = [b for b in o["choices"] if b not in allowed]
        if bad:
            raise PassOptionError(cls.name, "choices", f"scheme {o['scheme']!r} supports "
                                  f"{', '.join(map(str, allowed))} bits, got {bad[0]}")
        if not min(o["choices"]) <= o["target_bits"] <= max(o["choices"]):
            raise PassOptionError(cls.name, "target_bits", f"must lie between the narrowest and the widest "
                                  f"choice ({min(o['choices'])}..{max(o['choices'])}), got {o['target_bits']}")

    def run(self, graph, weights, ctx):
        o = self.options
        selected, skipped = select(graph, o["include"], o["exclude"], self.name,
                                   explicit_include=o["include"] != ["*"])
        work = []
        for item in selected:
            t = item.weight_type(self.name)
            reason = item.unfit_reason(t) or ("already quantized" if t.quant is not None else None)
            if reason:
                skipped[item.weight] = reason
                continue
            work.append(item)
        errors: dict[str, dict[int, float]] = {}
        sizes = {}

        def process(group):
            h = group.hessian()
            for item in group.items:
                arr = np.asarray(weights[item.weight], np.float32)
                g = group_for(self.name, item.weight, arr.shape[1], o["group_size"], o["fallback_group_sizes"])
                errors[item.weight] = {b: hessian_error(arr, dequantize(quantize_rtn(arr, b, g, o["scheme"])), h)
                                       for b in o["choices"]}
                sizes[item.weight] = arr.size

        if not work:
            ctx.details.update({"plan": {}, "skipped": skipped})
            return False
        ctx.details["calibration"] = run_by_groups(graph, weights, ctx, o, work, process, self.name)
        missed = [it.weight for it in work if it.weight not in errors]
        if missed:
            raise PassError(f"mixed_precision: weight {missed[0]!r} is not reached by the calibration run "
                            f"(dead code?); exclude it")
        plan = allocate(errors, sizes, o["target_bits"])
        for item in work:
            for p in item.params:
                p.attrs[PLAN_BITS] = plan[item.weight]
        avg = sum(plan[w] * sizes[w] for w in plan) / sum(sizes.values())
        counts = Counter(plan.values())
        ctx.log(f"mixed_precision: {len(plan)} weights, average {avg:.3f} bits (target {o['target_bits']}): "
                + ", ".join(f"{counts[b]} at {b} bits" for b in sorted(counts)))
        ctx.details.update({
            "target_bits": o["target_bits"], "average_bits": avg, "plan": plan,
            "errors": {w: {str(b): float(f"{e:.6g}") for b, e in v.items()} for w, v in errors.items()},
            "skipped": skipped,
        })
        return True
