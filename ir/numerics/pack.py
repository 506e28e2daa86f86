"""Packed weight formats of the compiled artifact: what the engines read from HBM.

A quantized linear weight (:class:`~plait.ir.numerics.common.QuantizedWeight`) is
packed once at compile time (the ``pack`` pass, :mod:`plait.passes.pack`) into the
exact words its engine consumes, in the exact order it consumes them.  The layouts
are *not* defined here: the beat order of each engine has one definition next to
its golden model, and both the testbench streams and these packers use it --
:func:`~plait.ir.numerics.dsp.chain_weight_beats` (DSP chain) and
:func:`~plait.ir.numerics.lut.lut_weight_beats` (LUT core).  Every ``pack_*`` has an
``unpack_*`` that gives back the integers exactly.

In memory a pack (:class:`DspPacked`, :class:`LutPacked`) holds the engine's beats
unpacked (``DspPacked.codes`` / ``.idx`` are ``schedule_chain``'s arrays,
``LutPacked.w_beats`` is ``lut_weight_beats``'); ``arrays()`` gives the stored fields
below and ``from_arrays(meta(), arrays())`` reads them back, checking every dtype and
shape.  The ``pack`` pass stores field ``f`` of weight ``w`` as ``<w>.pack.<f>`` and the
scalars (``meta()``) in the param's ``attrs["pack"]`` (:func:`read_packed`).

All arrays are little-endian numpy arrays; "packed two per byte" means element
``2j`` in the low nibble and ``2j + 1`` in the high nibble of byte ``j``
(:func:`pack_nibbles`), so a row of bytes read as a little-endian integer is the
RTL's bus word (slice / column ``i`` at bits ``[4i +: 4]``).

DSP chain format (:class:`DspPacked`, :func:`pack_dsp` / :func:`unpack_dsp`)
    Scalars: ``mode`` (``"dense"``, ``"2:4"``, ``"2:16"``, ``"4:16"``, ``"8:16"``, or
    ``"pair"``, decode lane packing: two weight rows per slice, codes of <= 4 bits; its
    RTL code is ``CHAIN_MODES[mode][2]``), ``bits`` (weight-code width in
    ``{2, 3, 4, 8}``, the smallest that holds the signed weights:
    :func:`~plait.ir.numerics.dsp.dsp_weight_codes`; RTL ``in_wbits =
    WBITS_CODE[bits]``), ``n_dsp``, ``rows`` (N), ``k`` (K), ``group_size`` (G),
    ``exp`` (the shared scale exponent E).  ``T = ceil(N / R) * K / M`` beats,
    ``R = n_dsp / N_mode`` (pair: ``2 n_dsp / 16``).

    ==========  ======  ====================  ==========================================
    field       dtype   shape                 content
    ==========  ======  ====================  ==========================================
    ``codes``   uint8   ``[T, n_dsp]``        ``bits``-bit symmetric code per slice and
                                              beat (``in_w``; ``q = u - 2^(bits-1)``)
    ``idx``     uint8   ``[T, n_dsp / 2]``    4-bit N:M index per slice, two per byte
                                              (``in_idx``); absent in dense / pair mode
    ``mant``    uint16  ``[N, K/G]``          group-scale mantissas (``s ~= m 2^-E``)
    ==========  ======  ====================  ==========================================

    ``codes`` and the unpacked ``idx`` are exactly ``schedule_chain(...).codes`` /
    ``.idx`` for the same weight.  Padding rows of the last tile have weight 0.

LUT core format (:class:`LutPacked`, :func:`pack_lut` / :func:`unpack_lut`)
    Scalars: ``bits`` (planes, 1..4; ternary: 2), ``scheme`` (``odd`` / ``sym`` /
    ``asym`` / ``ternary``; RTL ``cfg_offset = scheme != "odd"``), ``tile_n`` (the
    core's N columns per tile), ``rows`` (N), ``k``, ``group_size`` (RTL
    ``cfg_group_chunks = G / 4``), ``exp`` (E).  ``tiles = ceil(N / tile_n)``; the
    last tile is padded with code 0 (its mantissas are not streamed: the padding
    columns' outputs are dropped).

    ==========  ======  ==============================  ================================
    field       dtype   shape                           content
    ==========  ======  ==============================  ================================
    ``planes``  uint8   ``[tiles*K/4*bits, tile_n/2]``  the ``w_data`` beats of tile 0,
                                                        then tile 1, ...: chunk-major,
                                                        planes LSB first, the 4-bit
                                                        table index of each column, two
                                                        per byte (``ceil`` if odd)
    ``zp``      int8    ``[N, K/G]``                    odd-grid zero points ``z' = 2z +
                                                        1 - 2^b`` (``odd_zero_point``;
                                                        0 for ``odd``)
    ``mant``    uint16  ``[N, K/G]``                    group-scale mantissas
    ==========  ======  ==============================  ================================

    Group ``g`` of tile ``t`` streams ``s_mant``/``s_zp`` = ``mant``/``zp`` rows
    ``t*tile_n .. t*tile_n + tile_n - 1``, column ``g``.

Exact-mode constants beyond the weight (:func:`encode_bias`)
    The dequantized accumulator is ``y = s_a 2^-E P`` (see :mod:`.common`), so a
    linear needs the weight's ``E`` and, if it has a bias, the bias in fixed point:
    ``b ~= bias * 2^-bias_exp`` with ``bias`` int32 ``[N]`` and ``bias_exp`` the
    largest exponent in ``[0, 62]`` for which every value fits ``BIAS_BITS`` = 32
    bits signed.  Activation scales (``s_a``) belong to exact mode
    (:mod:`plait.ir.exact`), not to the weight.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .common import (SCALE_BITS, NumericsError, QuantizedWeight, as_int, encode_scales,
                     signed_range, signed_weight)
from .dsp import (CHAIN_MODES, DSP_WEIGHT_BITS, IDX_BITS, M_MAX, WBITS_CODE, chain_weight_beats,
                  chain_weight_from_beats, dsp_weight_codes, parse_mode, tile_rows)
from .lut import (LUT_G, LUT_SCHEMES, LUT_WEIGHT_BITS, ZP_BITS, lut_codes_from_beats,
                  lut_weight_beats, odd_zero_point)

__all__ = ["PACK_VERSION", "NIBBLE_BITS", "BIAS_BITS", "pack_nibbles", "unpack_nibbles",
           "DspPacked", "DspUnpacked", "pack_dsp", "unpack_dsp", "LutPacked", "LutUnpacked",
           "pack_lut", "unpack_lut", "encode_bias", "decode_bias", "FORMATS", "packed_from",
           "read_packed"]

PACK_VERSION = 1
NIBBLE_BITS = 4            # packed index width (two per byte)
BIAS_BITS = 32             # fixed-point bias (signed)
if not IDX_BITS == NIBBLE_BITS == LUT_G:          # both engines' indices are 4-bit nibbles
    raise ImportError(f"packed index width {NIBBLE_BITS} != DSP IDX_BITS {IDX_BITS} / LUT g {LUT_G}")


# --------------------------------------------------------------------------- nibbles

def pack_nibbles(a) -> np.ndarray:
    """4-bit values ``[..., L]`` -> uint8 ``[..., ceil(L/2)]``, element ``2j`` in the low
    nibble of byte ``j`` (an odd ``L`` gets a zero high nibble in the last byte)."""
    a = as_int(a)
    if a.size and (a.min() < 0 or a.max() > 15):
        raise NumericsError(f"nibble values must be in [0, 15], got [{a.min()}, {a.max()}]")
    if a.shape[-1] % 2:
        a = np.concatenate([a, np.zeros(a.shape[:-1] + (1,), np.int64)], axis=-1)
    return (a[..., 0::2] | (a[..., 1::2] << NIBBLE_BITS)).astype(np.uint8)


def unpack_nibbles(b, length: int) -> np.ndarray:
    """Inverse of :func:`pack_nibbles`: uint8 ``[..., length]``."""
    b = np.asarray(b)
    if b.dtype != np.uint8:
        raise NumericsError(f"packed nibbles must be uint8, got {b.dtype}")
    if b.shape[-1] != -(-length // 2):
        raise NumericsError(f"{b.shape[-1]} bytes cannot hold {length} nibbles")
    out = np.stack([b & 0xF, b >> NIBBLE_BITS], axis=-1).reshape(*b.shape[:-1], -1)
    if length % 2 and (out[..., -1] != 0).any():
        raise NumericsError("the unused high nibble of the last byte is not zero")
    return out[..., :length]


def _field(arrays: dict, name: str, dtype, shape: tuple, what: str) -> np.ndarray:
    if name not in arrays:
        raise NumericsError(f"{what}: field {name!r} is missing")
    a = np.asarray(arrays[name])
    if a.dtype != np.dtype(dtype) or a.shape != tuple(shape):
        raise NumericsError(f"{what}: field {name!r} is {a.dtype}{list(a.shape)}, expected "
                            f"{np.dtype(dtype)}{list(shape)}")
    return a


def _mantissas(qw: QuantizedWeight) -> tuple[np.ndarray, int]:
    mant, e = encode_scales(qw.scales)
    if mant.size and mant.max() >= 1 << SCALE_BITS:
        raise NumericsError(f"mantissa exceeds {SCALE_BITS} bits")
    return mant.astype(np.uint16), int(e)


def _scalars(meta: dict, keys: tuple[str, ...], what: str) -> dict:
    missing = [k for k in keys if k not in meta]
    if missing:
        raise NumericsError(f"{what}: missing scalar(s) {missing}")
    if meta.get("version", PACK_VERSION) != PACK_VERSION:
        raise NumericsError(f"{what}: pack format version {meta['version']} is not supported "
                            f"(this plait reads version {PACK_VERSION})")
    if not isinstance(meta["exp"], int) or isinstance(meta["exp"], bool):
        raise NumericsError(f"{what}: exponent E is {meta['exp']!r} (packed from a shape-only "
                            f"store?); an int is needed")
    return meta


# --------------------------------------------------------------------------- DSP chain

def _dense_idx(beats: int, n_dsp: int) -> np.ndarray:
    """The implicit dense-mode indices (slice ``i`` takes position ``i % 16``)."""
    return np.ascontiguousarray(np.broadcast_to(np.arange(n_dsp, dtype=np.uint8) % M_MAX,
                                                (beats, n_dsp)))


@dataclass
class DspPacked:
    """A weight packed for the sparse DSP chain, held as beats: ``codes`` and ``idx``
    are ``schedule_chain(...).codes`` / ``.idx`` (``idx`` in dense mode: the implicit
    ``i % 16``); :meth:`arrays` gives the stored fields (module docstring)."""

    mode: str
    bits: int
    n_dsp: int
    rows: int
    k: int
    group_size: int
    exp: int
    codes: np.ndarray                 # uint8 [T, n_dsp]
    idx: np.ndarray                   # uint8 [T, n_dsp], 4-bit values
    mant: np.ndarray                  # uint16 [N, K/G]

    engine = "dsp_chain"
    FIELDS = ("codes", "idx", "mant")  # stored fields (idx only for sparse modes)

    @property
    def dense(self) -> bool:
        return parse_mode(self.mode).dense

    @property
    def implicit_idx(self) -> bool:
        """No stored indices: dense and pair mode (slice ``i`` takes position ``i % 16``)."""
        return parse_mode(self.mode).implicit_idx

    @property
    def beats(self) -> int:
        return int(self.codes.shape[0])

    @property
    def rows_per_tile(self) -> int:
        return tile_rows(parse_mode(self.mode), self.n_dsp)

    @property
    def n_tiles(self) -> int:
        return -(-self.rows // self.rows_per_tile)

    @property
    def mode_code(self) -> int:
        """The RTL's ``in_mode``."""
        return CHAIN_MODES[self.mode][2]

    @property
    def wbits_code(self) -> int:
        """The RTL's ``in_wbits``."""
        return WBITS_CODE[self.bits]

    def arrays(self) -> dict[str, np.ndarray]:
        """The stored fields: ``codes``, ``mant`` and (sparse modes) the nibble-packed ``idx``."""
        out = {"codes": self.codes, "mant": self.mant}
        if not self.implicit_idx:
            out["idx"] = pack_nibbles(self.idx)
        return out

    def meta(self) -> dict:
        return {"format": self.engine, "version": PACK_VERSION, "mode": self.mode,
                "bits": self.bits, "n_dsp": self.n_dsp, "rows": self.rows, "k": self.k,
                "group_size": self.group_size, "exp": self.exp}

    @staticmethod
    def shapes(meta: dict) -> dict[str, tuple[tuple[int, ...], str]]:
        """``{field: (shape, dtype)}`` of the stored fields for these scalars."""
        md = parse_mode(meta["mode"])
        n_dsp, rows, k, g = (int(meta[x]) for x in ("n_dsp", "rows", "k", "group_size"))
        if n_dsp <= 0 or n_dsp % M_MAX or rows <= 0 or k <= 0 or k % md.m or g <= 0 or k % g:
            raise NumericsError(f"DSP chain pack: inconsistent scalars {meta}")
        t = -(-rows // tile_rows(md, n_dsp)) * (k // md.m)
        out = {"codes": ((t, n_dsp), "uint8"), "mant": ((rows, k // g), "uint16")}
        if not md.implicit_idx:
            out["idx"] = ((t, n_dsp // 2), "uint8")
        return out

    @classmethod
    def from_arrays(cls, meta: dict, arrays: dict) -> "DspPacked":
        """Rebuild from :meth:`meta` and :meth:`arrays`, checking every dtype and shape."""
        what = "DSP chain pack"
        m = _scalars(meta, ("mode", "bits", "n_dsp", "rows", "k", "group_size", "exp"), what)
        sh = cls.shapes(m)
        f = {name: _field(arrays, name, dt, shape, what) for name, (shape, dt) in sh.items()}
        md, n_dsp = parse_mode(m["mode"]), int(m["n_dsp"])
        idx = (_dense_idx(sh["codes"][0][0], n_dsp) if md.implicit_idx
               else unpack_nibbles(f["idx"], n_dsp))
        return cls(md.name, int(m["bits"]), n_dsp, int(m["rows"]), int(m["k"]),
                   int(m["group_size"]), int(m["exp"]), f["codes"], idx, f["mant"])


@dataclass
class DspUnpacked:
    q: np.ndarray        # int64 [N, K] signed weights (== signed_weight(qw))
    mant: np.ndarray     # int64 [N, K/G]
    exp: int


def pack_dsp(qw: QuantizedWeight, mode="dense", *, n_dsp: int = 16,
             bits: Optional[int] = None) -> DspPacked:
    """Pack ``qw`` for the DSP chain in ``mode`` (its signed weights must follow the
    mode's N:M pattern) with ``bits``-bit codes (default: the narrowest that holds
    them, :func:`~plait.ir.numerics.dsp.dsp_weight_codes`).  Raises
    :class:`NumericsError` for a weight the chain cannot take (signed weights outside
    int8 or ``bits``, a block with too many nonzeros, G not a multiple of the mode's
    block M)."""
    md = parse_mode(mode)
    n, k = qw.codes.shape
    if qw.group_size % md.m:
        raise NumericsError(f"group size {qw.group_size} is not a multiple of mode {md.name}'s "
                            f"block M={md.m}")
    _, need = dsp_weight_codes(qw)                 # the narrowest width holding q
    if bits is None:
        bits = need
    elif bits not in DSP_WEIGHT_BITS or bits < need:
        raise NumericsError(f"the signed weights need {need}-bit codes; {bits}-bit codes "
                            f"{'are not a DSP chain width' if bits not in DSP_WEIGHT_BITS else 'cannot hold them'}")
    codes, idx = chain_weight_beats(signed_weight(qw), md, n_dsp=n_dsp, bits=bits)
    mant, e = _mantissas(qw)
    return DspPacked(md.name, bits, n_dsp, n, k, qw.group_size, e, codes, idx, mant)


def unpack_dsp(p: DspPacked) -> DspUnpacked:
    """The signed weights, mantissas and E of a DSP chain pack (exact inverse)."""
    if p.implicit_idx and not np.array_equal(p.idx, _dense_idx(p.beats, p.n_dsp)):
        raise NumericsError(f"{p.mode}-mode pack with indices other than the implicit i % 16")
    q = chain_weight_from_beats(p.codes, p.idx, p.mode, p.rows, p.k, n_dsp=p.n_dsp, bits=p.bits)
    return DspUnpacked(q, as_int(p.mant), p.exp)


# --------------------------------------------------------------------------- LUT core

@dataclass
class LutPacked:
    """A weight packed for the LUT tensor core, held as beats: ``w_beats`` are the
    4-bit indices of :func:`~plait.ir.numerics.lut.lut_weight_beats`; :meth:`arrays`
    gives the stored fields (module docstring)."""

    bits: int
    scheme: str
    tile_n: int
    rows: int
    k: int
    group_size: int
    exp: int
    w_beats: np.ndarray              # uint8 [tiles, K/4 * bits, tile_n], 4-bit values
    zp: np.ndarray                   # int8 [N, K/G]
    mant: np.ndarray                 # uint16 [N, K/G]

    engine = "lut_core"
    FIELDS = ("planes", "zp", "mant")

    @property
    def n_tiles(self) -> int:
        return -(-self.rows // self.tile_n)

    @property
    def beats_per_tile(self) -> int:
        return self.k // LUT_G * self.bits

    @property
    def offset(self) -> bool:
        """The RTL's ``cfg_offset``: zero correction + halving (sym / asym / ternary)."""
        return self.scheme != "odd"

    @property
    def group_chunks(self) -> int:
        """The RTL's ``cfg_group_chunks``."""
        return self.group_size // LUT_G

    @property
    def planes(self) -> np.ndarray:
        """The stored ``planes`` field: uint8 ``[tiles * K/4 * bits, ceil(tile_n / 2)]``."""
        return pack_nibbles(self.w_beats).reshape(-1, -(-self.tile_n // 2))

    def w_words(self, tile: int) -> list[int]:
        """The ``w_data`` integers of one tile (column ``j`` at bits ``[4j +: 4]``)."""
        if not 0 <= tile < self.n_tiles:
            raise NumericsError(f"tile {tile} outside [0, {self.n_tiles})")
        return [int.from_bytes(r.tobytes(), "little") for r in pack_nibbles(self.w_beats[tile])]

    def arrays(self) -> dict[str, np.ndarray]:
        return {"planes": self.planes, "zp": self.zp, "mant": self.mant}

    def meta(self) -> dict:
        return {"format": self.engine, "version": PACK_VERSION, "bits": self.bits,
                "scheme": self.scheme, "tile_n": self.tile_n, "rows": self.rows, "k": self.k,
                "group_size": self.group_size, "exp": self.exp}

    @staticmethod
    def shapes(meta: dict) -> dict[str, tuple[tuple[int, ...], str]]:
        bits, n, rows, k, g = (int(meta[x]) for x in ("bits", "tile_n", "rows", "k", "group_size"))
        if bits not in LUT_WEIGHT_BITS or n < 1 or rows < 1 or k <= 0 or g <= 0 or g % LUT_G \
                or k % g or meta["scheme"] not in LUT_SCHEMES:
            raise NumericsError(f"LUT core pack: inconsistent scalars {meta}")
        beats = -(-rows // n) * (k // LUT_G) * bits
        return {"planes": ((beats, -(-n // 2)), "uint8"), "zp": ((rows, k // g), "int8"),
                "mant": ((rows, k // g), "uint16")}

    @classmethod
    def from_arrays(cls, meta: dict, arrays: dict) -> "LutPacked":
        what = "LUT core pack"
        m = _scalars(meta, ("bits", "scheme", "tile_n", "rows", "k", "group_size", "exp"), what)
        f = {name: _field(arrays, name, dt, shape, what)
             for name, (shape, dt) in cls.shapes(m).items()}
        bits, n, rows, k = int(m["bits"]), int(m["tile_n"]), int(m["rows"]), int(m["k"])
        w = unpack_nibbles(f["planes"], n).reshape(-(-rows // n), k // LUT_G * bits, n)
        return cls(bits, str(m["scheme"]), n, rows, k, int(m["group_size"]), int(m["exp"]), w,
                   f["zp"], f["mant"])


@dataclass
class LutUnpacked:
    codes: np.ndarray    # uint8 [N, K]
    zp: np.ndarray       # int64 [N, K/G] odd-grid zero points
    q: np.ndarray        # int64 [N, K] signed weights (== signed_weight(qw))
    mant: np.ndarray     # int64 [N, K/G]
    exp: int


def pack_lut(qw: QuantizedWeight, *, n: int = 64) -> LutPacked:
    """Pack ``qw`` for the LUT core with tiles of ``n`` output columns (the core's
    ``LutCoreConfig.n``).  Raises :class:`NumericsError` for a weight the core cannot
    take (bits, scheme, codes, group size)."""
    zp = odd_zero_point(qw)                           # validates bits / scheme / codes / G
    lo, hi = signed_range(ZP_BITS)
    if zp.size and (zp.min() < lo or zp.max() > hi):
        raise NumericsError(f"odd-grid zero points outside {ZP_BITS} bits")
    beats = lut_weight_beats(qw.codes, qw.bits, n)               # [tiles, C*b, n]
    mant, e = _mantissas(qw)
    rows, k = qw.codes.shape
    return LutPacked(qw.bits, qw.scheme, n, rows, k, qw.group_size, e, beats,
                     zp.astype(np.int8), mant)


def unpack_lut(p: LutPacked) -> LutUnpacked:
    """Codes, zero points, signed weights, mantissas and E of a LUT core pack (exact)."""
    codes = lut_codes_from_beats(p.w_beats, p.bits, p.rows)
    zp = as_int(p.zp)
    qo = 2 * as_int(codes) - ((1 << p.bits) - 1)                 # odd levels q'
    if p.scheme == "odd":
        if (zp != 0).any():
            raise NumericsError("odd-level pack with nonzero zero points")
        q = qo
    else:
        corr = qo - np.repeat(zp, p.group_size, axis=1)         # 2 (u - z)
        if (corr & 1).any():
            raise NumericsError("zero points are not on the odd grid (z' + 2^b - 1 odd)")
        q = corr >> 1
    return LutUnpacked(codes, zp, q, as_int(p.mant), p.exp)


# --------------------------------------------------------------------------- registry

FORMATS = {"dsp_chain": DspPacked, "lut_core": LutPacked}


def packed_from(meta: dict, arrays: dict):
    """A :class:`DspPacked` / :class:`LutPacked` from its ``meta()`` (``format`` names
    the engine) and its stored fields."""
    fmt = meta.get("format")
    if fmt not in FORMATS:
        raise NumericsError(f"unknown pack format {fmt!r}; known: {', '.join(FORMATS)}")
    return FORMATS[fmt].from_arrays(meta, arrays)


def read_packed(attr: dict, store):
    """The pack a param node's ``attrs["pack"]`` describes (scalars + ``"arrays"``:
    field -> name), its fields read from ``store`` (a weight store or any mapping)."""
    names = attr.get("arrays")
    if not isinstance(names, dict):
        raise NumericsError(f"pack attribute without an 'arrays' mapping: {attr!r}")
    return packed_from(attr, {f: np.asarray(store[n]) for f, n in names.items()})


# --------------------------------------------------------------------------- bias

def encode_bias(bias, bits: int = BIAS_BITS) -> tuple[np.ndarray, int]:
    """A float bias to ``(int32 values, exponent)`` with ``bias ~= v * 2^-exp``: the
    largest ``exp`` in ``[0, 62]`` for which every ``rint(bias * 2^exp)`` fits ``bits``
    bits signed."""
    b = np.asarray(bias, np.float64)
    if not np.isfinite(b).all():
        raise NumericsError("bias values must be finite")
    lo, hi = signed_range(bits)
    amax = float(np.abs(b).max()) if b.size else 0.0
    if amax == 0.0:
        return np.zeros(b.shape, np.int32), 0
    e = max(0, min(62, int(np.floor(np.log2(hi / amax)))))
    while e > 0 and (np.rint(b * 2.0 ** e).max() > hi or np.rint(b * 2.0 ** e).min() < lo):
        e -= 1
    v = np.rint(b * 2.0 ** e)
    if v.max() > hi or v.min() < lo:
        raise NumericsError(f"bias magnitude {amax} does not fit {bits} bits at exponent 0")
    return v.astype(np.int32), e


def decode_bias(values, exp: int) -> np.ndarray:
    """``values * 2^-exp`` as float64 (host side)."""
    return as_int(values).astype(np.float64) * 2.0 ** -exp
