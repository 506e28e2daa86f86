"""Numerics of the sparse DSP chain (after FlightLLM, FPGA'24): N:M compressed
weights, weight widening, and a golden model of the chain that is bit-exact to the
RTL in ``rtl/sv/dsp_*.sv`` *including its internal packing*.

Everything is exact integer arithmetic on ``int64`` numpy arrays.

Sparsity modes
--------------
A mode is ``N:M`` (``N`` nonzero weights in every block of ``M`` consecutive inputs
of one output row): ``"2:4"``, ``"2:16"``, ``"4:16"``, ``"8:16"`` and ``"dense"``
(= ``16:16``, indices implicit).  :data:`MODES` maps the name to ``(N, M, code)``;
``code`` is the value of the RTL's runtime ``in_mode`` input.

Hardware encodings (the single definition; the RTL never spells them)
    mode codes (:data:`MODES`, ``MODE_BITS`` = 3 bits), weight-width codes
    (:data:`WBITS_CODE`: 2/3/4/8 bits -> 0/1/2/3, ``WBITS_BITS`` = 2 bits), the
    activation block ``M_MAX`` = 16, the sparse index width ``IDX_BITS`` = 4, the
    weight-code bus width ``CODE_BITS`` = 8 and the P path ``DSP_P_BITS`` (=
    :data:`~plait.ir.numerics.common.P_BITS`, 48).  ``DspChainConfig.derived()``
    (``plait.rtl.dsp_chain``) emits them into ``dsp_chain_pkg`` as ``MODE_DENSE``,
    ``MODE_2_4``, ``MODE_2_16``, ``MODE_4_16``, ``MODE_8_16``, ``MODE_W``,
    ``WBITS_2`` .. ``WBITS_8``, ``WBITS_W``, ``M_MAX``, ``IDX_W``, ``CODE_W``,
    ``P_W``; ``rtl/sv/dsp_*.sv`` compare against those names
    (``tests/test_encodings.py`` rejects hand-written encoding literals).

N:M compressed format (:func:`compress_nm` / :func:`decompress_nm`)
    ``W[R, K]`` (``K`` a multiple of ``M``) becomes ``values[R, K*N/M]`` and
    ``indices uint8[R, K*N/M]``.  Block ``b`` of row ``r`` owns slots
    ``[b*N, (b+1)*N)``; slot ``s`` holds the weight at column ``b*M + indices[r, s]``.
    Indices inside a block are strictly increasing.  A block with fewer than ``N``
    nonzeros is padded with zero weights at its lowest unused positions.  A block
    with more than ``N`` nonzeros is an error (prune first: :func:`prune_nm`).
    FlightLLM's artifact stores N:16 blocks with 4-bit indices, which is this
    format with ``M = 16``.

Weight widening (:func:`widen_code`, :func:`dsp_weight_codes`)
    The chain's weight port carries ``b``-bit codes, ``b in {2, 3, 4, 8}`` (runtime
    ``in_wbits``), in the symmetric form ``u = q + 2^(b-1)``; the widening unit in
    front of each DSP turns a code back into the int8 weight ``q = u - 2^(b-1)``
    (flip the code's top bit, sign-extend).  Any quantized weight whose signed
    weight (:func:`~plait.ir.numerics.common.signed_weight`) fits a ``b``-bit signed
    range is re-coded to this form at compile time (sym, asym with small ranges,
    ternary, odd levels of <= 3 bits); :func:`dsp_weight_codes` picks the smallest
    such ``b``.  Signed weights outside int8 (e.g. asym 8-bit) are refused.

The chain (geometry and dataflow)
---------------------------------
``n_dsp`` DSP48E2-style slices (a multiple of 16) are cut into *cascade groups* of
``cascade`` slices joined by the fixed PCOUT->PCIN path; the first slice of each
group starts from zero (Z-MUX = 0): that cut is the *reduction node*.  In mode
``N:M`` a *logical group* of ``N`` consecutive slices computes one output row: per
beat (clock cycle) it takes one block of ``M`` activations of each of the two
lanes (the activation bus is broadcast to every logical group) and the ``N``
stored weights of that row's block; slice ``s`` of the logical group picks its
activation with its stored index (the *sparse MUX*; dense mode: slice ``s`` takes
activation ``s``).  So ``R = n_dsp / N`` rows are computed at once, every slice does
one useful packed MAC per beat in every mode, and a beat covers ``M`` inputs of
``K`` (``N:M`` sparsity makes the chain ``M/N`` times faster than dense).

Packing (two int8 MACs per DSP sharing one weight)
    Lane 0 (token row 0, ``a_lo``) and lane 1 (token row 1, ``a_hi``) are packed
    into the 27-bit multiplier operand ``A = (a_hi << S) + a_lo`` (``S =
    lane_shift``, 18 for the DSP48E2), the int8 weight goes to ``B``, and the
    slice computes ``w * A = ((w*a_hi) << S) + w*a_lo``.  A cascade group sums
    ``P = sum_j w_j*A_j = (S1 << S) + S0`` in the 48-bit P path (:func:`dsp_cascade`),
    where ``S0``/``S1`` are the lanes' partial dot products.  The lower lane has only
    ``S`` bits and its sign borrows from the upper lane.

Overflow adjust / lane extraction (:func:`lane_bias`, :func:`lane_split`, :func:`overflow_adjust`)
    One product lies in ``[-16256, 16384]`` (``-128*127`` .. ``-128*-128``), so a
    cascade group of ``c`` slices has ``S0 in [-16256 c, 16384 c]``, an interval of
    ``32640 c + 1`` values.  ``P mod 2^S`` determines ``S0`` uniquely iff that
    interval fits in ``2^S`` values, hence ``cascade * 32640 < 2^S`` is required
    (``cascade <= 8`` at ``S = 18``, ``cascade <= 2`` at ``S = 16``, the DSP48E1
    variant that fits the 25-bit A port).  The lower lane is decoded in the *window*
    ``[LO_OFF - 2^(S-1), LO_OFF + 2^(S-1) - 1]`` (:func:`lane_window`): the
    symmetric two's-complement window (``LO_OFF = 0``) when it holds the interval,
    else the one centred on it (``LO_OFF = 64 c``, e.g. ``c = 8`` products of
    ``-128 * -128`` at ``S = 18`` reach ``2^(S-1)``).  The hardware needs no logic
    for it: the first slice of each cascade group adds the constant ``RND = 2^(S-1)
    - LO_OFF`` to its P (the DSP48E2's W-MUX = RND), which makes the low field
    ``S0 + RND`` non-negative, so it never borrows from the upper lane:
    ``S1 = (P + RND) >> S`` and ``S0 - LO_OFF = ((P + RND) mod 2^S) - 2^(S-1)``, the
    low ``S`` bits with the top one inverted (:func:`lane_split`).  A row of ``G``
    cascade groups adds ``G * LO_OFF`` back to its lower lane (nothing when
    ``LO_OFF = 0``).  :func:`overflow_adjust` gives the true lanes.  Lanes are
    extracted per cascade group and only then added, so longer logical groups never
    overflow a packed lane.

Weight beat layout (:func:`chain_weight_beats` / :func:`chain_weight_from_beats`)
    The one definition of the order in which the chain consumes weights (used by
    :func:`schedule_chain` and by the packed artifact format,
    :mod:`plait.ir.numerics.pack`): rows padded to whole tiles of ``R = n_dsp / N``
    rows; beat ``t * K/M + j`` = block ``j`` of tile ``t``; slice ``i`` = slot
    ``i % N`` of row ``t*R + i // N``.  ``codes`` and ``idx`` are ``[tiles * K/M,
    n_dsp]``, exactly the ``in_w`` / ``in_idx`` words of the RTL.

Reduction and accumulation (:func:`chain_beat`, :func:`run_chain`)
    The extracted lanes of the ``n_dsp / cascade`` cascade groups go through a
    binary adder tree (the reconfigurable links between groups, in fabric); the
    level ``log2(N / cascade)`` of the tree holds the per-row beat sums of the
    current mode.  A row accumulator (``acc_w`` bits, two's complement, wraps
    like a register) adds the beat sums of one quantization group and emits
    ``acc[lane, row]`` on the group's last beat.

Decode lane packing (mode ``"pair"``, RTL code :data:`PAIR_CODE`)
    In batch-1 decode there is one token row, so the activation-lane packing above
    leaves lane 1 idle.  In pair mode the roles swap: the two packed lanes carry two
    *weight rows* that share one activation, ``A = (w_hi << S) + w_lo`` (the
    pre-adder packs the widened weights) and ``B = a`` (the activation of lane 0; lane
    1 of the bus is ignored), so ``a * A = ((a*w_hi) << S) + a*w_lo`` -- the same
    int8 x int8 products, hence the same P path, overflow adjust and tree.  The MUX
    is the dense one (slice ``i`` takes position ``i mod 16``); pair mode is dense only
    (two rows of an N:M weight do not share their indices).  The weight slot of a
    slice (``CODE_BITS`` = 8 bits) carries both rows' codes, the lower row's in bits
    ``[0, b)`` and the upper row's in bits ``[4, 4 + b)``, so ``b <= PAIR_MAX_BITS``
    (4): the weight bus moves the same bits per beat and every slice does two MACs.
    A tile has ``2 R`` rows (``R = n_dsp / 16``): slice ``i`` holds slot ``i mod 16``
    of row ``t*2R + i // 16`` (lane 0) and of row ``t*2R + R + i // 16`` (lane 1), so
    output lane ``l``, row ``r`` is tile row ``l*R + r``.  Which tiles run in pair mode
    is the caller's choice per tile (``in_mode`` per beat); the integers are those of
    every other mode.

Output contract: the exact per-group accumulations ``acc[lane, n, g] = sum_k
q[n, k] x[lane, k]`` over quantization groups of ``group_size`` inputs, i.e.
:func:`~plait.ir.numerics.common.group_accumulate`, which then feed
:func:`~plait.ir.numerics.common.dequant_groups`.  With ``acc_w = 32`` no
accumulation wraps for ``K <= MAX_K`` (``|acc| <= 2^14 * 65536 = 2^30``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

from .common import (INT8_MAX, INT8_MIN, MAX_K, P_BITS, NumericsError, QuantizedWeight,
                     as_int, check_fits, group_accumulate, signed_range, signed_weight, wrap)

__all__ = [
    "MODES", "DSP_WEIGHT_BITS", "WBITS_CODE", "WBITS_BITS", "MODE_BITS", "IDX_BITS",
    "CODE_BITS", "DSP_A_BITS", "DSP_B_BITS", "DSP_P_BITS",
    "PROD_MIN", "PROD_MAX", "DEFAULT_LANE_SHIFT", "M_MAX", "DspMode", "parse_mode",
    "prune_nm", "compress_nm", "decompress_nm", "widen_code", "encode_weight_codes",
    "dsp_weight_codes", "dsp_pack", "dsp_cascade", "lane_window", "check_lane_geometry",
    "lane_bias", "lane_split", "lane_bits", "overflow_adjust", "chain_beat", "ChainSchedule",
    "chain_weight_beats",
    "chain_weight_from_beats", "schedule_chain", "run_schedule",
    "run_chain", "chain_acc_bits", "reference_acc", "PAIR_CODE", "PAIR_MAX_BITS",
    "CHAIN_MODES", "split_pair_codes", "tile_rows",
]

#: mode name -> (N, M, RTL mode code)
MODES: dict[str, tuple[int, int, int]] = {
    "dense": (16, 16, 0),
    "2:4": (2, 4, 1),
    "2:16": (2, 16, 2),
    "4:16": (4, 16, 3),
    "8:16": (8, 16, 4),
}
M_MAX = 16                          # widest activation block (activation bus lanes)
IDX_BITS = (M_MAX - 1).bit_length() # stored sparse index per slice (4 bits: 0..M_MAX-1)
#: RTL mode code of decode lane packing (``"pair"``, see the module doc): dense, two
#: weight rows per slice sharing one activation
PAIR_CODE = 5
PAIR_MAX_BITS = 4                   # both rows' codes in one CODE_BITS weight slot
#: every mode the chain's ``in_mode`` accepts: the sparsity modes and ``"pair"``
CHAIN_MODES: dict[str, tuple[int, int, int]] = {**MODES, "pair": (16, 16, PAIR_CODE)}
MODE_BITS = max(c for _, _, c in CHAIN_MODES.values()).bit_length()   # width of in_mode (3)
DSP_WEIGHT_BITS = (2, 3, 4, 8)      # weight widths the widening unit accepts
WBITS_CODE = {2: 0, 3: 1, 4: 2, 8: 3}   # value of the RTL's in_wbits input
WBITS_BITS = max(WBITS_CODE.values()).bit_length()             # width of in_wbits (2)
CODE_BITS = max(DSP_WEIGHT_BITS)    # weight-code bus width per slice (8)
#: DSP48E2 multiplier A x B and the P path; P is the contract's 48-bit P (common.P_BITS)
DSP_A_BITS, DSP_B_BITS, DSP_P_BITS = 27, 18, P_BITS
PROD_MIN, PROD_MAX = INT8_MIN * INT8_MAX, INT8_MIN * INT8_MIN   # -16256, 16384
DEFAULT_LANE_SHIFT = 18


@dataclass(frozen=True)
class DspMode:
    name: str
    n: int
    m: int
    code: int

    @property
    def dense(self) -> bool:
        return self.name == "dense"

    @property
    def pair(self) -> bool:
        """Decode lane packing: two weight rows per slice share one activation."""
        return self.name == "pair"

    @property
    def implicit_idx(self) -> bool:
        """No stored indices: slice ``i`` takes block position ``i mod 16``."""
        return self.n == self.m

    @property
    def lanes(self) -> int:
        """Token rows of one beat: 2 (activation-lane packing), 1 in pair mode."""
        return 1 if self.pair else 2

    @property
    def weight_bits(self) -> tuple[int, ...]:
        """Weight widths the mode takes (pair mode: two codes per slot, <= 4 bits)."""
        return tuple(b for b in DSP_WEIGHT_BITS if not self.pair or b <= PAIR_MAX_BITS)


def parse_mode(mode: Union[str, tuple, DspMode]) -> DspMode:
    """``"dense"``/``"16:16"``/``"2:4"``/``(2, 4)``/``"pair"``/... -> :class:`DspMode`."""
    if isinstance(mode, DspMode):
        return mode
    if isinstance(mode, (tuple, list)) and len(mode) == 2:
        name = f"{int(mode[0])}:{int(mode[1])}"
    elif isinstance(mode, str):
        name = mode.strip().lower()
    else:
        raise NumericsError(f"sparsity mode must be a name like '2:4' or a pair (n, m), "
                            f"got {mode!r}")
    if name == "16:16":
        name = "dense"
    if name not in CHAIN_MODES:
        raise NumericsError(f"unsupported sparsity mode {mode!r} for the DSP chain; "
                            f"supported: {', '.join(CHAIN_MODES)}")
    n, m, code = CHAIN_MODES[name]
    return DspMode(name, n, m, code)


# --------------------------------------------------------------------------- N:M format

def _check_nm(n: int, m: int) -> None:
    if not (isinstance(n, (int, np.integer)) and isinstance(m, (int, np.integer))):
        raise NumericsError(f"N:M needs integers, got {n!r}:{m!r}")
    if m <= 0 or m & (m - 1):
        raise NumericsError(f"M must be a power of two, got {m}")
    if not 0 < n <= m:
        raise NumericsError(f"N must be in [1, M={m}], got {n}")


def prune_nm(w: np.ndarray, n: int, m: int) -> np.ndarray:
    """Magnitude N:M pruning mask of a float matrix ``[R, K]``: in every block of
    ``m`` consecutive inputs of a row keep the ``n`` entries of largest ``|w|`` (ties:
    the lower column wins).  Returns a bool mask of ``w``'s shape."""
    _check_nm(n, m)
    w = np.asarray(w)
    if w.ndim != 2:
        raise NumericsError(f"prune_nm expects a 2-D weight, got shape {w.shape}")
    r, k = w.shape
    if k % m:
        raise NumericsError(f"K={k} is not a multiple of the sparsity block M={m}")
    mag = np.abs(w.astype(np.float64)).reshape(r, k // m, m)
    order = np.argsort(-mag, axis=2, kind="stable")[..., :n]
    mask = np.zeros_like(mag, dtype=bool)
    np.put_along_axis(mask, order, True, axis=2)
    return mask.reshape(r, k)


def compress_nm(w_int: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer ``W[R, K]`` with at most ``n`` nonzeros per block of ``m`` ->
    ``(values int64[R, K*n/m], indices uint8[R, K*n/m])`` (format in module doc)."""
    _check_nm(n, m)
    w = as_int(w_int)
    if w.ndim != 2:
        raise NumericsError(f"compress_nm expects a 2-D weight, got shape {w.shape}")
    r, k = w.shape
    if k % m:
        raise NumericsError(f"K={k} is not a multiple of the sparsity block M={m}")
    blocks = w.reshape(r, k // m, m)
    nz = blocks != 0
    counts = nz.sum(axis=2)
    if (counts > n).any():
        row, blk = (int(v) for v in np.argwhere(counts > n)[0])
        raise NumericsError(
            f"row {row} block {blk} (columns {blk * m}..{blk * m + m - 1}) has "
            f"{int(counts[row, blk])} nonzeros, more than N={n} of an {n}:{m} pattern "
            f"(prune with prune_nm first)")
    # order: nonzeros first (by column), then zero columns (by column); keep n, sort
    key = np.where(nz, 0, 1) * m + np.arange(m)
    sel = np.sort(np.argsort(key, axis=2, kind="stable")[..., :n], axis=2)
    vals = np.take_along_axis(blocks, sel, axis=2)
    return vals.reshape(r, k // m * n), sel.reshape(r, k // m * n).astype(np.uint8)


def decompress_nm(values: np.ndarray, indices: np.ndarray, n: int, m: int) -> np.ndarray:
    """Inverse of :func:`compress_nm`: int64 ``W[R, K]`` with ``K = cols * m / n``."""
    _check_nm(n, m)
    v, ix = as_int(values), as_int(indices)
    if v.shape != ix.shape or v.ndim != 2:
        raise NumericsError(f"values {v.shape} and indices {ix.shape} must be equal 2-D shapes")
    r, c = v.shape
    if c % n:
        raise NumericsError(f"{c} compressed columns is not a multiple of N={n}")
    if ix.size and (ix.min() < 0 or ix.max() >= m):
        raise NumericsError(f"sparse index out of range [0, {m}): [{ix.min()}, {ix.max()}]")
    vb, ib = v.reshape(r, c // n, n), ix.reshape(r, c // n, n)
    if n > 1 and (np.diff(ib, axis=2) <= 0).any():
        row, blk = (int(t) for t in np.argwhere((np.diff(ib, axis=2) <= 0).any(axis=2))[0])
        raise NumericsError(f"row {row} block {blk}: indices {ib[row, blk].tolist()} are "
                            f"not strictly increasing")
    out = np.zeros((r, c // n, m), np.int64)
    np.put_along_axis(out, ib, vb, axis=2)
    return out.reshape(r, c // n * m)


# --------------------------------------------------------------------------- widening

def _check_wbits(bits: int) -> None:
    if bits not in DSP_WEIGHT_BITS:
        raise NumericsError(f"DSP chain weight width must be one of {DSP_WEIGHT_BITS}, "
                            f"got {bits}")


def widen_code(u, bits: int) -> np.ndarray:
    """The widening unit: ``b``-bit symmetric code ``u`` -> int8 weight ``u - 2^(b-1)``."""
    _check_wbits(bits)
    u = as_int(u)
    if u.size and (u.min() < 0 or u.max() >= (1 << bits)):
        raise NumericsError(f"{bits}-bit weight code out of range [0, {(1 << bits) - 1}]: "
                            f"[{u.min()}, {u.max()}]")
    return u - (1 << (bits - 1))


def encode_weight_codes(q, bits: int) -> np.ndarray:
    """int weights ``q`` -> ``b``-bit codes ``q + 2^(b-1)`` (uint8); ``q`` must fit."""
    _check_wbits(bits)
    q = check_fits(q, bits, f"weight for the {bits}-bit widening unit")
    return (q + (1 << (bits - 1))).astype(np.uint8)


def dsp_weight_codes(qw: QuantizedWeight) -> tuple[np.ndarray, int]:
    """Re-code a quantized weight for the chain: ``(codes uint8[N, K], bits)`` with
    the smallest ``bits`` in :data:`DSP_WEIGHT_BITS` whose signed range holds every
    signed weight, so that ``widen_code(codes, bits) == signed_weight(qw)``."""
    q = signed_weight(qw)
    lo, hi = (int(q.min()), int(q.max())) if q.size else (0, 0)
    for b in DSP_WEIGHT_BITS:
        smin, smax = signed_range(b)
        if smin <= lo and hi <= smax:
            return encode_weight_codes(q, b), b
    raise NumericsError(f"signed weights of this {qw.bits}-bit {qw.scheme!r} tensor span "
                        f"[{lo}, {hi}], outside int8: the DSP chain multiplies int8 weights "
                        f"(use the symmetric scheme for 8-bit weights)")


# --------------------------------------------------------------------------- slices

def _check_lane_shift(lane_shift: int) -> None:
    if not 9 <= lane_shift <= DSP_A_BITS - 9:
        raise NumericsError(f"lane_shift must be in [9, {DSP_A_BITS - 9}] (two int8 lanes "
                            f"in the {DSP_A_BITS}-bit A operand), got {lane_shift}")


def dsp_pack(a_hi, a_lo, lane_shift: int = DEFAULT_LANE_SHIFT) -> np.ndarray:
    """Packed multiplier operand ``(a_hi << S) + a_lo`` of two int8 activations."""
    _check_lane_shift(lane_shift)
    a_hi = check_fits(a_hi, 8, "packed activation a_hi")
    a_lo = check_fits(a_lo, 8, "packed activation a_lo")
    return check_fits((a_hi << lane_shift) + a_lo, lane_shift + 9, "packed operand")


def dsp_cascade(a_hi, a_lo, w, lane_shift: int = DEFAULT_LANE_SHIFT) -> np.ndarray:
    """P of a cascade group: ``sum_j w[..., j] * pack(a_hi, a_lo)[..., j]`` over the
    last axis, accumulated slice by slice in the 48-bit P path (PCOUT->PCIN)."""
    a = dsp_pack(a_hi, a_lo, lane_shift)
    w = check_fits(w, 8, "DSP weight")
    a, w = np.broadcast_arrays(a, w)
    p = np.zeros(a.shape[:-1], np.int64)
    for j in range(a.shape[-1]):
        p = wrap(p + w[..., j] * a[..., j], DSP_P_BITS)
    return p


def lane_bias(cascade: int, lane_shift: int = DEFAULT_LANE_SHIFT) -> tuple[int, int]:
    """``(RND, LO_OFF)`` of a cascade group of ``cascade`` slices: the constant the
    group's first slice adds to P and the offset of the lower lane's decoding window
    (0 when the symmetric window holds every sum; see module doc)."""
    check_lane_geometry(cascade, lane_shift)
    half = 1 << (lane_shift - 1)
    lo_min, lo_max = cascade * PROD_MIN, cascade * PROD_MAX
    lo_off = 0 if (lo_min >= -half and lo_max <= half - 1) else cascade * (PROD_MIN + PROD_MAX) // 2
    return half - lo_off, lo_off


def lane_window(cascade: int, lane_shift: int = DEFAULT_LANE_SHIFT) -> tuple[int, int]:
    """``(LO, WIN_HI)``: the decoding window of the lower lane for a cascade group of
    ``cascade`` slices, ``[LO_OFF - 2^(S-1), LO_OFF + 2^(S-1) - 1]`` (see module doc)."""
    _, lo_off = lane_bias(cascade, lane_shift)
    half = 1 << (lane_shift - 1)
    return lo_off - half, lo_off + half - 1


def lane_bits(cascade: int, lane_shift: int = DEFAULT_LANE_SHIFT) -> int:
    """Width (signed bits) of one extracted lane of a cascade group: the true upper
    lane ``[-16256 c, 16384 c]`` and the lower lane as split, ``S0 - LO_OFF``."""
    _, lo_off = lane_bias(cascade, lane_shift)
    lo, hi = cascade * PROD_MIN, cascade * PROD_MAX
    return max(_signed_bits(lo, hi), _signed_bits(lo - lo_off, hi - lo_off))


def _signed_bits(lo: int, hi: int) -> int:
    """Fewest two's-complement bits that hold every integer in ``[lo, hi]``."""
    w = 1
    while lo < -(1 << (w - 1)) or hi > (1 << (w - 1)) - 1:
        w += 1
    return w


def check_lane_geometry(cascade: int, lane_shift: int = DEFAULT_LANE_SHIFT) -> None:
    """Raise unless a cascade group's lower lane is decodable from ``lane_shift`` bits."""
    _check_lane_shift(lane_shift)
    if cascade < 1:
        raise NumericsError(f"cascade length must be >= 1, got {cascade}")
    span = cascade * (PROD_MAX - PROD_MIN) + 1
    if span > (1 << lane_shift):
        limit = ((1 << lane_shift) - 1) // (PROD_MAX - PROD_MIN)
        raise NumericsError(
            f"a cascade of {cascade} packed DSPs overflows the {lane_shift}-bit lower lane "
            f"(its sums span {span} values > 2^{lane_shift}); use cascade <= {limit}")


def lane_split(p, cascade: int, lane_shift: int = DEFAULT_LANE_SHIFT
               ) -> tuple[np.ndarray, np.ndarray]:
    """The reduction node as built: P of a cascade group *without* the bias ->
    ``(s_hi, s_lo - LO_OFF)``, read as bit fields of ``P + RND`` (no borrow)."""
    rnd, _ = lane_bias(cascade, lane_shift)
    pb = wrap(check_fits(p, DSP_P_BITS, "P") + rnd, DSP_P_BITS)
    half = 1 << (lane_shift - 1)
    return pb >> lane_shift, (pb & ((1 << lane_shift) - 1)) - half


def overflow_adjust(p, cascade: int, lane_shift: int = DEFAULT_LANE_SHIFT
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Reduction-node lane extraction: 48-bit P -> ``(s_hi, s_lo)`` (upper, lower lane)."""
    s_hi, s_lo = lane_split(p, cascade, lane_shift)
    return s_hi, s_lo + lane_bias(cascade, lane_shift)[1]


# --------------------------------------------------------------------------- the chain

def tile_rows(mode: DspMode, n_dsp: int) -> int:
    """Weight rows of one tile: ``n_dsp / N`` (pair mode: two per logical group)."""
    return n_dsp // mode.n * (2 if mode.pair else 1)


def _check_pair_bits(mode: DspMode, bits: int) -> None:
    if bits not in mode.weight_bits:
        raise NumericsError(f"pair mode carries two weight codes in one {CODE_BITS}-bit slot: "
                            f"weights of at most {PAIR_MAX_BITS} bits, got {bits}")


def split_pair_codes(codes, bits: int) -> np.ndarray:
    """Pair-mode weight slots -> the two rows' widened int8 weights ``[2, ...]``
    (lane 0 from bits ``[0, b)``, lane 1 from bits ``[4, 4 + b)``)."""
    codes = as_int(codes)
    if codes.size and (codes.min() < 0 or codes.max() >= 1 << CODE_BITS):
        raise NumericsError(f"weight slots out of range [0, {(1 << CODE_BITS) - 1}]")
    low = (1 << PAIR_MAX_BITS) - 1
    return np.stack([widen_code(codes & low, bits), widen_code(codes >> PAIR_MAX_BITS, bits)])


def _check_geometry(n_dsp: int, cascade: int, lane_shift: int, mode: DspMode) -> None:
    if n_dsp <= 0 or n_dsp % M_MAX:
        raise NumericsError(f"n_dsp must be a positive multiple of {M_MAX}, got {n_dsp}")
    if n_dsp % cascade:
        raise NumericsError(f"n_dsp={n_dsp} is not a multiple of cascade={cascade}")
    if mode.n % cascade:
        raise NumericsError(f"mode {mode.name} needs logical groups of {mode.n} DSPs, not a "
                            f"multiple of the cascade length {cascade}")
    check_lane_geometry(cascade, lane_shift)


def chain_beat(act, w, idx, mode, *, n_dsp: int = 16, cascade: int = 2,
               lane_shift: int = DEFAULT_LANE_SHIFT) -> np.ndarray:
    """One beat of the chain, bit-exact to the RTL datapath up to the accumulators.

    ``act`` int8 ``[2, 16]`` (lane, position in the block; in 2:4 mode only
    positions 0..3 are used), ``w`` int8 ``[n_dsp]`` (widened weights; pair mode:
    ``[2, n_dsp]``, the lane-0 and lane-1 rows' weights), ``idx`` ``[n_dsp]`` sparse
    indices (ignored in dense and pair mode).  Returns the per-row beat sums int64
    ``[2, R]``, ``R = n_dsp / N`` (pair mode: lane ``l`` row ``r`` is tile row
    ``l*R + r``; only lane 0 of ``act`` is used).
    """
    md = parse_mode(mode)
    _check_geometry(n_dsp, cascade, lane_shift, md)
    act, w, idx = as_int(act), as_int(w), as_int(idx)
    w_shape = (2, n_dsp) if md.pair else (n_dsp,)
    if act.shape != (2, M_MAX) or w.shape != w_shape or idx.shape != (n_dsp,):
        raise NumericsError(f"chain_beat: act {act.shape} / w {w.shape} / idx {idx.shape} "
                            f"must be (2, {M_MAX}) / {w_shape} / ({n_dsp},)")
    # sparse MUX: slice i picks its activation
    if md.implicit_idx:
        sel = np.arange(n_dsp) % M_MAX
    else:
        if idx.min() < 0 or idx.max() >= md.m:
            raise NumericsError(f"sparse index out of range [0, {md.m}) in mode {md.name}")
        sel = idx
    if md.pair:       # the pre-adder packs the two rows' weights; B is the activation
        a_lo, a_hi, w = w[0], w[1], act[0, sel]
    else:
        a_lo, a_hi = act[0, sel], act[1, sel]
    # cascade groups, then the reduction nodes (lane extraction)
    ng = n_dsp // cascade
    p = dsp_cascade(a_hi.reshape(ng, cascade), a_lo.reshape(ng, cascade),
                    w.reshape(ng, cascade), lane_shift)
    s_hi, s_lo = lane_split(p, cascade, lane_shift)
    lanes = np.stack([s_lo, s_hi])                  # [2, ng]
    # reconfigurable links: adder tree up to level log2(N / cascade)
    level = (md.n // cascade).bit_length() - 1
    for _ in range(level):
        lanes = lanes[:, 0::2] + lanes[:, 1::2]
    # the row's groups give back their lower-lane window offset
    lanes[0] += lane_bias(cascade, lane_shift)[1] << level
    return lanes


def chain_acc_bits(max_k: int = MAX_K) -> int:
    """Accumulator width that holds any group accumulation up to ``max_k`` inputs."""
    top = PROD_MAX * max_k
    return int(top).bit_length() + 1


@dataclass
class ChainSchedule:
    """The beat stream the chain consumes (and the RTL testbench drives).

    ``act`` int8 [T, 2, 16], ``codes`` uint8 [T, n_dsp] (``bits``-bit weight
    codes; pair mode: two per slot), ``idx`` uint8 [T, n_dsp], ``last`` bool [T]
    (last beat of a quantization group).  Outputs appear in order, one ``[2,
    lane_rows]`` per last beat: tile ``t`` (rows ``t*R .. t*R+R-1``, ``R =
    rows_per_tile``) x group ``g``.
    """

    mode: DspMode
    bits: int
    n_dsp: int
    rows: int               # real output rows (before padding to whole tiles)
    k: int
    group_size: int
    act: np.ndarray
    codes: np.ndarray
    idx: np.ndarray
    last: np.ndarray

    @property
    def rows_per_tile(self) -> int:
        return tile_rows(self.mode, self.n_dsp)

    @property
    def lane_rows(self) -> int:
        """Rows per lane of one output word (pair mode: half the tile's rows)."""
        return self.rows_per_tile // (2 if self.mode.pair else 1)

    @property
    def lanes(self) -> int:
        """Token rows of the product (:attr:`DspMode.lanes`)."""
        return self.mode.lanes

    def weights(self) -> np.ndarray:
        """The widened weights per beat: ``[T, n_dsp]`` (pair mode ``[T, 2, n_dsp]``)."""
        if self.mode.pair:
            return split_pair_codes(self.codes, self.bits).transpose(1, 0, 2)
        return widen_code(self.codes, self.bits)

    @property
    def n_tiles(self) -> int:
        return -(-self.rows // self.rows_per_tile)

    @property
    def beats(self) -> int:
        return int(self.last.shape[0])

    @property
    def beats_per_group(self) -> int:
        return self.group_size // self.mode.m

    def unschedule(self, outs: np.ndarray) -> np.ndarray:
        """Per-last-beat outputs ``[n_tiles * groups, 2, lane_rows]`` -> ``acc[lanes,
        rows, groups]`` (pair mode: ``lanes = 1``, output lane ``l`` row ``r`` is tile
        row ``l * lane_rows + r``)."""
        outs = as_int(outs)
        g = self.k // self.group_size
        r = self.lane_rows
        if outs.shape != (self.n_tiles * g, 2, r):
            raise NumericsError(f"expected {(self.n_tiles * g, 2, r)} outputs, got {outs.shape}")
        if self.mode.pair:
            o = outs.reshape(self.n_tiles, g, 2 * r).transpose(0, 2, 1)
            return o.reshape(1, self.n_tiles * 2 * r, g)[:, :self.rows]
        o = outs.reshape(self.n_tiles, g, 2, r).transpose(2, 0, 3, 1)
        return o.reshape(2, self.n_tiles * r, g)[:, :self.rows]


def _check_n_dsp(n_dsp: int) -> None:
    if not isinstance(n_dsp, (int, np.integer)) or n_dsp <= 0 or n_dsp % M_MAX:
        raise NumericsError(f"n_dsp must be a positive multiple of {M_MAX}, got {n_dsp}")


def chain_weight_beats(q, mode, *, n_dsp: int = 16, bits: int = 8
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The weight side of the chain's beat stream -- the one definition of its layout
    (:func:`schedule_chain` and the packer :func:`plait.ir.numerics.pack.pack_dsp`
    both use it).

    ``q`` int ``[rows, K]`` signed weights following the mode's N:M pattern (compressed
    here; a block with too many nonzeros raises).  Rows are padded with zero weights
    to whole tiles of ``R = n_dsp / N`` rows.  Returns ``(codes, idx)``, both uint8
    ``[tiles * K/M, n_dsp]``: beat ``t * K/M + j`` carries block ``j`` of tile ``t``;
    slice ``i`` holds slot ``i % N`` of row ``t*R + i // N`` -- its ``bits``-bit code
    (:func:`encode_weight_codes`) and its index in the block (dense: ``i % 16``).
    Pair mode (``R = 2 n_dsp / 16``): slice ``i`` holds column ``i % 16`` of rows
    ``t*R + i // 16`` (code in bits ``[0, b)``) and ``t*R + R/2 + i // 16`` (bits
    ``[4, 4 + b)``).
    """
    md = parse_mode(mode)
    _check_wbits(bits)
    _check_pair_bits(md, bits)
    _check_n_dsp(n_dsp)
    q = as_int(q)
    if q.ndim != 2:
        raise NumericsError(f"weights must be [rows, K], got shape {q.shape}")
    rows, k = q.shape
    if k % md.m:
        raise NumericsError(f"K={k} is not a multiple of the mode's block M={md.m}")
    r = tile_rows(md, n_dsp)
    tiles = -(-rows // r)
    qp = np.zeros((tiles * r, k), np.int64)
    qp[:rows] = q
    nb = k // md.m                                   # beats per tile
    if md.pair:
        c = encode_weight_codes(qp, bits).reshape(tiles, 2, r // 2, nb, M_MAX)
        slot = c[:, 0] | (c[:, 1] << PAIR_MAX_BITS)              # [tiles, R/2, nb, 16]
        codes = slot.transpose(0, 2, 1, 3).reshape(tiles * nb, n_dsp)
        ids = np.broadcast_to(np.arange(n_dsp, dtype=np.uint8) % M_MAX, codes.shape)
        return np.ascontiguousarray(codes, np.uint8), np.ascontiguousarray(ids, np.uint8)
    if md.dense:
        vals = qp
        ids = np.broadcast_to(np.arange(M_MAX, dtype=np.uint8), (tiles * r, k // M_MAX, M_MAX))
    else:
        vals, ids = compress_nm(qp, md.n, md.m)
    codes = encode_weight_codes(vals, bits)
    # slot layout per beat: DSP i = row (i // N), slot (i % N) of the row's block
    codes = codes.reshape(tiles, r, nb, md.n).transpose(0, 2, 1, 3).reshape(tiles * nb, n_dsp)
    ids = ids.reshape(tiles, r, nb, md.n).transpose(0, 2, 1, 3).reshape(tiles * nb, n_dsp)
    return np.ascontiguousarray(codes, np.uint8), np.ascontiguousarray(ids, np.uint8)


def chain_weight_from_beats(codes, idx, mode, rows: int, k: int, *, n_dsp: int = 16,
                            bits: int = 8) -> np.ndarray:
    """Inverse of :func:`chain_weight_beats`: the signed weights int64 ``[rows, K]``.

    ``idx`` is ignored in dense mode (may be ``None``).  Raises if the arrays do not
    have the layout's shape, an index is out of the mode's block, or a padding row of
    the last tile holds a nonzero weight.
    """
    md = parse_mode(mode)
    _check_wbits(bits)
    _check_pair_bits(md, bits)
    _check_n_dsp(n_dsp)
    if k <= 0 or k % md.m or rows <= 0:
        raise NumericsError(f"rows={rows}, K={k}: need rows >= 1 and K a multiple of M={md.m}")
    r = tile_rows(md, n_dsp)
    tiles, nb = -(-rows // r), k // md.m
    codes = as_int(codes)
    if codes.shape != (tiles * nb, n_dsp):
        raise NumericsError(f"weight codes have shape {codes.shape}; {rows} rows x K={k} in mode "
                            f"{md.name} on {n_dsp} DSPs need {(tiles * nb, n_dsp)}")

    def rows_major(a):
        return a.reshape(tiles, nb, r, md.n).transpose(0, 2, 1, 3).reshape(tiles * r, nb * md.n)

    if md.pair:
        lanes = split_pair_codes(codes, bits).reshape(2, tiles, nb, r // 2, M_MAX)
        q = lanes.transpose(1, 0, 3, 2, 4).reshape(tiles * r, k)
    elif md.dense:
        q = widen_code(rows_major(codes), bits)
    else:
        if idx is None:
            raise NumericsError(f"mode {md.name} needs the sparse indices")
        idx = as_int(idx)
        if idx.shape != codes.shape:
            raise NumericsError(f"sparse indices have shape {idx.shape}, codes {codes.shape}")
        q = decompress_nm(widen_code(rows_major(codes), bits), rows_major(idx), md.n, md.m)
    if (q[rows:] != 0).any():
        raise NumericsError(f"padding rows {rows}..{tiles * r - 1} of the last tile hold nonzero "
                            f"weights (corrupt beat stream)")
    return q[:rows]


def schedule_chain(x, q, mode, group_size: int, *, n_dsp: int = 16, bits: int = 8
                   ) -> ChainSchedule:
    """Lay out a matrix-vector(x2) product for the chain.

    ``x`` int8 ``[2, K]`` (two token rows = the two packed lanes; pair mode: ``[1,
    K]``, one token row, two weight rows per slice), ``q`` int ``[rows, K]`` signed
    weights that follow the mode's N:M pattern (they are compressed here; a block
    with too many nonzeros raises), ``bits`` the weight code width.  ``group_size``
    must be a multiple of M.
    """
    md = parse_mode(mode)
    _check_wbits(bits)
    x, q = check_fits(x, 8, "activation"), as_int(q)
    lanes = md.lanes
    if x.ndim != 2 or x.shape[0] != lanes:
        what = "one token row in pair mode" if md.pair else "two packed lanes"
        raise NumericsError(f"activations must be [{lanes}, K] ({what}), got {x.shape}")
    if q.ndim != 2 or q.shape[1] != x.shape[1]:
        raise NumericsError(f"weights {q.shape} do not match activations {x.shape}")
    rows, k = q.shape
    if k > MAX_K:
        raise NumericsError(f"K={k} exceeds the contract's maximum {MAX_K}")
    if group_size <= 0 or group_size % md.m or k % group_size:
        raise NumericsError(f"group size {group_size} must divide K={k} and be a multiple "
                            f"of the mode's block M={md.m}")
    codes, ids = chain_weight_beats(q, md, n_dsp=n_dsp, bits=bits)
    r = tile_rows(md, n_dsp)
    tiles = -(-rows // r)
    nb = k // md.m                                   # beats per tile
    act = np.zeros((tiles, nb, 2, M_MAX), np.int64)
    act[:, :, :lanes, :md.m] = x.reshape(lanes, nb, md.m).transpose(1, 0, 2)[None]
    last = np.zeros((tiles, nb), bool)
    last[:, group_size // md.m - 1::group_size // md.m] = True
    return ChainSchedule(md, bits, n_dsp, rows, k, group_size,
                         act.reshape(tiles * nb, 2, M_MAX).astype(np.int8),
                         codes, ids, last.reshape(-1))


def run_schedule(s: ChainSchedule, *, cascade: int = 2, lane_shift: int = DEFAULT_LANE_SHIFT,
                 acc_w: int = 32) -> np.ndarray:
    """Golden model of the streaming chain: every beat through :func:`chain_beat`,
    row accumulators of ``acc_w`` bits.  Returns the outputs ``[n_out, 2, R]`` in
    the order the RTL emits them."""
    r = s.lane_rows
    acc = np.zeros((2, r), np.int64)
    outs = []
    w = s.weights()
    for t in range(s.beats):
        beat = chain_beat(s.act[t], w[t], s.idx[t], s.mode, n_dsp=s.n_dsp,
                          cascade=cascade, lane_shift=lane_shift)
        acc = wrap(acc + beat, acc_w)
        if s.last[t]:
            outs.append(acc)
            acc = np.zeros_like(acc)
    return np.array(outs, np.int64).reshape(len(outs), 2, r)


def run_chain(x, q, mode, group_size: int, *, n_dsp: int = 16, cascade: int = 2,
              lane_shift: int = DEFAULT_LANE_SHIFT, acc_w: int = 32, bits: int = 8
              ) -> np.ndarray:
    """``acc[lanes, rows, K/G]`` computed the way the chain does (packed lanes
    included); equals ``group_accumulate(q, x, group_size)`` for every valid input
    (``x`` is ``[2, K]``, or ``[1, K]`` in pair mode)."""
    s = schedule_chain(x, q, mode, group_size, n_dsp=n_dsp, bits=bits)
    return s.unschedule(run_schedule(s, cascade=cascade, lane_shift=lane_shift, acc_w=acc_w))


def reference_acc(x, q, group_size: int) -> np.ndarray:
    """The contract: ``group_accumulate`` laid out as ``[2, rows, K/G]``."""
    return group_accumulate(q, x, group_size)
