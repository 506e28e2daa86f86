"""Design-space sweep of a hardware unit: ``plait hw sweep UNIT --grid KEY=V1,V2 ...``.

For every config of a grid (the cartesian product of the ``--grid`` value lists, on top
of the fixed ``--config`` overrides) this module synthesizes the unit with yosys and
estimates its timing (:func:`plait.rtl.timing.unit_timing`: both cached, so a second
sweep over the same sources costs nothing) and tabulates

* LUT (logic), memLUT (the LUTs of distributed RAM and SRLs, :func:`~plait.rtl.synth.
  memory_luts`), FF, DSP48E2 and BRAM (RAMB36 equivalents) of ``synth_xilinx``,
* the estimated fmax (MHz, the timing estimate's worst path of any group),
* ``macs_per_cycle`` -- int8 multiply-accumulates per clock of the config
  (:meth:`~plait.rtl.config.UnitConfig.macs_per_cycle`: the DSP chain's two packed lanes
  per slice, the LUT core's rate at its widest weights ``max_bits``), and the rate of the
  unit's best run-time mode (the DSP chain's dense-equivalent rate of its sparsest mode,
  the LUT core's rate at 1-bit weights), with every mode's rate in the JSON,
* throughput ``macs_per_cycle * fmax`` in GMAC/s (1e9 MAC/s), LUT and FF per MAC,
* the cost (below), and the ratios of LUT, DSP and throughput to the baseline: the
  first config of the grid that could be measured, in the same run.

Cost
    A config's cost is the share of the target device (``--target``, default ``u280``:
    its LUT, FF, DSP48E2, BRAM36 and URAM totals in :mod:`plait.ir.target`) taken by
    its most-used resource -- the *binding* resource, which says how many copies of the
    unit fit on the part (a DSP chain is bound by its DSPs, a LUT core by its LUTs or
    FFs).  Ties (configs with the same binding share, e.g. DSP chains of one ``n_dsp``)
    are broken by the sum of all shares, so the one with less fabric logic is cheaper.
    Costs are compared as the pair ``(binding share, sum of shares)``.

Pareto front
    A config is on the front when no other config has a throughput at least as high and
    a cost at most as high, one of them strictly (two objectives: throughput up, cost
    down).  ``--target-gmacs X`` names the cheapest config (by the cost above; equal
    costs: the faster) whose throughput is at least ``X`` GMAC/s; it is on the front by
    construction.  No config meeting ``X`` is a result, not an error: the sweep says so,
    names the fastest config, and exits 0.

Grid syntax
    ``--grid KEY=V1,V2,...`` (repeatable; KEY a config field, case-insensitive; values
    parsed as by :func:`plait.rtl.config.parse_overrides`).  A string field's values
    may hold commas themselves (the DSP chain's ``modes=dense,2:4`` is *one* value), so
    string values are separated by ``;`` only: ``--grid 'modes=dense;dense,2:4'`` is
    two configs (quote it in the shell).  Integer, boolean and float values may be
    separated by ``,`` or ``;``.  Combinations the config rejects (its ``validate()``
    raises, e.g. a cascade that a sparsity mode's group size is not a multiple of) are
    listed as skipped with the reason; a bad key or value, a key given twice, an empty
    value, or a grid with no valid config at all is a user error (``plait: error: ...``,
    exit 2), found before anything is synthesized.

Exit status of the CLI: 0 when every valid config was measured, 2 for bad input or a
missing yosys (checked before the first synthesis), 1 when yosys failed on a config
(the others are still reported; the failure is listed with yosys' error).

This module is in the ``rtl`` layer: it uses only :mod:`plait.ir` and :mod:`plait.rtl`.
``--plot FILE.png`` needs matplotlib (the ``sweep`` extra of ``pyproject.toml``), which
is imported only when a plot is asked for.
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import itertools
import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

from .config import UnitConfig, parse_overrides
from .synth import SynthesisFailed, ToolMissing
from .units import get_unit

__all__ = ["HwSweepError", "parse_grid", "expand_grid", "measure_config", "device_shares",
           "cost_key", "pareto_front", "cheapest_meeting", "sweep_data", "format_sweep",
           "plot_png", "register_cli", "MAX_CONFIGS", "COST_DOC"]

#: the largest grid a sweep accepts (each config is one yosys run of seconds to minutes)
MAX_CONFIGS = 256
#: resources that count towards the cost, with the :class:`plait.ir.target.Target` field
#: holding the device's total of each
_BUDGET_FIELDS = (("LUT", "lut"), ("FF", "ff"), ("DSP48E2", "dsp"), ("BRAM", "bram36"),
                  ("URAM", "uram"))
COST_DOC = ("cost = share of the target device taken by the most-used resource (LUT, FF, "
            "DSP48E2, BRAM36, URAM); ties broken by the sum of the shares")


class HwSweepError(ValueError):
    """A bad sweep request (grid, fixed overrides, target): the message names the option."""


# ------------------------------------------------------------------------ the grid
def _field_name(cls: type[UnitConfig], key: str) -> str:
    """The config field ``key`` names (case-insensitive), or HwSweepError listing the fields."""
    types = cls._field_types()
    lower = {n.lower(): n for n in types}
    name = lower.get(key.strip().lower())
    if name is None:
        raise HwSweepError(f"--grid {key.strip()}: {cls.__name__} has no field {key.strip()!r}; "
                           f"known fields: {', '.join(sorted(types))}")
    return name


def parse_grid(cls: type[UnitConfig], items: list[str]) -> dict[str, list]:
    """``["KEY=V1,V2", ...]`` -> ``{field: [typed values]}`` in the order given.

    String fields split on ``;`` only, the others on ``,`` or ``;`` (module docstring).
    Raises :class:`HwSweepError` for an item that is not ``KEY=VALUES``, an unknown key,
    a key given twice, an empty value, a value given twice, or one that does not parse.
    """
    if not items:
        raise HwSweepError("--grid: give at least one KEY=V1,V2,... to sweep")
    types = cls._field_types()
    grid: dict[str, list] = {}
    for item in items:
        if "=" not in item:
            raise HwSweepError(f"--grid {item!r} is not KEY=V1,V2,...")
        key, text = item.split("=", 1)
        name = _field_name(cls, key)
        if name in grid:
            raise HwSweepError(f"--grid {name} is given twice; put all its values in one --grid")
        seps = r";" if types[name] is str else r"[,;]"
        raw = [v.strip() for v in re.split(seps, text)]
        if any(not v for v in raw):
            hint = (" (string values are separated by ';', e.g. 'modes=dense;dense,2:4')"
                    if types[name] is str else "")
            raise HwSweepError(f"--grid {name}={text}: empty value{hint}")
        values = []
        for v in raw:
            try:
                parsed = parse_overrides(cls, {name: v})[name]
            except ValueError as e:
                raise HwSweepError(f"--grid {name}={text}: {e}") from None
            if parsed in values:
                raise HwSweepError(f"--grid {name}={text}: value {v!r} is given twice")
            values.append(parsed)
        grid[name] = values
    return grid


def _label(combo: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in combo.items())


def expand_grid(cls: type[UnitConfig], grid: dict[str, list], fixed: dict | None = None
                ) -> tuple[list[dict], list[dict]]:
    """The cartesian product of ``grid`` (first key varies slowest) on top of ``fixed``.

    Returns ``(configs, skipped)``: ``configs`` are ``{"index", "label", "combo",
    "config"}`` (a validated :class:`UnitConfig`), ``skipped`` are ``{"index", "label",
    "combo", "reason"}`` for combinations the config class refuses (and for one equal to
    an earlier config).  ``index`` numbers every combination from 1 in grid order.
    """
    fixed = dict(fixed or {})
    both = sorted(set(fixed) & set(grid))
    if both:
        raise HwSweepError(f"--config and --grid both set {', '.join(both)}; give each field "
                           f"in one of them")
    n = math.prod(len(v) for v in grid.values())
    if n > MAX_CONFIGS:
        raise HwSweepError(f"--grid: {n} configs is more than {MAX_CONFIGS} (each one is a "
                           f"yosys synthesis); sweep a smaller grid")
    configs, skipped, seen = [], [], {}
    keys = list(grid)
    for i, values in enumerate(itertools.product(*grid.values()), start=1):
        combo = dict(zip(keys, values))
        entry = {"index": i, "label": _label(combo), "combo": combo}
        try:
            cfg = cls.from_dict({**fixed, **combo})
        except ValueError as e:
            skipped.append({**entry, "reason": str(e)})
            continue
        if cfg.key() in seen:
            skipped.append({**entry, "reason": f"the same config as #{seen[cfg.key()]}"})
            continue
        seen[cfg.key()] = i
        configs.append({**entry, "config": cfg})
    if not configs:
        why = "; ".join(f"{s['label']}: {s['reason']}" for s in skipped[:3])
        raise HwSweepError(f"--grid: no valid config in the grid ({why})")
    return configs, skipped


# ------------------------------------------------------------------- measuring
def mode_rates(cfg: UnitConfig) -> dict[str, float]:
    """MACs per clock of every run-time mode of one build: the DSP chain's
    dense-equivalent rate per sparsity mode (``M/N`` times the slice rate), the LUT
    core's rate per weight width ``W1A8..W{max_bits}A8``; ``{}`` for other units."""
    from .dsp_chain import DspChainConfig
    from .lut_core import LutCoreConfig
    if isinstance(cfg, DspChainConfig):
        return {m: cfg.dense_equivalent_macs_per_cycle(m) for m in cfg.mode_list()}
    if isinstance(cfg, LutCoreConfig):
        return {f"W{b}A8": cfg.macs_per_cycle(b) for b in range(1, cfg.max_bits + 1)}
    return {}


def measure_config(unit: str, cfg: UnitConfig, *, family: str = "xcup") -> dict[str, Any]:
    """Synthesize and time one config (cached); the measured part of a sweep row:
    resources, fmax, MAC rates, throughput and per-MAC figures."""
    from .timing import unit_timing
    t0 = time.time()
    res, rep = unit_timing(unit, cfg, family=family)
    table = res.table()
    macs = cfg.macs_per_cycle()
    fmax = float(rep.fmax_mhz)
    rates = mode_rates(cfg)
    best = max(rates, key=lambda m: rates[m]) if rates else None
    row = {"LUT": int(table["LUT"]), "FF": int(table["FF"]), "CARRY": int(table["CARRY"]),
           "DSP48E2": int(table[res.dsp_name]), "BRAM": float(table["BRAM"]),
           "URAM": int(table["URAM"]), "LUTRAM": int(table["LUTRAM"]),
           "mem_lut": res.lut_with_memory - res.lut,     # LUTs in distributed RAM / SRLs
           "fmax_mhz": round(fmax, 1), "fmax_reg2reg_mhz": round(float(rep.fmax_reg2reg_mhz), 1),
           "meets_clock": bool(rep.meets_target), "clock_mhz": rep.target_mhz,
           "macs_per_cycle": macs, "gmacs": macs * fmax / 1000.0,
           "mode_macs_per_cycle": rates, "best_mode": best,
           "best_mode_gmacs": rates[best] * fmax / 1000.0 if best else None,
           "lut_per_mac": table["LUT"] / macs if macs else None,
           "ff_per_mac": table["FF"] / macs if macs else None,
           "cached": bool(res.cached), "seconds": round(time.time() - t0, 1),
           "synth_seconds": res.seconds}
    return row


def device_shares(row: dict, target) -> dict[str, float]:
    """``{resource: used / device total}`` of a row on ``target`` (a
    :class:`plait.ir.target.Target`); resources the device lacks are left out, or
    ``inf`` when the row uses them."""
    out = {}
    for col, attr in _BUDGET_FIELDS:
        total, used = getattr(target, attr), row.get(col, 0) or 0
        if total:
            out[col] = used / total
        elif used:
            out[col] = math.inf
    return out


def cost_key(row: dict) -> tuple[float, float]:
    """The comparable cost of a row: ``(binding share, sum of shares)`` (module doc)."""
    return (row["cost"], row["cost_sum"])


def pareto_front(rows: list[dict]) -> list[bool]:
    """For each row, whether it is on the (throughput up, cost down) Pareto front: no
    other row has ``gmacs >=`` and :func:`cost_key` ``<=``, one of them strictly."""
    out = []
    for a in rows:
        ca = cost_key(a)
        dominated = any(b is not a and b["gmacs"] >= a["gmacs"] and cost_key(b) <= ca
                        and (b["gmacs"] > a["gmacs"] or cost_key(b) < ca) for b in rows)
        out.append(not dominated)
    return out


def cheapest_meeting(rows: list[dict], gmacs: float) -> Optional[dict]:
    """The cheapest row (by :func:`cost_key`; equal cost: the faster, then the earlier)
    whose throughput is at least ``gmacs`` GMAC/s, or ``None``."""
    ok = [r for r in rows if r["gmacs"] >= gmacs]
    if not ok:
        return None
    return min(ok, key=lambda r: (*cost_key(r), -r["gmacs"], r["index"]))


def _ratio(a, b) -> Optional[float]:
    return a / b if (a is not None and b) else None


def sweep_data(unit: str, grid: dict[str, list] | list[str], fixed: dict | list | None = None,
               *, family: str = "xcup", target: str = "u280",
               target_gmacs: Optional[float] = None,
               progress: Optional[Callable[[str], None]] = None,
               measure: Optional[Callable[..., dict]] = None) -> dict[str, Any]:
    """Run the sweep; the JSON document of ``plait hw sweep --json``.

    ``grid``: ``{field: [values]}`` or the CLI's ``["KEY=V1,V2", ...]``; ``fixed``: the
    ``--config`` overrides.  ``progress`` receives one line per config before and after
    it is measured.  ``measure(unit, cfg, family=...)``: default :func:`measure_config`
    (looked up when called, so tests can replace it), after checking that yosys is
    there; a stand-in skips that check.  Raises :class:`HwSweepError` (bad request) and
    :class:`~plait.rtl.synth.ToolMissing` (no yosys) before anything is synthesized.
    """
    from plait.ir.target import get_target
    from .synth import find_yosys

    spec = get_unit(unit)
    cls = spec.config_cls
    if not isinstance(grid, dict):
        grid = parse_grid(cls, list(grid))
    try:
        fixed_d = parse_overrides(cls, fixed or {})
    except ValueError as e:
        raise HwSweepError(f"--config: {e}") from None
    dev = get_target(target)
    if target_gmacs is not None and not (target_gmacs > 0 and math.isfinite(target_gmacs)):
        raise HwSweepError(f"--target-gmacs must be a positive number, got {target_gmacs}")
    configs, skipped = expand_grid(cls, grid, fixed_d)
    if measure is None:
        find_yosys()                           # ToolMissing before the first config
        measure = measure_config
    say = progress or (lambda line: None)
    rows, failed = [], []
    for n, c in enumerate(configs, start=1):
        cfg = c["config"]
        say(f"[{n}/{len(configs)}] #{c['index']} {c['label']}: synthesizing + timing ...")
        try:
            m = measure(unit, cfg, family=family)
        except SynthesisFailed as e:
            first = str(e).splitlines()[0]
            failed.append({"index": c["index"], "label": c["label"], "combo": c["combo"],
                           "error": first})
            say(f"[{n}/{len(configs)}] #{c['index']} FAILED: {first}")
            continue
        row = {"index": c["index"], "label": c["label"], "combo": c["combo"],
               "config": cfg.to_dict(), "config_key": cfg.key(), **m}
        shares = device_shares(row, dev)
        binding = max(shares, key=lambda k: shares[k])
        row.update(shares=shares, binding=binding, cost=shares[binding],
                   cost_sum=sum(shares.values()))
        rows.append(row)
        when = "cached" if m.get("cached") else f"{m.get('seconds', 0):.0f} s"
        say(f"[{n}/{len(configs)}] #{c['index']} LUT {row['LUT']} FF {row['FF']} "
            f"DSP {row['DSP48E2']} fmax {row['fmax_mhz']:.1f} MHz "
            f"{row['gmacs']:.2f} GMAC/s ({when})")
    doc: dict[str, Any] = {
        "unit": unit, "top": spec.top, "family": family, "target": dev.name,
        "grid": grid, "fixed": fixed_d, "cost": COST_DOC, "rows": rows,
        "skipped": [{k: s[k] for k in ("index", "label", "combo", "reason")} for s in skipped],
        "failed": failed, "baseline": None, "front": [], "target_gmacs": target_gmacs,
        "cheapest": None, "fastest": None}
    if not rows:
        return doc
    base = rows[0]
    doc["baseline"] = base["index"]
    for r, on in zip(rows, pareto_front(rows)):
        r["on_front"] = on
        r["vs_base"] = {"LUT": _ratio(r["LUT"], base["LUT"]),
                        "DSP48E2": _ratio(r["DSP48E2"], base["DSP48E2"]),
                        "gmacs": _ratio(r["gmacs"], base["gmacs"]),
                        "cost": _ratio(r["cost"], base["cost"])}
    doc["front"] = [r["index"] for r in rows if r["on_front"]]
    doc["fastest"] = max(rows, key=lambda r: (r["gmacs"], -r["cost"]))["index"]
    if target_gmacs is not None:
        best = cheapest_meeting(rows, target_gmacs)
        doc["cheapest"] = best["index"] if best else None
    return doc


# ------------------------------------------------------------------- the table
def _num(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def format_sweep(doc: dict) -> str:
    """The text table of a :func:`sweep_data` document, then the front, the target's
    answer, and the skipped and failed configs."""
    rows = doc["rows"]
    grid_s = " x ".join(f"{k}={';'.join(str(v) for v in vs)}" for k, vs in doc["grid"].items())
    fixed_s = ", ".join(f"{k}={v}" for k, v in doc["fixed"].items())
    n_all = len(rows) + len(doc["skipped"]) + len(doc["failed"])
    lines = [f"hw sweep: unit {doc['unit']} (top {doc['top']}), yosys synth_xilinx "
             f"{doc['family']}, {n_all} config(s): {grid_s}"
             + (f"; fixed {fixed_s}" if fixed_s else ""),
             f"  throughput = MACs/clock x estimated fmax; {doc['cost']} (device: "
             f"{doc['target']})",
             f"  ratios (/base) against #{doc['baseline']}, the first config measured"]
    tgt = doc["target"]
    cols = [("#", 3, lambda r: str(r["index"])),
            ("config", max([6] + [len(r["label"]) for r in rows]), lambda r: r["label"]),
            ("LUT", 7, lambda r: str(r["LUT"])),
            ("memLUT", 6, lambda r: str(r.get("mem_lut", "-"))),
            ("FF", 7, lambda r: str(r["FF"])),
            ("DSP", 5, lambda r: str(r["DSP48E2"])), ("BRAM", 5, lambda r: f"{r['BRAM']:g}"),
            ("fmax MHz", 8, lambda r: f"{r['fmax_mhz']:.1f}"),
            ("MAC/clk", 7, lambda r: f"{r['macs_per_cycle']:g}"),
            ("GMAC/s", 7, lambda r: f"{r['gmacs']:.2f}"),
            ("best mode GMAC/s", 16, lambda r: "-" if r["best_mode"] is None else
             f"{r['best_mode_gmacs']:.1f} {r['best_mode']}"),
            ("LUT/MAC", 7, lambda r: _num(r["lut_per_mac"], ".1f")),
            ("FF/MAC", 6, lambda r: _num(r["ff_per_mac"], ".1f")),
            (f"{tgt} %", 12, lambda r: f"{100 * r['cost']:.3f} {r['binding']}"),
            ("LUT/base", 8, lambda r: _num(r["vs_base"]["LUT"], ".2f")),
            ("GMAC/base", 9, lambda r: _num(r["vs_base"]["gmacs"], ".2f")),
            ("front", 5, lambda r: "*" if r["on_front"] else "")]
    if rows:
        head = "  ".join(name.ljust(w) if name == "config" else name.rjust(w)
                         for name, w, _ in cols)
        lines += ["", "  " + head, "  " + "-" * len(head)]
        for r in rows:
            lines.append("  " + "  ".join(fn(r).ljust(w) if name == "config" else fn(r).rjust(w)
                                          for name, w, fn in cols))
        by = {r["index"]: r for r in rows}
        front = [by[i] for i in doc["front"]]
        lines += ["", "  Pareto front (throughput up, cost down): "
                  + ", ".join(f"#{r['index']}" + (f" {r['label']}" if len(front) <= 5 else "")
                              for r in front)]
        fast = by[doc["fastest"]]
        if doc["target_gmacs"] is not None:
            if doc["cheapest"] is not None:
                c = by[doc["cheapest"]]
                lines.append(f"  cheapest config meeting {doc['target_gmacs']:g} GMAC/s: "
                             f"#{c['index']} {c['label']} ({c['gmacs']:.2f} GMAC/s, "
                             f"{100 * c['cost']:.3f}% of the {tgt} in {c['binding']})")
            else:
                lines.append(f"  no config meets {doc['target_gmacs']:g} GMAC/s; the fastest is "
                             f"#{fast['index']} {fast['label']} at {fast['gmacs']:.2f} GMAC/s")
    else:
        lines += ["", "  no config could be measured"]
    for s in doc["skipped"]:
        lines.append(f"  skipped #{s['index']} {s['label']}: {s['reason']}")
    for f in doc["failed"]:
        lines.append(f"  FAILED #{f['index']} {f['label']}: {f['error']}")
    return "\n".join(lines)


# -------------------------------------------------------------------- the plot
def plot_png(doc: dict) -> bytes:
    """Two panels: throughput against cost (device share, the front's axes, the front as
    a staircase) and throughput against LUT; front members filled, points labelled by
    their ``#`` (configs that measure the same share one label), with the key of the
    numbers below.  Needs matplotlib (imported here, Agg canvas, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = doc["rows"]
    per_col = 8
    n_cols = max(1, -(-len(rows) // per_col))
    key_h = 0.15 * min(len(rows), per_col) + 0.25
    fig = Figure(figsize=(12, 4.8 + key_h), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    panels = ((axes[0], lambda r: 100 * r["cost"],
               f"cost: share of the {doc['target']} in the binding resource (%)"),
              (axes[1], lambda r: r["LUT"], "LUT"))
    for ax, xf, xlabel in panels:
        for on, style in ((False, dict(facecolors="none", edgecolors="tab:gray")),
                          (True, dict(color="tab:red"))):
            pts = [r for r in rows if r.get("on_front") is on]
            if pts:
                ax.scatter([xf(r) for r in pts], [r["gmacs"] for r in pts], s=36, zorder=3,
                           label="Pareto front" if on else "dominated", **style)
        spots: dict[tuple, list[int]] = {}
        for r in rows:
            spots.setdefault((xf(r), r["gmacs"]), []).append(r["index"])
        for (x, y), idx in spots.items():
            ax.annotate(",".join(f"#{i}" for i in idx), (x, y), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("throughput (GMAC/s = MACs/clock x est. fmax)")
        ax.grid(True, alpha=0.3)
        ax.margins(x=0.2, y=0.12)
    front = sorted((r for r in rows if r.get("on_front")), key=lambda r: r["cost"])
    if len(front) > 1:
        axes[0].step([100 * r["cost"] for r in front], [r["gmacs"] for r in front],
                     where="post", color="tab:red", alpha=0.5, zorder=2)
    if doc.get("target_gmacs") is not None:
        for ax in axes:
            ax.axhline(doc["target_gmacs"], color="tab:blue", linestyle="--", linewidth=1,
                       label=f"target {doc['target_gmacs']:g} GMAC/s")
    if rows:
        axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"plait hw sweep: {doc['unit']} (yosys synth_xilinx {doc['family']}, "
                 f"timing estimate)", fontsize=10)
    bottom = key_h / (4.8 + key_h)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    for c in range(n_cols):
        chunk = rows[c * per_col:(c + 1) * per_col]
        text = "\n".join(f"#{r['index']}{'*' if r.get('on_front') else ' '} {r['label']}"
                         for r in chunk)
        fig.text(0.02 + c / n_cols, bottom - 0.02, text, va="top", ha="left", fontsize=7,
                 family="monospace")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# ------------------------------------------------------------------------ CLI
def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of GMAC/s, got {text!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"must be a positive number of GMAC/s, got {text!r}")
    return v


def _check_plot_path(path: str) -> Path:
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise HwSweepError(f"--plot {path}: expected a .png file name")
    if not p.parent.is_dir():
        raise HwSweepError(f"--plot {path}: directory {p.parent} does not exist")
    if importlib.util.find_spec("matplotlib") is None:
        raise HwSweepError("--plot needs matplotlib, which is not installed: "
                           "pip install -e '.[sweep]' (or pip install matplotlib)")
    return p


def _cmd_hw_sweep(args) -> int:
    fixed: list[str] = []
    for item in args.config or []:
        fixed.extend(item if isinstance(item, list) else [item])
    try:
        plot = _check_plot_path(args.plot) if args.plot else None
        doc = sweep_data(args.unit, args.grid or [], fixed, family=args.family,
                         target=args.target, target_gmacs=args.target_gmacs,
                         progress=lambda s: print(f"hw sweep {args.unit}: {s}",
                                                  file=sys.stderr, flush=True))
    except ToolMissing as e:
        print(f"plait: error: hw sweep {args.unit}: yosys unavailable (a sweep needs "
              f"synthesis): {e}", file=sys.stderr)
        return 2
    except (KeyError, ValueError, TypeError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"plait: error: hw sweep {args.unit}: {msg}", file=sys.stderr)
        return 2
    if plot is not None and doc["rows"]:
        plot.write_bytes(plot_png(doc))
    if args.json:
        print(json.dumps(doc, indent=1, sort_keys=True))
    else:
        print(format_sweep(doc))
        if plot is not None and doc["rows"]:
            print(f"  plot: {plot}")
    return 1 if doc["failed"] else 0


def register_cli(subparsers) -> None:
    """Add ``sweep`` to an argparse subparsers object (the ``hw`` command's)."""
    p = subparsers.add_parser(
        "sweep", help="design-space sweep of a hardware unit: resources, estimated fmax and "
                      "throughput per config, the Pareto front, the cheapest config for a target",
        description="Synthesize (yosys, cached) and time every config of a grid; print "
                    "LUT/FF/DSP/BRAM, estimated fmax, MACs per clock, GMAC/s and the ratios to "
                    "the first config, mark the Pareto front (throughput up, cost down) and "
                    "name the cheapest config meeting --target-gmacs; " + COST_DOC +
                    " (the device: --target).",
        epilog="example: plait hw sweep dsp_chain --grid n_dsp=16,32,64 --grid cascade=1,2 "
               "--grid 'modes=dense;dense,2:4' --target-gmacs 50 --plot sweep.png")
    p.add_argument("unit", help="registered unit name (see plait.rtl.units.list_units(); "
                                "e.g. dsp_chain, lut_core)")
    p.add_argument("--grid", action="append", metavar="KEY=V1,V2,...",
                   help="a config field and its values (repeatable; the grid is the product). "
                        "String values are separated by ';' because they may hold commas: "
                        "--grid 'modes=dense;dense,2:4' is two configs; numbers by ',' or ';'")
    p.add_argument("--config", nargs="+", action="append", metavar="KEY=VALUE",
                   help="fixed config field overrides applied to every config, e.g. "
                        "--config acc_w=40")
    p.add_argument("--target", default="u280",
                   help="hardware target whose LUT/FF/DSP/BRAM/URAM totals price a config "
                        "(plait.ir.target; default u280)")
    p.add_argument("--target-gmacs", type=_positive_float, metavar="X",
                   help="name the cheapest config whose throughput is at least X GMAC/s "
                        "(none meeting it is reported, exit status 0)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="write a plot (throughput vs cost and vs LUT, the front highlighted); "
                        "needs matplotlib (the 'sweep' extra)")
    p.add_argument("--family", default="xcup", help="yosys synth_xilinx family (default xcup)")
    p.add_argument("--json", action="store_true",
                   help="print only the JSON document (progress still goes to stderr)")
    p.set_defaults(fn=_cmd_hw_sweep)
