"""Exact mode's linears on the TVM kernels: the ``linear_p`` of
:class:`plait.ir.exact.ExactInterpreter`.

    from plait.ir.exact import ExactInterpreter
    from plait.runtime.kernels.linears import KernelLinears

    lin = KernelLinears("llvm")                         # or "cuda"
    interp = ExactInterpreter(graph, weights, linear_p=lin)
    print(lin.summary())                                # which kernel ran which linear

Every linear's ``P`` comes from one kernel (the rest of exact mode -- norms, RoPE,
attention, activations -- stays the host's integer functions):

* a LUT-core pack (:class:`~plait.ir.numerics.pack.LutPacked`) -> :func:`~.lut.lut_gemm`;
* a DSP-chain pack (:class:`~plait.ir.numerics.pack.DspPacked`, dense or N:M) ->
  :func:`~.sparse.sparse_gemm` in the pack's mode;
* an unpacked weight (a graph compiled without the ``pack`` pass, or the float LM head
  exact mode quantizes itself): the LUT kernel for 1-4-bit codes whose group size is a
  multiple of the LUT group, the dense int8 kernel otherwise.

Kernel weights are prepared once per weight (in memory).  The result must equal the
contract's ``P``; the interpreter checks its shape, the tests check every integer.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from plait.ir.numerics.common import QuantizedWeight
from plait.ir.numerics.lut import LUT_G
from plait.ir.numerics.pack import DspPacked, LutPacked

from .build import resolve_target
from .lut import lut_gemm, prepare_lut
from .sparse import prepare_sparse, sparse_gemm

__all__ = ["KernelLinears"]


class KernelLinears:
    """``linear_p`` callable running each linear on the kernels of ``target``."""

    def __init__(self, target="llvm"):
        self.target = resolve_target(target)
        self._w: dict[str, tuple[str, object]] = {}
        self.calls: Counter = Counter()             # (kernel, mode) -> evaluations

    def _prepare(self, key: str, qw: QuantizedWeight, packed):
        hit = self._w.get(key)
        if hit is None:
            if isinstance(packed, LutPacked):
                hit = ("lut", prepare_lut(packed))
            elif isinstance(packed, DspPacked):
                hit = ("sparse", prepare_sparse(packed))
            elif packed is not None:
                raise TypeError(f"{key}: unknown packed weight {type(packed).__name__}")
            elif qw.bits <= 4 and qw.group_size % LUT_G == 0:
                hit = ("lut", prepare_lut(qw))
            else:
                hit = ("sparse", prepare_sparse(qw, "dense"))
            self._w[key] = hit
        return hit

    def __call__(self, node, x8: np.ndarray, qw: QuantizedWeight, packed) -> np.ndarray:
        kind, w = self._prepare(node.inputs[1], qw, packed)
        if kind == "lut":
            self.calls["lut", f"W{w.bits}"] += 1
            p = lut_gemm(x8, w, self.target)
        else:
            self.calls["sparse", w.mode] += 1
            p = sparse_gemm(x8, w, self.target)
        return np.asarray(p, np.int64).reshape(x8.shape[0], -1)

    def summary(self) -> str:
        """One line: how many linear evaluations each kernel ran, on which target."""
        parts = [f"{kind} {mode} x{n}" for (kind, mode), n in sorted(self.calls.items())]
        return f"kernels on {self.target.kind}: " + (", ".join(parts) or "none ran")
