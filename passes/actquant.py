"""The ``quantize_act`` pass: int8 activations at the input of every linear.

Marks the value each selected linear reads with an
:class:`~plait.ir.types.ActSpec`, printed in the graph as ``act(i8, dynamic)`` or
``act(i8, static, m=.., e=..)``.  Float mode ignores the spec (it is the accuracy
reference); exact mode (:mod:`plait.ir.exact`) quantizes the value to int8 with it
(:mod:`plait.ir.numerics.act`):

* ``mode = "dynamic"`` (default): a scale per token from the row's absolute
  maximum, computed in the contract's integers at run time;
* ``mode = "static"``: one per-tensor scale fixed now from the ``calibrate``
  pass's ``act_absmax`` statistics of the linear's input (the maximum over its
  features, times ``margin``); values beyond it saturate.  Without statistics the
  pass says to run ``calibrate`` first.

Selection: ``include``/``exclude`` globs on linear weight names and module paths
(as in ``quantize``); the LM head is included by default (its weight may stay
float: exact mode runs it as W8).  A value read by several linears (q, k, v share
the attention norm's output) gets one spec; two different specs for one value are
an error naming it.

The attention nodes get the attribute ``"kv_cache": "i8, per token and kv head,
dynamic"``: exact mode keeps K and V as int8 with a scale per (token, kv head)
(:class:`plait.ir.numerics.sfu.KVCache`).
"""
from __future__ import annotations

import numpy as np

from plait.ir.numerics.act import static_scale
from plait.ir.types import ACT_MODES, ActSpec

from .calibrate import ABSMAX
from .framework import Option, Pass, PassError, register_pass
from .select import select

KV_CACHE = "i8, per token and kv head, dynamic"


def _margin_ok(v):
    return None if v > 0 else f"must be positive, got {v}"


@register_pass
class QuantizeAct(Pass):
    """int8 activation quantization (per-token dynamic or per-tensor static) of linear inputs."""

    name = "quantize_act"
    OPTIONS = {
        "mode": Option("str", "dynamic", "dynamic (per-token scale) | static (calibrated per-tensor scale)",
                       choices=ACT_MODES),
        "margin": Option("float", 1.0, "static mode: scale = margin * calibrated absmax / 127",
                         check=_margin_ok),
        "include": Option("list[str]", ("*",), "globs on linear weight names / module paths"),
        "exclude": Option("list[str]", (), "globs on linear weight names / module paths to skip"),
    }

    def _static_spec(self, item, weights) -> ActSpec:
        names = {p.attrs.get(ABSMAX) for p in item.params}
        name = names.pop() if len(names) == 1 else None
        if name is None or name not in weights or not weights.has_data(name):
            raise PassError(f"quantize_act: weight {item.weight!r} has no input-activation statistics "
                            f"({item.weight}.{ABSMAX}); run the calibrate pass before static quantize_act")
        amax = float(np.max(np.asarray(weights[name], np.float64))) * self.options["margin"]
        m, e = static_scale(amax)
        return ActSpec("static", m, e)

    def run(self, graph, weights, ctx):
        o = self.options
        selected, skipped = select(graph, o["include"], o["exclude"], self.name,
                                   explicit_include=o["include"] != ["*"])
        specs: dict[str, tuple[ActSpec, str]] = {}
        for item in selected:
            spec = self._static_spec(item, weights) if o["mode"] == "static" else ActSpec("dynamic")
            for lin in item.linears:
                src = lin.inputs[0]
                old = specs.get(src)
                if old is not None and old[0] != spec:
                    if o["mode"] == "static":   # several linears share the input: the widest scale wins
                        spec = max(old[0], spec, key=lambda s: s.m * 2.0 ** s.e)
                    else:
                        raise PassError(f"quantize_act: %{src} feeds {old[1]!r} and {item.weight!r} "
                                        f"with different activation specs")
                specs[src] = (spec, item.weight)
        changed = False
        for src, (spec, _) in specs.items():
            node = graph.node(src)
            if node.type.act is not None and node.type.act != spec:
                raise PassError(f"quantize_act: %{src} already has {node.type.act.text()}; "
                                f"refusing to change it to {spec.text()}")
            if node.type.act != spec:
                node.type = node.type.with_(act=spec)
                changed = True
        for node in graph.nodes("attention"):
            if node.attrs.get("kv_cache") != KV_CACHE:
                node.attrs["kv_cache"] = KV_CACHE
                changed = True
        ctx.details.update({"mode": o["mode"], "values": len(specs), "skipped": skipped})
        return changed
