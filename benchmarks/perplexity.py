"""Perplexity of SmolLM2-135M-Instruct under several recipes vs the transformers model.

    .venv/bin/python benchmarks/perplexity.py [--max-tokens 4096] [--window 512]
        [--recipes fp32,w8,w4g128,sparse24] [--exact]

``--exact`` adds, for every recipe, a row in exact mode (``plait.ir.exact``: the
engines' integers end to end; needs recipes with the ``quantize_act`` pass, e.g.
``w8a8,w8a8-sparse24-wanda,w4a8-lut,w2a8-lut``) beside the float-mode row, and
the exact/float ratio.

Recipes with a ``calibrate`` pass (``sparse24-wanda`` ...) get the ids of the same
text, like ``plait compile``; the pass uses its *last* tokens (2048 by default),
disjoint from the first ``--max-tokens`` tokens scored here.

Prints a table: recipe, bits/weight, perplexity, ratio to the transformers model
measured in the same run on the same token windows, compile time.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from plait.frontend import load_hf_model, load_model, load_tokenizer  # noqa: E402
from plait.ir import Interpreter  # noqa: E402
from plait.ir.exact import ExactInterpreter  # noqa: E402
from plait.ir.stats import summarize  # noqa: E402
from plait.passes import load_recipe, run_recipe  # noqa: E402
from plait.runtime.evaluate import default_text, perplexity  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--max-tokens", type=int, default=4096)
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--recipes", default="fp32,w8,w4g128,sparse24")
    ap.add_argument("--exact", action="store_true", help="also evaluate each recipe in exact mode")
    args = ap.parse_args()

    tok = load_tokenizer(args.model)
    ids = tok.encode(default_text())
    rows = []

    hf = load_hf_model(args.model).eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        ref_ppl, n = perplexity(lambda w: hf(torch.from_numpy(w)[None]).logits[0].float().numpy(), ids,
                                max_tokens=args.max_tokens, window=args.window, progress=False)
    rows.append(("transformers (float)", "32", ref_ppl, 1.0, float("nan"), time.perf_counter() - t0, 1.0))
    del hf

    t0 = time.perf_counter()
    base_graph, base_weights = load_model(args.model, progress=False)
    t_load = time.perf_counter() - t0
    for name in args.recipes.split(","):
        t0 = time.perf_counter()
        recipe = load_recipe(name)
        cal = {"ids": ids} if recipe.needs_calibration else None
        g, w, _ = run_recipe(base_graph.copy(), base_weights.copy(), recipe, calibration=cal)
        t_compile = t_load + time.perf_counter() - t0
        bits = summarize(g)["bits_per_linear_weight"]
        float_ppl = None
        for mode, cls in (("float", Interpreter), ("exact", ExactInterpreter)):
            if mode == "exact" and not args.exact:
                continue
            interp = cls(g, w)

            def logits(win, interp=interp):
                interp.reset()
                return interp.logits(win[None])[0]
            t0 = time.perf_counter()
            ppl, _ = perplexity(logits, ids, max_tokens=args.max_tokens, window=args.window, progress=False)
            float_ppl = float_ppl or ppl
            rows.append((f"plait {name}" + (" exact" if mode == "exact" else ""), f"{bits:.2f}", ppl,
                         ppl / ref_ppl, t_compile, time.perf_counter() - t0, ppl / float_ppl))
            print(rows[-1], flush=True)

    print(f"\nperplexity of {args.model} on {n} tokens of pydoc_data.topics (windows of {args.window})\n")
    print(f"| {'model / recipe':<32} | bits/w | {'ppl':>8} | vs HF  | vs float | compile s | eval s |")
    print(f"|{'-' * 34}|--------|----------|--------|----------|-----------|--------|")
    for r in rows:
        print(f"| {r[0]:<32} | {r[1]:>6} | {r[2]:8.3f} | {r[3]:6.4f} | {r[6]:8.4f} | {r[4]:9.1f} | {r[5]:6.1f} |")


if __name__ == "__main__":
    main()
