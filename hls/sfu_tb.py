"""C simulation of the special functions and requantization (``hls/src/plait_sfu.h``,
``plait_act.h``) against :mod:`plait.ir.numerics`.

:class:`SfuVectors` collects cases: each ``add_*`` method takes the inputs, computes the
expected integers with the numpy definition, and stores both.  :func:`run_sfu_csim`
writes them (the ``plait-vectors 1`` format of ``hls/src/tb_common.h``), builds
``tb_sfu.cpp`` with g++ against a ``plait_tables.h`` generated for the given model
(:mod:`plait.hls.tables`; the ``"sfu"`` build of :func:`plait.hls.gen.generate`,
compiled once per header by :func:`plait.hls.csim.compile`) and runs it; the
:class:`~plait.hls.csim.CsimResult` names, for a failing case, the function (case
``<function>/<n>``), the array, the index and both integers.

    v = SfuVectors()
    v.add_rmsnorm(x_fx, gq, e_g, rms_eps_table(1e-5))
    v.add_attention([(q, k, v)], n_heads=9, n_kv_heads=3, head_dim=64, scale=0.125)
    run_sfu_csim(v).ok         # CsimResult: cases, values, mismatches
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from plait.ir.numerics import act as A
from plait.ir.numerics import sfu as F
from plait.ir.numerics.common import as_int, rshift_round

from .csim import CsimResult
from .tables import ModelTables, const_tables, model_tables, smollm2_tables


def _flat(a) -> np.ndarray:
    return as_int(np.asarray(a)).reshape(-1)


class SfuVectors:
    """Golden vectors for ``tb_sfu``: inputs plus the numpy-expected outputs."""

    def __init__(self):
        self.cases: list[tuple[str, dict, dict]] = []
        self.values = 0

    def _add(self, fn: str, ints: dict, arrs: dict) -> "SfuVectors":
        name = f"{fn}/{len(self.cases)}"
        arrs = {k: _flat(v) for k, v in arrs.items()}
        self.values += sum(v.size for k, v in arrs.items() if k.startswith("exp_"))
        self.cases.append((name, {k: int(v) for k, v in ints.items()}, arrs))
        return self

    # ------------------------------------------------------------ act
    def add_shift_round(self, x, s) -> "SfuVectors":
        x, s = np.broadcast_arrays(as_int(x), as_int(s))
        return self._add("shift_round", {}, {"x": x, "s": s, "exp_y": A.shift_round(x, s)})

    def add_rshift_round(self, x, r: int) -> "SfuVectors":
        return self._add("rshift_round", {"r": r}, {"x": x, "exp_y": rshift_round(as_int(x), int(r))})

    def add_bitlen(self, x) -> "SfuVectors":
        return self._add("bitlen", {}, {"x": x, "exp_y": A.bitlen(x)})

    def add_scale_from_amax(self, amax) -> "SfuVectors":
        m, e = A.scale_from_amax(as_int(amax))
        return self._add("scale_from_amax", {}, {"amax": amax, "exp_m": m, "exp_e": e})

    def add_quantize_rows(self, v, m, e) -> "SfuVectors":
        v = as_int(v)
        t, d = v.shape
        m, e = np.broadcast_to(as_int(m), (t,)), np.broadcast_to(as_int(e), (t,))
        return self._add("quantize_rows", {"T": t, "D": d}, {"v": v, "m": m, "e": e,
                                                             "exp_q": A.quantize_rows(v, m, e)})

    def add_quantize_dynamic(self, v, frac: int = A.FX_FRAC) -> "SfuVectors":
        v = as_int(v)
        qa = A.quantize_dynamic(v, frac)
        return self._add("quantize_dynamic", {"T": v.shape[0], "D": v.shape[1], "frac": frac},
                         {"v": v, "exp_q": qa.q, "exp_m": qa.m, "exp_e": qa.e})

    def add_quantize_static(self, v, m: int, e: int, frac: int = A.FX_FRAC) -> "SfuVectors":
        v = as_int(v)
        qa = A.quantize_static(v, m, e, frac)
        return self._add("quantize_static", {"T": v.shape[0], "D": v.shape[1], "m": m, "e": e, "frac": frac},
                         {"v": v, "exp_q": qa.q})

    def add_linear_out_fx(self, p, e_w: int, m, e, bias=None) -> "SfuVectors":
        p = as_int(p)
        t, n = p.shape
        act = A.QAct(np.zeros((t, 1), np.int8), np.broadcast_to(as_int(m), (t,)), np.broadcast_to(as_int(e), (t,)))
        arrs = {"p": p, "m": act.m, "e": act.e, "exp_y": A.linear_out_fx(p, e_w, act, bias)}
        if bias is not None:
            arrs["bias"] = bias
        return self._add("linear_out_fx", {"T": t, "N": n, "e_w": e_w}, arrs)

    # ------------------------------------------------------------ sfu
    def add_isqrt(self, n) -> "SfuVectors":
        return self._add("isqrt", {}, {"x": n, "exp_y": F.isqrt(n)})

    def add_rmsnorm(self, x, gq, e_g: int, eps_table=None, header_eps: Optional[float] = None) -> "SfuVectors":
        """RMSNorm of rows ``x[T, D]``; with ``eps_table=None`` the testbench uses the
        header's ``PLAIT_RMS_EPS`` (the model's eps ``header_eps``, for the expected values)."""
        x = as_int(x)
        tab = eps_table if eps_table is not None else F.rms_eps_table(header_eps)
        arrs = {"x": x, "gq": gq, "exp_y": F.rmsnorm(x, as_int(gq), e_g, tab)}
        if eps_table is not None:
            arrs["eps_table"] = eps_table
        return self._add("rmsnorm", {"T": x.shape[0], "D": x.shape[1], "e_g": e_g}, arrs)

    def add_rope(self, x, n_heads: int, head_dim: int, pos0: int, cos=None, sin=None,
                 header: Optional[ModelTables] = None) -> "SfuVectors":
        """RoPE of ``x[S, H*hd]`` at positions ``pos0..``; with tables ``cos, sin
        [n_pos, hd/2]`` given, they are passed in; else the header's (``header``'s values)."""
        x = as_int(x)
        s = x.shape[0]
        if cos is None:
            mt = model_tables(header)
            full_c, full_s = mt["ROPE_COS"], mt["ROPE_SIN"]
        else:
            full_c, full_s = as_int(cos), as_int(sin)
        rows = np.arange(pos0, pos0 + s)
        exp = F.rope(x[None], full_c[rows], full_s[rows], n_heads, head_dim)[0]
        arrs = {"x": x, "exp_y": exp}
        if cos is not None:
            arrs.update(cos=full_c, sin=full_s)
        return self._add("rope", {"S": s, "H": n_heads, "hd": head_dim, "pos0": pos0}, arrs)

    def add_sigmoid(self, x) -> "SfuVectors":
        return self._add("sigmoid", {}, {"x": x, "exp_y": F.sigmoid_q15(as_int(x))})

    def add_silu(self, x) -> "SfuVectors":
        return self._add("silu", {}, {"x": x, "exp_y": F.silu(as_int(x))})

    def add_mul_fx(self, a, b) -> "SfuVectors":
        return self._add("mul_fx", {}, {"a": a, "b": b, "exp_y": F.mul_fx(a, b)})

    def add_swiglu(self, g, u) -> "SfuVectors":
        return self._add("swiglu", {}, {"a": g, "b": u, "exp_y": F.swiglu(g, u)})

    def add_residual_add(self, a, b) -> "SfuVectors":
        return self._add("residual_add", {}, {"a": a, "b": b, "exp_y": F.residual_add(a, b)})

    def add_attention(self, steps: Sequence[tuple], *, n_heads: int, n_kv_heads: int, head_dim: int,
                      scale: float, cap: Optional[int] = None) -> "SfuVectors":
        """Attention steps through one KV cache: ``steps`` = ``[(q[S,H*hd], k[S,Hkv*hd],
        v[S,Hkv*hd]), ...]`` (FX; a prefill then decode steps, say); every step's output
        and the final cache contents are compared."""
        cache = F.KVCache()
        c, r = F.attention_scale_code(float(scale))
        arrs = {}
        for i, (q, k, v) in enumerate(steps):
            q, k, v = as_int(q), as_int(k), as_int(v)
            out = F.attention(q[None], k[None], v[None], cache, n_heads=n_heads, n_kv_heads=n_kv_heads,
                              head_dim=head_dim, scale=scale)[0]
            arrs.update({f"q{i}": q, f"k{i}": k, f"v{i}": v, f"exp_out{i}": out})
        for name in ("k", "mk", "ek", "v", "mv", "ev"):
            arrs[f"exp_cache_{name}"] = getattr(cache, name)[0]
        ints = {"H": n_heads, "Hkv": n_kv_heads, "hd": head_dim, "C": c, "R": r, "steps": len(steps),
                "cap": cap or max(cache.length, 1)}
        return self._add("attention", ints, arrs)

    def add_tables(self, model: Optional[ModelTables]) -> "SfuVectors":
        """The header's tables equal numerics' (constant ones; the model's when given)."""
        arrs = {f"exp_{k}": v for k, v in const_tables().items()}
        ints = {}
        if model is not None:
            arrs.update({f"exp_{k}": v for k, v in model_tables(model).items()})
            c, r = F.attention_scale_code(model.attn_scale)
            ints = {"exp_C": c, "exp_R": r}
        return self._add("tables", ints, arrs)

    # ------------------------------------------------------------ file
    def as_cases(self) -> list[dict]:
        """The cases as :mod:`plait.hls.csim` case dicts (``name``, ``ints``, ``arrays``)."""
        return [{"name": n, "ints": i, "arrays": a} for n, i, a in self.cases]

    def write(self, path) -> Path:
        """The ``plait-vectors 1`` text file of ``hls/src/tb_common.h`` (the engines'
        writer, :func:`plait.hls.csim.write_vectors`)."""
        from .csim import write_vectors
        return write_vectors(path, self.as_cases())


def _fx(rng, shape, bits: int) -> np.ndarray:
    mag = rng.integers(0, bits + 1, shape)
    return rng.integers(-(1 << 62), 1 << 62, shape) >> (62 - mag)


def random_vectors(seed: int = 0, model: Optional[ModelTables] = None) -> SfuVectors:
    """``plait hls csim sfu``: random vectors of every function of the unit (shifts,
    scales, quantization, linear output, isqrt, RMSNorm, RoPE, sigmoid / SiLU / SwiGLU,
    products, residual add, GQA attention through a KV cache over a prefill and decode
    steps) and the tables header, the expected integers from the numerics."""
    rng = np.random.default_rng(seed)
    model = model if model is not None else smollm2_tables()
    v = SfuVectors().add_tables(model)
    x = _fx(rng, 2000, 56)
    v.add_shift_round(x, rng.integers(-70, 81, x.size)).add_rshift_round(x, int(rng.integers(1, 40)))
    v.add_bitlen(np.abs(x) >> 10).add_scale_from_amax(np.abs(x) >> 10)
    rows = _fx(rng, (8, 576), 36)
    v.add_quantize_dynamic(rows).add_quantize_static(rows, 200, -9)
    v.add_quantize_rows(rows, rng.integers(128, 256, 8), rng.integers(-14, 39, 8))
    qa = A.quantize_dynamic(rows)
    v.add_linear_out_fx(_fx(rng, (8, 96), 47), 18, qa.m, qa.e, _fx(rng, 96, 40))
    v.add_isqrt(rng.integers(0, 1 << 62, 500))
    gq, eg = F.encode_signed(rng.normal(1.0, 0.3, 576))
    v.add_rmsnorm(rows, gq, eg, F.rms_eps_table(model.eps))
    h = 576 // model.head_dim
    v.add_rope(_fx(rng, (5, h * model.head_dim), 34), h, model.head_dim, int(rng.integers(0, model.n_pos - 5)),
               header=model)
    y = _fx(rng, 3000, 24)
    v.add_sigmoid(y).add_silu(y).add_mul_fx(y, np.roll(y, 7)).add_swiglu(y, np.roll(y, 3))
    v.add_residual_add(_fx(rng, 3000, 47), _fx(rng, 3000, 47))
    hd = model.head_dim
    steps = [(_fx(rng, (s, 9 * hd), 20), _fx(rng, (s, 3 * hd), 20), _fx(rng, (s, 3 * hd), 20))
             for s in (int(rng.integers(2, 12)), 1, 1)]
    v.add_attention(steps, n_heads=9, n_kv_heads=3, head_dim=hd, scale=model.attn_scale)
    return v


_DEFAULT = object()


def sfu_build(model: Optional[ModelTables] = _DEFAULT, out_dir=None):
    """The generated special-function build (:func:`plait.hls.gen.generate` ``"sfu"``)
    for ``model``'s tables (default SmolLM2's; ``None``: no model tables)."""
    from .gen import generate
    return generate("sfu", smollm2_tables() if model is _DEFAULT else model, out_dir)


def run_sfu_csim(vectors: SfuVectors, model: Optional[ModelTables] = _DEFAULT, *,
                 timeout: float = 600) -> CsimResult:
    """Run ``vectors`` through the C simulation of ``tb_sfu`` (compiled once per tables
    header, :func:`plait.hls.csim.compile`); the :class:`~plait.hls.csim.CsimResult`
    has the first mismatch of every failing case (``ok`` false)."""
    from .csim import run_csim
    return run_csim(sfu_build(model), vectors.as_cases(), timeout=timeout)


__all__ = ["SfuVectors", "sfu_build", "run_sfu_csim", "random_vectors"]
