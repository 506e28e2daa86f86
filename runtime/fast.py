"""The fast float decoder of the cpu device: a Llama-style decoder run from its low-bit weights.

Float mode's reference, :class:`plait.ir.Interpreter`, walks the graph node by node with
float32 weights (about 540 MB read per token for SmolLM2-135M).  :class:`FastDecoder`
computes the same function (float32 activations, the artifact's own weights) for graphs
that are a supported decoder (:func:`decoder_plan`):

* **weights stay low-bit**: every quantized linear keeps the artifact's integer codes
  (1-2-bit codes four per byte where the groups are multiples of 64 inputs, up to 4-bit
  codes two per byte, 8-bit codes one per byte) with a float scale and zero per
  group (``w = sc * (u - zf)``, exactly the float path's dequantized value; a zero that
  every group shares, as in sym / odd schemes, is passed once, not per group); a float
  linear stays float32.  The tied LM head / embedding, float in the artifact, is
  quantized once at load to W8 symmetric per group (the rule exact mode uses for a float
  linear, :func:`plait.ir.exact.exact_weight`); ``head="float"`` keeps it float32.
  The embedding lookup reads the float table as the float path does.
* **decode** (one token) is one C call (``csrc/fast_decode.c``, built with gcc on first
  use and cached under ``.plait_cache/fast/``): RMSNorm, q/k/v, RoPE, attention over a
  preallocated float32 KV cache, o, SwiGLU, down, the residual adds and the LM head in
  one OpenMP region on ``torch.get_num_threads()`` threads -- no graph walk, no Python
  per layer.
* **prefill** (several tokens) runs torch: each linear's rows are dequantized into a
  scratch buffer (the same float32 values the float path multiplies) and go through
  torch's GEMM; attention is ``scaled_dot_product_attention`` over the same cache.

Numerics: float, not bit-exact: logits differ from the graph runner's by float32
rounding (summation order), plus the W8 head's rounding when the head is quantized
(see ``tests/test_fast_decode.py`` for the tolerances).  A decode step quantizes each
linear's input per weight group, to 16 bits by default (``act_bits=16``: within float32
rounding) or to 8 (``act_bits=8``: symmetric int8 per group, as llama.cpp's Q8
activation blocks; the AVX-512 build then multiplies code bytes by activation bytes with
``vpdpbusd``, the fastest decode here; the down projection's input keeps 16 bits, whose
outliers int8 loses -- SmolLM2 w4g128, 512 tokens through decode steps: perplexity 28.27
against 28.28 at 16 bits, the same top-1 token at 94.5 % of the positions).  Prefill is
float32 either way.  A graph that is not a supported decoder, or a host without a C
compiler, raises :class:`FastUnsupported` naming why; the cpu device then falls back to
the graph runner and says so.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

SOURCE = Path(__file__).with_name("csrc") / "fast_decode.c"
ABI = 6
Q4, Q8, F32, Q2 = 1, 2, 3, 4
HEAD_FORMATS = ("w8", "float")
#: the activations' quantization in the decode kernels (per weight group; module doc)
ACT_BITS = (16, 8)
MAX_GROUPS = 512             # groups per row the C kernel's stack buffers hold
MAX_K = 16384                # inputs of a quantized linear (the kernel's int16 activation buffer)
MAX_HEAD_DIM = 512
MAX_HIDDEN = 8192            # the C step's per-thread norm buffer
_RETRY_MIN, _RETRY_MAX = 16, 256   # decode steps between tries of the other thread count
STEP_PREFILL_MAX = 2         # prompts up to this many tokens run as decode steps
_CHUNK_ELEMS = 1 << 21       # float32 elements of the prefill's dequantization scratch


class FastUnsupported(RuntimeError):
    """The fast decoder cannot run this graph (or on this host); the message says why."""


# ---------------------------------------------------------------- the C library

class _Lin(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int32), ("n", ctypes.c_int32), ("k", ctypes.c_int32), ("g", ctypes.c_int32),
                ("w", ctypes.c_void_p), ("sc", ctypes.c_void_p), ("zf", ctypes.c_void_p),
                ("wf", ctypes.c_void_p), ("bias", ctypes.c_void_p), ("z0", ctypes.c_float)]


class _Layer(ctypes.Structure):
    _fields_ = [("norm1", ctypes.c_void_p), ("norm2", ctypes.c_void_p), ("eps1", ctypes.c_float),
                ("eps2", ctypes.c_float)] + [(n, _Lin) for n in ("q", "k", "v", "o", "gate", "up", "down")]


class _Model(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int32) for n in ("n_layers", "d", "n_heads", "n_kv", "hd", "inter", "vocab", "cap",
                                              "act_bits")] + [
        ("attn_scale", ctypes.c_float), ("eps_final", ctypes.c_float),
        ("emb", ctypes.c_void_p), ("norm_final", ctypes.c_void_p), ("rope_cos", ctypes.c_void_p),
        ("rope_sin", ctypes.c_void_p), ("layers", ctypes.c_void_p), ("head", _Lin)]


class _State(ctypes.Structure):
    _fields_ = [(n, ctypes.c_void_p) for n in ("x", "h", "q", "att", "kvnew", "gbuf", "ubuf", "act", "scores", "kv")]


_LIBS: dict = {}                   # SIMD width -> the loaded library
_LIB_LOCK = threading.Lock()

#: the fast decoder's builds by SIMD width: the CPU flags (/proc/cpuinfo) each needs and
#: gcc's flags for it.  512: AVX-512 VNNI kernels (64 inputs per step, vpdpwssd); 256:
#: AVX2 + FMA; 0: portable C.
SIMD_BUILDS = {
    512: ({"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni"},
          ["-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni"]),
    256: ({"avx2", "fma"}, ["-mavx2", "-mfma"]),
    0: (set(), []),
}


@functools.lru_cache(maxsize=None)
def _cpu_flags() -> frozenset[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def host_simd() -> int:
    """The widest build this CPU runs (a key of :data:`SIMD_BUILDS`)."""
    flags = _cpu_flags()
    return max(w for w, (need, _) in SIMD_BUILDS.items() if need <= flags)


def _simd(simd: Optional[int]) -> int:
    if simd is None:
        return host_simd()
    if simd not in SIMD_BUILDS:
        raise ValueError(f"SIMD width {simd!r}: the fast decoder is built for {sorted(SIMD_BUILDS)}")
    missing = SIMD_BUILDS[simd][0] - _cpu_flags()
    if missing:
        raise FastUnsupported(f"the {simd}-bit build needs CPU flags this host lacks: {sorted(missing)}")
    return simd


def compiler_flags(simd: Optional[int] = None) -> list[str]:
    """gcc flags of the build: the widest kernels the CPU has (or the ``simd`` width asked for)."""
    return ["-O3", "-std=gnu11", "-fPIC", "-shared", "-fopenmp", *SIMD_BUILDS[_simd(simd)][1]]


def library_path(simd: Optional[int] = None) -> Path:
    """Where the built library is cached: keyed by the source, the flags and the compiler."""
    from plait.ir.cache import cache_dir
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise FastUnsupported("no C compiler (gcc or $CC) to build the fast decoder's kernels")
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise FastUnsupported(f"the C compiler {cc} does not run ({e})") from None
    key = hashlib.sha256("\0".join([SOURCE.read_text(), " ".join(compiler_flags(simd)), cc, version]).encode())
    return cache_dir() / "fast" / f"fast_decode-{key.hexdigest()[:16]}.so"


def load_library(simd: Optional[int] = None):
    """The fast decoder's C library, built on first use (atomically, into the cache): the
    widest build this CPU runs, or the ``simd`` width asked for (tests compare them)."""
    simd = _simd(simd)
    with _LIB_LOCK:
        if simd in _LIBS:
            return _LIBS[simd]
        import torch  # noqa: F401  - its OpenMP runtime (libgomp) is the one the library shares
        path = library_path(simd)
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
            fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".so.tmp", dir=path.parent)
            os.close(fd)
            try:
                r = subprocess.run([cc, *compiler_flags(simd), "-o", tmp, str(SOURCE), "-lm"],
                                   capture_output=True, text=True, timeout=300)
                if r.returncode != 0:
                    raise FastUnsupported(f"building the fast decoder's kernels failed ({cc}): "
                                          f"{(r.stderr or r.stdout).strip()[-800:]}")
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as e:
            raise FastUnsupported(f"the fast decoder's library {path} does not load ({e})") from None
        if lib.plait_abi() != ABI:
            raise FastUnsupported(f"{path}: ABI {lib.plait_abi()} != {ABI}; remove it to rebuild")
        if lib.plait_simd() != simd:
            raise FastUnsupported(f"{path}: built with {lib.plait_simd()}-bit kernels, {simd} asked for; "
                                  f"remove it to rebuild")
        lib.plait_step.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                                   ctypes.c_int]
        lib.plait_step.restype = ctypes.c_int
        lib.plait_dequant.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
        lib.plait_dequant.restype = ctypes.c_int
        lib.plait_gemv.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.plait_gemv.restype = ctypes.c_int
        _LIBS[simd] = lib
        return lib


# ---------------------------------------------------------------- the graph as a decoder

@dataclass
class LinearRef:
    """A linear of the plan: its node, weight param and optional bias param."""
    node: object
    weight: object
    bias: object = None


@dataclass
class LayerPlan:
    norm1: object
    q: LinearRef
    k: LinearRef
    v: LinearRef
    o: LinearRef
    norm2: object
    gate: LinearRef
    up: LinearRef
    down: LinearRef


@dataclass
class DecoderPlan:
    """The graph read as a Llama-style decoder (every node accounted for)."""
    table: object                    # the embedding param
    layers: list[LayerPlan]
    norm: object                     # the final rmsnorm node
    head: LinearRef
    n_heads: int
    n_kv: int
    head_dim: int
    scale: float
    rope: dict
    last_only: bool = False          # the graph keeps only the last position
    covered: set = field(default_factory=set)


def decoder_plan(graph) -> DecoderPlan:
    """Read ``graph`` as embedding -> N x (RMSNorm, q/k/v, RoPE, attention, o, residual,
    RMSNorm, gate/up, SwiGLU, down, residual) -> RMSNorm -> linear; raises
    :class:`FastUnsupported` naming the first node that does not fit."""
    seen: set[str] = set()

    def node(name):
        seen.add(name)
        return graph.node(name)

    def need(n, op, what):
        if n.op != op:
            raise FastUnsupported(f"%{n.name} = {n.op}(...) where the decoder pattern expects {what} ({op})")
        return n

    def param(name, what):
        p = node(name)
        if p.op != "param":
            raise FastUnsupported(f"{what} %{name} is computed ({p.op}), not a weight")
        return p

    def linear(name, what) -> LinearRef:
        n = need(node(name), "linear", what)
        w = param(n.inputs[1], f"the weight of {what}")
        b = param(n.inputs[2], f"the bias of {what}") if len(n.inputs) == 3 else None
        if w.type is None or len(w.type.shape) != 2:
            raise FastUnsupported(f"%{n.name}: weight is not a 2-D matrix")
        return LinearRef(n, w, b)

    if len(graph.outputs) != 1 or len(graph.inputs) != 1:
        raise FastUnsupported(f"the graph has inputs {graph.inputs} and outputs {graph.outputs}; the fast "
                              f"decoder takes token ids to logits")
    out = node(graph.outputs[0])
    last_only = False
    if out.op == "last_token":
        last_only, out = True, node(out.inputs[0])
    head = linear(out.name, "the LM head")
    x = node(head.node.inputs[0])
    if x.op == "last_token":
        last_only, x = True, node(x.inputs[0])
    norm = need(x, "rmsnorm", "the final norm")
    param(norm.inputs[1], "the final norm's weight")
    layers: list[LayerPlan] = []
    r = norm.inputs[0]
    attn_attrs, rope_attrs = None, None
    while node(r).op != "embedding":
        add2 = need(graph.node(r), "add", "a residual add")
        a, b = (graph.node(i) for i in add2.inputs)
        down_n, r1 = (a, b.name) if a.op == "linear" and a.name != b.name else (b, a.name)
        down = linear(down_n.name, "the MLP's down projection")
        act = node(down.node.inputs[0])
        if act.op == "swiglu":
            gate, up = linear(act.inputs[0], "the gate projection"), linear(act.inputs[1], "the up projection")
        elif act.op == "mul" and graph.node(act.inputs[0]).op == "silu":
            gate = linear(node(act.inputs[0]).inputs[0], "the gate projection")
            up = linear(act.inputs[1], "the up projection")
        else:
            raise FastUnsupported(f"%{act.name} = {act.op}(...) feeds the down projection; the decoder "
                                  f"pattern expects swiglu(gate, up)")
        h2 = need(node(gate.node.inputs[0]), "rmsnorm", "the MLP's norm")
        if up.node.inputs[0] != h2.name or h2.inputs[0] != r1:
            raise FastUnsupported(f"layer at %{add2.name}: gate/up do not read the norm of the residual")
        param(h2.inputs[1], "the MLP norm's weight")
        add1 = need(node(r1), "add", "the attention's residual add")
        a, b = (graph.node(i) for i in add1.inputs)
        o_n, x0 = (a, b.name) if a.op == "linear" and graph.node(a.inputs[0]).op == "attention" else (b, a.name)
        o = linear(o_n.name, "the attention's output projection")
        att = need(node(o.node.inputs[0]), "attention", "attention")
        qr, kr = need(node(att.inputs[0]), "rope", "RoPE on q"), need(node(att.inputs[1]), "rope", "RoPE on k")
        q, k, v = (linear(qr.inputs[0], "q"), linear(kr.inputs[0], "k"), linear(att.inputs[2], "v"))
        h1 = need(node(q.node.inputs[0]), "rmsnorm", "the attention's norm")
        if k.node.inputs[0] != h1.name or v.node.inputs[0] != h1.name or h1.inputs[0] != x0:
            raise FastUnsupported(f"layer at %{add1.name}: q/k/v do not read the norm of the residual")
        param(h1.inputs[1], "the attention norm's weight")
        aa = {key: att.attrs[key] for key in ("n_heads", "n_kv_heads", "head_dim")}
        aa["scale"] = att.attrs.get("scale") or 1.0 / float(np.sqrt(aa["head_dim"]))
        ra = {key: qr.attrs.get(key) for key in ("head_dim", "theta", "scaling")}
        if attn_attrs is None:
            attn_attrs, rope_attrs = aa, ra
        if aa != attn_attrs or ra != rope_attrs or {key: kr.attrs.get(key) for key in ra} != ra:
            raise FastUnsupported(f"%{att.name}: attention / RoPE settings differ between layers")
        if qr.attrs["n_heads"] != aa["n_heads"] or kr.attrs["n_heads"] != aa["n_kv_heads"] \
                or ra["head_dim"] != aa["head_dim"]:
            raise FastUnsupported(f"%{att.name}: RoPE heads do not match the attention's")
        layers.insert(0, LayerPlan(h1, q, k, v, o, h2, gate, up, down))
        r = x0
    emb = graph.node(r)
    table = param(emb.inputs[0], "the embedding table")
    if graph.node(emb.inputs[1]).op != "input":
        raise FastUnsupported(f"%{emb.name}: the token ids are computed, not the graph input")
    seen.add(emb.inputs[1])
    if not layers:
        raise FastUnsupported("the graph has no decoder layer")
    rest = [n for n in graph.order() if n not in seen]
    if rest:
        n = graph.node(rest[0])
        raise FastUnsupported(f"%{n.name} = {n.op}(...) is not part of the decoder pattern "
                              f"({len(rest)} node(s) left over)")
    return DecoderPlan(table, layers, norm, head, attn_attrs["n_heads"], attn_attrs["n_kv_heads"],
                       attn_attrs["head_dim"], float(attn_attrs["scale"]), rope_attrs, last_only, seen)


# ---------------------------------------------------------------- weights

class _Weight:
    """One linear in the C kernel's form (arrays kept alive here)."""

    def __init__(self, kind: int, n: int, k: int, g: int = 0, w=None, sc=None, zf=None, wf=None, bias=None,
                 what: str = ""):
        import torch
        self.kind, self.n, self.k, self.g, self.what = kind, n, k, g, what
        z0 = 0.0
        if zf is not None and zf.size and np.all(zf == zf.flat[0]):
            zf, z0 = None, float(zf.flat[0])     # one zero for every group (sym, odd): not stored
        self.w, self.sc, self.zf, self.z0 = w, sc, zf, z0
        self.wf = None if wf is None else torch.from_numpy(np.ascontiguousarray(wf, np.float32))
        self.bias = None if bias is None else torch.from_numpy(np.ascontiguousarray(bias, np.float32))
        ptr = lambda a: None if a is None else a.ctypes.data if isinstance(a, np.ndarray) else a.data_ptr()  # noqa: E731
        self.struct = _Lin(kind, n, k, g, ptr(w), ptr(sc), ptr(zf), ptr(self.wf), ptr(self.bias), z0)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.w, self.sc, self.zf) if a is not None) + \
            (0 if self.wf is None else self.wf.numel() * 4)


def _zero_and_scale(qw):
    """``(sc, zf)`` float32 ``[N, K/G]`` with ``w = sc * (u - zf)`` for every scheme."""
    s = np.asarray(qw.scales, np.float32)
    if qw.scheme == "odd":                    # s * (2u - (2^b - 1)) = 2s * (u - (2^b - 1) / 2)
        return np.ascontiguousarray(2 * s), np.full(s.shape, ((1 << qw.bits) - 1) / 2, np.float32)
    return np.ascontiguousarray(s), qw.zero_points().astype(np.float32)


def pack_q4(codes: np.ndarray) -> np.ndarray:
    """Codes ``[N, K]`` (values 0..15, K a multiple of 32) two per byte: in each block of
    32 inputs, byte j holds input j (low nibble) and input j + 16 (high nibble)."""
    n, k = codes.shape
    c = np.asarray(codes, np.uint8).reshape(n, k // 32, 2, 16)
    return np.ascontiguousarray((c[:, :, 0, :] | (c[:, :, 1, :] << 4)).reshape(n, k // 2))


def pack_q2(codes: np.ndarray) -> np.ndarray:
    """Codes ``[N, K]`` (values 0..3, K a multiple of 64) four per byte: in each block of
    64 inputs, byte j holds inputs j, j + 16, j + 32, j + 48 in bits 0-1, 2-3, 4-5, 6-7."""
    n, k = codes.shape
    c = np.asarray(codes, np.uint8).reshape(n, k // 64, 4, 16)
    return np.ascontiguousarray((c[:, :, 0] | c[:, :, 1] << 2 | c[:, :, 2] << 4 | c[:, :, 3] << 6).reshape(n, k // 4))


def prepare_quantized(qw, bias=None, what: str = "") -> _Weight:
    """A :class:`~plait.ir.numerics.QuantizedWeight` in the kernel's low-bit form, or its
    float32 dequantization (the float path's values) where the group size does not fit the
    kernel's blocks."""
    from plait.ir.numerics.common import dequantize
    n, k = qw.codes.shape
    g = qw.group_size
    block = 32
    if g % block or k % g or k // g > MAX_GROUPS or k > MAX_K:
        return _Weight(F32, n, k, wf=dequantize(qw), bias=bias, what=what)
    sc, zf = _zero_and_scale(qw)
    if qw.bits <= 2 and g % 64 == 0:              # 2-bit codes stay 2-bit where groups fill its blocks
        return _Weight(Q2, n, k, g, w=pack_q2(qw.codes), sc=sc, zf=zf, bias=bias, what=what)
    if qw.bits <= 4:
        return _Weight(Q4, n, k, g, w=pack_q4(qw.codes), sc=sc, zf=zf, bias=bias, what=what)
    return _Weight(Q8, n, k, g, w=np.ascontiguousarray(qw.codes, np.uint8), sc=sc, zf=zf, bias=bias, what=what)


def _quantized(weights, p):
    from plait.ir.numerics.common import QuantizedWeight
    q = p.type.quant
    zeros = np.asarray(weights[q.zeros]) if q.zeros else None
    return QuantizedWeight(np.asarray(weights[p.attrs["weight"]]), np.asarray(weights[q.scales], np.float32),
                           zeros, q.bits, q.group_size, q.scheme)


def _float_param(weights, p) -> np.ndarray:
    """A param's float32 value, as the float path computes it (dequantized if quantized)."""
    from plait.ir.numerics.common import dequantize
    if p.type is not None and p.type.quant is not None:
        return dequantize(_quantized(weights, p))
    return np.ascontiguousarray(weights[p.attrs["weight"]], np.float32)


def prepare_linear(weights, ref: LinearRef, *, head: Optional[str] = None) -> _Weight:
    p = ref.weight
    bias = None if ref.bias is None else _float_param(weights, ref.bias)
    what = ref.node.name
    if p.type.quant is not None:
        return prepare_quantized(_quantized(weights, p), bias, what)
    if head == "w8":
        from plait.ir.exact import exact_weight
        try:
            return prepare_quantized(exact_weight(weights, p), bias, what)
        except Exception as e:  # noqa: BLE001 - no group size divides K: keep it float
            if type(e).__name__ != "ExactError":
                raise
    w = _float_param(weights, p)
    return _Weight(F32, w.shape[0], w.shape[1], wf=w, bias=bias, what=what)


def check_act_bits(act_bits) -> int:
    if act_bits not in ACT_BITS:
        raise ValueError(f"act_bits must be one of {', '.join(map(str, ACT_BITS))} (the decode kernels' "
                         f"activation quantization), got {act_bits!r}")
    return int(act_bits)


def gemv(w: _Weight, x: np.ndarray, threads: int = 1, simd: Optional[int] = None, act_bits: int = 16) -> np.ndarray:
    """``W x (+ b)`` of one prepared linear by the decode kernel (tests, benchmarks; ``simd``
    picks a build other than the host's widest, ``act_bits`` the activations' quantization)."""
    act_bits = check_act_bits(act_bits)
    x = np.ascontiguousarray(x, np.float32)
    if x.shape != (w.k,):
        raise ValueError(f"x must be [{w.k}], got {x.shape}")
    y = np.empty(w.n, np.float32)
    if load_library(simd).plait_gemv(ctypes.byref(w.struct), x.ctypes.data, y.ctypes.data, threads, act_bits) != 0:
        raise FastUnsupported(f"{w.what or 'linear'}: the kernel refused its format")
    return y


def dequant(w: _Weight, threads: int = 1) -> np.ndarray:
    """The float32 ``[N, K]`` weight a prepared linear stands for (what prefill multiplies)."""
    if w.kind == F32:
        return w.wf.numpy().copy()
    out = np.empty((w.n, w.k), np.float32)
    if load_library().plait_dequant(ctypes.byref(w.struct), 0, w.n, out.ctypes.data, threads) != 0:
        raise FastUnsupported(f"{w.what or 'linear'}: cannot dequantize")
    return out


# ---------------------------------------------------------------- the runner

class _Sequence:
    """One sequence's KV cache ``[layers, 2, kv heads, capacity, head_dim]`` and length."""

    def __init__(self):
        self.kv = None
        self.pos = 0


class FastDecoder:
    """The fast float runner (module doc); the interpreters' calling convention:
    ``logits(tokens [1, S])`` -> ``[1, S, vocab]`` (``last_only``: ``[1, 1, vocab]``),
    ``reset()``, ``cache_state()``, ``load_cache_state(state)``."""

    kind = "fast"

    def __init__(self, graph, weights, *, head: str = "w8", plan: Optional[DecoderPlan] = None,
                 act_bits: int = 16):
        import torch
        if head not in HEAD_FORMATS:
            raise ValueError(f"head must be one of {', '.join(HEAD_FORMATS)}, got {head!r}")
        self.act_bits = check_act_bits(act_bits)
        self.plan = plan = plan or decoder_plan(graph)
        self.lib = load_library()
        self.graph = graph
        meta = graph.meta or {}
        self.context = int(meta.get("max_position") or 0)
        table = _float_param(weights, plan.table)
        self.emb = torch.from_numpy(table)
        self.vocab, self.d = table.shape
        if self.d > MAX_HIDDEN:
            raise FastUnsupported(f"hidden size {self.d} is above the fast decoder's {MAX_HIDDEN}")
        self.H, self.Hk, self.hd = plan.n_heads, plan.n_kv, plan.head_dim
        if self.H % self.Hk or self.hd > MAX_HEAD_DIM or self.hd % 2:
            raise FastUnsupported(f"attention with {self.H} heads, {self.Hk} KV heads of {self.hd} dims is not "
                                  f"supported (head_dim even and <= {MAX_HEAD_DIM})")
        f32 = lambda p: torch.from_numpy(_float_param(weights, p).reshape(-1))  # noqa: E731
        self.layers = []
        for i, L in enumerate(plan.layers):
            lw = {name: prepare_linear(weights, getattr(L, name)) for name in
                  ("q", "k", "v", "o", "gate", "up", "down")}
            lw["norm1"], lw["norm2"] = f32(graph.node(L.norm1.inputs[1])), f32(graph.node(L.norm2.inputs[1]))
            lw["eps1"], lw["eps2"] = float(L.norm1.attrs["eps"]), float(L.norm2.attrs["eps"])
            self._check_layer(i, lw)
            self.layers.append(lw)
        self.inter = self.layers[0]["gate"].n
        self.head = prepare_linear(weights, plan.head, head=head)
        if self.head.n != self.vocab or self.head.k != self.d:
            raise FastUnsupported(f"LM head {self.head.n}x{self.head.k} does not match the embedding "
                                  f"{self.vocab}x{self.d}")
        self.norm_final = f32(graph.node(plan.norm.inputs[1]))
        self.eps_final = float(plan.norm.attrs["eps"])
        from plait.ir.ops import rope_inv_freq
        self._inv_freq = rope_inv_freq(self.hd, plan.rope["theta"], plan.rope.get("scaling"))
        self._cos = self._sin = None
        self._cap = 0
        self._layer_structs = (_Layer * len(self.layers))()
        for i, lw in enumerate(self.layers):
            s = self._layer_structs[i]
            s.norm1, s.norm2 = lw["norm1"].data_ptr(), lw["norm2"].data_ptr()
            s.eps1, s.eps2 = lw["eps1"], lw["eps2"]
            for name in ("q", "k", "v", "o", "gate", "up", "down"):
                setattr(s, name, lw[name].struct)
        m = self._model = _Model()
        m.n_layers, m.d, m.n_heads, m.n_kv, m.hd = len(self.layers), self.d, self.H, self.Hk, self.hd
        m.inter, m.vocab, m.attn_scale, m.eps_final = self.inter, self.vocab, plan.scale, self.eps_final
        m.act_bits = self.act_bits
        m.emb, m.norm_final = self.emb.data_ptr(), self.norm_final.data_ptr()
        m.layers = ctypes.addressof(self._layer_structs)
        m.head = self.head.struct
        z = lambda n: torch.zeros(n, dtype=torch.float32)  # noqa: E731
        self._buf = {"x": z(self.d), "h": z(self.d), "q": z(self.H * self.hd), "att": z(self.H * self.hd),
                     "kvnew": z(2 * self.Hk * self.hd), "gbuf": z(self.inter), "ubuf": z(self.inter),
                     "act": z(self.inter)}
        self._state = _State(**{k: v.data_ptr() for k, v in self._buf.items()})
        self._scores = None
        self._scratch = None
        self.seq = _Sequence()
        self._step_s: dict[int, float] = {}       # threads -> recent seconds per decode step
        self._steps = 0
        self._best = 0                            # the thread count picked last
        self._retry = _RETRY_MIN                  # steps between tries of the other count

    def _check_layer(self, i, lw) -> None:
        d, want = self.d, {"q": (self.H * self.hd, self.d), "k": (self.Hk * self.hd, self.d),
                           "v": (self.Hk * self.hd, self.d), "o": (self.d, self.H * self.hd)}
        for name, shape in want.items():
            if (lw[name].n, lw[name].k) != shape:
                raise FastUnsupported(f"layer {i}: {name} is {lw[name].n}x{lw[name].k}, expected "
                                      f"{shape[0]}x{shape[1]}")
        g, u, dn = lw["gate"], lw["up"], lw["down"]
        if (g.n, g.k) != (u.n, u.k) or g.k != d or (dn.n, dn.k) != (d, g.n):
            raise FastUnsupported(f"layer {i}: MLP shapes gate {g.n}x{g.k}, up {u.n}x{u.k}, down "
                                  f"{dn.n}x{dn.k} do not fit hidden size {d}")
        if i and g.n != self.layers[0]["gate"].n:
            raise FastUnsupported(f"layer {i}: intermediate size differs from layer 0's")

    # ------------------------------------------------------------ description
    def describe(self) -> str:
        kinds = {Q2: "2-bit", Q4: "4-bit", Q8: "8-bit", F32: "float32"}
        lin = [w for lw in self.layers for w in lw.values() if isinstance(w, _Weight)]
        fmt = sorted({kinds[w.kind] for w in lin})
        mb = (sum(w.nbytes for w in lin) + self.head.nbytes) / 2 ** 20
        return (f"fast decoder: {len(self.layers)} layers, linears {'/'.join(fmt)}, LM head "
                f"{kinds[self.head.kind]}; {mb:.0f} MB of weights read per token; "
                f"{self.lib.plait_simd() or 'portable'}{'-bit' if self.lib.plait_simd() else ''} kernels, "
                f"int{self.act_bits} activations per group{' (down_proj int16)' if self.act_bits == 8 else ''}")

    @property
    def weight_bytes(self) -> int:
        return sum(w.nbytes for lw in self.layers for w in lw.values() if isinstance(w, _Weight)) + self.head.nbytes

    # ------------------------------------------------------------ sequences
    def reset(self) -> None:
        self.load_cache_state(None)

    def cache_state(self):
        return self.seq

    def load_cache_state(self, state) -> None:
        self.seq = _Sequence() if state is None else state

    @property
    def pos(self) -> int:
        return self.seq.pos

    def _reserve(self, need: int) -> None:
        """Room for ``need`` positions: the sequence's cache, the rope tables, the scores."""
        import torch
        seq = self.seq
        cap = 0 if seq.kv is None else seq.kv.shape[3]
        if need > cap:
            new = max(need, 2 * cap, 256)
            if self.context:
                new = min(new, max(self.context, need))
            kv = torch.zeros((len(self.layers), 2, self.Hk, new, self.hd), dtype=torch.float32)
            if seq.kv is not None and seq.pos:
                kv[:, :, :, :seq.pos] = seq.kv[:, :, :, :seq.pos]
            seq.kv = kv
            cap = new
        if self._cos is None or self._cos.shape[0] < cap:
            ang = np.arange(cap, dtype=np.float64)[:, None] * self._inv_freq[None, :]
            ang = np.concatenate([ang, ang], -1)
            self._cos = torch.from_numpy(np.cos(ang).astype(np.float32))
            self._sin = torch.from_numpy(np.sin(ang).astype(np.float32))
            self._model.rope_cos, self._model.rope_sin = self._cos.data_ptr(), self._sin.data_ptr()
        if self._scores is None or self._scores.numel() < self.H * cap:
            self._scores = torch.zeros(self.H * cap, dtype=torch.float32)
            self._state.scores = self._scores.data_ptr()
        self._model.cap = cap
        self._state.kv = seq.kv.data_ptr()

    # ------------------------------------------------------------ running
    def logits(self, tokens, *, last_only: bool = False) -> np.ndarray:
        """Logits ``[1, S, vocab]`` of the next ``S`` tokens (``[1, 1, vocab]`` with
        ``last_only`` or when the graph keeps only the last position); the sequence advances."""
        import torch
        ids = np.asarray(tokens, np.int64)
        if ids.ndim != 2 or ids.shape[0] != 1 or ids.shape[1] == 0:
            raise ValueError(f"the fast decoder takes token ids [1, S] (one sequence), got shape {ids.shape}")
        bad = ids[(ids < 0) | (ids >= self.vocab)]
        if bad.size:
            raise ValueError(f"token id {int(bad[0])} is outside the vocabulary (0..{self.vocab - 1})")
        last_only = last_only or self.plan.last_only
        s = ids.shape[1]
        self._reserve(self.seq.pos + s)
        threads = max(1, torch.get_num_threads())
        if s <= STEP_PREFILL_MAX:
            rows = []
            for t in ids[0]:
                out = np.empty(self.vocab, np.float32)
                n = self._step_threads(threads)
                t0 = time.perf_counter()
                if self.lib.plait_step(ctypes.byref(self._model), ctypes.byref(self._state), int(t), self.seq.pos,
                                       out.ctypes.data, n) != 0:
                    raise RuntimeError(f"fast decoder step failed at position {self.seq.pos}")
                self._record_step(n, time.perf_counter() - t0)
                self.seq.pos += 1
                rows.append(out)
            rows = rows[-1:] if last_only else rows
            return np.stack(rows)[None]
        with torch.no_grad():
            return self._prefill(torch.from_numpy(ids[0]), last_only, threads).numpy()[None]

    def _record_step(self, n: int, dt: float) -> None:
        """A decode step on ``n`` threads took ``dt`` seconds.  The count in use keeps a
        running average; a retry of the other count replaces its estimate, which is as old
        as its last retry (averaged in, one retry would move an estimate taken during a
        burst of load by a quarter only, and the decoder stayed on the slower count for
        hundreds of steps after the load had gone: measured 57-72 tok/s on one thread
        where two gave 95-120)."""
        if n not in self._step_s or n != self._best:
            self._step_s[n] = dt
        else:
            self._step_s[n] = 0.75 * self._step_s[n] + 0.25 * dt

    def _step_threads(self, top: int) -> int:
        """Threads of the next decode step: ``top`` (torch's thread count) or 1, whichever
        has been faster lately.  On a machine shared with other jobs a second thread may
        wait for a core at every barrier and make a step slower than one thread alone; the
        slower choice is retried after 16 steps, then after twice as many each time it is
        still slower (up to 256: a retry costs a slow step), so the pick follows the load."""
        if top == 1:
            return 1
        for n in (top, 1):
            if n not in self._step_s:
                return n
        best, other = (top, 1) if self._step_s[top] <= self._step_s[1] else (1, top)
        if best != self._best:
            self._best, self._retry, self._steps = best, _RETRY_MIN, 0
        self._steps += 1
        if self._steps >= self._retry:
            self._steps, self._retry = 0, min(2 * self._retry, _RETRY_MAX)
            return other
        return best

    def _linear(self, w: _Weight, x, threads: int):
        """``x @ W^T (+ b)`` in torch: float32 rows of ``W`` dequantized chunk by chunk."""
        import torch
        import torch.nn.functional as F
        if w.kind == F32:
            return F.linear(x, w.wf, w.bias)
        if x.shape[0] <= STEP_PREFILL_MAX:                 # a row or two (the last position's head)
            xs = x.contiguous()
            out = torch.empty((x.shape[0], w.n), dtype=torch.float32)
            for i in range(x.shape[0]):
                if self.lib.plait_gemv(ctypes.byref(w.struct), xs[i].data_ptr(), out[i].data_ptr(), threads,
                                       self.act_bits) != 0:
                    raise RuntimeError(f"the kernel refused {w.what}")
            return out
        rows = max(1, min(w.n, _CHUNK_ELEMS // w.k))
        if self._scratch is None or self._scratch.numel() < rows * w.k:
            self._scratch = torch.empty(max(_CHUNK_ELEMS, rows * w.k), dtype=torch.float32)
        out = torch.empty((x.shape[0], w.n), dtype=torch.float32) if rows < w.n else None
        for r0 in range(0, w.n, rows):
            r1 = min(w.n, r0 + rows)
            if self.lib.plait_dequant(ctypes.byref(w.struct), r0, r1, self._scratch.data_ptr(), threads) != 0:
                raise RuntimeError(f"dequantizing {w.what} failed")
            wt = self._scratch[:(r1 - r0) * w.k].view(r1 - r0, w.k)
            b = None if w.bias is None else w.bias[r0:r1]
            if out is None:
                return F.linear(x, wt, b)
            out[:, r0:r1] = F.linear(x, wt, b)
        return out

    def _prefill(self, ids, last_only: bool, threads: int):
        import torch
        import torch.nn.functional as F
        s, p0 = ids.shape[0], self.seq.pos
        t = p0 + s
        H, Hk, hd = self.H, self.Hk, self.hd
        cos, sin = self._cos[p0:t], self._sin[p0:t]
        half = hd // 2

        def rms(x, w, eps):
            var = x.square().mean(-1, keepdim=True)
            return x / torch.sqrt(var + eps) * w

        def rope(x, heads):
            xs = x.view(s, heads, hd)
            rot = torch.cat([-xs[..., half:], xs[..., :half]], -1)
            return xs * cos[:, None, :] + rot * sin[:, None, :]          # [S, heads, hd]

        if p0 == 0:
            mask, causal = None, True
        else:
            mask = torch.arange(t)[None, :] <= torch.arange(p0, t)[:, None]
            causal = False
        kv = self.seq.kv
        x = self.emb[ids]
        for li, lw in enumerate(self.layers):
            h = rms(x, lw["norm1"], lw["eps1"])
            q = rope(self._linear(lw["q"], h, threads), H)
            kv[li, 0, :, p0:t] = rope(self._linear(lw["k"], h, threads), Hk).transpose(0, 1)
            kv[li, 1, :, p0:t] = self._linear(lw["v"], h, threads).view(s, Hk, hd).transpose(0, 1)
            att = F.scaled_dot_product_attention(q.transpose(0, 1)[None], kv[li, 0, :, :t][None],
                                                 kv[li, 1, :, :t][None], attn_mask=mask, is_causal=causal,
                                                 scale=self.plan.scale, enable_gqa=H != Hk)
            x = x + self._linear(lw["o"], att[0].transpose(0, 1).reshape(s, H * hd), threads)
            h = rms(x, lw["norm2"], lw["eps2"])
            g, u = self._linear(lw["gate"], h, threads), self._linear(lw["up"], h, threads)
            x = x + self._linear(lw["down"], g / (1.0 + torch.exp(-g)) * u, threads)
        h = rms(x[-1:] if last_only else x, self.norm_final, self.eps_final)
        self.seq.pos = t
        return self._linear(self.head, h, threads)
