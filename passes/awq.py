"""The ``awq`` pass: activation-aware weight scales, searched per layer, folded offline.

AWQ (Lin et al., 2024, "AWQ: Activation-aware Weight Quantization for LLM
Compression and Acceleration") protects the weight columns that meet large
activations: input feature ``j`` of a group of linears reading the same value
is divided by ``s_j`` and their weight column ``j`` multiplied by it (the float
function is unchanged), so the salient columns get finer quantization steps.
The scales are

    ``s_j = mean_t |X_tj| ^ alpha``, normalised by ``sqrt(max s * min s)``,

and ``alpha`` is searched on a grid over ``[0, 1]`` for each group of linears,
minimising the output error of the quantized layers on the calibration inputs,
``sum_linears tr((W - Q(W s) / s) H (W - Q(W s) / s)^T)``, with ``Q`` the RTN
quantizer of the format the ``quantize`` pass will use (``bits``, ``scheme``,
``group_size``: give the same values to both passes).  ``alpha = 0`` (no
scaling) is on the grid, so the chosen scales never make that error worse.

The inputs ``X`` come from the layer-by-layer engine
(:mod:`plait.passes.sequential`), and the division by ``s`` is folded into the
op producing the value exactly as the ``smooth`` pass does it (RMSNorm weight,
the up projection under SwiGLU, the v projection under attention: one scale per
kv channel), so the graph and the engines are unchanged.  Run it before
``quantize`` (RTN or GPTQ); the weights stay float.  AWQ's weight-clipping search
is not done here.
"""
from __future__ import annotations

import numpy as np

from plait.ir.numerics.common import dequantize, quantize_rtn

from .calibrate import CALIBRATION_OPTIONS
from .framework import Option, PassError, positive, register_pass
from .obs import hessian_error
from .quantize import FORMAT_OPTIONS, check_format_options, group_for
from .select import linear_weights, select
from .sequential import run_by_groups
from .smooth import S_MAX, S_MIN, Smooth


@register_pass
class Awq(Smooth):
    """AWQ: per-layer searched activation-aware scales, folded offline (run before quantize)."""

    name = "awq"
    NEEDS_CALIBRATION = True
    OPTIONS = {
        **FORMAT_OPTIONS,
        "grid": Option("int", 20, "alpha is searched on grid + 1 points of [0, 1]", check=positive),
        **CALIBRATION_OPTIONS,
        "include": Option("list[str]", ("*",), "globs on linear weight names / module paths"),
        "exclude": Option("list[str]", (), "globs on linear weight names / module paths to leave alone"),
    }

    @classmethod
    def check_options(cls, o):
        check_format_options(cls, o)

    def run(self, graph, weights, ctx):
        o = self.options
        selected, skipped = select(graph, o["include"], o["exclude"], self.name,
                                   explicit_include=o["include"] != ["*"])
        chosen = {it.weight for it in selected}
        readers: dict[str, dict] = {}     # value -> every linear weight reading it
        for lw in linear_weights(graph).values():
            for lin in lw.linears:
                readers.setdefault(lin.inputs[0], {})[lw.weight] = lw
        done, alphas = [], {}

        def process(group):
            items = {it.weight: it for it in group.items}
            # every reader of the value must be selected for its producer to absorb the scales
            why = self._unfit(graph, weights, group.value, readers[group.value], chosen)
            if why:
                for w in items:
                    skipped.setdefault(w, why)
                return
            h = group.hessian()
            mean = np.abs(group.x.astype(np.float64)).mean(axis=0)
            prod = graph.node(group.value)
            if prod.op == "attention":   # one scale per kv channel: the heads sharing it
                a = prod.attrs
                hkv, rep, hd = a["n_kv_heads"], a["n_heads"] // a["n_kv_heads"], a["head_dim"]
                mean = np.repeat(mean.reshape(hkv, rep, hd).max(axis=1), rep, axis=0).reshape(-1)
            ws = {w: np.asarray(weights[w], np.float32) for w in items}
            gs = {w: group_for(self.name, w, ws[w].shape[1], o["group_size"], o["fallback_group_sizes"])
                  for w in items}
            best = (None, 0.0, None)
            for step in range(o["grid"] + 1):
                alpha = step / o["grid"]
                s = self._awq_scales(mean, alpha)
                err = 0.0
                for w, arr in ws.items():
                    q = dequantize(quantize_rtn(arr * s[None, :], o["bits"], gs[w], o["scheme"]))
                    err += hessian_error(arr, q / s[None, :], h)
                if best[0] is None or err < best[0]:
                    best = (err, alpha, s)
            err, alpha, s = best
            alphas[group.value] = {"alpha": alpha, "error": float(f"{err:.6g}"), "weights": list(items)}
            if alpha == 0.0:
                return
            self._fold(graph, weights, group.value, s)
            for w, it in items.items():
                weights[w] = (ws[w] * s[None, :].astype(np.float32)).astype(np.float32)
                self._rescale_stats(weights, it, s)
            done.extend(items)

        if selected:
            ctx.details["calibration"] = run_by_groups(graph, weights, ctx, o, selected, process, self.name)
        ctx.details.update({"scaled": done, "alphas": alphas, "skipped": skipped})
        return bool(done)

    @staticmethod
    def _awq_scales(mean: np.ndarray, alpha: float) -> np.ndarray:
        s = np.power(np.maximum(mean, 1e-8), alpha)
        s = s / np.sqrt(s.max() * s.min())
        if not np.all(np.isfinite(s)):
            raise PassError("awq: non-finite scales (non-finite calibration activations?)")
        return np.clip(s, S_MIN, S_MAX)
