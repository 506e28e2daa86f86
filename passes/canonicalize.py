"""Canonicalization: dead code, common subexpressions and small fusions.

Graphs from the PyTorch frontend arrive with RMSNorm, RoPE, SwiGLU and
attention already as single ops; graphs from other frontends (or written by
hand) may not.  These passes bring them to the same canonical form:

``dce``               remove nodes no graph output depends on.
``cse``               merge identical pure nodes (same op, inputs, attributes and
                      type; params naming the same weight with the same type).
                      ``attention`` is never merged: it owns a KV cache.
``fuse_swiglu``       ``mul(silu(gate), up)`` (either operand order, same shapes)
                      -> ``swiglu(gate, up)``.
``fuse_linear_bias``  ``add(linear(x, w), b)`` with ``b`` a 1-D param of length N
                      (either operand order) -> ``linear(x, w, b)``.
``canonicalize``      all of the above until nothing changes.

Fused nodes take the place (in the printed order) of the node they replace; a
fused ``swiglu`` keeps the ``mul``'s origin, a fused ``linear`` the linear's (so
globs on module paths such as ``lm_head`` still select it).  Fusions preserve the reference semantics exactly: the
interpreter's output is bit-identical before and after.
"""
from __future__ import annotations

import json

import networkx as nx

from plait.ir import Graph

from .framework import Option, Pass, PassError, register_pass

NOT_PURE = {"input", "attention"}


def _ranks(graph: Graph) -> dict[str, tuple]:
    return {n: (i, 0) for i, n in enumerate(graph.nx.nodes)}


def _reorder(graph: Graph, before: dict[str, tuple], anchors: dict[str, str]) -> None:
    """Put each new node where the node it replaced was (``anchors[new] = old``;
    ``before``: :func:`_ranks` taken before the rewrite), so printed graphs stay
    in program order."""
    if not anchors:
        return
    end = len(before)
    rank = {n: before.get(n, (end + i, 0)) for i, n in enumerate(graph.nx.nodes)}
    for new, old in anchors.items():
        if old in before and new in rank:
            rank[new] = (before[old][0], -1)  # just before the node it replaced
    order = list(nx.lexicographical_topological_sort(graph.nx, key=rank.__getitem__))
    g = nx.DiGraph()
    g.add_nodes_from((n, graph.nx.nodes[n]) for n in order)
    g.add_edges_from(graph.nx.edges(data=True))
    graph.nx = g
    graph._order = None


def _replace(graph: Graph, old: str, op: str, inputs, attrs=None, anchors=None, hint=None,
             origin=None) -> str:
    """Add a node computing ``old``'s value a new way and move every use onto it."""
    on = graph.node(old)
    new = graph.add(op, inputs, attrs or {}, name=graph.fresh_name(hint or op),
                    origin=on.origin if origin is None else origin)
    if graph.node(new).type.shape != on.type.shape or graph.node(new).type.dtype != on.type.dtype:
        raise PassError(f"internal: rewriting %{old} as {op} changes its type "
                        f"{on.type.text()} -> {graph.node(new).type.text()}")
    graph.replace_uses(old, new)
    if anchors is not None:
        anchors[new] = old
    return new


def _drop_if_dead(graph: Graph, name: str) -> None:
    if name in graph and not graph.users(name) and name not in graph.outputs and name not in graph.inputs:
        inputs = graph.node(name).inputs
        graph.remove(name)
        for i in set(inputs):
            if graph.node(i).op != "input":
                _drop_if_dead(graph, i)


@register_pass
class DeadCode(Pass):
    """Remove nodes that no graph output depends on (graph inputs stay)."""
    name = "dce"

    def run(self, graph, weights, ctx):
        n = graph.dead_code()
        ctx.details["removed"] = n
        return n > 0


@register_pass
class CommonSubexpressions(Pass):
    """Merge identical pure nodes; the first in program order survives."""
    name = "cse"

    def run(self, graph, weights, ctx):
        seen: dict[tuple, str] = {}
        merged = 0
        for node in list(graph.nodes()):
            if node.op in NOT_PURE:
                continue
            key = (node.op, node.inputs, json.dumps(node.attrs, sort_keys=True, default=str), node.type)
            first = seen.setdefault(key, node.name)
            if first != node.name:
                graph.replace_uses(node.name, first)
                graph.remove(node.name)
                merged += 1
        ctx.details["merged"] = merged
        return merged > 0


def _shape_eq(graph: Graph, a: str, b: str) -> bool:
    ta, tb = graph.node(a).type, graph.node(b).type
    return ta.shape == tb.shape and ta.dtype == tb.dtype


@register_pass
class FuseSwiGLU(Pass):
    """``mul(silu(gate), up)`` -> ``swiglu(gate, up)``."""
    name = "fuse_swiglu"

    def run(self, graph, weights, ctx):
        anchors: dict[str, str] = {}
        ranks = _ranks(graph)
        for node in list(graph.nodes("mul")):
            a, b = node.inputs
            for act, up in ((a, b), (b, a)):
                an = graph.node(act)
                if an.op == "silu" and act != up and _shape_eq(graph, act, up) and _shape_eq(graph, an.inputs[0], up):
                    _replace(graph, node.name, "swiglu", [an.inputs[0], up], anchors=anchors, hint="swiglu")
                    graph.remove(node.name)
                    _drop_if_dead(graph, act)
                    break
        _reorder(graph, ranks, anchors)
        ctx.details["fused"] = len(anchors)
        return bool(anchors)


@register_pass
class FuseLinearBias(Pass):
    """``add(linear(x, w), b)`` with a 1-D bias param -> ``linear(x, w, b)``."""
    name = "fuse_linear_bias"

    def run(self, graph, weights, ctx):
        anchors: dict[str, str] = {}
        ranks = _ranks(graph)
        for node in list(graph.nodes("add")):
            a, b = node.inputs
            for lin, bias in ((a, b), (b, a)):
                ln, bn = graph.node(lin), graph.node(bias)
                if (ln.op == "linear" and len(ln.inputs) == 2 and bn.op == "param"
                        and graph.users(lin) == [node.name] and lin not in graph.outputs
                        and bn.type.rank == 1 and bn.type.dtype == "f32"
                        and bn.type.shape == (graph.node(ln.inputs[1]).type.shape[0],)
                        and _shape_eq(graph, node.name, lin)):
                    _replace(graph, node.name, "linear", [ln.inputs[0], ln.inputs[1], bias],
                             dict(ln.attrs), anchors=anchors, hint=lin, origin=ln.origin)
                    graph.remove(node.name)
                    _drop_if_dead(graph, lin)
                    break
        _reorder(graph, ranks, anchors)
        ctx.details["fused"] = len(anchors)
        return bool(anchors)


@register_pass
class Canonicalize(Pass):
    """cse, fuse_linear_bias, fuse_swiglu and dce, repeated until nothing changes."""
    name = "canonicalize"
    OPTIONS = {"max_iterations": Option("int", 10, "give up (error) after this many rounds",
                                        check=lambda v: None if v >= 1 else f"must be >= 1, got {v}")}
    STEPS = ("cse", "fuse_linear_bias", "fuse_swiglu", "dce")

    def run(self, graph, weights, ctx):
        from .framework import PassContext, get_pass
        steps = [get_pass(s)() for s in self.STEPS]
        totals = {s: 0 for s in self.STEPS}
        changed_any = False
        for _ in range(self.options["max_iterations"]):
            changed = False
            for p in steps:
                sub = PassContext(ctx.debug)
                if p.run(graph, weights, sub):
                    changed = True
                    totals[p.name] += next(iter(sub.details.values()), 0)
            changed_any |= changed
            if not changed:
                ctx.details.update(totals)
                return changed_any
        raise PassError(f"canonicalize: still changing after {self.options['max_iterations']} rounds")
