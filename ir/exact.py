"""Exact mode: run a graph entirely in the integers of :mod:`plait.ir.numerics`.

Float mode (:class:`plait.ir.Interpreter`) is the accuracy reference: weights
dequantized, float32 activations.  Exact mode is the definition every backend (RTL,
HLS C++, the runtime's CPU/CUDA integer kernels) reproduces bit for bit:

* the residual stream and every special-function value are ``FX`` integers
  (48-bit, 16 fractional bits, :mod:`.numerics.act`); the embedding row of a token
  is converted to ``FX`` at the host boundary and the logits leave as ``FX``;
* every linear reads int8 activations: its input is quantized by the value's
  :class:`~plait.ir.types.ActSpec` (``act(i8, dynamic)``: a scale per token;
  ``act(i8, static, m, e)``: the calibrated per-tensor scale), set by the
  ``quantize_act`` pass -- a linear whose input has no spec is an error;
* the engines' arithmetic gives ``P = sum_g acc_g * mant_g`` (48 bits,
  :func:`~plait.ir.numerics.linear_int`), and
  :func:`~plait.ir.numerics.act.linear_out_fx` scales it back to ``FX``.  The
  weights come from the artifact's *packed* tensors when the ``pack`` pass ran
  (``attrs["pack"]`` on the param: the engine's beats, unpacked by
  :mod:`plait.ir.numerics.pack` -- so exact mode runs exactly what the engines are
  fed), from the codes and scales otherwise; a bias is the pack's fixed-point
  bias (:func:`~plait.ir.numerics.pack.encode_bias`) shifted to ``FX``.  A linear
  weight left in float by the recipe (SmolLM2's tied ``lm_head``) runs as W8
  symmetric RTN with the largest group of 128/64/32/16 dividing K
  (:func:`exact_weight`) -- exact mode has no float multiplier;
* RMSNorm, RoPE, attention with an int8 KV cache, SwiGLU, SiLU, products and
  residual adds are the integer functions of :mod:`.numerics.sfu`.

Speed: a linear is computed per quantization group as a float32 matrix product of
integer-valued operands (exact: every partial sum of ``G <= 1024`` int8 x int8
products is an integer below ``2^24``), then the group sums are scaled by the
mantissas in int64.  No Python loop touches elements.

``on_linear(node, x_int8[T, K], qw, p[T, N])`` (optional) is called for every linear
evaluation: the int8 rows the engine multiplies, the
:class:`~plait.ir.numerics.QuantizedWeight` it multiplies them by, and the 48-bit
``P`` it must produce -- the hook the RTL layer tests use.

``linear_p(node, x_int8[T, K], qw, packed)`` (optional) *computes* every linear's ``P``
in place of the float32 products above: ``packed`` is the artifact's engine format
(:func:`~plait.ir.numerics.pack.read_packed`; ``None`` when the graph is not packed,
then ``qw`` defines the weight).  It must return exactly the ``P`` of the contract --
the runtime's devices put their integer kernels here (:mod:`plait.runtime.kernels`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .graph import Graph, Node
from .interpreter import free_plan, normalize_feeds
from .numerics.act import (FX_FRAC, QAct, from_fx, linear_out_fx, quantize_dynamic, quantize_static,
                           shift_round, to_fx)
from .numerics.common import QuantizedWeight, encode_scales, quantize_rtn, signed_weight
from .numerics.pack import DspPacked, encode_bias, read_packed, unpack_dsp, unpack_lut
from .numerics.sfu import (KVCache, attention, encode_signed, mul_fx, residual_add, rms_eps_table, rmsnorm,
                           rope, rope_table, silu, swiglu)
from .ops import OpError, rope_inv_freq

#: group sizes tried, in order, for a float linear weight exact mode quantizes itself
EXACT_W8_GROUPS = (128, 64, 32, 16)
_SUBGROUP_MAX = 1024          # float32 partial sums of int8 x int8 stay exact below this
_CHUNK_ELEMS = 1 << 24        # rows of a big linear are processed in chunks of this many outputs


class ExactError(OpError):
    """A graph exact mode cannot run (missing activation spec, unsupported op)."""


def _fail(node: Node, msg: str) -> ExactError:
    origin = f" (from {node.origin})" if node.origin else ""
    return ExactError(f"exact mode: %{node.name} = {node.op}(...){origin}: {msg}")


def exact_weight(weights, param: Node) -> QuantizedWeight:
    """The quantized weight exact mode multiplies for a linear's weight param."""
    t = param.type
    w = weights[param.attrs["weight"]]
    if t.quant is not None:
        q = t.quant
        zeros = np.asarray(weights[q.zeros]) if q.zeros else None
        return QuantizedWeight(np.asarray(w), np.asarray(weights[q.scales], np.float32), zeros,
                               q.bits, q.group_size, q.scheme)
    k = int(t.shape[1])
    for g in EXACT_W8_GROUPS:
        if k % g == 0:
            return quantize_rtn(np.asarray(w, np.float32), 8, g, "sym")
    raise _fail(param, f"float linear weight with K={k}: no group size in {EXACT_W8_GROUPS} divides it")


@dataclass
class _Linear:
    """A linear weight prepared for fast exact evaluation."""

    qw: QuantizedWeight
    wq: np.ndarray          # float32 [groups, G, N]: integer-valued signed weights
    mant: np.ndarray        # float64 [groups, N]: the 16-bit mantissas (exact)
    exp: int
    sub: int                # sub-group length (<= 1024) of the float32 products

    @classmethod
    def build(cls, qw: QuantizedWeight, packed=None) -> "_Linear":
        """From the unpacked engine tensors of ``packed`` if given, else from ``qw``."""
        n, k = qw.codes.shape
        g = qw.group_size
        ng = k // g
        if packed is None:
            q = signed_weight(qw)
            mant, e = encode_scales(qw.scales)
        else:
            up = unpack_dsp(packed) if isinstance(packed, DspPacked) else unpack_lut(packed)
            q, mant, e = up.q, up.mant, up.exp
            if q.shape != (n, k) or mant.shape != (n, ng):
                raise ExactError(f"packed weight has shape {q.shape} / mantissas {mant.shape}, "
                                 f"expected {(n, k)} / {(n, ng)}")
        wq = np.ascontiguousarray(q.astype(np.float32).reshape(n, ng, g).transpose(1, 2, 0))
        sub = g
        while sub > _SUBGROUP_MAX:
            sub //= 2
        if g % sub:
            raise ExactError(f"group size {g} cannot be split into float32-exact sub-groups")
        return cls(qw, wq, np.ascontiguousarray(mant.T, dtype=np.float64), e, sub)

    def p(self, x8: np.ndarray) -> np.ndarray:
        """``P[T, N]`` (int64) of int8 rows ``x8[T, K]``: equals ``linear_int(x8, qw)[0]``.

        Group sums come from float32 products of integers (exact, see module doc);
        scaling by the mantissas and summing the groups runs in float64, exact as
        well: every product and partial sum is an integer below ``2^47`` (the 48-bit
        ``P`` of the contract), far below float64's ``2^53``.
        """
        t, k = x8.shape
        ng, g, n = self.wq.shape
        step = max(1, _CHUNK_ELEMS // max(1, ng * n))
        parts = []
        for r0 in range(0, t, step):
            xs = x8[r0:r0 + step].reshape(-1, ng, g).transpose(1, 0, 2).astype(np.float32)  # [ng, t', G]
            if self.sub == g:
                acc = _bmm(xs, self.wq)                                    # [ng, t', N], exact
            else:
                acc = np.zeros((ng, xs.shape[1], n), np.float64)
                for s0 in range(0, g, self.sub):
                    acc += _bmm(xs[..., s0:s0 + self.sub], self.wq[:, s0:s0 + self.sub])
            parts.append(np.einsum("gtn,gn->tn", acc, self.mant).astype(np.int64))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _bmm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched float32 matrix product ``a[g, t, G] @ b[g, G, N]`` through torch's
    batched GEMM (faster than numpy's stacked matmul here, for one row and for many;
    exact on these integer-valued operands)."""
    import torch
    return torch.bmm(torch.from_numpy(np.ascontiguousarray(a)), torch.from_numpy(b)).numpy()


class ExactInterpreter:
    """Runs a graph in exact mode with a KV cache (same calling convention as
    :class:`plait.ir.Interpreter`: ``run(tokens)``/``logits(tokens)``, ``reset()``)."""

    def __init__(self, graph: Graph, weights, on_linear: Optional[Callable] = None,
                 linear_p: Optional[Callable] = None):
        self.graph = graph
        self.weights = weights
        self.on_linear = on_linear
        self.linear_p = linear_p
        self._packed: dict[str, object] = {}
        self.pos = 0
        self._order = graph.order()
        self._free_after = free_plan(graph, self._order)
        self._lin: dict[str, _Linear] = {}
        self._gamma: dict[str, tuple[np.ndarray, int, np.ndarray]] = {}
        self._rope: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._bias: dict[str, np.ndarray] = {}
        self._fuse: dict[str, list] = {}          # input value -> linears computed together
        self._fused: dict[str, "_Linear"] = {}
        self._slices: dict[str, slice] = {}
        self.kv: dict[str, KVCache] = {}
        self._check()

    # ------------------------------------------------------------ checks
    def _check(self) -> None:
        g = self.graph
        for node in g.nodes():
            if node.op not in _EVAL and node.op != "input":
                raise _fail(node, f"op {node.op!r} has no integer definition")
            if node.op == "linear":
                x = g.node(node.inputs[0])
                if x.type is None or x.type.act is None:
                    raise _fail(node, f"its input %{x.name} has no int8 activation spec; compile with a "
                                      f"recipe that runs the quantize_act pass (e.g. w8a8)")
                if g.node(node.inputs[1]).op != "param":
                    raise _fail(node, "the weight must be a param")

    def reset(self) -> None:
        """Start a new sequence (a fresh KV cache; a saved :meth:`cache_state` is untouched)."""
        self.load_cache_state(None)

    def cache_state(self):
        """The sequence state (int8 KV caches and position); see :meth:`load_cache_state`."""
        return (self.kv, self.pos)

    def load_cache_state(self, state) -> None:
        """Continue the sequence of ``state`` (``None``: a new, empty one)."""
        self.kv, self.pos = ({}, 0) if state is None else state

    # ------------------------------------------------------------ prepared weights
    def linear(self, param: Node) -> _Linear:
        name = param.attrs["weight"]
        lin = self._lin.get(name)
        if lin is None:
            packed = read_packed(param.attrs["pack"], self.weights) if "pack" in param.attrs else None
            self._packed[name] = packed
            lin = self._lin[name] = _Linear.build(exact_weight(self.weights, param), packed)
        return lin

    def bias_fx(self, node: Node) -> np.ndarray:
        """The linear's bias in FX: the pack's fixed-point bias, or the same encoding of
        the float bias when the graph is not packed."""
        b = self.graph.node(node.inputs[2])
        if b.name not in self._bias:
            rq = node.attrs.get("requant") or {}
            if "arrays" in rq and "bias" in rq["arrays"]:
                vals, e = np.asarray(self.weights[rq["arrays"]["bias"]]), int(rq["bias_exp"])
            else:
                vals, e = encode_bias(np.asarray(self.weights[b.attrs["weight"]], np.float64))
            self._bias[b.name] = shift_round(vals, e - FX_FRAC)
        return self._bias[b.name]

    def gamma(self, param: Node, eps: float):
        key = f"{param.attrs['weight']}@{eps!r}"
        if key not in self._gamma:
            gq, e = encode_signed(np.asarray(self.weights[param.attrs["weight"]], np.float64))
            self._gamma[key] = (gq, e, rms_eps_table(float(eps)))
        return self._gamma[key]

    def rope_rows(self, node: Node, positions: np.ndarray):
        a = node.attrs
        need = int(positions.max()) + 1 if positions.size else 1
        cos, sin = self._rope.get(node.name, (None, None))
        if cos is None or cos.shape[0] < need:
            n_pos = max(need, 512)
            inv = rope_inv_freq(a["head_dim"], a["theta"], a.get("scaling"))
            cos, sin = rope_table(inv, -(-n_pos // 512) * 512)
            self._rope[node.name] = (cos, sin)
        return cos[positions], sin[positions]

    # ------------------------------------------------------------ running
    def run(self, feeds) -> dict[str, np.ndarray]:
        """Evaluate the graph for the next ``S`` tokens; returns the outputs as FX integers."""
        g = self.graph
        feeds, s = normalize_feeds(g, feeds)
        self.positions = np.arange(self.pos, self.pos + s, dtype=np.int64)
        env: dict[str, object] = {}
        self._qcache: dict[str, QAct] = {}
        self._pcache: dict[str, np.ndarray] = {}
        for i, name in enumerate(self._order):
            node = g.node(name)
            if node.op == "input":
                env[name] = np.asarray(feeds[name])
            else:
                env[name] = _EVAL[node.op](self, node, [env[a] for a in node.inputs])
            for v in self._free_after.get(i, ()):
                env.pop(v, None)
        self.pos += s
        return {o: env[o] for o in g.outputs}

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        """Run and return the first output as float64 (``FX`` / 2^16)."""
        out = self.run(np.asarray(tokens, dtype=np.int64))[self.graph.outputs[0]]
        return from_fx(out)

    # ------------------------------------------------------------ linear
    def quantized_input(self, node: Node, x: np.ndarray) -> QAct:
        src = self.graph.node(node.inputs[0])
        qa = self._qcache.get(src.name)
        if qa is None:
            spec = src.type.act
            if spec.mode == "static":
                qa = quantize_static(x, spec.m, spec.e)
            else:
                qa = quantize_dynamic(x)
            self._qcache[src.name] = qa
        return qa

    def _siblings(self, node: Node) -> list[Node]:
        """The linears reading the same input with the same K and group size (q/k/v,
        gate/up): exact mode computes their P in one product (columns are independent,
        so each linear's P is unchanged) and slices it."""
        src = node.inputs[0]
        if src not in self._fuse:
            lins = [self.graph.node(u) for u in self.graph.users(src)]
            lins = [n for n in self._order_of(lins) if n.op == "linear" and n.inputs[0] == src]
            key = lambda n: (self.linear(self.graph.node(n.inputs[1])).qw.group_size,
                             self.graph.node(n.inputs[1]).type.shape[1])
            self._fuse[src] = [n for n in lins if key(n) == key(node)] if len(lins) > 1 else [node]
        sib = self._fuse[src]
        return sib if node in sib else [node]

    def _order_of(self, nodes):
        rank = {n: i for i, n in enumerate(self._order)}
        return sorted(nodes, key=lambda n: rank[n.name])

    def _fused_p(self, node: Node, rows: QAct) -> np.ndarray:
        sib = self._siblings(node)
        if len(sib) == 1:
            return self.linear(self.graph.node(node.inputs[1])).p(rows.q)
        key = node.inputs[0]
        if key not in self._pcache:
            fused = self._fused.get(key)
            if fused is None:
                parts = [self.linear(self.graph.node(n.inputs[1])) for n in sib]
                fused = self._fused[key] = _Linear(
                    parts[0].qw, np.concatenate([l.wq for l in parts], axis=2),
                    np.concatenate([l.mant for l in parts], axis=1), parts[0].exp, parts[0].sub)
                bounds = np.cumsum([0] + [l.wq.shape[2] for l in parts])
                for n, l, a, b in zip(sib, parts, bounds, bounds[1:]):
                    self._slices[n.name] = slice(int(a), int(b))
                    l.wq = fused.wq[:, :, a:b]          # a view: the weights are held once
                    l.mant = fused.mant[:, a:b]
            self._pcache[key] = fused.p(rows.q)
        return self._pcache[key][:, self._slices[node.name]]

    def eval_linear(self, node: Node, args) -> np.ndarray:
        x = args[0]
        qa = self.quantized_input(node, x)
        param = self.graph.node(node.inputs[1])
        lin = self.linear(param)
        rows = qa.rows()
        if self.linear_p is not None:
            p = np.asarray(self.linear_p(node, rows.q, lin.qw, self._packed[param.attrs["weight"]]))
            if p.shape != (rows.q.shape[0], lin.qw.codes.shape[0]):
                raise _fail(node, f"linear_p returned P of shape {p.shape}, expected "
                                  f"{(rows.q.shape[0], lin.qw.codes.shape[0])}")
        else:
            p = self._fused_p(node, rows)
        if self.on_linear is not None:
            self.on_linear(node, rows.q, lin.qw, p)
        bias = self.bias_fx(node) if len(node.inputs) == 3 else None
        y = linear_out_fx(p, lin.exp, rows, bias)
        return y.reshape(*x.shape[:-1], y.shape[-1])


# ---------------------------------------------------------------- op table

def _param(interp, node, args):
    return node                               # consumers fetch what they need from the node


def _embedding(interp, node, args):
    table, ids = args
    arr = interp.weights[table.attrs["weight"]]
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= arr.shape[0]):
        raise _fail(node, f"token id {int(ids.max() if ids.max() >= arr.shape[0] else ids.min())} is outside "
                          f"the vocabulary [0, {arr.shape[0]})")
    return to_fx(np.asarray(arr)[ids])


def _rmsnorm(interp, node, args):
    x, w = args
    gq, e, eps = interp.gamma(w, node.attrs["eps"])
    return rmsnorm(x, gq, e, eps)


def _rope(interp, node, args):
    cos, sin = interp.rope_rows(node, interp.positions)
    return rope(args[0], cos, sin, node.attrs["n_heads"], node.attrs["head_dim"])


def _attention(interp, node, args):
    a = node.attrs
    cache = interp.kv.setdefault(node.name, KVCache())
    scale = a.get("scale") or 1.0 / np.sqrt(a["head_dim"])
    return attention(*args, cache, n_heads=a["n_heads"], n_kv_heads=a["n_kv_heads"],
                     head_dim=a["head_dim"], scale=scale)


def _add(interp, node, args):
    for a, src in zip(args, node.inputs):
        if isinstance(a, Node):
            raise _fail(node, f"adding a weight (%{src}) is not supported in exact mode")
    return residual_add(args[0], args[1])


def _mul(interp, node, args):
    for a, src in zip(args, node.inputs):
        if isinstance(a, Node):
            raise _fail(node, f"multiplying by a weight (%{src}) is not supported in exact mode")
    return mul_fx(args[0], args[1])


_EVAL: dict[str, Callable] = {
    "param": _param,
    "embedding": _embedding,
    "rmsnorm": _rmsnorm,
    "linear": ExactInterpreter.eval_linear,
    "rope": _rope,
    "attention": _attention,
    "swiglu": lambda interp, node, args: swiglu(args[0], args[1]),
    "silu": lambda interp, node, args: silu(args[0]),
    "add": _add,
    "mul": _mul,
    "last_token": lambda interp, node, args: args[0][:, -1:, :],
}

__all__ = ["ExactInterpreter", "ExactError", "exact_weight", "EXACT_W8_GROUPS", "FX_FRAC"]
