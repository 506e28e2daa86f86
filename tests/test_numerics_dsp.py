"""Golden model of the sparse DSP chain (plait.ir.numerics.dsp): N:M format,
pruning, widening, the packed lanes and the proof-by-test that the packed chain
equals the plain integer dot product (group_accumulate) in every mode."""
from __future__ import annotations

import numpy as np
import pytest

from plait.ir.numerics import (NumericsError, QuantizedWeight, dequant_groups,
                               encode_scales, group_accumulate, quantize_rtn, signed_weight)
from plait.ir.numerics.dsp import (DSP_WEIGHT_BITS, MODES, chain_acc_bits, chain_beat,
                                   check_lane_geometry, compress_nm, decompress_nm,
                                   dsp_cascade, dsp_pack, dsp_weight_codes,
                                   encode_weight_codes, lane_bias, lane_bits, lane_split,
                                   lane_window, overflow_adjust,
                                   parse_mode, prune_nm, run_chain, schedule_chain,
                                   widen_code)

RNG = np.random.default_rng(1234)


def _sparse(q, mode, rng=RNG):
    md = parse_mode(mode)
    if md.dense:
        return q
    return q * prune_nm(rng.standard_normal(q.shape), md.n, md.m)


# ------------------------------------------------------------------ format
def test_prune_nm_keeps_largest_and_breaks_ties_low():
    w = np.array([[0.1, -3.0, 2.0, 0.5, 1.0, 1.0, 1.0, 1.0]])
    assert prune_nm(w, 2, 4).tolist() == [[False, True, True, False, True, True, False, False]]
    m = prune_nm(RNG.standard_normal((8, 64)), 4, 16)
    assert (m.reshape(8, 4, 16).sum(axis=2) == 4).all()


@pytest.mark.parametrize("mode", ["2:4", "2:16", "4:16", "8:16"])
def test_compress_roundtrip(mode):
    md = parse_mode(mode)
    q = _sparse(RNG.integers(-128, 128, (6, 64)), mode)
    q[0, :md.m] = 0                      # an all-zero block (padded slots)
    vals, idx = compress_nm(q, md.n, md.m)
    assert vals.shape == idx.shape == (6, 64 * md.n // md.m) and idx.dtype == np.uint8
    assert idx.max() < md.m
    assert (np.diff(idx.reshape(6, -1, md.n), axis=2) > 0).all()
    assert np.array_equal(decompress_nm(vals, idx, md.n, md.m), q)


def test_compress_errors():
    q = np.zeros((2, 8), np.int64)
    q[1, 4:7] = 5
    with pytest.raises(NumericsError, match=r"row 1 block 1 .* 3 nonzeros, more than N=2"):
        compress_nm(q, 2, 4)
    with pytest.raises(NumericsError, match="not a multiple of the sparsity block"):
        compress_nm(np.zeros((2, 6), np.int64), 2, 4)
    with pytest.raises(NumericsError, match="power of two"):
        prune_nm(np.zeros((2, 6)), 2, 3)
    with pytest.raises(NumericsError, match="not strictly increasing"):
        decompress_nm(np.ones((1, 2), np.int64), np.array([[1, 1]]), 2, 4)
    with pytest.raises(NumericsError, match="out of range"):
        decompress_nm(np.ones((1, 2), np.int64), np.array([[1, 4]]), 2, 4)
    with pytest.raises(NumericsError, match="unsupported sparsity mode"):
        parse_mode("3:8")


# ------------------------------------------------------------------ widening
@pytest.mark.parametrize("bits", DSP_WEIGHT_BITS)
def test_widening_every_code(bits):
    u = np.arange(1 << bits)
    q = widen_code(u, bits)
    assert q.min() == -(1 << (bits - 1)) and q.max() == (1 << (bits - 1)) - 1
    assert np.array_equal(encode_weight_codes(q, bits), u)
    with pytest.raises(NumericsError, match="out of range"):
        widen_code([1 << bits], bits)


@pytest.mark.parametrize("bits, scheme", [(2, "sym"), (3, "sym"), (4, "sym"), (8, "sym"),
                                          (4, "asym"), (2, "ternary"), (1, "odd"), (3, "odd")])
def test_dsp_weight_codes_match_signed_weight(bits, scheme):
    qw = quantize_rtn(RNG.standard_normal((8, 64)).astype(np.float32), bits, 32, scheme)
    codes, b = dsp_weight_codes(qw)
    assert b in DSP_WEIGHT_BITS
    assert np.array_equal(widen_code(codes, b), signed_weight(qw))


def test_dsp_weight_codes_refuses_wide_asym():
    codes = np.zeros((1, 4), np.uint8)
    codes[0, 0] = 255
    qw = QuantizedWeight(codes, np.ones((1, 1), np.float32), np.array([[0]], np.int32), 8, 4,
                         "asym")
    with pytest.raises(NumericsError, match="outside int8"):
        dsp_weight_codes(qw)
    with pytest.raises(NumericsError, match="weight width must be one of"):
        widen_code([0], 5)


# ------------------------------------------------------------------ packing
def test_pack_and_cascade_lanes():
    a_hi, a_lo = RNG.integers(-128, 128, (2, 1000, 2))
    w = RNG.integers(-128, 128, (1000, 2))
    assert np.array_equal(dsp_pack(a_hi, a_lo), a_hi * 2 ** 18 + a_lo)
    p = dsp_cascade(a_hi, a_lo, w)
    s_hi, s_lo = overflow_adjust(p, 2)
    assert np.array_equal(s_hi, (w * a_hi).sum(-1)) and np.array_equal(s_lo, (w * a_lo).sum(-1))


@pytest.mark.parametrize("cascade, shift", [(2, 16), (7, 18), (8, 18)])
def test_overflow_adjust_window_at_the_limit(cascade, shift):
    """The extremes of the lower lane: -128*-128 in every slice (c * 2^14, which wraps
    the symmetric window when c * 2^14 = 2^(S-1)) and -128*127 in every slice."""
    for a, w in ((-128, -128), (-128, 127), (127, -128), (0, 0)):
        a_hi = np.full((1, cascade), a)
        a_lo = np.full((1, cascade), a)
        wv = np.full((1, cascade), w)
        p = dsp_cascade(a_hi, a_lo, wv, shift)
        s_hi, s_lo = overflow_adjust(p, cascade, shift)
        assert int(s_lo[0]) == int(s_hi[0]) == cascade * a * w
        # as built: bit fields of P + RND; the lower lane fits lane_bits once offset
        f_hi, f_lo = lane_split(p, cascade, shift)
        assert int(f_hi[0]) == int(s_hi[0])
        assert int(f_lo[0]) == int(s_lo[0]) - lane_bias(cascade, shift)[1]
        half = 1 << (lane_bits(cascade, shift) - 1)
        assert -half <= int(f_lo[0]) < half and -half <= int(f_hi[0]) < half
    if cascade * 2 ** 14 == 2 ** (shift - 1):
        # the naive two's-complement decode of the lower lane is wrong here
        p = dsp_cascade(np.full((1, cascade), -128), np.full((1, cascade), -128),
                        np.full((1, cascade), -128), shift)
        lo = int(p[0]) & ((1 << shift) - 1)
        naive = lo - (1 << shift) if lo >> (shift - 1) else lo
        assert naive != cascade * 2 ** 14


def test_lane_geometry_errors():
    # the symmetric window where it holds every sum, else the one centred on them
    assert lane_window(2, 18) == (-2 ** 17, 2 ** 17 - 1) and lane_bias(2, 18) == (2 ** 17, 0)
    assert lane_window(8, 18) == (512 - 2 ** 17, 512 + 2 ** 17 - 1)
    assert lane_bias(8, 18) == (2 ** 17 - 512, 512) and lane_bias(2, 16) == (2 ** 15 - 128, 128)
    assert (lane_bits(1), lane_bits(2), lane_bits(8), lane_bits(2, 16)) == (16, 17, 19, 17)
    with pytest.raises(NumericsError, match="use cascade <= 8"):
        check_lane_geometry(9, 18)
    with pytest.raises(NumericsError, match="use cascade <= 2"):
        check_lane_geometry(3, 16)
    with pytest.raises(NumericsError, match="lane_shift must be in"):
        check_lane_geometry(2, 19)
    with pytest.raises(NumericsError, match="overflows 8 bits"):
        dsp_pack([128], [0])


def test_chain_beat_shapes_and_errors():
    act = RNG.integers(-128, 128, (2, 16))
    out = chain_beat(act, RNG.integers(-128, 128, 16), RNG.integers(0, 4, 16), "2:4")
    assert out.shape == (2, 8)
    with pytest.raises(NumericsError, match="sparse index out of range"):
        chain_beat(act, np.zeros(16, np.int64), np.full(16, 5), "2:4")
    with pytest.raises(NumericsError, match="not a multiple of the cascade"):
        chain_beat(act, np.zeros(16, np.int64), np.zeros(16, np.int64), "2:16", cascade=4)


# ------------------------------------------------------------------ the proof by test
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("cascade, shift", [(2, 18), (2, 16)])
def test_packed_chain_equals_group_accumulate(mode, cascade, shift):
    md = parse_mode(mode)
    for bits in DSP_WEIGHT_BITS:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        q = _sparse(RNG.integers(lo, hi + 1, (21, 256)), mode)
        x = RNG.integers(-128, 128, (2, 256))
        got = run_chain(x, q, mode, 64, cascade=cascade, lane_shift=shift, bits=bits)
        assert np.array_equal(got, group_accumulate(q, x, 64))
    # extremes: -128 x -128 in every lane and slot, and -128 x 127
    x = np.full((2, 128), -128)
    for wv in (-128, 127):
        q = _sparse(np.full((md.n * 2, 128), wv), mode)
        got = run_chain(x, q, mode, 32, cascade=cascade, lane_shift=shift)
        assert np.array_equal(got, group_accumulate(q, x, 32))


def test_cascade_8_extreme_dense():
    x = np.full((2, 256), -128)
    q = np.full((3, 256), -128)
    got = run_chain(x, q, "dense", 256, cascade=8)
    assert (got == 256 * 16384).all()


@pytest.mark.parametrize("mode", ["dense", "2:16"])
def test_maximum_accumulation_length(mode):
    """K = 65536 in one group with -128 x -128: 2^30 (dense) fits the 32-bit accumulator."""
    md = parse_mode(mode)
    k = 65536
    x = np.full((2, k), -128)
    q = _sparse(np.full((16 // md.n, k), -128), mode)   # one tile
    s = schedule_chain(x, q, mode, k)
    assert s.beats == k // md.m
    got = run_chain(x, q, mode, k)
    assert np.array_equal(got, group_accumulate(q, x, k))
    assert int(got.max()) == 16384 * k * md.n // md.m
    assert chain_acc_bits() == 32
    # a narrower accumulator really wraps (the contract needs 32 bits)
    if md.dense:
        assert not np.array_equal(run_chain(x, q, mode, k, acc_w=31), got)


def test_schedule_errors_and_dequant_feed():
    x = RNG.integers(-128, 128, (2, 64))
    q = RNG.integers(-128, 128, (4, 64))
    with pytest.raises(NumericsError, match="more than N=2"):
        schedule_chain(x, q, "2:4", 16)
    with pytest.raises(NumericsError, match="group size 6 must divide"):
        schedule_chain(x, q, "dense", 6)
    with pytest.raises(NumericsError, match="two packed lanes"):
        schedule_chain(x[:1], q, "dense", 16)
    with pytest.raises(NumericsError, match="does not fit 4 bits|overflows 4 bits"):
        schedule_chain(x, q, "dense", 16, bits=4)
    # the engine's output feeds dequant_groups exactly like group_accumulate does
    qw = quantize_rtn(RNG.standard_normal((4, 64)).astype(np.float32), 4, 16)
    codes, b = dsp_weight_codes(qw)
    acc = run_chain(x, widen_code(codes, b), "dense", 16, bits=b)
    mant, _ = encode_scales(qw.scales)
    assert np.array_equal(dequant_groups(acc, mant),
                          dequant_groups(group_accumulate(signed_weight(qw), x, 16), mant))


# ------------------------------------------------------------------ decode lane packing
@pytest.mark.parametrize("n_dsp", [16, 32, 64])
@pytest.mark.parametrize("cascade", [1, 2, 4, 8])
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_pair_mode_equals_group_accumulate(n_dsp, cascade, bits):
    """Two weight rows per slice sharing one activation: the packed chain equals the
    plain dot products of the one token row, extremes included (-128 x -2^(b-1) in
    every slice of a cascade of 8 fills the lower lane's window)."""
    from plait.ir.numerics import signed_range
    lo, hi = signed_range(bits)
    rows = 3 * 2 * n_dsp // 16 - 1                    # a padded last tile
    for x, q in [(RNG.integers(-128, 128, (1, 128)), RNG.integers(lo, hi + 1, (rows, 128))),
                 (np.full((1, 128), -128), np.full((rows, 128), lo)),
                 (np.full((1, 128), -128), RNG.choice([lo, hi], (rows, 128)))]:
        s = schedule_chain(x, q, "pair", 32, n_dsp=n_dsp, bits=bits)
        assert s.rows_per_tile == 2 * n_dsp // 16 and s.lane_rows == n_dsp // 16
        assert s.beats == 3 * 128 // 16                     # half the dense tiles
        got = run_chain(x, q, "pair", 32, n_dsp=n_dsp, cascade=cascade, bits=bits)
        assert np.array_equal(got, group_accumulate(q, x, 32))


def test_pair_mode_layout_and_errors():
    """The weight slot holds the lane-0 row's code in bits [0, b) and the lane-1 row's
    in [4, 4 + b); output lane l row r is tile row l*R + r; 8-bit weights and two
    token rows are refused; the beat layout inverts."""
    from plait.ir.numerics.dsp import (PAIR_CODE, chain_weight_beats, chain_weight_from_beats,
                                       split_pair_codes)
    md = parse_mode("pair")
    assert (md.code, md.n, md.m, md.pair, md.dense, md.implicit_idx) == (PAIR_CODE, 16, 16, True,
                                                                         False, True)
    q = np.zeros((2, 16), np.int64)
    q[0, 3], q[1, 3] = -8, 7                          # rows 0 (lane 0) and 1 (lane 1)
    codes, idx = chain_weight_beats(q, "pair", n_dsp=16, bits=4)
    assert codes.shape == (1, 16) and idx[0].tolist() == list(range(16))
    assert codes[0, 3] == (0 | (15 << 4)) and codes[0, 0] == (8 | (8 << 4))
    assert split_pair_codes(codes, 4)[:, 0, 3].tolist() == [-8, 7]
    assert np.array_equal(chain_weight_from_beats(codes, None, "pair", 2, 16, bits=4), q)
    x = np.arange(16).reshape(1, 16)
    w = split_pair_codes(codes[0], 4)
    act = np.zeros((2, 16), np.int64)
    act[0] = x
    act[1] = 99 % 128                                 # lane 1 is ignored in pair mode
    assert chain_beat(act, w, idx[0], "pair", n_dsp=16, cascade=2).tolist() == [[-24], [21]]
    with pytest.raises(NumericsError, match="at most 4 bits"):
        schedule_chain(x, q, "pair", 16, bits=8)
    with pytest.raises(NumericsError, match=r"\[1, K\]"):
        schedule_chain(np.zeros((2, 16), np.int64), q, "pair", 16, bits=4)
    with pytest.raises(NumericsError, match="w .* must be"):
        chain_beat(act, w[0], idx[0], "pair", n_dsp=16)
    with pytest.raises(NumericsError, match="out of range"):
        split_pair_codes(np.array([4 << 4]), 2)       # upper code 4 in a 2-bit slot
