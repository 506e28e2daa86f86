"""The op registry: for every IR op, its shape rule, numpy reference and cost.

An op is a subclass of :class:`OpDef` registered with :func:`register`.  It defines

* ``infer(graph, node) -> TensorType`` -- shape/type inference (raise
  :class:`OpError` naming the node on bad input);
* ``evaluate(node, args, ctx) -> np.ndarray`` -- the float reference semantics
  (numpy, float32), used by :mod:`plait.ir.interpreter`;
* ``cost(graph, node, env) -> Cost`` -- multiply-accumulates and bytes moved for
  one call with symbolic dims bound by ``env`` (e.g. ``{"S": 1}`` per decode token).

The LLM-level ops (``rmsnorm``, ``rope``, ``attention``, ``swiglu``) are single
ops so that the compiler can map them onto the special-function unit and keep
the KV cache in one place.  Integer (hardware) semantics live in
:mod:`plait.ir.numerics`, not here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from .graph import Graph, Node
from .types import FLOAT_DTYPES, IRTypeError, TensorType, resolve_dim


class OpError(ValueError):
    """An op used with bad inputs or attributes; the message names the node."""


@dataclass
class Cost:
    macs: int = 0
    bytes: int = 0          # bytes read + written (weights at their stored width)
    weight_bytes: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.macs + other.macs, self.bytes + other.bytes, self.weight_bytes + other.weight_bytes)


class EvalContext:
    """State of one interpreter run: weights, KV cache, positions, dequant cache, and
    ``linear``: where a linear's product is computed (``None``: torch on the host; else
    ``linear(node, x, w[, b])`` returning ``x @ w.T (+ b)``, e.g. a device kernel)."""

    def __init__(self, weights, positions: Optional[np.ndarray] = None,
                 linear: Optional[Callable] = None):
        self.weights = weights
        self.linear = linear
        self.positions = positions if positions is not None else np.zeros(0, np.int64)
        self.kv: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.param_cache: dict[str, np.ndarray] = {}



OPS: dict[str, "OpDef"] = {}


def register(cls):
    OPS[cls.name] = cls()
    return cls


def get_op(name: str, where: str = "") -> "OpDef":
    try:
        return OPS[name]
    except KeyError:
        raise OpError(f"unknown op {name!r}{' at ' + where if where else ''}; "
                      f"registered ops: {', '.join(sorted(OPS))}") from None


def infer_type(graph: Graph, node: Node) -> TensorType:
    return get_op(node.op, f"%{node.name}").infer(graph, node)


Graph.type_rule = infer_type          # Graph.add infers types through the registry


def _fail(node: Node, msg: str) -> OpError:
    origin = f" (from {node.origin})" if node.origin else ""
    return OpError(f"%{node.name} = {node.op}(...){origin}: {msg}")


def _in(graph: Graph, node: Node, i: int) -> TensorType:
    if i >= len(node.inputs):
        raise _fail(node, f"expects at least {i + 1} inputs, got {len(node.inputs)}")
    t = graph.node(node.inputs[i]).type
    if t is None:
        raise _fail(node, f"input %{node.inputs[i]} has no type")
    return t


def _nbytes(t: TensorType, env: dict) -> int:
    return (t.numel(env) * t.bits + 7) // 8


def _weight_bytes(t: TensorType, env: dict) -> int:
    return (t.stored_bits(env) + 7) // 8


def _same_dim(a, b) -> bool:
    return a == b or isinstance(a, str) or isinstance(b, str)


class OpDef:
    name = ""
    n_inputs: Optional[tuple[int, ...]] = None  # allowed input counts

    def check_arity(self, node: Node) -> None:
        if self.n_inputs is not None and len(node.inputs) not in self.n_inputs:
            raise _fail(node, f"expects {' or '.join(map(str, self.n_inputs))} inputs, got {len(node.inputs)}")

    def infer(self, graph: Graph, node: Node) -> TensorType:
        raise NotImplementedError

    def evaluate(self, node: Node, args: list, ctx: EvalContext) -> np.ndarray:
        raise NotImplementedError

    def cost(self, graph: Graph, node: Node, env: dict) -> Cost:
        t = node.type
        ins = [graph.node(i).type for i in node.inputs if graph.node(i).op != "param"]
        return Cost(0, sum(_nbytes(x, env) for x in ins) + _nbytes(t, env))


# ------------------------------------------------------------------ sources
@register
class Input(OpDef):
    name = "input"
    n_inputs = (0,)

    def infer(self, graph, node):
        raise _fail(node, "graph inputs need an explicit type")

    def evaluate(self, node, args, ctx):
        raise _fail(node, "graph input was not provided")

    def cost(self, graph, node, env):
        return Cost()


@register
class Param(OpDef):
    """A weight, by name. Its type may carry quantization and sparsity specs."""
    name = "param"
    n_inputs = (0,)

    def infer(self, graph, node):
        raise _fail(node, "params need an explicit type")

    def evaluate(self, node, args, ctx):
        name = node.attrs["weight"]
        if name in ctx.param_cache:
            return ctx.param_cache[name]
        t = node.type
        w = ctx.weights[name]
        if t.quant is not None:
            from .numerics.common import QuantizedWeight, dequantize
            q = t.quant
            zeros = ctx.weights[q.zeros] if q.zeros else None
            w = dequantize(QuantizedWeight(np.asarray(w), np.asarray(ctx.weights[q.scales]), zeros,
                                           q.bits, q.group_size, q.scheme))
        elif w.dtype != np.float32:
            w = w.astype(np.float32)
        ctx.param_cache[name] = w
        return w

    def cost(self, graph, node, env):
        return Cost()


# ------------------------------------------------------------------ LLM ops
@register
class Embedding(OpDef):
    name = "embedding"
    n_inputs = (2,)

    def infer(self, graph, node):
        self.check_arity(node)
        table, ids = _in(graph, node, 0), _in(graph, node, 1)
        if table.rank != 2:
            raise _fail(node, f"embedding table must be 2-D, got {table.text()}")
        if ids.dtype not in ("i64", "i32"):
            raise _fail(node, f"token ids must be integer, got {ids.text()}")
        return TensorType(ids.shape + (table.shape[1],), "f32")

    def evaluate(self, node, args, ctx):
        table, ids = args
        return table[ids].astype(np.float32)

    def cost(self, graph, node, env):
        t = node.type
        return Cost(0, 2 * _nbytes(t, env), _nbytes(t, env))


@register
class RMSNorm(OpDef):
    name = "rmsnorm"
    n_inputs = (2,)

    def infer(self, graph, node):
        self.check_arity(node)
        x, w = _in(graph, node, 0), _in(graph, node, 1)
        if w.rank != 1 or not _same_dim(w.shape[0], x.shape[-1]):
            raise _fail(node, f"weight {w.text()} does not match the last dim of {x.text()}")
        if "eps" not in node.attrs:
            raise _fail(node, "missing attribute 'eps'")
        return x

    def evaluate(self, node, args, ctx):
        x, w = args
        var = np.mean(np.square(x, dtype=np.float32), axis=-1, keepdims=True)
        return (x / np.sqrt(var + np.float32(node.attrs["eps"])) * w).astype(np.float32)


@register
class Linear(OpDef):
    """``y = x @ W^T (+ b)``, W is ``[N, K]`` (torch's layout)."""
    name = "linear"
    n_inputs = (2, 3)

    def infer(self, graph, node):
        self.check_arity(node)
        x, w = _in(graph, node, 0), _in(graph, node, 1)
        if w.rank != 2:
            raise _fail(node, f"weight must be 2-D [N, K], got {w.text()}")
        if not _same_dim(x.shape[-1], w.shape[1]):
            raise _fail(node, f"input {x.text()} has K={x.shape[-1]} but weight {w.text()} has K={w.shape[1]}")
        if len(node.inputs) == 3:
            b = _in(graph, node, 2)
            if b.shape != (w.shape[0],):
                raise _fail(node, f"bias {b.text()} does not match N={w.shape[0]}")
        return TensorType(x.shape[:-1] + (w.shape[0],), "f32")

    def evaluate(self, node, args, ctx):
        if ctx.linear is not None:
            return ctx.linear(node, *args)
        # torch's GEMM/GEMV (x @ w.T without a transposed copy; numpy's batched matmul
        # takes a slow path for a transposed weight at one row, the decode case)
        import torch
        x, w = args[0], args[1]
        tx = torch.from_numpy(np.ascontiguousarray(x, np.float32))
        tb = torch.from_numpy(np.ascontiguousarray(args[2], np.float32)) if len(args) == 3 else None
        with torch.no_grad():
            return torch.nn.functional.linear(tx, torch.from_numpy(np.ascontiguousarray(w, np.float32)), tb).numpy()

    def cost(self, graph, node, env):
        x = graph.node(node.inputs[0]).type
        w = graph.node(node.inputs[1]).type
        tokens = x.numel(env) // resolve_dim(x.shape[-1], env)
        n, k = (resolve_dim(d, env) for d in w.shape)
        wb = _weight_bytes(w, env)
        return Cost(tokens * n * k, wb + _nbytes(x, env) + _nbytes(node.type, env), wb)


def rope_inv_freq(head_dim: int, theta: float, scaling: Optional[dict]) -> np.ndarray:
    """Inverse frequencies of rotary embeddings, with Llama-3 / linear scaling."""
    inv = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    if not scaling:
        return inv
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind == "linear":
        return inv / float(scaling["factor"])
    if kind == "llama3":
        factor, lo, hi = float(scaling["factor"]), float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
        old = float(scaling["original_max_position_embeddings"])
        wavelen = 2 * math.pi / inv
        smooth = (old / wavelen - lo) / (hi - lo)
        scaled = np.where(wavelen > old / lo, inv / factor, inv)
        mid = (wavelen <= old / lo) & (wavelen >= old / hi)
        return np.where(mid, (1 - smooth) * inv / factor + smooth * inv, scaled)
    if kind in (None, "default"):
        return inv
    raise OpError(f"unsupported rope scaling {kind!r}")


@register
class RoPE(OpDef):
    """Rotary position embedding (half-split layout, as in HF Llama) on ``[B, S, H*hd]``.

    Positions come from the run's context (cache length + 0..S-1).
    """
    name = "rope"
    n_inputs = (1,)

    def infer(self, graph, node):
        self.check_arity(node)
        x = _in(graph, node, 0)
        for a in ("n_heads", "head_dim", "theta"):
            if a not in node.attrs:
                raise _fail(node, f"missing attribute {a!r}")
        hd, h = node.attrs["head_dim"], node.attrs["n_heads"]
        if hd % 2 or not _same_dim(x.shape[-1], h * hd):
            raise _fail(node, f"input {x.text()} is not {h} heads x {hd} (even) dims")
        return x

    def evaluate(self, node, args, ctx):
        x = args[0]
        h, hd = node.attrs["n_heads"], node.attrs["head_dim"]
        inv = rope_inv_freq(hd, node.attrs["theta"], node.attrs.get("scaling"))
        ang = ctx.positions[:, None].astype(np.float64) * inv[None, :]          # [S, hd/2]
        cos = np.cos(np.concatenate([ang, ang], -1)).astype(np.float32)
        sin = np.sin(np.concatenate([ang, ang], -1)).astype(np.float32)
        xs = x.reshape(*x.shape[:-1], h, hd)
        half = hd // 2
        rot = np.concatenate([-xs[..., half:], xs[..., :half]], -1)
        out = xs * cos[:, None, :] + rot * sin[:, None, :]
        return out.reshape(x.shape).astype(np.float32)


@register
class Attention(OpDef):
    """Causal multi-head attention with grouped KV heads and a KV cache.

    Inputs ``q [B,S,Hq*hd]``, ``k, v [B,S,Hkv*hd]`` (RoPE already applied).  The
    node's KV cache (keyed by node name in the context) grows by S per call.
    """
    name = "attention"
    n_inputs = (3,)

    def infer(self, graph, node):
        self.check_arity(node)
        q, k, v = (_in(graph, node, i) for i in range(3))
        a = node.attrs
        for key in ("n_heads", "n_kv_heads", "head_dim"):
            if key not in a:
                raise _fail(node, f"missing attribute {key!r}")
        if a["n_heads"] % a["n_kv_heads"]:
            raise _fail(node, f"n_heads={a['n_heads']} is not a multiple of n_kv_heads={a['n_kv_heads']}")
        if not _same_dim(q.shape[-1], a["n_heads"] * a["head_dim"]):
            raise _fail(node, f"q {q.text()} is not {a['n_heads']} x {a['head_dim']}")
        for t in (k, v):
            if not _same_dim(t.shape[-1], a["n_kv_heads"] * a["head_dim"]):
                raise _fail(node, f"k/v {t.text()} is not {a['n_kv_heads']} x {a['head_dim']}")
        return TensorType(q.shape[:-1] + (a["n_heads"] * a["head_dim"],), "f32")

    def evaluate(self, node, args, ctx):
        q, k, v = args
        a = node.attrs
        h, hkv, hd = a["n_heads"], a["n_kv_heads"], a["head_dim"]
        b, s = q.shape[:2]
        qh = q.reshape(b, s, h, hd).transpose(0, 2, 1, 3)
        kh = k.reshape(b, s, hkv, hd).transpose(0, 2, 1, 3)
        vh = v.reshape(b, s, hkv, hd).transpose(0, 2, 1, 3)
        if node.name in ctx.kv:
            pk, pv = ctx.kv[node.name]
            kh, vh = np.concatenate([pk, kh], 2), np.concatenate([pv, vh], 2)
        ctx.kv[node.name] = (kh, vh)
        t = kh.shape[2]
        scale = a.get("scale") or 1.0 / math.sqrt(hd)
        # softmax(q k^T * scale + causal mask) v with grouped KV heads, in torch's fused
        # kernel (one call per layer instead of numpy's strided 4-D products)
        import torch
        import torch.nn.functional as F
        tq, tk, tv = (torch.from_numpy(np.ascontiguousarray(z, np.float32)) for z in (qh, kh, vh))
        if s == t:
            mask, causal = None, s > 1                      # a prefill from an empty cache
        elif s == 1:
            mask, causal = None, False                      # one new token sees every key
        else:                                               # a chunk after cached keys
            mask = torch.from_numpy(np.arange(t)[None, :] <= np.arange(t - s, t)[:, None])
            causal = False
        with torch.no_grad():
            out = F.scaled_dot_product_attention(tq, tk, tv, attn_mask=mask, is_causal=causal,
                                                 scale=float(scale), enable_gqa=h != hkv).numpy()
        return out.transpose(0, 2, 1, 3).reshape(b, s, h * hd).astype(np.float32)

    def cost(self, graph, node, env):
        a = node.attrs
        q = graph.node(node.inputs[0]).type
        tokens = q.numel(env) // resolve_dim(q.shape[-1], env)
        ctx_len = int(env.get("T", env.get("S", 1)))  # keys attended per query
        macs = 2 * tokens * a["n_heads"] * a["head_dim"] * ctx_len
        kv_bytes = 2 * ctx_len * a["n_kv_heads"] * a["head_dim"] * 2  # fp16 KV cache read
        return Cost(macs, kv_bytes + 2 * _nbytes(q, env), 0)


@register
class SwiGLU(OpDef):
    """``silu(gate) * up``."""
    name = "swiglu"
    n_inputs = (2,)

    def infer(self, graph, node):
        self.check_arity(node)
        g, u = _in(graph, node, 0), _in(graph, node, 1)
        if len(g.shape) != len(u.shape) or not all(_same_dim(a, b) for a, b in zip(g.shape, u.shape)):
            raise _fail(node, f"gate {g.text()} and up {u.text()} differ in shape")
        return g

    def evaluate(self, node, args, ctx):
        g, u = args
        return (g / (1.0 + np.exp(-g)) * u).astype(np.float32)


def _broadcast(node: Node, a: TensorType, b: TensorType) -> tuple:
    ra, rb = list(a.shape[::-1]), list(b.shape[::-1])
    out = []
    for i in range(max(len(ra), len(rb))):
        x = ra[i] if i < len(ra) else 1
        y = rb[i] if i < len(rb) else 1
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        elif isinstance(x, str) or isinstance(y, str):
            out.append(x if isinstance(x, str) else y)
        else:
            raise _fail(node, f"shapes {a.text()} and {b.text()} do not broadcast")
    return tuple(out[::-1])


class _Binary(OpDef):
    n_inputs = (2,)
    fn = None

    def infer(self, graph, node):
        self.check_arity(node)
        a, b = _in(graph, node, 0), _in(graph, node, 1)
        return TensorType(_broadcast(node, a, b), a.dtype if a.dtype in FLOAT_DTYPES else b.dtype)

    def evaluate(self, node, args, ctx):
        return type(self).fn(args[0], args[1]).astype(np.float32, copy=False)


@register
class Add(_Binary):
    name = "add"
    fn = staticmethod(np.add)


@register
class Mul(_Binary):
    name = "mul"
    fn = staticmethod(np.multiply)


@register
class SiLU(OpDef):
    name = "silu"
    n_inputs = (1,)

    def infer(self, graph, node):
        self.check_arity(node)
        return _in(graph, node, 0)

    def evaluate(self, node, args, ctx):
        x = args[0]
        return (x / (1.0 + np.exp(-x))).astype(np.float32)


@register
class LastToken(OpDef):
    """Keep only the last position of ``[B, S, D]`` (logits for generation)."""
    name = "last_token"
    n_inputs = (1,)

    def infer(self, graph, node):
        self.check_arity(node)
        x = _in(graph, node, 0)
        if x.rank != 3:
            raise _fail(node, f"expects [B, S, D], got {x.text()}")
        return TensorType((x.shape[0], 1, x.shape[2]), x.dtype)

    def evaluate(self, node, args, ctx):
        return args[0][:, -1:, :]


def graph_cost(graph: Graph, env: dict) -> dict[str, Cost]:
    """Cost per op kind for one call with dims bound by ``env``."""
    out: dict[str, Cost] = {}
    for node in graph.nodes():
        c = get_op(node.op, f"%{node.name}").cost(graph, node, env)
        out[node.op] = out.get(node.op, Cost()) + c
    return out
