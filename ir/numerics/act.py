"""Activation formats of the integer-exact model: wide fixed point, int8 with scales.

Every activation of exact mode (``plait.ir.exact``) is one of two formats; every
conversion between them is defined here in integer arithmetic (numpy ``int64``),
so RTL, HLS C++, CPU and CUDA reproduce it bit for bit.

``FX`` -- wide fixed point (the special-function unit's registers)
    A signed integer ``v`` of at most ``FX_BITS = 48`` bits with ``FX_FRAC = 16``
    fractional bits: ``real = v * 2^-16``.  Range ``[-2^31, 2^31)`` (real), step
    ``1.5e-5``.  Results of every special function and every linear output are
    saturated to 48 bits (:func:`sat_fx`).  The residual stream of SmolLM2 reaches
    ``|x| ~ 22,600`` (its "massive activations"), which is why the format is wider
    than 32 bits.

``A8`` -- int8 with a scale per row (:class:`QAct`)
    ``q`` int8 ``[..., D]`` and, per row (every index of the leading axes), an
    8-bit mantissa ``m in [128, 255]`` and an exponent ``e``:
    ``real[..., i] = q[..., i] * m * 2^e``.  The scale of a *dynamic* (per-token)
    quantization comes from the row's absolute maximum (:func:`scale_from_amax`);
    a *static* (per-tensor) scale comes from calibration and is the same for every
    row.  The linears multiply ``q``; ``m`` and ``e`` are applied once per output
    (:func:`linear_out_fx`).

Scale from an absolute maximum (:func:`scale_from_amax`)
    For an integer ``A = max |v| >= 1`` (in ``v``'s own units) let
    ``e = bitlen(A) - 15`` and ``A_s = ceil(A / 2^e)`` (``A << -e`` when ``e < 0``),
    so ``A_s in [2^14, 2^15]``; ``m = ceil(A_s / 127)``; if ``m > 255`` then
    ``e += 1``, ``A_s = ceil(A_s / 2)``, ``m = ceil(A_s / 127)``.  Then ``m in
    [128, 255]`` and ``127 * m * 2^e >= A``: the largest value quantizes to 126 or
    127.  ``A = 0`` gives ``m = 128, e = 0`` (every code is 0).

Quantization (:func:`quantize_rows`)
    ``vs = rshift_round(v, e)`` if ``e > 0`` else ``v << -e`` (``|vs| <= 2^15`` for a
    row's own scale; saturated to 17 bits, which only a static scale can reach), then
    ``q = sat8(rshift_round(vs * RECIP[m], 24))`` with the 128-entry reciprocal
    table ``RECIP[m] = round(2^24 / m)`` (17 bits): one multiply per element and a
    table read per row, no divider in the datapath.  Error against float
    ``round(v / (m 2^e))``: the two roundings add at most 1 LSB.

Linear output (:func:`linear_out_fx`)
    The engines give ``P[t, n]`` (48 bits, ``real = P * 2^-E * s_a``, ``E`` the
    weight's shared scale exponent).  With the input scale ``m_t * 2^e_t`` of row
    ``t``: ``y = shift_round(P * m_t, E - e_t - 16)`` in ``FX`` (``P * m_t`` fits 56
    bits), then a fixed-point bias is added if the layer has one.

Signed shifts (:func:`shift_round`): ``s > 0`` is :func:`rshift_round` (round half
up), ``s <= 0`` a left shift; the result saturates to ``FX_BITS``.  Right shifts are
clamped to ``SHIFT_MAX = 62`` (left shifts likewise, before saturation): for
``|x| < 2^61`` a right shift by 62 already rounds to 0 (``(x + 2^61) >> 62 = 0``),
so the clamp is exact there, and every element's result depends on its own ``x``
and ``s`` only (numpy's own shifts by 63 / 64 would make ``1 << 63`` negative and
``x >> 64`` implementation-defined).  The HLS C++ (``hls/src/plait_act.h``) clamps
the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common import NumericsError, as_int, sat

FX_BITS = 48            # width of every wide activation register
FX_FRAC = 16            # fractional bits of the FX format
A_MANT_MIN, A_MANT_MAX = 128, 255   # per-row activation scale mantissa
RECIP_BITS = 24
SHIFT_MAX = 62          # shift_round clamps |s| to this (exact for |x| < 2^61)
#: RECIP[m - 128] = round(2^24 / m), m in [128, 255]
RECIP = np.array([(2 * (1 << RECIP_BITS) + m) // (2 * m) for m in range(A_MANT_MIN, A_MANT_MAX + 1)],
                 np.int64)
_BITLEN_MAX = 53        # bitlen() is exact (float64 frexp) below 2^53


@dataclass
class QAct:
    """int8 activations with a scale per row: ``real = q * m * 2^e``.

    ``q`` int8 ``[..., D]``; ``m``, ``e`` int64 with ``q``'s leading shape (one
    per row) -- a static scale is broadcast to every row.
    """

    q: np.ndarray
    m: np.ndarray
    e: np.ndarray

    def rows(self) -> "QAct":
        """The same activations as ``[T, D]`` rows (``m``, ``e``: ``[T]``)."""
        d = self.q.shape[-1]
        lead = self.q.shape[:-1]

        def flat(a):
            a = np.asarray(a)
            return a.reshape(-1) if a.shape == lead else np.broadcast_to(a, lead).reshape(-1)
        return QAct(self.q.reshape(-1, d), flat(self.m), flat(self.e))

    def real(self) -> np.ndarray:
        """Float64 value (for tests and reports only; never in the datapath)."""
        return self.q.astype(np.float64) * (self.m * np.exp2(self.e.astype(np.float64)))[..., None]


def bitlen(x, check: bool = True) -> np.ndarray:
    """Bit length of non-negative integers (``0 -> 0``; ``2^k -> k + 1``); ``check=False``
    skips the range check for callers whose values are in range by construction."""
    x = as_int(x)
    if check and x.size and (x.min() < 0 or x.max() >= (1 << _BITLEN_MAX)):
        raise NumericsError(f"bitlen needs integers in [0, 2^{_BITLEN_MAX}), got [{x.min()}, {x.max()}]")
    return np.frexp(x.astype(np.float64))[1].astype(np.int64)   # exact below 2^53; frexp(0) = 0


def sat_fx(x) -> np.ndarray:
    """Saturate to the ``FX_BITS``-wide fixed-point register."""
    return sat(x, FX_BITS)


def shift_round(x, s) -> np.ndarray:
    """``x * 2^-s`` in integers: round-half-up right shift for ``s > 0``, left shift
    for ``s <= 0``; ``s`` may be an array broadcast against ``x``; saturates to
    ``FX_BITS`` bits.  ``|s|`` is clamped to ``SHIFT_MAX`` (module doc): element-wise
    and exact for ``|x| < 2^61``."""
    x, s = as_int(x), as_int(s)
    if s.size and s.min() >= 0:                      # the common case: right shifts only
        r = np.minimum(s, SHIFT_MAX)
        return sat_fx((x + (np.left_shift(np.int64(1), r) >> 1)) >> r)   # half = 0 when s = 0
    s = np.broadcast_to(s, np.broadcast_shapes(x.shape, s.shape))
    x = np.broadcast_to(x, s.shape)
    r = np.minimum(np.maximum(s, 0), SHIFT_MAX)
    left = np.minimum(np.maximum(-s, 0), SHIFT_MAX)
    half = np.where(r > 0, np.left_shift(np.int64(1), np.maximum(r - 1, 0)), 0)
    right = np.right_shift(x + half, r)
    # left shifts saturate before they can overflow int64
    lim = np.right_shift(np.int64(1) << (FX_BITS - 1), left)
    lefted = np.left_shift(np.clip(x, -lim, lim), left)
    return sat_fx(np.where(s > 0, right, lefted))


def to_fx(x: np.ndarray, frac: int = FX_FRAC) -> np.ndarray:
    """Float to fixed point (host boundary only): ``sat_fx(rint(x * 2^frac))``."""
    return sat_fx(np.rint(np.asarray(x, np.float64) * float(1 << frac)).astype(np.int64))


def from_fx(v, frac: int = FX_FRAC) -> np.ndarray:
    """Fixed point to float64 (host boundary only; exact for ``|v| < 2^53``)."""
    return as_int(v).astype(np.float64) * (1.0 / float(1 << frac))


def scale_from_amax(amax, check: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(m, e)`` of the per-row scale for integer absolute maxima ``amax`` (see module doc);
    ``check=False`` for maxima in ``[0, 2^53)`` by construction."""
    a = as_int(amax)
    e = bitlen(a, check) - 15     # checks 0 <= a < 2^53
    # A_s = ceil(A / 2^e) (a floor shift of -A), or A << -e
    a_s = np.where(e >= 0, -((-a) >> np.maximum(e, 0)), a << np.maximum(-e, 0))
    m = (a_s + 126) // 127
    over = m > A_MANT_MAX
    if over.any():                # ceil(ceil(A / 2^e) / 2) == ceil(A / 2^(e+1))
        e = e + over
        m = np.where(over, (((a_s + 1) >> 1) + 126) // 127, m)
    zero = a == 0
    if zero.any():
        m, e = np.where(zero, A_MANT_MIN, m), np.where(zero, 0, e)
    return m, e


def quantize_rows(v, m, e, check: bool = True) -> np.ndarray:
    """int8 codes of ``v[..., D]`` for per-row scales ``(m, e)`` (shape ``v.shape[:-1]``
    or broadcastable to it), in ``v``'s units: ``q ~ v / (m 2^e)``."""
    v = as_int(v)
    m, e = as_int(m), as_int(e)
    if check and m.size and (m.min() < A_MANT_MIN or m.max() > A_MANT_MAX):
        raise NumericsError(f"activation scale mantissa outside [{A_MANT_MIN}, {A_MANT_MAX}]")
    m, e = m[..., None], e[..., None]
    if e.size and e.min() >= 0:   # rshift_round by e (half = 0 when e = 0)
        vs = (v + (np.left_shift(np.int64(1), e) >> 1)) >> e
    else:
        pos = np.maximum(e, 0)
        vs = np.where(e > 0, (v + (np.left_shift(np.int64(1), pos) >> 1)) >> pos,
                      np.left_shift(v, np.maximum(-e, 0)))
    vs = sat(vs, 17)   # a static scale can be exceeded: saturate before the multiply
    q = (vs * RECIP[m - A_MANT_MIN] + (1 << (RECIP_BITS - 1))) >> RECIP_BITS
    return sat(q, 8).astype(np.int8)


def quantize_dynamic(v, frac: int = FX_FRAC) -> QAct:
    """Per-row (per-token) dynamic int8 quantization of fixed-point ``v[..., D]``
    (``frac`` fractional bits): the scale of each row comes from its own absmax."""
    v = as_int(v)
    m, e = scale_from_amax(np.abs(v).max(axis=-1), check=False)   # |FX| < 2^47 by saturation
    return QAct(quantize_rows(v, m, e, check=False), m, e - frac)


def static_scale(amax_real: float, frac: int = FX_FRAC) -> tuple[int, int]:
    """``(m, e)`` (real units) of a static scale from a calibrated float absmax (host side)."""
    if not np.isfinite(amax_real) or amax_real < 0:
        raise NumericsError(f"calibrated absmax must be finite and >= 0, got {amax_real}")
    a = int(np.ceil(amax_real * float(1 << frac)))
    m, e = scale_from_amax(np.array(a))
    return int(m), int(e) - frac


def quantize_static(v, m: int, e: int, frac: int = FX_FRAC) -> QAct:
    """int8 quantization of fixed-point ``v[..., D]`` with one static scale ``m * 2^e``
    (real units); values beyond the scale saturate to +-127/-128."""
    v = as_int(v)
    lead = v.shape[:-1]
    mm = np.full(lead, m, np.int64)
    ee = np.full(lead, e, np.int64)
    return QAct(quantize_rows(v, mm, ee + frac), mm, ee)


def linear_out_fx(p, e_w: int, act: QAct, bias_fx=None) -> np.ndarray:
    """Linear output ``P[T, N]`` (``real = P 2^-e_w s_a``) to ``FX`` with the input
    rows' scales ``act.m[T] * 2^act.e[T]``; ``bias_fx`` (int ``[N]``, FX) is added."""
    p = as_int(p)
    m = as_int(act.m).reshape(-1, 1)
    e = as_int(act.e).reshape(-1, 1)
    y = shift_round(p * m, e_w - e - FX_FRAC)
    if bias_fx is not None:
        y = sat_fx(y + as_int(bias_fx))
    return y


__all__ = ["FX_BITS", "FX_FRAC", "SHIFT_MAX", "A_MANT_MIN", "A_MANT_MAX", "RECIP", "RECIP_BITS", "QAct",
           "bitlen", "sat_fx", "shift_round", "to_fx", "from_fx", "scale_from_amax",
           "quantize_rows", "quantize_dynamic", "static_scale", "quantize_static", "linear_out_fx"]
