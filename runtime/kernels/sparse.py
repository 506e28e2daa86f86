"""N:M sparse (and dense) GEMV / GEMM on the DSP chain's int8 weights, as TVM kernels.

Equal to :mod:`plait.ir.numerics.dsp`'s contract: per output row ``r`` and quantization
group ``g``, the exact group integer ``acc[m, r, g] = sum_k q[r, k] x[m, k]``
(:func:`~plait.ir.numerics.common.group_accumulate`; in N:M modes only the ``N``
stored weights of each block of ``M`` inputs are multiplied, each with the activation
its 4-bit index selects -- the chain's sparse MUX), then
``P[m, r] = sum_g acc[m, r, g] * mant[r, g]`` (:func:`~plait.ir.numerics.common.dequant_groups`;
together :func:`~plait.ir.numerics.common.linear_int`).

Weight layout (:class:`SparseKernelWeight`, made once at load by :func:`prepare_sparse`)
    From the artifact's DSP chain pack (:class:`~plait.ir.numerics.pack.DspPacked`,
    fields ``<w>.pack.codes`` / ``.idx`` / ``.mant``): the beats are put back in row
    order (beat ``t * K/M + j``, slice ``i`` -> row ``t R + i // N``, slot ``i % N`` of
    block ``j``; :func:`~plait.ir.numerics.dsp.chain_weight_beats`), the ``bits``-bit codes
    widened to int8 (``q = u - 2^(bits-1)``, :func:`~plait.ir.numerics.dsp.widen_code`),
    padding rows dropped: ``vals`` int8 ``[N, K n/m]`` and (N:M modes) ``cols`` int32
    ``[N, K n/m]``, the input column ``j M + idx`` of each slot -- the
    :func:`~plait.ir.numerics.dsp.compress_nm` format with absolute columns.  Dense mode
    keeps ``vals`` ``[N, K]`` and no ``cols``.  ``mant`` is widened to int32.

One TE description (:func:`sparse_te`) is built for ``llvm`` (rows in parallel, the
group's reduction an inner loop that LLVM vectorizes) and ``cuda`` (a thread per
``(m, r)``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from plait.ir.numerics.common import QuantizedWeight, as_int
from plait.ir.numerics.dsp import M_MAX, parse_mode, widen_code
from plait.ir.numerics.pack import DspPacked, pack_dsp

from .build import KernelError, Target, build_cached, int8_rows, resolve_target, tvm
from .lut import _prim, schedule_generic


@dataclass
class SparseKernelWeight:
    mode: str
    n: int                 # nonzeros per block
    m: int                 # block size
    rows: int
    k: int
    group_size: int
    exp: int
    vals: np.ndarray       # int8 [rows, K n/m]
    cols: Optional[np.ndarray]   # int32 [rows, K n/m] (None: dense)
    mant: np.ndarray       # int32 [rows, K/G]

    @property
    def dense(self) -> bool:
        return self.cols is None

    @property
    def n_groups(self) -> int:
        return self.k // self.group_size


def prepare_sparse(w, mode="dense") -> SparseKernelWeight:
    """The kernels' layout of a :class:`~plait.ir.numerics.pack.DspPacked` (or of a
    :class:`~plait.ir.numerics.common.QuantizedWeight`, packed for ``mode`` first)."""
    if isinstance(w, SparseKernelWeight):
        return w
    if isinstance(w, QuantizedWeight):
        w = pack_dsp(w, mode)
    if not isinstance(w, DspPacked):
        raise KernelError(f"sparse kernels take a DspPacked / QuantizedWeight, got {type(w).__name__}")
    md = parse_mode(w.mode)
    r = w.n_dsp // md.n
    tiles, nb = -(-w.rows // r), w.k // md.m

    def rows_major(a):
        return as_int(a).reshape(tiles, nb, r, md.n).transpose(0, 2, 1, 3).reshape(tiles * r, nb * md.n)

    q = widen_code(rows_major(w.codes), w.bits)
    if (q[w.rows:] != 0).any():
        raise KernelError("padding rows of the last tile hold nonzero weights (corrupt pack)")
    vals = np.ascontiguousarray(q[:w.rows], np.int8)
    cols = None
    if not md.dense:
        ix = rows_major(w.idx)[:w.rows]
        if ix.size and ix.max() >= md.m:
            raise KernelError(f"sparse index outside the mode's block of {md.m}")
        blk = np.repeat(np.arange(nb, dtype=np.int64) * md.m, md.n)[None, :]
        cols = np.ascontiguousarray(blk + ix, np.int32)
    return SparseKernelWeight(md.name, md.n, md.m, w.rows, w.k, w.group_size, w.exp, vals,
                              cols, np.ascontiguousarray(as_int(w.mant), np.int32))


def sparse_te(rows: int, k: int, n: int, m: int, group_size: int, dense: bool):
    """TE: ``x`` int8 ``[M, K]`` (``M`` symbolic), ``vals``, (``cols``), ``mant`` ->
    ``P`` int64 ``[M, rows]``."""
    te = tvm().te
    mm = te.var("M")
    kc, ng = k * n // m, k // group_size
    gs = group_size * n // m                  # stored slots per group
    x = te.placeholder((mm, k), "int8", name="x")
    vals = te.placeholder((rows, kc), "int8", name="vals")
    mant = te.placeholder((rows, ng), "int32", name="mant")
    s = te.reduce_axis((0, gs), name="s")
    if dense:
        acc = te.compute((mm, rows, ng), lambda a, r, g: te.sum(
            vals[r, g * gs + s].astype("int32") * x[a, g * gs + s].astype("int32"), axis=s),
            name="acc")
        args = [x, vals, mant]
    else:
        cols = te.placeholder((rows, kc), "int32", name="cols")
        acc = te.compute((mm, rows, ng), lambda a, r, g: te.sum(
            vals[r, g * gs + s].astype("int32") * x[a, cols[r, g * gs + s]].astype("int32"),
            axis=s), name="acc")
        args = [x, vals, cols, mant]
    rg = te.reduce_axis((0, ng), name="rg")
    p = te.compute((mm, rows), lambda a, r: te.sum(
        acc[a, r, rg].astype("int64") * mant[r, rg].astype("int64"), axis=rg), name="P")
    return args + [p]


_BUILT: dict = {}


def build_sparse(w: SparseKernelWeight, target="llvm"):
    tg = resolve_target(target)
    key = {"rows": w.rows, "k": w.k, "n": w.n, "m": w.m, "group": w.group_size,
           "dense": w.dense}
    memo = (tuple(sorted(key.items())), tg)
    if memo in _BUILT:
        return _BUILT[memo]

    def make():
        mod = _prim(sparse_te(w.rows, w.k, w.n, w.m, w.group_size, w.dense))
        return schedule_generic(mod, tg, [("P", ("acc",))])

    _BUILT[memo] = build_cached("sparse", tg, key, make)
    return _BUILT[memo]


_WCACHE: dict = {}


def sparse_gemm(x, w, target="llvm", mode="dense", device=None) -> np.ndarray:
    """``P`` int64 ``[M, N]`` (``[N]`` for 1-D ``x``) of int8 ``x [M, K]`` times a DSP
    chain weight (``DspPacked`` / ``QuantizedWeight`` packed for ``mode`` /
    :class:`SparseKernelWeight`); equals :func:`plait.ir.numerics.common.linear_int`'s ``P``."""
    w = prepare_sparse(w, mode)
    x2, one = int8_rows(x, w.k)
    tg = resolve_target(target)
    mod = build_sparse(w, tg)
    t = tvm()
    dev = device or (t.cpu(0) if tg.kind == "llvm" else t.cuda(0))
    key = (id(w), str(dev))
    hit = _WCACHE.get(key)
    if hit is None or hit[0] is not w:
        arrays = (w.vals, w.mant) if w.dense else (w.vals, w.cols, w.mant)
        hit = (w, tuple(t.runtime.tensor(a, dev) for a in arrays))
        _WCACHE[key] = hit
    p = t.runtime.empty((x2.shape[0], w.rows), "int64", dev)
    mod["main"](t.runtime.tensor(np.ascontiguousarray(x2), dev), *hit[1], p)
    out = p.numpy()
    return out[0] if one else out


sparse_gemv = sparse_gemm

__all__ = ["SparseKernelWeight", "prepare_sparse", "sparse_te", "build_sparse", "sparse_gemm",
           "sparse_gemv"]
