"""Hardware resource reports: ``plait hw report UNIT --config KEY=VALUE ...``.

:func:`hw_report` builds the unit's config from overrides, synthesizes it with
yosys (:func:`plait.rtl.synth.synthesize_unit`, cached) and prints a table of
LUT / FF / CARRY / DSP48E2 / BRAM, the same divided by the unit's
``macs_per_cycle()`` (resources per MAC), and the config's analytical
``estimate_resources()`` next to it, then the unit's static timing estimate
(:mod:`plait.rtl.timing`: estimated fmax against the 300 MHz target, the critical
register-to-register paths with their delay breakdown and the highest-fanout nets;
``--no-timing`` leaves it out, ``--paths N`` sets how many paths are listed).  Without
yosys it says so and prints the analytical estimate only.  :func:`hw_report_data` returns the same as a dict
(``--json``).

Wiring (done by the lead in ``cli.py``)::

    hw = sub.add_parser("hw"); hw_sub = hw.add_subparsers(dest="hw_command", required=True)
    from plait.rtl.report import register_cli
    register_cli(hw_sub)            # adds `hw report UNIT [--config K=V ...] [--json] ...`
"""
from __future__ import annotations

import json
import sys
from typing import Any

from .synth import RESOURCE_KEYS, SynthesisFailed, ToolMissing, synthesize_unit
from .units import get_unit

__all__ = ["hw_report", "hw_report_data", "register_cli", "REPORT_COLUMNS"]

REPORT_COLUMNS = ("LUT", "FF", "CARRY", "DSP48E2", "BRAM", "LUTRAM")


def hw_report_data(unit_name: str, overrides: dict | list | None = None, *,
                   family: str = "xcup", synth: bool = True, timing: bool = True,
                   n_paths: int = 5) -> dict[str, Any]:
    """Config, analytical estimate, synthesis result (or why there is none), per-MAC,
    and (``timing``) the timing estimate as ``data["timing"]`` (a
    :class:`plait.rtl.timing.TimingReport` as a dict)."""
    spec = get_unit(unit_name)
    cfg = spec.config_cls.from_overrides(overrides or {})
    macs = int(cfg.macs_per_cycle())
    try:
        est = cfg.estimate_resources()
    except NotImplementedError:
        est = None
    data: dict[str, Any] = {"unit": unit_name, "top": spec.top, "config": cfg.to_dict(),
                            "config_key": cfg.key(), "macs_per_cycle": macs,
                            "estimate": est, "synth": None, "synth_note": None,
                            "family": family, "timing": None}
    if not synth:
        data["synth_note"] = "synthesis not requested (--no-synth)"
    else:
        try:
            if timing:
                from .timing import unit_timing
                res, rep = unit_timing(unit_name, cfg, family=family, n_paths=n_paths)
                data["timing"] = rep.as_dict()
            else:
                res = synthesize_unit(unit_name, cfg, family=family)
        except ToolMissing as e:
            data["synth_note"] = f"yosys unavailable: {e}"
        else:
            t = res.table()
            if res.dsp_name != "DSP48E2":           # report column stays DSP48E2
                t["DSP48E2"] = t.pop(res.dsp_name)
            data["synth"] = {**t, "CARRY_cells": res.carry, "dsp_cascades": res.dsp_cascades,
                             "pcin_cascades": res.pcin_cascades, "cells": res.cells,
                             "yosys": res.yosys, "seconds": res.seconds, "cached": res.cached}
    if macs > 0:
        per = {}
        for name in ("synth", "estimate"):
            src = data[name]
            if src:
                per[name] = {k: src.get(k, 0) / macs for k in REPORT_COLUMNS}
        data["per_mac"] = per
    return data


def _fmt(v: Any, per: bool = False) -> str:
    if v is None:
        return "-"
    if per:
        return f"{v:.3f}"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:.1f}"
    return str(int(v))


def hw_report(unit_name: str, overrides: dict | list | None = None, *, family: str = "xcup",
              synth: bool = True, timing: bool = True, n_paths: int = 5) -> str:
    """Text report (see module docstring)."""
    d = hw_report_data(unit_name, overrides, family=family, synth=synth, timing=timing,
                       n_paths=n_paths)
    cfg_s = ", ".join(f"{k}={v}" for k, v in d["config"].items())
    lines = [f"hw report: unit {d['unit']} (top {d['top']}, config {d['config_key']})",
             f"  config: {cfg_s}",
             f"  MACs per cycle: {d['macs_per_cycle']}"]
    if d["synth"] is None:
        lines.append(f"  NOTE: no synthesis result -- {d['synth_note']}")
        lines.append("        showing the analytical estimate only")
    w = 26
    header = "  " + "source".ljust(w) + "".join(c.rjust(10) for c in REPORT_COLUMNS)
    lines += ["", header, "  " + "-" * (w + 10 * len(REPORT_COLUMNS))]
    rows = []
    if d["synth"] is not None:
        rows.append((f"yosys synth_xilinx {family}", d["synth"], False))
    if d["estimate"] is not None:
        rows.append(("analytical estimate", d["estimate"], False))
    for name, vals, per in rows:
        lines.append("  " + name.ljust(w) + "".join(_fmt(vals.get(c), per).rjust(10)
                                                    for c in REPORT_COLUMNS))
    for name, vals in (d.get("per_mac") or {}).items():
        label = ("yosys" if name == "synth" else "estimate") + " per MAC"
        lines.append("  " + label.ljust(w) + "".join(_fmt(vals.get(c), True).rjust(10)
                                                     for c in REPORT_COLUMNS))
    if not rows:
        lines.append("  (no synthesis result and the config has no estimate_resources())")
    if d["synth"] is not None:
        s = d["synth"]
        when = "cached" if s["cached"] else f"{s['seconds']} s"
        lines += ["", f"  DSP cascade links: {s['dsp_cascades']} (PCOUT->PCIN: "
                      f"{s['pcin_cascades']});  {s['yosys']}, {when}"]
        other = [f"{k}={v}" for k, v in s["cells"].items()]
        lines.append("  cells: " + ", ".join(other))
    if d.get("timing") is not None:
        from .timing import TimingReport, format_timing
        lines += ["", format_timing(TimingReport.from_dict(d["timing"]))]
    return "\n".join(lines)


def _cmd_hw_report(args) -> int:
    overrides: list[str] = []
    for item in args.config or []:
        overrides.extend(item if isinstance(item, list) else [item])
    try:
        if args.json:
            d = hw_report_data(args.unit, overrides, family=args.family,
                               synth=not args.no_synth, timing=not args.no_timing,
                               n_paths=args.paths)
            print(json.dumps(d, indent=1, sort_keys=True))
        else:
            print(hw_report(args.unit, overrides, family=args.family, synth=not args.no_synth,
                            timing=not args.no_timing, n_paths=args.paths))
    except (KeyError, ValueError, TypeError, SynthesisFailed, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"plait: error: hw report {args.unit}: {msg}", file=sys.stderr)
        return 2
    return 0


def register_cli(subparsers) -> None:
    """Add ``report`` to an argparse subparsers object (the ``hw`` command's)."""
    p = subparsers.add_parser("report", help="resource report of a hardware unit "
                                             "(yosys synth_xilinx, analytical fallback)")
    p.add_argument("unit", help="registered unit name (see plait.rtl.units.list_units())")
    p.add_argument("--config", nargs="+", action="append", metavar="KEY=VALUE",
                   help="config field overrides, e.g. --config n=32 m=2")
    p.add_argument("--family", default="xcup", help="yosys synth_xilinx family (default xcup)")
    p.add_argument("--no-synth", action="store_true", help="analytical estimate only")
    p.add_argument("--no-timing", action="store_true",
                   help="leave out the static timing estimate (plait.rtl.timing)")
    p.add_argument("--paths", type=int, default=5, metavar="N",
                   help="critical paths listed in the timing estimate (default 5)")
    p.add_argument("--json", action="store_true", help="print a JSON document")
    p.set_defaults(fn=_cmd_hw_report)
