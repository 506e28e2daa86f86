"""Reference interpreter: runs an IR graph in float32 numpy with a KV cache.

``Interpreter(graph, weights)``; ``run(tokens)`` evaluates the graph for the next
``S`` tokens (prefill when the cache is empty, then one token at a time for
decode) and returns the graph outputs.  Values are freed after their last use.

``observer``: optional ``callable(node, args, out)`` called after every evaluated
node (not inputs) with its input values and its result -- e.g. the calibration
pass records the inputs of linear layers.  It must not modify the arrays.
"""
from __future__ import annotations

from typing import Callable, Iterator, Optional

import numpy as np

from .graph import Graph
from .ops import EvalContext, get_op


def free_plan(graph: Graph, order: list[str]) -> dict[int, list[str]]:
    """``{step: values}``: the values (not outputs, not params) whose last use is at
    ``step`` of ``order``, to be freed right after it."""
    last_use: dict[str, int] = {}
    for i, n in enumerate(order):
        for a in graph.node(n).inputs:
            last_use[a] = i
    keep = set(graph.outputs)
    plan: dict[int, list[str]] = {}
    for v, i in last_use.items():
        if v not in keep and graph.node(v).op != "param":
            plan.setdefault(i, []).append(v)
    return plan


def normalize_feeds(graph: Graph, feeds) -> tuple[dict, int]:
    """``(feeds as {input: array}, S)``: an array alone feeds the single input; ``S`` is
    the length of the first input's last axis (the tokens of this call)."""
    if not isinstance(feeds, dict):
        if len(graph.inputs) != 1:
            raise ValueError(f"graph has inputs {graph.inputs}; pass a dict")
        feeds = {graph.inputs[0]: feeds}
    missing = [i for i in graph.inputs if i not in feeds]
    if missing:
        raise ValueError(f"missing graph inputs: {missing}")
    first = np.asarray(feeds[graph.inputs[0]])
    return feeds, (first.shape[-1] if first.ndim >= 1 else 1)


def run_nodes(graph: Graph, names, env: dict, ctx: EvalContext, observer=None, free=None) -> None:
    """Evaluate the nodes ``names`` (in order; not inputs) into ``env``, the one
    evaluation loop of the interpreter.  ``free``: ``{position in names: values}``
    to drop from ``env`` after that step (:func:`free_plan`)."""
    for i, name in enumerate(names):
        node = graph.node(name)
        args = [env[a] for a in node.inputs]
        env[name] = get_op(node.op).evaluate(node, args, ctx)
        if observer is not None:
            observer(node, args, env[name])
        if free:
            for v in free.get(i, ()):
                env.pop(v, None)


def segments(graph: Graph) -> list[tuple[list[str], list[str]]]:
    """The graph cut where a single value carries everything forward (a transformer's
    residual stream between the attention and the MLP halves of its blocks).

    Returns ``[(nodes, live_out)]`` in execution order: the non-input nodes of each
    segment, and the values (not params) a later segment or the outputs still need
    after it -- one value at every cut but the last (the graph outputs).  Params are
    listed in the segment that first reads them.  Running segment by segment with
    only ``live_out`` kept in between gives the same values as :class:`Interpreter`
    with bounded memory: what layer-by-layer calibration (GPTQ, SparseGPT, AWQ) runs on.
    """
    order = [n for n in graph.order() if graph.node(n).op not in ("input", "param")]
    last_use: dict[str, int] = {}
    for i, n in enumerate(order):
        for a in graph.node(n).inputs:
            last_use[a] = i
    end = len(order)
    for o in graph.outputs:
        last_use[o] = end
    is_param = {n for n in graph.order() if graph.node(n).op == "param"}
    out, start, live = [], 0, set(n for n in graph.inputs if n in last_use)
    for i, n in enumerate(order):
        live.add(n)
        live = {v for v in live if last_use.get(v, -1) > i}
        if (len(live) == 1 and i + 1 < end) or i + 1 == end:
            nodes = order[start:i + 1]
            seen, with_params = set(), []
            for m in nodes:
                for a in graph.node(m).inputs:
                    if a in is_param and a not in seen:
                        seen.add(a)
                        with_params.append(a)
                with_params.append(m)
            out.append((with_params, sorted(live)))
            start = i + 1
    return out


class Interpreter:
    """Float mode: runs ``graph`` on ``weights`` in float32 on the host.  ``linear``
    (optional) computes every linear's ``x @ W^T (+ b)`` instead of torch
    (:class:`~plait.ir.ops.EvalContext`; e.g. the runtime's device GEMM)."""

    def __init__(self, graph: Graph, weights, observer=None, linear=None):
        self.graph = graph
        self.observer = observer
        self.ctx = EvalContext(weights, linear=linear)
        self.pos = 0
        self._order = [n for n in graph.order() if graph.node(n).op != "input"]
        self._free_after = free_plan(graph, self._order)

    def reset(self) -> None:
        """Start a new sequence (a fresh KV cache; a saved :meth:`cache_state` is untouched)."""
        self.load_cache_state(None)

    def cache_state(self):
        """The sequence state (KV cache and position), to be handed back to
        :meth:`load_cache_state` later: one interpreter serves several sequences."""
        return (self.ctx.kv, self.pos)

    def load_cache_state(self, state) -> None:
        """Continue the sequence of ``state`` (``None``: a new, empty one)."""
        self.ctx.kv, self.pos = ({}, 0) if state is None else state

    def run(self, feeds: "np.ndarray | dict", *, advance: bool = True) -> dict[str, np.ndarray]:
        g = self.graph
        feeds, s = normalize_feeds(g, feeds)
        self.ctx.positions = np.arange(self.pos, self.pos + s, dtype=np.int64)
        env = {name: np.asarray(feeds[name]) for name in g.inputs}
        run_nodes(g, self._order, env, self.ctx, self.observer, self._free_after)
        if advance:
            self.pos += s
        return {o: env[o] for o in g.outputs}

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        """Run and return the first output (the logits)."""
        return self.run(np.asarray(tokens, dtype=np.int64))[self.graph.outputs[0]]


def decode(step: Callable[[np.ndarray], np.ndarray], prompt_ids, max_new_tokens: int, *,
           pick: Optional[Callable[[np.ndarray], int]] = None, stop_ids=()) -> Iterator[int]:
    """The decode loop (the only one): prefill ``prompt_ids`` with ``step`` (token ids
    ``[S]`` -> logits of the last position ``[V]``), then pick and feed one token per step.
    Yields each new token; a token in ``stop_ids`` ends the loop and is not yielded.
    ``pick`` defaults to greedy (argmax)."""
    pick = pick or (lambda row: int(np.argmax(row)))
    last = step(np.asarray(prompt_ids, np.int64))
    for i in range(max_new_tokens):
        nxt = pick(last)
        if nxt in stop_ids:
            return
        yield nxt
        if i + 1 < max_new_tokens:
            last = step(np.array([nxt], np.int64))


def generate(interp, prompt_ids, max_new_tokens: int, eos_ids=()) -> list[int]:
    """Greedy tokens from a fresh sequence on ``interp`` (either interpreter): :func:`decode`."""
    interp.reset()
    return list(decode(lambda ids: interp.logits(ids[None, :])[0, -1], prompt_ids, max_new_tokens,
                       stop_ids=set(eos_ids)))
