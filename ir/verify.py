"""Graph verifier: structure, types and weight references.

``verify(graph, weights=None)`` raises :class:`VerifyError` listing every problem
found (not just the first), each naming the value it is about.
"""
from __future__ import annotations

from typing import Optional

from .graph import Graph, GraphError, attr_arrays
from .ops import OPS, OpError, infer_type
from .types import IRTypeError


class VerifyError(ValueError):
    def __init__(self, graph_name: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"graph {graph_name!r} failed verification ({len(problems)} problem(s)):\n  - "
                         + "\n  - ".join(problems))


def verify(graph: Graph, weights=None) -> None:
    problems: list[str] = []
    try:
        order = graph.order()
    except GraphError as e:
        raise VerifyError(graph.name, [str(e)]) from None
    if not graph.outputs:
        problems.append("graph has no outputs")
    for o in graph.outputs:
        if o not in graph:
            problems.append(f"output %{o} is not defined")
    for name in order:
        node = graph.node(name)
        if node.op not in OPS:
            problems.append(f"%{name}: unknown op {node.op!r}")
            continue
        if node.type is None:
            problems.append(f"%{name}: has no type")
            continue
        if weights is not None:
            for what, w in attr_arrays(node).items():
                if w not in weights:
                    problems.append(f"%{name}: array {w!r} named by attribute {what} is missing "
                                    f"from the weight store")
        if node.op == "param":
            w = node.attrs.get("weight")
            if not w:
                problems.append(f"%{name}: param without a 'weight' attribute")
            elif weights is not None:
                _check_weight(node, weights, problems)
        elif node.op != "input":
            try:
                t = infer_type(graph, node)
            except (OpError, IRTypeError, GraphError) as e:
                problems.append(str(e))
                continue
            if t.shape != node.type.shape or t.dtype != node.type.dtype:
                problems.append(f"%{name}: recorded type {node.type.text()} but its inputs give {t.text()}")
    if problems:
        raise VerifyError(graph.name, problems)


def _check_weight(node, weights, problems: list[str]) -> None:
    t, w = node.type, node.attrs["weight"]
    if w not in weights:
        problems.append(f"%{node.name}: weight {w!r} is not in the weight store")
        return
    info = weights.info(w)
    if tuple(info.shape) != tuple(t.shape):
        problems.append(f"%{node.name}: weight {w!r} has shape {list(info.shape)} but the type says {t.text()}")
    if t.quant:
        q = t.quant
        n, k = t.shape
        for side, shape in ((q.scales, (n, k // q.group_size)), (q.zeros, (n, k // q.group_size))):
            if side is None:
                continue
            if side not in weights:
                problems.append(f"%{node.name}: quantization array {side!r} is missing from the weight store")
            elif tuple(weights.info(side).shape) != shape:
                problems.append(f"%{node.name}: {side!r} has shape {list(weights.info(side).shape)}, expected {list(shape)}")
    if t.sparsity and t.sparsity.indices and t.sparsity.indices not in weights:
        problems.append(f"%{node.name}: sparse index array {t.sparsity.indices!r} is missing")
