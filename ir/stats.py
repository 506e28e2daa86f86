"""Graph statistics for `plait inspect`: ops, parameters, bits per weight, sparsity,
MACs, and -- for a graph the ``map_engines`` pass has mapped -- the engine mapping
table with the predicted decode speed.

The engine section (:func:`engine_summary`, key ``"mapping"`` of :func:`summarize`)
reads the attributes ``map_engines`` (:mod:`plait.passes.mapping`) records on every
linear node and the target named in ``graph.meta["engine_map"]`` (or the one given),
and estimates one decoded token (one token row, the KV cache holding ``context``
positions):

* **linear** cycles: the sum of the layers' ``cycles_decode`` (the engines' cycle
  models of :mod:`plait.ir.target`; layers run one after the other);
* **attention** cycles: the attention op's MACs (``QK^T`` and ``PV`` against the
  whole context) on all DSP chains as dense int8 products with one useful packed
  lane (one query row), i.e. ``ceil(MACs / (n_dsp * chains))`` per attention node;
* **SFU** cycles: every other op (embedding row, RMSNorm, RoPE, SwiGLU, residual
  adds, the attention's softmax over ``n_heads * context`` scores) at
  ``target.sfu_lanes`` elements per clock, ``ceil(elements / sfu_lanes)`` per node;
* compute cycles per token = linear + attention + SFU (serial: each op needs the
  previous one's output in decode);
* **HBM** bytes per token: the linear weights as streamed (``weight_bytes``), the
  embedding row and the fp16 KV cache read (``2 * context * n_kv_heads * head_dim``
  values per attention node, as in the attention op's cost); memory cycles = bytes /
  (``hbm_gbps`` / clock);
* tokens/s = ``clock / max(compute cycles, memory cycles)``: the engines stream their
  weights from HBM while they compute, so a token takes the longer of the two; the
  roofline share is memory cycles / that maximum (1.0: memory-bound at peak HBM
  bandwidth).
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Optional

from .graph import Graph, Node
from .ops import get_op, graph_cost
from .target import get_target
from .types import TensorType

#: ``graph.meta`` key the mapping pass writes (``{"target": ..., "prefill_tokens": ...}``)
ENGINE_META = "engine_map"


def weight_format(t: TensorType) -> str:
    """Short label of a weight's format: ``W4 g128`` (sym), ``W4-asym g32``,
    ``W2-ternary g64``, ``W3-odd g64``, ``f32``; `` 2:4`` appended when N:M-sparse."""
    if t.quant:
        q = t.quant
        f = f"W{q.bits}{'' if q.scheme == 'sym' else '-' + q.scheme} g{q.group_size}"
    else:
        f = t.dtype
    if t.sparsity:
        f += f" {t.sparsity.n}:{t.sparsity.m}"
    return f


def summarize(graph: Graph, context: int = 512, target=None) -> dict:
    """Statistics of ``graph``; ``target`` (a name or a Target; default: the one the
    graph was mapped for) selects the roofline of the ``"mapping"`` section, which is
    ``None`` when no linear node carries an engine."""
    ops = Counter(n.op for n in graph.nodes())
    seen: dict[str, TensorType] = {}
    linear_w: set[str] = set()
    for node in graph.nodes():
        if node.op == "param":
            seen.setdefault(node.attrs["weight"], node.type)
        if node.op == "linear":
            linear_w.add(graph.node(node.inputs[1]).attrs.get("weight", node.inputs[1]))
    params = sum(t.numel() for t in seen.values())
    lin_params = sum(seen[w].numel() for w in linear_w if w in seen)
    bits = sum(seen[w].stored_bits() for w in linear_w if w in seen)
    sparse = sum(seen[w].numel() for w in linear_w if w in seen and seen[w].sparsity)
    density = sum(seen[w].numel() * seen[w].sparsity.density for w in linear_w if w in seen and seen[w].sparsity)
    formats = Counter()
    for w in linear_w:
        t = seen.get(w)
        if t is None:
            continue
        formats[weight_format(t)] += t.numel()
    decode = graph_cost(graph, {"S": 1, "T": context})
    plan = {w: p.attrs["plan_bits"] for p in graph.params() if "plan_bits" in p.attrs
            for w in [p.attrs["weight"]]}
    return {
        "name": graph.name,
        "nodes": len(graph),
        "ops": dict(sorted(ops.items())),
        "parameters": params,
        "linear_parameters": lin_params,
        "bits_per_linear_weight": bits / lin_params if lin_params else 0.0,
        "sparse_fraction": sparse / lin_params if lin_params else 0.0,
        "sparse_density": density / sparse if sparse else 1.0,
        "weight_formats": dict(formats),
        "macs_per_token": sum(c.macs for c in decode.values()),
        "linear_macs_per_token": decode["linear"].macs if "linear" in decode else 0,
        "weight_bytes_per_token": sum(c.weight_bytes for c in decode.values()),
        "context_for_attention": context,
        "mapping": engine_summary(graph, context, target),
        "precision_plan": _plan_summary(plan, seen) if plan else None,
    }


def _plan_summary(plan: dict, types: dict) -> dict:
    """A mixed-precision plan (param attribute ``plan_bits``, :mod:`plait.passes.mixed`)."""
    sizes = {w: types[w].numel() for w in plan}
    by_bits = Counter()
    for w, b in plan.items():
        by_bits[b] += sizes[w]
    return {"weights": len(plan), "average_bits": sum(plan[w] * sizes[w] for w in plan) / sum(sizes.values()),
            "parameters_by_bits": {str(b): by_bits[b] for b in sorted(by_bits)}, "plan": dict(plan)}


# --------------------------------------------------------------------------- engines

def layer_kind(node: Node) -> str:
    """The kind of a linear layer for grouping: the last part of its module path
    (``model.layers.3.self_attn.q_proj`` -> ``q_proj``; ``lm_head``), else of its name."""
    return (node.origin or node.name).rsplit(".", 1)[-1]


def _group(rows: list[dict], keys: tuple[str, ...]) -> list[dict]:
    out: dict[tuple, dict] = {}
    for r in rows:
        key = tuple(r[k] for k in keys)
        g = out.get(key)
        if g is None:
            g = out[key] = {**{k: r[k] for k in keys}, "count": 0, "weights": 0,
                            "cycles_decode": 0, "weight_bytes": 0}
        g["count"] += 1
        g["weights"] += r["weights"]
        g["cycles_decode"] += r["cycles_decode"]
        g["weight_bytes"] += r["weight_bytes"]
    return list(out.values())


def engine_summary(graph: Graph, context: int = 512, target=None) -> Optional[dict]:
    """The mapping table and the decode roofline (module docstring), or ``None`` if
    no linear node has an ``engine`` attribute."""
    mapped = [n for n in graph.nodes("linear") if "engine" in n.attrs]
    if not mapped:
        return None
    meta = graph.meta.get(ENGINE_META, {})
    if target is None:
        if "target" not in meta:
            raise ValueError(f"graph {graph.name!r} has engine attributes but no "
                             f"meta[{ENGINE_META!r}] naming its target; re-run map_engines")
        target = meta["target"]
    tgt = get_target(target)
    unmapped = [n.name for n in graph.nodes("linear") if "engine" not in n.attrs]
    rows = []
    for n in mapped:
        t = graph.node(n.inputs[1]).type
        a = n.attrs
        rows.append({"name": n.origin or n.name, "node": n.name, "kind": layer_kind(n),
                     "shape": "x".join(str(d) for d in t.shape), "format": weight_format(t),
                     "engine": a["engine"], "mode": _mode_text(a), "weights": t.numel(),
                     "cycles_decode": int(a["cycles_decode"]),
                     "cycles_prefill_per_token": float(a.get("cycles_prefill_per_token", 0.0)),
                     "weight_bytes": int(a["weight_bytes"]), "reason": a.get("engine_reason", "")})
    env = {"S": 1, "T": context, "B": 1}
    chain = tgt.dsp_chain
    attn_cycles = sfu_cycles = sfu_elements = kv_bytes = emb_bytes = 0
    for n in graph.nodes():
        if n.op in ("input", "param", "linear"):
            continue
        if n.op == "attention":
            a = n.attrs
            macs = get_op("attention").cost(graph, n, env).macs
            attn_cycles += -(-macs // (chain.n_dsp * chain.count))
            kv_bytes += 2 * context * a["n_kv_heads"] * a["head_dim"] * 2
            elems = a["n_heads"] * context + n.type.numel(env)
        else:
            elems = n.type.numel(env)
            if n.op == "embedding":
                emb_bytes += get_op("embedding").cost(graph, n, env).weight_bytes
        sfu_elements += elems
        sfu_cycles += -(-elems // tgt.sfu_lanes)
    linear_cycles = sum(r["cycles_decode"] for r in rows)
    compute = linear_cycles + attn_cycles + sfu_cycles
    weight_bytes = sum(r["weight_bytes"] for r in rows) + emb_bytes
    hbm_bytes = weight_bytes + kv_bytes
    memory = hbm_bytes / tgt.hbm_bytes_per_cycle
    per_token = max(compute, memory)
    by_engine = {e: {"layers": sum(1 for r in rows if r["engine"] == e),
                     "cycles_decode": sum(r["cycles_decode"] for r in rows if r["engine"] == e)}
                 for e in ("dsp_chain", "lut_core")}
    return {
        "target": tgt.name,
        "target_summary": tgt.summary(),
        "clock_mhz": tgt.clock_mhz,
        "hbm_gbps": tgt.hbm_gbps,
        "context": context,
        "prefill_tokens": meta.get("prefill_tokens"),
        "layers": rows,
        "unmapped": unmapped,
        "by_class": _group(rows, ("format", "engine", "mode")),
        "by_kind": _group(rows, ("kind", "shape", "format", "engine", "mode")),
        "by_engine": by_engine,
        "totals": {
            "linear_cycles": linear_cycles,
            "attention_cycles": attn_cycles,
            "sfu_cycles": sfu_cycles,
            "sfu_elements": sfu_elements,
            "compute_cycles": compute,
            "weight_bytes": weight_bytes,
            "kv_bytes": kv_bytes,
            "hbm_bytes": hbm_bytes,
            "hbm_seconds": hbm_bytes / (tgt.hbm_gbps * 1e9),
            "memory_cycles": memory,
            "cycles_per_token": per_token,
            "bound": "memory" if memory >= compute else "compute",
            "hbm_roofline_share": memory / per_token,
            "tokens_per_s": tgt.clock_hz / per_token,
            "compute_tokens_per_s": tgt.clock_hz / compute,
            "memory_tokens_per_s": tgt.clock_hz / memory if memory else math.inf,
            "prefill_linear_cycles_per_token": sum(r["cycles_prefill_per_token"] for r in rows),
        },
    }


def _h(n) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.3f} {unit}"
    return str(n)


def format_summary(s: dict, layers: bool = False) -> str:
    """The text of ``plait inspect``; ``layers``: one line per mapped linear layer
    instead of one per layer kind."""
    h = _h
    lines = [
        f"graph            {s['name']} ({s['nodes']} nodes)",
        f"parameters       {h(s['parameters'])}  ({s['parameters']:,})",
        f"linear weights   {h(s['linear_parameters'])}, {s['bits_per_linear_weight']:.2f} bits/weight stored",
        f"sparsity         {s['sparse_fraction'] * 100:.1f}% of linear weights N:M-sparse"
        + (f" (density {s['sparse_density']:.2f})" if s["sparse_fraction"] else ""),
        f"MACs per token   {h(s['macs_per_token'])}  (linear {h(s['linear_macs_per_token'])}; "
        f"attention at context {s['context_for_attention']})",
        f"weight bytes/tok {h(s['weight_bytes_per_token'])}B as stored (float weights at their width)",
        "weight formats   " + ", ".join(f"{k}: {h(v)}" for k, v in s["weight_formats"].items()),
        "ops              " + ", ".join(f"{k}={v}" for k, v in s["ops"].items()),
    ]
    if s.get("precision_plan"):
        lines += format_plan(s["precision_plan"], layers)
    if s.get("mapping"):
        lines += format_mapping(s["mapping"], layers)
    return "\n".join(lines)


def format_plan(plan: dict, layers: bool = False) -> list[str]:
    """A mixed-precision plan (``summarize(...)["precision_plan"]``): one line, and with
    ``layers`` one more per weight."""
    lines = [f"precision plan   {plan['weights']} weights, average {plan['average_bits']:.3f} bits: "
             + ", ".join(f"{_h(n)} at {b} bits" for b, n in plan["parameters_by_bits"].items())]
    if layers:
        lines += [f"  {b} bits  {w}" for w, b in plan["plan"].items()]
    return lines


def _mode_text(a: dict) -> str:
    """A mapped layer's mode as the tables print it: ``engine_mode``, plus ``" +pair"``
    where a decoded token's pass runs in decode lane packing (``engine_decode_mode``;
    mappings written before it have none)."""
    dec = a.get("engine_decode_mode", a["engine_mode"])
    return a["engine_mode"] + (" +pair" if dec.startswith("pair") else "")


def format_mapping(m: dict, layers: bool = False) -> list[str]:
    h, t = _h, m["totals"]
    lin = t["linear_cycles"] or 1
    e = m["by_engine"]
    lines = [
        f"target           {m['target_summary']}",
        f"engine mapping   {len(m['layers'])} linear layers: dsp_chain {e['dsp_chain']['layers']} "
        f"({100 * e['dsp_chain']['cycles_decode'] / lin:.1f}% of linear cycles), lut_core "
        f"{e['lut_core']['layers']} ({100 * e['lut_core']['cycles_decode'] / lin:.1f}%)"
        + (f"; NOT mapped: {len(m['unmapped'])}" if m["unmapped"] else ""),
        "",
        f"  {'format':<16} {'engine':<10} {'mode':<14} {'layers':>6} {'weights':>11} "
        f"{'cycles/token':>13} {'share':>6}",
    ]
    for g in m["by_class"]:
        lines.append(f"  {g['format']:<16} {g['engine']:<10} {g['mode']:<14} {g['count']:>6} "
                     f"{h(g['weights']):>11} {g['cycles_decode']:>13,} "
                     f"{100 * g['cycles_decode'] / lin:>5.1f}%")
    lines.append("")
    if layers:
        lines.append(f"  {'layer':<40} {'shape':<12} {'format':<16} {'engine':<10} {'mode':<14} "
                     f"{'cycles/token':>13}")
        for r in m["layers"]:
            lines.append(f"  {r['name']:<40} {r['shape']:<12} {r['format']:<16} {r['engine']:<10} "
                         f"{r['mode']:<14} {r['cycles_decode']:>13,}")
    else:
        lines.append(f"  {'kind':<12} {'shape':<12} {'format':<16} {'engine':<10} {'mode':<14} "
                     f"{'count':>5} {'cycles each':>12} {'cycles sum':>12}")
        for g in m["by_kind"]:
            each = g["cycles_decode"] / g["count"]
            lines.append(f"  {g['kind']:<12} {g['shape']:<12} {g['format']:<16} {g['engine']:<10} "
                         f"{g['mode']:<14} {g['count']:>5} {each:>12,.0f} {g['cycles_decode']:>12,}")
    lines.append("")
    clock = m["clock_mhz"]
    lines += [
        f"decode cycles    linear {t['linear_cycles']:,} + attention {t['attention_cycles']:,} + "
        f"SFU {t['sfu_cycles']:,} = {t['compute_cycles']:,} per token (context {m['context']})",
        f"HBM per token    weights {h(t['weight_bytes'])}B + KV cache {h(t['kv_bytes'])}B = "
        f"{h(t['hbm_bytes'])}B: {t['hbm_seconds'] * 1e6:,.1f} us at {m['hbm_gbps']:g} GB/s = "
        f"{t['memory_cycles']:,.0f} cycles",
        f"predicted        {t['tokens_per_s']:,.1f} tokens/s at {clock:g} MHz, {t['bound']}-bound "
        f"(HBM at {100 * t['hbm_roofline_share']:.1f}% of peak; compute alone "
        f"{t['compute_tokens_per_s']:,.1f}, memory alone {t['memory_tokens_per_s']:,.1f} tokens/s)",
    ]
    if m.get("prefill_tokens"):
        lines.append(f"prefill          linear layers {t['prefill_linear_cycles_per_token']:,.1f} "
                     f"cycles/token at {m['prefill_tokens']} tokens")
    return lines
