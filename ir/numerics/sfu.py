"""The special functions of the integer-exact model (the SFU's arithmetic).

RMSNorm, RoPE, causal softmax attention (``Q K^T`` and ``P V`` as int8 x int8
products, as the DSP chain computes them), SiLU * up (SwiGLU) and the residual
add, each defined in integer / fixed-point arithmetic with small tables, on the
formats of :mod:`.act` (``FX``: 48-bit, 16 fractional bits; ``QAct``: int8 with an
8-bit-mantissa scale per row).  Tables are generated once from float64 math on the
host (:func:`exp2_table`, :func:`sigmoid_table`, :func:`rope_table`,
:func:`rms_eps_table`); the table *values* are part of the contract, so a backend
takes them from these functions (or from an artifact), never recomputes them in
its own floating point.

Errors against float64 (measured by ``tests/test_numerics_sfu.py`` on random
inputs; relative to the output's scale): RMSNorm <= 2e-4, RoPE <= 1e-4, SwiGLU
<= 5e-4 of ``|gate * up|``, attention (int8 Q, K, V, probabilities) about 1.5% RMS and
<= 3% max of the output's maximum -- dominated by the int8 quantization of Q, K and V,
not by the tables or the 8-bit probability weights (14-bit ones measured no better).

RMSNorm (:func:`rmsnorm`): ``x`` FX ``[..., D]``, weight ``g = gq * 2^-Eg`` (int16
mantissas, :func:`encode_signed`).
    ``sh = max(0, bitlen(max|x|) - 15)``, ``xs = rshift_round(x, sh)`` (15 bits);
    ``ss = sum xs^2``; ``den = (ss << 16) // D + EPS[sh]`` with
    ``EPS[sh] = round(eps * 2^(2*16 - 2 sh + 16))``; ``rs = isqrt(den)`` (exact floor
    square root: ``rms(x) = rs * 2^(sh - 24)``); ``inv = 2^40 // max(rs, 2^10)``;
    ``y = shift_round(xs * gq * inv, 16 + Eg)`` (FX).

RoPE (:func:`rope`): half-split layout (HF Llama).  ``cos``/``sin`` tables in Q14
    (int, ``[-16384, 16384]``) per position and frequency (:func:`rope_table`);
    ``x`` saturated to 32 bits, ``y1 = rshift_round(x1 cos - x2 sin, 14)``,
    ``y2 = rshift_round(x2 cos + x1 sin, 14)``.

Attention (:func:`attention`): per head, causal, grouped KV heads.
    Q and K are quantized per token, head and group of ``QK_GROUP = 16`` channels, V
    per token and head (:func:`.act.quantize_dynamic`); the KV cache holds int8 K/V
    with their ``(m, e)``.  Scores: per group ``S_g = q8_g . k8_g`` (int32 on the DSP
    chain, dequantized once per group as the linears are) and
    ``sc = sum_g shift_round(S_g * m_q,g * m_k,g * C, R - e_q,g - e_k,g - 10)`` with
    ``scale = C * 2^-R`` (:func:`.common.encode_multiplier`): the score in units of
    ``2^-10``.  Softmax per query: ``d = max(sc) - sc >= 0``,
    ``z = rshift_round(d * LOG2E, 15)`` (``LOG2E = round(log2(e) * 2^15)``), ``n = z >> 10``,
    ``f = z & 1023``, ``p = EXP2[f] >> min(n, 31)`` (``EXP2[f] = round(2^(15 - f/1024))``,
    so ``p in [0, 32768]``), masked keys ``p = 0``, ``sum = sum p`` (``>= 2^15``).
    ``P V`` with the per-token V scales folded into the weights: per query and head,
    ``w_t = rshift_round(p_t * m_v,t, emax - e_v,t)`` (``emax = max e_v`` over the keys
    the query sees, ``t <= pos``), quantized per query row to int8 ``w8`` with ``(m_w, e_w)``;
    ``O = w8 . v8`` (int32); ``ls = max(0, bitlen(sum) - 16)``,
    ``inv = 2^32 // (sum >> ls)``; ``out = shift_round(O * m_w * inv, 32 + ls - e_w - emax
    - 16)`` (FX).

SwiGLU (:func:`swiglu`): ``g``, ``u`` FX saturated to 32 bits; sigmoid by a 1025-entry
    Q15 table over ``[-16, 16]`` in steps of ``1/32`` with linear interpolation
    (``SIG``, :func:`sigmoid_table`; 0 below, ``2^15`` above);
    ``silu = rshift_round(g * sig, 15)``, ``y = rshift_round(silu * u, 16)``.

Residual add (:func:`residual_add`): ``sat_fx(a + b)``.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .act import FX_FRAC, QAct, bitlen, quantize_dynamic, sat_fx, shift_round
from .common import NumericsError, as_int, encode_multiplier, rshift_round, sat

ROPE_FRAC = 14
SIG_FRAC = 15
SIG_RANGE = 16            # sigmoid table covers [-16, 16]
SIG_STEP_BITS = 5         # 32 entries per unit
EXP_FRAC = 15             # EXP2 entries: Q15
SCORE_FRAC = 10           # softmax scores in units of 2^-10
QK_GROUP = 16             # channels per scale of the int8 Q and K rows
LOG2E_Q15 = int(round(math.log2(math.e) * (1 << 15)))
RMS_SHIFT_BITS = 15       # RMSNorm squares 15-bit values
GAMMA_BITS = 16           # RMSNorm weight mantissas (signed)


# ---------------------------------------------------------------------- tables

@lru_cache(maxsize=None)
def exp2_table() -> np.ndarray:
    """``EXP2[f] = round(2^(15 - f / 1024))``, ``f in [0, 1024)`` (int64)."""
    f = np.arange(1 << SCORE_FRAC, dtype=np.float64)
    t = np.rint(np.exp2(EXP_FRAC - f / (1 << SCORE_FRAC))).astype(np.int64)
    t.setflags(write=False)
    return t


@lru_cache(maxsize=None)
def sigmoid_table() -> np.ndarray:
    """``SIG[i] = round(2^15 sigmoid(-16 + i / 32))``, ``i in [0, 1024]`` (int64)."""
    x = -SIG_RANGE + np.arange(2 * SIG_RANGE * (1 << SIG_STEP_BITS) + 1, dtype=np.float64) / (1 << SIG_STEP_BITS)
    t = np.rint((1 << SIG_FRAC) / (1.0 + np.exp(-x))).astype(np.int64)
    t.setflags(write=False)
    return t


def rope_table(inv_freq: np.ndarray, n_pos: int) -> tuple[np.ndarray, np.ndarray]:
    """Q14 ``(cos, sin)`` int64 ``[n_pos, hd/2]`` of the angles ``pos * inv_freq``."""
    ang = np.arange(n_pos, dtype=np.float64)[:, None] * np.asarray(inv_freq, np.float64)[None, :]
    one = float(1 << ROPE_FRAC)
    return np.rint(np.cos(ang) * one).astype(np.int64), np.rint(np.sin(ang) * one).astype(np.int64)


def rms_eps_table(eps: float) -> np.ndarray:
    """``EPS[sh] = round(eps * 2^(2 FX_FRAC - 2 sh + 16))`` for ``sh in [0, 33]``."""
    if not eps >= 0:
        raise NumericsError(f"RMSNorm eps must be >= 0, got {eps}")
    sh = np.arange(34)
    return np.array([int(round(eps * 2.0 ** (2 * FX_FRAC - 2 * int(s) + 16))) for s in sh], np.int64)


def encode_signed(x: np.ndarray, bits: int = GAMMA_BITS) -> tuple[np.ndarray, int]:
    """Float vector to signed mantissas sharing one exponent: ``x ~= mq * 2^-E`` with
    ``|mq| < 2^(bits-1)`` (host side; e.g. RMSNorm weights)."""
    x = np.asarray(x, np.float64)
    if not np.isfinite(x).all():
        raise NumericsError("cannot encode non-finite values")
    top = (1 << (bits - 1)) - 1
    amax = float(np.abs(x).max()) if x.size else 0.0
    if amax == 0.0:
        return np.zeros(x.shape, np.int64), 0
    e = int(np.floor(np.log2(top / amax)))
    while np.rint(amax * 2.0 ** e) > top:
        e -= 1
    return np.rint(x * 2.0 ** e).astype(np.int64), e


def isqrt(n) -> np.ndarray:
    """Exact floor square root of non-negative int64 values."""
    n = as_int(n)
    if n.size and n.min() < 0:
        raise NumericsError("isqrt of a negative number")
    r = np.floor(np.sqrt(n.astype(np.float64))).astype(np.int64)
    for _ in range(2):   # float64 sqrt is within one unit; settle it exactly
        r = np.where(r * r > n, r - 1, r)
        r = np.where((r + 1) * (r + 1) <= n, r + 1, r)
    return r


# ---------------------------------------------------------------------- RMSNorm

def rmsnorm(x, gq, e_g: int, eps_table: np.ndarray) -> np.ndarray:
    """Integer RMSNorm of FX ``x[..., D]`` with weight mantissas ``gq[D]`` (``g = gq 2^-e_g``)."""
    x = as_int(x)
    d = x.shape[-1]
    amax = np.abs(x).max(axis=-1, keepdims=True)
    sh = np.maximum(bitlen(amax, check=False) - RMS_SHIFT_BITS, 0)   # amax < 2^48
    xs = shift_round(x, sh)
    ss = (xs * xs).sum(axis=-1, keepdims=True)
    den = (ss << 16) // d + np.asarray(eps_table, np.int64)[sh]
    rs = np.maximum(isqrt(den), 1 << 10)
    inv = (np.int64(1) << 40) // rs
    return shift_round(xs * as_int(gq) * inv, 16 + e_g)


# ---------------------------------------------------------------------- RoPE

def rope(x, cos, sin, n_heads: int, head_dim: int) -> np.ndarray:
    """Integer RoPE of FX ``x[..., S, H*hd]`` with Q14 tables ``cos, sin [S, hd/2]``
    (the rows of this call's positions)."""
    x = sat(as_int(x), 32)
    lead = x.shape[:-1]
    xs = x.reshape(*lead, n_heads, head_dim)
    half = head_dim // 2
    x1, x2 = xs[..., :half], xs[..., half:]
    c = as_int(cos)[:, None, :]
    s = as_int(sin)[:, None, :]
    y1 = rshift_round(x1 * c - x2 * s, ROPE_FRAC)
    y2 = rshift_round(x2 * c + x1 * s, ROPE_FRAC)
    return sat_fx(np.concatenate([y1, y2], axis=-1)).reshape(x.shape)


# ---------------------------------------------------------------------- attention

class KVCache:
    """int8 K and V of one attention layer with their per-(token, head) scales.

    ``k``, ``v``: int8 ``[B, Hkv, T, hd]``; ``mk, ek``: int64 ``[B, Hkv, T, hd/g]`` (one
    scale per Q/K group); ``mv, ev``: int64 ``[B, Hkv, T]``.  Storage grows by doubling,
    so a decode step appends in place."""

    _FIELDS = ("k", "v", "mk", "ek", "mv", "ev")

    def __init__(self):
        self.length = 0
        self._buf: dict[str, np.ndarray] = {}

    def __getattr__(self, name):
        if name in KVCache._FIELDS:
            buf = self.__dict__["_buf"].get(name)
            return None if buf is None else buf[:, :, :self.length]
        raise AttributeError(name)

    def append(self, k: QAct, v: QAct) -> None:
        parts = {"k": k.q, "v": v.q, "mk": k.m, "ek": k.e, "mv": v.m, "ev": v.e}
        n = parts["k"].shape[2]
        need = self.length + n
        for name, val in parts.items():
            buf = self._buf.get(name)
            if buf is None or buf.shape[2] < need:
                cap = max(need, 2 * (0 if buf is None else buf.shape[2]), 64)
                new = np.empty(val.shape[:2] + (cap,) + val.shape[3:], val.dtype)
                if buf is not None:
                    new[:, :, :self.length] = buf[:, :, :self.length]
                self._buf[name] = buf = new
            buf[:, :, self.length:need] = val
        self.length = need


def _heads(x: np.ndarray, n: int, hd: int) -> np.ndarray:
    b, s = x.shape[:2]
    return x.reshape(b, s, n, hd).transpose(0, 2, 1, 3)        # [B, H, S, hd]


@lru_cache(maxsize=None)
def attention_scale_code(scale: float) -> tuple[int, int]:
    """``(C, R)`` with ``scale ~= C * 2^-R`` (15-bit ``C``), the score multiplier."""
    return encode_multiplier(float(scale))


def attention(q, k, v, cache: KVCache, *, n_heads: int, n_kv_heads: int, head_dim: int,
              scale: float) -> np.ndarray:
    """Integer causal attention of FX ``q[B,S,H*hd]``, ``k, v[B,S,Hkv*hd]`` (RoPE
    applied); appends this call's K/V to ``cache``.  Returns FX ``[B, S, H*hd]``."""
    q, k, v = as_int(q), as_int(k), as_int(v)
    b, s = q.shape[:2]
    gq = qk_group(head_dim)
    ng = head_dim // gq
    qh, kh = _heads(q, n_heads, head_dim), _heads(k, n_kv_heads, head_dim)
    # Q and K rows quantized in one call (rows are independent): [B, H + Hkv, S, ng, g]
    qka = quantize_dynamic(np.concatenate([qh, kh], axis=1).reshape(b, n_heads + n_kv_heads, s, ng, gq))
    qa = QAct(qka.q[:, :n_heads], qka.m[:, :n_heads], qka.e[:, :n_heads])
    ka = QAct(qka.q[:, n_heads:], qka.m[:, n_heads:], qka.e[:, n_heads:])
    cache.append(QAct(ka.q.reshape(kh.shape), ka.m, ka.e), quantize_dynamic(_heads(v, n_kv_heads, head_dim)))
    t = cache.length
    rep = n_heads // n_kv_heads
    # grouped-query attention without copying the cache: the `rep` query heads of a kv
    # head are rows of one matrix (row = head-in-group * S + query)
    qg = qa.q.reshape(b, n_kv_heads, rep * s, ng, gq)
    mq = qa.m.reshape(b, n_kv_heads, rep * s, ng)
    eq = qa.e.reshape(b, n_kv_heads, rep * s, ng)
    qpos = np.tile(np.arange(t - s, t), rep)                           # position of every row
    kq, vq = cache.k, cache.v
    mk, ek, mv, ev = cache.mk, cache.ek, cache.mv, cache.ev
    c, r = attention_scale_code(float(scale))
    out = np.empty((b, n_kv_heads, rep * s, head_dim), np.int64)
    # query rows in blocks (a row reads only the keys up to its own position, so blocking
    # changes nothing; it keeps the [B, Hkv, rows, T] temporaries small)
    for i0 in range(0, rep * s, _Q_BLOCK):
        i1 = min(rep * s, i0 + _Q_BLOCK)
        tk = int(qpos[i0:i1].max()) + 1                                # keys this block can see
        sl = (slice(None), slice(None), slice(i0, i1))
        out[sl] = _attention_rows(qg[sl], mq[sl], eq[sl], kq[:, :, :tk], mk[:, :, :tk], ek[:, :, :tk],
                                  vq[:, :, :tk], mv[..., :tk], ev[..., :tk], qpos[i0:i1], c, r)
    out = out.reshape(b, n_heads, s, head_dim)
    return out.transpose(0, 2, 1, 3).reshape(b, s, n_heads * head_dim)


_Q_BLOCK = 64


def qk_group(head_dim: int) -> int:
    """Channels per scale of the int8 Q and K rows (``QK_GROUP``, or the whole head if smaller)."""
    g = min(QK_GROUP, head_dim)
    if head_dim % g:
        raise NumericsError(f"head_dim {head_dim} is not a multiple of the Q/K scale group {g}")
    return g


def _attention_rows(q8, mq, eq, kq, mk, ek, vq, mv, ev, qpos: np.ndarray, c: int, r: int) -> np.ndarray:
    """Attention of query rows at positions ``qpos`` over keys ``0..T-1`` (one kv head's
    cache per leading index).

    ``q8 [B,Hkv,S,ng,g]`` with ``mq, eq [B,Hkv,S,ng]``; ``kq [B,Hkv,T,hd]`` with
    ``mk, ek [B,Hkv,T,ng]``; ``vq [B,Hkv,T,hd]`` with ``mv, ev [B,Hkv,T]``."""
    t = kq.shape[2]
    ng, g = q8.shape[3], q8.shape[4]
    # scores per Q/K group: int8 x int8 dot products (exact in float64), each scaled to
    # 2^-10 units, then added
    qg = q8.astype(np.float64).transpose(0, 1, 3, 2, 4)                          # [B,H,ng,S,g]
    kg = kq.reshape(*kq.shape[:3], ng, g).astype(np.float64).transpose(0, 1, 3, 4, 2)  # [B,H,ng,g,T]
    sg = np.matmul(qg, kg).astype(np.int64)                                      # [B,H,ng,S,T]
    mul = mq.transpose(0, 1, 3, 2)[..., :, None] * mk.transpose(0, 1, 3, 2)[..., None, :] * c
    ex = eq.transpose(0, 1, 3, 2)[..., :, None] + ek.transpose(0, 1, 3, 2)[..., None, :]
    sc = shift_round(sg * mul, r - ex - SCORE_FRAC).sum(axis=2)                 # [B,H,S,T]
    big = np.int64(1) << 62
    if qpos.min() >= t - 1:          # every row sees every key (decode): no mask to apply
        mx = sc.max(axis=-1, keepdims=True)
        d = np.minimum(mx - sc, np.int64(1) << 32)                     # exp(-2^22) is 0 anyway
        z = rshift_round(d * LOG2E_Q15, 15)
        p = exp2_table()[z & ((1 << SCORE_FRAC) - 1)] >> np.minimum(z >> SCORE_FRAC, 31)
        emax = ev.max(axis=-1)[..., None, None]
        wsh = emax - ev[..., None, :]
        emax = emax[..., 0]
    else:
        valid = np.arange(t)[None, :] <= qpos[:, None]                 # [S, T]
        mx = np.where(valid, sc, -big).max(axis=-1, keepdims=True)
        d = np.minimum(np.where(valid, mx - sc, 0), np.int64(1) << 32)
        z = rshift_round(d * LOG2E_Q15, 15)
        p = np.where(valid, exp2_table()[z & ((1 << SCORE_FRAC) - 1)] >> np.minimum(z >> SCORE_FRAC, 31), 0)
        # emax: over the keys the row sees
        emax = np.where(valid, ev[..., None, :], -big).max(axis=-1)    # [B,H,S]
        wsh = np.where(valid, emax[..., None] - ev[..., None, :], 0)
    total = p.sum(axis=-1)                                             # [B,H,S], >= 2^15
    # fold the per-token V scales into the weights, then one int8 quantization per row
    w = shift_round(p * mv[..., None, :], wsh)
    wa = quantize_dynamic(w, frac=0)                                   # e_w: exponent of w's units
    o = np.matmul(wa.q.astype(np.float64), vq.astype(np.float64)).astype(np.int64)  # [B,H,S,hd]
    ls = np.maximum(bitlen(total, check=False) - 16, 0)
    inv = (np.int64(1) << 32) // (total >> ls)
    sh = 32 + ls - wa.e - emax - FX_FRAC                               # [B,H,S]
    return shift_round(o * (wa.m * inv)[..., None], sh[..., None])


# ---------------------------------------------------------------------- SwiGLU

def sigmoid_q15(x) -> np.ndarray:
    """Q15 sigmoid of FX ``x`` by table lookup + linear interpolation."""
    x = as_int(x)
    step = FX_FRAC - SIG_STEP_BITS
    span = 2 * SIG_RANGE << FX_FRAC
    pos = x + (SIG_RANGE << FX_FRAC)
    inside = (pos >= 0) & (pos < span)
    pc = np.clip(pos, 0, span - 1)
    i = pc >> step
    frac = pc & ((1 << step) - 1)
    tab = sigmoid_table()
    lo, hi = tab[i], tab[i + 1]
    val = lo + rshift_round((hi - lo) * frac, step)
    return np.where(inside, val, np.where(pos < 0, 0, 1 << SIG_FRAC))


def silu(x) -> np.ndarray:
    """Integer SiLU ``x * sigmoid(x)`` of an FX tensor (saturated to 32 bits first)."""
    x = sat(as_int(x), 32)
    return rshift_round(x * sigmoid_q15(x), SIG_FRAC)


def mul_fx(a, b) -> np.ndarray:
    """Product of two FX tensors (each saturated to 32 bits first)."""
    return sat_fx(rshift_round(sat(as_int(a), 32) * sat(as_int(b), 32), FX_FRAC))


def swiglu(g, u) -> np.ndarray:
    """Integer ``silu(g) * u`` of FX tensors: ``mul_fx(silu(g), u)``."""
    return mul_fx(silu(g), u)


def residual_add(a, b) -> np.ndarray:
    """Residual add of two FX tensors (saturating)."""
    return sat_fx(as_int(a) + as_int(b))


__all__ = ["ROPE_FRAC", "SIG_FRAC", "SCORE_FRAC", "LOG2E_Q15", "exp2_table", "sigmoid_table",
           "rope_table", "rms_eps_table", "encode_signed", "isqrt", "rmsnorm", "rope", "KVCache",
           "attention", "attention_scale_code", "qk_group", "sigmoid_q15", "silu", "mul_fx", "swiglu",
           "residual_add"]
