"""Graph statistics for `plait inspect`: ops, parameters, bits per weight, sparsity, MACs."""
from __future__ import annotations

from collections import Counter

from .graph import Graph
from .ops import graph_cost
from .types import TensorType


def summarize(graph: Graph, context: int = 512) -> dict:
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
        f = f"W{t.quant.bits}{'' if t.quant.scheme == 'sym' else '-' + t.quant.scheme} g{t.quant.group_size}" if t.quant else t.dtype
        if t.sparsity:
            f += f" {t.sparsity.n}:{t.sparsity.m}"
        formats[f] += t.numel()
    decode = graph_cost(graph, {"S": 1, "T": context})
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
    }


def format_summary(s: dict) -> str:
    def h(n):
        for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
            if n >= div:
                return f"{n / div:.3f} {unit}"
        return str(n)
    lines = [
        f"graph            {s['name']} ({s['nodes']} nodes)",
        f"parameters       {h(s['parameters'])}  ({s['parameters']:,})",
        f"linear weights   {h(s['linear_parameters'])}, {s['bits_per_linear_weight']:.2f} bits/weight stored",
        f"sparsity         {s['sparse_fraction'] * 100:.1f}% of linear weights N:M-sparse"
        + (f" (density {s['sparse_density']:.2f})" if s["sparse_fraction"] else ""),
        f"MACs per token   {h(s['macs_per_token'])}  (linear {h(s['linear_macs_per_token'])}; "
        f"attention at context {s['context_for_attention']})",
        f"weight bytes/tok {h(s['weight_bytes_per_token'])}B",
        "weight formats   " + ", ".join(f"{k}: {h(v)}" for k, v in s["weight_formats"].items()),
        "ops              " + ", ".join(f"{k}={v}" for k, v in s["ops"].items()),
    ]
    return "\n".join(lines)
