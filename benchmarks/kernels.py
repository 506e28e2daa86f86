"""TVM integer kernels vs torch fp32 vs dequantize-then-matmul, measured in one run.

    nice .venv/bin/python benchmarks/kernels.py [--shapes 4096x4096,11008x4096]
        [--batches 1,8] [--formats W2A8,W4A8,W8A8,2:4] [--repeat 20] [--no-check]

For each weight shape ``N x K``, batch ``M`` and format it times (median of ``--repeat``
calls, 2 threads everywhere: ``torch.set_num_threads(2)``, ``TVM_NUM_THREADS=2``):

* ``tvm``: the plait kernel on the packed weight (W2A8 / W4A8: the LUT kernel on 2- / 4-bit
  sym weights; W8A8: the DSP-chain kernel, dense int8; 2:4: the DSP-chain kernel, 2:4
  sparse int8), int8 activations in, the 48-bit ``P`` out -- including the Python call;
* ``fp32``: ``x @ W.T`` in torch fp32 with the dense float weight;
* ``deq+mm``: dequantize the stored codes with their group scales (torch, every call),
  then the same fp32 matmul (what a runtime without integer kernels does).

and prints the ratios ``fp32 / tvm`` and ``deq+mm / tvm`` (> 1: the kernel is faster).
Unless ``--no-check``, each kernel's batch-1 output is first compared with
``plait.ir.numerics`` (``linear_int``) for equality.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TVM_NUM_THREADS", "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from plait.ir.numerics.common import linear_int, quantize_rtn  # noqa: E402
from plait.ir.numerics.dsp import prune_nm  # noqa: E402
from plait.ir.numerics.pack import pack_dsp, pack_lut  # noqa: E402
from plait.runtime import kernels as K  # noqa: E402

FORMATS = {"W2A8": ("lut", 2, None), "W4A8": ("lut", 4, None), "W8A8": ("dsp", 8, "dense"),
           "2:4": ("dsp", 8, "2:4")}
GROUP = 128


def _median_ms(f, repeat: int) -> float:
    f()
    f()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def _weights(fmt: str, n: int, k: int, rng):
    kind, bits, mode = FORMATS[fmt]
    w = rng.standard_normal((n, k)).astype(np.float32)
    if mode == "2:4":
        w = w * prune_nm(w, 2, 4)
    qw = quantize_rtn(w, bits, GROUP, "sym")
    if kind == "lut":
        kw = K.prepare_lut(pack_lut(qw))
        run = lambda x: K.lut_gemm(x, kw)  # noqa: E731
    else:
        kw = K.prepare_sparse(pack_dsp(qw, mode))
        run = lambda x: K.sparse_gemm(x, kw)  # noqa: E731
    return w, qw, run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="4096x4096,11008x4096", help="N x K weight shapes")
    ap.add_argument("--batches", default="1,8", help="activation rows M")
    ap.add_argument("--formats", default=",".join(FORMATS), help=f"of {', '.join(FORMATS)}")
    ap.add_argument("--repeat", type=int, default=20, help="timed calls per entry (median)")
    ap.add_argument("--no-check", action="store_true", help="skip the equality check")
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    shapes = [tuple(int(v) for v in s.split("x")) for s in a.shapes.split(",")]
    batches = [int(b) for b in a.batches.split(",")]
    fmts = a.formats.split(",")
    for f in fmts:
        if f not in FORMATS:
            ap.error(f"unknown format {f!r}; known: {', '.join(FORMATS)}")
    print(f"# host: {K.resolve_target('llvm').key}, 2 threads, median of {a.repeat}; "
          f"times in ms (shared machine: other jobs ran meanwhile)")
    hdr = f"{'shape':>11} {'M':>2} {'format':>6} {'tvm':>8} {'fp32':>8} {'deq+mm':>8} " \
          f"{'fp32/tvm':>8} {'deq/tvm':>8} {'equal':>5}"
    print(hdr)
    print("-" * len(hdr))
    for n, k in shapes:
        for fmt in fmts:
            w, qw, run = _weights(fmt, n, k, rng)
            wt = torch.from_numpy(w)
            codes = torch.from_numpy(qw.codes.astype(np.int16))
            scales = torch.from_numpy(qw.scales)
            zero = float(1 << (qw.bits - 1))

            def deq_mm(xf):
                wd = ((codes.float() - zero).view(n, k // GROUP, GROUP) * scales[..., None]).view(n, k)
                return xf @ wd.T

            for m in batches:
                x = rng.integers(-128, 128, (m, k)).astype(np.int8)
                xf = torch.from_numpy(x.astype(np.float32))
                eq = "-"
                if not a.no_check and m == 1:
                    eq = "yes" if np.array_equal(run(x), linear_int(x, qw)[0]) else "NO"
                t_tvm = _median_ms(lambda: run(x), a.repeat)
                t_fp = _median_ms(lambda: xf @ wt.T, a.repeat)
                t_dq = _median_ms(lambda: deq_mm(xf), max(3, a.repeat // 4))
                print(f"{n:>5}x{k:<5} {m:>2} {fmt:>6} {t_tvm:8.3f} {t_fp:8.3f} {t_dq:8.3f} "
                      f"{t_fp / t_tvm:8.2f} {t_dq / t_tvm:8.2f} {eq:>5}", flush=True)
                if eq == "NO":
                    print(f"MISMATCH: {fmt} {n}x{k} M={m}", file=sys.stderr)
                    return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
