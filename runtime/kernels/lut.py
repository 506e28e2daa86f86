"""LUT mpGEMV / GEMM (T-MAC style) as TVM kernels, equal to :mod:`plait.ir.numerics.lut`.

The arithmetic is the LUT core's (``plait/ir/numerics/lut.py``), step by step:

1. *Table precompute* (:func:`tables_te`, one TE description for every target): per
   activation row ``m`` and chunk ``c`` of ``g = 4`` int8 activations the 8 stored
   entries ``S[m, c, j] = x_3 + sum_{k<3} (+-x_k)`` (bit ``k`` of ``j``; ==
   :func:`~plait.ir.numerics.lut.lut_precompute`) and the group sums
   ``X[m, g] = sum x`` (``sum_c S[c, 7]``).
2. *Symmetric lookup, bit-serial planes, per-group integer accumulation*:
   ``A'[m, n, g] = sum_{c in g} sum_{i<b} 2^i L(idx_i[n, c])`` with
   ``L(idx) = S[idx & 7]`` if ``idx[3]`` else ``-S[~idx & 7]`` (== ``lut_lookup``) and
   the 4-bit plane indices of the packed weight (``<w>.pack.planes``).
3. *Zero correction* (sym / asym / ternary): ``A = (A' - z' X) >> 1``; ``odd``: ``A = A'``.
4. *Per-group dequantization* (MixPE): ``P[m, n] = sum_g A[m, n, g] * mant[n, g]`` (int64;
   == :func:`~plait.ir.numerics.common.dequant_groups`, so == ``lut_linear`` / ``linear_int``).

Steps 2-4 are one TE description (:func:`lut_te`), built as is for ``cuda`` (threads over
``(m, n)``) and for ``llvm`` with a plain schedule (``impl="te"``).  On an x86 host with
AVX2 the default ``llvm`` kernel (``impl="avx2"``, :func:`lut_avx2_func`) is the same
arithmetic written as a TIR micro-kernel in the spirit of T-MAC's tensorized inner
loop: the symmetrized table is *mirrored in registers* -- the 16 entries
``T[idx] = L(idx)`` (``T[8+j] = S[j]``, ``T[j] = -S[7-j]``) split into a low byte and a
high byte, each held twice in one 256-bit register -- and each ``vpshufb`` looks up 32
columns' indices at once; ``lo + (hi << 8)`` is ``L`` exactly (``L in [-512, 512]``).
The lookups of ``F`` chunks are accumulated in int16 lanes (``F (2^b - 1) 512 <=
32767``), then widened into the int32 group accumulator; steps 3-4 run once per group.

Weight layout (:class:`LutKernelWeight`, made once at load by :func:`prepare_lut`)
    ``planes``: the artifact's ``<w>.pack.planes`` field, i.e. ``LutPacked.planes``
    (uint8 ``[tiles * K/4 * b, 32]``: per tile of 64 columns, chunk-major, planes LSB
    first, column ``2j`` in the low and ``2j + 1`` in the high nibble of byte ``j``),
    used as is when the pack's ``tile_n`` is 64 (the default); another ``tile_n`` is
    re-tiled to 64 once (``lut_codes_from_beats`` -> ``lut_weight_beats``).  ``zp`` and
    ``mant`` (``[N, K/G]``) are widened to int32 and laid out ``[tiles, K/G, 64]``
    (padding columns: 0), so a tile's group constants are contiguous.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plait.ir.numerics.common import QuantizedWeight, as_int
from plait.ir.numerics.lut import LUT_G, lut_codes_from_beats, lut_weight_beats
from plait.ir.numerics.pack import LutPacked, pack_lut, pack_nibbles

from .build import KernelError, Target, build_cached, int8_rows, resolve_target, tvm

TILE = 64          # columns per tile of the kernels (one 256-bit register of nibbles)


@dataclass
class LutKernelWeight:
    """A LUT-core weight in the kernels' layout (module docstring)."""

    bits: int
    scheme: str
    rows: int
    k: int
    group_size: int
    exp: int
    planes: np.ndarray     # uint8 [tiles * K/4 * bits, 32]
    zp: np.ndarray         # int32 [tiles, K/G, 64]
    mant: np.ndarray       # int32 [tiles, K/G, 64]
    zp_reg: np.ndarray     # the same in the AVX2 kernel's slot order (register_perm)
    mant_reg: np.ndarray

    @property
    def tiles(self) -> int:
        return -(-self.rows // TILE)

    @property
    def n_pad(self) -> int:
        return self.tiles * TILE

    @property
    def n_groups(self) -> int:
        return self.k // self.group_size


def _tile_major(a: np.ndarray, tiles: int) -> np.ndarray:
    n, ng = a.shape
    out = np.zeros((tiles * TILE, ng), np.int32)
    out[:n] = a
    return np.ascontiguousarray(out.reshape(tiles, TILE, ng).transpose(0, 2, 1))


def prepare_lut(w) -> LutKernelWeight:
    """The kernels' layout of a :class:`~plait.ir.numerics.pack.LutPacked` (or of a
    :class:`~plait.ir.numerics.common.QuantizedWeight`, packed first)."""
    if isinstance(w, LutKernelWeight):
        return w
    if isinstance(w, QuantizedWeight):
        w = pack_lut(w, n=TILE)
    if not isinstance(w, LutPacked):
        raise KernelError(f"lut kernels take a LutPacked / QuantizedWeight, got {type(w).__name__}")
    if w.group_size % LUT_G:
        raise KernelError(f"group size {w.group_size} is not a multiple of {LUT_G}")
    if w.tile_n == TILE:
        planes = w.planes
    else:           # re-tile once to the kernels' 64 columns (documented conversion)
        codes = lut_codes_from_beats(w.w_beats, w.bits, w.rows)
        planes = pack_nibbles(lut_weight_beats(codes, w.bits, TILE)).reshape(-1, TILE // 2)
    tiles = -(-w.rows // TILE)
    zp, mant = _tile_major(as_int(w.zp), tiles), _tile_major(as_int(w.mant), tiles)
    perm = register_perm()
    return LutKernelWeight(w.bits, w.scheme, w.rows, w.k, w.group_size, w.exp,
                           np.ascontiguousarray(planes, np.uint8), zp, mant,
                           np.ascontiguousarray(zp[..., perm]), np.ascontiguousarray(mant[..., perm]))


def flush_chunks(bits: int, group_chunks: int) -> int:
    """Chunks accumulated in int16 lanes before widening: the largest divisor ``F`` of
    the group's chunk count with ``F * (2^b - 1) * 512 <= 32767``."""
    bound = 32767 // (((1 << bits) - 1) * 512)
    return max(f for f in range(1, min(bound, group_chunks) + 1) if group_chunks % f == 0)


# --------------------------------------------------------------------------- TE descriptions

def _table_entry(te, x, m, c, j):
    """``S[j] = x_3 + sum_{k<3} (+x_k if bit k of j else -x_k)`` as an int16 expression."""
    v = x[m, c * 4 + 3].astype("int16")
    for kk in range(3):
        sign = ((j >> kk) & 1) * 2 - 1
        v = v + sign.astype("int16") * x[m, c * 4 + kk].astype("int16")
    return v


def tables_te(k: int, group_size: int, mirrored: bool):
    """TE of the table precompute for ``x`` int8 ``[M, K]`` (``M`` symbolic).

    ``mirrored=False``: ``S`` int16 ``[M, K/4, 8]`` (the stored entries) and ``X`` int32
    ``[M, K/G]``.  ``mirrored=True`` (the AVX2 kernel's registers): the 16 entries
    ``T[idx] = L(idx)`` as low bytes (uint8) and high bytes (int8), each
    ``[M, K/4, 32]`` (entry ``p & 15`` at ``p``), and ``X``."""
    t = tvm()
    te = t.te
    m_ = te.var("M")
    c_n, ng = k // LUT_G, k // group_size
    x = te.placeholder((m_, k), "int8", name="x")
    r = te.reduce_axis((0, group_size), name="r")
    xs = te.compute((m_, ng), lambda m, g: te.sum(x[m, g * group_size + r].astype("int32"), axis=r),
                    name="X")
    s = te.compute((m_, c_n, 8), lambda m, c, j: _table_entry(te, x, m, c, j), name="S")
    if not mirrored:
        return [x, s, xs]

    def full(m, c, p):
        i = p & 15
        top = i >> 3                                  # idx[3]
        low = (i & 7) ^ ((1 - top) * 7)               # idx & 7, or ~idx & 7
        return s[m, c, low] * (top * 2 - 1).astype("int16")

    tf = te.compute((m_, c_n, 32), full, name="T")
    lo = te.compute((m_, c_n, 32), lambda m, c, p: (tf[m, c, p] & 255).astype("uint8"), name="TLO")
    hi = te.compute((m_, c_n, 32), lambda m, c, p: (tf[m, c, p] >> 8).astype("int8"), name="THI")
    return [x, lo, hi, xs]


def lut_te(n_pad: int, k: int, bits: int, group_size: int, odd: bool):
    """TE of steps 2-4 (module docstring) for ``M`` symbolic rows: inputs ``S``, ``X``,
    ``planes``, ``zp``, ``mant`` (kernel layout); output ``P`` int64 ``[M, n_pad]``."""
    t = tvm()
    te = t.te
    m_ = te.var("M")
    c_n, ng, cpg, tiles = k // LUT_G, k // group_size, group_size // LUT_G, n_pad // TILE
    s = te.placeholder((m_, c_n, 8), "int16", name="S")
    xs = te.placeholder((m_, ng), "int32", name="X")
    planes = te.placeholder((tiles * c_n * bits, TILE // 2), "uint8", name="planes")
    zp = te.placeholder((tiles, ng, TILE), "int32", name="zp")
    mant = te.placeholder((tiles, ng, TILE), "int32", name="mant")
    rc = te.reduce_axis((0, cpg), name="rc")
    ri = te.reduce_axis((0, bits), name="ri")

    def lookup(m, n, c, i):
        byte = planes[((n // TILE) * c_n + c) * bits + i, (n % TILE) // 2].astype("int32")
        idx = (byte >> ((n % 2) * 4)) & 15
        top = idx >> 3
        low = (idx & 7) ^ ((1 - top) * 7)
        return s[m, c, low].astype("int32") * (top * 2 - 1)

    acc = te.compute((m_, n_pad, ng), lambda m, n, g: te.sum(
        lookup(m, n, g * cpg + rc, ri) << ri, axis=[rc, ri]), name="Aodd")
    half = 0 if odd else 1
    grp = te.compute((m_, n_pad, ng), lambda m, n, g: (
        acc[m, n, g] - zp[n // TILE, g, n % TILE] * xs[m, g]) >> half, name="A")
    rg = te.reduce_axis((0, ng), name="rg")
    p = te.compute((m_, n_pad), lambda m, n: te.sum(
        grp[m, n, rg].astype("int64") * mant[n // TILE, rg, n % TILE].astype("int64"), axis=rg),
        name="P")
    return [s, xs, planes, zp, mant, p]


# --------------------------------------------------------------------------- schedules

def _prim(tensors):
    t = tvm()
    return t.IRModule({"main": t.te.create_prim_func(tensors).with_attr("global_symbol", "main")})


def schedule_generic(mod, target: Target, out_blocks, inline=()):
    """A plain schedule of a TE module: inline ``inline``; fuse the spatial loops of
    each block in ``out_blocks`` (``(name, producers)``) -- ``llvm``: run them in
    parallel; ``cuda``: bind them to blocks x 64 threads -- and compute the block's
    ``producers`` under that loop."""
    t = tvm()
    sch = t.s_tir.Schedule(mod)
    for name in inline:
        sch.compute_inline(sch.get_sblock(name))
    for name, producers in out_blocks:
        b = sch.get_sblock(name)
        loops = sch.get_loops(b)
        nsp = len(sch.get(b).iter_vars) - sum(
            1 for iv in sch.get(b).iter_vars if iv.iter_type == t.tirx.IterVar.CommReduce)
        spatial = loops[:min(nsp, 2)]
        fused = sch.fuse(*spatial) if len(spatial) > 1 else spatial[0]
        if target.kind == "llvm":
            sch.parallel(fused)
            at = fused
        else:
            bx, tx = sch.split(fused, [None, 64])
            sch.bind(bx, "blockIdx.x")
            sch.bind(tx, "threadIdx.x")
            at = tx
        for pname in producers:
            pb = sch.get_sblock(pname)
            sch.compute_at(pb, at)
            if target.kind == "cuda":
                sch.set_scope(pb, 0, "local")
    return sch.mod


def register_perm() -> np.ndarray:
    """Column (within a 64-column tile) of each int32 accumulator slot of the AVX2
    kernel: slot ``16 q + k`` holds ``vpunpck{l,h}bw`` lane ``k`` of the even (``q < 2``)
    or odd (``q >= 2``) columns' lookups, low (``q`` even) or high (``q`` odd) unpack."""
    r = np.arange(TILE)
    q, k = r // 16, r % 16
    byte = k % 8 + 8 * (q % 2) + 16 * (k // 8)
    return 2 * byte + q // 2


def lut_avx2_func(n_pad: int, k: int, bits: int, group_size: int, odd: bool):
    """The AVX2 micro-kernel (module docstring) as a TIR ``PrimFunc``.

    Per tile of 64 columns and row: for each chunk, the mirrored table's low and high
    bytes are two registers; per plane, one 32-byte weight beat gives the even
    columns' indices (low nibbles) and the odd columns' (high nibbles); four
    ``vpshufb`` look up 64 columns' low/high bytes and ``vpunpck{l,h}bw`` interleaves
    them into 64 exact int16 lookups (in :func:`register_perm`'s column order; the
    group constants are stored in that order, :func:`prepare_lut`)."""
    from tvm.script import tirx as T  # noqa: PLC0415

    c_n, ng, cpg, tiles = k // LUT_G, k // group_size, group_size // LUT_G, n_pad // TILE
    fl = flush_chunks(bits, cpg)
    nf = cpg // fl
    half = 0 if odd else 1
    nbeats = tiles * c_n * bits
    shuf = "llvm.x86.avx2.pshuf.b"
    lo_i = [j for h in range(2) for b in range(8) for j in (16 * h + b, 32 + 16 * h + b)]
    hi_i = [j + 8 for j in lo_i]

    @T.prim_func
    def main(tlo_h: T.handle, thi_h: T.handle, xs_h: T.handle,
             W: T.Buffer((nbeats, 32), "uint8"), ZP: T.Buffer((tiles, ng, 64), "int32"),
             MANT: T.Buffer((tiles, ng, 64), "int32"), p_h: T.handle):
        T.func_attr({"global_symbol": "main", "tirx.noalias": True})
        M = T.int32()
        TLO = T.match_buffer(tlo_h, (M, c_n, 32), "uint8")
        THI = T.match_buffer(thi_h, (M, c_n, 32), "int8")
        XS = T.match_buffer(xs_h, (M, ng), "int32")
        P = T.match_buffer(p_h, (M, n_pad), "int64")
        for t in T.parallel(tiles):
            for m in range(M):
                pacc = T.alloc_buffer((64,), "int64", scope="local")
                a32 = T.alloc_buffer((64,), "int32", scope="local")
                a16 = T.alloc_buffer((64,), "int16", scope="local")
                pacc[T.Ramp(0, 1, 64)] = T.Broadcast(T.int64(0), 64)
                for g in range(ng):
                    a32[T.Ramp(0, 1, 64)] = T.Broadcast(T.int32(0), 64)
                    for f in range(nf):
                        a16[T.Ramp(0, 1, 64)] = T.Broadcast(T.int16(0), 64)
                        for cc in range(fl):
                            tl: T.uint8x32 = TLO[m, g * cpg + f * fl + cc, T.Ramp(0, 1, 32)]
                            th: T.uint8x32 = T.reinterpret("uint8x32", THI[m, g * cpg + f * fl + cc, T.Ramp(0, 1, 32)])
                            for i in T.unroll(bits):
                                w: T.uint8x32 = W[(t * c_n + g * cpg + f * fl + cc) * bits + i,
                                                  T.Ramp(0, 1, 32)]
                                e: T.uint8x32 = w & T.Broadcast(T.uint8(15), 32)
                                o: T.uint8x32 = (w >> T.Broadcast(T.uint8(4), 32)) & T.Broadcast(T.uint8(15), 32)
                                le: T.uint8x32 = T.call_llvm_pure_intrin("uint8x32", shuf, tl, e)
                                he: T.uint8x32 = T.call_llvm_pure_intrin("uint8x32", shuf, th, e)
                                lo: T.uint8x32 = T.call_llvm_pure_intrin("uint8x32", shuf, tl, o)
                                ho: T.uint8x32 = T.call_llvm_pure_intrin("uint8x32", shuf, th, o)
                                sh: T.int16x16 = T.Broadcast(T.Cast("int16", i), 16)
                                a16[T.Ramp(0, 1, 16)] = a16[T.Ramp(0, 1, 16)] + (T.reinterpret("int16x16", T.Shuffle([le, he], lo_i)) << sh)
                                a16[T.Ramp(16, 1, 16)] = a16[T.Ramp(16, 1, 16)] + (T.reinterpret("int16x16", T.Shuffle([le, he], hi_i)) << sh)
                                a16[T.Ramp(32, 1, 16)] = a16[T.Ramp(32, 1, 16)] + (T.reinterpret("int16x16", T.Shuffle([lo, ho], lo_i)) << sh)
                                a16[T.Ramp(48, 1, 16)] = a16[T.Ramp(48, 1, 16)] + (T.reinterpret("int16x16", T.Shuffle([lo, ho], hi_i)) << sh)
                        a32[T.Ramp(0, 1, 64)] = a32[T.Ramp(0, 1, 64)] + T.Cast("int32x64", a16[T.Ramp(0, 1, 64)])
                    for n in T.vectorized(64):
                        pacc[n] = pacc[n] + T.Cast("int64", (a32[n] - ZP[t, g, n] * XS[m, g]) >> half) \
                            * T.Cast("int64", MANT[t, g, n])
                for q in T.unroll(4):
                    for h in T.unroll(2):
                        P[m, T.Ramp(t * 64 + 2 * (8 * (q % 2) + 16 * h) + q // 2, 2, 8)] = \
                            pacc[T.Ramp(16 * q + 8 * h, 1, 8)]

    return main


# --------------------------------------------------------------------------- build + call

def _impl_for(target: Target, impl: str | None) -> str:
    if impl is None:
        impl = "avx2" if target.has_avx2() else "te"
    if impl not in ("avx2", "te"):
        raise KernelError(f"unknown LUT kernel implementation {impl!r} (avx2, te)")
    if impl == "avx2" and target.kind != "llvm":
        raise KernelError("the avx2 LUT kernel is an llvm (x86) kernel")
    return impl


_BUILT: dict = {}


def build_lut(w: LutKernelWeight, target="llvm", impl: str | None = None):
    """``(tables_kernel, main_kernel, impl)`` for this weight's shape on ``target``."""
    tg = resolve_target(target)
    impl = _impl_for(tg, impl)
    memo = (w.n_pad, w.k, w.bits, w.group_size, w.scheme == "odd", impl, tg)
    hit = _BUILT.get(memo)
    if hit is not None:
        return hit
    odd = w.scheme == "odd"
    key = {"n_pad": w.n_pad, "k": w.k, "bits": w.bits, "group": w.group_size, "odd": odd,
           "impl": impl}
    mirrored = impl == "avx2"

    def make_tables():
        mod = _prim(tables_te(w.k, w.group_size, mirrored))
        inline = ("S", "T") if mirrored else ()
        outs = [("TLO", ()), ("THI", ()), ("X", ())] if mirrored else [("S", ()), ("X", ())]
        return schedule_generic(mod, tg, outs, inline)

    def make_main():
        if impl == "avx2":
            return tvm().IRModule({"main": lut_avx2_func(w.n_pad, w.k, w.bits, w.group_size, odd)})
        mod = _prim(lut_te(w.n_pad, w.k, w.bits, w.group_size, odd))
        return schedule_generic(mod, tg, [("P", ("Aodd",))], inline=("A",))

    tables = build_cached("lut_tables", tg, {"k": w.k, "group": w.group_size,
                                             "mirrored": mirrored}, make_tables)
    main = build_cached("lut_main", tg, key, make_main)
    _BUILT[memo] = (tables, main, impl)
    return tables, main, impl


def lut_gemm(x, w, target="llvm", impl: str | None = None, device=None) -> np.ndarray:
    """``P`` int64 ``[M, N]`` (``[N]`` for a 1-D ``x``) of int8 ``x [M, K]`` times a LUT
    weight (``LutPacked`` / ``QuantizedWeight`` / :class:`LutKernelWeight`); equals
    :func:`plait.ir.numerics.lut.lut_linear`'s ``P``."""
    w = prepare_lut(w)
    x2, one = int8_rows(x, w.k)
    tg = resolve_target(target)
    tables, main, impl = build_lut(w, tg, impl)
    t = tvm()
    dev = device or (t.cpu(0) if tg.kind == "llvm" else t.cuda(0))
    m = x2.shape[0]
    arr = lambda a: t.runtime.tensor(np.ascontiguousarray(a), dev)  # noqa: E731
    xt = arr(x2)
    xs = t.runtime.empty((m, w.n_groups), "int32", dev)
    if impl == "avx2":
        lo = t.runtime.empty((m, w.k // LUT_G, 32), "uint8", dev)
        hi = t.runtime.empty((m, w.k // LUT_G, 32), "int8", dev)
        tables["main"](xt, lo, hi, xs)
        first = (lo, hi, xs)
    else:
        s = t.runtime.empty((m, w.k // LUT_G, 8), "int16", dev)
        tables["main"](xt, s, xs)
        first = (s, xs)
    p = t.runtime.empty((m, w.n_pad), "int64", dev)
    main["main"](*first, *_weight_tensors(w, dev, impl), p)
    out = p.numpy()[:, :w.rows]
    return out[0] if one else out


_WCACHE: dict = {}


def _weight_tensors(w: LutKernelWeight, dev, impl: str):
    """The weight's arrays as device tensors, made once per (weight, device, impl)."""
    t = tvm()
    key = (id(w), str(dev), impl)
    hit = _WCACHE.get(key)
    if hit is None or hit[0] is not w:
        consts = (w.zp_reg, w.mant_reg) if impl == "avx2" else (w.zp, w.mant)
        hit = (w, tuple(t.runtime.tensor(np.ascontiguousarray(a), dev)
                        for a in (w.planes, *consts)))
        _WCACHE[key] = hit
    return hit[1]


lut_gemv = lut_gemm

__all__ = ["TILE", "LutKernelWeight", "prepare_lut", "flush_chunks", "tables_te", "lut_te",
           "lut_avx2_func", "register_perm", "build_lut", "lut_gemm", "lut_gemv"]
