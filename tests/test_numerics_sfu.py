"""The activation formats and special functions of the exact model (ir/numerics/act.py, sfu.py).

Two kinds of checks for each function:
* exactness: the vectorized numpy definition equals an independent scalar
  implementation in Python integers (arbitrary precision, no numpy), written
  from the module docs, on random inputs -- equality, no tolerance;
* accuracy: the error against a float64 reference, with the bound the module doc
  states.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from plait.ir.numerics import NumericsError
from plait.ir.numerics import act as A
from plait.ir.numerics import sfu as F

RNG = np.random.default_rng(7)


# ------------------------------------------------------------------ scalar oracles
def rsr(x: int, r: int) -> int:
    return x if r == 0 else (x + (1 << (r - 1))) >> r


def shift(x: int, s: int, bits: int = A.FX_BITS) -> int:
    y = rsr(x, s) if s > 0 else x << -s
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return min(max(y, lo), hi)


def sat(x: int, bits: int) -> int:
    return min(max(x, -(1 << (bits - 1))), (1 << (bits - 1)) - 1)


def scale_ref(a: int) -> tuple[int, int]:
    if a == 0:
        return 128, 0
    e = a.bit_length() - 15
    a_s = -(-a // (1 << e)) if e >= 0 else a << -e
    m = -(-a_s // 127)
    if m > 255:
        e += 1
        a_s = -(-a_s // 2)
        m = -(-a_s // 127)
    return m, e


def quant_ref(v: int, m: int, e: int) -> int:
    vs = rsr(v, e) if e > 0 else v << -e
    vs = sat(vs, 17)
    recip = (2 * (1 << 24) + m) // (2 * m)
    return sat(rsr(vs * recip, 24), 8)


# ------------------------------------------------------------------ act formats
def test_scale_and_quantize_equal_scalar_oracle():
    amax = np.concatenate([RNG.integers(0, 1 << 47, 300), RNG.integers(0, 300, 100),
                           [0, 1, 126, 127, 128, 254, 255, 16383, 16384, 32767, 32768, 32385, 32386]])
    m, e = A.scale_from_amax(amax)
    for a, mi, ei in zip(amax.tolist(), m.tolist(), e.tolist()):
        assert (mi, ei) == scale_ref(a), a
        assert 128 <= mi <= 255 and (a == 0 or 127 * mi * 2.0 ** ei >= a)
    v = RNG.integers(-(1 << 40), 1 << 40, (50, 64))
    qa = A.quantize_dynamic(v, frac=0)
    for r in range(50):
        mr, er = scale_ref(int(np.abs(v[r]).max()))
        assert (int(qa.m[r]), int(qa.e[r])) == (mr, er)
        assert qa.q[r].tolist() == [quant_ref(int(x), mr, er) for x in v[r]]


def test_quantize_dynamic_accuracy_and_range():
    x = RNG.standard_normal((64, 576)) * np.exp(RNG.uniform(-6, 8, (64, 1)))
    qa = A.quantize_dynamic(A.to_fx(x))
    assert qa.q.dtype == np.int8 and np.abs(qa.q).max(axis=1).min() >= 126   # full int8 range used
    step = qa.m * np.exp2(qa.e.astype(np.float64))
    err = np.abs(qa.real() - x).max(axis=1)
    assert (err <= 0.51 * step + 2.0 ** -17).all()   # half a step of the row's grid (+ FX rounding)


def test_static_scale_saturates_and_matches():
    m, e = A.static_scale(3.0)
    x = np.array([[-10.0, -3.0, -1.0, 0.0, 1.5, 3.0, 7.0]])
    qa = A.quantize_static(A.to_fx(x), m, e)
    assert qa.q[0, 0] == -128 and qa.q[0, -1] == 127 and qa.q[0, 3] == 0
    assert abs(qa.real()[0, 5] - 3.0) < 3.0 / 127
    with pytest.raises(NumericsError, match="finite"):
        A.static_scale(float("nan"))


def test_shift_round_equals_oracle_and_saturates():
    x = RNG.integers(-(1 << 50), 1 << 50, 400)
    s = RNG.integers(-20, 40, 400)
    got = A.shift_round(x, s)
    assert got.tolist() == [shift(int(a), int(b)) for a, b in zip(x, s)]
    assert A.shift_round(np.array([1 << 46]), np.array([-8]))[0] == (1 << 47) - 1



def test_shift_round_is_element_wise_at_large_shifts():
    """An element's result depends on its own (x, s) only: the fast path (every shift
    >= 0) and the mixed-sign path agree, also at shifts of 62 / 63 / 64 / 80, and
    shifts beyond SHIFT_MAX = 62 equal the shift by 62 (exact rounding for |x| < 2^61)."""
    x = np.concatenate([RNG.integers(-(1 << 61) + 1, 1 << 61, 300),
                        np.array([0, 1, -1, (1 << 60), -(1 << 60), (1 << 61) - 1, -(1 << 61) + 1])])
    for s_big in (61, 62, 63, 64, 70, 200):
        s = np.full(x.shape, s_big)
        alone = A.shift_round(x, s)                                # fast path
        mixed = A.shift_round(np.append(x, 5), np.append(s, -3))[:-1]   # one negative shift elsewhere
        assert alone.tolist() == mixed.tolist(), s_big
        per = [int(A.shift_round(np.array([a]), np.array([s_big]))[0]) for a in x[:20]]
        assert per == alone[:20].tolist()
        assert alone.tolist() == [shift(int(a), min(s_big, A.SHIFT_MAX)) for a in x]
    assert A.SHIFT_MAX == 62
    assert (A.shift_round(x, 63) == 0).all() and (A.shift_round(x, 62) == 0).all()

def test_linear_out_fx_matches_real_value():
    from plait.ir.numerics import linear_int, quantize_rtn
    w = RNG.standard_normal((48, 128)).astype(np.float32) * 0.05
    qw = quantize_rtn(w, 8, 64)
    x = RNG.standard_normal((5, 128)) * 3
    qa = A.quantize_dynamic(A.to_fx(x))
    p, e_w = linear_int(qa.q, qw)
    y = A.from_fx(A.linear_out_fx(p, e_w, qa))
    ref = qa.real() @ (qw.scales.repeat(64, 1) * (qw.codes.astype(np.int64) - 128)).T.astype(np.float64)
    assert np.abs(y - ref).max() < 1e-4 * np.abs(ref).max() + 2 ** -16


def test_bitlen():
    assert A.bitlen(np.array([0, 1, 2, 3, 4, (1 << 40) - 1, 1 << 40])).tolist() == [0, 1, 2, 2, 3, 40, 41]
    with pytest.raises(NumericsError, match="bitlen"):
        A.bitlen(np.array([-1]))


# ------------------------------------------------------------------ RMSNorm
def rmsnorm_ref(x: list[int], gq: list[int], e_g: int, eps: list[int]) -> list[int]:
    d = len(x)
    sh = max(0, max(abs(v) for v in x).bit_length() - 15)
    xs = [shift(v, sh) for v in x]
    den = (sum(v * v for v in xs) << 16) // d + eps[sh]
    rs = max(math.isqrt(den), 1 << 10)
    inv = (1 << 40) // rs
    return [shift(v * g * inv, 16 + e_g) for v, g in zip(xs, gq)]


def test_rmsnorm_exact_and_accurate():
    d = 96
    x = RNG.standard_normal((6, d)) * np.array([[1e-3], [0.05], [1.0], [30.0], [2e3], [2e4]])
    x[5, 3] = 22_000.0                                          # a SmolLM2-like massive activation
    g = RNG.uniform(-3, 9, d)
    gq, e_g = F.encode_signed(g)
    eps = F.rms_eps_table(1e-5)
    xf = A.to_fx(x)
    y = F.rmsnorm(xf, gq, e_g, eps)
    for r in range(6):
        assert y[r].tolist() == rmsnorm_ref(xf[r].tolist(), gq.tolist(), e_g, eps.tolist())
    xr = A.from_fx(xf)     # the FX input itself (its own resolution is the format's, not RMSNorm's)
    ref = xr / np.sqrt((xr ** 2).mean(-1, keepdims=True) + 1e-5) * g
    err = np.abs(A.from_fx(y) - ref).max(axis=1) / np.abs(ref).max(axis=1)
    assert err.max() < 2e-4, err


# ------------------------------------------------------------------ RoPE
def test_rope_exact_and_accurate():
    from plait.ir.ops import rope_inv_freq
    h, hd, s = 3, 16, 7
    inv = rope_inv_freq(hd, 10000.0, None)
    cos, sin = F.rope_table(inv, 64)
    pos = np.arange(20, 20 + s)
    x = RNG.standard_normal((1, s, h * hd)) * 5
    xf = A.to_fx(x)
    y = F.rope(xf, cos[pos], sin[pos], h, hd)
    half = hd // 2
    for t in range(s):
        for hh in range(h):
            row = xf[0, t, hh * hd:(hh + 1) * hd].tolist()
            c, sn = cos[pos[t]].tolist(), sin[pos[t]].tolist()
            want = [rsr(row[i] * c[i] - row[i + half] * sn[i], 14) for i in range(half)] + \
                   [rsr(row[i + half] * c[i] + row[i] * sn[i], 14) for i in range(half)]
            assert y[0, t, hh * hd:(hh + 1) * hd].tolist() == want
    ang = pos[:, None] * inv[None, :]
    xs = x.reshape(1, s, h, hd)
    c, sn = np.cos(ang)[None, :, None], np.sin(ang)[None, :, None]
    ref = np.concatenate([xs[..., :half] * c - xs[..., half:] * sn, xs[..., half:] * c + xs[..., :half] * sn], -1)
    assert np.abs(A.from_fx(y).reshape(ref.shape) - ref).max() < 1e-4 * np.abs(ref).max() + 1e-4


# ------------------------------------------------------------------ SwiGLU
def sig_ref(x: int) -> int:
    tab = F.sigmoid_table().tolist()
    pos = x + (16 << 16)
    if pos < 0:
        return 0
    if pos >= (32 << 16):
        return 1 << 15
    i, f = pos >> 11, pos & 2047
    return tab[i] + rsr((tab[i + 1] - tab[i]) * f, 11)


def test_swiglu_exact_and_accurate():
    g = np.concatenate([RNG.standard_normal(300) * 4, [-40.0, -16.0, -15.99, 0.0, 15.99, 16.0, 40.0]])
    u = RNG.standard_normal(g.size) * 3
    gf, uf = A.to_fx(g), A.to_fx(u)
    y = F.swiglu(gf, uf)
    for a, b, got in zip(gf.tolist(), uf.tolist(), y.tolist()):
        silu = rsr(sat(a, 32) * sig_ref(sat(a, 32)), 15)
        assert got == sat(rsr(silu * sat(b, 32), 16), 48)
    ref = g / (1 + np.exp(-g)) * u
    assert np.abs(A.from_fx(y) - ref).max() < 5e-4 * np.abs(ref).max()
    assert np.abs(A.from_fx(F.sigmoid_q15(gf)) * 2 ** 16 / 2 ** 15 - 1 / (1 + np.exp(-g))).max() < 1.5 * 2 ** -15   # Q15 rounding + interpolation


def test_residual_add_saturates():
    big = (1 << 47) - 1
    assert F.residual_add(np.array([big, 5]), np.array([10, -7])).tolist() == [big, -2]


# ------------------------------------------------------------------ attention
def attention_ref(q, k, v, n_heads, n_kv, hd, scale):
    """Scalar oracle of sfu.attention for one batch, no cache: q[S][H*hd] ... (Python ints)."""
    s = len(q)
    c, r = F.attention_scale_code(scale)

    def quant_row(row):
        m, e = scale_ref(max(abs(x) for x in row))
        return [quant_ref(x, m, e) for x in row], m, e - 16

    rep = n_heads // n_kv
    gs = F.qk_group(hd)
    exp2 = F.exp2_table().tolist()
    out = [[0] * (n_heads * hd) for _ in range(s)]

    def quant_groups(row):       # Q and K: one scale per group of gs channels
        return [quant_row(row[g0:g0 + gs]) for g0 in range(0, hd, gs)]
    kq = [[quant_groups(k[t][j * hd:(j + 1) * hd]) for j in range(n_kv)] for t in range(s)]
    vq = [[quant_row(v[t][j * hd:(j + 1) * hd]) for j in range(n_kv)] for t in range(s)]
    for h in range(n_heads):
        j = h // rep
        for i in range(s):
            emax = max(vq[t][j][2] for t in range(i + 1))
            qgs = quant_groups(q[i][h * hd:(h + 1) * hd])
            sc = []
            for t in range(i + 1):
                tot = 0
                for (q8, mq, eq), (k8, mk, ek) in zip(qgs, kq[t][j]):
                    dot = sum(a * b for a, b in zip(q8, k8))
                    tot += shift(dot * mq * mk * c, r - eq - ek - 10)
                sc.append(tot)
            mx = max(sc)
            p = []
            for x in sc:
                d = min(mx - x, 1 << 32)
                z = rsr(d * F.LOG2E_Q15, 15)
                p.append(exp2[z & 1023] >> min(z >> 10, 31))
            total = sum(p)
            w = [shift(p[t] * vq[t][j][1], emax - vq[t][j][2]) for t in range(i + 1)]
            mw, ew = scale_ref(max(abs(x) for x in w))
            w8 = [quant_ref(x, mw, ew) for x in w]
            ls = max(0, total.bit_length() - 16)
            inv = (1 << 32) // (total >> ls)
            for dd in range(hd):
                o = sum(w8[t] * vq[t][j][0][dd] for t in range(i + 1))
                out[i][h * hd + dd] = shift(o * mw * inv, 32 + ls - ew - emax - 16)
    return out


def _float_attention(q, k, v, h, hkv, hd, scale):
    s = q.shape[0]
    qh = q.reshape(s, h, hd).transpose(1, 0, 2)
    kh = np.repeat(k.reshape(s, hkv, hd).transpose(1, 0, 2), h // hkv, 0)
    vh = np.repeat(v.reshape(s, hkv, hd).transpose(1, 0, 2), h // hkv, 0)
    sc = qh @ kh.transpose(0, 2, 1) * scale
    sc = np.where(np.tril(np.ones((s, s), bool)), sc, -np.inf)
    p = np.exp(sc - sc.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return (p @ vh).transpose(1, 0, 2).reshape(s, h * hd)


def test_attention_exact_and_accurate():
    h, hkv, hd, s = 4, 2, 32, 9            # two Q/K scale groups per head
    q = RNG.standard_normal((s, h * hd)) * 2
    k = RNG.standard_normal((s, hkv * hd)) * 2
    v = RNG.standard_normal((s, hkv * hd)) * np.exp(RNG.uniform(-2, 2, (s, 1)))
    qf, kf, vf = A.to_fx(q), A.to_fx(k), A.to_fx(v)
    cache = F.KVCache()
    y = F.attention(qf[None], kf[None], vf[None], cache, n_heads=h, n_kv_heads=hkv, head_dim=hd, scale=0.25)
    assert cache.length == s and cache.k.dtype == np.int8
    assert y[0].tolist() == attention_ref(qf.tolist(), kf.tolist(), vf.tolist(), h, hkv, hd, 0.25)
    ref = _float_attention(q, k, v, h, hkv, hd, 0.25)
    rel = np.abs(A.from_fx(y[0]) - ref).max() / np.abs(ref).max()
    assert rel < 0.03, rel


def test_attention_decode_equals_prefill():
    """Prefill of S tokens == prefill of S-2 then two single-token decode steps (the cache);
    V rows of very different magnitudes (later ones much larger) and a prefill longer
    than one query block."""
    h, hkv, hd, s = 2, 1, 8, 70
    q, k = (A.to_fx(RNG.standard_normal((1, s, n * hd))) for n in (h, hkv))
    v = A.to_fx(RNG.standard_normal((1, s, hkv * hd)) * np.exp2(np.arange(s) % 23)[None, :, None] / 64)
    kw = dict(n_heads=h, n_kv_heads=hkv, head_dim=hd, scale=hd ** -0.5)
    full = F.attention(q, k, v, F.KVCache(), **kw)
    c = F.KVCache()
    parts = [F.attention(q[:, :s - 2], k[:, :s - 2], v[:, :s - 2], c, **kw)]
    for t in (s - 2, s - 1):
        parts.append(F.attention(q[:, t:t + 1], k[:, t:t + 1], v[:, t:t + 1], c, **kw))
    assert np.array_equal(np.concatenate(parts, axis=1), full)


def test_tables_are_the_documented_values():
    e = F.exp2_table()
    assert e[0] == 1 << 15 and e.size == 1024 and e[512] == round(2 ** 14.5)
    sg = F.sigmoid_table()
    assert sg.size == 1025 and sg[512] == 1 << 14 and sg[0] == 0 and sg[-1] == 1 << 15
    assert F.rms_eps_table(1e-5)[0] == round(1e-5 * 2 ** 48)
    assert F.isqrt(np.array([0, 1, 15, 16, (1 << 62) - 1])).tolist() == [0, 1, 3, 4, math.isqrt((1 << 62) - 1)]
