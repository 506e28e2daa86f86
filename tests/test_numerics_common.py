"""The shared numeric contract: formats, rounding, saturation, per-group dequant."""
import numpy as np
import pytest

from plait.ir import numerics as nm


def test_rshift_round_is_round_half_up():
    x = np.array([5, 6, 7, -5, -6, -7, 2, -2, 3, -3])
    # x / 4: 1.25 1.5 1.75 -1.25 -1.5 -1.75 .5 -.5 .75 -.75
    assert nm.rshift_round(x, 2).tolist() == [1, 2, 2, -1, -1, -2, 1, 0, 1, -1]
    assert nm.rshift_round(x, 0).tolist() == x.tolist()
    with pytest.raises(nm.NumericsError):
        nm.rshift_round(x, -1)
    with pytest.raises(nm.NumericsError, match="integer array expected"):
        nm.rshift_round(np.array([1.5]), 1)


def test_sat_and_wrap():
    assert nm.sat8([-300, -129, -128, 0, 127, 128, 999]).tolist() == [-128, -128, -128, 0, 127, 127, 127]
    assert nm.wrap([128, -129, 255, 256], 8).tolist() == [-128, 127, -1, 0]
    with pytest.raises(nm.NumericsError, match="overflows 8 bits"):
        nm.check_fits([128], 8, "x")


@pytest.mark.parametrize("bits,scheme", [(8, "sym"), (4, "sym"), (3, "sym"), (2, "sym"), (4, "asym"),
                                         (3, "asym"), (2, "asym"), (1, "odd"), (2, "odd"), (4, "odd"),
                                         (2, "ternary")])
def test_quantize_rtn_codes_and_error(bits, scheme):
    rng = np.random.default_rng(bits)
    w = rng.standard_normal((16, 64)).astype(np.float32)
    qw = nm.quantize_rtn(w, bits, 32, scheme)
    assert qw.codes.dtype == np.uint8 and qw.codes.max() < (1 << qw.bits)
    q = nm.signed_weight(qw)
    lo, hi = {"sym": nm.signed_range(bits), "odd": (1 - (1 << bits), (1 << bits) - 1),
              "ternary": (-1, 1), "asym": (-(1 << bits), 1 << bits)}[scheme]
    assert q.min() >= lo and q.max() <= hi
    if scheme == "odd":
        assert (q % 2 != 0).all()
    err = np.abs(nm.dequantize(qw) - w)
    s = np.repeat(qw.scales, 32, axis=1)
    if scheme in ("sym", "odd"):   # within the clipping range RTN is off by at most half a step
        step = s * (2 if scheme == "odd" else 1)
        assert (err <= step / 2 + 1e-6).all()
    if scheme == "asym":
        assert (err <= s / 2 + 1e-5).all()


def test_quantize_errors():
    with pytest.raises(nm.NumericsError, match="multiple of group size"):
        nm.quantize_rtn(np.zeros((4, 10)), 4, 4)
    with pytest.raises(nm.NumericsError, match="scheme"):
        nm.quantize_rtn(np.zeros((4, 8)), 4, 4, "weird")
    with pytest.raises(nm.NumericsError, match="1 bit"):
        nm.quantize_rtn(np.zeros((4, 8)), 1, 4, "sym")


def test_encode_scales_and_multiplier():
    s = np.array([[0.013, 0.002], [0.0001, 0.05]])
    m, e = nm.encode_scales(s)
    assert m.max() < 1 << 16 and m.max() >= 1 << 15   # uses the full mantissa
    assert np.allclose(m * 2.0 ** -e, s, rtol=2 ** -10, atol=2.0 ** -e)
    M, R = nm.encode_multiplier(0.00123)
    assert M < 1 << 15 and abs(M * 2.0 ** -R - 0.00123) / 0.00123 < 2 ** -13
    with pytest.raises(nm.NumericsError):
        nm.encode_multiplier(-1.0)


def test_group_accumulate_extremes_and_dequant_fits_48_bits():
    k, g = 4096, 128
    q = np.full((2, k), -128)
    x = np.full((k,), -128, np.int8)
    acc = nm.group_accumulate(q, x, g)
    assert (acc == 128 * 128 * g).all()
    p = nm.dequant_groups(acc, np.full((2, k // g), (1 << 16) - 1))
    assert (p == 128 * 128 * k * ((1 << 16) - 1)).all()
    with pytest.raises(nm.NumericsError, match="overflows 48 bits"):
        nm.dequant_groups(np.full((1, 2), 1 << 40), np.full((1, 2), 1 << 15))


def test_linear_int_matches_float_reference_closely():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((32, 256)).astype(np.float32) * 0.05
    xf = rng.standard_normal((3, 256)).astype(np.float32)
    s_a = np.abs(xf).max() / 127
    x = nm.quantize_act(xf, s_a)
    qw = nm.quantize_rtn(w, 8, 64, "sym")
    p, e = nm.linear_int(x, qw)
    y = s_a * 2.0 ** -e * p
    ref = (x.astype(np.float64) * s_a) @ nm.dequantize(qw).T.astype(np.float64)
    assert np.abs(y - ref).max() < 1e-3 * np.abs(ref).max()
    # requantization is exact integer arithmetic on P
    M, R = nm.encode_multiplier(s_a * 2.0 ** -e / (np.abs(ref).max() / 127))
    y8 = nm.requantize(p, M, R)
    assert y8.dtype == np.int8
    assert np.array_equal(y8, nm.sat8(nm.rshift_round(p * M, R)))
