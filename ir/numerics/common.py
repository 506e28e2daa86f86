"""Shared integer formats of the plait numeric contract.

Everything here is exact integer arithmetic on numpy ``int64`` arrays unless a
function says it converts from float (those run on the host, at compile or
calibration time, never in the datapath).

Formats
-------
Activations (``A8``)
    Signed two's-complement int8, ``[-128, 127]``, one float scale per tensor
    (``x_real = s_a * x_int``).  Conversion from float: ``sat8(rint(x / s_a))``
    (round half to even, then saturate).

Quantized weights (``QuantizedWeight``)
    A weight matrix ``W[N, K]`` (N outputs, K inputs) is stored as unsigned codes
    ``u in [0, 2^b - 1]`` (``uint8``), a float scale and an integer zero point per
    *quantization group* of ``G`` consecutive inputs of one output row:
    ``W_real[n, k] = s[n, k // G] * (u[n, k] - z[n, k // G])``.
    The integer the datapath multiplies is the *signed weight* ``q = u - z``.

    * symmetric  (``scheme="sym"``):  ``z = 2^(b-1)`` for every group, so
      ``q in [-2^(b-1), 2^(b-1) - 1]``; the 8-bit case is plain int8.
    * asymmetric (``scheme="asym"``): ``z`` per group in ``[0, 2^b - 1]``.
    * odd levels (``scheme="odd"``, table-symmetrized for the LUT core): the
      value is ``s' * q'`` with ``q' = 2u - (2^b - 1)``, i.e. odd levels
      ``{-(2^b-1), ..., -1, 1, ..., 2^b-1}``.  Stored as ``z' = 0`` on the
      odd grid; :func:`signed_weight` returns ``q'`` for it.
    * ternary    (``scheme="ternary"``): ``b = 2``, ``u in {0, 1, 2}``, ``z = 1``.

Group scales in fixed point (``SCALE_BITS``)
    The float group scales of one tensor are encoded as unsigned 16-bit mantissas
    ``m[n, g]`` sharing one exponent ``E`` per tensor:
    ``s[n, g] ~= m[n, g] * 2^-E`` (``m = rint(s * 2^E)``, ``E`` the largest
    value in ``[0, 62]`` for which every mantissa fits in 16 bits).

Per-group dequantization (MixPE style)
    The engine accumulates the exact integer ``acc[n, g] = sum_k q[n,k] x[k]``
    over each group, then multiplies it *once* by the group mantissa and adds the
    products over groups: ``P[n] = sum_g acc[n, g] * m[n, g]``.  ``P`` is a
    signed 48-bit value (the DSP48 P register); the contract guarantees it cannot
    overflow for K <= 65536 (``|acc| <= 2^14 * G``, ``m < 2^16``).  The real
    output is ``y = s_a * 2^-E * P``.

Requantization to int8
    ``y_int8 = sat8(rshift_round(P * M, R))`` where the real multiplier
    ``s_a * 2^-E / s_y`` is encoded as ``M`` (unsigned, 15 bits) and a right
    shift ``R`` (:func:`encode_multiplier`).  ``P * M`` fits in 63 bits.

Rounding of a right shift
    ``rshift_round(x, r) = (x + 2^(r-1)) >> r`` with an arithmetic (floor) shift:
    round half up (towards +inf), the cheapest rounding in hardware (one add).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

INT8_MIN, INT8_MAX = -128, 127
SCALE_BITS = 16          # group-scale mantissa width (unsigned)
MULT_BITS = 15           # requantization multiplier width (unsigned)
P_BITS = 48              # dequantized accumulator (DSP48 P register)
MAX_K = 65536            # largest reduction length the contract covers

WEIGHT_BITS = (1, 2, 3, 4, 8)
# The weight formats of the contract: scheme -> the code widths it is defined for.
# (sym needs a sign and a magnitude bit; the odd grid has no zero level and stops at
# 4 bits, the LUT core's widest table; ternary codes are 2 bits wide.)  Every pass
# and engine that accepts a format derives its checks from this table.
SCHEME_BITS = {"sym": (2, 3, 4, 8), "asym": (1, 2, 3, 4, 8), "odd": (1, 2, 3, 4), "ternary": (2,)}
SCHEMES = tuple(SCHEME_BITS)


class NumericsError(ValueError):
    """A value or format outside the numeric contract."""


def as_int(x) -> np.ndarray:
    """View ``x`` as an int64 array (refuses floats, which would hide rounding)."""
    if type(x) is np.ndarray and x.dtype == np.int64:     # the hot path: nothing to do
        return x
    a = np.asarray(x)
    if a.dtype.kind not in "iub":
        raise NumericsError(f"integer array expected, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


def signed_range(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def sat(x, bits: int) -> np.ndarray:
    """Saturate to a signed ``bits``-wide two's-complement integer."""
    lo, hi = signed_range(bits)
    return np.minimum(np.maximum(as_int(x), lo), hi)   # ufuncs: cheaper than np.clip on small arrays


def sat8(x) -> np.ndarray:
    return sat(x, 8)


def wrap(x, bits: int) -> np.ndarray:
    """Wrap to a signed ``bits``-wide two's-complement integer (what a register does)."""
    x = as_int(x)
    m = np.int64(1) << bits
    return ((x + (m >> 1)) % m) - (m >> 1)


def rshift_round(x, r: int) -> np.ndarray:
    """Arithmetic right shift by ``r`` with round half up: ``(x + 2^(r-1)) >> r``."""
    x = as_int(x)
    if r < 0:
        raise NumericsError(f"shift must be >= 0, got {r}")
    if r == 0:
        return x
    return (x + (np.int64(1) << (r - 1))) >> r


def check_fits(x, bits: int, what: str) -> np.ndarray:
    """Raise if any value of ``x`` does not fit a signed ``bits``-wide integer."""
    x = as_int(x)
    lo, hi = signed_range(bits)
    if x.size and (x.min() < lo or x.max() > hi):
        raise NumericsError(f"{what} overflows {bits} bits: range [{x.min()}, {x.max()}]")
    return x


# --------------------------------------------------------------------------- weights

@dataclass
class QuantizedWeight:
    """Codes, scales and zero points of one quantized weight matrix ``[N, K]``."""

    codes: np.ndarray            # uint8 [N, K], values in [0, 2^bits - 1]
    scales: np.ndarray           # float32 [N, K // group_size]
    zeros: Optional[np.ndarray]  # int32 [N, K // group_size] for "asym", else None
    bits: int
    group_size: int
    scheme: str = "sym"

    def __post_init__(self):
        if self.bits not in WEIGHT_BITS:
            raise NumericsError(f"weight bits must be one of {WEIGHT_BITS}, got {self.bits}")
        if self.scheme not in SCHEMES:
            raise NumericsError(f"weight scheme must be one of {SCHEMES}, got {self.scheme!r}")
        n, k = self.codes.shape
        if k % self.group_size:
            raise NumericsError(f"K={k} is not a multiple of group size {self.group_size}")
        if self.scales.shape != (n, k // self.group_size):
            raise NumericsError(f"scales shape {self.scales.shape} != {(n, k // self.group_size)}")

    @property
    def n_groups(self) -> int:
        return self.codes.shape[1] // self.group_size

    def zero_points(self) -> np.ndarray:
        """Integer zero point per group, int64 ``[N, K/G]`` (on the odd grid: 0)."""
        shape = self.scales.shape
        if self.scheme == "asym":
            return as_int(self.zeros)
        if self.scheme == "sym":
            return np.full(shape, 1 << (self.bits - 1), np.int64)
        if self.scheme == "ternary":
            return np.ones(shape, np.int64)
        return np.zeros(shape, np.int64)  # odd


def signed_weight(qw: QuantizedWeight) -> np.ndarray:
    """The integer the datapath multiplies, int64 ``[N, K]``.

    ``u - z`` for sym/asym/ternary, ``2u - (2^b - 1)`` (odd levels) for "odd".
    """
    u = as_int(qw.codes)
    if qw.scheme == "odd":
        return 2 * u - ((1 << qw.bits) - 1)
    z = np.repeat(qw.zero_points(), qw.group_size, axis=1)
    return u - z


def dequantize(qw: QuantizedWeight) -> np.ndarray:
    """Real weight matrix, float32 ``[N, K]``."""
    s = np.repeat(qw.scales.astype(np.float32), qw.group_size, axis=1)
    return (s * signed_weight(qw).astype(np.float32)).astype(np.float32)


def check_format(bits: int, scheme: str) -> None:
    """Raise :class:`NumericsError` unless ``(bits, scheme)`` is in :data:`SCHEME_BITS`."""
    if scheme not in SCHEME_BITS:
        raise NumericsError(f"weight scheme must be one of {SCHEMES}, got {scheme!r}")
    if bits not in SCHEME_BITS[scheme]:
        raise NumericsError(f"scheme {scheme!r} supports {', '.join(map(str, SCHEME_BITS[scheme]))} bits, got {bits}")


def group_grid(g: np.ndarray, bits: int, scheme: str) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """The quantization grid of weight groups ``g[..., G]`` (float): ``(scale, zero)``
    per group (``zero`` int, for ``asym`` only; ``None`` otherwise).

    * sym: ``s = max|g| / (2^(b-1) - 1)``; asym: ``s = (max(g, 0) - min(g, 0)) / (2^b - 1)``,
      ``z = rint(-min / s)``; odd: ``s = max|g| / (2^b - 1)``; ternary: ``s = mean|g|``
      (absmean, as in BitNet b1.58).  A group of zeros gets ``s = 1``.
    """
    check_format(bits, scheme)
    g = np.asarray(g, np.float32)
    top = (1 << bits) - 1
    zeros = None
    if scheme == "sym":
        s = np.abs(g).max(axis=-1) / ((1 << (bits - 1)) - 1)
    elif scheme == "asym":
        lo, hi = np.minimum(g.min(axis=-1), 0), np.maximum(g.max(axis=-1), 0)
        s = (hi - lo) / top
    elif scheme == "odd":
        s = np.abs(g).max(axis=-1) / top
    else:  # ternary
        s = np.abs(g).mean(axis=-1)
    s = np.where(s == 0, 1.0, s).astype(np.float32)
    if scheme == "asym":
        zeros = np.clip(np.rint(-lo / s), 0, top).astype(np.int32)
    return s, zeros


def round_to_grid(x: np.ndarray, s: np.ndarray, z: Optional[np.ndarray], bits: int, scheme: str) -> np.ndarray:
    """Codes ``u`` (float array of integers in ``[0, 2^b - 1]``) of float weights ``x``
    on the grid ``(s, z)`` (broadcast against ``x``): round to nearest, then clip.
    The one rounding rule of every weight quantizer (RTN, GPTQ, ...)."""
    top = (1 << bits) - 1
    if scheme == "sym":
        half = 1 << (bits - 1)
        return np.clip(np.rint(x / s), -half, half - 1) + half
    if scheme == "asym":
        return np.clip(np.rint(x / s) + z, 0, top)
    if scheme == "odd":
        return np.clip(np.rint((x / s + top) / 2), 0, top)
    return np.clip(np.rint(x / s), -1, 1) + 1   # ternary


def grid_value(u: np.ndarray, s: np.ndarray, z: Optional[np.ndarray], bits: int, scheme: str) -> np.ndarray:
    """The real weight of codes ``u`` on the grid ``(s, z)`` (float32; what
    :func:`dequantize` gives for a whole matrix)."""
    u = np.asarray(u, np.float32)
    if scheme == "sym":
        q = u - (1 << (bits - 1))
    elif scheme == "asym":
        q = u - z
    elif scheme == "odd":
        q = 2 * u - ((1 << bits) - 1)
    else:
        q = u - 1
    return (s * q).astype(np.float32)


def quantize_rtn(w: np.ndarray, bits: int, group_size: int, scheme: str = "sym") -> QuantizedWeight:
    """Round-to-nearest per-group quantization of a float matrix ``[N, K]`` (host side):
    :func:`group_grid` of every group, then :func:`round_to_grid`."""
    w = np.asarray(w, dtype=np.float32)
    if w.ndim != 2:
        raise NumericsError(f"quantize_rtn expects a 2-D weight, got shape {w.shape}")
    n, k = w.shape
    if group_size <= 0 or k % group_size:
        raise NumericsError(f"K={k} is not a multiple of group size {group_size}")
    if scheme == "ternary":
        bits = 2
    if scheme == "sym" and bits < 2:
        raise NumericsError("symmetric quantization needs >= 2 bits (use scheme 'odd' for 1 bit)")
    g = w.reshape(n, k // group_size, group_size)
    s, zeros = group_grid(g, bits, scheme)
    u = round_to_grid(g, s[..., None], None if zeros is None else zeros[..., None], bits, scheme)
    return QuantizedWeight(u.reshape(n, k).astype(np.uint8), s, zeros, bits, group_size, scheme)


# --------------------------------------------------------------------------- activations

def quantize_act(x: np.ndarray, scale: float) -> np.ndarray:
    """Float activations to int8 (host/SFU boundary): ``sat8(rint(x / scale))``."""
    if not scale > 0:
        raise NumericsError(f"activation scale must be > 0, got {scale}")
    return sat8(np.rint(np.asarray(x, np.float64) / scale).astype(np.int64)).astype(np.int8)


# --------------------------------------------------------------------------- fixed point

def encode_scales(scales: np.ndarray, bits: int = SCALE_BITS) -> tuple[np.ndarray, int]:
    """Group scales to (unsigned mantissas, shared exponent E): ``s ~= m * 2^-E``."""
    s = np.asarray(scales, np.float64)
    if (s < 0).any() or not np.isfinite(s).all():
        raise NumericsError("group scales must be finite and >= 0")
    smax = float(s.max()) if s.size else 0.0
    if smax == 0.0:
        return np.zeros(s.shape, np.int64), 0
    top = (1 << bits) - 1
    e = int(np.floor(np.log2(top / smax)))
    e = max(0, min(62, e))
    while e > 0 and np.rint(smax * 2.0 ** e) > top:
        e -= 1
    m = np.rint(s * 2.0 ** e).astype(np.int64)
    if m.max() > top:
        raise NumericsError(f"group scale {smax} too large for a {bits}-bit mantissa")
    return m, e


def encode_multiplier(real: float, bits: int = MULT_BITS) -> tuple[int, int]:
    """A positive real multiplier as ``(M, R)`` with ``real ~= M * 2^-R``, ``M < 2^bits``."""
    if not real > 0 or not np.isfinite(real):
        raise NumericsError(f"multiplier must be finite and > 0, got {real}")
    top = (1 << bits) - 1
    r = int(np.floor(np.log2(top / real)))
    while np.rint(real * 2.0 ** r) > top:
        r -= 1
    if r < 0:
        raise NumericsError(f"multiplier {real} needs a left shift; not representable")
    if r > 62:
        r = 62
    return int(np.rint(real * 2.0 ** r)), r


def group_accumulate(q: np.ndarray, x: np.ndarray, group_size: int) -> np.ndarray:
    """Exact per-group integer dot products ``acc[..., n, g] = sum_k q[n,k] x[..., k]``.

    ``q``: int ``[N, K]`` signed weights; ``x``: int8 ``[..., K]``. Returns int64
    ``[..., N, K/G]``. This is the integer every engine must produce per group.
    """
    q, x = as_int(q), as_int(x)
    n, k = q.shape
    if x.shape[-1] != k:
        raise NumericsError(f"activation length {x.shape[-1]} != weight K {k}")
    if k > MAX_K:
        raise NumericsError(f"K={k} exceeds the contract's maximum {MAX_K}")
    g = k // group_size
    qg = q.reshape(n, g, group_size)
    xg = x.reshape(*x.shape[:-1], g, group_size)
    return np.einsum("ngk,...gk->...ng", qg, xg)


def dequant_groups(acc: np.ndarray, mant: np.ndarray) -> np.ndarray:
    """``P[..., n] = sum_g acc[..., n, g] * m[n, g]``, checked to fit 48 bits."""
    p = (as_int(acc) * as_int(mant)).sum(axis=-1)
    return check_fits(p, P_BITS, "dequantized accumulator P")


def requantize(p: np.ndarray, mult: int, shift: int) -> np.ndarray:
    """``sat8(rshift_round(P * M, R))`` as int8."""
    if not 0 <= mult < (1 << MULT_BITS):
        raise NumericsError(f"multiplier {mult} outside [0, 2^{MULT_BITS})")
    return sat8(rshift_round(as_int(p) * mult, shift)).astype(np.int8)


def linear_int(x_int8: np.ndarray, qw: QuantizedWeight) -> tuple[np.ndarray, int]:
    """The quantized linear layer up to the dequantized accumulator.

    Returns ``(P, E)``: int64 ``P[..., N]`` and the scale exponent ``E`` so that the
    real output is ``s_a * 2^-E * P``.  Every scheme goes through the same path: on
    the odd grid :func:`signed_weight` gives ``q'`` and the stored scales are ``s'``.
    """
    q = signed_weight(qw)
    acc = group_accumulate(q, x_int8, qw.group_size)
    mant, e = encode_scales(qw.scales)
    return dequant_groups(acc, mant), e
