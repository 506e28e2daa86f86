"""Exact mode's linears on the RTL engines in Verilator: the ``linear_p`` of
:class:`plait.ir.exact.ExactInterpreter` on the ``sim`` device.

    from plait.ir.exact import ExactInterpreter
    from plait.runtime.rtl_linears import RtlLinears

    lin = RtlLinears(graph)                       # engine builds of sim16
    interp = ExactInterpreter(graph, weights, linear_p=lin)
    print(lin.summary())                          # engine runs, cycles, simulation time

Every linear's ``P`` comes from the RTL: the linear streams through the engine its node
is mapped to (``map_engines``' ``engine`` attribute) from the artifact's packed weight,
one simulation per linear call on the C++ stream player (:func:`plait.sim.engines.
run_jobs`; no cocotb at run time):

* DSP chain: ``P = dequant_groups(acc, mant)`` of the chain's group sums; where the
  target's chains enable ``pair`` and the weight is dense with at most 4-bit codes, an
  odd call's last token row (batch-1 decode: the only row) runs in decode lane packing,
  two weight rows per slice, from a pair pack made here once per weight (the artifact
  stores the dense pack);
* LUT core: ``P`` as the core emits it;
* a linear without a packed weight (the float LM head exact mode quantizes itself, or a
  graph compiled without the ``pack`` pass) is packed here: for the LUT core if it is
  mapped there, else for the DSP chain in its sparsity (dense for the LM head).

The builds are the target's geometry (default ``sim16``: a 16-slice DSP chain, a 2 x 64
LUT core).  The norms, attention and activations stay the host's integer functions:
the accelerator's controller and special-function units are not in the RTL.
"""
from __future__ import annotations

from collections import Counter
from typing import Optional

import numpy as np

from plait.ir.numerics import dequant_groups
from plait.ir.numerics.pack import DspPacked, LutPacked, pack_dsp, pack_lut
from plait.ir.target import get_target
from plait.rtl.dsp_chain import DspChainConfig
from plait.rtl.lut_core import LutCoreConfig
from plait.sim.engines import LutJob, dsp_call_jobs, run_jobs
from plait.sim.layers import weight_sparsity

__all__ = ["RtlLinears", "HARDWARE"]

#: the target of the sim device's engine builds
HARDWARE = "sim16"


class RtlLinears:
    """``linear_p`` callable running each linear on its RTL engine (module docstring)."""

    def __init__(self, graph, target=HARDWARE, *, opt: Optional[dict] = None):
        self.graph = graph
        self.target = get_target(target)
        self.dsp_cfg = DspChainConfig.from_target(self.target)
        self.lut_cfg = LutCoreConfig.from_target(self.target) if self.target.lut_core else None
        self.opt = dict(opt or {})      # engine -> C++ optimisation of its build
        self._packs: dict = {}          # weight name (or (name, "pair")) -> its pack
        self.calls: Counter = Counter()             # (engine, mode) -> evaluations
        self.cycles: Counter = Counter()            # engine -> measured cycles
        self.seconds: Counter = Counter()           # engine -> simulation seconds

    def _pack(self, node, qw, packed):
        key = node.inputs[1]
        hit = self._packs.get(key)
        if hit is not None:
            return hit
        engine = node.attrs.get("engine")
        if packed is not None and not isinstance(packed, (DspPacked, LutPacked)):
            raise TypeError(f"linear {node.name}: unknown packed weight {type(packed).__name__}")
        if packed is None:
            if engine == "lut_core":
                if self.lut_cfg is None:
                    raise ValueError(f"linear {node.name} is mapped to the LUT core; target "
                                     f"{self.target.name!r} has none")
                packed = pack_lut(qw, n=self.lut_cfg.n)
            else:
                packed = pack_dsp(qw, weight_sparsity(self.graph, node.name),
                                  n_dsp=self.dsp_cfg.n_dsp)
        self._packs[key] = packed
        return packed

    def _pair_pack(self, node, qw, pk: DspPacked) -> DspPacked:
        """The decode lane packing of a dense DSP weight (two weight rows per slice),
        packed once from ``qw``: the artifact stores the dense pack only."""
        key = (node.inputs[1], "pair")
        if key not in self._packs:
            if qw is None:
                raise ValueError(f"linear {node.name}: its pair-mode pass needs the quantized "
                                 f"weight to repack, and none was given")
            self._packs[key] = pack_dsp(qw, "pair", n_dsp=self.dsp_cfg.n_dsp, bits=pk.bits)
        return self._packs[key]

    def __call__(self, node, x8: np.ndarray, qw, packed) -> np.ndarray:
        pk = self._pack(node, qw, packed)
        if isinstance(pk, DspPacked):
            engine = "dsp_chain"
            jobs = dsp_call_jobs(node.name, x8, pk, self.target.dsp_chain,
                                 lambda: self._pair_pack(node, qw, pk))
            run = run_jobs(jobs, dsp_cfg=self.dsp_cfg, opt=self.opt.get(engine))
            p = np.concatenate([dequant_groups(r.out, j.packed.mant)
                                for j, r in zip(jobs, run.results)])
            modes = [f"{j.packed.mode} W{j.packed.bits}" for j in jobs]
        else:
            engine = "lut_core"
            run = run_jobs([LutJob(node.name, x8, packed=pk)], lut_cfg=self.lut_cfg,
                           opt=self.opt.get(engine))
            p, modes = run.results[0].out, [f"W{pk.bits} {pk.scheme}"]
        for mode, res in zip(modes, run.results):
            self.calls[engine, mode] += 1
            self.cycles[engine] += res.cycles
        self.seconds[engine] += run.seconds["sim"]
        return np.asarray(p, np.int64)

    def summary(self) -> str:
        """One line: linear evaluations per engine and mode, cycles, simulation seconds."""
        runs = ", ".join(f"{e} {m} x{n}" for (e, m), n in sorted(self.calls.items()))
        per = "; ".join(f"{e} {self.cycles[e]} cycles in {self.seconds[e]:.2f} s"
                        for e in sorted(self.cycles))
        return f"RTL on {self.target.name}: {runs or 'no linear ran'}" + (f" ({per})" if per else "")
