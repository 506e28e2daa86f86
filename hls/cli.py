"""Command line of the HLS flow: ``plait hls csim UNIT``.

:func:`register_cli` adds ``csim`` to an argparse subparsers object (the ``hls``
command's).  Units: the engines ``dsp_chain`` / ``lut_core`` (random cases of every
mode of the build), ``sfu`` (random vectors of every special function and the tables
header), ``layer`` (one decoder layer of a compiled model through the dataflow top
``layer_top``: a prefill and decode steps against exact mode).  User errors raise
:class:`plait.hls.gen.HlsError` (a ``ValueError``; one line naming what is wrong, e.g.
an unknown unit or field, a mode the build lacks, g++ missing); a bit mismatch is not an
exception: the command prints the first mismatch of every failing case and exits with
status 1.

``layer`` reads a compiled model from ``--artifact DIR`` (``plait compile ... -o DIR``:
its ``graph.plait`` + ``weights.safetensors``, loaded with :mod:`plait.ir.serialize`), or
compiles one with ``--recipe NAME`` through the ``compile_model(recipe) -> (graph,
weights)`` callable the top-level CLI hands to :func:`register_cli` (``plait.hls`` does
not import the compiler itself: DESIGN.md, layers of the code).
"""
from __future__ import annotations

import json
from typing import Callable, Optional

import numpy as np

from .gen import DEFAULT_K_MAX, ENGINES, UNITS, HlsError

__all__ = ["register_cli", "HlsError"]


def _print(res, args) -> int:
    if args.json:
        print(json.dumps({"unit": res.unit, "ok": res.ok, "cases": res.cases, "values": res.values,
                          "failed": res.failed, "seconds": res.seconds,
                          "mismatches": [m.__dict__ for m in res.mismatches],
                          "errors": res.errors}, indent=2))
    else:
        for m in res.mismatches:
            print(f"MISMATCH {m}")
        for e in res.errors:
            print(e)
        print(res.summary())
        b = res.build
        if b is not None:
            tcl = f"  (Vitis HLS: vitis_hls -f {b.tcl})" if b.top else ""
            print(f"build: {b.directory}{tcl}")
    return 0 if res.ok else 1


def _layer(args, compile_model: Optional[Callable]) -> int:
    from .layer_tb import find_layer, layer_case, layer_config, run_layer_csim
    if (args.artifact is None) == (args.recipe is None):
        raise HlsError("csim layer needs exactly one of --artifact DIR (a compiled model) or --recipe NAME")
    if args.artifact is not None:
        from pathlib import Path
        from plait.ir.serialize import GRAPH_FILE, load
        if not (Path(args.artifact) / GRAPH_FILE).is_file():
            raise HlsError(f"--artifact {args.artifact}: no {GRAPH_FILE} there (write one with plait compile -o DIR)")
        g, w = load(args.artifact)
    else:
        if compile_model is None:
            raise HlsError(f"--recipe needs the plait CLI's compiler; compile first "
                           f"(plait compile smollm2 --recipe {args.recipe} -o DIR) and pass --artifact DIR")
        g, w = compile_model(args.recipe)
    if args.tokens < 1 or args.decode < 0:
        raise HlsError(f"--tokens must be >= 1 and --decode >= 0, got {args.tokens} / {args.decode}")
    if args.tokens + args.decode > args.max_ctx:
        raise HlsError(f"{args.tokens} + {args.decode} positions exceed --max-ctx {args.max_ctx}")
    find_layer(g, args.layer)
    cfg = layer_config(g, w, args.layer, max_ctx=args.max_ctx)
    emb = [n for n in g.nodes("embedding")]
    vocab = int(g.node(emb[0].inputs[0]).type.shape[0]) if emb else 2
    rng = np.random.default_rng(args.seed)
    steps = [rng.integers(0, vocab, args.tokens)] + [[int(t)] for t in rng.integers(0, vocab, args.decode)]
    case = layer_case(g, w, steps, layer=args.layer, cfg=cfg, name=f"layer{args.layer}")
    res = run_layer_csim(cfg, [case], out_dir=args.out, vectors_out=True)
    if not args.json:
        print(f"layer {args.layer}: D={cfg.d} H={cfg.h}/{cfg.hkv} hd={cfg.hd} F={cfg.f}; engines "
              + " ".join(f"{n}={e}" for n, e in zip(("q", "k", "v", "o", "gate", "up", "down"), cfg.engines))
              + f"; prefill {args.tokens} + {args.decode} decode step(s); {res.values} integers")
    return _print(res, args)


def _cmd_csim(args, compile_model: Optional[Callable] = None) -> int:
    if args.unit == "layer":
        return _layer(args, compile_model)
    if args.unit == "sfu":
        from .sfu_tb import random_vectors, run_sfu_csim, sfu_build
        from .csim import run_csim
        v = random_vectors(args.seed)
        return _print(run_csim(sfu_build(out_dir=args.out), v.as_cases()), args)
    from .csim import csim
    over = [kv for group in (args.config or []) for kv in group]
    modes = [m for group in (args.mode or []) for m in group] or None
    res = csim(args.unit, over, modes=modes, seed=args.seed, k_max=args.k_max, out_dir=args.out)
    return _print(res, args)


def register_cli(subparsers, compile_model: Optional[Callable] = None) -> None:
    """Add ``csim`` to an argparse subparsers object (the ``hls`` command's);
    ``compile_model(recipe) -> (graph, weights)`` enables ``csim layer --recipe``."""
    p = subparsers.add_parser(
        "csim", help="C-simulate an HLS unit with g++, bit-exact against plait.ir.numerics / exact mode")
    p.add_argument("unit", choices=sorted([*ENGINES, *UNITS]), help="HLS unit")
    p.add_argument("--config", nargs="+", action="append", metavar="KEY=VALUE",
                   help="engine config field overrides, e.g. --config n_dsp=32 cascade=4")
    p.add_argument("--mode", nargs="+", action="append", metavar="MODE",
                   help="modes to run (default: every mode of the build); dsp_chain: dense "
                        "2:4 2:16 4:16 8:16; lut_core: w1-odd .. w4-odd, w2-sym .. w4-sym, "
                        "w2-asym .. w4-asym, ternary")
    p.add_argument("--seed", type=int, default=0, help="random seed of the vectors / token ids")
    p.add_argument("--k-max", type=int, default=DEFAULT_K_MAX,
                   help=f"engines: on-chip activation buffer (largest K) of the build "
                        f"(default {DEFAULT_K_MAX})")
    p.add_argument("--artifact", default=None, metavar="DIR",
                   help="layer: a compiled model (plait compile -o DIR), mapped and packed")
    p.add_argument("--recipe", default=None, help="layer: compile SmolLM2 with this recipe "
                                                  "(e.g. w8a8-sparse24-wanda, w4a8-lut)")
    p.add_argument("--layer", type=int, default=0, help="layer: decoder layer index (default 0)")
    p.add_argument("--tokens", type=int, default=8, help="layer: prefill length (default 8)")
    p.add_argument("--decode", type=int, default=2, help="layer: decode steps after it (default 2)")
    p.add_argument("--max-ctx", type=int, default=64,
                   help="layer: KV cache capacity / RoPE positions of the build (default 64)")
    p.add_argument("--out", default=None, help="build directory (default: the cache)")
    p.add_argument("--json", action="store_true", help="print a JSON document")
    p.set_defaults(fn=lambda a: _cmd_csim(a, compile_model))
