"""Cycle table of SmolLM2-135M-Instruct's decoder linears on the RTL engines.

    .venv/bin/python benchmarks/rtl_layer.py [--recipe w4a8-lut] [--layers 0,15]
        [--decode-steps 2] [--n-dsp 64] [--prompt "..."] [--system "..."]
        [--calib-tokens 512]

Compiles the model with the recipe, maps (``map_engines``) and packs (``pack``) it
for the target ``sim16`` with an ``--n-dsp``-slice DSP chain, runs exact mode on a
chat prompt (prefill, then greedy decode steps), streams every linear evaluation of
the chosen decoder layers through its engine's RTL (Verilator via cocotb, one
simulation per engine, weights from the packed arrays) and prints, per evaluation:
linear, call, shape (T x N x K), engine, mode, measured cycles, the cycle model's
prediction and their ratio; then the simulation speed.  Every output integer is
compared with exact mode (equality); a mismatch exits with status 1.  The same flow
is the slow test ``tests/test_rtl_layer.py::test_smollm2_layers_on_rtl_match_exact_mode``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from plait.frontend import load_model, load_tokenizer  # noqa: E402
from plait.passes import PassManager, load_recipe, make_pass, run_recipe  # noqa: E402
from plait.passes.textdata import default_text  # noqa: E402
from plait.sim.layers import (artifact_packs, capture_linears, check_on_rtl,  # noqa: E402
                              format_table, sim_target)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--recipe", default="w8a8-sparse24-wanda",
                    help="a recipe with quantize_act (exact mode): w8a8-sparse24-wanda, "
                         "w8a8, w4a8-lut, w2a8-lut")
    ap.add_argument("--layers", default="0,15", help="decoder layers (comma list)")
    ap.add_argument("--decode-steps", type=int, default=2)
    ap.add_argument("--n-dsp", type=int, default=64, help="DSP chain slices of the build")
    ap.add_argument("--system", default="Answer briefly.", help="system message ('' for the "
                    "chat template's default)")
    ap.add_argument("--prompt", default="What is the capital of France?")
    ap.add_argument("--calib-tokens", type=int, default=512,
                    help="calibration token ids for recipes with a calibrate pass")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    graph, weights = load_model(args.model, progress=False)
    tok = load_tokenizer(args.model)
    msgs = ([{"role": "system", "content": args.system}] if args.system else []) + \
        [{"role": "user", "content": args.prompt}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
    if hasattr(ids, "keys"):
        ids = ids["input_ids"]
    recipe = load_recipe(args.recipe)
    cal = ({"ids": tok.encode(default_text())[-args.calib_tokens:]}
           if recipe.needs_calibration else None)
    graph, weights, _ = run_recipe(graph, weights, recipe, calibration=cal)
    target = sim_target(args.n_dsp)
    graph, weights, _ = PassManager([make_pass("map_engines", target=target.name,
                                               prefill_tokens=len(ids)),
                                     make_pass("pack")]).run(graph, weights)
    t1 = time.perf_counter()
    layers = [int(v) for v in args.layers.split(",") if v.strip()]
    calls, new = capture_linears(graph, weights, ids, decode_steps=args.decode_steps,
                                 layers=layers)
    t2 = time.perf_counter()
    check = check_on_rtl(graph, calls, target, packed=artifact_packs(graph, weights))
    t3 = time.perf_counter()
    print(f"{args.model} / {args.recipe}: prompt {len(ids)} tokens, decoded {tok.decode(new)!r}")
    print(f"target {target.summary()}")
    print(format_table(check.rows))
    for eng, run in check.runs.items():
        print(f"{eng}: {len(run.results)} linear calls, {run.beats} weight beats, "
              f"{run.cycles} cycles in {run.seconds['sim']:.1f}s of simulation "
              f"({run.beats_per_second:.0f} beats/s, {run.cycles_per_second:.0f} cycles/s; "
              f"build {'built' if run.seconds['built'] else 'cached'})")
    print(f"times: load+compile+map+pack {t1 - t0:.1f}s, exact mode {t2 - t1:.1f}s, "
          f"RTL {t3 - t2:.1f}s")
    print(check.scoreboard.summary())
    try:
        check.scoreboard.assert_clean()
    except AssertionError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
