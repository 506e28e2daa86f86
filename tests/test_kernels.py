"""plait.runtime.kernels: TVM-built integer kernels equal plait.ir.numerics exactly.

Every comparison is integer equality.  Kernels are cached under the plait cache
(``$PLAIT_CACHE`` or ``<repo>/.plait_cache``), so a second run only loads them; the cache
tests use a private cache directory.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

tvm = pytest.importorskip("tvm")

from plait.ir.numerics.common import linear_int, quantize_rtn  # noqa: E402
from plait.ir.numerics.dsp import prune_nm  # noqa: E402
from plait.ir.numerics.lut import lut_linear  # noqa: E402
from plait.ir.numerics.pack import DspPacked, LutPacked, pack_dsp, pack_lut  # noqa: E402
from plait.runtime import kernels as K  # noqa: E402
from plait.runtime.kernels import build as KB  # noqa: E402
from plait.runtime.kernels import lut as KL  # noqa: E402

RNG = np.random.default_rng(20260911)


def _x(m, k, rng=RNG):
    return rng.integers(-128, 128, (m, k)).astype(np.int8)


def _lut_weight(n, k, bits, group, scheme, rng=RNG):
    return quantize_rtn(rng.standard_normal((n, k)).astype(np.float32), bits, group, scheme)


def _from_artifact(p):
    """The pack as the artifact stores it (``<w>.pack.<field>`` + scalars) and reads it back."""
    return type(p).from_arrays(p.meta(), {f: np.array(a) for f, a in p.arrays().items()})


# (bits, scheme): every LUT width, ternary, the odd grid and asymmetric zero points
LUT_FORMATS = [(1, "odd"), (2, "sym"), (2, "ternary"), (3, "sym"), (3, "odd"), (4, "asym"),
               (2, "asym"), (4, "sym")]
# (N, K, G): N not a multiple of the 64-column tile, groups of 32..256 inputs
LUT_SHAPES = [(100, 256, 64), (131, 96, 32), (64, 512, 256)]


@pytest.mark.parametrize("bits,scheme", LUT_FORMATS)
@pytest.mark.parametrize("n,k,g", LUT_SHAPES)
def test_lut_gemm_equals_numerics(bits, scheme, n, k, g):
    qw = _lut_weight(n, k, bits, g, scheme)
    packed = _from_artifact(pack_lut(qw))
    assert isinstance(packed, LutPacked)
    w = K.prepare_lut(packed)
    for m in (1, 2, 5, 8):
        x = _x(m, k)
        ref, _ = lut_linear(x, qw)
        p = K.lut_gemm(x, w)
        assert p.dtype == np.int64 and p.shape == (m, n)
        assert np.array_equal(p, ref)
        assert np.array_equal(p, linear_int(x, qw)[0])
    x1 = _x(1, k)[0]
    assert np.array_equal(K.lut_gemv(x1, w), lut_linear(x1[None], qw)[0][0])


@pytest.mark.parametrize("bits,scheme", [(1, "odd"), (2, "ternary"), (3, "sym"), (4, "asym")])
def test_lut_te_schedule_equals_numerics(bits, scheme):
    """The plain TE description (the one built for cuda) scheduled for llvm."""
    qw = _lut_weight(70, 128, bits, 32, scheme)
    x = _x(3, 128)
    assert np.array_equal(K.lut_gemm(x, pack_lut(qw), impl="te"), lut_linear(x, qw)[0])


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_lut_extremes_fill_int16_lanes(bits):
    """All activations -128, all codes 0: every lookup is +512 (the table's extreme), so
    the int16 lanes reach ``F (2^b - 1) 512`` before each widening."""
    k, g = 1024, 256
    qw = _lut_weight(64, k, bits, g, "odd")
    qw.codes[:] = 0
    qw.codes[5, :] = (1 << bits) - 1           # one column at the other extreme
    x = np.full((2, k), -128, np.int8)
    x[1, ::3] = 127
    p = K.lut_gemm(x, pack_lut(qw))
    assert np.array_equal(p, lut_linear(x, qw)[0])
    f = KL.flush_chunks(bits, g // 4)
    assert f * ((1 << bits) - 1) * 512 <= 32767 and (g // 4) % f == 0


def test_lut_other_tile_width_is_retiled():
    qw = _lut_weight(50, 128, 2, 32, "sym")
    p16 = pack_lut(qw, n=16)
    assert p16.tile_n == 16
    x = _x(4, 128)
    assert np.array_equal(K.lut_gemm(x, p16), lut_linear(x, qw)[0])


def test_lut_register_perm_is_a_permutation():
    perm = KL.register_perm()
    assert sorted(perm.tolist()) == list(range(64))


# --------------------------------------------------------------------------- sparse

SPARSE_MODES = ["2:4", "2:16", "4:16", "8:16", "dense"]


def _nm_weight(n, k, mode, bits, g, rng=RNG):
    w = rng.standard_normal((n, k)).astype(np.float32)
    if mode != "dense":
        nn, mm = (int(v) for v in mode.split(":"))
        w = w * prune_nm(w, nn, mm)
    return quantize_rtn(w, bits, g, "sym")


@pytest.mark.parametrize("mode", SPARSE_MODES)
@pytest.mark.parametrize("n,k,g,bits", [(70, 256, 64, 8), (33, 512, 128, 4), (17, 64, 16, 2)])
def test_sparse_gemm_equals_numerics(mode, n, k, g, bits):
    qw = _nm_weight(n, k, mode, bits, g)
    packed = _from_artifact(pack_dsp(qw, mode))
    assert isinstance(packed, DspPacked)
    w = K.prepare_sparse(packed)
    assert w.dense == (mode == "dense")
    for m in (1, 2, 8):
        x = _x(m, k)
        p = K.sparse_gemm(x, w)
        assert p.dtype == np.int64 and p.shape == (m, n)
        assert np.array_equal(p, linear_int(x, qw)[0])
    x1 = _x(1, k)[0]
    assert np.array_equal(K.sparse_gemv(x1, w), linear_int(x1, qw)[0])


def test_sparse_extremes():
    k = 256
    qw = _nm_weight(40, k, "2:4", 8, 256)
    qw.codes[:] = np.where(qw.codes != 128, 0, 128)    # every nonzero weight -128
    x = np.full((2, k), -128, np.int8)
    assert np.array_equal(K.sparse_gemm(x, pack_dsp(qw, "2:4")), linear_int(x, qw)[0])


# --------------------------------------------------------------------------- int8 GEMM

@pytest.mark.parametrize("shape", [((5, 16), (7, 16)), ((2, 3, 1, 16), (2, 3, 9, 16)),
                                   ((4, 70), (33, 70)), ((1, 2, 8, 64), (1, 2, 65, 64))])
def test_int8_gemm_equals_integer_product(shape):
    sa, sb = shape
    a = RNG.integers(-128, 128, sa).astype(np.int8)
    b = RNG.integers(-128, 128, sb).astype(np.int8)
    c = K.int8_gemm(a, b)
    assert c.dtype == np.int32
    assert np.array_equal(c, a.astype(np.int64) @ b.astype(np.int64).swapaxes(-1, -2))


def test_int8_gemm_is_the_attention_products():
    """sfu's per-group scores ``S_g = q8_g . k8_g`` and ``O = w8 . v8``, as
    ``_attention_rows`` forms them (float64 matmul of the int8 values)."""
    b_, h, s, t, hd, g = 1, 2, 3, 11, 32, 16
    ng = hd // g
    q8 = RNG.integers(-128, 128, (b_, h, s, ng, g)).astype(np.int8)
    kq = RNG.integers(-128, 128, (b_, h, t, hd)).astype(np.int8)
    qg = q8.astype(np.float64).transpose(0, 1, 3, 2, 4)
    kg = kq.reshape(b_, h, t, ng, g).astype(np.float64).transpose(0, 1, 3, 4, 2)
    sg = np.matmul(qg, kg).astype(np.int64)
    got = K.int8_gemm(np.ascontiguousarray(q8.transpose(0, 1, 3, 2, 4)),
                      np.ascontiguousarray(kq.reshape(b_, h, t, ng, g).transpose(0, 1, 3, 2, 4)))
    assert np.array_equal(got, sg)
    w8 = RNG.integers(-128, 128, (b_, h, s, t)).astype(np.int8)
    vq = RNG.integers(-128, 128, (b_, h, t, hd)).astype(np.int8)
    o = np.matmul(w8.astype(np.float64), vq.astype(np.float64)).astype(np.int64)
    assert np.array_equal(K.int8_gemm(w8, np.ascontiguousarray(vq.swapaxes(-1, -2))), o)
    big = np.full((1, 1, 1024), -128, np.int8)
    assert K.int8_gemm(big, big)[0, 0, 0] == 128 * 128 * 1024


# --------------------------------------------------------------------------- errors

def test_bad_inputs_are_refused():
    qw = _lut_weight(64, 64, 2, 32, "sym")
    with pytest.raises(K.KernelError, match="int8"):
        K.lut_gemm(np.zeros((1, 64), np.int16), pack_lut(qw))
    with pytest.raises(K.KernelError, match=r"\[M, 64\]"):
        K.lut_gemm(np.zeros((1, 32), np.int8), pack_lut(qw))
    with pytest.raises(K.KernelError, match="unknown kernel target"):
        K.lut_gemm(np.zeros((1, 64), np.int8), pack_lut(qw), target="tpu")
    with pytest.raises(K.KernelError, match="int8"):
        K.int8_gemm(np.zeros((2, 4), np.int32), np.zeros((2, 4), np.int8))
    with pytest.raises(K.KernelError, match="DspPacked"):
        K.sparse_gemm(np.zeros((1, 64), np.int8), pack_lut(qw))


# --------------------------------------------------------------------------- cache

@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAIT_CACHE", str(tmp_path))
    K.clear_memory_cache()
    yield tmp_path / "kernels"
    K.clear_memory_cache()


def _gemm_ok():
    a = RNG.integers(-128, 128, (3, 16)).astype(np.int8)
    b = RNG.integers(-128, 128, (5, 16)).astype(np.int8)
    return np.array_equal(K.int8_gemm(a, b), a.astype(np.int64) @ b.astype(np.int64).T)


def test_kernel_cache_memory_and_disk(private_cache):
    m1 = K.build_int8_gemm()
    assert K.build_int8_gemm() is m1                       # memory
    so = K.cache_path("int8_gemm", "llvm", {})
    assert so.exists() and so.parent == private_cache
    info = json.loads(so.with_suffix(".json").read_text())
    assert info["size"] == so.stat().st_size and info["fields"]["kernel"] == "int8_gemm"
    K.clear_memory_cache()
    mtime = so.stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("error")                     # a clean entry loads silently
        assert _gemm_ok()
    assert so.stat().st_mtime_ns == mtime                  # loaded, not rebuilt


@pytest.mark.parametrize("damage", ["flip", "truncate", "sidecar", "no_sidecar", "garbage"])
def test_corrupt_kernel_cache_entry_is_rebuilt(private_cache, damage):
    so = K.cache_path("int8_gemm", "llvm", {})
    meta = so.with_suffix(".json")
    if damage != "garbage":
        K.build_int8_gemm()
        K.clear_memory_cache()
        data = bytearray(so.read_bytes())

    def write(path, content: bytes):
        # a new file (new inode): this process still maps the library it loaded, and
        # rewriting that mapping in place would crash it, not test the cache
        tmp = path.with_name(path.name + ".damaged")
        tmp.write_bytes(content)
        tmp.replace(path)

    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        write(so, bytes(data))
    elif damage == "truncate":
        write(so, bytes(data[:len(data) // 3]))
    elif damage == "sidecar":
        meta.write_text("{not json")
    elif damage == "no_sidecar":
        meta.unlink()
    else:
        # a sidecar that matches a file that is no library: the loader fails.  (Never built
        # in this process first: the dynamic loader would hand back the library it already
        # mapped for this path instead of reading the file.)
        _, fields = KB._key("int8_gemm", K.resolve_target("llvm"), {})
        private_cache.mkdir(parents=True)
        so.write_bytes(b"\x7fELF garbage" * 10)
        meta.write_text(json.dumps({"fields": fields, "size": so.stat().st_size,
                                    "sha256": KB.sha256_file(so)}))
    with pytest.warns(K.KernelCacheWarning, match="corrupt"):
        assert _gemm_ok()
    info = json.loads(meta.read_text())                    # rebuilt and re-recorded
    assert info["size"] == so.stat().st_size and info["sha256"] == KB.sha256_file(so)
    K.clear_memory_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _gemm_ok()


# --------------------------------------------------------------------------- cuda

def _need_cuda_build():
    if not K.cuda_enabled():
        pytest.skip("this TVM has no CUDA code generator")
    if KB.nvcc_path() is None:
        pytest.skip("nvcc not installed")


def test_cuda_kernels_compile(private_cache):
    """The same TE descriptions built for cuda and compiled by nvcc (no GPU needed)."""
    _need_cuda_build()
    qw = _lut_weight(100, 256, 2, 64, "sym")
    w = K.prepare_lut(pack_lut(qw))
    tables, main, impl = K.build_lut(w, "cuda")
    assert impl == "te"
    src = K.cuda_source(main)
    assert "__global__" in src
    K.build_sparse(K.prepare_sparse(pack_dsp(_nm_weight(40, 128, "2:4", 8, 64), "2:4")), "cuda")
    K.build_int8_gemm("cuda")
    K.build_f32_gemm("cuda")                               # float mode's linears
    fat = sorted(private_cache.glob("*-cuda-*.fatbin"))
    assert len(fat) == 5                        # lut tables + main, sparse, gemm, fp32 gemm
    for f in fat:
        assert f.stat().st_size > 1000
    with pytest.raises(K.KernelError, match="nvcc failed"):
        K.compile_cuda("this is not CUDA", "sm_80")


@pytest.mark.skipif(not (KB.cuda_enabled() and KB.gpu_present()), reason="no CUDA GPU here")
def test_cuda_kernels_run_on_gpu():
    qw = _lut_weight(100, 256, 2, 64, "sym")
    x = _x(3, 256)
    assert np.array_equal(K.lut_gemm(x, pack_lut(qw), target="cuda"), lut_linear(x, qw)[0])
    sq = _nm_weight(40, 128, "2:4", 8, 64)
    x = _x(2, 128)
    assert np.array_equal(K.sparse_gemm(x, pack_dsp(sq, "2:4"), target="cuda"), linear_int(x, sq)[0])
    a, b = _x(4, 32), _x(6, 32)
    assert np.array_equal(K.int8_gemm(a, b, target="cuda"), a.astype(np.int64) @ b.astype(np.int64).T)
