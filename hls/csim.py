"""C simulation of the HLS engines with g++, against golden vectors of ``plait.ir.numerics``.

Flow: :func:`plait.hls.gen.generate` writes the build (config header, library, top,
testbench); :func:`compile_tb` compiles top + testbench with ``g++ -O2 -std=c++17``
(cached by a hash of every source, the flags and the compiler version, under
``cache_dir()/hls/bin``); :func:`write_vectors` writes the cases; the testbench runs
all of them in one process and compares every integer; :func:`run_csim` parses its
report into a :class:`CsimResult` (the first mismatch of a failing case: array, index,
got, expected).

A *case* is a dict ``{"name": str, "ints": {key: int}, "arrays": {key: int array}}``
made by :func:`dsp_case` / :func:`lut_case` from a real :class:`QuantizedWeight` and
int8 activations: the memory images are the artifact's packed fields
(:mod:`plait.ir.numerics.pack`), the expected integers come from the numerics
(``schedule_chain`` / ``run_schedule`` / ``linear_int`` for the DSP chain;
``lut_precompute`` / ``lut_full_table`` / ``lut_trace`` / ``linear_int`` for the LUT core).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from plait.ir.numerics import (
    QuantizedWeight, linear_int, lut_full_table, lut_trace, parse_mode, run_schedule,
    schedule_chain, signed_weight,
)
from plait.ir.numerics.common import NumericsError, signed_range
from plait.ir.numerics.dsp import MODES, WBITS_CODE
from plait.ir.numerics.pack import DspPacked, LutPacked, pack_dsp, pack_lut
from plait.ir.cache import cache_dir

from .gen import DEFAULT_K_MAX, HlsBuild, HlsError, engine_config, generate

__all__ = ["CompileError", "Mismatch", "CsimResult", "CXX_FLAGS", "find_gxx", "compile_tb",
           "write_vectors", "dsp_case", "lut_case", "dsp_packed_case", "lut_packed_case", "dsp_weight", "lut_weight",
           "random_cases", "run_csim", "run_binary", "csim_cases", "csim", "compile", "compile_sources", "run_types_tb", "LUT_MODES", "lut_mode_name",
           "parse_lut_mode"]

CXX_FLAGS = ("-std=c++17", "-O2", "-Wall", "-Wno-unknown-pragmas", "-Wno-unused-label")


class CompileError(RuntimeError):
    """g++ rejected the generated C++ (a bug in the library, not a user error)."""


@dataclass(frozen=True)
class Mismatch:
    case: str
    array: str
    index: int
    got: int
    expected: int

    def __str__(self) -> str:
        return (f"case {self.case}: {self.array}[{self.index}] = {self.got}, "
                f"expected {self.expected}")


@dataclass
class CsimResult:
    unit: str
    cases: int
    failed: list[str]
    mismatches: list[Mismatch]
    errors: list[str]
    output: str
    binary: Path
    seconds: float
    returncode: int
    names: list[str] = field(default_factory=list)
    build: Optional[HlsBuild] = None        # the generated build that ran
    values: int = 0                         # expected integers compared (exp_* arrays)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.failed and not self.errors

    def summary(self) -> str:
        if self.ok:
            return f"{self.unit}: {self.cases} case(s) bit-exact ({self.seconds:.2f} s)"
        first = self.mismatches[0] if self.mismatches else (self.errors or ["?"])[0]
        return (f"{self.unit}: {len(self.failed)} of {self.cases} case(s) failed; "
                f"first: {first}")


# --------------------------------------------------------------------------- compile

def find_gxx() -> str:
    """The g++ to use (``$CXX`` if set, else ``g++`` on PATH); :class:`HlsError` if none."""
    cxx = os.environ.get("CXX") or "g++"
    path = shutil.which(cxx)
    if path is None:
        raise HlsError(f"g++ not found ({cxx!r} is not on PATH): the HLS C simulation "
                       f"compiles with g++ (apt-get install g++)")
    return path


@lru_cache(maxsize=None)
def _gxx_version(cxx: str) -> str:
    return subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout


def compile(sources: Sequence[str | Path], include_dirs: Sequence[str | Path], name: str, *,
            defines: Sequence[str] = ()) -> Path:
    """Compile ``sources`` (paths) into one binary with ``g++`` (:data:`CXX_FLAGS`,
    ``-I`` each of ``include_dirs``, ``-D`` each of ``defines``); cached as
    ``cache_dir()/hls/bin/<name>-<hash>/tb_<name>`` by a hash of the sources, every
    ``*.h`` in the include directories, the flags and the compiler version, so a changed
    header (a regenerated config or tables header) rebuilds and an unchanged one never
    does.  One compile at a time (a file lock: the machines are small).  The one g++
    entry point of the HLS flow (engines, special functions, layer, type layer)."""
    cxx = find_gxx()
    srcs = [Path(s) for s in sources]
    incs = [Path(d) for d in include_dirs]
    flags = [*CXX_FLAGS, *(f"-D{d}" for d in defines)]
    h = hashlib.sha256()
    for s in srcs:
        h.update(s.name.encode() + b"\0" + s.read_bytes() + b"\0")
    for d in incs:
        for f in sorted(d.glob("*.h")):
            h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    h.update(" ".join(flags).encode() + _gxx_version(cxx).encode())
    out_dir = cache_dir() / "hls" / "bin" / f"{name}-{h.hexdigest()[:16]}"
    binary = out_dir / f"tb_{name}"
    if binary.exists():
        return binary
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():                       # built while we waited
            return binary
        tmp = out_dir / f".tb_{name}.{os.getpid()}"
        cmd = [cxx, *flags, *(f"-I{d}" for d in incs), *map(str, srcs), "-o", str(tmp)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise CompileError(f"g++ failed on the {name} C simulation "
                               f"({' '.join(cmd)}):\n{r.stderr[-4000:]}")
        os.replace(tmp, binary)
    return binary


def compile_sources(tag: str, include_dir: Path, sources: Sequence[str],
                    deps: Sequence[str] = ()) -> Path:
    """:func:`compile` of ``sources`` (file names in ``include_dir``) with ``include_dir``
    on the include path (``deps``: kept for callers; every header there is hashed)."""
    include_dir = Path(include_dir)
    return compile([include_dir / s for s in sources], [include_dir], tag)


def compile_tb(build: HlsBuild) -> Path:
    """Compile the build's top and testbench; returns the binary (cached by a hash of
    every source in the build directory, the flags and the compiler version)."""
    return compile_sources(build.unit, build.directory, [*build.sources, build.tb])


# --------------------------------------------------------------------------- vectors

def _flat(a) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "iub":
        raise NumericsError(f"vector arrays must be integers, got {a.dtype}")
    return a.astype(np.int64).reshape(-1)


def write_vectors(path: str | Path, cases: Iterable[dict]) -> Path:
    """Write ``cases`` in the testbench's text format (``hls/src/tb_common.h``)."""
    path = Path(path)
    parts = ["plait-vectors 1\n"]
    for c in cases:
        name = str(c["name"])
        if not name or any(ch.isspace() for ch in name):
            raise HlsError(f"case name {name!r} must be non-empty without spaces")
        parts.append(f"case {name}\n")
        for k, v in c.get("ints", {}).items():
            parts.append(f"int {k} {int(v)}\n")
        for k, v in c.get("arrays", {}).items():
            f = _flat(v)
            parts.append(f"arr {k} {f.size} ")
            parts.append(" ".join(map(str, f.tolist())))
            parts.append("\n")
        parts.append("end\n")
    path.write_text("".join(parts))
    return path


def dsp_packed_case(x, pk: DspPacked, p_expected, *, name: str = "case") -> dict:
    """A DSP-chain case straight from an artifact's pack (:class:`DspPacked`, e.g.
    ``read_packed(attrs["pack"], store)``): ``x`` int8 ``[2, K]`` (two token rows; pad a
    single row with zeros), ``p_expected`` int ``[2, rows]`` (the exact-mode P)."""
    arrays = pk.arrays()
    x = np.asarray(x)
    if x.shape != (2, pk.k):
        raise HlsError(f"DSP chain activations must be [2, {pk.k}] (two lanes), got {x.shape}")
    return {"name": name,
            "ints": {"n_dsp": pk.n_dsp, "mode": MODES[pk.mode][2], "wbits": WBITS_CODE[pk.bits],
                     "rows": pk.rows,
                     "k": pk.k, "group_size": pk.group_size, "err_expected": 0},
            "arrays": {"x": x, "codes": arrays["codes"],
                       "idx": arrays.get("idx", np.zeros(0, np.uint8)), "mant": arrays["mant"],
                       "p_expected": np.asarray(p_expected).reshape(2, pk.rows)}}


def lut_packed_case(x, pk: LutPacked, p_expected, *, name: str = "case") -> dict:
    """A LUT-core case straight from an artifact's pack (:class:`LutPacked`): ``x`` int8
    ``[m_rows, K]`` (``m_rows`` <= the core's M), ``p_expected`` int ``[m_rows, rows]``."""
    arrays = pk.arrays()
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != pk.k:
        raise HlsError(f"LUT core activations must be [m_rows, {pk.k}], got {x.shape}")
    return {"name": name,
            "ints": {"tile_n": pk.tile_n, "bits": pk.bits, "offset": int(pk.offset),
                     "m_rows": int(x.shape[0]), "rows": pk.rows, "k": pk.k,
                     "group_size": pk.group_size, "err_expected": 0},
            "arrays": {"x": x, "planes": arrays["planes"], "zp": arrays["zp"],
                       "mant": arrays["mant"],
                       "p_expected": np.asarray(p_expected).reshape(x.shape[0], pk.rows)}}


def dsp_case(cfg, x, qw: QuantizedWeight, mode="dense", *, bits: Optional[int] = None,
             name: str = "case", schedule: bool = True) -> dict:
    """A DSP-chain case: two token rows ``x`` int8 ``[2, K]`` times ``qw`` ``[N, K]`` in
    ``mode`` with ``bits``-bit codes (default: the narrowest, as the pack pass does).

    Memory images: :func:`pack_dsp`'s fields.  Expected: ``P = linear_int(x, qw)`` and,
    with ``schedule``, the beats of :func:`schedule_chain` and the group accumulators of
    :func:`run_schedule` on ``cfg``'s geometry (which must equal ``group_accumulate``).
    """
    md = parse_mode(mode)
    x = np.asarray(x)
    pk = pack_dsp(qw, md, n_dsp=cfg.n_dsp, bits=bits)
    p_exp, _ = linear_int(x, qw)
    case = dsp_packed_case(x, pk, p_exp, name=name)
    if schedule:
        s = schedule_chain(x, signed_weight(qw), md, qw.group_size, n_dsp=cfg.n_dsp,
                           bits=pk.bits)
        if not (np.array_equal(s.codes, pk.codes) and np.array_equal(s.idx, pk.idx)):
            raise NumericsError("internal: schedule_chain and pack_dsp disagree on the beats")
        outs = run_schedule(s, cascade=cfg.cascade, lane_shift=cfg.lane_shift, acc_w=cfg.acc_w)
        case["arrays"].update({"sched_act": s.act, "sched_codes": s.codes, "sched_idx": s.idx,
                               "sched_last": s.last.astype(np.int64), "acc_expected": outs})
    return case


def lut_case(cfg, x, qw: QuantizedWeight, *, name: str = "case", trace: bool = True) -> dict:
    """A LUT-core case: ``x`` int8 ``[m_rows, K]`` (``m_rows <= cfg.m``) times ``qw``.

    Memory images: :func:`pack_lut`'s fields (tiles of ``cfg.n`` columns).  Expected:
    ``P`` of :func:`lut_trace` (checked equal to ``linear_int``) and, with ``trace``, the
    tables (``lut_precompute``), all 16 lookups per table (``lut_full_table``) and the
    group integers (``lut_trace(...).grp``)."""
    x = np.asarray(x)
    pk = pack_lut(qw, n=cfg.n)
    tr = lut_trace(x, qw, max_group=cfg.max_group, max_bits=cfg.max_bits)
    p_ref, _ = linear_int(x, qw)
    if not np.array_equal(tr.p, p_ref):
        raise NumericsError("internal: lut_trace and linear_int disagree")
    case = lut_packed_case(x, pk, tr.p, name=name)
    if trace:
        case["arrays"].update({"tables_expected": tr.tables, "full_expected": lut_full_table(x),
                               "grp_expected": tr.grp})
    return case


# --------------------------------------------------------------------------- random weights

def _scales(rng, shape) -> np.ndarray:
    return (rng.uniform(0.002, 0.05, size=shape)).astype(np.float32)


def dsp_weight(rng, rows: int, k: int, mode, bits: int, group_size: int,
               extreme: bool = False) -> QuantizedWeight:
    """A random symmetric ``bits``-bit weight following ``mode``'s N:M pattern (``extreme``:
    every kept weight at the range's minimum, -2^(bits-1))."""
    md = parse_mode(mode)
    lo, hi = signed_range(bits)
    q = np.full((rows, k), lo) if extreme else rng.integers(lo, hi + 1, size=(rows, k))
    if not md.dense:
        keep = np.zeros((rows, k // md.m, md.m), bool)
        r = np.argsort(rng.random((rows, k // md.m, md.m)), axis=-1)[..., :md.n]
        np.put_along_axis(keep, r, True, axis=-1)
        q = np.where(keep.reshape(rows, k), q, 0)
    codes = (q + (1 << (bits - 1))).astype(np.uint8)
    return QuantizedWeight(codes, _scales(rng, (rows, k // group_size)), None, bits, group_size,
                           "sym")


#: LUT core weight formats: (bits, scheme)
LUT_MODES = tuple((b, s) for s in ("odd", "sym", "asym") for b in (1, 2, 3, 4)
                  if not (s != "odd" and b == 1)) + ((2, "ternary"),)


def lut_mode_name(bits: int, scheme: str) -> str:
    return "ternary" if scheme == "ternary" else f"w{bits}-{scheme}"


def parse_lut_mode(name: str) -> tuple[int, str]:
    """``"w4-sym"`` / ``"w1-odd"`` / ``"ternary"`` -> ``(bits, scheme)``."""
    s = name.strip().lower()
    for b, sch in LUT_MODES:
        if lut_mode_name(b, sch) == s:
            return b, sch
    raise HlsError(f"unknown LUT core mode {name!r}; known: "
                   f"{', '.join(lut_mode_name(b, s) for b, s in LUT_MODES)}")


def lut_weight(rng, rows: int, k: int, bits: int, scheme: str, group_size: int,
               extreme: bool = False) -> QuantizedWeight:
    """A random LUT-core weight (``extreme``: every code at its maximum and, for asym, the
    zero points at 0, so the group sums reach the accumulators' bounds)."""
    top = 2 if scheme == "ternary" else (1 << bits) - 1
    codes = np.full((rows, k), top) if extreme else rng.integers(0, top + 1, size=(rows, k))
    zeros = None
    if scheme == "asym":
        g = k // group_size
        zeros = (np.zeros((rows, g)) if extreme else rng.integers(0, top + 1, (rows, g)))
        zeros = zeros.astype(np.int32)
    return QuantizedWeight(codes.astype(np.uint8), _scales(rng, (rows, k // group_size)), zeros,
                           bits, group_size, scheme)


def _act(rng, shape, extreme: Optional[int] = None) -> np.ndarray:
    if extreme is not None:
        return np.full(shape, extreme, np.int8)
    return rng.integers(-128, 128, size=shape).astype(np.int8)


def random_cases(unit: str, cfg, *, seed: int = 0, modes: Optional[Sequence[str]] = None,
                 schedule: bool = True) -> list[dict]:
    """Random cases covering every mode ``cfg`` builds (or ``modes``): for the DSP chain
    each mode x weight width 2/3/4/8, two group sizes, a partial last tile, plus an
    extreme case (activations -128, weights at their minimum); for the LUT core each
    weight format, two group sizes, a partial last tile, plus an extreme case."""
    rng = np.random.default_rng(seed)
    cases: list[dict] = []
    if unit == "dsp_chain":
        try:
            names = [parse_mode(m).name for m in (modes or cfg.mode_list())]
        except NumericsError as e:
            raise HlsError(str(e)) from None
        bad = [m for m in names if m not in cfg.mode_list()]
        if bad:
            raise HlsError(f"mode(s) {bad} are not in this build's modes {cfg.modes!r}")
        for mname in names:
            md = parse_mode(mname)
            r = cfg.n_dsp // md.n
            for bits in (2, 3, 4, 8):
                for gmul in (1, 4):
                    gs = md.m * gmul
                    k = gs * int(rng.integers(1, 4))
                    rows = r * int(rng.integers(1, 3)) + int(rng.integers(0, r)) if r > 1 \
                        else int(rng.integers(1, 4))
                    qw = dsp_weight(rng, rows, k, md, bits, gs)
                    cases.append(dsp_case(cfg, _act(rng, (2, k)), qw, md, bits=bits,
                                          name=f"{mname}_w{bits}_g{gs}_k{k}_r{rows}",
                                          schedule=schedule))
            gs = md.m * 4
            qw = dsp_weight(rng, r, gs * 2, md, 8, gs, extreme=True)
            cases.append(dsp_case(cfg, _act(rng, (2, gs * 2), -128), qw, md, bits=8,
                                  name=f"{mname}_extreme", schedule=schedule))
        return cases
    if unit == "lut_core":
        fmts = [parse_lut_mode(m) for m in modes] if modes else \
            [(b, s) for b, s in LUT_MODES if b <= cfg.max_bits]
        for bits, scheme in fmts:
            if bits > cfg.max_bits:
                raise HlsError(f"mode {lut_mode_name(bits, scheme)} needs max_bits >= {bits} "
                               f"(this build: {cfg.max_bits})")
            mname = lut_mode_name(bits, scheme)
            for gs in sorted({4, min(cfg.max_group, 32), cfg.max_group}):
                k = gs * int(rng.integers(1, 3))
                rows = cfg.n * int(rng.integers(0, 2)) + int(rng.integers(1, cfg.n + 1))
                m_rows = int(rng.integers(1, cfg.m + 1))
                qw = lut_weight(rng, rows, k, bits, scheme, gs)
                cases.append(lut_case(cfg, _act(rng, (m_rows, k)), qw,
                                      name=f"{mname}_g{gs}_k{k}_r{rows}_m{m_rows}",
                                      trace=schedule))
            qw = lut_weight(rng, cfg.n, cfg.max_group, bits, scheme, cfg.max_group, extreme=True)
            cases.append(lut_case(cfg, _act(rng, (cfg.m, cfg.max_group), -128), qw,
                                  name=f"{mname}_extreme", trace=schedule))
        return cases
    raise HlsError(f"unknown HLS engine {unit!r}; known: dsp_chain, lut_core")


# --------------------------------------------------------------------------- run

_MISMATCH = re.compile(r"^MISMATCH case=(\S+) array=(\S+) index=(-?\d+) got=(-?\d+) "
                       r"expected=(-?\d+)$")
_CASE = re.compile(r"^CASE (\S+) (ok|FAIL)$")


def run_csim(build: HlsBuild, cases: Sequence[dict], *, vectors: Optional[str | Path] = None,
             timeout: float = 600) -> CsimResult:
    """Compile (cached) and run the testbench of ``build`` on ``cases``."""
    return run_binary(build.unit, compile_tb(build), cases, vectors, timeout, build)


def _expected_values(cases: Sequence[dict]) -> int:
    return sum(np.asarray(v).size for c in cases for k, v in c.get("arrays", {}).items()
               if k.startswith("exp_") or k.endswith("_expected"))


def run_binary(unit: str, binary: Path, cases: Sequence[dict], vectors=None, timeout: float = 600,
               build: Optional[HlsBuild] = None) -> CsimResult:
    """Run a compiled testbench on ``cases`` (written to ``vectors`` or a temporary
    file) and parse its report (``CASE`` / ``MISMATCH`` / ``ERROR`` lines)."""
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="plait-hls-") as tmp:
        vpath = Path(vectors) if vectors else Path(tmp) / "vectors.txt"
        write_vectors(vpath, cases)
        r = subprocess.run([str(binary), str(vpath)], capture_output=True, text=True,
                           timeout=timeout)
    out = r.stdout + r.stderr
    mism, failed, errors, names = [], [], [], []
    for line in out.splitlines():
        m = _MISMATCH.match(line)
        if m:
            mism.append(Mismatch(m[1], m[2], int(m[3]), int(m[4]), int(m[5])))
        elif (c := _CASE.match(line)):
            names.append(c[1])
            if c[2] == "FAIL":
                failed.append(c[1])
        elif line.startswith("ERROR"):
            errors.append(line)
    if r.returncode not in (0, 1) and not errors:
        errors.append(f"testbench exited with status {r.returncode}")
    if len(names) != len(cases) and not errors:
        errors.append(f"testbench reported {len(names)} of {len(cases)} cases")
    return CsimResult(unit, len(cases), failed, mism, errors, out, binary,
                      time.monotonic() - t0, r.returncode, names, build, _expected_values(cases))


def run_types_tb(cases: Sequence[dict]) -> CsimResult:
    """Run ``hls/src/tb_types.cpp`` (the portable sint/uint of plait_types.h) on ``cases``."""
    from .gen import SRC_DIR
    binary = compile([SRC_DIR / "tb_types.cpp"], [SRC_DIR], "types")
    return run_binary("types", binary, cases, None, 120)


def csim_cases(unit: str, cases: Sequence[dict], config=None, *, k_max: int = DEFAULT_K_MAX,
               out_dir: Optional[str | Path] = None) -> CsimResult:
    """Generate the build of ``unit`` for ``config`` and C-simulate ``cases`` on it."""
    build = generate(unit, config, out_dir, k_max=k_max)
    return run_csim(build, cases)


def csim(unit: str, config=None, *, modes: Optional[Sequence[str]] = None, seed: int = 0,
         k_max: int = DEFAULT_K_MAX, out_dir: Optional[str | Path] = None,
         vectors_out: bool = True) -> CsimResult:
    """``plait hls csim UNIT``: random cases of every (or the given) mode of ``config``,
    bit-exact against the numerics.  With ``vectors_out`` the cases are also written as
    ``vectors.txt`` into the build directory (what ``run_hls.tcl``'s csim_design reads)."""
    cfg = engine_config(unit, config)
    cases = random_cases(unit, cfg, seed=seed, modes=modes)
    build = generate(unit, cfg, out_dir, k_max=k_max)
    res = run_csim(build, cases, vectors=build.path("vectors.txt") if vectors_out else None)
    res.names = res.names or [c["name"] for c in cases]
    return res
