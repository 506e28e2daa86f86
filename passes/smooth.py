"""The ``smooth`` pass: SmoothQuant migration of activation outliers into the weights.

int8 activations with a scale per token lose the small features of a row that has
an outlier channel (SmolLM2's SwiGLU outputs reach ~2,800 where most features are
below 1).  SmoothQuant (Xiao et al., 2023) divides input feature ``j`` of a linear
by ``s_j`` and multiplies weight column ``j`` by ``s_j`` -- the float function is
unchanged -- with

    ``s_j = max|X_j|^alpha / max|W_:,j|^(1 - alpha)``

(``max|X_j|``: the ``calibrate`` pass's ``act_absmax``; ``max|W_:,j|`` over every
linear reading the value), clamped to ``[1e-4, 1e4]`` and 1 where a feature was
never active.  The division by ``s`` is folded *offline* into the op that produces
the value, so no op is added to the graph and the engines run unchanged:

* ``rmsnorm(x, g)`` (attention and MLP norms): ``g_j /= s_j``;
* ``swiglu(gate, up)`` (the down projection's input): the up projection's row
  ``j`` (and bias) ``/= s_j`` -- ``silu(gate) * up`` is linear in ``up``;
* ``attention(q, k, v)`` (the output projection's input): output channel
  ``(h, d)`` is linear in ``v`` channel ``(h // rep, d)``, so ``s`` is taken per kv
  channel (the max over the query heads sharing it), the v projection's row
  ``/= s`` and the output projection's columns of every head of the group ``*= s``.

A value produced otherwise, a weight that is already quantized or sparse, or a
producer weight shared with another op is left alone, with the reason in the
pass details.  The calibration statistics of the smoothed linears are rescaled
(``act_absmax / s``, ``act_sqsum / s^2``) so later passes (Wanda, static
``quantize_act``) see the smoothed inputs.  Run it after ``calibrate`` and before
``sparsify``/``quantize``.  The tied LM head is never smoothed (its weight is also
the embedding table).
"""
from __future__ import annotations

import numpy as np

from .calibrate import ABSMAX, SQSUM
from .framework import Option, Pass, PassError, register_pass
from .select import linear_weights, select

S_MIN, S_MAX = 1e-4, 1e4


def _alpha_ok(v):
    return None if 0.0 <= v <= 1.0 else f"must be in [0, 1], got {v}"


@register_pass
class Smooth(Pass):
    """SmoothQuant: migrate activation outliers into the weights, folded offline."""

    name = "smooth"
    OPTIONS = {
        "alpha": Option("float", 0.5, "migration strength: 0 keeps the activations, 1 moves all to the weights",
                        check=_alpha_ok),
        "include": Option("list[str]", ("*",), "globs on linear weight names / module paths"),
        "exclude": Option("list[str]", (), "globs on linear weight names / module paths to leave alone"),
    }

    def run(self, graph, weights, ctx):
        selected, skipped = select(graph, self.options["include"], self.options["exclude"], self.name,
                                   explicit_include=self.options["include"] != ["*"])
        chosen = {item.weight for item in selected}
        lw = linear_weights(graph)
        # the values read by linears, with every linear weight reading each
        by_value: dict[str, list] = {}
        for item in lw.values():
            for lin in item.linears:
                by_value.setdefault(lin.inputs[0], []).append((lin, item))
        done = []
        for value, readers in by_value.items():
            items = {it.weight: it for _, it in readers}
            why = self._unfit(graph, weights, value, items, chosen)
            if why:
                for w in items:
                    skipped.setdefault(w, why)
                continue
            s = self._scales(graph, weights, value, items)
            if s is None:
                for w in items:
                    skipped.setdefault(w, "no activation statistics (run the calibrate pass first)")
                continue
            self._fold(graph, weights, value, s)
            for it in items.values():
                w = np.asarray(weights[it.weight], np.float32)
                weights[it.weight] = (w * s[None, :].astype(np.float32)).astype(np.float32)
                self._rescale_stats(weights, it, s)
            done.extend(items)
        ctx.details.update({"alpha": self.options["alpha"], "smoothed": done, "skipped": skipped})
        return bool(done)

    # ---------------------------------------------------------------- checks
    def _unfit(self, graph, weights, value, items, chosen):
        if not set(items) <= chosen:
            return "a linear reading the same input is not selected"
        for it in items.values():
            t = it.weight_type(self.name)
            reason = it.unfit_reason(t)
            if reason:
                return reason
            if t.sparsity is not None:
                return "already sparse (smooth before sparsify)"
            if not weights.has_data(it.weight):
                return "no weight data (shape-only model)"
        prod = graph.node(value)
        if prod.op == "rmsnorm":
            return self._sole_use(graph, prod.inputs[1], "the RMSNorm weight")
        if prod.op == "swiglu":
            up = graph.node(prod.inputs[1])
            if up.op != "linear":
                return "the SwiGLU 'up' input is not a linear"
            return self._sole_use(graph, up.inputs[1], "the up projection weight", linear=up)
        if prod.op == "attention":
            v = graph.node(prod.inputs[2])
            if v.op != "linear":
                return "the attention's v input is not a linear"
            return self._sole_use(graph, v.inputs[1], "the v projection weight", linear=v)
        return f"its input is produced by {prod.op!r}, which cannot absorb the scales"

    @staticmethod
    def _sole_use(graph, param_name, what, linear=None):
        p = graph.node(param_name)
        if p.op != "param":
            return f"{what} is not a param"
        w = p.attrs["weight"]
        for q in graph.params():
            if q.attrs["weight"] != w:
                continue
            users = graph.users(q.name)
            if q.name != param_name or len(users) != 1 or (linear is not None and users[0] != linear.name):
                return f"{what} {w!r} is shared with another op"
        if p.type.quant is not None or p.type.sparsity is not None:
            return f"{what} {w!r} is already compressed"
        return None

    # ---------------------------------------------------------------- scales
    def _scales(self, graph, weights, value, items):
        amax = None
        for it in items.values():
            names = {p.attrs.get(ABSMAX) for p in it.params}
            name = names.pop() if len(names) == 1 else None
            if name is None or not weights.has_data(name):
                return None
            a = np.asarray(weights[name], np.float64)
            amax = a if amax is None else np.maximum(amax, a)
        wmax = np.max([np.abs(np.asarray(weights[w], np.float64)).max(axis=0) for w in items], axis=0)
        prod = graph.node(value)
        if prod.op == "attention":       # one scale per kv channel: max over the heads sharing it
            a = prod.attrs
            h, hkv, hd = a["n_heads"], a["n_kv_heads"], a["head_dim"]
            rep = h // hkv
            amax = np.repeat(amax.reshape(hkv, rep, hd).max(axis=1), rep, axis=0).reshape(-1)
            wmax = np.repeat(wmax.reshape(hkv, rep, hd).max(axis=1), rep, axis=0).reshape(-1)
        alpha = self.options["alpha"]
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.power(amax, alpha) / np.power(wmax, 1.0 - alpha)
        s = np.where((amax > 0) & (wmax > 0) & np.isfinite(s), s, 1.0)
        return np.clip(s, S_MIN, S_MAX)

    @staticmethod
    def _fold(graph, weights, value, s):
        prod = graph.node(value)
        if prod.op == "rmsnorm":
            g = graph.node(prod.inputs[1]).attrs["weight"]
            weights[g] = (np.asarray(weights[g], np.float64) / s).astype(np.float32)
            return
        if prod.op == "swiglu":
            lin, div = graph.node(prod.inputs[1]), s
        else:                             # attention: v rows, one scale per kv channel
            a = prod.attrs
            rep = a["n_heads"] // a["n_kv_heads"]
            lin = graph.node(prod.inputs[2])
            div = s.reshape(a["n_kv_heads"], rep, a["head_dim"])[:, 0, :].reshape(-1)
        w = graph.node(lin.inputs[1]).attrs["weight"]
        weights[w] = (np.asarray(weights[w], np.float64) / div[:, None]).astype(np.float32)
        if len(lin.inputs) == 3:
            b = graph.node(lin.inputs[2]).attrs["weight"]
            weights[b] = (np.asarray(weights[b], np.float64) / div).astype(np.float32)

    @staticmethod
    def _rescale_stats(weights, item, s):
        for key, power in ((ABSMAX, 1), (SQSUM, 2)):
            names = {p.attrs.get(key) for p in item.params} - {None}
            for name in names:
                if weights.has_data(name):
                    weights[name] = (np.asarray(weights[name], np.float64) / s ** power).astype(np.float32)
        if not item.params:
            raise PassError(f"smooth: weight {item.weight!r} has no param")
