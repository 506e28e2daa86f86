"""fp32 GEMM ``Y = X W^T``: float mode's linears on a device (the cuda float path).

Float mode (:class:`plait.ir.Interpreter`) computes every linear as ``x @ W^T`` with
the artifact's dequantized weight ``W [N, K]`` (float32).  This kernel is that product,
one TE description with every dimension symbolic (one build serves every shape),
built for ``llvm`` and ``cuda`` like the integer kernels.  It is a float kernel: its
sums are not the host's to the last bit (another summation order), so it is compared
with a tolerance, never used in exact mode.

:class:`FloatKernelLinears` is the ``linear`` hook of :class:`plait.ir.Interpreter`:
it keeps each weight on the device (uploaded once, keyed by the weight's graph name)
and copies only the activations per call; the rest of float mode (norms, RoPE,
attention, activations) stays the host's.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from .build import KernelError, build_cached, resolve_target, tvm
from .lut import _prim, schedule_generic

__all__ = ["f32_gemm_te", "build_f32_gemm", "f32_gemm", "FloatKernelLinears"]


def f32_gemm_te():
    te = tvm().te
    m, n, k = te.var("M"), te.var("N"), te.var("K")
    x = te.placeholder((m, k), "float32", name="x")
    w = te.placeholder((n, k), "float32", name="w")
    r = te.reduce_axis((0, k), name="r")
    y = te.compute((m, n), lambda i, j: te.sum(x[i, r] * w[j, r], axis=r), name="Y")
    return [x, w, y]


_BUILT: dict = {}


def build_f32_gemm(target="llvm"):
    tg = resolve_target(target)
    if tg not in _BUILT:
        _BUILT[tg] = build_cached("f32_gemm", tg, {},
                                  lambda: schedule_generic(_prim(f32_gemm_te()), tg, [("Y", ())]))
    return _BUILT[tg]


def _device(tg):
    t = tvm()
    return t.cpu(0) if tg.kind == "llvm" else t.cuda(0)


def _upload(w: np.ndarray, tg):
    """The weight as a float32 tensor on ``tg``'s device."""
    return tvm().runtime.tensor(np.ascontiguousarray(w, np.float32), _device(tg))


def _run(tg, x2: np.ndarray, w_dev, n: int) -> np.ndarray:
    t = tvm()
    dev = _device(tg)
    y = t.runtime.empty((x2.shape[0], n), "float32", dev)
    build_f32_gemm(tg)["main"](t.runtime.tensor(x2, dev), w_dev, y)
    return y.numpy()


def _rows(x, k: int) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim < 1 or x.shape[-1] != k:
        raise KernelError(f"activations must be [..., {k}], got shape {x.shape}")
    return np.ascontiguousarray(x.reshape(-1, k), np.float32)


def f32_gemm(x, w, target="llvm") -> np.ndarray:
    """``x @ w.T`` in float32 for ``x [..., K]`` and ``w [N, K]`` on ``target``."""
    w = np.asarray(w)
    if w.ndim != 2:
        raise KernelError(f"weight must be [N, K], got shape {w.shape}")
    tg = resolve_target(target)
    x2 = _rows(x, w.shape[1])
    return _run(tg, x2, _upload(w, tg), w.shape[0]).reshape(*np.shape(x)[:-1], w.shape[0])


class FloatKernelLinears:
    """``linear`` hook of :class:`plait.ir.Interpreter` running every linear on the
    fp32 GEMM of ``target``; the weights stay on the device (one upload each)."""

    def __init__(self, target="llvm"):
        self.target = resolve_target(target)
        self._w: dict[str, tuple[object, int]] = {}
        self.calls: Counter = Counter()             # linears evaluated, by weight name

    def __call__(self, node, x, w, b=None) -> np.ndarray:
        key = node.inputs[1]
        hit = self._w.get(key)
        if hit is None:
            w = np.asarray(w)
            hit = self._w[key] = (_upload(w, self.target), w.shape[0])
        w_dev, n = hit
        x = np.asarray(x)
        y = _run(self.target, _rows(x, x.shape[-1]), w_dev, n).reshape(*x.shape[:-1], n)
        self.calls[key] += 1
        return y if b is None else (y + np.asarray(b, np.float32)).astype(np.float32)

    def summary(self) -> str:
        """One line: linear evaluations on the fp32 GEMM and the weights on the device."""
        return (f"fp32 GEMM on {self.target.kind}: {sum(self.calls.values())} linear "
                f"evaluations, {len(self._w)} weights on the device")
