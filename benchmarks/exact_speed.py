"""Decode and prefill speed of exact mode against float mode, measured in one run.

    .venv/bin/python benchmarks/exact_speed.py [--recipe w8a8] [--tokens 32] [--prefill 128]

Both interpreters run the same compiled SmolLM2 graph on the same tokens: a prefill
of ``--prefill`` tokens, then ``--tokens`` single-token decode steps (greedy inputs
are the text's own next tokens, so both modes do identical work).  Prints tokens/s
per mode and the exact/float ratio (the target: exact decode >= 0.5x float).
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from plait.frontend import load_model, load_tokenizer  # noqa: E402
from plait.ir import Interpreter  # noqa: E402
from plait.ir.exact import ExactInterpreter  # noqa: E402
from plait.passes import load_recipe, run_recipe  # noqa: E402
from plait.passes.textdata import default_text  # noqa: E402


def measure(interp, ids: list[int], prefill: int, tokens: int) -> tuple[float, float]:
    interp.reset()
    interp.logits(np.array([ids[:8]]))               # warm caches (prepared weights, tables)
    interp.reset()
    t0 = time.perf_counter()
    interp.logits(np.array([ids[:prefill]]))
    t_pre = time.perf_counter() - t0
    t0 = time.perf_counter()
    for t in ids[prefill:prefill + tokens]:
        interp.logits(np.array([[t]]))
    t_dec = time.perf_counter() - t0
    return prefill / t_pre, tokens / t_dec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", default="w8a8")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--prefill", type=int, default=128)
    args = ap.parse_args()
    tok = load_tokenizer("smollm2")
    ids = tok.encode(default_text())[:args.prefill + args.tokens]
    g, w = load_model("smollm2", progress=False)
    recipe = load_recipe(args.recipe)
    g, w, _ = run_recipe(g, w, recipe, calibration={"ids": tok.encode(default_text())}
                         if recipe.needs_calibration else None)
    rows = {}
    for name, cls in (("float", Interpreter), ("exact", ExactInterpreter)):
        rows[name] = measure(cls(g, w), ids, args.prefill, args.tokens)
    print(f"\nSmolLM2-135M-Instruct, recipe {args.recipe}: prefill {args.prefill} tokens, "
          f"{args.tokens} decode steps\n")
    print("| mode  | prefill tok/s | decode tok/s | decode vs float |")
    print("|-------|---------------|--------------|-----------------|")
    for name, (pre, dec) in rows.items():
        print(f"| {name:5} | {pre:13.1f} | {dec:12.2f} | {dec / rows['float'][1]:15.2f} |")


if __name__ == "__main__":
    main()
