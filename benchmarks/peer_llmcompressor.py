"""llmcompressor's GPTQ W4 g128 beside plait: the peer row of the perplexity benchmark.

    make peer-venv                                   # once: .venv-peer with llmcompressor 0.14.0.1
    .venv/bin/python benchmarks/peer_llmcompressor.py [--model smollm2] [--max-tokens 4096]
        [--window 512] [--calib-tokens 2048] [--group-size 128] [--out peer.json]

Why a second venv: ``llmcompressor==0.14.0.1`` pins ``transformers<=5.17`` and
``huggingface-hub<2`` (``pip install --dry-run`` into ``.venv`` would downgrade
transformers 5.24 -> 5.17 and huggingface_hub 2.4 -> 1.33, and add datasets, pandas,
pyarrow, auto-round ...), so it lives in ``.venv-peer`` (same CPU torch 2.13.0) and
this module drives it through a subprocess (``--driver JOB_DIR``; that side imports
no plait and nothing outside the standard library at module level).  The job
directory carries everything as files: the fp32 model and tokenizer
(``save_pretrained``), the calibration windows (``calib.json``), a check window; the
peer writes back the dequantized weights (``quantized.safetensors``), its own logits
on the check window and ``result.json`` (time, memory, versions, its warnings).

What runs, on CPU:

* the peer: ``llmcompressor.oneshot`` with ``GPTQModifier`` -- int4 weights,
  symmetric, ``strategy="group"``, every ``Linear`` except ``lm_head`` (SmolLM2 ties
  it to the embedding, which stays float); group size: the same rule as plait's
  ``w4g128`` recipe, 128 where it divides the layer's inputs K, else the first of
  64, 32, 16 that does (SmolLM2: K = 576 for q/k/v/o/gate/up -> g64, down_proj
  K = 1536 -> g128; llmcompressor refuses a group that does not divide K), one
  config group per size; llmcompressor's defaults otherwise (min-max observer,
  ``scale = absmax / 7.5`` on ``[-8, 7]``, ``block_size=128``,
  ``dampening_frac=0.01``, ``actorder="static"``); calibration: the given token
  ids cut into windows of ``window`` tokens (2048 ids -> 4 sequences of 512), handed
  in as an in-memory, already tokenized ``datasets.Dataset`` (no download, no
  shuffling, batch size 1); activations stay float (``A16``).  Wall time and peak RSS are of the ``oneshot``
  call alone (Linux: ``/proc/self/clear_refs`` resets ``VmHWM`` just before it).
* the scoring, in this process with the same code and token windows as every plait
  row: :func:`plait.runtime.evaluate.perplexity` on the transformers model
  (``plait.frontend.load_hf_model``), first in fp32 (the ratio baseline), then with
  the peer's dequantized weights loaded into it (W4A16 fake quantization is exactly
  a float Linear with dequantized weights).  The peer's own fake-quantized forward on
  a check window must give the same logits (``check_max_abs_diff`` in the result).
* greedy answers (``max_new_tokens`` = 32, the raw prompt, no chat template) to
  :data:`PROMPTS`, for fp32 and for the peer.

Texts: ``pydoc_topics`` is :func:`plait.runtime.evaluate.default_text` (scored: its
first ``--max-tokens`` tokens; calibration: its last ``--calib-tokens`` tokens, the
``calibrate`` pass's ``take="last"`` rule, disjoint from the scored ones);
``argparse_py`` is :func:`second_text`, the source of CPython's ``argparse.py``
(22k SmolLM2 tokens on CPython 3.11.7): code, not prose.

A later combined benchmark imports this file (``importlib``, like
``tests/test_peer_compress.py``) and calls :func:`run_peer`; :data:`PROMPTS` and the texts
come from :mod:`plait.passes.textdata` (shared with it).  :func:`check_peer` raises
:class:`PeerUnavailable` with a one-line message when the peer venv or llmcompressor
is missing; ``main`` prints it and exits with status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEER_VENV = REPO / ".venv-peer"
PEER_ENV_VAR = "PLAIT_PEER_PYTHON"        # another interpreter that has llmcompressor
LLMCOMPRESSOR_VERSION = "0.14.0.1"

try:   # the scored texts and prompts: one place
    from plait.passes.textdata import PROMPTS, TEXTS
except ImportError:   # the peer venv runs this file as its driver, without plait
    PROMPTS, TEXTS = (), {}

MAX_NEW_TOKENS = 32
CHECK_TOKENS = 64                          # tokens of the logits cross-check window


class PeerUnavailable(RuntimeError):
    """The llmcompressor peer cannot run here; ``str()`` is one line saying how to get it."""


class PeerError(RuntimeError):
    """The peer ran and failed (the message ends with the tail of its log)."""


def second_text() -> str:
    """The source of CPython's ``argparse`` module (:data:`plait.passes.textdata.TEXTS`)."""
    return TEXTS["argparse_py"]()


def texts() -> dict[str, str]:
    """Name -> text of every scored text."""
    return {name: fn() for name, fn in TEXTS.items()}


# --------------------------------------------------------------------------- the peer venv

def peer_python(python: str | os.PathLike | None = None) -> Path:
    if python is None:
        python = os.environ.get(PEER_ENV_VAR) or PEER_VENV / "bin" / "python"
    return Path(python)


def check_peer(python: str | os.PathLike | None = None) -> dict:
    """Versions in the peer interpreter, or :class:`PeerUnavailable` (one line)."""
    py = peer_python(python)
    how = "build it with `make peer-venv`"
    if not py.exists():
        raise PeerUnavailable(f"llmcompressor peer not installed: no interpreter {py} ({how}, "
                              f"or set {PEER_ENV_VAR})")
    # found, not imported (importing llmcompressor takes seconds; the driver does that)
    probe = ("import json, importlib.util as u, importlib.metadata as m\n"
             "for n in ('torch', 'numpy', 'safetensors', 'datasets', 'transformers', 'compressed_tensors', "
             "'llmcompressor'):\n"
             "    if u.find_spec(n) is None: raise SystemExit(f'ModuleNotFoundError: no module named {n!r}')\n"
             "print(json.dumps({p: m.version(p) for p in "
             "('llmcompressor', 'compressed-tensors', 'torch', 'transformers', 'datasets')}))")
    try:
        r = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, timeout=300,
                           env=_peer_env())
    except (OSError, subprocess.TimeoutExpired) as e:
        raise PeerUnavailable(f"llmcompressor peer unusable: {py} does not run ({type(e).__name__}; {how})")
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise PeerUnavailable(f"llmcompressor peer not installed in {py}: {last} ({how})")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _peer_env() -> dict:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false", "PYTHONNOUSERSITE": "1"})
    env.pop("PYTHONPATH", None)           # the peer must not see this checkout's plait
    return env


# --------------------------------------------------------------------------- plait's side

def _logits_fn(model):
    import torch

    def logits(win):
        with torch.no_grad():
            return model(torch.from_numpy(win)[None]).logits[0].float().numpy()
    return logits


def greedy(model, tok, prompts=PROMPTS, max_new_tokens: int = MAX_NEW_TOKENS) -> dict[str, str]:
    """Greedy continuation (argmax, full recompute, stops at EOS) of each raw prompt."""
    import torch
    eos = tok.eos_token_id
    out = {}
    for p in prompts:
        ids = list(tok.encode(p))
        new = []
        with torch.no_grad():
            for _ in range(max_new_tokens):
                nxt = int(model(torch.tensor([ids + new])).logits[0, -1].argmax())
                new.append(nxt)
                if nxt == eos:
                    break
        out[p] = tok.decode(new, skip_special_tokens=True)
    return out


def _scores(model, score_ids, window, max_tokens) -> dict:
    from plait.runtime.evaluate import perplexity
    res = {}
    for name, ids in score_ids.items():
        t0 = time.perf_counter()
        ppl, n = perplexity(_logits_fn(model), list(ids), max_tokens=max_tokens, window=window, progress=False)
        res[name] = {"ppl": ppl, "tokens": n, "eval_s": time.perf_counter() - t0}
    return res


def run_peer(calib_ids, score_ids: dict[str, list[int]], window: int = 512, max_tokens: int = 4096, *,
             model="smollm2", group_size: int = 128, fallback_group_sizes=(64, 32, 16),
             calib_window: int | None = None,
             prompts=PROMPTS, max_new_tokens: int = MAX_NEW_TOKENS, python=None,
             work_dir: str | os.PathLike | None = None, echo: bool = True) -> dict:
    """llmcompressor GPTQ W4 (symmetric, ``group_size`` or the first of
    ``fallback_group_sizes`` that divides a layer's K, lm_head float) of ``model``,
    calibrated on ``calib_ids`` (1-D; cut into windows of ``calib_window`` or ``window``
    tokens), scored like plait: perplexity of each ``score_ids`` text over
    ``token_windows(ids, max_tokens, window)`` for fp32 and the peer, greedy answers.
    ``echo`` streams the peer's log to stderr.  Raises :class:`PeerUnavailable` before
    loading anything when the peer is missing."""
    import numpy as np
    import safetensors.torch
    import torch

    from plait.frontend import load_hf_model, load_tokenizer

    versions = check_peer(python)
    py = peer_python(python)
    calib = np.asarray(calib_ids, np.int64).reshape(-1)
    cw = calib_window or window
    if calib.size == 0:
        raise ValueError("run_peer: no calibration ids")
    windows = [calib[i:i + cw] for i in range(0, calib.size, cw)]
    if not score_ids:
        raise ValueError("run_peer: no texts to score")

    hf = load_hf_model(model).eval()
    tok = load_tokenizer(model)
    if tok is None:
        raise ValueError(f"run_peer: {model!r} has no tokenizer (needed for the answers)")

    # the peer first (it fails early, if it fails), then fp32, then the peer's weights
    first = next(iter(score_ids.values()))
    check = np.asarray(list(first)[:min(CHECK_TOKENS, window, max_tokens)], np.int64)
    with tempfile.TemporaryDirectory(prefix="plait-peer-", dir=work_dir) as d:
        job = Path(d)
        hf.save_pretrained(job / "model", safe_serialization=True)
        tok.save_pretrained(job / "model")
        (job / "calib.json").write_text(json.dumps([w.tolist() for w in windows]))
        np.save(job / "check.npy", check)
        (job / "job.json").write_text(json.dumps({
            "bits": 4, "group_sizes": [group_size, *fallback_group_sizes], "symmetric": True,
            "ignore": ["lm_head"],
            "calib_windows": len(windows), "calib_window": cw, "threads": torch.get_num_threads()}))
        log_path = job / "peer.log"
        t1 = time.perf_counter()
        with open(log_path, "w") as log:
            # -P: no benchmarks/ on sys.path (transformers imports a `kernels` package; so is
            # benchmarks/kernels.py); -s: no user site
            proc = subprocess.Popen([str(py), "-P", "-s", str(Path(__file__).resolve()), "--driver", str(job)],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    env=_peer_env(), cwd=str(job))
            for line in proc.stdout:
                log.write(line)
                if echo:
                    sys.stderr.write("  peer| " + line)
            rc = proc.wait()
        peer_wall = time.perf_counter() - t1
        log_text = log_path.read_text()
        if rc != 0 or not (job / "result.json").exists():
            tail = " | ".join(log_text.strip().splitlines()[-8:])
            raise PeerError(f"llmcompressor peer failed (exit status {rc}): {tail}")
        res = json.loads((job / "result.json").read_text())
        state = safetensors.torch.load_file(str(job / "quantized.safetensors"))
        peer_check = np.load(job / "check_logits.npy")

    t0 = time.perf_counter()
    fp32 = {"texts": _scores(hf, score_ids, window, max_tokens), "answers": greedy(hf, tok, prompts, max_new_tokens)}
    fp32_s = time.perf_counter() - t0
    got = hf.load_state_dict(state, strict=False)
    tied = getattr(hf.config, "tie_word_embeddings", False)
    missing = [k for k in got.missing_keys if not (tied and k == "lm_head.weight")]
    if missing or got.unexpected_keys:
        raise PeerError(f"peer weights do not fit the model: missing {missing[:3]}, "
                        f"unexpected {got.unexpected_keys[:3]}")
    if tied:
        hf.tie_weights()
    ours_check = _logits_fn(hf)(check)
    diff = float(np.abs(ours_check - peer_check).max())
    scale = float(np.abs(peer_check).max())
    if not diff <= 1e-3 * max(scale, 1.0):
        raise PeerError(f"the peer's dequantized weights do not reproduce its logits: "
                        f"max |diff| {diff:.3g} (logits up to {scale:.3g})")
    t2 = time.perf_counter()
    quant = {"texts": _scores(hf, score_ids, window, max_tokens), "answers": greedy(hf, tok, prompts, max_new_tokens)}
    quant_s = time.perf_counter() - t2
    for name, r in quant["texts"].items():
        r["ratio_to_fp32"] = r["ppl"] / fp32["texts"][name]["ppl"]
    return {
        "peer": f"llmcompressor {versions['llmcompressor']}",
        "scheme": (f"GPTQ W4A16 int4 symmetric, group {group_size} (else the first of "
                   f"{list(fallback_group_sizes)} dividing K), lm_head float"),
        "model": str(model), "window": window, "max_tokens": max_tokens,
        "calib_tokens": int(calib.size), "calib_windows": len(windows), "calib_window": cw,
        "versions": versions, "peer_python": str(py),
        "fp32": fp32, "quantized": quant,
        "gptq": res["gptq"], "quantized_modules": res["quantized_modules"],
        "code_levels": res["code_levels"], "dequant_vs_weight_max_abs": res["dequant_vs_weight_max_abs"],
        "peer_warnings": res["warnings"], "peer_config": res["config"],
        "check_max_abs_diff": diff, "check_tokens": int(check.size),
        "timing_s": {"fp32_eval": fp32_s, "peer_subprocess": peer_wall, "quantized_eval": quant_s},
    }


def markdown(rep: dict) -> str:
    names = list(rep["fp32"]["texts"])
    head = "| model / recipe | " + " | ".join(f"ppl {n} | vs fp32" for n in names) + " | GPTQ s | peak RSS GiB |"
    sep = "|" + "---|" * (1 + 2 * len(names) + 2)
    f = rep["fp32"]["texts"]
    q = rep["quantized"]["texts"]
    g = rep["gptq"]
    row0 = "| transformers fp32 | " + " | ".join(f"{f[n]['ppl']:.3f} | 1.0000" for n in names) + " | | |"
    gs = "/".join(sorted(rep["peer_config"]["modules_per_group_size"], key=int, reverse=True))
    row1 = (f"| {rep['peer']} GPTQ W4 g{gs} sym | "
            + " | ".join(f"{q[n]['ppl']:.3f} | {q[n]['ratio_to_fp32']:.4f}" for n in names)
            + f" | {g['wall_s']:.1f} | {g['peak_rss_bytes'] / 2**30:.2f} |")
    return "\n".join([head, sep, row0, row1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--max-tokens", type=int, default=4096)
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--calib-tokens", type=int, default=2048)
    ap.add_argument("--group-size", type=int, default=128)
    ap.add_argument("--python", help=f"the peer interpreter (default ${PEER_ENV_VAR} or .venv-peer/bin/python)")
    ap.add_argument("--out", help="write the report as JSON here")
    ap.add_argument("--quiet", action="store_true", help="do not stream the peer's log")
    ap.add_argument("--driver", metavar="JOB_DIR", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.driver:
        return _driver(Path(args.driver))
    try:
        check_peer(args.python)
    except PeerUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from plait.frontend import load_tokenizer
    tok = load_tokenizer(args.model)
    ids = {name: tok.encode(t) for name, t in texts().items()}
    calib = ids["pydoc_topics"][-args.calib_tokens:]
    try:
        rep = run_peer(calib, ids, args.window, args.max_tokens, model=args.model, group_size=args.group_size,
                       python=args.python, echo=not args.quiet)
    except (PeerUnavailable, PeerError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if isinstance(e, PeerUnavailable) else 1
    rep["texts"] = {"pydoc_topics": "plait.runtime.evaluate.default_text() (pydoc_data.topics)",
                    "argparse_py": f"argparse.py source of CPython {sys.version.split()[0]}"}
    rep["text_tokens"] = {n: len(v) for n, v in ids.items()}
    if args.out:
        Path(args.out).write_text(json.dumps(rep, indent=2) + "\n")
    print()
    print(markdown(rep))
    print()
    for p in PROMPTS:
        print(f"* {p!r}\n  - fp32: {rep['fp32']['answers'][p]!r}\n  - peer: {rep['quantized']['answers'][p]!r}")
    return 0


# --------------------------------------------------------------------------- the peer's side
# Runs in .venv-peer (llmcompressor, transformers 5.17): nothing from plait.

def _vm(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _driver(job: Path) -> int:
    import logging
    import resource
    import warnings

    import numpy as np
    import torch
    from compressed_tensors.quantization.lifecycle.forward import fake_quantize
    from datasets import Dataset
    from loguru import logger
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import GPTQModifier

    cfg = json.loads((job / "job.json").read_text())
    torch.set_num_threads(cfg.get("threads") or torch.get_num_threads())
    torch.manual_seed(0)
    caught = []
    logger.add(lambda m: caught.append(f"{m.record['level'].name}: {m.record['message'].splitlines()[0][:300]}")
               if m.record["level"].name in ("WARNING", "ERROR", "CRITICAL") else None, level="WARNING")
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    wlog = []
    showwarning = warnings.showwarning

    def keep(message, category, *a, **k):
        wlog.append(f"{category.__name__}: {str(message).splitlines()[0][:300]}")
        showwarning(message, category, *a, **k)
    warnings.showwarning = keep

    model = AutoModelForCausalLM.from_pretrained(job / "model", dtype=torch.float32, local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(job / "model", local_files_only=True)
    keys = list(model.state_dict().keys())
    rows = [list(map(int, w)) for w in json.loads((job / "calib.json").read_text())]
    ds = Dataset.from_dict({"input_ids": rows, "attention_mask": [[1] * len(r) for r in rows]})
    # one config group per group size: the first of group_sizes that divides the layer's K
    by_g: dict[int, list[str]] = {}
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and name.split(".")[-1] not in cfg["ignore"] and name not in cfg["ignore"]:
            g = next((g for g in cfg["group_sizes"] if m.in_features % g == 0), None)
            if g is None:
                raise SystemExit(f"peer: no group size of {cfg['group_sizes']} divides K={m.in_features} of {name}")
            by_g.setdefault(g, []).append(name)
    weights = {"num_bits": cfg["bits"], "type": "int", "symmetric": cfg["symmetric"], "strategy": "group"}
    groups = {f"group_{g}": {"targets": names, "weights": {**weights, "group_size": g}}
              for g, names in sorted(by_g.items(), reverse=True)}
    recipe = GPTQModifier(config_groups=groups, ignore=cfg["ignore"])

    rss0 = _vm("VmRSS")
    exact_peak = _reset_peak()
    t0 = time.perf_counter()
    model = oneshot(model=model, tokenizer=tok, dataset=ds, recipe=recipe, max_seq_length=cfg["calib_window"],
                    num_calibration_samples=len(rows), shuffle_calibration_samples=False, batch_size=1)
    wall = time.perf_counter() - t0
    peak = _vm("VmHWM") if exact_peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    # the dequantized weight of every quantized Linear (fake_quantize with its own qparams;
    # GPTQ already wrote quantize-dequantized values into .weight: check, then use them)
    quantized, worst, levels, args = [], 0.0, 0, None
    state = {}
    with torch.no_grad():
        mods = dict(model.named_modules())
        for name, m in mods.items():
            scheme = getattr(m, "quantization_scheme", None)
            if scheme is None or getattr(scheme, "weights", None) is None or not hasattr(m, "weight_scale"):
                continue
            w = m.weight.detach().float()
            dq = fake_quantize(w, m.weight_scale, m.weight_zero_point, scheme.weights,
                               getattr(m, "weight_global_scale", None))
            worst = max(worst, float((dq - w).abs().max()))
            g = scheme.weights.group_size
            codes = (dq.reshape(dq.shape[0], -1, g) / m.weight_scale.float()[..., None]).round()
            levels = max(levels, int(codes.unique().numel()))
            state[name + ".weight"] = dq.contiguous().clone()
            quantized.append(name)
            args = args or scheme.weights.model_dump(mode="json")
        full = model.state_dict()
        for k in keys:
            if k not in state and k in full and k != "lm_head.weight":
                state[k] = full[k].detach().float().contiguous().clone()
        check = torch.from_numpy(np.load(job / "check.npy"))
        logits = model(check[None]).logits[0].float().numpy()
    save_file(state, str(job / "quantized.safetensors"))
    np.save(job / "check_logits.npy", logits)
    (job / "result.json").write_text(json.dumps({
        "gptq": {"wall_s": wall, "peak_rss_bytes": peak, "rss_before_bytes": rss0,
                 "peak_is_exact": exact_peak, "threads": torch.get_num_threads()},
        "quantized_modules": len(quantized), "quantized_names": quantized,
        "dequant_vs_weight_max_abs": worst, "code_levels": levels,
        "config": {**weights, "group_sizes": cfg["group_sizes"], "ignore": cfg["ignore"],
                   "modules_per_group_size": {str(g): len(v) for g, v in by_g.items()},
                   "weight_args": args, "block_size": recipe.block_size,
                   "dampening_frac": recipe.dampening_frac,
                   "calib_windows": len(rows), "calib_window": cfg["calib_window"]},
        "warnings": sorted(set(caught)) + sorted(set(wlog)),
    }, indent=1))
    print(f"peer: GPTQ of {len(quantized)} linears in {wall:.1f} s, peak RSS {peak / 2**30:.2f} GiB "
          f"(before {rss0 / 2**30:.2f}), <= {levels} code levels, dequant-vs-weight {worst:.2g}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
