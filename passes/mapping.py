"""Engine mapping (the ``map_engines`` pass): every linear layer to the sparse DSP
chain or the LUT tensor core of a hardware target, with its mode and predicted cycles.

The target (:mod:`plait.ir.target`, option ``target``, default ``u280``) says which
engines exist and what their builds accept; the weight's type (quantization and
sparsity specs) says what the layer needs.  Only types are read, so a shape-only
graph (a 7B model planned without its weights) maps the same way.

Rules (automatic mapping; the first that applies wins)
------------------------------------------------------
1. **Float weight** (not quantized, e.g. SmolLM2's tied ``lm_head``) -> DSP chain as
   W8: the exact mode quantizes float linear weights to 8-bit symmetric codes in
   groups of the first of :data:`plait.ir.exact.EXACT_W8_GROUPS` (128, 64, 32, 16)
   that divides K at run time, and 8-bit weights are the DSP chain's.
2. **N:M-sparse weight** -> DSP chain in that mode (``2:4``, ``N:16``): only the
   chain's sparse MUX skips the pruned weights.  The mode must be enabled in the
   target's chains; the LUT core reads dense weights and never takes N:M weights.
3. **Odd-level weight** (``scheme="odd"``) -> LUT core: odd levels are the LUT
   core's table-symmetrized format; on the chain's widening unit a ``b``-bit odd
   weight would need ``b+1``-bit codes (W4 odd: 8-bit), so plait never puts one there.
4. **Dense 1-4-bit weight** (sym, asym, ternary) -> LUT core when the target has one
   whose build runs that width (``max_bits``) and group size (``max_group``); the
   core reads only ``bits`` bit-planes per 4 inputs.  Otherwise -> DSP chain (the
   reason records why the LUT core was refused).
5. **Dense 8-bit weight** -> DSP chain, dense mode.

DSP chain weights are widened to int8 from the smallest code width in
{2, 3, 4, 8} that holds the signed weight: ``b`` for sym, 2 for ternary, ``b+1``
rounded up for asym (asym W4 -> 8-bit codes).  Asym W8 spans [-255, 255] in
general and fits no engine unless the stored codes prove it fits int8 (checked
with :func:`~plait.ir.numerics.dsp.dsp_weight_codes` when the weights are there).
The quantization group must be a multiple of the mode's block ``M`` (the row
accumulators emit whole groups).

Forcing: ``dsp_chain = ["glob", ...]`` / ``lut_core = [...]`` put the matching linear
layers (globs on the weight name, the module path and the node name) on that engine.
A forced mapping the target cannot run is a :class:`PassError` naming the layer
(odd weights or widths over int8 on the DSP chain, N:M, float or 8-bit weights on
the LUT core, a width over the core's ``max_bits``, a group over ``max_group``, a
sparsity mode the chains do not enable, an engine the target does not have).  A
glob that matches no linear layer, or a layer matched by both lists, is an option
error.  A layer no engine can run is an error too; nothing is silently skipped.

What each linear node gets (``attrs``)
--------------------------------------
``engine`` (``"dsp_chain"``/``"lut_core"``), ``engine_reason`` (one sentence),
``engine_mode`` (DSP: ``"<sparsity> W<code bits>"``, e.g. ``"2:4 W4"``, ``"dense W8"``;
LUT: ``"<b> planes"`` (``"1 plane"``) plus ``" +zp"`` when the zero-point correction runs, i.e. for
sym/asym/ternary), ``engine_decode_mode`` (the mode of a decoded token's pass:
``"pair W<b>"`` where decode lane packing runs it -- a dense DSP weight of at most
4-bit codes on chains that enable ``pair``, which carry two weight rows per slice for
the one token row -- else ``engine_mode``; :func:`~plait.ir.target.dsp_pair_pass`
decides per pass, so an odd prefill's last row runs in pair mode too),
``engine_bits`` (DSP code width / LUT planes), ``engine_group``
(the quantization group the engine runs), ``cycles_decode`` (clocks of the layer
for one decoded token: one token row), ``cycles_prefill_per_token`` (clocks of the
layer for ``prefill_tokens`` token rows, divided by them) and ``weight_bytes``
(bytes of the weight streamed from HBM per pass:
:meth:`~plait.ir.types.TensorType.stored_bits` of the type, of its run-time W8
form for float weights).  Cycles come from
:func:`~plait.ir.target.dsp_linear_cycles` / :func:`~plait.ir.target.lut_linear_cycles`
on all the target's chains / cores.  ``graph.meta["engine_map"]`` records the
target and ``prefill_tokens``; :func:`plait.ir.stats.summarize` turns all of it
into the mapping table and the roofline of ``plait inspect``.
"""
from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Optional, Sequence

import numpy as np

from plait.ir.exact import EXACT_W8_GROUPS
from plait.ir.graph import Graph, Node
from plait.ir.numerics.common import MAX_K, NumericsError, QuantizedWeight
from plait.ir.numerics.dsp import DSP_WEIGHT_BITS, dsp_weight_codes, parse_mode
from plait.ir.stats import weight_format
from plait.ir.target import (Target, TargetError, dsp_linear_cycles, dsp_pair_pass, get_target,
                             list_targets, lut_linear_cycles)
from plait.ir.types import QuantSpec, TensorType

from .framework import Option, Pass, known_target, positive, PassError, PassOptionError, register_pass

__all__ = ["MapEngines", "map_engines", "EngineChoice", "choose_engine",
           "ENGINE_ATTRS", "META_KEY"]

#: attributes this pass writes on linear nodes
ENGINE_ATTRS = ("engine", "engine_reason", "engine_mode", "engine_decode_mode", "engine_bits",
                "engine_group", "cycles_decode", "cycles_prefill_per_token", "weight_bytes")
META_KEY = "engine_map"
_PASS = "map_engines"


@dataclass(frozen=True)
class EngineChoice:
    """The engine of one linear layer and how it runs there."""

    engine: str          # "dsp_chain" | "lut_core"
    reason: str
    mode: str            # "2:4 W4" / "dense W8" / "4 planes +zp"
    bits: int            # DSP weight-code width / LUT bit-planes
    group: int           # quantization group on the engine
    sparsity: str = "dense"   # DSP sparsity mode name ("dense", "2:4", ...)

    def cycles(self, rows: int, k: int, tokens: int, target: Target) -> int:
        if self.engine == "dsp_chain":
            return dsp_linear_cycles(rows, k, self.sparsity, tokens, target.dsp_chain, self.bits)
        return lut_linear_cycles(rows, k, self.bits, self.group, tokens, target.lut_core)

    def decode_mode(self, target: Target) -> str:
        """The mode of a decoded token's pass: ``"pair W<b>"`` where the chain packs two
        weight rows per slice for the one token row (:func:`~plait.ir.target.
        dsp_pair_pass`), else :attr:`mode`."""
        if self.engine == "dsp_chain" and dsp_pair_pass(self.sparsity, 1, target.dsp_chain,
                                                        self.bits):
            return f"pair W{self.bits}"
        return self.mode


# --------------------------------------------------------------------------- per engine

def _dsp_code_bits(t: TensorType) -> tuple[Optional[int], str]:
    """Smallest DSP code width that holds every signed weight of this *type*
    (worst case over the codes it allows), or (None, why)."""
    q = t.quant
    if q is None:
        return 8, ""
    if q.scheme == "sym":
        need = q.bits
    elif q.scheme == "ternary":
        need = 2
    elif q.scheme == "asym":
        need = q.bits + 1          # u - z spans [-(2^b - 1), 2^b - 1]
    else:                          # odd levels 2u - (2^b - 1)
        return None, (f"odd-level weights are the LUT core's format; the DSP chain's "
                      f"widening unit would need {q.bits + 1}-bit codes for them")
    for b in DSP_WEIGHT_BITS:
        if need <= b:
            return b, ""
    return None, (f"the signed weights of {q.bits}-bit {q.scheme} codes span "
                  f"[-{(1 << q.bits) - 1}, {(1 << q.bits) - 1}], outside the chain's int8 "
                  f"(use scheme 'sym' for 8-bit weights)")


def _data_code_bits(weights, name: str, t: TensorType) -> Optional[int]:
    """The DSP code width the stored codes actually need (None without data or
    when they do not fit int8)."""
    q = t.quant
    if weights is None or q is None or not weights.has_data(name):
        return None
    zeros = np.asarray(weights[q.zeros]) if q.zeros else None
    qw = QuantizedWeight(np.asarray(weights[name]), np.asarray(weights[q.scales]), zeros,
                         q.bits, q.group_size, q.scheme)
    try:
        return dsp_weight_codes(qw)[1]
    except NumericsError:
        return None


def _runtime_group(k: int, m: int) -> Optional[int]:
    """The group exact mode gives a float weight of K inputs (None if it has none, or
    if it is not a multiple of the mode's block M)."""
    g = next((g for g in EXACT_W8_GROUPS if k % g == 0), None)
    return g if g is not None and g % m == 0 else None


def _dsp_plan(t: TensorType, k: int, target: Target, weights=None, name: str = ""
              ) -> tuple[Optional[EngineChoice], str]:
    """(choice without its reason, "") if the DSP chain can run this weight, else
    (None, why not)."""
    chain = target.dsp_chain
    sp = "dense"
    if t.sparsity is not None:
        try:
            sp = parse_mode((t.sparsity.n, t.sparsity.m)).name
        except NumericsError as e:
            return None, str(e)
        if not chain.supports(sp):
            return None, (f"the target's DSP chains do not enable mode {sp} (modes: "
                          f"{','.join(chain.mode_names())})")
    md = parse_mode(sp)
    if k > MAX_K:
        return None, f"K={k} exceeds the numeric contract's maximum {MAX_K}"
    bits, why = _dsp_code_bits(t)
    if bits is None and t.quant is not None and t.quant.scheme != "odd":
        bits = _data_code_bits(weights, name, t)
        if bits is not None:
            why = ""
    if bits is None:
        return None, why
    if t.quant is None:
        group = _runtime_group(k, md.m)
        if group is None:
            return None, (f"K={k} has no run-time W8 group in {list(EXACT_W8_GROUPS)} "
                          f"that divides it and is a multiple of the mode's block M={md.m}")
    else:
        group = t.quant.group_size
        if group % md.m:
            return None, (f"quantization group {group} is not a multiple of mode {sp}'s block "
                          f"M={md.m} (the row accumulators emit whole groups)")
    return EngineChoice("dsp_chain", "", f"{sp} W{bits}", bits, group, sp), ""


def _lut_plan(t: TensorType, k: int, target: Target) -> tuple[Optional[EngineChoice], str]:
    core = target.lut_core
    if core is None:
        return None, f"target {target.name!r} has no LUT core"
    if t.quant is None:
        return None, "the LUT core runs 1-4-bit quantized weights, not float weights"
    if t.sparsity is not None:
        return None, (f"{t.sparsity.n}:{t.sparsity.m}-sparse weights need the DSP chain's "
                      f"sparse MUX; the LUT core reads dense weights")
    q = t.quant
    planes = 2 if q.scheme == "ternary" else q.bits
    if planes > 4:
        return None, f"{q.bits}-bit weights: the LUT core runs 1..4 bit-planes"
    if planes > core.max_bits:
        return None, (f"{planes}-plane weights exceed the target's LUT core build "
                      f"(max_bits={core.max_bits})")
    if q.group_size > core.max_group:
        return None, (f"quantization group {q.group_size} exceeds the target's LUT core build "
                      f"(max_group={core.max_group})")
    if q.group_size % 4:
        return None, f"quantization group {q.group_size} is not a multiple of 4"
    if k > MAX_K:
        return None, f"K={k} exceeds the numeric contract's maximum {MAX_K}"
    mode = f"{planes} plane{'s' if planes > 1 else ''}" + (" +zp" if q.scheme != "odd" else "")
    return EngineChoice("lut_core", "", mode, planes, q.group_size), ""


def _with_reason(c: EngineChoice, reason: str) -> EngineChoice:
    return EngineChoice(c.engine, reason, c.mode, c.bits, c.group, c.sparsity)


_ENGINE_NAME = {"dsp_chain": "DSP chain", "lut_core": "LUT core"}


def choose_engine(t: TensorType, k: int, target: Target, *, layer: str = "?",
                  forced: Optional[tuple[str, str]] = None, weights=None,
                  weight_name: str = "") -> EngineChoice:
    """The engine of one linear layer whose weight has type ``t`` (``K`` inputs).

    ``forced``: ``(engine, glob)`` from the pass options.  Raises :class:`PassError`
    naming ``layer`` when the forced engine cannot run it or no engine can.
    """
    fmt = weight_format(t)
    dsp, dsp_why = _dsp_plan(t, k, target, weights, weight_name)
    lut, lut_why = _lut_plan(t, k, target)
    if forced is not None:
        engine, glob = forced
        plan, why = (dsp, dsp_why) if engine == "dsp_chain" else (lut, lut_why)
        if plan is None:
            raise PassError(f"{_PASS}: layer {layer} ({fmt}) is forced onto the "
                            f"{_ENGINE_NAME[engine]} by option {engine}={glob!r}, but {why}")
        return _with_reason(plan, f"forced onto the {_ENGINE_NAME[engine]} by {engine}={glob!r}")
    q = t.quant
    if q is None:
        if dsp is None:
            raise PassError(f"{_PASS}: layer {layer} has a float weight, which runs on the DSP "
                            f"chain as W8, but {dsp_why}")
        return _with_reason(dsp, f"float weight: the exact mode quantizes it to W8 sym "
                                 f"g{dsp.group} at run time, and 8-bit weights run on the DSP chain")
    if t.sparsity is not None:
        if dsp is None:
            raise PassError(f"{_PASS}: layer {layer} ({fmt}) is N:M-sparse, which only the DSP "
                            f"chain runs, but {dsp_why}")
        return _with_reason(dsp, f"{dsp.sparsity}-sparse: only the DSP chain's sparse MUX "
                                 f"skips the pruned weights")
    if q.scheme == "odd":
        if lut is None:
            raise PassError(f"{_PASS}: layer {layer} ({fmt}) has odd-level weights, which only "
                            f"the LUT core runs, but {lut_why}")
        return _with_reason(lut, f"odd-level weights are the LUT core's table-symmetrized format")
    if lut is not None:
        return _with_reason(lut, f"dense {lut.bits}-plane weight: the LUT core reads {lut.bits} "
                                 f"bit-plane(s) per 4 inputs")
    if dsp is not None:
        if q.bits == 8:
            return _with_reason(dsp, "dense 8-bit weight: the DSP chain multiplies int8 weights")
        return _with_reason(dsp, f"dense low-bit weight, widened to int8 on the DSP chain "
                                 f"because {lut_why}")
    raise PassError(f"{_PASS}: layer {layer} ({fmt}) fits no engine of target {target.name!r}: "
                    f"DSP chain: {dsp_why}; LUT core: {lut_why}")


def _stream_bytes(t: TensorType, choice: EngineChoice) -> int:
    """Bytes of the weight streamed per pass: the stored form, or the run-time W8
    form of a float weight."""
    if t.quant is None:
        t = t.with_(dtype="u8", quant=QuantSpec(8, choice.group, "sym", "<run-time W8 scales>"))
    return (t.stored_bits() + 7) // 8


# --------------------------------------------------------------------------- the graph

def _labels(graph: Graph, node: Node) -> list[str]:
    w = graph.node(node.inputs[1])
    out = [w.attrs.get("weight", w.name), node.name]
    if node.origin:
        out.append(node.origin)
    return out


def layer_name(node: Node) -> str:
    """How messages and reports name a linear layer: its module path (node name)."""
    return f"{node.origin} (%{node.name})" if node.origin else f"%{node.name}"


def _forced(graph: Graph, linears: list[Node], dsp_globs: Sequence[str],
            lut_globs: Sequence[str]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for engine, globs in (("dsp_chain", dsp_globs), ("lut_core", lut_globs)):
        for pat in globs:
            hits = 0
            for n in linears:
                if not any(fnmatchcase(l, pat) for l in _labels(graph, n)):
                    continue
                hits += 1
                prev = out.get(n.name)
                if prev is not None and prev[0] != engine:
                    raise PassOptionError(_PASS, engine, f"layer {layer_name(n)} is matched by "
                                          f"{prev[0]}={prev[1]!r} and {engine}={pat!r}; force it "
                                          f"onto one engine only")
                out.setdefault(n.name, (engine, pat))
            if hits == 0:
                example = _labels(graph, linears[0])[-1] if linears else "<none>"
                raise PassOptionError(_PASS, engine, f"pattern {pat!r} matches no linear layer of "
                                      f"graph {graph.name!r} (globs match weight names, node names "
                                      f"and module paths such as {example!r})")
    return out


def map_engines(graph: Graph, target="u280", *, weights=None, dsp_chain: Sequence[str] = (),
                lut_core: Sequence[str] = (), prefill_tokens: int = 512) -> dict:
    """Map every linear node of ``graph`` (in place: attrs and ``graph.meta``) onto
    an engine of ``target`` (a :class:`~plait.ir.target.Target` or its name).

    ``weights`` (optional) lets asym W8 weights prove they fit int8.  An unknown
    target raises :class:`~plait.ir.target.TargetError`; a layer that cannot be
    mapped, :class:`PassError` naming it.  Returns
    ``{"changed", "target", "engines": {engine: count}, "layers": {node: engine},
    "skipped": {node: reason}}``.
    """
    tgt = get_target(target)
    if not isinstance(prefill_tokens, int) or prefill_tokens < 1:
        raise PassOptionError(_PASS, "prefill_tokens", f"must be a positive int, got {prefill_tokens!r}")
    linears, skipped = [], {}
    for n in graph.nodes("linear"):
        w = graph.node(n.inputs[1])
        if w.op != "param":
            skipped[n.name] = f"weight %{w.name} is a {w.op}, not a param"
        else:
            linears.append(n)
    forced = _forced(graph, linears, dsp_chain, lut_core)
    changed = False
    layers, counts = {}, {"dsp_chain": 0, "lut_core": 0}
    for n in linears:
        p = graph.node(n.inputs[1])
        t = p.type
        if t is None or t.rank != 2 or not t.concrete():
            raise PassError(f"{_PASS}: layer {layer_name(n)}: weight %{p.name} has type "
                            f"{t.text() if t else None}; expected a concrete [N, K]")
        rows, k = int(t.shape[0]), int(t.shape[1])
        c = choose_engine(t, k, tgt, layer=layer_name(n), forced=forced.get(n.name),
                          weights=weights, weight_name=p.attrs.get("weight", p.name))
        try:
            decode = c.cycles(rows, k, 1, tgt)
            prefill = c.cycles(rows, k, prefill_tokens, tgt)
        except TargetError as e:
            raise PassError(f"{_PASS}: layer {layer_name(n)}: {e}") from None
        new = {"engine": c.engine, "engine_reason": c.reason, "engine_mode": c.mode,
               "engine_decode_mode": c.decode_mode(tgt), "engine_bits": c.bits,
               "engine_group": c.group, "cycles_decode": decode,
               "cycles_prefill_per_token": round(prefill / prefill_tokens, 3),
               "weight_bytes": _stream_bytes(t, c)}
        if any(n.attrs.get(key) != v for key, v in new.items()):
            n.attrs.update(new)
            changed = True
        layers[n.name] = c.engine
        counts[c.engine] += 1
    for name in skipped:                      # no stale mapping on what was not mapped
        node = graph.node(name)
        for key in ENGINE_ATTRS:
            if key in node.attrs:
                del node.attrs[key]
                changed = True
    meta = {"target": tgt.name, "prefill_tokens": prefill_tokens}
    if graph.meta.get(META_KEY) != meta:
        graph.meta[META_KEY] = meta
        changed = True
    return {"changed": changed, "target": tgt.name, "engines": counts, "layers": layers,
            "forced": {k: list(v) for k, v in forced.items()}, "skipped": skipped}




@register_pass
class MapEngines(Pass):
    """Assign every linear layer to the DSP chain or the LUT core of a target."""

    name = _PASS
    OPTIONS = {
        "target": Option("str", "u280", f"hardware target (plait.ir.target: {', '.join(list_targets())})",
                         check=known_target),
        "dsp_chain": Option("list[str]", (), "globs of linear layers forced onto the DSP chain"),
        "lut_core": Option("list[str]", (), "globs of linear layers forced onto the LUT core"),
        "prefill_tokens": Option("int", 512, "token rows of the prefill cycle estimate", check=positive),
    }

    def run(self, graph, weights, ctx):
        o = self.options
        res = map_engines(graph, o["target"], weights=weights, dsp_chain=o["dsp_chain"],
                          lut_core=o["lut_core"], prefill_tokens=o["prefill_tokens"])
        ctx.details.update({k: v for k, v in res.items() if k != "changed"})
        return res["changed"]
