"""Command line of the HLS flow: ``plait hls csim UNIT``.

:func:`register_cli` adds ``csim`` to an argparse subparsers object (the ``hls``
command's).  User errors raise :class:`plait.hls.gen.HlsError` (a ``ValueError``; one
line naming what is wrong, e.g. an unknown unit or field, a mode the build lacks, g++
missing); a bit mismatch is not an exception: the command prints the first mismatch of
every failing case and exits with status 1.
"""
from __future__ import annotations

import json

from .gen import DEFAULT_K_MAX, ENGINES, HlsError

__all__ = ["register_cli", "HlsError"]


def _cmd_csim(args) -> int:
    from .csim import csim
    over = [kv for group in (args.config or []) for kv in group]
    modes = [m for group in (args.mode or []) for m in group] or None
    res = csim(args.unit, over, modes=modes, seed=args.seed, k_max=args.k_max,
               out_dir=args.out)
    if args.json:
        print(json.dumps({"unit": res.unit, "ok": res.ok, "cases": res.cases,
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
        print(f"build: {b.directory}  (Vitis HLS: vitis_hls -f {b.tcl})")
    return 0 if res.ok else 1


def register_cli(subparsers) -> None:
    """Add ``csim`` to an argparse subparsers object (the ``hls`` command's)."""
    p = subparsers.add_parser(
        "csim", help="C-simulate an HLS engine with g++, bit-exact against plait.ir.numerics")
    p.add_argument("unit", choices=sorted(ENGINES), help="HLS engine")
    p.add_argument("--config", nargs="+", action="append", metavar="KEY=VALUE",
                   help="unit config field overrides, e.g. --config n_dsp=32 cascade=4")
    p.add_argument("--mode", nargs="+", action="append", metavar="MODE",
                   help="modes to run (default: every mode of the build); dsp_chain: dense "
                        "2:4 2:16 4:16 8:16; lut_core: w1-odd .. w4-odd, w2-sym .. w4-sym, "
                        "w2-asym .. w4-asym, ternary")
    p.add_argument("--seed", type=int, default=0, help="random seed of the vectors")
    p.add_argument("--k-max", type=int, default=DEFAULT_K_MAX,
                   help=f"on-chip activation buffer (largest K) of the build "
                        f"(default {DEFAULT_K_MAX})")
    p.add_argument("--out", default=None, help="build directory (default: the cache)")
    p.add_argument("--json", action="store_true", help="print a JSON document")
    p.set_defaults(fn=_cmd_csim)
