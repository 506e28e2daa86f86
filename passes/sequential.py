"""Layer-by-layer calibration: the engine under GPTQ, SparseGPT, AWQ and mixed precision.

These passes need, for every linear ``W[N, K]``, the inputs ``X[T, K]`` it sees on
the calibration tokens -- or their Hessian ``H = 2 X^T X / T`` -- *after* the
layers before it were already compressed (so each layer corrects for the error
of the ones before it, as in GPTQ's sequential quantization).  Running the whole
model once per layer would cost O(layers^2); keeping every activation of a 7B
model would not fit.  So the model is run a piece at a time:

* :func:`plait.ir.interpreter.segments` cuts the graph where one value carries
  everything forward (the residual stream between the attention and the MLP
  halves of each block);
* only that value is kept between pieces, for every calibration window
  (``T x D`` floats: 4.7 MB for SmolLM2 on 2048 tokens, 33 MB for a 7B model);
* inside a segment the linears are handled in groups that read the same value
  (q/k/v, then o; gate/up, then down): the segment is run with an observer that
  records that value, the pass's ``process(group)`` compresses the group's
  weights, and the segment is run again for the next group, so the down
  projection is calibrated on the outputs of the already-quantized gate/up
  ("true sequential").  After the last group the segment's output is computed
  with the compressed weights and the next segment starts from it.

Peak memory is one segment's values for one window plus one group's ``X``.  Each
segment runs ``groups + 1`` times: about 3 forward passes over the calibration
tokens in all.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from plait.ir import Graph
from plait.ir.interpreter import run_nodes, segments
from plait.ir.ops import EvalContext

from .calibrate import calibration_ids, require_data
from .framework import PassError
from .select import LinearWeight


@dataclass
class Group:
    """The selected linear weights of one segment that read the same value."""

    value: str                       # the value they read (their input)
    items: list[LinearWeight]
    x: np.ndarray                    # float32 [T, K]: the value on every calibration token
    segment: int
    _h: Optional[torch.Tensor] = field(default=None, repr=False)

    @property
    def tokens(self) -> int:
        return int(self.x.shape[0])

    def hessian(self) -> torch.Tensor:
        """``2 X^T X / T`` (float64 [K, K]; the GPTQ/OBS Hessian of ``||W X^T||^2``)."""
        if self._h is None:
            x = torch.from_numpy(self.x).double()
            self._h = (x.T @ x) * (2.0 / max(1, x.shape[0]))
        return self._h


def run_by_groups(graph: Graph, weights, ctx, options: dict, selected: list[LinearWeight],
                  process: Callable[[Group], None], pass_name: str) -> dict:
    """Run ``graph`` segment by segment on the calibration tokens of ``ctx`` (the
    :data:`~plait.passes.calibrate.CALIBRATION_OPTIONS` in ``options``) and call
    ``process(group)`` for every group of ``selected`` linear weights, in execution
    order, each seeing inputs computed with every earlier group already processed.

    Returns ``{"tokens", "windows", "segments", "groups"}`` for the pass details.
    """
    ids = calibration_ids(ctx, options, pass_name)
    require_data(graph, weights, pass_name)
    if len(graph.inputs) != 1:
        raise PassError(f"{pass_name}: graph {graph.name!r} has inputs {graph.inputs}; "
                        f"calibration feeds token ids to a single input")
    win = options["window"]
    windows = [ids[None, i:i + win] for i in range(0, ids.size, win)]
    live = [{graph.inputs[0]: w} for w in windows]
    by_linear = {lin.name: it for it in selected for lin in it.linears}
    n_groups = 0
    done: set[str] = set()   # an item read by linears of several values: processed with the first
    for si, (nodes, live_out) in enumerate(segments(graph)):
        # the groups of this segment, in the order their inputs are produced
        order: list[str] = []
        members: dict[str, list[LinearWeight]] = {}
        for n in nodes:
            it = by_linear.get(n)
            if it is None:
                continue
            v = graph.node(n).inputs[0]
            if v not in members:
                order.append(v)
                members[v] = []
            if it not in members[v]:
                members[v].append(it)
        for v in order:
            items = [it for it in members[v] if it.weight not in done]
            if not items:
                continue
            x = _capture(graph, weights, nodes, live, v)
            process(Group(v, items, x, si))
            done.update(it.weight for it in items)
            n_groups += 1
        ctx.log(f"{pass_name}: segment {si + 1}, {len(order)} groups")
        if len(done) == len(selected):
            break                     # the rest of the model (e.g. the LM head) is not needed
        live = _advance(graph, weights, nodes, live, live_out)
    return {"tokens": int(ids.size), "windows": len(windows), "segments": si + 1, "groups": n_groups}


def _capture(graph, weights, nodes, live, value) -> np.ndarray:
    """``value`` on every calibration token (float32 [T, K]): the segment run per window."""
    rows = []
    ev = EvalContext(weights)
    target = graph.node(value)
    for env0 in live:
        env = dict(env0)
        ev.kv, ev.positions = {}, _positions(env0)
        if value in env:
            got = env[value]
        else:
            stop = nodes.index(target.name) + 1
            run_nodes(graph, nodes[:stop], env, ev)
            got = env[value]
        rows.append(np.asarray(got, np.float32).reshape(-1, got.shape[-1]))
    return np.concatenate(rows, axis=0)


def _advance(graph, weights, nodes, live, live_out) -> list[dict]:
    ev = EvalContext(weights)
    out = []
    for env0 in live:
        env = dict(env0)
        ev.kv, ev.positions = {}, _positions(env0)
        run_nodes(graph, nodes, env, ev)
        out.append({v: env[v] for v in live_out})
    return out


def _positions(env: dict) -> np.ndarray:
    s = next(iter(env.values())).shape[1]
    return np.arange(s, dtype=np.int64)
