"""C simulation of one decoder layer's dataflow top (``hls/src/layer_top.cpp``) against
exact mode.

The layer is taken from a compiled graph (any decoder: a real SmolLM2 compiled with a
recipe, or the one-layer graph of :func:`layer_graph`): :func:`find_layer` finds the
nodes of decoder layer ``i`` by structure (the ``i``-th attention node and what feeds
it / what it feeds), :func:`layer_config` makes the build's
:class:`~plait.hls.gen.LayerConfig` (shape, the engine of each linear from the
``map_engines`` pass, the target's engine geometries, the model's tables), and
:func:`layer_case` exports what the top reads -- the packed weights of the seven linears
exactly as the ``pack`` pass stored them (``<weight>.pack.<field>``, concatenated per
field: :func:`memory_images`), the RMSNorm mantissas, the activation specs -- and runs
:class:`plait.ir.exact.ExactInterpreter` on the graph cut after the layer for a prefill
and decode steps: the layer's input rows are the inputs, its output rows and, after the
last step, its KV cache are the expected integers.  :func:`run_layer_csim` generates the
build, compiles ``layer_top.cpp`` + ``tb_layer.cpp`` (cached) and compares every integer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from plait.ir import Graph, TensorType, WeightStore
from plait.ir.exact import ExactInterpreter
from plait.ir.numerics.dsp import MODES, WBITS_CODE
from plait.ir.numerics.pack import DspPacked, LutPacked, read_packed
from plait.ir.ops import rope_inv_freq
from plait.ir.target import get_target
from plait.ir.types import ActSpec
from plait.rtl.dsp_chain import DspChainConfig
from plait.rtl.lut_core import LutCoreConfig

from .csim import CsimResult, run_csim
from .gen import LINEARS, HlsError, LayerConfig, generate
from .tables import ModelTables

__all__ = ["LayerNodes", "find_layer", "layer_config", "memory_images", "layer_case",
           "run_layer_csim", "layer_graph", "LINEARS"]

#: activation specs of the four linear inputs (plait_layer.h ActId order)
ACTS = ("qkv", "o", "gu", "down")


@dataclass
class LayerNodes:
    """Node names of one decoder layer."""
    x: str                 # the layer's input value (FX residual stream)
    n1: str                # input RMSNorm
    lin: dict              # LINEARS name -> linear node
    rq: str                # RoPE of q
    rk: str
    attn: str
    add1: str              # x + o
    n2: str                # post-attention RMSNorm
    swiglu: str
    y: str                 # x1 + down: the layer's output


def _one(nodes, what: str, where: str):
    if len(nodes) != 1:
        raise HlsError(f"decoder layer at {where}: expected one {what}, found {len(nodes)}")
    return nodes[0]


def find_layer(graph: Graph, layer: int = 0) -> LayerNodes:
    """The nodes of decoder layer ``layer`` (the ``layer``-th attention node, in order)."""
    attns = [n for n in graph.order() if graph.node(n).op == "attention"]
    if not 0 <= layer < len(attns):
        raise HlsError(f"layer {layer} out of range: the graph has {len(attns)} decoder layers")
    g = graph
    at = g.node(attns[layer])
    rq, rk, v = (g.node(i) for i in at.inputs)
    if rq.op != "rope" or rk.op != "rope" or v.op != "linear":
        raise HlsError(f"{at.name}: inputs are not rope(q), rope(k), v")
    q, k = g.node(rq.inputs[0]), g.node(rk.inputs[0])
    n1 = g.node(q.inputs[0])
    if n1.op != "rmsnorm" or k.inputs[0] != n1.name or v.inputs[0] != n1.name:
        raise HlsError(f"{at.name}: q, k, v do not read one RMSNorm")
    users = lambda n, op: [g.node(u) for u in g.users(n) if g.node(u).op == op]
    o = _one(users(at.name, "linear"), "o projection", at.name)
    add1 = _one(users(o.name, "add"), "residual add", o.name)
    n2 = _one(users(add1.name, "rmsnorm"), "post-attention RMSNorm", add1.name)
    sw = _one([g.node(u) for u in g.users(users(n2.name, "linear")[0].name) if g.node(u).op == "swiglu"],
              "swiglu", n2.name)
    gate, up = g.node(sw.inputs[0]), g.node(sw.inputs[1])
    down = _one(users(sw.name, "linear"), "down projection", sw.name)
    y = _one(users(down.name, "add"), "residual add", down.name)
    if set(add1.inputs) != {n1.inputs[0], o.name} or set(y.inputs) != {add1.name, down.name}:
        raise HlsError(f"layer {layer}: residual adds do not follow the Llama block")
    for lin in (q, k, v, o, gate, up, down):
        if lin.op != "linear":
            raise HlsError(f"layer {layer}: {lin.name} is a {lin.op}, not a linear")
    return LayerNodes(n1.inputs[0], n1.name, dict(zip(LINEARS, (q.name, k.name, v.name, o.name, gate.name,
                                                              up.name, down.name))),
                      rq.name, rk.name, at.name, add1.name, n2.name, sw.name, y.name)


def _pack(graph: Graph, weights, node: str):
    param = graph.node(graph.node(node).inputs[1])
    if "pack" not in param.attrs:
        raise HlsError(f"linear {node}: its weight has no packed form (compile with a recipe that "
                       f"runs map_engines and pack)")
    return read_packed(param.attrs["pack"], weights)


def layer_config(graph: Graph, weights, layer: int = 0, *, max_ctx: int = 512) -> LayerConfig:
    """The :class:`LayerConfig` of decoder layer ``layer`` of a mapped and packed graph:
    engine per linear from its pack (= the ``map_engines`` decision), the engine
    geometries of the target it was mapped for, the model's tables over ``max_ctx``
    positions."""
    nodes = find_layer(graph, layer)
    tname = graph.meta.get("engine_map", {}).get("target")
    if tname is None:
        raise HlsError("the graph has no engine mapping (run the map_engines pass)")
    tgt = get_target(tname)
    dsp, lut = DspChainConfig.from_target(tgt), LutCoreConfig.from_target(tgt)
    engines = []
    for n in LINEARS:
        node = graph.node(nodes.lin[n])
        pk = _pack(graph, weights, node.name)
        if node.attrs.get("engine") not in (None, pk.engine):
            raise HlsError(f"linear {node.name} is mapped to {node.attrs['engine']} but packed for {pk.engine}")
        if isinstance(pk, DspPacked) and pk.n_dsp != dsp.n_dsp:
            raise HlsError(f"linear {node.name}: packed for a {pk.n_dsp}-slice chain, the target has {dsp.n_dsp}")
        if isinstance(pk, LutPacked) and pk.tile_n != lut.n:
            raise HlsError(f"linear {node.name}: packed for {pk.tile_n} LUT columns, the target has {lut.n}")
        engines.append(pk.engine)
    at, ra, n1 = (graph.node(x).attrs for x in (nodes.attn, nodes.rq, nodes.n1))
    if graph.node(nodes.n2).attrs["eps"] != n1["eps"]:
        raise HlsError("the layer's two RMSNorms have different eps")
    hd, h, hkv = at["head_dim"], at["n_heads"], at["n_kv_heads"]
    tables = ModelTables.make(float(n1["eps"]), rope_inv_freq(hd, ra["theta"], ra.get("scaling")), max_ctx,
                              float(at.get("scale") or 1.0 / math.sqrt(hd)))
    d = graph.node(nodes.x).type.shape[-1]
    f = graph.node(nodes.lin["gate"]).type.shape[-1]
    return LayerConfig(int(d), int(h), int(hkv), int(hd), int(f), tuple(engines), dsp, lut, tables)


def memory_images(graph: Graph, weights, nodes: LayerNodes, interp: ExactInterpreter):
    """``(ints, arrays)``: the packed fields of the seven linears concatenated per field
    (``mem_codes``, ``mem_idx``, ``mem_planes`` as bytes; ``mem_mant`` / ``mem_zp``
    sharing one offset per linear; ``mem_bias`` FX) and each linear's ``LinDesc``."""
    codes, idx, planes, mant, zp, bias = [], [], [], [], [], []
    n_codes = n_idx = n_planes = n_s = n_bias = 0
    ints = {}
    for n in LINEARS:
        node = graph.node(nodes.lin[n])
        pk = _pack(graph, weights, node.name)
        a = pk.arrays()
        d = {"mode": 0, "wbits": 0, "bits": pk.bits, "offset": 0, "group_size": pk.group_size,
             "e_w": pk.exp, "w_off": 0, "idx_off": 0, "s_off": n_s, "bias_off": -1}
        if isinstance(pk, DspPacked):
            d.update(mode=MODES[pk.mode][2], wbits=WBITS_CODE[pk.bits], w_off=n_codes, idx_off=n_idx)
            codes.append(a["codes"].reshape(-1))
            n_codes += a["codes"].shape[0]
            if "idx" in a:
                idx.append(a["idx"].reshape(-1))
                n_idx += a["idx"].shape[0]
            zp.append(np.zeros(a["mant"].size, np.int8))
        else:
            d.update(offset=int(pk.offset), w_off=n_planes)
            planes.append(a["planes"].reshape(-1))
            n_planes += a["planes"].shape[0]
            zp.append(a["zp"].reshape(-1))
        mant.append(a["mant"].reshape(-1))
        n_s += a["mant"].size
        if len(node.inputs) == 3:
            if n not in ("q", "k", "v"):
                raise HlsError(f"linear {node.name}: a bias is supported on q/k/v only")
            b = interp.bias_fx(node)
            d["bias_off"] = n_bias
            bias.append(b)
            n_bias += b.size
        ints |= {f"lin_{n}_{k}": v for k, v in d.items()}
    cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)
    arrays = {"mem_codes": cat(codes, np.uint8), "mem_idx": cat(idx, np.uint8),
              "mem_planes": cat(planes, np.uint8), "mem_mant": cat(mant, np.uint16),
              "mem_zp": cat(zp, np.int8), "mem_bias": cat(bias, np.int64)}
    return ints, arrays


def _cut(graph: Graph, nodes: LayerNodes) -> Graph:
    """The graph up to the layer, its outputs the layer's input and output."""
    g = graph.copy()
    g.outputs = [nodes.x, nodes.y]
    g.dead_code()
    return g


def layer_case(graph: Graph, weights, steps: Sequence, *, layer: int = 0, name: str = "layer",
               cfg: Optional[LayerConfig] = None) -> dict:
    """Run ``steps`` (token id arrays: a prefill, then decode steps) through exact mode
    and export the case of decoder layer ``layer`` (a :mod:`plait.hls.csim` case dict)."""
    cfg = cfg or layer_config(graph, weights, layer)
    nodes = find_layer(graph, layer)
    interp = ExactInterpreter(_cut(graph, nodes), weights)
    ints = {"D": cfg.d, "H": cfg.h, "Hkv": cfg.hkv, "hd": cfg.hd, "F": cfg.f, "steps": len(steps)}
    ints |= {f"engine_{n}": int(e == "lut_core") for n, e in zip(LINEARS, cfg.engines)}
    gin, e_in, _ = interp.gamma(graph.node(graph.node(nodes.n1).inputs[1]), graph.node(nodes.n1).attrs["eps"])
    gpost, e_post, _ = interp.gamma(graph.node(graph.node(nodes.n2).inputs[1]), graph.node(nodes.n2).attrs["eps"])
    ints |= {"e_in": e_in, "e_post": e_post}
    arrays = {"gamma_in": gin, "gamma_post": gpost}
    srcs = {"qkv": nodes.n1, "o": nodes.attn, "gu": nodes.n2, "down": nodes.swiglu}
    for key in ACTS:
        spec = graph.node(srcs[key]).type.act
        if spec is None:
            raise HlsError(f"{srcs[key]}: no activation spec (run the quantize_act pass)")
        ints[f"act_{key}_dynamic"] = int(spec.mode == "dynamic")
        if spec.mode == "static":
            ints |= {f"act_{key}_m": int(spec.m), f"act_{key}_e": int(spec.e)}
    mi, ma = memory_images(graph, weights, nodes, interp)
    ints |= mi
    arrays |= ma
    pos = 0
    for i, toks in enumerate(steps):
        toks = np.asarray(toks, np.int64).reshape(1, -1)
        out = interp.run({"tokens": toks})
        arrays[f"x{i}"] = out[nodes.x][0]
        arrays[f"exp_y{i}"] = out[nodes.y][0]
        pos += toks.shape[1]
    if pos > cfg.max_ctx:
        raise HlsError(f"{pos} positions exceed the build's MAX_CTX {cfg.max_ctx}")
    kv = interp.kv[nodes.attn]
    for a, f in (("kc", "k"), ("mk", "mk"), ("ek", "ek"), ("vc", "v"), ("mv", "mv"), ("ev", "ev")):
        arrays[f"exp_{a}"] = getattr(kv, f)[0]
    return {"name": name, "ints": ints, "arrays": arrays}


def run_layer_csim(cfg: LayerConfig, cases: Sequence[dict], *, out_dir=None, vectors_out: bool = False,
                   timeout: float = 900) -> CsimResult:
    """Generate the layer build for ``cfg`` (:func:`plait.hls.gen.generate` ``"layer"``),
    compile ``layer_top.cpp`` + ``tb_layer.cpp`` (cached) and run ``cases``; with
    ``vectors_out`` the cases stay in the build as ``vectors.txt`` (what
    ``run_hls.tcl``'s ``csim_design`` reads)."""
    b = generate("layer", cfg, out_dir)
    return run_csim(b, cases, vectors=b.path("vectors.txt") if vectors_out else None, timeout=timeout)


# --------------------------------------------------------------------------- a random layer

def layer_graph(d: int, h: int, hkv: int, hd: int, f: int, *, vocab: int = 64, eps: float = 1e-5,
                theta: float = 100000.0, acts: Optional[dict] = None, qkv_bias: bool = False, seed: int = 0):
    """One decoder layer as a graph + float weights (tokens -> embedding -> the layer,
    its output the graph's output), the activation specs exact mode needs (``acts``
    maps ``qkv/o/gu/down`` to an :class:`ActSpec`; default dynamic), ``qkv_bias``: q/k/v
    with a bias (Qwen2 style).  Quantize, map and pack it (``plait.passes``) before
    :func:`layer_case`."""
    rng = np.random.default_rng(seed)
    g, ws = Graph("layer"), WeightStore()
    acts = {k: ActSpec("dynamic") for k in ACTS} | dict(acts or {})
    spec_of = {"n1": acts["qkv"], "attn": acts["o"], "n2": acts["gu"], "act": acts["down"]}

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
