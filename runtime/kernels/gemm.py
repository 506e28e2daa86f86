"""int8 x int8 -> int32 GEMM (batched), the attention products of exact mode.

:mod:`plait.ir.numerics.sfu` defines the attention scores per Q/K scale group as
``S_g = q8_g . k8_g`` and the output as ``O = w8 . v8``: int8 x int8 dot products
accumulated exactly in int32 (``|sum| <= 2^14 K``, exact for ``K <= 2^17``).  The kernel
is that product, ``C[b, i, j] = sum_k A[b, i, k] B[b, j, k]`` ("NT": both operands
row-major over the reduction), one TE description with every dimension symbolic, so one
build serves every shape: ``Q K^T`` is ``int8_gemm(q8, k8)`` and ``P V`` is
``int8_gemm(w8, v8^T)``.
"""
from __future__ import annotations

import numpy as np

from .build import KernelError, build_cached, resolve_target, tvm
from .lut import _prim, schedule_generic

MAX_GEMM_K = 1 << 17


def int8_gemm_te():
    te = tvm().te
    b, m, n, k = te.var("B"), te.var("M"), te.var("N"), te.var("K")
    a = te.placeholder((b, m, k), "int8", name="a")
    w = te.placeholder((b, n, k), "int8", name="b")
    r = te.reduce_axis((0, k), name="r")
    c = te.compute((b, m, n), lambda z, i, j: te.sum(
        a[z, i, r].astype("int32") * w[z, j, r].astype("int32"), axis=r), name="C")
    return [a, w, c]


_BUILT: dict = {}


def build_int8_gemm(target="llvm"):
    tg = resolve_target(target)
    if tg in _BUILT:
        return _BUILT[tg]

    def make():
        return schedule_generic(_prim(int8_gemm_te()), tg, [("C", ())])

    _BUILT[tg] = build_cached("int8_gemm", tg, {}, make)
    return _BUILT[tg]


def int8_gemm(a, b, target="llvm", device=None) -> np.ndarray:
    """``C = A B^T`` int32 for int8 ``A [..., M, K]`` and ``B [..., N, K]`` (equal
    leading shapes); equals ``a.astype(int64) @ b.astype(int64).swapaxes(-1, -2)``."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != np.int8 or b.dtype != np.int8:
        raise KernelError(f"int8_gemm takes int8 operands, got {a.dtype} and {b.dtype}")
    if a.ndim < 2 or a.shape[:-2] != b.shape[:-2] or a.shape[-1] != b.shape[-1]:
        raise KernelError(f"operands must be [..., M, K] and [..., N, K], got {a.shape} and {b.shape}")
    if a.shape[-1] > MAX_GEMM_K:
        raise KernelError(f"K={a.shape[-1]} exceeds {MAX_GEMM_K} (int32 accumulation)")
    lead = a.shape[:-2]
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-2]
    a3 = np.ascontiguousarray(a.reshape(-1, m, k))
    b3 = np.ascontiguousarray(b.reshape(-1, n, k))
    tg = resolve_target(target)
    mod = build_int8_gemm(tg)
    t = tvm()
    dev = device or (t.cpu(0) if tg.kind == "llvm" else t.cuda(0))
    c = t.runtime.empty((a3.shape[0], m, n), "int32", dev)
    mod["main"](t.runtime.tensor(a3, dev), t.runtime.tensor(b3, dev), c)
    return c.numpy().reshape(*lead, m, n)


__all__ = ["MAX_GEMM_K", "int8_gemm_te", "build_int8_gemm", "int8_gemm"]
