"""The typed dataflow graph.

A :class:`Graph` is a networkx ``DiGraph`` whose nodes are SSA values: each node
has a unique name, an op name (looked up in :mod:`plait.ir.ops`), an ordered
tuple of input names, a dict of attributes (JSON-serialisable) and one output
:class:`~plait.ir.types.TensorType`.  Edges point from producer to consumer
(``edge attribute "slot"`` lists the input positions).

Weights are *not* in the graph: a ``param`` node names an entry of the
:class:`~plait.ir.weights.WeightStore`, and quantization/sparsity specs name
their side arrays (scales, zero points, indices) the same way.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Iterator, Optional

import networkx as nx

from .types import TensorType


class GraphError(ValueError):
    """A structural error in a graph (unknown value, cycle, duplicate name...)."""


@dataclass
class Node:
    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    type: Optional[TensorType] = None
    # where the node came from (e.g. the nn.Module path); printed as a comment
    origin: str = ""


#: node attributes whose ``"arrays"`` entry maps field names to weight-store names
#: (written by :mod:`plait.passes.pack`: packed weights on params, bias on linears)
ARRAY_ATTRS = ("pack", "requant")


def attr_arrays(node: Node) -> dict[str, str]:
    """``{"<attr>.<field>": store name}`` of the arrays a node's attributes name."""
    out = {}
    for key in ARRAY_ATTRS:
        a = node.attrs.get(key)
        if isinstance(a, dict):
            for field, name in (a.get("arrays") or {}).items():
                out[f"{key}.{field}"] = name
    return out


class Graph:
    # The op registry's shape rule, ``(graph, node) -> TensorType``; plait.ir.ops plugs
    # it in when it is imported (ops sit above the graph: the graph does not import them).
    type_rule: ClassVar[Optional[Callable[["Graph", Node], TensorType]]] = None

    def __init__(self, name: str = "graph"):
        self.name = name
        self.nx = nx.DiGraph()
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.meta: dict[str, Any] = {}
        self._counter = itertools.count()
        self._order: Optional[list[str]] = None

    # ---------------------------------------------------------------- building
    def fresh_name(self, hint: str = "v") -> str:
        hint = "".join(c if (c.isalnum() or c in "._") else "_" for c in hint) or "v"
        name = hint
        while name in self.nx:
            name = f"{hint}_{next(self._counter)}"
        return name

    def add(self, op: str, inputs: Iterable[str] = (), attrs: Optional[dict] = None, *,
            name: Optional[str] = None, type: Optional[TensorType] = None, origin: str = "",
            infer: bool = True) -> str:
        """Add a node; infers its type with the op's shape rule unless ``type`` is given."""
        inputs = tuple(inputs)
        name = name or self.fresh_name(op)
        if name in self.nx:
            raise GraphError(f"value %{name} defined twice")
        for i in inputs:
            if i not in self.nx:
                raise GraphError(f"%{name} = {op}(...): input %{i} is not defined")
        node = Node(name, op, inputs, dict(attrs or {}), type, origin)
        if node.type is None and infer:
            if Graph.type_rule is None:
                raise GraphError(f"%{name} = {op}(...): no op registry is loaded to infer its type "
                                 f"(import plait.ir)")
            node.type = Graph.type_rule(self, node)
        self.nx.add_node(name, node=node)
        for slot, i in enumerate(inputs):
            if self.nx.has_edge(i, name):
                self.nx.edges[i, name]["slots"].append(slot)
            else:
                self.nx.add_edge(i, name, slots=[slot])
        if op == "input":
            self.inputs.append(name)
        self._order = None
        return name

    def set_inputs(self, name: str, inputs: Iterable[str]) -> None:
        """Rewire the inputs of an existing node."""
        node = self.node(name)
        for i in set(node.inputs):
            self.nx.remove_edge(i, name)
        node.inputs = tuple(inputs)
        for slot, i in enumerate(node.inputs):
            if i not in self.nx:
                raise GraphError(f"%{name}: input %{i} is not defined")
            if self.nx.has_edge(i, name):
                self.nx.edges[i, name]["slots"].append(slot)
            else:
                self.nx.add_edge(i, name, slots=[slot])
        self._order = None

    def replace_uses(self, old: str, new: str) -> int:
        """Make every user of ``old`` (and the graph outputs) use ``new``. Returns the count."""
        n = 0
        for user in list(self.nx.successors(old)):
            node = self.node(user)
            self.set_inputs(user, [new if i == old else i for i in node.inputs])
            n += 1
        if old in self.outputs:
            self.outputs = [new if o == old else o for o in self.outputs]
            n += 1
        return n

    def remove(self, name: str) -> None:
        if any(True for _ in self.nx.successors(name)) or name in self.outputs:
            raise GraphError(f"cannot remove %{name}: it still has users")
        if name in self.inputs:
            self.inputs.remove(name)
        self.nx.remove_node(name)
        self._order = None

    def dead_code(self) -> int:
        """Remove nodes that no output depends on. Returns how many were removed."""
        live = set(self.outputs)
        for o in self.outputs:
            live |= nx.ancestors(self.nx, o)
        dead = [n for n in self.nx if n not in live and n not in self.inputs]
        self.nx.remove_nodes_from(dead)
        self._order = None
        return len(dead)

    # ---------------------------------------------------------------- queries
    def node(self, name: str) -> Node:
        try:
            return self.nx.nodes[name]["node"]
        except KeyError:
            raise GraphError(f"no value %{name} in graph {self.name!r}") from None

    def __contains__(self, name: str) -> bool:
        return name in self.nx

    def __len__(self) -> int:
        return self.nx.number_of_nodes()

    def users(self, name: str) -> list[str]:
        return list(self.nx.successors(name))

    def order(self) -> list[str]:
        """Topological order, stable with respect to insertion order."""
        if self._order is None:
            try:
                self._order = list(nx.lexicographical_topological_sort(
                    self.nx, key=self._insertion_rank().__getitem__))
            except nx.NetworkXUnfeasible:
                cycle = nx.find_cycle(self.nx)
                raise GraphError(f"graph {self.name!r} has a cycle: {cycle}") from None
        return self._order

    def _insertion_rank(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.nx.nodes)}

    def nodes(self, op: Optional[str] = None) -> Iterator[Node]:
        for n in self.order():
            node = self.node(n)
            if op is None or node.op == op:
                yield node

    def params(self) -> Iterator[Node]:
        return self.nodes("param")

    def weight_names(self) -> set[str]:
        """Every weight-store name the graph refers to (params and their side arrays,
        and the arrays named by the ``pack`` / ``requant`` attributes of the packing
        pass: :func:`attr_arrays`)."""
        names = set()
        for node in self.nodes():
            if node.op == "param":
                names.add(node.attrs["weight"])
            names.update(attr_arrays(node).values())
            t = node.type
            if t is not None and t.quant:
                names.add(t.quant.scales)
                if t.quant.zeros:
                    names.add(t.quant.zeros)
            if t is not None and t.sparsity and t.sparsity.indices:
                names.add(t.sparsity.indices)
        return names

    def copy(self) -> "Graph":
        """A structural copy (nodes copied, weights are only names: nothing big is copied)."""
        g = Graph(self.name)
        for node in self.nodes():
            g.add(node.op, node.inputs, dict(node.attrs), name=node.name, type=node.type,
                  origin=node.origin, infer=False)
        g.inputs = list(self.inputs)
        g.outputs = list(self.outputs)
        g.meta = dict(self.meta)
        return g

    def __repr__(self) -> str:
        return f"<Graph {self.name!r}: {len(self)} nodes>"
