"""Which linear weights a compression pass works on: :func:`linear_weights` finds
every weight used as a linear weight (with its params and users), :func:`select`
filters them by include/exclude globs on weight names and module paths."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from plait.ir import Graph
from plait.ir.types import FLOAT_DTYPES

from .framework import PassError, PassOptionError


# --------------------------------------------------------------------------- selection

@dataclass
class LinearWeight:
    """A weight-store entry used as the weight of linear layer(s)."""

    weight: str                 # weight-store name
    params: list                # param nodes naming it
    linears: list               # linear nodes using it as their weight
    other_users: list           # (node, op) pairs using it in any other way

    def weight_type(self, pass_name: str):
        """The one type every param naming this weight agrees on."""
        types = {p.type for p in self.params}
        if len(types) > 1:
            raise PassError(f"{pass_name}: params naming weight {self.weight!r} disagree on its type: "
                            f"{sorted(t.text() for t in types)}")
        return next(iter(types))

    def unfit_reason(self, t) -> Optional[str]:
        """Why a compression pass must leave this weight alone (None: it may proceed)."""
        if self.other_users:
            node, op = self.other_users[0]
            return f"also used by %{node} ({op}), not only as a linear weight"
        if t.dtype not in FLOAT_DTYPES:
            return f"not a float weight ({t.dtype})"
        return None

    def matrix_shape(self, t, pass_name: str) -> tuple[int, int]:
        """``(N, K)`` of a concrete 2-D weight type, or a PassError naming the weight."""
        if t.rank != 2 or not t.concrete():
            raise PassError(f"{pass_name}: weight {self.weight!r} has type {t.text()}; expected a concrete [N, K]")
        return int(t.shape[0]), int(t.shape[1])

    def labels(self) -> list[str]:
        """What include/exclude globs are matched against: the weight name and the
        module path (origin) and name of every linear that uses it."""
        out = [self.weight]
        for n in self.linears:
            if n.origin:
                out.append(n.origin)
            out.append(n.name)
        return out


def linear_weights(graph: Graph) -> dict[str, LinearWeight]:
    """Every weight used as a linear weight, by weight name (in graph order)."""
    found: dict[str, LinearWeight] = {}
    for p in graph.params():
        w = p.attrs["weight"]
        lins, other = [], []
        for u in graph.users(p.name):
            un = graph.node(u)
            if un.op == "linear" and un.inputs[1] == p.name and p.name not in (un.inputs[:1] + un.inputs[2:]):
                lins.append(un)
            else:
                other.append((un.name, un.op))
        if not lins:
            continue
        lw = found.setdefault(w, LinearWeight(w, [], [], []))
        lw.params.append(p)
        lw.linears.extend(lins)
        lw.other_users.extend(other)
    for p in graph.params():  # a weight also read by non-linear params elsewhere (tied)
        w = p.attrs["weight"]
        if w in found and p not in found[w].params:
            found[w].params.append(p)
            found[w].other_users.extend((u, graph.node(u).op) for u in graph.users(p.name))
    return found


def select(graph: Graph, include: Sequence[str], exclude: Sequence[str], pass_name: str,
           explicit_include: bool) -> tuple[list[LinearWeight], dict[str, str]]:
    """Linear weights matched by ``include`` and by no ``exclude`` glob (fnmatch).

    Returns (selected, {weight: reason} for the excluded ones).  An explicit
    include glob that matches no linear weight at all is an error (a typo would
    otherwise silently do nothing).
    """
    from fnmatch import fnmatchcase
    lw = linear_weights(graph)
    selected, skipped = [], {}
    hits = {pat: 0 for pat in include}
    for name, item in lw.items():
        labels = item.labels()
        inc = [pat for pat in include if any(fnmatchcase(l, pat) for l in labels)]
        for pat in inc:
            hits[pat] += 1
        if not inc:
            skipped[name] = "not matched by include"
            continue
        exc = [pat for pat in exclude if any(fnmatchcase(l, pat) for l in labels)]
        if exc:
            skipped[name] = f"excluded by {exc[0]!r}"
            continue
        selected.append(item)
    if explicit_include:
        for pat, n in hits.items():
            if n == 0:
                raise PassOptionError(pass_name, "include",
                                      f"pattern {pat!r} matches no linear weight of graph {graph.name!r} "
                                      f"(globs match weight names such as "
                                      f"{next(iter(lw), '<none>')!r} and module paths)")
    return selected, skipped
