"""Compression accuracy of SmolLM2-135M-Instruct: every method side by side, one run.

    .venv/bin/python benchmarks/compression.py [--recipes a,b,...] [--max-tokens 4096]
        [--window 512] [--peer] [--out results.json]

For each recipe: compile (time and peak memory of every pass, from the pass
manager's report), then in float mode the perplexity on each text of
:data:`plait.passes.textdata.TEXTS` (the first ``--max-tokens`` tokens, windows
of ``--window``; calibrating passes take the *last* 2048 tokens of the default
text, so scored and calibration tokens do not overlap) and the greedy answers to
:data:`PROMPTS`.  Ratios are to the fp32 row of the same run.  ``--peer`` adds
llm-compressor's GPTQ W4 g128 on the same calibration tokens and windows
(``benchmarks/peer_llmcompressor.py``; needs ``make peer-venv``).

Prints a markdown table (recipe, bits/weight, perplexity and ratio per text,
compile time, the slowest pass and the peak memory), the per-pass table and
the answers; ``--out`` writes everything as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from plait.frontend import load_model, load_tokenizer  # noqa: E402
from plait.ir import Interpreter  # noqa: E402
from plait.ir.interpreter import generate  # noqa: E402
from plait.ir.stats import summarize  # noqa: E402
from plait.passes import load_recipe, run_recipe  # noqa: E402
from plait.passes.textdata import PROMPTS, TEXTS, calibration_input  # noqa: E402
from plait.runtime.evaluate import perplexity  # noqa: E402

DEFAULT = ("fp32,w4g128,w4g128-gptq,w4g128-awq,w4g128-gptq-rotate,w3g128-gptq,w2g64-gptq,ternary-gptq,"
           "sparse24,sparse24-wanda,sparse24-sparsegpt,w4-sparse24-sparsegpt,mixed-3.5,w8a8-smooth,"
           "w4a8-gptq-rotate")


def evaluate(graph, weights, tok, ids: dict, args) -> dict:
    interp = Interpreter(graph, weights)

    def logits(win):
        interp.reset()
        return interp.logits(win[None])[0]
    out = {"texts": {}, "answers": {}}
    t0 = time.perf_counter()
    for name, t_ids in ids.items():
        ppl, n = perplexity(logits, t_ids, max_tokens=args.max_tokens, window=args.window, progress=False)
        out["texts"][name] = {"ppl": ppl, "tokens": n}
    for p in PROMPTS:
        new = generate(interp, tok.encode(p), args.answer_tokens, eos_ids=[tok.eos_token_id])
        out["answers"][p] = tok.decode(new)
    out["eval_seconds"] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--recipes", default=DEFAULT)
    ap.add_argument("--max-tokens", type=int, default=4096)
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--answer-tokens", type=int, default=24)
    ap.add_argument("--peer", action="store_true", help="add llm-compressor's GPTQ W4 g128 row")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()

    tok = load_tokenizer(args.model)
    ids = {name: tok.encode(fn()) for name, fn in TEXTS.items()}
    base_graph, base_weights = load_model(args.model, progress=False)
    rows = []
    for name in args.recipes.split(","):
        recipe = load_recipe(name)
        t0 = time.perf_counter()
        g, w, rep = run_recipe(base_graph.copy(), base_weights.copy(), recipe,
                               calibration=calibration_input(recipe, tok))
        row = {"recipe": name, "compile_seconds": time.perf_counter() - t0,
               "bits_per_weight": summarize(g)["bits_per_linear_weight"],
               "passes": [{"pass": p.name, "seconds": p.seconds, "peak_rss_mb": p.peak_rss_mb}
                          for p in rep.passes]}
        row.update(evaluate(g, w, tok, ids, args))
        rows.append(row)
        print(json.dumps(row), flush=True)        # every row in full as soon as it is measured
        if args.out:
            Path(args.out).write_text(json.dumps(rows, indent=2, default=str) + "\n")
        del g, w
    if args.peer:
        sys.path.insert(0, str(Path(__file__).parent))
        from peer_llmcompressor import run_peer
        cal = np.asarray(tok.encode(TEXTS["pydoc_topics"]()))[-2048:]
        t0 = time.perf_counter()
        peer = run_peer(cal, ids, args.window, args.max_tokens)
        q = peer["quantized"]
        g = peer["gptq"]
        rows.append({"recipe": "llm-compressor GPTQ W4 g128", "bits_per_weight": float("nan"),
                     "compile_seconds": time.perf_counter() - t0,
                     "passes": [{"pass": "llmcompressor.oneshot", "seconds": g["wall_s"],
                                 "peak_rss_mb": g["peak_rss_bytes"] / 2**20}],
                     "texts": {n: {"ppl": r["ppl"]} for n, r in q["texts"].items()},
                     "answers": q["answers"], "peer": peer})

    base = next((r for r in rows if r["recipe"] == "fp32"), rows[0])
    names = list(ids)
    print(f"\n{args.model}: perplexity on the first {args.max_tokens} tokens of each text (windows of "
          f"{args.window}); ratios to {base['recipe']}\n")
    head = "| recipe | bits/w | " + " | ".join(f"{n} ppl | ×" for n in names) + " | compile s | peak MB |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        cells = [f"{r['texts'][n]['ppl']:.3f} | {r['texts'][n]['ppl'] / base['texts'][n]['ppl']:.3f}"
                 for n in names]
        peak = max((p["peak_rss_mb"] or 0) for p in r["passes"]) if r["passes"] else 0
        print(f"| {r['recipe']} | {r['bits_per_weight']:.2f} | " + " | ".join(cells)
              + f" | {r['compile_seconds']:.1f} | {peak:.0f} |")
    print("\nper pass: seconds / peak MB\n")
    for r in rows:
        print(f"- {r['recipe']}: " + ", ".join(f"{p['pass']} {p['seconds'] or 0:.1f} s / {p['peak_rss_mb'] or 0:.0f} MB"
                                               for p in r["passes"]))
    print("\nanswers (greedy)\n")
    for p in PROMPTS:
        print(f"* {p!r}")
        for r in rows:
            print(f"  - {r['recipe']}: {r['answers'].get(p, '')!r}")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
