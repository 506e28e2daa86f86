"""cocotb testbench of the LUT tensor core (rtl/sv/lut_core.sv).

Launched from pytest through :func:`plait.sim.runner.run_cocotb`
(tests/test_rtl_lut_core.py).  Every output tile ``P[M, N]`` is compared with
*equality* against the contract, :func:`plait.ir.numerics.linear_int`
(``dequant_groups(group_accumulate(signed_weight(qw), x, G), encode_scales(s))``).

Settings from the environment:

* ``PLAIT_TB_CONFIG``   the :class:`plait.rtl.lut_core.LutCoreConfig` JSON of the build
* ``PLAIT_TB_TESTS``    comma list of the tests to run (``cfg``, ``edges``, ``random``,
  ``throughput``, ``resets``; default all); the others are reported as *skipped* (cocotb.skipif,
  decided at import), as is a test left without a mode by ``PLAIT_LUT_MODES``
* ``PLAIT_LUT_TILES``   random tiles per weight mode in ``test_random_modes`` (default 24,
  or 1 when ``PLAIT_LUT_MACS`` is set)
* ``PLAIT_LUT_MACS``    ... and at least this many MACs (``M*N*K`` per tile) per mode
* ``PLAIT_LUT_MODES``   comma list of modes (default: all of :data:`MODES`)
* ``PLAIT_LUT_SEED``    stimulus seed (default 11)
* ``PLAIT_LUT_PERF_K``  reduction length of the throughput tiles (default 256)
* ``PLAIT_LUT_CHECKS``  JSON list of assertion-check windows for ``test_assertion_checks``
  (skipped without it): ``[{"name", "stim", "mut"}]``, see that test
* ``PLAIT_LUT_MUTANTS`` JSON list of mutant selects for ``test_mutants`` (skipped without
  it; plait.sim.mutate's campaign sets it), ``PLAIT_LUT_MUT_TILES`` its random tiles per
  mode (default 2)

Functional coverage (cocotb-coverage, :func:`cover_batch`) is sampled for every batch a
harness drives and exported to ``$PLAIT_SIM_OUT/functional_coverage.yml``.

``test_random_modes`` writes one Perf record per mode (``extra["test"] == "random"``):
``macs`` = useful lookups, ``cycles`` = clocks its batches took (first activation beat
accepted to last output), ``extra["macs_checked"]`` = weight x activation products
whose results were compared (``M*N*K`` per tile).

Performance (``test_throughput``, written as Perf JSON records): for each mode a
batch of tiles streams back to back with no idle input cycles and ``o_ready = 1``;
``cycles`` = rising edges from the first activation beat accepted to the last tile
leaving, ``macs`` in the Perf record = *useful lookups* ``M*N*bits*K/4`` so that
``utilisation = useful lookups / (M*N lookup units * cycles)``; ``extra`` holds the
MACs per cycle (``M*N*K*tiles / cycles``) and the latency of one isolated tile.
"""
from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import Event, First, ReadOnly, RisingEdge, SimTimeoutError, Timer, with_timeout
from cocotb.utils import get_sim_time
from cocotb_coverage.coverage import CoverCross, CoverPoint, coverage_db

from plait.ir.numerics import QuantizedWeight, encode_scales, linear_int, lut_trace
from plait.rtl.lut_core import LutCoreConfig, stream_tile
from plait.sim.drivers import (BackpressureDriver, StreamDriver, StreamMonitor, reset,
                               start_clock, unpack_signed)
from plait.sim.scoreboard import Perf, Scoreboard

#: (name, scheme, bits) of every weight mode the core runs
MODES = [("W1", "odd", 1), ("W2", "odd", 2), ("W3", "odd", 3), ("W4", "odd", 4),
         ("ternary", "ternary", 2), ("W1asym", "asym", 1), ("W2asym", "asym", 2),
         ("W3asym", "asym", 3), ("W4asym", "asym", 4), ("W2sym", "sym", 2),
         ("W4sym", "sym", 4)]
GROUPS = [4, 8, 12, 16, 32, 64, 128, 256]
PERIOD_NS = 10


def _config() -> LutCoreConfig:
    raw = os.environ.get("PLAIT_TB_CONFIG")
    if not raw:
        return LutCoreConfig()
    d = json.loads(raw)
    return LutCoreConfig.from_dict(d.get("fields", d))


def _enabled(name: str) -> bool:
    """Is test ``name`` selected by $PLAIT_TB_TESTS (unset or empty: every test)?"""
    sel = os.environ.get("PLAIT_TB_TESTS", "").strip()
    return not sel or name in [s.strip() for s in sel.split(",")]


def _modes(cfg: LutCoreConfig):
    """The modes to run: $PLAIT_LUT_MODES (or all), limited to the build's max_bits."""
    want = os.environ.get("PLAIT_LUT_MODES")
    if not want:
        return [md for md in MODES if md[2] <= cfg.max_bits]
    names = [w.strip() for w in want.split(",") if w.strip()]
    known = {m[0]: m for m in MODES}
    bad = [w for w in names if w not in known]
    if bad:
        raise ValueError(f"PLAIT_LUT_MODES: unknown mode(s) {bad}; known: {sorted(known)}")
    return [known[w] for w in names if known[w][2] <= cfg.max_bits]


# ------------------------------------------------------------------ stimulus
def rand_acts(rng: np.random.Generator, m: int, k: int) -> np.ndarray:
    """Constrained-random int8 activations: uniform, extremes, sparse or constant."""
    kind = rng.integers(0, 5)
    if kind == 0:
        return rng.choice(np.array([-128, 127], np.int64), (m, k))
    if kind == 1:
        x = rng.integers(-128, 128, (m, k))
        return np.where(rng.random((m, k)) < 0.7, 0, x)
    if kind == 2:
        return rng.integers(-4, 5, (m, k))
    return rng.integers(-128, 128, (m, k))


def rand_weight(rng: np.random.Generator, scheme: str, bits: int, n: int, k: int,
                g: int) -> QuantizedWeight:
    top = (1 << bits) - 1
    kind = rng.integers(0, 4)
    if scheme == "ternary":
        codes = rng.integers(0, 3, (n, k))
    elif kind == 0:
        codes = rng.choice(np.array([0, top], np.int64), (n, k))
    else:
        codes = rng.integers(0, top + 1, (n, k))
    ng = k // g
    scales = rng.uniform(0.0, 1.0, (n, ng))
    if rng.random() < 0.3:
        scales = scales * (10.0 ** rng.uniform(-3, 0, (n, ng)))   # wide dynamic range
    scales[rng.random((n, ng)) < 0.05] = 0.0                       # some zero mantissas
    zeros = None
    if scheme == "asym":
        zeros = rng.integers(0, top + 1, (n, ng)).astype(np.int32)
        if rng.random() < 0.3:
            zeros[:] = rng.choice([0, top])
    return QuantizedWeight(codes.astype(np.uint8), scales.astype(np.float32), zeros,
                           bits, g, scheme)


# ------------------------------------------------------------------ harness
class LutHarness:
    def __init__(self, dut, cfg: LutCoreConfig, sb: Scoreboard, *, gap_prob=0.0,
                 ready_prob: float | None = None, seed: int = 0, cover: bool = True):
        self.dut, self.cfg, self.sb = dut, cfg, sb
        self.cover = cover          # sample the functional coverage of every batch
        rnd = random.Random(seed)
        # the activation and parameter streams wait most of the time (a chunk lasts
        # `bits` weight beats, a group several chunks): they sleep until ready rises,
        # and the monitors sleep while their stream is idle (same transfers, same
        # cycle numbers, far fewer Python resumes per clock)
        self.a = StreamDriver(dut.clk, dut.a_valid, dut.a_ready, {"d": dut.a_data},
                              gap_prob=gap_prob, rng=random.Random(rnd.random()),
                              wait_ready_edge=True)
        self.w = StreamDriver(dut.clk, dut.w_valid, dut.w_ready, {"d": dut.w_data},
                              gap_prob=gap_prob, rng=random.Random(rnd.random()))
        self.s = StreamDriver(dut.clk, dut.s_valid, dut.s_ready,
                              {"m": dut.s_mant, "z": dut.s_zp},
                              gap_prob=gap_prob, rng=random.Random(rnd.random()),
                              wait_ready_edge=True)
        self.outs: list[np.ndarray] = []      # one P[M, N] per tile
        self.out_cycles: list[int] = []       # the cycle of each tile's last beat
        self._beats: list[np.ndarray] = []
        self._out_ev = Event()
        self.mon = StreamMonitor(dut.clk, dut.o_valid, dut.o_ready,
                                 {"p": dut.o_p, "last": dut.o_last},
                                 callback=self._on_out, period_ns=PERIOD_NS)
        # records the cycle of every activation beat accepted (same cycle count as mon)
        self.amon = StreamMonitor(dut.clk, dut.a_valid, dut.a_ready, {}, period_ns=PERIOD_NS)
        self.bp = None
        self.ready_prob = ready_prob
        self.rnd = rnd
        self._tasks: list = []

    def _on_out(self, txn):
        """One output beat: word m * dq_lanes + l = P[m][t * dq_lanes + l] of beat t;
        a tile is dq_steps beats, the last with o_last (checked: the tile is
        observed at its last beat, so a wrong o_last shows as a wrong P)."""
        cfg = self.cfg
        self._beats.append(np.array(unpack_signed(txn["p"], 48, cfg.m * cfg.dq_lanes),
                                    np.int64).reshape(cfg.m, cfg.dq_lanes))
        if int(txn["last"]) or len(self._beats) > cfg.dq_steps:
            p = np.concatenate(self._beats, axis=1)  # [M, beats * dq_lanes]
            self._beats = []
            self.outs.append(p)
            self.out_cycles.append(self.mon.cycles[-1])
            self.sb.observe("P", p)
            self._out_ev.set()

    async def start(self, clock: bool = True, reset_cycles: int = 3):
        """Reset the core for ``reset_cycles`` clocks (0: no reset; the clock is started
        unless ``clock=False``), start the monitors and the output back-pressure."""
        dut = self.dut
        if clock:
            start_clock(dut.clk, PERIOD_NS)
        dut.o_ready.value = 1
        for h in (dut.s_mant, dut.s_zp, dut.a_data, dut.w_data):
            h.value = 0
        if reset_cycles:
            await reset(dut, reset_cycles, idle={dut.a_valid: 0, dut.w_valid: 0, dut.s_valid: 0})
        self.mon.start()
        self.amon.start()
        if self.ready_prob is not None:
            self.bp = BackpressureDriver(dut.clk, dut.o_ready, prob=self.ready_prob,
                                         rng=random.Random(self.rnd.random())).start()

    def stop(self):
        """Stop the monitors, the back-pressure and any stream still being driven."""
        for t in self._tasks:
            t.cancel()
        self._tasks = []
        self.mon.stop()
        self.amon.stop()
        if self.bp is not None:
            self.bp.stop(final=1)

    async def wait_outputs(self, n: int, timeout_cycles: int) -> None:
        """Return right after the rising edge of the ``n``-th output transfer (as
        StreamMonitor.wait_for does) without resuming every clock."""
        if len(self.outs) >= n:
            return
        deadline = get_sim_time("ns") + timeout_cycles * PERIOD_NS
        while len(self.outs) < n:
            left = deadline - get_sim_time("ns")
            if left <= 0:
                raise TimeoutError(f"lut_core: saw {len(self.outs)} of {n} "
                                   f"output tiles after {timeout_cycles} cycles")
            self._out_ev.clear()
            await First(self._out_ev.wait(), Timer(max(1, round(left)), "ns"))
        await RisingEdge(self.dut.clk)

    def set_mode(self, mode, groups: int):
        d = self.dut
        d.cfg_bits.value = mode.bits
        d.cfg_offset.value = int(mode.offset)
        d.cfg_group_chunks.value = mode.group_chunks
        d.cfg_groups.value = groups

    async def run_batch(self, tiles) -> tuple[int, int]:
        """Stream ``[(x, qw), ...]`` (same format/shape) back to back; each tile's P is
        expected in the scoreboard.  Returns (cycle of the first activation beat accepted,
        cycle of the last output transfer)."""
        a_beats, w_beats, s_beats = [], [], []
        mode = None
        for x, qw in tiles:
            md, a, w, s = stream_tile(x, qw, self.cfg)
            if mode is not None and md != mode:
                raise ValueError("run_batch: tiles of one batch must share the mode")
            mode = md
            a_beats += a
            w_beats += w
            s_beats += s
            self.sb.expect("P", linear_int(np.asarray(x, np.int64).astype(np.int8), qw)[0])
        if self.cover:
            cover_batch(self.cfg, tiles, gaps=self.a.gap_prob > 0 or self.w.gap_prob > 0,
                        stalled=self.ready_prob is not None and self.ready_prob < 1)
        self.set_mode(mode, tiles[0][1].n_groups)
        n_before = len(self.outs)
        na_before = len(self.amon.cycles)
        ta = cocotb.start_soon(self.a.send({"d": v} for v in a_beats))
        tw = cocotb.start_soon(self.w.send({"d": v} for v in w_beats))
        ts = cocotb.start_soon(self.s.send({"m": m, "z": z} for m, z in s_beats))
        self._tasks = [ta, tw, ts]
        await ta
        await tw
        await ts
        self._tasks = []
        budget = 40 * (len(w_beats) + 50)
        await self.wait_outputs(n_before + len(tiles), timeout_cycles=budget)
        return self.amon.cycles[na_before], self.out_cycles[-1]


# ------------------------------------------------------------------ functional coverage
# cocotb-coverage bins over what the tests drove (sampled once per batch and tile by
# LutHarness.run_batch): weight format x tile shape, format x traffic, format x operand
# extremes.  Exported to $PLAIT_SIM_OUT/functional_coverage.yml at the end of the edges,
# random and throughput tests; tests/test_rtl_lut_core.py requires every bin of the
# small build's full run.
_COV_CFG = _config()
_COV_MODES = [md[0] for md in MODES if md[2] <= _COV_CFG.max_bits]
_COV_GROUPS = [g for g in GROUPS if g <= _COV_CFG.max_group]
#: shapes: one / several groups; the shortest (G = 4) and the longest (max_group) group
SHAPES = ("one_group", "multi_group", "min_group", "max_group")
#: traffic: one tile alone; tiles back to back; random input gaps; o_ready stalls; groups
#: shorter than the dequantizer (G/4 * bits < N/DQ_L: the array waits) and longer ones
TRAFFIC = ("isolated", "back_to_back", "gaps", "out_stalled", "dq_stall", "dq_overlap")
#: operand extremes within one quantization group: all activations -128 / 127 / 0, all
#: codes the top level / 0, a zero mantissa, a mantissa with its top bit, an asym zero
#: point at 0 or the top code
EXTREMES = ("act_min_group", "act_max_group", "zero_act_group", "code_top_group",
            "code_zero_group", "mant_zero", "mant_top_bit", "zp_edge")
_MODE_BITS = {md[0]: md[2] for md in MODES}
_MODE_SCHEME = {md[0]: md[1] for md in MODES}


def _dq_steps(cfg: LutCoreConfig) -> int:
    return cfg.n // cfg.dq_lanes


def _traffic_of(mode: str) -> list[str]:
    """Traffic a format can see in this build (a dequantizer stall needs a group shorter
    than the dequantizer; an overlapped one a group at least as long)."""
    bits, steps = _MODE_BITS[mode], _dq_steps(_COV_CFG)
    out = ["isolated", "back_to_back", "gaps", "out_stalled"]
    if any(g // 4 * bits < steps for g in _COV_GROUPS):
        out.append("dq_stall")
    if any(g // 4 * bits >= steps for g in _COV_GROUPS):
        out.append("dq_overlap")
    return out


@CoverPoint("lut_core.mode", xf=lambda mode, what: mode, bins=_COV_MODES)
@CoverPoint("lut_core.traffic", xf=lambda mode, what: what, bins=list(TRAFFIC))
@CoverCross("lut_core.mode_x_traffic", items=["lut_core.mode", "lut_core.traffic"],
            ign_bins=[(m, t) for m in _COV_MODES for t in TRAFFIC if t not in _traffic_of(m)])
def _cover_traffic(mode: str, what: str) -> None:
    pass


@CoverPoint("lut_core.shape_mode", xf=lambda mode, what: mode, bins=_COV_MODES)
@CoverPoint("lut_core.shape", xf=lambda mode, what: what, bins=list(SHAPES))
@CoverCross("lut_core.mode_x_shape", items=["lut_core.shape_mode", "lut_core.shape"])
def _cover_shape(mode: str, what: str) -> None:
    pass


@CoverPoint("lut_core.group", xf=lambda g, ng: g, bins=_COV_GROUPS)
@CoverPoint("lut_core.groups", xf=lambda g, ng: min(ng, 4), bins=[1, 2, 3, 4])
@CoverCross("lut_core.group_x_groups", items=["lut_core.group", "lut_core.groups"],
            ign_bins=[(g, n) for g in _COV_GROUPS for n in (1, 2, 3, 4)
                      if g * n > 1024 and n > 1])
def _cover_group(g: int, ng: int) -> None:
    pass


@CoverPoint("lut_core.extreme_mode", xf=lambda mode, what: mode, bins=_COV_MODES)
@CoverPoint("lut_core.extreme", xf=lambda mode, what: what, bins=list(EXTREMES))
@CoverCross("lut_core.mode_x_extreme", items=["lut_core.extreme_mode", "lut_core.extreme"],
            ign_bins=[(m, "zp_edge") for m in _COV_MODES if _MODE_SCHEME[m] != "asym"])
def _cover_extreme(mode: str, what: str) -> None:
    pass


def _mode_name(qw: QuantizedWeight) -> str:
    return next(md[0] for md in MODES if md[1] == qw.scheme and md[2] == qw.bits)


def cover_batch(cfg: LutCoreConfig, tiles, *, gaps: bool, stalled: bool) -> None:
    """Sample the functional coverage of one batch ``[(x, qw), ...]`` driven with input
    gaps (``gaps``) and o_ready stalls (``stalled``)."""
    qw0 = tiles[0][1]
    mode = _mode_name(qw0)
    g, ng = qw0.group_size, qw0.n_groups
    _cover_traffic(mode, "back_to_back" if len(tiles) > 1 else "isolated")
    if gaps:
        _cover_traffic(mode, "gaps")
    if stalled:
        _cover_traffic(mode, "out_stalled")
    _cover_traffic(mode, "dq_stall" if g // 4 * qw0.bits < _dq_steps(cfg) else "dq_overlap")
    _cover_shape(mode, "one_group" if ng == 1 else "multi_group")
    if g == 4:
        _cover_shape(mode, "min_group")
    if g == cfg.max_group:
        _cover_shape(mode, "max_group")
    _cover_group(g, ng)
    top = 2 if qw0.scheme == "ternary" else (1 << qw0.bits) - 1
    for x, qw in tiles:
        xg = np.asarray(x).reshape(x.shape[0], -1, g)
        cg = np.asarray(qw.codes).reshape(qw.codes.shape[0], -1, g)
        for what, hit in (("act_min_group", (xg == -128).all(axis=2).any()),
                          ("act_max_group", (xg == 127).all(axis=2).any()),
                          ("zero_act_group", (xg == 0).all(axis=2).any()),
                          ("code_top_group", (cg == top).all(axis=2).any()),
                          ("code_zero_group", (cg == 0).all(axis=2).any())):
            if hit:
                _cover_extreme(mode, what)
        mant, _e = encode_scales(qw.scales)
        if (mant == 0).any():
            _cover_extreme(mode, "mant_zero")
        if (mant >= 1 << 15).any():
            _cover_extreme(mode, "mant_top_bit")
        if qw.scheme == "asym" and ((qw.zeros == 0) | (qw.zeros == top)).any():
            _cover_extreme(mode, "zp_edge")


def export_coverage() -> None:
    out = Path(os.environ.get("PLAIT_SIM_OUT", "."))
    out.mkdir(parents=True, exist_ok=True)
    coverage_db.export_to_yaml(str(out / "functional_coverage.yml"))


def _log_sb(dut, sb):
    dut._log.info(sb.summary())


# ------------------------------------------------------------------ tests
async def check_cfg_errors(dut, cfg: LutCoreConfig) -> None:
    """Illegal run-time configurations raise cfg_err and block every input stream
    (valid high on all three); legal ones (bits 1 with one chunk per group, and the
    widest and longest) leave cfg_err low and a_ready high on an idle core.  Starts
    on an idle core out of reset with every valid low; ends in the ReadOnly phase of a
    cycle whose edge takes an activation beat (a caller that goes on resets the core
    with the valids dropped: _abandon).  Raises AssertionError."""
    async def legal(bits, gc):
        dut.cfg_bits.value = bits
        dut.cfg_group_chunks.value = gc
        dut.cfg_groups.value = 1
        dut.cfg_offset.value = 0
        await ReadOnly()
        assert int(dut.cfg_err.value) == 0, f"cfg_err high for the legal bits {bits}, G/4 {gc}"
        assert int(dut.a_ready.value) == 1, "a_ready low on an idle core with a legal config"

    await legal(1, 1)
    await RisingEdge(dut.clk)
    dut.a_valid.value = 1
    dut.w_valid.value = 1
    dut.s_valid.value = 1
    bad = [dict(bits=0, gc=1, groups=1), dict(bits=cfg.max_bits + 1, gc=1, groups=1),
           dict(bits=7, gc=1, groups=1), dict(bits=1, gc=0, groups=1),
           dict(bits=1, gc=cfg.max_group // 4 + 1, groups=1), dict(bits=1, gc=1, groups=0)]
    for b in bad:
        if b["gc"] >= (1 << len(dut.cfg_group_chunks)):
            continue
        dut.cfg_bits.value = b["bits"]
        dut.cfg_group_chunks.value = b["gc"]
        dut.cfg_groups.value = b["groups"]
        dut.cfg_offset.value = 0
        for _ in range(3):
            await ReadOnly()
            assert int(dut.cfg_err.value) == 1, f"cfg_err low for illegal config {b}"
            assert int(dut.a_ready.value) == 0, f"a_ready high under illegal config {b}"
            assert int(dut.w_ready.value) == 0, f"w_ready high under illegal config {b}"
            assert int(dut.s_ready.value) == 0, f"s_ready high under illegal config {b}"
            await RisingEdge(dut.clk)
    await legal(cfg.max_bits, cfg.max_group // 4)


@cocotb.test()
@cocotb.skipif(not _enabled("cfg"), reason="not selected by PLAIT_TB_TESTS")
async def test_cfg_errors(dut):
    """Illegal run-time configurations raise cfg_err and block every input stream."""
    start_clock(dut.clk, 10)
    dut.o_ready.value = 1
    await reset(dut, 3, idle={dut.a_valid: 0, dut.w_valid: 0, dut.s_valid: 0})
    await check_cfg_errors(dut, _config())


def edge_batches(cfg: LutCoreConfig, modes):
    """The directed extremes, per mode: -128 / 127 everywhere against codes 0 and the
    top code over two maximum-length groups (largest accumulation, mantissa 2^16 - 1,
    |q| = 2^b - 1 in asym), then a two-tile batch of all-zero activation groups and
    all-zero codes mixed with extremes.  Yields ``(mode name, [(x, qw), ...])``."""
    m, n, gmax = cfg.m, cfg.n, cfg.max_group
    for name, scheme, bits in modes:
        top = (1 << bits) - 1
        hi = 2 if scheme == "ternary" else top
        for codes_val in (0, hi):
            for xval in (-128, 127):
                k = 2 * gmax
                x = np.full((m, k), xval, np.int64)
                codes = np.full((n, k), codes_val, np.uint8)
                scales = np.ones((n, 2), np.float32)        # mantissa 65535 (2^16 - 1)
                zeros = None
                if scheme == "asym":
                    zeros = np.full((n, 2), top - codes_val, np.int32)   # |q| = 2^b - 1
                yield name, [(x, QuantizedWeight(codes, scales, zeros, bits, gmax, scheme))]
        k = 16
        x = np.zeros((m, k), np.int64)
        x[:, 4:8] = -128
        x[0, 12:16] = 127
        codes = np.zeros((n, k), np.uint8)
        codes[::2, :] = hi
        scales = np.linspace(0.0, 2.0, n * 4).reshape(n, 4).astype(np.float32)
        zeros = np.full((n, 4), 1, np.int32) if scheme == "asym" else None
        qw = QuantizedWeight(codes, scales, zeros, bits, 4, scheme)
        yield name, [(x, qw), (np.zeros((m, k), np.int64), qw)]


def random_batches(cfg: LutCoreConfig, rng: np.random.Generator, mode, *, ntiles: int,
                   macs_min: int = 0, check_trace: bool = True):
    """Constrained-random batches of one mode until ``ntiles`` tiles and ``macs_min``
    MACs: a group length of GROUPS (<= max_group), 1..4 groups (at most 1024 weights),
    1..3 tiles back to back.  Yields ``(tiles, g, ng)``.  ``check_trace``: the golden
    model of the internals (lut_trace) must agree with the contract on every tile."""
    name, scheme, bits = mode
    groups = [g for g in GROUPS if g <= cfg.max_group]
    done = macs = 0
    while done < ntiles or macs < macs_min:
        g = int(rng.choice(groups))
        ng = int(rng.integers(1, max(2, min(5, 1024 // g + 1))))
        nb = int(rng.integers(1, 4))
        if done < ntiles and not macs_min:
            nb = min(ntiles - done, nb)
        tiles = []
        for _ in range(nb):
            x = rand_acts(rng, cfg.m, g * ng)
            qw = rand_weight(rng, scheme, bits, cfg.n, g * ng, g)
            if check_trace:
                assert np.array_equal(lut_trace(x, qw, cfg.max_group, cfg.max_bits).p,
                                      linear_int(x.astype(np.int8), qw)[0])
            tiles.append((x, qw))
        yield tiles, g, ng
        done += nb
        macs += nb * cfg.m * cfg.n * g * ng


@cocotb.test()
@cocotb.skipif(not _enabled("edges") or not _modes(_config()),
               reason="not selected by PLAIT_TB_TESTS, or no mode left by PLAIT_LUT_MODES")
async def test_directed_edges(dut):
    """Extremes: -128 everywhere, all-zero groups, maximum group length, every width."""
    cfg = _config()
    sb = Scoreboard("lut_core directed")
    h = LutHarness(dut, cfg, sb)
    await h.start()
    ntile = 0
    for _name, tiles in edge_batches(cfg, _modes(cfg)):
        await h.run_batch(tiles)
        ntile += len(tiles)
    export_coverage()
    _log_sb(dut, sb)
    sb.assert_clean()
    assert sb.compared == ntile


@cocotb.test()
@cocotb.skipif(not _enabled("random") or not _modes(_config()),
               reason="not selected by PLAIT_TB_TESTS, or no mode left by PLAIT_LUT_MODES")
async def test_random_modes(dut):
    """Constrained-random tiles in every mode, random input gaps and output stalls:
    at least PLAIT_LUT_TILES tiles and PLAIT_LUT_MACS MACs per mode."""
    cfg = _config()
    macs_min = int(os.environ.get("PLAIT_LUT_MACS", "0"))
    ntiles = int(os.environ.get("PLAIT_LUT_TILES", "1" if macs_min else "24"))
    seed = int(os.environ.get("PLAIT_LUT_SEED", "11"))
    rng = np.random.default_rng(seed)
    sb = Scoreboard("lut_core random")
    h = LutHarness(dut, cfg, sb, gap_prob=0.15, ready_prob=0.7, seed=seed)
    await h.start()
    total = 0
    for name, scheme, bits in _modes(cfg):
        done = 0
        values = 0
        macs = 0            # weight x activation products checked (M*N*K per tile)
        lookups = 0         # useful lookups (M*N*bits*K/4 per tile)
        cycles = 0
        for tiles, g, ng in random_batches(cfg, rng, (name, scheme, bits), ntiles=ntiles,
                                           macs_min=macs_min):
            nb = len(tiles)
            c0, c1 = await h.run_batch(tiles)
            cycles += c1 - c0 + 1
            done += nb
            values += nb * cfg.m * cfg.n
            macs += nb * cfg.m * cfg.n * g * ng
            lookups += nb * cfg.m * cfg.n * bits * (g * ng // 4)
        total += done
        perf = Perf(f"lut_core random {name}", units=cfg.lookup_units())
        perf.add(cycles=cycles, macs=lookups, tiles=done)
        perf.extra.update({"test": "random", "mode": name, "scheme": scheme, "bits": bits,
                           "macs_checked": macs, "values_checked": values})
        perf.write_json()
        dut._log.info(f"mode {name}: {done} tiles, {values} dot products, {macs} MACs "
                      f"checked in {cycles} cycles")
    if h.bp is not None:
        h.bp.stop(final=1)
    export_coverage()
    _log_sb(dut, sb)
    sb.assert_clean()
    assert sb.compared == total


@cocotb.test()
@cocotb.skipif(not _enabled("throughput") or not [md for md in MODES[:5] if md[2] <= _config().max_bits],
               reason="not selected by PLAIT_TB_TESTS, or no throughput mode fits max_bits")
async def test_throughput(dut):
    """Back-to-back tiles at full input rate: cycles per tile and utilisation per mode."""
    cfg = _config()
    k = int(os.environ.get("PLAIT_LUT_PERF_K", "256"))
    g = min(64, cfg.max_group)
    rng = np.random.default_rng(5)
    sb = Scoreboard("lut_core throughput")
    h = LutHarness(dut, cfg, sb)
    await h.start()
    ntiles = 4
    for name, scheme, bits in [md for md in MODES[:5] if md[2] <= cfg.max_bits]:
        # one isolated tile: latency
        x = rand_acts(rng, cfg.m, k)
        qw = rand_weight(rng, scheme, bits, cfg.n, k, g)
        c0, c1 = await h.run_batch([(x, qw)])
        latency = c1 - c0
        model = cfg.tile_cycles(bits, k, g)
        await RisingEdge(dut.clk)
        # back-to-back tiles
        tiles = [(rand_acts(rng, cfg.m, k), rand_weight(rng, scheme, bits, cfg.n, k, g))
                 for _ in range(ntiles)]
        n0 = len(h.out_cycles)
        c0, c1 = await h.run_batch(tiles)
        outs = h.out_cycles[n0:]
        steady = (outs[-1] - outs[0]) / (ntiles - 1)
        cycles = c1 - c0 + 1
        perf = Perf(f"lut_core {name}", units=cfg.lookup_units())
        useful = cfg.m * cfg.n * bits * (k // 4) * ntiles
        perf.add(cycles=cycles, macs=useful, tiles=ntiles)
        perf.extra.update({
            "test": "throughput", "mode": name, "bits": bits, "K": k, "G": g,
            "macs_per_cycle": cfg.m * cfg.n * k * ntiles / cycles,
            "steady_cycles_per_tile": steady,
            "steady_utilisation": cfg.m * cfg.n * bits * (k // 4) / (cfg.lookup_units() * steady),
            "latency_cycles": latency, "latency_model": model,
        })
        perf.log(dut._log)
        dut._log.info(f"  {name}: steady {steady:.1f} cycles/tile, latency {latency} "
                      f"(model {model}), {perf.extra['macs_per_cycle']:.1f} MACs/cycle")
        perf.write_json()
        await RisingEdge(dut.clk)
    export_coverage()
    _log_sb(dut, sb)
    sb.assert_clean()


# ------------------------------------------------------------------ assertion checks
#: protocol violations test_assertion_checks can drive (the RTL's assertions must catch
#: each): a source drops valid or changes its payload while ready is low, or the
#: configuration changes while a tile is in flight
PROTOCOL_VIOLATIONS = ("a_drop", "a_data", "w_drop", "w_data", "s_drop", "s_data", "cfg")


async def _edges(dut, n: int) -> None:
    for _ in range(n):
        await RisingEdge(dut.clk)


async def _abandon(dut) -> None:
    """End a check window: reset asserted in the same cycle as every valid drops (the
    assertions are off in reset, so abandoning a stalled beat is no violation)."""
    dut.rst_n.value = 0
    for s in (dut.a_valid, dut.w_valid, dut.s_valid):
        s.value = 0
    await _edges(dut, 2)


async def _stalled(dut, ready) -> None:
    """Check (ReadOnly) that ``ready`` is low in this cycle, then go to the next edge."""
    await ReadOnly()
    assert int(ready.value) == 0, f"{ready._name} high: the violation would not be one"
    await RisingEdge(dut.clk)


async def _break_stalled(dut, valid, ready, data, other: int, what: str) -> None:
    """Two cycles of a stalled beat (``ready`` low), then break the stream rule:
    ``what`` = ``drop`` withdraws ``valid``, otherwise ``data`` changes to ``other``."""
    await _stalled(dut, ready)
    await _stalled(dut, ready)
    if what == "drop":
        valid.value = 0
    else:
        data.value = other


async def _stim_protocol(dut, kind: str) -> None:
    """Reset, then drive one protocol violation ``kind`` (PROTOCOL_VIOLATIONS)."""
    if kind not in PROTOCOL_VIOLATIONS:
        raise ValueError(f"unknown protocol violation {kind!r}; known: {PROTOCOL_VIOLATIONS}")
    dut.o_ready.value = 1
    for h in (dut.s_mant, dut.s_zp, dut.a_data, dut.w_data):
        h.value = 0
    dut.cfg_bits.value = 2
    dut.cfg_offset.value = 0
    dut.cfg_group_chunks.value = 1
    dut.cfg_groups.value = 1
    await reset(dut, 3, idle={dut.a_valid: 0, dut.w_valid: 0, dut.s_valid: 0})
    stream, _, what = kind.partition("_")
    if stream in ("a", "cfg"):
        dut.a_data.value = 0x01020304
        dut.a_valid.value = 1
        await RisingEdge(dut.clk)                 # idle core: the table is loaded
        if stream == "cfg":
            dut.a_valid.value = 0
            await RisingEdge(dut.clk)
            dut.cfg_bits.value = 3                # a tile is in flight
        else:
            dut.a_data.value = 0x05060708         # the next chunk waits: no weight beat
            await _break_stalled(dut, dut.a_valid, dut.a_ready, dut.a_data, 0x7F7F7F7F, what)
    elif stream == "w":
        dut.w_data.value = 0x5A
        dut.w_valid.value = 1                     # no table: w_ready stays low
        await _break_stalled(dut, dut.w_valid, dut.w_ready, dut.w_data, 0xA5, what)
    else:
        dut.s_mant.value = 7
        dut.s_zp.value = 1
        dut.s_valid.value = 1                     # no group end: s_ready stays low
        await _break_stalled(dut, dut.s_valid, dut.s_ready, dut.s_mant, 9, what)
    await _edges(dut, 4)
    await _abandon(dut)


async def _stim_mix(dut, cfg: LutCoreConfig, seed: int) -> None:
    """Reset, then a short mixed stimulus that exercises every control path: a W2 asym
    tile of two max_group groups (the first group leaves the dequantizer long before
    the second arrives), three single-group W1 tiles back to back (the next tile's first
    group meets a held P), two W3 asym tiles of 1-chunk groups (dequantizer stalls);
    input gaps 40 % (the parameter stream 70 %: it is often late), o_ready 30 %, dense
    activations (no all-zero P).  Outputs are not checked (a mutant is on)."""
    h = LutHarness(dut, cfg, Scoreboard("lut_core checks"), gap_prob=0.4, ready_prob=0.3,
                   seed=seed)
    h.s.gap_prob = 0.7
    await h.start(clock=False)
    rng = np.random.default_rng(seed)

    def tile(scheme, bits, k, g):
        return (rng.integers(-128, 128, (cfg.m, k)),
                rand_weight(rng, scheme, bits, cfg.n, k, g))

    g = cfg.max_group
    batches = [[tile("asym", 2, 2 * g, g)], [tile("odd", 1, 4, 4) for _ in range(3)],
               [tile("asym", 3, 16, 4) for _ in range(2)]]
    try:
        for b in batches:
            await with_timeout(h.run_batch(b), 600 * PERIOD_NS, "ns")
    except (SimTimeoutError, TimeoutError) as e:      # a mutant may stall the core
        dut._log.info(f"  mix stimulus stopped: {type(e).__name__}")
    finally:
        h.stop()
    await _edges(dut, 12)
    await _abandon(dut)


@cocotb.test()
@cocotb.skipif(not os.environ.get("PLAIT_LUT_CHECKS", "").strip(),
               reason="PLAIT_LUT_CHECKS unset (tests/test_rtl_lut_core.py sets it)")
async def test_assertion_checks(dut):
    """Windows of deliberate violations, one after the other (reset between them).

    ``PLAIT_LUT_CHECKS`` lists ``{"name", "stim", "mut"}``: ``stim`` is one of
    :data:`PROTOCOL_VIOLATIONS` or ``"mix"`` (:func:`_stim_mix`); ``mut`` (default 0)
    is written to ``dut.plait_mut`` -- the mutant select of a build made by
    :func:`plait.sim.mutate.switched_mutants` (0: the unmutated design).  The windows'
    start/end simulation times (in steps, as the simulator prints them) go to
    ``$PLAIT_SIM_OUT/assertion_windows.json``; pytest matches them with the assertion
    failures in ``sim.log``.  A failing assertion stops the simulation unless the run
    passes ``+verilator+error+limit+N``.
    """
    cfg = _config()
    spec = json.loads(os.environ["PLAIT_LUT_CHECKS"])
    start_clock(dut.clk, PERIOD_NS)
    sel = getattr(dut, "plait_mut", None)
    done = []
    for win in spec:
        k = int(win.get("mut", 0))
        if sel is None and k:
            raise ValueError(f"check {win['name']!r}: mutant {k} on a build without plait_mut")
        if sel is not None:
            sel.value = k
        t0 = get_sim_time("step")
        if win["stim"] == "mix":
            await _stim_mix(dut, cfg, seed=100 + len(done))
        else:
            await _stim_protocol(dut, win["stim"])
        done.append({**win, "t0": t0, "t1": get_sim_time("step")})
        dut._log.info(f"check window {win['name']}: {done[-1]['t0']}..{done[-1]['t1']}")
        path = Path(os.environ.get("PLAIT_SIM_OUT", ".")) / "assertion_windows.json"
        path.write_text(json.dumps(done, indent=1))
    if sel is not None:
        sel.value = 0


# ------------------------------------------------------------------ mutation campaign
#: cycles one batch of the campaign may take before the mutant counts as hung
MUTANT_BATCH_CYCLES = 3000


async def _mutant_window(dut, cfg: LutCoreConfig, *, tiles_per_mode: int, seed: int) -> str:
    """The stimulus one mutant meets: reset; the cfg_err checks; per mode (every mode
    of the build) ``tiles_per_mode`` random tiles (input gaps, output stalls); then the
    directed extremes of every mode.  Stops at the first wrong or missing output.
    Returns ``""`` (every output right) or what went wrong."""
    modes = _modes(cfg)
    sb = Scoreboard("lut_core mutant")
    h = LutHarness(dut, cfg, sb, gap_prob=0.15, ready_prob=0.7, seed=seed, cover=False)
    rng = np.random.default_rng(seed)
    try:
        dut.o_ready.value = 1
        await reset(dut, 3, idle={dut.a_valid: 0, dut.w_valid: 0, dut.s_valid: 0})
        try:
            await with_timeout(check_cfg_errors(dut, cfg), 200 * PERIOD_NS, "ns")
        except AssertionError as e:
            return f"cfg: {e}"
        await RisingEdge(dut.clk)
        await _abandon(dut)
        await h.start(clock=False)
        batches = [("random " + md[0], t) for md in modes
                   for t, _g, _ng in random_batches(cfg, rng, md, ntiles=tiles_per_mode,
                                                    check_trace=False)]
        batches += [("edges " + name, t) for name, t in edge_batches(cfg, modes)]
        for what, tiles in batches:
            await with_timeout(h.run_batch(tiles), MUTANT_BATCH_CYCLES * PERIOD_NS, "ns")
            if sb.mismatches:
                return f"mismatch in {what}: {sb.mismatches[0]}"
        await _edges(dut, 20)                   # a late, spurious output?
        if sb.mismatches:
            return f"mismatch after the stimulus: {sb.mismatches[0]}"
        if sb.pending():
            return f"{sb.pending()} output(s) missing"
        await RisingEdge(dut.clk)
        h.stop()
        for phase in (_timing_phase, _reset_phase):
            verdict = await phase(dut, cfg, rng, seed)
            if verdict:
                return verdict
        return ""
    except (SimTimeoutError, TimeoutError) as e:
        return f"hung: {type(e).__name__} {e}"[:300]
    except Exception as e:                    # noqa: BLE001 -- a mutant may break the bench
        return f"bench error: {type(e).__name__}: {e}"[:300]
    finally:
        await RisingEdge(dut.clk)               # out of a ReadOnly phase
        h.stop()
        await _abandon(dut)


def _timing_tiles(cfg: LutCoreConfig, rng):
    """(bits, k, g, tiles) of the cycle checks: short groups (the dequantizer stalls
    the array), and groups longer than the dequantizer; W1 and the build's widest."""
    out = []
    for bits, k, g in ((1, 16, 4), (cfg.max_bits, 2 * cfg.max_group, cfg.max_group)):
        scheme = "asym" if bits > 1 else "odd"
        out.append((bits, k, g, [(rand_acts(rng, cfg.m, k), rand_weight(rng, scheme, bits, cfg.n, k, g))
                                 for _ in range(3)]))
    return out


async def _timing_phase(dut, cfg: LutCoreConfig, rng, seed: int) -> str:
    """Cycle-exact checks (no input gaps, o_ready high): an isolated tile's latency is
    cfg.tile_cycles and back-to-back tiles leave every cfg.tile_period clocks (the
    cycle models; test_throughput checks the same on long tiles)."""
    sb = Scoreboard("lut_core mutant timing")
    h = LutHarness(dut, cfg, sb, seed=seed, cover=False)
    try:
        await h.start(clock=False)
        for bits, k, g, tiles in _timing_tiles(cfg, rng):
            c0, c1 = await with_timeout(h.run_batch(tiles[:1]), MUTANT_BATCH_CYCLES * PERIOD_NS, "ns")
            if c1 - c0 != cfg.tile_cycles(bits, k, g):
                return (f"timing: W{bits} K={k} G={g} tile took {c1 - c0} clocks, model "
                        f"{cfg.tile_cycles(bits, k, g)}")
            await _edges(dut, 3)
            n0 = len(h.out_cycles)
            await with_timeout(h.run_batch(tiles), MUTANT_BATCH_CYCLES * PERIOD_NS, "ns")
            outs = h.out_cycles[n0:]
            gaps = [b - a for a, b in zip(outs, outs[1:])]
            if gaps != [cfg.tile_period(bits, k, g)] * (len(tiles) - 1):
                return (f"timing: W{bits} K={k} G={g} back-to-back outputs {gaps} clocks "
                        f"apart, model {cfg.tile_period(bits, k, g)}")
            if sb.mismatches:
                return f"mismatch in timing W{bits}: {sb.mismatches[0]}"
        return ""
    finally:
        await RisingEdge(dut.clk)
        h.stop()


async def _pulse_reset(dut) -> None:
    """One clock of reset, the input valids dropped with it (right after an edge)."""
    dut.rst_n.value = 0
    for v in (dut.a_valid, dut.w_valid, dut.s_valid):
        v.value = 0
    await RisingEdge(dut.clk)
    dut.rst_n.value = 1


async def _reset_phase(dut, cfg: LutCoreConfig, rng, seed: int) -> str:
    """Reset in flight: a one-clock reset at every clock of a two-group tile (table
    fill, array, dequantizer pipeline), and once while a finished P waits for o_ready;
    after each, a fresh tile must come out right and alone (the control state is reset,
    nothing of the abandoned tile survives)."""
    bits = min(2, cfg.max_bits)
    k, g = 8, 4
    scheme = "asym" if bits > 1 else "odd"

    def tile():
        return (rng.integers(-128, 128, (cfg.m, k)), rand_weight(rng, scheme, bits, cfg.n, k, g))

    lat = cfg.tile_cycles(bits, k, g)
    for d in [*range(1, lat + 1), -1]:         # -1: the output waits for o_ready
        junk = LutHarness(dut, cfg, Scoreboard("lut_core abandoned"), seed=seed, cover=False)
        await junk.start(clock=False, reset_cycles=2)
        if d < 0:
            dut.o_ready.value = 0
        task = cocotb.start_soon(junk.run_batch([tile()]))
        if d > 0:
            await _edges(dut, d)
        else:
            for _ in range(4 * lat):
                await RisingEdge(dut.clk)
                if int(dut.o_valid.value):
                    break
            await _edges(dut, 2)
        task.cancel()
        junk.stop()
        junk.mon.stop()
        await _pulse_reset(dut)
        sb = Scoreboard("lut_core after reset")
        h = LutHarness(dut, cfg, sb, seed=seed, cover=False)
        await h.start(clock=False, reset_cycles=0)
        try:
            await with_timeout(h.run_batch([tile()]), MUTANT_BATCH_CYCLES * PERIOD_NS, "ns")
            await _edges(dut, 12)
        finally:
            await RisingEdge(dut.clk)
            h.stop()
        if sb.mismatches or sb.pending():
            what = "while P waited for o_ready" if d < 0 else f"{d} clock(s) into a tile"
            return (f"reset {what}: the next tile "
                    + (f"mismatched: {sb.mismatches[0]}" if sb.mismatches else "never came out"))
    return ""


@cocotb.test()
@cocotb.skipif(not _enabled("resets"), reason="not selected by PLAIT_TB_TESTS")
async def test_resets_and_cycles(dut):
    """Cycle-exact latency and back-to-back period of short-group (dequantizer-stalled)
    and long-group tiles against the cycle models, and a one-clock reset at every clock
    of a tile and while P waits for o_ready, each followed by a tile that must come out
    right and alone (the mutation campaign found both unchecked by the other tests)."""
    cfg = _config()
    seed = int(os.environ.get("PLAIT_LUT_SEED", "11"))
    rng = np.random.default_rng(seed)
    start_clock(dut.clk, PERIOD_NS)
    for phase in (_timing_phase, _reset_phase):
        verdict = await phase(dut, cfg, rng, seed)
        assert not verdict, verdict


@cocotb.test()
@cocotb.skipif(not os.environ.get("PLAIT_LUT_MUTANTS", "").strip(),
               reason="PLAIT_LUT_MUTANTS unset (plait.sim.mutate's campaign sets it)")
async def test_mutants(dut):
    """The mutation campaign's simulation (plait.sim.mutate.run_campaign): for each
    mutant select K in ``PLAIT_LUT_MUTANTS`` (a JSON list; 0 = the unmutated design)
    write ``dut.plait_mut`` and run :func:`_mutant_window`.  After each window the
    verdict and the window's simulation times (steps) are appended to
    ``$PLAIT_SIM_OUT/mutants.json`` (the campaign matches assertion failures in sim.log
    with the windows).  ``PLAIT_LUT_MUT_TILES``: random tiles per mode (default 2)."""
    cfg = _config()
    ids = json.loads(os.environ["PLAIT_LUT_MUTANTS"])
    tiles = int(os.environ.get("PLAIT_LUT_MUT_TILES", "2"))
    seed = int(os.environ.get("PLAIT_LUT_SEED", "11"))
    path = Path(os.environ.get("PLAIT_SIM_OUT", ".")) / "mutants.json"
    start_clock(dut.clk, PERIOD_NS)
    dut.rst_n.value = 0
    await _edges(dut, 2)
    done = []
    for k in ids:
        dut.plait_mut.value = int(k)
        t0 = get_sim_time("step")
        w0 = time.time()
        verdict = await _mutant_window(dut, cfg, tiles_per_mode=tiles, seed=seed)
        done.append({"mut": int(k), "t0": t0, "t1": get_sim_time("step"), "verdict": verdict,
                     "seconds": round(time.time() - w0, 3)})
        path.write_text(json.dumps(done))
        if k == 0 and verdict:
            raise AssertionError(f"the unmutated design fails the campaign stimulus: {verdict}")
    dut.plait_mut.value = 0


#: mutants of the campaign (plait.sim.mutate.lut_core_campaign) that no stimulus can
#: tell from the design, each looked at: (file, statement or a unique part of it, change)
#: -> why
MUTANT_EQUIVALENT: dict[tuple[str, str, str], str] = {
    ("lut_core.sv", "assign grp = off_q ? GRP_W'(corr >>> 1) : GRP_W'(corr);", "`>>>` -> `>>`"):
        "GRP_W = CORR_W - 1 in every build (|A| <= R, |A' - z'X| <= 2R): the bit the shift "
        "fills (sign or 0) is cut by the GRP_W cast",
    ("lut_lookup.sv", "assign neg = neg_d;", "`neg` stuck at 0"):
        "the PIPE = 0 branch (g_comb) is not elaborated: lut_core instantiates PIPE = 1",
    ("lut_lookup.sv", "assign neg = neg_d;", "`neg` stuck at 1"):
        "the PIPE = 0 branch (g_comb) is not elaborated: lut_core instantiates PIPE = 1",
    ("lut_lookup.sv", "assign val = (ee ^ {LK_W{neg}}) + LK_W'(neg);", "`^` -> `|`"):
        "val (the reference form L = +-S) feeds only lut_core's lk, kept for waveforms; the "
        "core adds mag and neg (synthesis removes val)",
    ("lut_lookup.sv", "assign val = (ee ^ {LK_W{neg}}) + LK_W'(neg);", "`+` -> `-`"):
        "val (the reference form L = +-S) feeds only lut_core's lk, kept for waveforms; the "
        "core adds mag and neg (synthesis removes val)",
    ("lut_sel.sv", "v = '0;", "`'0` -> `'1`"):
        "fills only the leaves beyond N (N not a power of two), which s never selects "
        "(dq_step < DQ_STEPS); the campaign's second build has DQ_STEPS = 5: leaves 5..7 "
        "are filled and never selected",
}
