"""Reference interpreter: runs an IR graph in float32 numpy with a KV cache.

``Interpreter(graph, weights)``; ``run(tokens)`` evaluates the graph for the next
``S`` tokens (prefill when the cache is empty, then one token at a time for
decode) and returns the graph outputs.  Values are freed after their last use.

``observer``: optional ``callable(node, args, out)`` called after every evaluated
node (not inputs) with its input values and its result -- e.g. the calibration
pass records the inputs of linear layers.  It must not modify the arrays.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .graph import Graph
from .ops import EvalContext, get_op


class Interpreter:
    def __init__(self, graph: Graph, weights, observer=None):
        self.graph = graph
        self.observer = observer
        self.ctx = EvalContext(weights)
        self.pos = 0
        order = graph.order()
        self._order = order
        last_use: dict[str, int] = {}
        for i, n in enumerate(order):
            for a in graph.node(n).inputs:
                last_use[a] = i
        keep = set(graph.outputs)
        self._free_after = {}
        for v, i in last_use.items():
            if v not in keep and graph.node(v).op != "param":
                self._free_after.setdefault(i, []).append(v)

    def reset(self) -> None:
        """Forget the KV cache (start a new sequence)."""
        self.ctx.reset_cache()
        self.pos = 0

    def run(self, feeds: "np.ndarray | dict", *, advance: bool = True) -> dict[str, np.ndarray]:
        g = self.graph
        if not isinstance(feeds, dict):
            if len(g.inputs) != 1:
                raise ValueError(f"graph has inputs {g.inputs}; pass a dict")
            feeds = {g.inputs[0]: feeds}
        missing = [i for i in g.inputs if i not in feeds]
        if missing:
            raise ValueError(f"missing graph inputs: {missing}")
        first = np.asarray(feeds[g.inputs[0]])
        s = first.shape[-1] if first.ndim >= 1 else 1
        self.ctx.positions = np.arange(self.pos, self.pos + s, dtype=np.int64)
        env: dict[str, np.ndarray] = {}
        obs = self.observer
        for i, name in enumerate(self._order):
            node = g.node(name)
            if node.op == "input":
                env[name] = np.asarray(feeds[name])
            elif obs is None:
                env[name] = get_op(node.op).evaluate(node, [env[a] for a in node.inputs], self.ctx)
            else:
                args = [env[a] for a in node.inputs]
                env[name] = get_op(node.op).evaluate(node, args, self.ctx)
                obs(node, args, env[name])
            for v in self._free_after.get(i, ()):
                env.pop(v, None)
        if advance:
            self.pos += s
        return {o: env[o] for o in g.outputs}

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        """Run and return the first output (the logits)."""
        return self.run(np.asarray(tokens, dtype=np.int64))[self.graph.outputs[0]]


def generate(interp: Interpreter, prompt_ids, max_new_tokens: int, eos_ids=(), on_token=None) -> list[int]:
    """Greedy generation: prefill the prompt, then decode one token per step."""
    interp.reset()
    ids = np.asarray(prompt_ids, dtype=np.int64)[None, :]
    out: list[int] = []
    logits = interp.logits(ids)
    for _ in range(max_new_tokens):
        nxt = int(np.argmax(logits[0, -1]))
        out.append(nxt)
        if on_token is not None:
            on_token(nxt)
        if nxt in eos_ids:
            break
        logits = interp.logits(np.array([[nxt]], dtype=np.int64))
    return out
