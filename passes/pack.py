"""Weight packing (the ``pack`` pass): every quantized linear weight in its engine's
packed format, plus what exact mode needs beyond the weight.

Formats and their field names, dtypes and shapes are defined in
:mod:`plait.ir.numerics.pack` (the DSP chain's beats of
:func:`~plait.ir.numerics.dsp.chain_weight_beats`, the LUT core's bit-planes of
:func:`~plait.ir.numerics.lut.lut_weight_beats`).  Per quantized linear weight
``<w>`` the pass

* adds ``<w>.pack.<field>`` to the weight store (DSP chain: ``codes``, ``idx`` for
  N:M modes, ``mant``; LUT core: ``planes``, ``zp``, ``mant``);
* sets ``attrs["pack"]`` on every param node naming ``<w>``: the format's scalars
  (``format``, ``version``, ``mode``/``bits``/``n_dsp`` or ``bits``/``scheme``/
  ``tile_n``, ``rows``, ``k``, ``group_size``, ``exp`` = the shared scale exponent E)
  and ``"arrays": {field: store name}``;
* sets ``attrs["requant"]`` on the linear node: ``{"exp": E}`` and, if the linear has
  a bias, ``"bias_exp"`` and ``"arrays": {"bias": "<b>.pack.bias"}`` (int32 ``[N]``,
  :func:`~plait.ir.numerics.pack.encode_bias`).

:meth:`plait.ir.Graph.weight_names` lists every array named under ``"arrays"`` of a
``pack`` / ``requant`` attribute, so the artifact writer saves them and the verifier
checks they exist.  The original codes, scales and zero points stay (the float
interpreter dequantizes from them).

Which engine: the ``engine`` attribute of the linear node, written by
``map_engines`` (:mod:`plait.passes.mapping`) -- with its code width
(``engine_bits``) and sparsity (``engine_mode``) -- and the geometry (``n_dsp``, the
LUT core's ``n``) of the target it mapped for (``graph.meta["engine_map"]``).  A
graph that was not mapped is mapped here by the same rules
(:func:`plait.passes.mapping.choose_engine`) on option ``target`` (default
``sim16``, the default RTL geometries); options ``n_dsp`` / ``lut_n`` override the
geometry of an unmapped graph.  A layer whose weight its engine cannot take (odd-level
weights on the DSP chain, a width or group the build does not run, a sparsity mode
the chains do not enable, a block with too many nonzeros) is a :class:`PassError`
naming the layer.  Float linear weights (run-time W8 in exact mode) are skipped with
the reason recorded.  Shape-only stores get the fields ``declare``\\ d (``exp`` is
``null`` until there are weights).  Packing is idempotent: a weight already packed
in the same format is left alone; a different format replaces the old fields.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from plait.ir.numerics import NumericsError, QuantizedWeight
from plait.ir.numerics.dsp import DSP_WEIGHT_BITS, parse_mode
from plait.ir.numerics.lut import LUT_WEIGHT_BITS
from plait.ir.numerics.pack import (DspPacked, LutPacked, PACK_VERSION, encode_bias, pack_dsp,
                                    pack_lut)
from plait.ir.target import ENGINES, TargetError, get_target, list_targets

from .framework import Option, Pass, known_target, positive, PassError, PassOptionError, register_pass
from .select import linear_weights
from .mapping import META_KEY, choose_engine, layer_name

__all__ = ["PackWeights", "PACK_ATTR", "REQUANT_ATTR", "DEFAULT_TARGET", "array_name"]

PACK_ATTR = "pack"          # on param nodes
REQUANT_ATTR = "requant"    # on linear nodes
DEFAULT_TARGET = "sim16"
_PASS = "pack"


def array_name(weight: str, field: str) -> str:
    """Weight-store name of a packed field: ``<weight>.pack.<field>``."""
    return f"{weight}.pack.{field}"




@dataclasses.dataclass
class _Plan:
    engine: str
    bits: int            # DSP code width / LUT planes
    mode: str            # DSP sparsity mode ("dense" for the LUT core)
    how: str             # "mapped" | "by format"


class _Packer:
    def __init__(self, graph, weights, options):
        self.graph, self.weights = graph, weights
        meta = graph.meta.get(META_KEY) or {}
        self.mapped_target = meta.get("target")
        want = options["target"]
        if self.mapped_target and want and want != self.mapped_target:
            raise PassOptionError(_PASS, "target", f"graph {graph.name!r} was mapped for target "
                                  f"{self.mapped_target!r} (map_engines); packing for {want!r} would "
                                  f"not match its engine attributes")
        tgt = get_target(want or self.mapped_target or DEFAULT_TARGET)
        for key, geom, field in (("n_dsp", "dsp_chain", "n_dsp"), ("lut_n", "lut_core", "n")):
            v = options[key]
            g = getattr(tgt, geom)
            if v is None or g is None or getattr(g, field) == v:
                continue
            if self.mapped_target:
                raise PassOptionError(_PASS, key, f"graph {graph.name!r} was mapped for target "
                                      f"{tgt.name!r} whose {geom}.{field} is {getattr(g, field)}; "
                                      f"re-map for a target with {field}={v} instead")
            try:
                tgt = dataclasses.replace(tgt, **{geom: dataclasses.replace(g, **{field: v})})
            except TargetError as e:
                raise PassOptionError(_PASS, key, str(e)) from None
        self.target = tgt

    # ---------------------------------------------------------------- choice
    def plan(self, node, t, layer: str, w: str) -> _Plan:
        k = int(t.shape[1])
        if "engine" in node.attrs:
            engine = node.attrs["engine"]
            if engine not in ENGINES:
                raise PassError(f"{_PASS}: layer {layer}: unknown engine {engine!r} "
                                f"(engines: {', '.join(ENGINES)})")
            bits = node.attrs.get("engine_bits")
            mode = str(node.attrs.get("engine_mode", "dense")).split()[0] \
                if engine == "dsp_chain" else "dense"
            how = "mapped"
        else:
            c = choose_engine(t, k, self.target, layer=layer, weights=self.weights, weight_name=w)
            engine, bits, mode, how = c.engine, c.bits, c.sparsity, "by format"
        q = t.quant
        fmt = f"{q.bits}-bit {q.scheme}"
        if engine == "dsp_chain":
            if q.scheme == "odd":
                raise PassError(f"{_PASS}: layer {layer} (weight {w!r}, {fmt}) is on the DSP chain, "
                                f"but odd-level weights are the LUT core's table-symmetrized format "
                                f"(the chain's widening unit would need {q.bits + 1}-bit codes); map "
                                f"it to the LUT core or quantize it with scheme sym/asym")
            sp = parse_mode((t.sparsity.n, t.sparsity.m)).name if t.sparsity else "dense"
            if mode != sp:
                raise PassError(f"{_PASS}: layer {layer} (weight {w!r}) is mapped to the DSP chain in "
                                f"mode {mode!r}, but its weight is {sp} (re-run map_engines)")
            chain = self.target.dsp_chain
            if not chain.supports(sp):
                raise PassError(f"{_PASS}: layer {layer} (weight {w!r}) is {sp}, a mode the DSP "
                                f"chains of target {self.target.name!r} do not enable (modes: "
                                f"{','.join(chain.mode_names())})")
            if bits is None:
                raise PassError(f"{_PASS}: layer {layer} (weight {w!r}) has engine=dsp_chain but no "
                                f"engine_bits (incomplete mapping attributes; re-run map_engines)")
            if bits not in DSP_WEIGHT_BITS:
                raise PassError(f"{_PASS}: layer {layer} (weight {w!r}): {bits}-bit codes are not a "
                                f"width the DSP chain build supports ({DSP_WEIGHT_BITS})")
            if q.group_size % parse_mode(sp).m:
                raise PassError(f"{_PASS}: layer {layer} (weight {w!r}): quantization group "
                                f"{q.group_size} is not a multiple of mode {sp}'s block "
                                f"M={parse_mode(sp).m}")
        else:
            core = self.target.lut_core
            if core is None:
                raise PassError(f"{_PASS}: layer {layer} (weight {w!r}) is on the LUT core, but "
                                f"target {self.target.name!r} has none")
            planes = 2 if q.scheme == "ternary" else q.bits
            if q.bits not in LUT_WEIGHT_BITS or planes > core.max_bits:
                raise PassError(f"{_PASS}: layer {layer} (weight {w!r}, {fmt}) is on the LUT core, "
                                f"but {planes}-plane weights are not a width its build supports "
                                f"(1..{core.max_bits} planes, target {self.target.name!r})")
            if q.group_size > core.max_group:
                raise PassError(f"{_PASS}: layer {layer} (weight {w!r}): quantization group "
                                f"{q.group_size} exceeds the LUT core build's max_group "
                                f"{core.max_group} (target {self.target.name!r})")
            if bits is not None and bits != planes:
                raise PassError(f"{_PASS}: layer {layer} (weight {w!r}) is mapped to the LUT core "
                                f"with {bits} planes, but its weight has {planes} (re-run map_engines)")
            bits = planes
        return _Plan(engine, int(bits), mode, how)

    # ---------------------------------------------------------------- packing
    def quantized(self, w: str, t) -> QuantizedWeight:
        q, ws = t.quant, self.weights
        zeros = np.asarray(ws[q.zeros]) if q.zeros else None
        return QuantizedWeight(np.asarray(ws[w]), np.asarray(ws[q.scales]), zeros, q.bits,
                               q.group_size, q.scheme)

    def pack(self, w: str, t, plan: _Plan, layer: str) -> tuple[dict, dict]:
        """``(meta, {field: array or (shape, dtype)})`` of one weight."""
        q = t.quant
        rows, k = (int(d) for d in t.shape)
        if plan.engine == "dsp_chain":
            meta = {"format": "dsp_chain", "version": PACK_VERSION, "mode": plan.mode,
                    "bits": plan.bits, "n_dsp": self.target.dsp_chain.n_dsp, "rows": rows,
                    "k": k, "group_size": q.group_size, "exp": None}
            cls = DspPacked
        else:
            meta = {"format": "lut_core", "version": PACK_VERSION, "bits": plan.bits,
                    "scheme": q.scheme, "tile_n": self.target.lut_core.n, "rows": rows, "k": k,
                    "group_size": q.group_size, "exp": None}
            cls = LutPacked
        if not self.weights.has_data(w):
            try:
                return meta, cls.shapes(meta)
            except NumericsError as e:
                raise PassError(f"{_PASS}: layer {layer} (weight {w!r}): {e}") from None
        try:
            qw = self.quantized(w, t)
            if plan.engine == "dsp_chain":
                p = pack_dsp(qw, plan.mode, n_dsp=meta["n_dsp"], bits=plan.bits)
            else:
                p = pack_lut(qw, n=meta["tile_n"])
        except NumericsError as e:
            raise PassError(f"{_PASS}: layer {layer} (weight {w!r}) cannot be packed for the "
                            f"{plan.engine}: {e}") from None
        got = p.meta()
        assert {k2: v for k2, v in got.items() if k2 != "exp"} == \
            {k2: v for k2, v in meta.items() if k2 != "exp"}, (got, meta)
        return got, p.arrays()

    def store(self, base: str, fields: dict, owned: set) -> dict[str, str]:
        """Write ``fields`` as ``<base>.pack.<field>``; returns ``{field: name}``."""
        names = {}
        for field, v in fields.items():
            name = array_name(base, field)
            if name in self.weights and name not in owned:
                raise PassError(f"{_PASS}: weight-store entry {name!r} already exists and no pack "
                                f"attribute names it; refusing to overwrite it")
            if isinstance(v, np.ndarray):
                self.weights[name] = v
            else:
                shape, dtype = v
                self.weights.declare(name, shape, dtype)
            names[field] = name
        return names


def _owned(attr: Optional[dict]) -> set:
    return set((attr or {}).get("arrays", {}).values())


def _holds(weights, name: str, v) -> bool:
    """Does the store already hold exactly ``v`` (an array, or a declared (shape, dtype))?"""
    if name not in weights:
        return False
    info = weights.info(name)
    if not isinstance(v, np.ndarray):
        return not weights.has_data(name) and (tuple(info.shape), info.dtype) == \
            (tuple(v[0]), str(np.dtype(v[1])))
    if not weights.has_data(name) or (tuple(info.shape), info.dtype) != (v.shape, str(v.dtype)):
        return False
    return bool(np.array_equal(np.asarray(weights[name]), v))


@register_pass
class PackWeights(Pass):
    """Pack every quantized linear weight into its engine's format (see module doc)."""

    name = _PASS
    OPTIONS = {
        "target": Option("str", None, "target whose geometry packs an unmapped graph (default: the "
                         f"target map_engines used, else {DEFAULT_TARGET}; known: "
                         f"{', '.join(list_targets())})", check=known_target),
        "n_dsp": Option("int", None, "slices per DSP chain of an unmapped graph (default: the "
                        "target's)", check=positive),
        "lut_n": Option("int", None, "LUT core columns per tile of an unmapped graph (default: "
                        "the target's)", check=positive),
    }

    def run(self, graph, weights, ctx):
        pk = _Packer(graph, weights, self.options)
        changed = False
        plans: dict[str, tuple[_Plan, str]] = {}
        layers, skipped, by_format = {}, {}, []
        exps: dict[str, Optional[int]] = {}
        nbytes = 0
        lw = linear_weights(graph)
        for node in graph.nodes("linear"):
            p = graph.node(node.inputs[1])
            layer = layer_name(node)
            if p.op != "param":
                skipped[layer] = f"weight %{p.name} is a {p.op}, not a param"
                changed |= node.attrs.pop(REQUANT_ATTR, None) is not None
                continue
            w, t = p.attrs["weight"], p.type
            if t.quant is None:
                skipped[layer] = "float weight (exact mode quantizes it to W8 at run time)"
                changed |= node.attrs.pop(REQUANT_ATTR, None) is not None
                continue
            if t.rank != 2 or not t.concrete():
                raise PassError(f"{_PASS}: layer {layer}: weight {w!r} has type {t.text()}; "
                                f"expected a concrete [N, K]")
            plan = pk.plan(node, t, layer, w)
            if w in plans:
                prev, prev_layer = plans[w]
                if (prev.engine, prev.bits, prev.mode) != (plan.engine, plan.bits, plan.mode):
                    raise PassError(f"{_PASS}: weight {w!r} is shared by layers {prev_layer} "
                                    f"({prev.engine} W{prev.bits}) and {layer} ({plan.engine} "
                                    f"W{plan.bits}); one packed copy needs one engine")
            else:
                plans[w] = (plan, layer)
                if plan.how == "by format":
                    by_format.append(layer)
                params = lw[w].params if w in lw else [p]
                old = params[0].attrs.get(PACK_ATTR)
                meta, fields = pk.pack(w, t, plan, layer)
                names = {f: array_name(w, f) for f in fields}
                if not (_owned(old) == set(names.values())
                        and all(_holds(weights, names[f], v) for f, v in fields.items())):
                    for stale in _owned(old) - set(names.values()):
                        weights.pop(stale)
                    pk.store(w, fields, _owned(old))
                    changed = True
                attr = {**meta, "arrays": names}
                for prm in params:
                    if prm.attrs.get(PACK_ATTR) != attr:
                        prm.attrs[PACK_ATTR] = attr
                        changed = True
                exps[w] = meta["exp"]
                nbytes += sum(weights.info(n).nbytes for n in names.values())
            changed |= self._requant(graph, weights, pk, node, exps[w], layer)
            layers[layer] = (f"{plan.engine} {plan.mode} W{plan.bits}" if plan.engine == "dsp_chain"
                             else f"{plan.engine} {plan.bits} planes")
        counts = {e: sum(1 for pl, _ in plans.values() if pl.engine == e) for e in ENGINES}
        ctx.details.update({"target": pk.target.name, "mapped_by": pk.mapped_target and "map_engines",
                            "weights": counts, "layers": layers, "mapped_by_format": by_format,
                            "packed_bytes": nbytes, "skipped": skipped})
        return changed

    @staticmethod
    def _requant(graph, weights, pk: _Packer, node, exp: Optional[int], layer: str) -> bool:
        """Set the linear's ``requant`` attribute (and its fixed-point bias); True if
        anything changed."""
        rq: dict = {"exp": exp}
        old = node.attrs.get(REQUANT_ATTR)
        changed = False
        if len(node.inputs) == 3:
            b = graph.node(node.inputs[2])
            if b.op != "param" or b.type is None or b.type.quant is not None or b.type.rank != 1:
                raise PassError(f"{_PASS}: layer {layer}: bias %{b.name} must be a float [N] param "
                                f"to be stored in fixed point, got {b.op} "
                                f"{b.type.text() if b.type else None}")
            wb = b.attrs["weight"]
            name = array_name(wb, "bias")
            if weights.has_data(wb):
                vals, bexp = encode_bias(np.asarray(weights[wb]))
                field = vals
            else:
                bexp, field = None, (tuple(int(d) for d in b.type.shape), "int32")
            if not _holds(weights, name, field):
                pk.store(wb, {"bias": field}, _owned(old))
                changed = True
            rq.update({"bias_exp": bexp, "arrays": {"bias": name}})
        if old != rq:
            for stale in _owned(old) - _owned(rq):
                weights.pop(stale)
            node.attrs[REQUANT_ATTR] = rq
            changed = True
        return changed
