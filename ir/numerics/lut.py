"""Arithmetic of the LUT tensor core (after LUT Tensor Core, ISCA'25, T-MAC and MixPE).

This module is the golden model of ``rtl/sv/lut_*.sv`` *including its internals*:
every intermediate value the RTL holds in a register (table entries, lookups,
per-group accumulators, zero-corrected sums, P) is produced here with the same
width and the same rounding, so tests can compare any of them with equality.

Operands
--------
Activations ``x``: int8, taken ``g = 4`` at a time (one *chunk*).

Weights: unsigned codes ``u`` of ``b in {1, 2, 3, 4}`` bits (``QuantizedWeight``,
schemes ``odd``, ``sym``, ``asym`` and ``ternary``).  The core always reads the
codes on the *odd grid* (table symmetrization): ``q' = 2u - (2^b - 1)``, odd levels
``{-(2^b-1), ..., -1, 1, ..., 2^b-1}``.  A source with a zero point ``z``
(sym/asym/ternary) has ``2 (u - z) = q' - z'`` with the odd-grid zero point
``z' = 2z + 1 - 2^b`` (sym: ``z' = 1``; ternary: ``z' = -1``; asym: per group,
``z' in [1 - 2^b, 2^b - 1]``, 5 bits signed).  For ``odd`` weights ``z' = 0``.

Table precompute (one table per activation row and chunk)
    The full table of a chunk is ``T[idx] = sum_k (+x_k if bit k of idx else -x_k)``
    for the 16 4-bit indices.  Symmetry ``T[~idx] = -T[idx]`` lets the core store
    only the 8 entries with the top index bit set:
    ``S[j] = T[8 + j] = x_3 + sum_{k<3} (+-x_k)``, ``j = 0..7``.
    Range ``S in [-512, 511]``: exactly ``TABLE_BITS = 10`` bits signed.  (The
    other half, ``idx < 8``, would range over ``[-511, 512]`` and need 11 bits; this
    is why the stored half is the one with ``idx[3] = 1``.)
    ``S[7] = x_0 + x_1 + x_2 + x_3`` is the chunk sum the zero correction needs.

Symmetric lookup (sign from the top index bit)
    ``L(idx) = S[idx & 7]`` if ``idx[3] = 1`` else ``-S[~idx & 7]``;
    ``L in [-512, 512]``: ``LOOKUP_BITS = 11`` bits signed.

Bit-serial weight planes
    ``q' = sum_{i<b} 2^i (2 u_i - 1)`` where ``u_i`` is bit ``i`` of ``u``.  For
    output column ``n``, chunk ``c`` and plane ``i`` the 4-bit index is
    ``idx[k] = u_i[n, 4c + k]`` (bit ``k`` of the index is plane ``i`` of weight
    ``k`` of the chunk), and ``sum_k q'_k x_k = sum_i 2^i L(idx_i)`` exactly.
    The core processes one plane per cycle, LSB first (``i = 0 .. b-1``), and adds
    ``L << i`` into the column accumulator.

Weight stream (:func:`lut_weight_beats` / :func:`lut_codes_from_beats`)
    Per tile of ``n`` output columns: chunk-major, planes LSB first, one 4-bit
    index per column -- ``K/4 * b`` beats of ``n`` indices, the ``w_data`` words of
    the RTL.  The single definition of the order, shared by the testbench streams
    and the packed artifact (:mod:`plait.ir.numerics.pack`).

Per-group accumulation (``G`` a multiple of 4, at most ``max_group``)
    ``A'[m, n, g] = sum_{chunks c in g} sum_i 2^i L(idx_i)``  (= ``sum q' x``),
    ``X[m, g]    = sum_{chunks c in g} S_c[7]``             (= ``sum x``, per row).

Zero correction and halving (once per group, before the scale)
    odd:               ``A[m, n, g] = A'``
    sym/asym/ternary:  ``A[m, n, g] = (A' - z'[n, g] * X[m, g]) >> 1``  (exact: even)
    In both cases ``A == group_accumulate(signed_weight(qw), x, G)`` of
    :mod:`.common` -- the core's group integer is the contract's group integer, so
    the group scale is the weight's own scale (for ``odd`` the stored scale is
    already ``s'``).

Dequantization (MixPE: once per group, never per weight)
    ``P[m, n] = sum_g A[m, n, g] * mant[n, g]`` with the 16-bit mantissas of
    :func:`.common.encode_scales`; ``P`` is 48 bits and equals
    :func:`.common.dequant_groups`, hence :func:`.common.linear_int`.  The core's
    output is ``P``; :func:`.common.requantize` to int8 is applied downstream.

Widths (see :func:`lut_widths`): for groups of at most ``max_group`` inputs,
    ``|A'| <= (2^4 - 1) * 512 * max_group / 4``, ``|X| <= 128 * max_group``,
    ``|A' - z' X| <= 30 * 128 * max_group``, ``|A| <= 15 * 128 * max_group``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common import (
    NumericsError, QuantizedWeight, SCALE_BITS, as_int, check_fits,
    dequant_groups, encode_scales, signed_range,
)

LUT_G = 4                 # activations per table (index bits)
LUT_ENTRIES = 8           # stored entries per table (2^(g-1), symmetrized)
TABLE_BITS = 10           # stored entry S in [-512, 511]
LOOKUP_BITS = 11          # looked-up value L in [-512, 512]
LUT_WEIGHT_BITS = (1, 2, 3, 4)
ZP_BITS = 5               # odd-grid zero point z' in [-15, 15]
LUT_SCHEMES = ("odd", "sym", "asym", "ternary")


def _bits_for(lo: int, hi: int) -> int:
    """Smallest signed two's-complement width holding ``[lo, hi]``."""
    b = 1
    while not (signed_range(b)[0] <= lo and hi <= signed_range(b)[1]):
        b += 1
    return b


@dataclass(frozen=True)
class LutWidths:
    """Register widths of the core for groups of at most ``max_group`` inputs."""

    max_group: int
    acc: int        # A'  (odd-grid group accumulator)
    xsum: int       # X   (group activation sum per row)
    corr: int       # A' - z' X
    grp: int        # A   (the contract's group integer)
    prod: int       # A * mant


def lut_widths(max_group: int, max_bits: int = 4) -> LutWidths:
    """Exact signed widths of every accumulator for groups of <= ``max_group`` inputs
    and weights of <= ``max_bits`` bits."""
    if max_group < LUT_G or max_group % LUT_G:
        raise NumericsError(f"max group size must be a positive multiple of {LUT_G}, got {max_group}")
    if max_bits not in LUT_WEIGHT_BITS:
        raise NumericsError(f"max weight bits must be one of {LUT_WEIGHT_BITS}, got {max_bits}")
    chunks = max_group // LUT_G
    top = (1 << max_bits) - 1
    acc = _bits_for(-top * 512 * chunks, top * 512 * chunks)
    xsum = _bits_for(-128 * max_group, 127 * max_group)
    corr = _bits_for(-2 * top * 128 * max_group, 2 * top * 128 * max_group)
    grp = _bits_for(-top * 128 * max_group, top * 128 * max_group)
    mtop = (1 << SCALE_BITS) - 1
    prod = _bits_for(-top * 128 * max_group * mtop, top * 128 * max_group * mtop)
    return LutWidths(max_group, acc, xsum, corr, grp, prod)


# --------------------------------------------------------------------------- tables

def _chunks(x) -> np.ndarray:
    x = as_int(x)
    if x.shape[-1] % LUT_G:
        raise NumericsError(f"activation length {x.shape[-1]} is not a multiple of g={LUT_G}")
    if x.size and (x.min() < -128 or x.max() > 127):
        raise NumericsError(f"activations must be int8, range [{x.min()}, {x.max()}]")
    return x.reshape(*x.shape[:-1], x.shape[-1] // LUT_G, LUT_G)


def lut_full_table(x) -> np.ndarray:
    """All 16 signed sums ``T[..., idx]`` of the chunks of ``x`` (``x[..., 4c + k]``)."""
    xc = _chunks(x)
    idx = np.arange(1 << LUT_G)
    signs = np.where((idx[:, None] >> np.arange(LUT_G)[None, :]) & 1, 1, -1)  # [16, 4]
    return np.einsum("...k,ik->...i", xc, signs)


def lut_precompute(x) -> np.ndarray:
    """The 8 stored entries ``S[..., c, j] = T[8 + j]`` of every chunk ``c`` of ``x``.

    ``x``: int8 ``[..., K]`` (``K`` a multiple of 4); returns int64 ``[..., K/4, 8]``,
    each entry in ``[-512, 511]`` (``TABLE_BITS``).
    """
    s = lut_full_table(x)[..., LUT_ENTRIES:]
    return check_fits(s, TABLE_BITS, "LUT table entry")


def lut_lookup(table, idx) -> np.ndarray:
    """Symmetric lookup: ``S[idx & 7]`` if ``idx[3]`` else ``-S[~idx & 7]``.

    ``table``: ``[..., 8]``; ``idx``: int array broadcastable to ``table[..., 0]``.
    """
    table, idx = as_int(table), as_int(idx)
    if idx.size and (idx.min() < 0 or idx.max() > 15):
        raise NumericsError("LUT index must be a 4-bit value")
    top = (idx >> 3) & 1
    low = np.where(top == 1, idx & 7, (~idx) & 7)
    shape = np.broadcast_shapes(low.shape, table.shape[:-1])
    table = np.broadcast_to(table, shape + table.shape[-1:])
    low = np.broadcast_to(low, shape)
    val = np.take_along_axis(table, low[..., None], axis=-1)[..., 0]
    return np.where(top == 1, val, -val)


# --------------------------------------------------------------------------- weights

def _check_lut_weight(qw: QuantizedWeight) -> None:
    if qw.bits not in LUT_WEIGHT_BITS:
        raise NumericsError(f"the LUT core supports weight bits {LUT_WEIGHT_BITS}, got {qw.bits}")
    if qw.scheme not in LUT_SCHEMES:
        raise NumericsError(f"the LUT core supports schemes {LUT_SCHEMES}, got {qw.scheme!r}")
    if qw.scheme == "ternary" and qw.bits != 2:
        raise NumericsError(f"ternary weights are stored in 2 bits, got {qw.bits}")
    if qw.group_size % LUT_G:
        raise NumericsError(f"group size {qw.group_size} is not a multiple of g={LUT_G}")
    u = as_int(qw.codes)
    if u.size and (u.min() < 0 or u.max() > (1 << qw.bits) - 1):
        raise NumericsError(f"weight codes outside [0, {(1 << qw.bits) - 1}]")


def odd_zero_point(qw: QuantizedWeight) -> np.ndarray:
    """Zero point on the odd grid ``z' = 2z + 1 - 2^b`` per group, int64 ``[N, K/G]``.

    ``0`` for ``odd`` weights (no correction).
    """
    _check_lut_weight(qw)
    if qw.scheme == "odd":
        return np.zeros(qw.scales.shape, np.int64)
    z = qw.zero_points()
    if z.size and (z.min() < 0 or z.max() > (1 << qw.bits) - 1):
        raise NumericsError(f"zero points outside [0, {(1 << qw.bits) - 1}]")
    return 2 * z + 1 - (1 << qw.bits)


def odd_levels(qw: QuantizedWeight) -> np.ndarray:
    """``q' = 2u - (2^b - 1)`` for every weight, int64 ``[N, K]``."""
    _check_lut_weight(qw)
    return 2 * as_int(qw.codes) - ((1 << qw.bits) - 1)


def bit_planes(codes, bits: int) -> np.ndarray:
    """Plane ``i`` of the codes: ``[bits, N, K]`` of 0/1 (``u = sum_i 2^i plane_i``)."""
    u = as_int(codes)
    return np.stack([(u >> i) & 1 for i in range(bits)])


def plane_indices(codes, bits: int) -> np.ndarray:
    """The 4-bit table index per plane, column and chunk: ``[bits, N, K/4]``.

    Bit ``k`` of ``idx[i, n, c]`` is plane ``i`` of weight ``u[n, 4c + k]``.
    """
    p = bit_planes(codes, bits)
    b, n, k = p.shape
    if k % LUT_G:
        raise NumericsError(f"K={k} is not a multiple of g={LUT_G}")
    pc = p.reshape(b, n, k // LUT_G, LUT_G)
    return (pc << np.arange(LUT_G)).sum(axis=-1)


def lut_weight_beats(codes, bits: int, n_cols: int) -> np.ndarray:
    """The weight stream of the core -- the one definition of its order (the RTL
    testbench's :func:`plait.rtl.lut_core.stream_tile` and the packed artifact format
    :func:`plait.ir.numerics.pack.pack_lut` both use it).

    ``codes`` ``[N, K]`` (``b``-bit unsigned codes), cut into tiles of ``n_cols``
    output columns (the last tile padded with code 0).  Returns the 4-bit table
    indices uint8 ``[tiles, K/4 * bits, n_cols]``: beat ``c * bits + i`` of a tile is
    plane ``i`` (LSB first) of chunk ``c`` (chunk-major), entry ``j`` the index of the
    tile's column ``j`` (:func:`plane_indices`), i.e. ``w_data[j*4 +: 4]``.
    """
    if bits not in LUT_WEIGHT_BITS:
        raise NumericsError(f"the LUT core supports weight bits {LUT_WEIGHT_BITS}, got {bits}")
    if not isinstance(n_cols, (int, np.integer)) or n_cols < 1:
        raise NumericsError(f"tile columns must be a positive integer, got {n_cols!r}")
    u = as_int(codes)
    if u.ndim != 2:
        raise NumericsError(f"weight codes must be [N, K], got shape {u.shape}")
    if u.size and (u.min() < 0 or u.max() > (1 << bits) - 1):
        raise NumericsError(f"{bits}-bit weight codes outside [0, {(1 << bits) - 1}]: "
                            f"[{u.min()}, {u.max()}]")
    n, k = u.shape
    tiles = -(-n // n_cols)
    up = np.zeros((tiles * n_cols, k), np.int64)
    up[:n] = u
    idx = plane_indices(up, bits)                               # [b, tiles*n, C]
    c = k // LUT_G
    beats = idx.reshape(bits, tiles, n_cols, c).transpose(1, 3, 0, 2)   # [tiles, C, b, n]
    return np.ascontiguousarray(beats.reshape(tiles, c * bits, n_cols), np.uint8)


def lut_codes_from_beats(beats, bits: int, n: int) -> np.ndarray:
    """Inverse of :func:`lut_weight_beats`: the codes uint8 ``[n, K]`` (padding columns
    of the last tile dropped; they must hold code 0)."""
    if bits not in LUT_WEIGHT_BITS:
        raise NumericsError(f"the LUT core supports weight bits {LUT_WEIGHT_BITS}, got {bits}")
    b = np.asarray(beats)
    if b.dtype.kind not in "iu":
        b = as_int(b)                                  # refuses floats with its message
    if b.ndim != 3 or b.shape[1] % bits:
        raise NumericsError(f"weight beats must be [tiles, K/4 * {bits}, n_cols], got {b.shape}")
    tiles, cb, n_cols = b.shape
    if not 0 < n <= tiles * n_cols or n <= (tiles - 1) * n_cols:
        raise NumericsError(f"{tiles} tiles of {n_cols} columns cannot hold N={n} columns")
    if b.size and (b.min() < 0 or b.max() > (1 << LUT_G) - 1):
        raise NumericsError("LUT weight beat entries must be 4-bit indices")
    c = cb // bits
    idx = b.astype(np.uint8, copy=False).reshape(tiles, c, bits, n_cols).transpose(2, 0, 3, 1)
    idx = idx.reshape(bits, tiles * n_cols, c)
    # code bit i of position j = bit j of plane i's index (uint8 throughout: this runs for
    # every LUT weight an artifact loads)
    u = np.zeros((tiles * n_cols, c, LUT_G), np.uint8)
    for i in range(bits):
        for j in range(LUT_G):
            u[:, :, j] |= ((idx[i] >> j) & 1) << i
    u = u.reshape(tiles * n_cols, c * LUT_G)
    if (u[n:] != 0).any():
        raise NumericsError(f"padding columns {n}..{tiles * n_cols - 1} of the last tile hold "
                            f"nonzero codes (corrupt weight stream)")
    return u[:n].astype(np.uint8)


# --------------------------------------------------------------------------- datapath

@dataclass
class LutTrace:
    """Every intermediate of the core for ``x[M, K]`` times ``qw[N, K]``."""

    tables: np.ndarray     # [M, K/4, 8]            stored entries S
    indices: np.ndarray    # [b, N, K/4]            plane indices
    lookups: np.ndarray    # [b, M, N, K/4]         L (11 bits)
    chunk_sums: np.ndarray  # [M, N, K/4]           sum_i 2^i L  (= sum q' x per chunk)
    acc: np.ndarray        # [M, N, K/G]            A'  (odd-grid group sums)
    xsum: np.ndarray       # [M, K/G]               X
    zp: np.ndarray         # [N, K/G]               z'
    grp: np.ndarray        # [M, N, K/G]            A   (== group_accumulate)
    mant: np.ndarray       # [N, K/G]               16-bit mantissas
    exp: int               # shared scale exponent E
    p: np.ndarray          # [M, N]                 48-bit P


def lut_trace(x, qw: QuantizedWeight, max_group: int | None = None,
              max_bits: int | None = None) -> LutTrace:
    """Run the LUT core's arithmetic on ``x`` (int8 ``[M, K]``) and ``qw`` (``[N, K]``).

    Every intermediate is range-checked against the width the RTL gives it for a
    build with ``max_group`` / ``max_bits`` (default: the weight's group size and bits).
    """
    _check_lut_weight(qw)
    x = as_int(x)
    if x.ndim != 2:
        raise NumericsError(f"activations must be [M, K], got shape {x.shape}")
    n, k = qw.codes.shape
    if x.shape[1] != k:
        raise NumericsError(f"activation length {x.shape[1]} != weight K {k}")
    gsz = qw.group_size
    w = lut_widths(max_group or gsz, max_bits or qw.bits)
    if qw.bits > (max_bits or qw.bits):
        raise NumericsError(f"{qw.bits}-bit weights exceed the core's maximum {max_bits}")
    if gsz > w.max_group:
        raise NumericsError(f"group size {gsz} exceeds the core's maximum {w.max_group}")
    m = x.shape[0]
    ngroups, cpg = k // gsz, gsz // LUT_G

    tables = lut_precompute(x)                                        # [M, C, 8]
    idx = plane_indices(qw.codes, qw.bits)                            # [b, N, C]
    lookups = lut_lookup(tables[None, :, None, :, :], idx[:, None, :, :])  # [b, M, N, C]
    check_fits(lookups, LOOKUP_BITS, "LUT lookup")
    shifts = (np.int64(1) << np.arange(qw.bits, dtype=np.int64))[:, None, None, None]
    chunk_sums = (lookups * shifts).sum(axis=0)                       # [M, N, C]
    acc = check_fits(chunk_sums.reshape(m, n, ngroups, cpg).sum(-1), w.acc, "group accumulator A'")
    xsum = check_fits(tables[..., LUT_ENTRIES - 1].reshape(m, ngroups, cpg).sum(-1),
                      w.xsum, "group activation sum X")
    zp = odd_zero_point(qw)
    if qw.scheme == "odd":
        grp = acc
    else:
        corr = check_fits(acc - zp[None] * xsum[:, None, :], w.corr, "zero-corrected sum")
        if (corr & 1).any():
            raise NumericsError("internal: zero-corrected odd-grid sum is not even")
        grp = corr >> 1
    check_fits(grp, w.grp, "group integer A")
    mant, e = encode_scales(qw.scales)
    p = dequant_groups(grp, mant)
    return LutTrace(tables, idx, lookups, chunk_sums, acc, xsum, zp, grp, mant, e, p)


def lut_group_accumulate(x, qw: QuantizedWeight) -> np.ndarray:
    """The group integers ``A[M, N, K/G]`` the core produces (== ``group_accumulate``)."""
    return lut_trace(x, qw).grp


def lut_linear(x, qw: QuantizedWeight) -> tuple[np.ndarray, int]:
    """``(P[M, N], E)`` of the LUT core: equals :func:`.common.linear_int`."""
    t = lut_trace(x, qw)
    return t.p, t.exp


__all__ = [
    "LUT_G", "LUT_ENTRIES", "TABLE_BITS", "LOOKUP_BITS", "LUT_WEIGHT_BITS", "ZP_BITS",
    "LUT_SCHEMES", "LutWidths", "lut_widths", "lut_full_table", "lut_precompute",
    "lut_lookup", "odd_zero_point", "odd_levels", "bit_planes", "plane_indices",
    "lut_weight_beats", "lut_codes_from_beats", "LutTrace", "lut_trace", "lut_group_accumulate", "lut_linear",
]
