"""A compiled model's linear layers on the RTL engines, every integer against exact mode.

    from plait.sim.layers import capture_linears, check_on_rtl, sim_target, format_table

    target = sim_target(n_dsp=64)                      # sim16 with a 64-slice chain
    map_engines(graph, target, weights=weights, prefill_tokens=len(ids))   # plait.passes
    calls, new_ids = capture_linears(graph, weights, ids, decode_steps=2,
                                     layers=(0, 15))
    check = check_on_rtl(graph, calls, target)         # one simulation per engine
    print(format_table(check.rows)); check.scoreboard.assert_clean()

:func:`capture_linears` runs :class:`plait.ir.exact.ExactInterpreter` (prefill of the
prompt, then greedy decode steps) and keeps, through its ``on_linear`` hook, every
evaluation of the selected decoder layers' linears: the int8 rows ``x[T, K]``, the
``QuantizedWeight`` and exact mode's 48-bit ``P[T, N]``.

:func:`check_on_rtl` runs each captured call on the engine its node is mapped to
(node attrs of the ``map_engines`` pass; all calls of one engine in ONE simulation,
:func:`plait.sim.engines.run_jobs`), from the weight packed for the build
(:mod:`plait.ir.numerics.pack`, or the artifact's pack through ``packed``), and
compares with :class:`~plait.sim.scoreboard.Scoreboard` equality:

* DSP chain: ``acc == group_accumulate(signed_weight(qw), x, G)`` (tag
  ``<node>@<call>.acc``) and ``dequant_groups(acc, mant) == P`` (``.P``); where the
  target's chains have decode lane packing, a call's odd last token row runs as a
  pair-mode job (:func:`~plait.sim.engines.dsp_call_jobs`, a pair pack made here once
  per weight) and the call's cycles are its span over both jobs;
* LUT core: ``P == P`` of exact mode (``.P``).

Each row also has the measured cycles and the prediction of the ir-level cycle model
(:func:`~plait.ir.target.dsp_linear_cycles` / :func:`~plait.ir.target.lut_linear_cycles`)
for the build's geometry, checked against the mapping pass's own node attributes
(``cycles_decode`` for one token row, ``cycles_prefill_per_token`` for the
``prefill_tokens`` it was run with).  Layering: this module uses only :mod:`plait.ir`, :mod:`plait.rtl`
and :mod:`plait.sim`; compiling and mapping the model is the caller's.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from plait.ir.numerics import dequant_groups, group_accumulate, signed_weight
from plait.ir.numerics.common import QuantizedWeight
from plait.ir.numerics.dsp import parse_mode
from plait.ir.numerics.pack import pack_dsp, pack_lut, packed_from
from plait.ir.target import (Target, dsp_linear_cycles, get_target, lut_linear_cycles,
                             register_target)
from plait.rtl.dsp_chain import DspChainConfig
from plait.rtl.lut_core import LutCoreConfig

from .engines import LutJob, StreamRun, dsp_call_jobs, run_jobs
from .scoreboard import Scoreboard

__all__ = ["LinearCall", "LayerCheck", "capture_linears", "check_on_rtl", "sim_target",
           "artifact_packs", "format_table", "layer_of", "weight_sparsity", "CYCLE_TOLERANCE",
           "PACK_ATTR"]

#: param-node attribute of the ``pack`` pass (plait.passes.pack): the format's scalars
#: and ``"arrays": {field: weight-store name}``
PACK_ATTR = "pack"

#: measured / predicted cycles must lie within this relative distance
CYCLE_TOLERANCE = 0.05


@dataclass
class LinearCall:
    """One evaluation of a linear node in exact mode."""
    node: str                 # node name (e.g. "layers.0.self_attn.q_proj")
    call: str                 # "prefill", "decode1", "decode2", ...
    x: np.ndarray             # int8 [T, K]
    qw: QuantizedWeight       # the weight the engine multiplies
    p: np.ndarray             # int64 [T, N]: exact mode's dequantized accumulator


@dataclass
class LayerCheck:
    """What :func:`check_on_rtl` found: one row per call (the cycle table), the
    scoreboard of every compared integer and the simulator runs per engine."""
    rows: list[dict]
    scoreboard: Scoreboard
    runs: dict[str, StreamRun]
    seconds: dict

    def cycle_outliers(self, tol: float = CYCLE_TOLERANCE) -> list[dict]:
        return [r for r in self.rows if abs(r["ratio"] - 1.0) > tol]


def layer_of(node_name: str) -> Optional[int]:
    """Decoder layer index of a node name like ``layers.15.mlp.up_proj`` (else None)."""
    parts = node_name.split(".")
    for a, b in zip(parts, parts[1:]):
        if a == "layers" and b.isdigit():
            return int(b)
    return None


def sim_target(n_dsp: int = 16, base: str = "sim16") -> Target:
    """The ``base`` target (default ``sim16``, one engine of each) with a DSP chain of
    ``n_dsp`` slices, registered as ``<base>-dsp<n_dsp>`` (``base`` itself for its own
    n_dsp) -- the target whose geometry the RTL builds and the mapping share."""
    t = get_target(base)
    if t.dsp_chain.n_dsp == n_dsp:
        return t
    return register_target(dataclasses.replace(
        t, name=f"{base}-dsp{n_dsp}",
        description=f"{t.name} with a {n_dsp}-slice DSP chain (the RTL layer tests' build)",
        dsp_chain=dataclasses.replace(t.dsp_chain, n_dsp=n_dsp)))


def capture_linears(graph, weights, prompt_ids: Sequence[int], *, decode_steps: int = 2,
                    layers: Iterable[int] | None = None,
                    select: Callable[[str], bool] | None = None):
    """Exact-mode prefill of ``prompt_ids`` and ``decode_steps`` greedy decode steps.

    Keeps the linear evaluations of nodes in the decoder ``layers`` (and/or those for
    which ``select(node_name)`` is true).  Returns ``(calls, generated_ids)``."""
    from plait.ir.exact import ExactInterpreter

    want = set(layers) if layers is not None else None
    if want is None and select is None:
        raise ValueError("capture_linears: give layers= and/or select=")
    calls: list[LinearCall] = []
    phase = ["prefill"]

    def keep(name: str) -> bool:
        return ((want is not None and layer_of(name) in want)
                or (select is not None and select(name)))

    def hook(node, x8, qw, p):
        if keep(node.name):
            calls.append(LinearCall(node.name, phase[0], np.array(x8, np.int8, copy=True), qw,
                                    np.array(p, np.int64, copy=True)))

    ex = ExactInterpreter(graph, weights, on_linear=hook)
    ex.reset()
    ids = np.asarray(prompt_ids, np.int64)[None, :]
    logits = ex.logits(ids)
    out = []
    for step in range(decode_steps):
        nxt = int(np.argmax(logits[0, -1]))
        out.append(nxt)
        phase[0] = f"decode{step + 1}"
        logits = ex.logits(np.array([[nxt]], np.int64))
    if not calls:
        raise ValueError(f"capture_linears: no linear evaluation matched layers={want} / "
                         f"select={select}")
    return calls, out


def artifact_packs(graph, weights, *, required: bool = True):
    """``packed(node, engine)`` for :func:`check_on_rtl`: the packed weight the
    artifact stores for a linear node (the ``pack`` pass's ``<w>.pack.*`` arrays,
    rebuilt and checked by :func:`~plait.ir.numerics.pack.packed_from`).  A node
    whose weight has no pack raises (``required``) or gives ``None`` (pack it then)."""
    def packed(node_name: str, engine: str):
        param = graph.node(graph.node(node_name).inputs[1])
        attr = param.attrs.get(PACK_ATTR)
        if attr is None:
            if required:
                raise ValueError(f"linear {node_name}: weight {param.attrs.get('weight')!r} "
                                 f"has no packed form (run the pack pass after map_engines)")
            return None
        meta = {k: v for k, v in attr.items() if k != "arrays"}
        if meta.get("format") != engine:
            raise ValueError(f"linear {node_name} is mapped to {engine} but its weight is "
                             f"packed for {meta.get('format')!r}")
        arrays = {f: np.asarray(weights[n]) for f, n in attr["arrays"].items()}
        return packed_from(meta, arrays)
    return packed


def _mapped(graph, call: LinearCall) -> dict:
    node = graph.node(call.node)
    a = node.attrs
    if "engine" not in a:
        raise ValueError(f"linear {call.node} has no engine mapping (attrs {sorted(a)}): "
                         f"run the map_engines pass (plait.passes.mapping) first")
    return a


def weight_sparsity(graph, node_name: str) -> str:
    """The DSP chain mode of a linear's weight: its type's N:M sparsity, else dense."""
    t = graph.node(graph.node(node_name).inputs[1]).type
    if t is not None and t.sparsity is not None:
        return parse_mode((t.sparsity.n, t.sparsity.m)).name
    return "dense"


def check_on_rtl(graph, calls: Sequence[LinearCall], target, *,
                 packed: Callable[[str, str], object] | None = None,
                 opt: dict[str, str] | None = None) -> LayerCheck:
    """Run every call on the engine its node is mapped to (see module docstring).

    ``target``: the :class:`~plait.ir.target.Target` (or name) the graph was mapped
    for; the RTL builds are ``DspChainConfig.from_target`` / ``LutCoreConfig.from_target``
    of it (one engine of each: ``count`` must be 1).  ``packed(node, engine)`` may
    return the artifact's pack of the node's weight (``None``: pack it here).  ``opt``
    maps an engine to the C++ optimisation of its build (:func:`~plait.sim.engines.
    run_jobs`)."""
    tgt = get_target(target)
    mapped_for = graph.meta.get("engine_map", {}).get("target")
    if mapped_for is not None and mapped_for != tgt.name:
        raise ValueError(f"the graph was mapped for target {mapped_for!r}, not {tgt.name!r}: "
                         f"run map_engines with the target of the RTL build")
    dsp_cfg = DspChainConfig.from_target(tgt)
    lut_cfg = LutCoreConfig.from_target(tgt) if tgt.lut_core is not None else None
    for what, geo in (("dsp_chain", tgt.dsp_chain), ("lut_core", tgt.lut_core)):
        if geo is not None and geo.count != 1:
            raise ValueError(f"target {tgt.name!r} has {geo.count} x {what}; the RTL check "
                             f"simulates one engine (use a target with count = 1)")
    prefill_tokens = graph.meta.get("engine_map", {}).get("prefill_tokens")
    t0 = time.perf_counter()
    jobs: dict[str, list] = {"dsp_chain": [], "lut_core": []}
    # per engine, per call: (call, its mapping attrs, its name, how many jobs it took)
    owners: dict[str, list[tuple[LinearCall, dict, str, int]]] = {"dsp_chain": [], "lut_core": []}
    packs: dict[tuple[str, str], object] = {}

    def pair_pack(wname: str, c: LinearCall, bits: int):
        if (wname, "pair") not in packs:
            packs[wname, "pair"] = pack_dsp(c.qw, "pair", n_dsp=dsp_cfg.n_dsp, bits=bits)
        return packs[wname, "pair"]
    for c in calls:
        a = _mapped(graph, c)
        eng = a["engine"]
        if eng not in jobs:
            raise ValueError(f"linear {c.node}: unknown engine {eng!r}")
        if int(a["engine_group"]) != c.qw.group_size:
            raise ValueError(f"linear {c.node}: mapped with group {a['engine_group']}, exact "
                             f"mode multiplies groups of {c.qw.group_size}")
        wname = graph.node(graph.node(c.node).inputs[1]).attrs.get("weight", c.node)
        key = (wname, eng)
        if key not in packs:
            pk = packed(c.node, eng) if packed is not None else None
            if pk is None:
                if eng == "dsp_chain":
                    pk = pack_dsp(c.qw, weight_sparsity(graph, c.node), n_dsp=dsp_cfg.n_dsp,
                                  bits=int(a["engine_bits"]))
                else:
                    if lut_cfg is None:
                        raise ValueError(f"linear {c.node} is mapped to the LUT core, target "
                                         f"{tgt.name!r} has none")
                    pk = pack_lut(c.qw, n=lut_cfg.n)
            packs[key] = pk
        name = f"{c.node}@{c.call}"
        if eng == "dsp_chain":
            # an odd last token row runs in decode lane packing where the chain has it
            mine = dsp_call_jobs(name, c.x, packs[key], tgt.dsp_chain,
                                 lambda: pair_pack(wname, c, packs[key].bits))
        else:
            mine = [LutJob(name, c.x, packed=packs[key])]
        jobs[eng].extend(mine)
        owners[eng].append((c, a, name, len(mine)))
    t1 = time.perf_counter()
    sb = Scoreboard("rtl layer check")
    rows: list[dict] = []
    runs: dict[str, StreamRun] = {}
    for eng in ("dsp_chain", "lut_core"):
        if not jobs[eng]:
            continue
        run = run_jobs(jobs[eng], dsp_cfg=dsp_cfg, lut_cfg=lut_cfg, opt=(opt or {}).get(eng))
        runs[eng] = run
        at = 0
        for c, a, name, n_jobs in owners[eng]:
            part = run.results[at:at + n_jobs]
            at += n_jobs
            res = part[0]
            t, k = c.x.shape
            n = c.p.shape[1]
            if eng == "dsp_chain":
                ref = group_accumulate(signed_weight(c.qw), c.x, c.qw.group_size)
                sb.expect(f"{name}.acc", ref)
                sb.observe(f"{name}.acc", np.concatenate([r.out for r in part]))
                sb.expect(f"{name}.P", c.p)
                sb.observe(f"{name}.P", np.concatenate([dequant_groups(r.out, r.packed.mant)
                                                        for r in part]))
                pred = dsp_linear_cycles(n, k, res.packed.mode, t, tgt.dsp_chain,
                                         bits=res.packed.bits)
                mode = " + ".join(f"{r.packed.mode} W{r.packed.bits}" for r in part)
            else:
                sb.expect(f"{name}.P", c.p)
                sb.observe(f"{name}.P", res.out)
                pk = res.packed
                pred = lut_linear_cycles(n, k, pk.bits, pk.group_size, t, tgt.lut_core)
                mode = f"W{pk.bits} {pk.scheme} g{pk.group_size}"
            _check_mapping(c.node, a, t, pred, prefill_tokens, tgt.name)
            measured = part[-1].end - part[0].start     # a call split into jobs: its span
            rows.append({"linear": c.node, "call": c.call, "T": t, "N": n, "K": k,
                         "engine": eng, "mode": mode, "measured": measured,
                         "predicted": pred, "ratio": measured / pred,
                         "beats": sum(r.beats for r in part)})
    secs = {"prepare": t1 - t0, **{f"{e}_{k}": v for e, r in runs.items()
                                   for k, v in r.seconds.items() if k not in ("built", "bench")}}
    return LayerCheck(rows, sb, runs, secs)


def _check_mapping(node: str, attrs: dict, tokens: int, pred: int, prefill_tokens,
                   target: str) -> None:
    """The mapping pass's own numbers (``cycles_decode`` for one token row,
    ``cycles_prefill_per_token`` x ``prefill_tokens``, rounded to 3 decimals) must be
    the cycle model's prediction used here."""
    if tokens == 1 and "cycles_decode" in attrs:
        mapped, slack = float(attrs["cycles_decode"]), 0.0
    elif tokens == prefill_tokens and "cycles_prefill_per_token" in attrs:
        mapped, slack = float(attrs["cycles_prefill_per_token"]) * tokens, 5e-4 * tokens
    else:
        return
    if abs(mapped - pred) > slack:
        raise AssertionError(f"{node}: the mapping pass predicts {mapped:g} cycles for "
                             f"{tokens} token row(s), the cycle model of target {target!r} "
                             f"{pred}: was the graph mapped for another geometry?")


def format_table(rows: Sequence[dict]) -> str:
    """The cycle table: linear, call, shape, engine, mode, measured, predicted, ratio."""
    head = (f"{'linear':28} {'call':8} {'shape T x N x K':17} {'engine':9} {'mode':14} "
            f"{'measured':>9} {'predicted':>9} {'ratio':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        shape = f"{r['T']}x{r['N']}x{r['K']}"
        lines.append(f"{r['linear']:28} {r['call']:8} {shape:17} {r['engine']:9} "
                     f"{r['mode']:14} {r['measured']:>9} {r['predicted']:>9} "
                     f"{r['ratio']:>7.4f}")
    tot_m = sum(r["measured"] for r in rows)
    tot_p = sum(r["predicted"] for r in rows)
    if rows:
        lines.append("-" * len(head))
        lines.append(f"{'total':28} {'':8} {'':17} {'':9} {'':14} {tot_m:>9} {tot_p:>9} "
                     f"{tot_m / tot_p:>7.4f}")
    return "\n".join(lines)
