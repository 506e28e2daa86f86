"""C simulation of one decoder layer (``hls/src/plait_layer.h``) against exact mode.

:func:`layer_graph` builds a one-layer Llama graph (tokens -> embedding -> the layer,
its output the graph's output) with random float weights and the activation specs
exact mode needs; :func:`layer_case` runs it through :class:`plait.ir.exact.ExactInterpreter`
for a prefill and decode steps and exports everything the C++ layer needs -- the
layer's input rows (the FX embedding), the signed weights and mantissas exact mode
multiplies, the RMSNorm mantissas and eps table, the RoPE tables, the attention
multiplier -- with the interpreter's outputs as the expected integers.
:func:`run_layer_csim` compiles ``tb_layer.cpp`` (cached) and compares every integer.
"""
from __future__ import annotations

import math
import subprocess
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from plait.ir import Graph, TensorType, WeightStore
from plait.ir.exact import ExactInterpreter
from plait.ir.numerics.act import to_fx
from plait.ir.numerics.common import encode_scales, signed_weight
from plait.ir.numerics.sfu import attention_scale_code, rope_table
from plait.ir.ops import rope_inv_freq
from plait.ir.types import ActSpec

from . import _gxx
from .sfu_tb import SfuMismatch, _MISMATCH, _SUMMARY, tables_dir

TB_SOURCE = _gxx.SRC_DIR / "tb_layer.cpp"
LINEARS = ("q", "k", "v", "o", "gate", "up", "down")
#: the value whose activation spec quantizes each linear's input
_ACT_OF = {"qkv": "n1", "o": "attn", "gu": "n2", "down": "act"}


def layer_graph(d: int, h: int, hkv: int, hd: int, f: int, *, vocab: int = 64, eps: float = 1e-5,
                theta: float = 100000.0, acts: Optional[dict] = None, qkv_bias: bool = False, seed: int = 0):
    """One decoder layer as a graph + weights; ``acts`` maps ``qkv/o/gu/down`` to an
    :class:`ActSpec` (default: dynamic everywhere); ``qkv_bias``: q/k/v with a bias
    (Qwen2 style)."""
    rng = np.random.default_rng(seed)
    g, ws = Graph("layer"), WeightStore()
    acts = {k: ActSpec("dynamic") for k in _ACT_OF} | dict(acts or {})
    spec_of = {v: acts[k] for k, v in _ACT_OF.items()}

    def param(name, shape, scale):
        ws[name] = (rng.standard_normal(shape) * scale).astype(np.float32)
        return g.add("param", attrs={"weight": name}, type=TensorType(shape, "f32"), name=name)

    def add(op, inputs, attrs=None, name=None):
        n = g.add(op, inputs, attrs, name=name)
        if name in spec_of:
            node = g.node(n)
            node.type = TensorType(node.type.shape, node.type.dtype, act=spec_of[name])
        return n

    tok = g.add("input", name="tokens", type=TensorType((1, "S"), "i64"))
    ws["emb"] = (rng.standard_normal((vocab, d)) * 2.0).astype(np.float32)
    ws["emb"][0, :4] = [300.0, -250.0, 0.0, 120.0]          # a "massive activation" token
    emb = g.add("param", attrs={"weight": "emb"}, type=TensorType((vocab, d), "f32"), name="emb")
    x = add("embedding", [emb, tok], name="x")
    ws["n1w"] = (1.0 + 0.3 * rng.standard_normal(d)).astype(np.float32)
    n1 = add("rmsnorm", [x, g.add("param", attrs={"weight": "n1w"}, type=TensorType((d,), "f32"), name="n1w")],
             {"eps": eps}, name="n1")
    w = 1.0 / math.sqrt(d)
    def bias(name, n):
        return [param(name, (n,), 0.5)] if qkv_bias else []
    q = add("linear", [n1, param("wq", (h * hd, d), w), *bias("bq", h * hd)], name="q")
    k = add("linear", [n1, param("wk", (hkv * hd, d), w), *bias("bk", hkv * hd)], name="k")
    v = add("linear", [n1, param("wv", (hkv * hd, d), w), *bias("bv", hkv * hd)], name="v")
    rq = add("rope", [q], {"n_heads": h, "head_dim": hd, "theta": theta}, name="rq")
    rk = add("rope", [k], {"n_heads": hkv, "head_dim": hd, "theta": theta}, name="rk")
    a = add("attention", [rq, rk, v], {"n_heads": h, "n_kv_heads": hkv, "head_dim": hd}, name="attn")
    o = add("linear", [a, param("wo", (d, h * hd), 1.0 / math.sqrt(h * hd))], name="o")
    x2 = add("add", [x, o], name="x2")
    ws["n2w"] = (1.0 + 0.3 * rng.standard_normal(d)).astype(np.float32)
    n2 = add("rmsnorm", [x2, g.add("param", attrs={"weight": "n2w"}, type=TensorType((d,), "f32"), name="n2w")],
             {"eps": eps}, name="n2")
    gate = add("linear", [n2, param("wg", (f, d), w)], name="gate")
    up = add("linear", [n2, param("wu", (f, d), w)], name="up")
    act = add("swiglu", [gate, up], name="act")
    down = add("linear", [act, param("wd", (d, f), 1.0 / math.sqrt(f))], name="down")
    y = add("add", [x2, down], name="y")
    g.outputs = [y]
    return g, ws


def layer_case(graph: Graph, weights, steps: Sequence[np.ndarray], name: str = "layer/0") -> dict:
    """Run ``steps`` (token id arrays: a prefill, then decode steps) through exact mode
    and export the case (a :mod:`plait.hls.csim` case dict)."""
    interp = ExactInterpreter(graph, weights)
    nodes = {n: graph.node(n) for n in ("n1", "q", "k", "v", "o", "gate", "up", "down", "rq", "attn", "n2")}
    d = graph.node("x").type.shape[-1]
    ra = nodes["rq"].attrs
    at = nodes["attn"].attrs
    hd, h, hkv = at["head_dim"], at["n_heads"], at["n_kv_heads"]
    f = graph.node("gate").type.shape[-1]
    ints = {"D": d, "H": h, "Hkv": hkv, "hd": hd, "F": f, "steps": len(steps)}
    arrays = {}
    gin, e_in, eps_tab = interp.gamma(graph.node(nodes["n1"].inputs[1]), nodes["n1"].attrs["eps"])
    gpost, e_post, eps2 = interp.gamma(graph.node(nodes["n2"].inputs[1]), nodes["n2"].attrs["eps"])
    if not np.array_equal(eps_tab, eps2):
        raise ValueError("the layer's two RMSNorms have different eps")
    ints |= {"e_in": e_in, "e_post": e_post}
    arrays |= {"g_in": gin, "g_post": gpost, "eps_table": eps_tab}
    n_pos = sum(len(s) for s in steps)
    inv = rope_inv_freq(hd, ra["theta"], ra.get("scaling"))
    cos, sin = rope_table(inv, n_pos)
    arrays |= {"cos": cos, "sin": sin}
    c, r = attention_scale_code(float(at.get("scale") or 1.0 / np.sqrt(hd)))
    ints |= {"C": c, "R": r, "cap": max(n_pos, 1)}
    for key, val in _ACT_OF.items():
        spec = graph.node(val).type.act
        ints[f"act_{key}_dynamic"] = int(spec.mode == "dynamic")
        if spec.mode == "static":
            ints |= {f"act_{key}_m": spec.m, f"act_{key}_e": spec.e}
    for n in LINEARS:
        node = nodes[n]
        lin = interp.linear(graph.node(node.inputs[1]))
        mant, e = encode_scales(lin.qw.scales)
        if e != lin.exp:
            raise ValueError(f"linear {n}: exponent {e} != exact mode's {lin.exp}")
        arrays |= {f"w_{n}": signed_weight(lin.qw), f"mant_{n}": mant}
        ints |= {f"e_w_{n}": lin.exp, f"group_{n}": lin.qw.group_size}
        if len(node.inputs) == 3:
            arrays[f"bias_{n}"] = interp.bias_fx(node)
    emb = np.asarray(weights["emb"])
    for i, toks in enumerate(steps):
        toks = np.asarray(toks, np.int64).reshape(1, -1)
        arrays[f"x{i}"] = to_fx(emb[toks[0]])
        arrays[f"exp_y{i}"] = interp.run({"tokens": toks})[graph.outputs[0]][0]
    return {"name": name, "ints": ints, "arrays": arrays}


def build_tb(max_ctx: int = 4096, max_head_dim: int = 128) -> Path:
    """The compiled ``tb_layer`` (cached)."""
    return _gxx.build(TB_SOURCE, [tables_dir(None), _gxx.SRC_DIR], "tb_layer",
                      defines=[f"PLAIT_MAX_CTX={max_ctx}", f"PLAIT_MAX_HEAD_DIM={max_head_dim}"])


def run_layer_csim(cases: Sequence[dict], timeout: float = 600) -> int:
    """C-simulate the layer cases; returns the number of output integers compared,
    raises :class:`~plait.hls.sfu_tb.SfuMismatch` on the first difference."""
    from .csim import write_vectors
    exe = build_tb()
    with tempfile.TemporaryDirectory(prefix="plait-layer-") as tmp:
        vec = write_vectors(Path(tmp) / "vectors.txt", cases)
        r = subprocess.run([str(exe), str(vec)], capture_output=True, text=True, timeout=timeout)
    out = r.stdout + r.stderr
    m = _MISMATCH.search(out)
    if m:
        case, arr, idx, got, exp = m.groups()
        raise SfuMismatch(f"C simulation of the layer differs from exact mode: {case} array {arr} index {idx}: "
                          f"got {got}, expected {exp}", case, arr, int(idx), int(got), int(exp))
    s = _SUMMARY.search(out)
    if r.returncode != 0 or not s or int(s.group(1)) != len(cases):
        raise SfuMismatch(f"tb_layer failed (exit {r.returncode}):\n{out[-3000:]}")
    return sum(np.asarray(v).size for c in cases for k, v in c["arrays"].items() if k.startswith("exp_"))


__all__ = ["layer_graph", "layer_case", "build_tb", "run_layer_csim", "LINEARS"]
