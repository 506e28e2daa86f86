"""Golden model of the LUT tensor core (plait.ir.numerics.lut) against the contract.

Proof by test that the table / symmetric lookup / bit-plane / zero-correction path
equals the plain integer ``group_accumulate(signed_weight(qw), x, G)`` of
plait.ir.numerics.common for W1..W4 odd, ternary, sym and asym, with extremes.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from plait.ir.numerics import (
    LOOKUP_BITS, LUT_ENTRIES, TABLE_BITS, NumericsError, QuantizedWeight, bit_planes,
    dequant_groups, encode_scales, group_accumulate, linear_int, lut_full_table,
    lut_group_accumulate, lut_linear, lut_lookup, lut_precompute, lut_trace, lut_widths,
    odd_levels, odd_zero_point, plane_indices, quantize_rtn, requantize, signed_range,
    signed_weight,
)

CASES = [("odd", 1), ("odd", 2), ("odd", 3), ("odd", 4), ("ternary", 2), ("asym", 1),
         ("asym", 2), ("asym", 3), ("asym", 4), ("sym", 1), ("sym", 2), ("sym", 3), ("sym", 4)]


def _qw(rng, scheme, bits, n, k, g, codes=None, zeros=None):
    top = (1 << bits) - 1
    if codes is None:
        codes = rng.integers(0, 3 if scheme == "ternary" else top + 1, (n, k))
    if scheme == "asym" and zeros is None:
        zeros = rng.integers(0, top + 1, (n, k // g))
    scales = rng.uniform(0.01, 1.0, (n, k // g)).astype(np.float32)
    return QuantizedWeight(np.asarray(codes, np.uint8), scales,
                           None if zeros is None else np.asarray(zeros, np.int32),
                           bits, g, scheme)


# ----------------------------------------------------------------- tables
def test_table_is_all_signed_sums_and_symmetric():
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (50, 4))
    full = lut_full_table(x.reshape(50, 4))[:, 0, :]          # [50, 16]
    for idx in range(16):
        signs = np.array([1 if idx >> k & 1 else -1 for k in range(4)])
        assert np.array_equal(full[:, idx], x @ signs)
        assert np.array_equal(full[:, idx], -full[:, 15 - idx])   # T[~idx] = -T[idx]
    s = lut_precompute(x)[:, 0, :]
    assert s.shape == (50, LUT_ENTRIES)
    assert np.array_equal(s, full[:, 8:])
    assert np.array_equal(s[:, 7], x.sum(axis=1))                 # S[7] = sum x


def test_table_width_is_exactly_10_bits_and_lookup_11():
    # exhaustive over the extreme corners: every entry of every corner input
    corners = np.array(list(itertools.product([-128, 127, 0, -1, 1], repeat=4)))
    s = lut_precompute(corners)
    lo, hi = signed_range(TABLE_BITS)
    assert s.min() == lo == -512 and s.max() == hi == 511     # both ends reached
    lk = lut_lookup(s[:, :, None, :], np.arange(16)[None, None, :])
    assert lk.min() == -512 and lk.max() == 512                  # needs LOOKUP_BITS = 11
    assert signed_range(LOOKUP_BITS)[1] >= 512 > signed_range(LOOKUP_BITS - 1)[1]
    # the other half (idx[3] = 0) would not fit 10 bits: that is why it is not stored
    assert lut_full_table(corners)[..., :8].max() == 512


def test_symmetric_lookup_equals_full_table():
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (200, 4))
    x[:20] = -128
    s = lut_precompute(x)[:, 0, :]
    full = lut_full_table(x)[:, 0, :]
    for idx in range(16):
        assert np.array_equal(lut_lookup(s, np.full(200, idx)), full[:, idx])


def test_lookup_rejects_bad_index():
    s = lut_precompute(np.zeros(4, np.int64))[0]
    with pytest.raises(NumericsError, match="4-bit"):
        lut_lookup(s, 16)


def test_precompute_rejects_non_int8_and_ragged():
    with pytest.raises(NumericsError, match="int8"):
        lut_precompute(np.array([0, 0, 128, 0]))
    with pytest.raises(NumericsError, match="multiple of g=4"):
        lut_precompute(np.zeros(6, np.int64))
    with pytest.raises(NumericsError, match="integer array"):
        lut_precompute(np.zeros(4, np.float32))


# ----------------------------------------------------------------- weights
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_bit_planes_rebuild_odd_levels(bits):
    u = np.arange(1 << bits, dtype=np.int64)[None, :].repeat(4, 0)   # every code
    planes = bit_planes(u, bits)
    assert np.array_equal((planes << np.arange(bits)[:, None, None]).sum(0), u)
    # q' = sum_i 2^i (2 b_i - 1)
    qodd = ((2 * planes - 1) << np.arange(bits)[:, None, None]).sum(0)
    assert np.array_equal(qodd, 2 * u - ((1 << bits) - 1))
    assert set(np.unique(qodd).tolist()) == set(range(-(1 << bits) + 1, 1 << bits, 2))


def test_plane_indices_layout():
    codes = np.array([[1, 2, 3, 0, 3, 3, 3, 3]], np.int64)
    idx = plane_indices(codes, 2)
    # plane 0 bits of chunk 0: 1,0,1,0 -> 0b0101; plane 1: 0,1,1,0 -> 0b0110
    assert idx.shape == (2, 1, 2)
    assert idx[0, 0, 0] == 0b0101 and idx[1, 0, 0] == 0b0110
    assert idx[0, 0, 1] == 0b1111 and idx[1, 0, 1] == 0b1111


@pytest.mark.parametrize("scheme,bits", CASES)
def test_odd_zero_point_identity(scheme, bits):
    """2 (u - z) = q' - z'  (and q' itself for odd weights)."""
    rng = np.random.default_rng(bits)
    qw = _qw(rng, scheme, bits, 8, 32, 8)
    zp = np.repeat(odd_zero_point(qw), 8, axis=1)
    q = signed_weight(qw)
    if scheme == "odd":
        assert np.array_equal(odd_levels(qw), q) and not zp.any()
    else:
        assert np.array_equal(odd_levels(qw) - zp, 2 * q)
        assert np.abs(zp).max() <= (1 << bits) - 1
    if scheme == "sym":
        assert (zp == 1).all()
    if scheme == "ternary":
        assert (zp == -1).all()


# ----------------------------------------------------------------- datapath
@pytest.mark.parametrize("scheme,bits", CASES)
@pytest.mark.parametrize("g", [4, 8, 32, 128])
def test_lut_path_equals_group_accumulate_random(scheme, bits, g):
    rng = np.random.default_rng(hash((scheme, bits, g)) % 2**32)
    k = 2 * max(g, 32)
    qw = _qw(rng, scheme, bits, 16, k, g)
    x = rng.integers(-128, 128, (3, k))
    x[0, : k // 2] = -128
    t = lut_trace(x, qw)
    ref = group_accumulate(signed_weight(qw), x, g)
    assert np.array_equal(t.grp, ref)
    assert np.array_equal(lut_group_accumulate(x, qw), ref)
    # per-chunk: sum_i 2^i L(idx_i) == sum q' x over the chunk
    qodd = odd_levels(qw)
    chunk_ref = np.einsum("nck,mck->mnc", qodd.reshape(16, k // 4, 4), x.reshape(3, k // 4, 4))
    assert np.array_equal(t.chunk_sums, chunk_ref)
    # P and the contract's linear_int agree
    p, e = lut_linear(x, qw)
    p_ref, e_ref = linear_int(x, qw)
    assert e == e_ref and np.array_equal(p, p_ref)
    mant, _ = encode_scales(qw.scales)
    assert np.array_equal(t.p, dequant_groups(ref, mant))


@pytest.mark.parametrize("scheme,bits", CASES)
def test_lut_path_extremes(scheme, bits):
    """-128 everywhere and the extreme codes / zero points at the largest group."""
    top = (1 << bits) - 1
    hi = 2 if scheme == "ternary" else top
    g, k = 256, 512
    w = lut_widths(g, bits)
    for cval, zval, xval in itertools.product((0, hi), (0, top), (-128, 127)):
        codes = np.full((4, k), cval)
        zeros = np.full((4, k // g), zval) if scheme == "asym" else None
        qw = _qw(np.random.default_rng(0), scheme, bits, 4, k, g, codes=codes, zeros=zeros)
        x = np.full((2, k), xval)
        t = lut_trace(x, qw, g, bits)
        ref = group_accumulate(signed_weight(qw), x, g)
        assert np.array_equal(t.grp, ref)
        # widths are exact: every register fits, and the bound is reached by some case
        assert np.abs(t.grp).max() <= (1 << (w.grp - 1))
    # the worst case reaches the top of the accumulator range
    qw = _qw(np.random.default_rng(0), "odd", 4, 1, 256, 256, codes=np.zeros((1, 256)))
    t = lut_trace(np.full((1, 256), -128), qw, 256, 4)
    assert t.acc.max() == 15 * 128 * 256 and t.acc.max() < 2 ** (lut_widths(256, 4).acc - 1)
    assert t.acc.max() >= 2 ** (lut_widths(256, 4).acc - 2)       # width is tight


def test_all_zero_groups():
    rng = np.random.default_rng(3)
    qw = _qw(rng, "asym", 3, 8, 64, 16)
    x = rng.integers(-128, 128, (2, 64))
    x[:, 16:32] = 0
    t = lut_trace(x, qw)
    assert (t.grp[:, :, 1] == 0).all() and (t.xsum[:, 1] == 0).all()
    assert np.array_equal(t.grp, group_accumulate(signed_weight(qw), x, 16))


def test_quantize_rtn_weights_and_requantize():
    """Real RTN-quantized weights, then the optional int8 requantization."""
    rng = np.random.default_rng(4)
    w = rng.standard_normal((32, 128)).astype(np.float32)
    x = rng.integers(-128, 128, (2, 128)).astype(np.int8)
    for scheme, bits in [("odd", 1), ("odd", 2), ("odd", 4), ("ternary", 2), ("asym", 4),
                         ("sym", 2)]:
        qw = quantize_rtn(w, bits, 32, scheme)
        p, _ = lut_linear(x, qw)
        assert np.array_equal(p, linear_int(x, qw)[0])
        y = requantize(p, 12345, 30)
        assert y.dtype == np.int8 and np.array_equal(y, requantize(linear_int(x, qw)[0], 12345, 30))


def test_widths_table():
    w = lut_widths(256, 4)
    assert (w.acc, w.xsum, w.corr, w.grp, w.prod) == (20, 16, 21, 20, 36)
    w1 = lut_widths(256, 1)
    assert w1.acc < w.acc and w1.grp < w.grp


@pytest.mark.parametrize("bad,msg", [
    (dict(bits=8, scheme="sym"), "weight bits"),
    (dict(bits=2, scheme="ternary", group_size=6), "multiple of g=4"),
])
def test_unsupported_weights_rejected(bad, msg):
    g = bad.get("group_size", 4)
    k = 12
    qw = QuantizedWeight(np.zeros((2, k), np.uint8), np.ones((2, k // g), np.float32), None,
                         bad["bits"], g, bad["scheme"])
    with pytest.raises(NumericsError, match=msg):
        lut_trace(np.zeros((1, k), np.int64), qw)


def test_bad_codes_zero_points_and_shapes_rejected():
    qw = QuantizedWeight(np.full((2, 8), 5, np.uint8), np.ones((2, 2), np.float32), None,
                         2, 4, "odd")
    with pytest.raises(NumericsError, match="codes outside"):
        lut_trace(np.zeros((1, 8), np.int64), qw)
    qa = QuantizedWeight(np.zeros((2, 8), np.uint8), np.ones((2, 2), np.float32),
                         np.full((2, 2), 9, np.int32), 3, 4, "asym")
    with pytest.raises(NumericsError, match="zero points outside"):
        odd_zero_point(qa)
    qt = QuantizedWeight(np.zeros((2, 8), np.uint8), np.ones((2, 2), np.float32), None,
                         3, 4, "ternary")
    with pytest.raises(NumericsError, match="ternary"):
        odd_zero_point(qt)
    qo = QuantizedWeight(np.zeros((2, 8), np.uint8), np.ones((2, 2), np.float32), None,
                         2, 4, "odd")
    with pytest.raises(NumericsError, match="activation length"):
        lut_trace(np.zeros((1, 12), np.int64), qo)
    with pytest.raises(NumericsError, match=r"\[M, K\]"):
        lut_trace(np.zeros(8, np.int64), qo)
    q8 = QuantizedWeight(np.zeros((2, 8), np.uint8), np.ones((2, 1), np.float32), None,
                         2, 8, "odd")
    with pytest.raises(NumericsError, match="exceeds the core's maximum 4"):
        lut_trace(np.zeros((1, 8), np.int64), q8, max_group=4)
    with pytest.raises(NumericsError, match="exceed the core's maximum 1"):
        lut_trace(np.zeros((1, 8), np.int64), q8, max_bits=1)
    with pytest.raises(NumericsError, match="max weight bits"):
        lut_widths(16, 5)
    with pytest.raises(NumericsError, match="max group size"):
        lut_widths(6)
