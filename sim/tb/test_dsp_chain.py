"""cocotb testbench of the sparse DSP chain (``rtl/sv/dsp_chain.sv``).

Launched from pytest (``tests/test_rtl_dsp_chain.py``) through
:func:`plait.sim.runner.run_cocotb`; the chain's :class:`DspChainConfig` arrives as
JSON in ``PLAIT_TB_CONFIG``.  Optional env: ``PLAIT_TB_BEATS`` (random beats per
mode, default 2048), ``PLAIT_TB_TESTS`` (comma list of the tests to run; the others are
reported as skipped -- the mutation tests run only the fast one),
``PLAIT_TB_MUTANT`` (the mutant a switched-mutant build runs, written to its
``plait_mut``; 0 or unset: none), ``PLAIT_TB_EXPECT_SLICE`` (``primitive`` /
``behavioural``: ``test_slice_structure``
checks which slice implementation the build contains -- the DSP48E2 primitive path,
built with ``-DPLAIT_DSP_PRIMITIVE`` and the simulation model
``rtl/sv/dsp_model_dsp48e2.sv``, or the behavioural pipeline).

Every output word is checked twice with *equality*: against the bit-level golden
model :func:`plait.ir.numerics.dsp.run_schedule` (scoreboard tag ``acc``) and,
per schedule, against the numeric contract
:func:`plait.ir.numerics.common.group_accumulate` (tag ``contract``).
Each random test reports cycles per tile and utilisation
(useful MACs / (2 MAC lanes x N_DSP x cycles)) through :class:`plait.sim.scoreboard.Perf`.
"""
from __future__ import annotations

import json
import os
import random

from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time
from cocotb_coverage.coverage import CoverCross, CoverPoint, coverage_db

from plait.ir.numerics.common import group_accumulate, signed_range
from plait.ir.numerics.dsp import (DSP_WEIGHT_BITS, M_MAX, WBITS_CODE,
                                   ChainSchedule, parse_mode, prune_nm, run_schedule,
                                   schedule_chain)
from plait.rtl.dsp_chain import DspChainConfig
from plait.sim.drivers import (StreamDriver, pack_signed, pack_unsigned, reset, start_clock,
                               unpack_signed)
from plait.sim.scoreboard import Perf, Scoreboard


def _config() -> DspChainConfig:
    raw = os.environ.get("PLAIT_TB_CONFIG")
    if not raw:
        return DspChainConfig()
    d = json.loads(raw)
    return DspChainConfig.from_dict(d.get("fields", d))


def _enabled(name: str) -> bool:
    sel = os.environ.get("PLAIT_TB_TESTS", "").strip()
    return not sel or name in [s.strip() for s in sel.split(",")]


class ChainTB:
    def __init__(self, dut, cfg: DspChainConfig, name: str):
        self.dut, self.cfg = dut, cfg
        self.sb = Scoreboard(f"dsp_chain.{name}")
        self.observed: list[np.ndarray] = []
        self.observed_modes: list[int] = []    # out_mode of each observed word
        self.out_cycles: list[int] = []
        self.cycle = 0
        self.accept_cycles: list[int] = []
        self.last_edges: list[int] = []    # clock edge that accepted each group's last beat
        self.last_modes: list[str] = []
        self.held: list[int] = []          # id() of schedules whose beats in_ready held back
        self.ready_prob = 1.0              # P(out_ready = 1) per cycle (1.0: never stalls)
        self.ready_rng = random.Random(3)
        self.stalled_words = 0             # output words that waited for out_ready
        self._ready = True                 # out_ready as driven
        self.driver: StreamDriver | None = None   # the input stream (start())
        self._mon_task = None
        self.garbage = np.random.default_rng(29)  # bus bits the chain must ignore
        self._mode_name, self._held = "", False  # the schedule being driven

    async def start(self, clock: bool = True):
        """Reset the chain for 4 clocks (the clock is started unless ``clock=False``),
        then start the output monitor."""
        dut = self.dut
        if clock:
            start_clock(dut.clk, 10)
        for h in (dut.in_last, dut.in_mode, dut.in_wbits, dut.in_act, dut.in_w, dut.in_idx):
            h.value = 0
        dut.out_ready.value = 1
        if "PLAIT_TB_MUTANT" in os.environ:   # a switched-mutant build: pick the mutant
            dut.plait_mut.value = int(os.environ["PLAIT_TB_MUTANT"])
        self.driver = StreamDriver(dut.clk, dut.in_valid, dut.in_ready,
                                   {"last": dut.in_last, "mode": dut.in_mode, "wbits": dut.in_wbits,
                                    "act": dut.in_act, "w": dut.in_w, "idx": dut.in_idx},
                                   on_transfer=self._on_beat)
        await reset(dut, 4)
        self._mon_task = cocotb.start_soon(self._monitor())

    def stop(self) -> None:
        """Stop the output monitor (a later ChainTB on the same dut starts its own)."""
        self._mon_task.cancel()

    def _on_beat(self, txn: dict, waited: bool) -> None:
        """The driver's transfer hook (ReadOnly phase): the coming edge takes ``txn``."""
        edge = self.cycle + 1                   # the edge about to sample the handshake
        self.accept_cycles.append(edge)
        self._held = self._held or waited
        if txn["last"]:
            self.last_edges.append(edge)
            self.last_modes.append(self._mode_name)

    async def _monitor(self):
        """Drives out_ready for each cycle right after its rising edge (high with
        probability ``ready_prob``) and records every output word taken (out_valid and
        out_ready in the settled cycle)."""
        dut, cfg = self.dut, self.cfg
        rmax = cfg.rows_max
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            ready = self.ready_prob >= 1.0 or self.ready_rng.random() < self.ready_prob
            if ready != self._ready:
                dut.out_ready.value = int(ready)
                self._ready = ready
            await ReadOnly()
            if int(dut.out_valid.value):
                if ready:
                    vals = unpack_signed(dut.out_acc.value, cfg.acc_w, 2 * rmax)
                    self.observed.append(np.array(vals, np.int64).reshape(2, rmax))
                    self.observed_modes.append(int(dut.out_mode.value))
                    self.out_cycles.append(self.cycle)
                else:
                    self.stalled_words += 1

    def expect(self, s: ChainSchedule) -> np.ndarray:
        gold = run_schedule(s, cascade=self.cfg.cascade, lane_shift=self.cfg.lane_shift,
                            acc_w=self.cfg.acc_w)
        for o in gold:
            self.sb.expect("acc", o)
        return gold

    def check(self, scheds: list[ChainSchedule], xs: list, qs: list) -> None:
        """Compare everything observed since the last check: each word's rows of the
        mode (``acc``), its mode (out_mode, ``mode``), the rows the mode does not have
        (0, ``unused_rows``), and per schedule the contract."""
        obs, self.observed = self.observed, []
        modes, self.observed_modes = self.observed_modes, []
        pos = 0
        for s, x, q in zip(scheds, xs, qs):
            r = s.lane_rows
            n = s.n_tiles * (s.k // s.group_size)
            mine = [o[:, :r] for o in obs[pos:pos + n]]
            for o, m in zip(obs[pos:pos + n], modes[pos:pos + n]):
                self.sb.observe("acc", o[:, :r])
                self.sb.expect("mode", s.mode.code)
                self.sb.observe("mode", m)
                self.sb.expect("unused_rows", np.zeros_like(o[:, r:]))
                self.sb.observe("unused_rows", o[:, r:])
            if len(mine) == n:
                self.sb.expect("contract", group_accumulate(q, x, s.group_size))
                self.sb.observe("contract", s.unschedule(np.array(mine)))
            pos += n
        for o in obs[pos:]:
            self.sb.observe("acc", o)   # unexpected extra outputs

    async def drive(self, scheds: list[ChainSchedule], gap_prob: float = 0.0,
                    rng: random.Random | None = None) -> None:
        """Stream the schedules' beats through the input StreamDriver (back to back
        unless gap_prob > 0; an offered beat stays offered until taken)."""
        drv = self.driver
        drv.gap_prob, drv.rng = gap_prob, rng or random.Random(1)
        for s in scheds:
            md, wb = s.mode.code, WBITS_CODE[s.bits]
            self._mode_name, self._held = s.mode.name, False
            idx = s.idx
            if s.mode.name == "2:4":            # 2:4 reads idx[1:0]: garbage above
                idx = idx | (self.garbage.integers(0, 4, idx.shape) << 2)
            one = len(self.cfg.wbits_list()) == 1    # a single-width build does not read in_wbits
            await drv.send({"mode": md, "wbits": int(self.garbage.integers(0, 4)) if one else wb,
                            "last": int(s.last[t]), "act": pack_signed(s.act[t].reshape(-1), 8),
                            "w": pack_unsigned(s.codes[t], 8), "idx": pack_unsigned(idx[t], 4)}
                           for t in range(s.beats))
            if self._held:
                self.held.append(id(s))

    def finish(self) -> None:
        """End of a test: export the functional coverage, fail on any scoreboard
        mismatch, log the scoreboard's summary."""
        export_coverage()
        self.sb.assert_clean()
        self.dut._log.info(self.sb.summary())

    def check_latency(self) -> dict[str, set[int]]:
        """The latency of every output so far, measured on the simulated waveform
        (clock edges from the edge that accepted a group's last beat to the edge after
        which out_valid is high), asserted equal to the cycle model
        ``DspChainConfig.latency(mode)``; returns the measured values per mode."""
        assert len(self.out_cycles) == len(self.last_edges), \
            (len(self.out_cycles), len(self.last_edges))
        seen: dict[str, set[int]] = {}
        for out, edge, mode in zip(self.out_cycles, self.last_edges, self.last_modes):
            seen.setdefault(mode, set()).add(out - edge)
        for mode, lat in seen.items():
            assert lat == {self.cfg.latency(mode)}, \
                f"mode {mode}: measured latency {sorted(lat)} != model {self.cfg.latency(mode)}"
        return seen

    async def drain(self, timeout: int = 200) -> None:
        dut = self.dut
        for _ in range(timeout):
            await RisingEdge(dut.clk)
            await ReadOnly()
            if not int(dut.busy.value) and not int(dut.out_valid.value):
                await RisingEdge(dut.clk)
                return
        raise AssertionError(f"dsp_chain still busy after {timeout} cycles")


# ------------------------------------------------------------------ stimulus
def random_weights(rng: np.random.Generator, rows: int, k: int, mode, bits: int,
                   zero_group_prob: float = 0.0, group: int = 0) -> np.ndarray:
    md = parse_mode(mode)
    lo, hi = signed_range(bits)
    q = rng.integers(lo, hi + 1, (rows, k))
    if not md.implicit_idx:
        q = q * prune_nm(rng.standard_normal((rows, k)), md.n, md.m)
        # some blocks with fewer than N nonzeros (exercises the padding slots)
        thin = rng.random((rows, k // md.m)) < 0.1
        q = q * ~np.repeat(thin & (rng.random((rows, k // md.m)) < 0.5), md.m, axis=1)
    if zero_group_prob and group:
        z = rng.random((rows, k // group)) < zero_group_prob
        q = q * ~np.repeat(z, group, axis=1)
    return q


def garbage_fill(s: ChainSchedule, rng: np.random.Generator) -> None:
    """Inputs the hardware must ignore: activation positions >= M, dense indices,
    lane 1 of the activation bus in pair mode."""
    if s.mode.m < M_MAX:
        s.act[:, :, s.mode.m:] = rng.integers(-128, 128, s.act[:, :, s.mode.m:].shape)
    if s.mode.implicit_idx:
        s.idx[:] = rng.integers(0, 16, s.idx.shape)
    if s.mode.pair:
        s.act[:, 1] = rng.integers(-128, 128, s.act[:, 1].shape)




def perf_report(tb: ChainTB, name: str, scheds: list[ChainSchedule], first: int,
                n_out_before: int) -> Perf:
    cfg = tb.cfg
    beats = sum(s.beats for s in scheds)
    tiles = sum(s.n_tiles for s in scheds)
    last_out = tb.out_cycles[-1]
    cycles = last_out - first + 1                   # first accepted beat .. last output
    steady = tb.accept_cycles[-1] - first + 1       # first .. last accepted beat
    perf = Perf(f"dsp_chain {name}", units=2 * cfg.n_dsp)
    perf.add(cycles=cycles, macs=2 * cfg.n_dsp * beats, tiles=tiles)
    md = scheds[0].mode
    perf.extra.update({
        "mode": md.name, "beats": beats, "steady_cycles": steady,
        "steady_utilisation": beats / steady,
        "rows_per_tile": scheds[0].rows_per_tile, "k": scheds[0].k,
        "lanes": scheds[0].lanes,
        "dense_equiv_macs_per_cycle": cfg.dense_equivalent_macs_per_cycle(md),
        "latency": cfg.latency(md),
        "latency_measured": sorted({o - e for o, e in zip(tb.out_cycles[n_out_before:],
                                                          tb.last_edges[n_out_before:])}),
    })
    perf.log(tb.dut._log)
    perf.write_json()
    return perf


# ------------------------------------------------------------------ functional coverage
# cocotb-coverage bins over what the tests drove (sampled once per schedule, not per
# beat): mode x weight width, mode x traffic (back to back, idle gaps, in_ready holding
# a beat back, the K = 65536 group, batch-1 GEMV, out_ready stalling the output, one-beat
# groups at full rate), extremes, every 2:4 pattern and
# every (slot, index) of the N:16 modes.  Exported to $PLAIT_SIM_OUT/
# functional_coverage.yml after each test; tests/test_rtl_dsp_chain.py requires every
# bin of a full run to be hit.
_COV_MODES = _config().mode_list()
TRAFFIC = ("back_to_back", "gaps", "held", "max_k", "gemv", "out_stalled", "one_beat_groups")
EXTREMES = ("act_min_x_w_min", "act_min_x_w_max", "zero_weight_group", "zero_act_group")


def _traffic_of(mode: str) -> list[str]:
    out = ["back_to_back", "gaps", "held", "out_stalled", "one_beat_groups"]
    if mode in ("dense", "2:16", "pair"):
        out.append("max_k")
    if mode in ("dense", "pair"):
        out.append("gemv")
    return out


def _slot_bins(mode: str) -> list[tuple[int, int]]:
    """(slot, index) pairs an N:16 block can hold (indices strictly increase)."""
    n = parse_mode(mode).n
    return [(sl, ix) for sl in range(n) for ix in range(sl, M_MAX - n + sl + 1)]


@CoverPoint("dsp_chain.mode", xf=lambda s, kind: s.mode.name, bins=_COV_MODES)
@CoverPoint("dsp_chain.width", xf=lambda s, kind: s.bits, bins=list(DSP_WEIGHT_BITS))
@CoverPoint("dsp_chain.traffic", xf=lambda s, kind: kind, bins=list(TRAFFIC))
@CoverCross("dsp_chain.mode_x_width", items=["dsp_chain.mode", "dsp_chain.width"],
            ign_bins=[(m, b) for m in _COV_MODES for b in DSP_WEIGHT_BITS if b not in parse_mode(m).weight_bits])
@CoverCross("dsp_chain.mode_x_traffic", items=["dsp_chain.mode", "dsp_chain.traffic"],
            ign_bins=[(m, t) for m in _COV_MODES for t in TRAFFIC if t not in _traffic_of(m)])
def _cover_schedule(s: ChainSchedule, kind: str) -> None:
    pass


@CoverPoint("dsp_chain.extreme", xf=lambda what: what, bins=list(EXTREMES))
def _cover_extreme(what: str) -> None:
    pass


@CoverPoint("dsp_chain.pattern_2_4", xf=lambda pat: pat,
            bins=[(a, b) for a in range(4) for b in range(a + 1, 4)])
def _cover_pattern_24(pat: tuple[int, int]) -> None:
    pass


_SLOT_COVER = {}
for _m in [m for m in _COV_MODES if parse_mode(m).m == 16 and not parse_mode(m).implicit_idx]:
    _SLOT_COVER[_m] = CoverPoint(f"dsp_chain.slot_index_{_m.replace(':', '_')}",
                                 xf=lambda si: si, bins=_slot_bins(_m))(lambda si: None)


def cover(s: ChainSchedule, kind: str, x: np.ndarray, q: np.ndarray) -> None:
    """Sample the functional coverage of one driven schedule (its x and weights q)."""
    _cover_schedule(s, kind)
    lo, hi = signed_range(s.bits)
    xm, g = (x == -128), s.group_size
    if (xm[:, None, :] & (q == lo)[None]).any():
        _cover_extreme("act_min_x_w_min")
    if (xm[:, None, :] & (q == hi)[None]).any():
        _cover_extreme("act_min_x_w_max")
    if (q.reshape(q.shape[0], -1, g) == 0).all(axis=2).any():
        _cover_extreme("zero_weight_group")
    if (x.reshape(x.shape[0], -1, g) == 0).all(axis=2).any():
        _cover_extreme("zero_act_group")
    md = s.mode
    if md.name == "2:4":
        nz = q.reshape(q.shape[0], -1, 4) != 0
        for a in range(4):
            for b in range(a + 1, 4):
                want = np.zeros(4, bool)
                want[[a, b]] = True
                if (nz == want).all(axis=2).any():
                    _cover_pattern_24((a, b))
    elif md.name in _SLOT_COVER:
        slots = np.arange(s.n_dsp) % md.n
        for sl, ix in set(zip(np.broadcast_to(slots, s.idx.shape).ravel().tolist(),
                              s.idx.ravel().tolist())):
            _SLOT_COVER[md.name]((sl, ix))


def export_coverage() -> None:
    out = Path(os.environ.get("PLAIT_SIM_OUT", "."))
    out.mkdir(parents=True, exist_ok=True)
    coverage_db.export_to_yaml(str(out / "functional_coverage.yml"))


# ------------------------------------------------------------------ tests
RANDOM_GEOMETRY = {  # mode: (K, group size)
    "dense": (512, 64), "2:4": (256, 32), "2:16": (512, 64), "4:16": (512, 64),
    "8:16": (512, 64), "pair": (512, 64),
}


@cocotb.skipif(not _enabled("random"), reason="not selected by PLAIT_TB_TESTS")
@cocotb.test()
async def test_random_modes(dut):
    """Constrained-random streams in every enabled mode and every weight width,
    back to back (utilisation), with garbage on the inputs the mode ignores."""
    cfg = _config()
    tb = ChainTB(dut, cfg, "random")
    await tb.start()
    beats_target = int(os.environ.get("PLAIT_TB_BEATS", "2048"))
    rng = np.random.default_rng(2024)
    for mname in cfg.mode_list():
        md = parse_mode(mname)
        k, g = RANDOM_GEOMETRY[mname]
        r = cfg.rows(md)
        beats_per_tile = k // md.m
        widths = cfg.widths(md)
        tiles_per_sched = max(1, -(-beats_target // (beats_per_tile * len(widths))))
        scheds, xs, qs = [], [], []
        for bits in widths:
            rows = tiles_per_sched * r - (1 if r > 1 else 0)   # a padded last tile
            x = rng.integers(-128, 128, (parse_mode(md).lanes, k))
            q = random_weights(rng, rows, k, md, bits, zero_group_prob=0.05, group=g)
            s = schedule_chain(x, q, md, g, n_dsp=cfg.n_dsp, bits=bits)
            garbage_fill(s, rng)
            tb.expect(s)
            scheds.append(s)
            xs.append(x)
            qs.append(q)
        mark = len(tb.accept_cycles)
        n_before = len(tb.out_cycles)
        await tb.drive(scheds)
        await tb.drain()
        first = tb.accept_cycles[mark]              # the edge that took the first beat
        tb.check(scheds, xs, qs)
        for s_, x_, q_ in zip(scheds, xs, qs):
            cover(s_, "back_to_back", x_, q_)
        perf = perf_report(tb, mname, scheds, first, n_before)
        assert perf.utilisation > 0
    # random idle gaps (bubbles) must not change any result
    for mname in cfg.mode_list():
        md = parse_mode(mname)
        k, g = RANDOM_GEOMETRY[mname]
        bits = max(cfg.widths(md))
        x = rng.integers(-128, 128, (parse_mode(md).lanes, k))
        q = random_weights(rng, 2 * cfg.rows(md), k, md, bits)
        s = schedule_chain(x, q, md, g, n_dsp=cfg.n_dsp, bits=bits)
        tb.expect(s)
        await tb.drive([s], gap_prob=0.3, rng=random.Random(7))
        await tb.drain()
        tb.check([s], [x], [q])
        cover(s, "gaps", x, q)
    lat = tb.check_latency()
    dut._log.info("measured latency per mode: %s", {m: sorted(v) for m, v in lat.items()})
    tb.finish()


@cocotb.skipif(not _enabled("backpressure"), reason="not selected by PLAIT_TB_TESTS")
@cocotb.test()
async def test_output_backpressure(dut):
    """The output stream's back-pressure, in every enabled mode.

    1. One-beat groups (group size = M: an output word per beat, the hardest case for
       the output FIFO's credits) with out_ready high: still one beat per clock, and
       the waveform latency equals the model.
    2. The same traffic, and longer groups, with out_ready low half of the cycles at
       random and input gaps: every word bit-exact and in order, the chain's in_ready
       held last beats back (credits exhausted), words waited for out_ready.  The RTL's
       a_out_hold / a_fifo_room assertions check the output held still and the FIFO
       never overflowed."""
    cfg = _config()
    tb = ChainTB(dut, cfg, "backpressure")
    await tb.start()
    rng = np.random.default_rng(99)
    for mname in cfg.mode_list():
        md = parse_mode(mname)
        bits = max(cfg.widths(md))
        r = cfg.rows(md)
        k1 = 8 * md.m                                  # 8 beats per tile, 1 per group
        x = rng.integers(-128, 128, (md.lanes, k1))
        q = random_weights(rng, 8 * r, k1, md, bits)    # 64 groups
        s = schedule_chain(x, q, md, md.m, n_dsp=cfg.n_dsp, bits=bits)
        tb.expect(s)
        mark = len(tb.accept_cycles)
        n_before = len(tb.out_cycles)
        await tb.drive([s])
        await tb.drain()
        first = tb.accept_cycles[mark]
        tb.check([s], [x], [q])
        cover(s, "one_beat_groups", x, q)
        assert tb.accept_cycles[-1] - first + 1 == s.beats, \
            f"{mname}: one-beat groups did not stream at one beat per clock"
        lat = {o - e for o, e in zip(tb.out_cycles[n_before:], tb.last_edges[n_before:])}
        assert lat == {cfg.latency(md)}, (mname, sorted(lat))
        # back-pressure: out_ready low half of the time, input gaps
        tb.ready_prob = 0.5
        stalled, cyc0 = tb.stalled_words, tb.cycle
        scheds, xs, qs = [s], [x], [q]
        k, g = RANDOM_GEOMETRY[mname]
        x2 = rng.integers(-128, 128, (md.lanes, k))
        q2 = random_weights(rng, 2 * r, k, md, bits)
        scheds.append(schedule_chain(x2, q2, md, g, n_dsp=cfg.n_dsp, bits=bits))
        xs.append(x2)
        qs.append(q2)
        tb.expect(scheds[0])
        tb.expect(scheds[1])
        tb.held.clear()
        await tb.drive(scheds, gap_prob=0.2, rng=random.Random(11))
        await tb.drain(timeout=2000)
        tb.check(scheds, xs, qs)
        for s_, x_, q_ in zip(scheds, xs, qs):
            cover(s_, "out_stalled", x_, q_)
        assert tb.stalled_words > stalled, f"{mname}: no output word waited for out_ready"
        assert id(scheds[0]) in tb.held, f"{mname}: the credits never held a last beat back"
        dut._log.info(f"{mname}: {tb.stalled_words - stalled} stalled word-cycles, "
                      f"{tb.cycle - cyc0} cycles under back-pressure")
        tb.ready_prob = 1.0
    tb.finish()


@cocotb.skipif(not _enabled("edges"), reason="not selected by PLAIT_TB_TESTS")
@cocotb.test()
async def test_edge_cases(dut):
    """-128 x -128 in every lane, all-zero groups, maximum accumulation length
    (K = 65536 in one group), every 2:4 pattern, every index in every slot for N:16,
    extreme codes of every weight width."""
    cfg = _config()
    tb = ChainTB(dut, cfg, "edges")
    await tb.start()
    rng = np.random.default_rng(7)
    modes = cfg.mode_list()
    scheds, xs, qs = [], [], []

    def add(x, q, mode, g, bits=None):
        bits = max(cfg.widths(mode)) if bits is None else bits
        s = schedule_chain(x, q, mode, g, n_dsp=cfg.n_dsp, bits=bits)
        tb.expect(s)
        scheds.append(s)
        xs.append(x)
        qs.append(q)

    for mname in modes:
        md = parse_mode(mname)
        r = cfg.rows(md)
        k = 64
        wide = max(cfg.widths(md))                   # 8 bits, 4 in pair mode
        wmin = signed_range(wide)[0]
        nl = parse_mode(md).lanes
        # -128 x the most negative weight in every lane and every kept weight; also
        # -128 x the largest
        x = np.full((nl, k), -128)
        q = np.full((r, k), wmin)
        if not md.implicit_idx:
            q = q * prune_nm(np.ones((r, k)), md.n, md.m)
        add(x, q, md, 16 if md.m <= 16 else k, wide)
        add(x, -q - 1 * (q != 0), md, k, wide)      # weights 2^(b-1)-1 where kept
        # all-zero groups: zero weights in one group, zero activations in another
        q = random_weights(rng, r, k, md, wide)
        q[:, :16] = 0
        x = rng.integers(-128, 128, (nl, k))
        x[:, 32:48] = 0
        add(x, q, md, 16, wide)
        # extreme codes of every weight width (0 and 2^b - 1 -> -2^(b-1), 2^(b-1)-1)
        for bits in cfg.widths(md):
            lo, hi = signed_range(bits)
            q = rng.choice([lo, hi], (r, k))
            if not md.implicit_idx:
                q = q * prune_nm(rng.standard_normal((r, k)), md.n, md.m)
            add(rng.choice([-128, 127], (nl, k)), q, md, 32 if md.m <= 32 else k, bits)
        # every N:M pattern (2:4: all 6) / every index in every slot (N:16), weights of
        # the widest width the build has for the mode
        wlo, whi = signed_range(max(cfg.widths(md)))
        if md.name == "2:4":
            pats = [(a, b) for a in range(4) for b in range(a + 1, 4)]
            q = np.zeros((r, 4 * len(pats)), np.int64)
            for j, (a, b) in enumerate(pats):
                q[:, 4 * j + a] = rng.integers(wlo, whi + 1, r)
                q[:, 4 * j + b] = rng.integers(wlo, whi + 1, r)
            q = np.concatenate([q, np.roll(q, 4, axis=1)], axis=0)
            x = rng.integers(-128, 128, (2, q.shape[1]))
            add(x, q, md, 8)
        elif not md.implicit_idx:
            blocks = []
            for shift in range(md.m):
                blk = np.zeros((r, md.m), np.int64)
                for row in range(r):
                    pos = (np.arange(md.n) * (md.m // md.n) + shift + row) % md.m
                    blk[row, pos] = rng.integers(wlo, whi + 1, md.n)
                blocks.append(blk)
            # runs of N neighbours starting at every position: slot j holds index
            # start + j, so the highest indices reach the low slots too (8:16 slot 0
            # = index 8 only when the block's nonzeros are 8..15; functional
            # coverage found the spread patterns above never do that)
            for start in range(md.m - md.n + 1):
                blk = np.zeros((r, md.m), np.int64)
                run = rng.integers(wlo, whi + 1, (r, md.n))
                run[run == 0] = 1                        # every slot holds its index
                blk[:, start:start + md.n] = run
                blocks.append(blk)
            q = np.concatenate(blocks, axis=1)
            add(rng.integers(-128, 128, (2, q.shape[1])), q, md, 16)
    await tb.drive(scheds)
    await tb.drain()
    tb.check(scheds, xs, qs)
    for s_, x_, q_ in zip(scheds, xs, qs):
        cover(s_, "back_to_back", x_, q_)
    # maximum accumulation length: one group of K = 65536, all -128 x -128 -> 2^30
    # (pair mode: -128 x -8 -> 2^26)
    for mname in [m for m in ("dense", "2:16", "pair") if m in modes] or modes[:1]:
        md = parse_mode(mname)
        r = cfg.rows(md)
        k = 65536
        wide = max(cfg.widths(md))
        wmin = signed_range(wide)[0]
        x = np.full((parse_mode(md).lanes, k), -128)
        q = np.full((r, k), wmin)
        if not md.implicit_idx:
            q = q * prune_nm(np.ones((r, k)), md.n, md.m)
        s = schedule_chain(x, q, md, k, n_dsp=cfg.n_dsp, bits=wide)
        gold = tb.expect(s)
        assert int(np.abs(gold).max()) == 128 * -wmin * k * md.n // md.m
        await tb.drive([s])
        await tb.drain()
        tb.check([s], [x], [q])
        cover(s, "max_k", x, q)
    tb.check_latency()
    tb.finish()


@cocotb.skipif(not _enabled("switch"), reason="not selected by PLAIT_TB_TESTS")
@cocotb.test()
async def test_mode_switch_and_errors(dut):
    """Mode changes without draining (in_ready holds the new mode back), and an
    unsupported mode code sets the sticky err flag without producing output."""
    cfg = _config()
    tb = ChainTB(dut, cfg, "switch")
    await tb.start()
    rng = np.random.default_rng(11)
    scheds, xs, qs = [], [], []
    for mname in cfg.mode_list() * 2:
        md = parse_mode(mname)
        x = rng.integers(-128, 128, (parse_mode(md).lanes, 64))
        bits = 4 if 4 in cfg.widths(md) else cfg.widths(md)[0]
        q = random_weights(rng, cfg.rows(md), 64, md, bits)
        s = schedule_chain(x, q, md, 16, n_dsp=cfg.n_dsp, bits=bits)
        tb.expect(s)
        scheds.append(s)
        xs.append(x)
        qs.append(q)
    stalls_before = tb.cycle
    await tb.drive(scheds)
    await tb.drain()
    tb.check(scheds, xs, qs)
    for s_, x_, q_ in zip(scheds, xs, qs):
        cover(s_, "held" if id(s_) in tb.held else "back_to_back", x_, q_)
    tb.check_latency()
    if len(cfg.mode_list()) > 1:
        beats = sum(s.beats for s in scheds)
        assert tb.cycle - stalls_before > beats, "mode switches should have stalled in_ready"
    assert int(dut.err.value) == 0
    # unsupported mode codes: 6, 7 always; codes of modes masked out of this build;
    # pair mode with 8-bit weights (two codes per slot need <= 4 bits)
    bad = [(c, WBITS_CODE[8]) for c in range(8) if not (cfg.sv_params()["MODE_MASK"] >> c) & 1]
    if "pair" in cfg.mode_list() and len(cfg.wbits_list()) > 1:   # (a single-width build reads no width)
        bad.append((parse_mode("pair").code, WBITS_CODE[8]))
    for code, wbits in bad:
        tb._mode_name = f"code {code}"
        await tb.driver.send([{"mode": code, "wbits": wbits, "last": 1}])
        await tb.drain()
        assert int(dut.err.value) == 1, f"mode code {code} was not flagged"
        assert not tb.observed, f"mode code {code} produced output"
        tb.last_edges.pop()                  # no output follows a dropped beat
        tb.last_modes.pop()
        await reset(dut, 1)
        await ReadOnly()
        assert int(dut.err.value) == 0, "reset must clear err"
        await RisingEdge(dut.clk)
    tb.finish()


@cocotb.skipif(not os.environ.get("PLAIT_TB_TESTS", "").strip() or not _enabled("violate"),
               reason="a deliberate protocol violation: run only when selected by PLAIT_TB_TESTS")
@cocotb.test()
async def test_protocol_violation(dut):
    """Breaks the input stream rule on purpose -- a beat of another mode is offered
    while beats are in flight (in_ready low) and withdrawn the next cycle -- so that
    the RTL's a_in_hold assertion must stop the simulation (tests/test_rtl_dsp_chain.py
    checks it does).  Only runs when PLAIT_TB_TESTS names 'violate'."""
    cfg = _config()
    tb = ChainTB(dut, cfg, "violate")
    await tb.start()
    modes = cfg.mode_list()
    md = parse_mode(modes[0])
    s = schedule_chain(np.zeros((parse_mode(md).lanes, 64), np.int64),
                       np.zeros((cfg.rows(md), 64), np.int64), md, 16, n_dsp=cfg.n_dsp,
                       bits=cfg.widths(md)[0])
    await tb.drive([s])
    other = parse_mode(modes[1] if len(modes) > 1 else modes[0])
    dut.in_valid.value = 1
    dut.in_mode.value = other.code                 # held back: the pipeline is busy
    await RisingEdge(dut.clk)
    await ReadOnly()
    assert not int(dut.in_ready.value), "the chain should have held the new mode back"
    await RisingEdge(dut.clk)
    dut.in_valid.value = 0                         # withdrawn before it was taken
    for _ in range(4):
        await RisingEdge(dut.clk)


def _gemv_skip() -> bool:
    modes = _config().mode_list()
    return not _enabled("gemv") or "pair" not in modes or "dense" not in modes


@cocotb.skipif(_gemv_skip(), reason="needs modes dense and pair (and PLAIT_TB_TESTS to allow 'gemv')")
@cocotb.test()
async def test_gemv_lane_use(dut):
    """Batch-1 GEMV (one token row), the same weights in dense mode (lane 1 carries
    nothing useful) and in pair mode (two weight rows per slice): both bit-exact;
    the useful-MAC use of the packed lanes over the streaming beats is 50 % and 100 %,
    and pair mode takes half the beats.  Perf records ``gemv dense`` / ``gemv pair``."""
    cfg = _config()
    tb = ChainTB(dut, cfg, "gemv")
    await tb.start()
    rng = np.random.default_rng(5)
    k, g, bits = 512, 64, max(cfg.widths("pair"))
    rows = 4 * cfg.rows("pair")
    x = rng.integers(-128, 128, (1, k))
    q = random_weights(rng, rows, k, "dense", bits)
    use = {}
    for mname in ("dense", "pair"):
        xin = x if mname == "pair" else np.concatenate([x, np.zeros_like(x)])
        s = schedule_chain(xin, q, mname, g, n_dsp=cfg.n_dsp, bits=bits)
        tb.expect(s)
        mark = len(tb.accept_cycles)
        await tb.drive([s])
        await tb.drain()
        first = tb.accept_cycles[mark]
        # the contract on the one real token row (dense mode: lane 0 of two)
        obs = [o[:, :s.lane_rows] for o in tb.observed]
        tb.check([s], [xin], [q])
        cover(s, "gemv", xin, q)
        got = s.unschedule(np.array(obs))[0]
        assert np.array_equal(got, group_accumulate(q, x, g)[0]), f"{mname}: GEMV mismatch"
        steady = tb.accept_cycles[-1] - first + 1
        perf = Perf(f"dsp_chain gemv {mname}", units=2 * cfg.n_dsp)
        perf.add(cycles=tb.out_cycles[-1] - first + 1, macs=rows * k, tiles=s.n_tiles)
        use[mname] = rows * k / (2 * cfg.n_dsp * steady)
        perf.extra.update({"mode": f"gemv-{mname}", "beats": s.beats, "steady_cycles": steady,
                           "lane_use": use[mname], "rows": rows, "k": k})
        perf.log(dut._log)
        perf.write_json()
        assert steady == s.beats, f"{mname}: the beats did not stream back to back"
    assert use["dense"] == 0.5 and use["pair"] == 1.0, use
    tb.finish()


# ------------------------------------------------------------------ mutation campaign
MUTANT_WINDOW_NS = 40_000          # one phase of a mutant's stimulus may take this long


def _sb_fault(sb: Scoreboard) -> str:
    """The scoreboard's first mismatch, or how many outputs are missing ("" if neither)."""
    if sb.mismatches:
        return str(sb.mismatches[0])
    return f"{sb.pending()} output(s) missing" if sb.pending() else ""


async def _mutant_window(dut, cfg: DspChainConfig, seed: int) -> str:
    """The stimulus one mutant meets (plait.sim.mutate.dsp_chain_campaign): reset; per
    enabled mode, random tiles of every weight width with extreme operands, then
    one-beat groups; the waveform latency of every group against the model; the same
    traffic under output back-pressure with input gaps; an unsupported mode code must
    set err and produce nothing.  Returns ``""`` (all right) or what went wrong."""
    tb = ChainTB(dut, cfg, "mutant")
    rng = np.random.default_rng(seed)
    try:
        await tb.start(clock=False)
        scheds, xs, qs = [], [], []
        for mname in cfg.mode_list():
            md = parse_mode(mname)
            r = cfg.rows(md)
            for bits in cfg.widths(md):
                k = 4 * md.m
                x = rng.integers(-128, 128, (md.lanes, k))
                x[:, :md.m] = -128                       # one all -128 block
                q = random_weights(rng, 2 * r, k, md, bits)
                lo, hi = signed_range(bits)
                if not md.implicit_idx:                  # keep the N:M pattern
                    q[:, :md.m] = np.where(q[:, :md.m] != 0, lo, 0)
                else:
                    q[:, :md.m] = lo
                    q[0, md.m:2 * md.m] = hi
                scheds.append(schedule_chain(x, q, md, md.m if bits == 2 else 2 * md.m,
                                             n_dsp=cfg.n_dsp, bits=bits))
                xs.append(x)
                qs.append(q)
        for s_ in scheds:
            garbage_fill(s_, rng)
            tb.expect(s_)
        await with_timeout(tb.drive(scheds), MUTANT_WINDOW_NS, "ns")
        await tb.drain(timeout=400)
        tb.check(scheds, xs, qs)
        if (bad := _sb_fault(tb.sb)):
            return f"mismatch: {bad}"
        try:
            tb.check_latency()
        except AssertionError as e:
            return f"timing: {e}"[:300]
        # back-pressure and input gaps on the same traffic
        tb.ready_prob = 0.5
        for s_ in scheds:
            tb.expect(s_)
        await with_timeout(tb.drive(scheds, gap_prob=0.2, rng=random.Random(seed)),
                           MUTANT_WINDOW_NS, "ns")
        await tb.drain(timeout=2000)
        tb.check(scheds, xs, qs)
        if (bad := _sb_fault(tb.sb)):
            return f"mismatch under back-pressure: {bad}"
        tb.ready_prob = 1.0
        # a full output FIFO: out_ready low while one-beat groups of two modes stream
        # (the credits must hold the input back; every queued word, its mode included,
        # must come out intact)
        modes = cfg.mode_list()
        full, fx, fq = [], [], []
        # (one word short of full in the first mode, so that the second mode's first
        # word fills the FIFO while its head is still of the first mode)
        for mname, groups in ((modes[0], cfg.out_depth - 1), (modes[-1], 8)):
            md = parse_mode(mname)
            r = cfg.rows(md)
            x = rng.integers(-128, 128, (md.lanes, groups * md.m))
            q = random_weights(rng, r, groups * md.m, md, max(cfg.widths(md)))
            full.append(schedule_chain(x, q, md, md.m, n_dsp=cfg.n_dsp, bits=max(cfg.widths(md))))
            fx.append(x)
            fq.append(q)
            tb.expect(full[-1])
        tb.ready_prob = 0.0
        task = cocotb.start_soon(tb.drive(full))
        for _ in range(4 * cfg.out_depth):
            await RisingEdge(dut.clk)
        tb.ready_prob = 1.0
        await with_timeout(task, MUTANT_WINDOW_NS, "ns")
        await tb.drain(timeout=2000)
        tb.check(full, fx, fq)
        if (bad := _sb_fault(tb.sb)):
            return f"mismatch with a full output FIFO: {bad}"
        # a reset in flight: nothing may come out after it, and the chain runs again
        await RisingEdge(dut.clk)
        task = cocotb.start_soon(tb.drive([full[0]]))
        for _ in range(cfg.out_depth):
            await RisingEdge(dut.clk)
        task.cancel()
        tb.ready_prob = 0.0                     # words queued at the reset
        await reset(dut, 1, idle={dut.in_valid: 0})
        tb.ready_prob = 1.0
        tb.observed, tb.observed_modes = [], []
        for _ in range(3 * cfg.out_depth):
            await RisingEdge(dut.clk)
        await ReadOnly()
        if tb.observed or int(dut.busy.value) or int(dut.out_valid.value):
            return (f"reset in flight: {len(tb.observed)} word(s) after it, busy "
                    f"{int(dut.busy.value)}, out_valid {int(dut.out_valid.value)}")
        await RisingEdge(dut.clk)
        tb.expect(scheds[0])
        await with_timeout(tb.drive(scheds[:1]), MUTANT_WINDOW_NS, "ns")
        await tb.drain(timeout=400)
        tb.check(scheds[:1], xs[:1], qs[:1])
        if (bad := _sb_fault(tb.sb)):
            return f"mismatch after a reset in flight: {bad}"
        await ReadOnly()
        if int(dut.err.value):
            return "err raised by legal traffic"
        await RisingEdge(dut.clk)
        bad = next(c for c in range(8) if not (cfg.sv_params()["MODE_MASK"] >> c) & 1)
        tb._mode_name = "bad"
        await tb.driver.send([{"mode": bad, "wbits": WBITS_CODE[8], "last": 1}])
        await tb.drain()
        await ReadOnly()
        if not int(dut.err.value) or tb.observed:
            return f"unsupported mode code {bad}: err {int(dut.err.value)}, {len(tb.observed)} output(s)"
        return ""
    except (SimTimeoutError, TimeoutError) as e:
        return f"hung: {type(e).__name__} {e}"[:300]
    except AssertionError as e:                 # drain() timed out, a bench check
        return f"hung: {e}"[:300] if "still busy" in str(e) else f"bench error: {e}"[:300]
    except Exception as e:                      # noqa: BLE001 -- a mutant may break the bench
        return f"bench error: {type(e).__name__}: {e}"[:300]
    finally:
        await RisingEdge(dut.clk)               # out of a ReadOnly phase
        tb.stop()
        dut.in_valid.value = 0
        dut.out_ready.value = 1


@cocotb.skipif("PLAIT_DSP_MUTANTS" not in os.environ,
               reason="the mutation campaign's test: runs when PLAIT_DSP_MUTANTS lists mutants")
@cocotb.test()
async def test_mutants(dut):
    """The mutation campaign's simulation (plait.sim.mutate.run_campaign): for each
    mutant select K in ``PLAIT_DSP_MUTANTS`` (a JSON list; 0 = the unmutated design)
    write ``dut.plait_mut`` and run :func:`_mutant_window`; after each window its
    verdict and simulation times (steps) are appended to ``$PLAIT_SIM_OUT/mutants.json``
    (the campaign matches the assertion failures in sim.log with the windows)."""
    cfg = _config()
    ids = json.loads(os.environ["PLAIT_DSP_MUTANTS"])
    seed = int(os.environ.get("PLAIT_DSP_SEED", "17"))
    path = Path(os.environ.get("PLAIT_SIM_OUT", ".")) / "mutants.json"
    start_clock(dut.clk, 10)
    done = []
    for k in ids:
        dut.plait_mut.value = int(k)
        t0 = get_sim_time("step")
        verdict = await _mutant_window(dut, cfg, seed)
        done.append({"mut": int(k), "t0": t0, "t1": get_sim_time("step"), "verdict": verdict})
        path.write_text(json.dumps(done))
        if k == 0 and verdict:
            raise AssertionError(f"the unmutated design fails the campaign stimulus: {verdict}")
    dut.plait_mut.value = 0


@cocotb.skipif(not os.environ.get("PLAIT_TB_EXPECT_SLICE", "").strip() or not _enabled("structure"),
               reason="PLAIT_TB_EXPECT_SLICE unset or not selected by PLAIT_TB_TESTS")
@cocotb.test()
async def test_slice_structure(dut):
    """Which slice implementation this build simulates (``PLAIT_TB_EXPECT_SLICE`` =
    ``primitive``: every slice is a DSP48E2 instance, Z-MUX = 0 on the first slice of
    each cascade group and PCIN on the others; ``behavioural``: no primitive)."""
    want = os.environ.get("PLAIT_TB_EXPECT_SLICE", "").strip()
    if want not in ("primitive", "behavioural"):
        raise ValueError(f"PLAIT_TB_EXPECT_SLICE must be 'primitive' or 'behavioural', "
                         f"got {want!r}")
    cfg = _config()
    start_clock(dut.clk, 10)
    await RisingEdge(dut.clk)
    await ReadOnly()
    for g in range(cfg.n_groups):
        for j in range(cfg.cascade):
            sl = dut.g_group[g].u_group.g_slice[j].u_slice
            has = hasattr(sl, "u_dsp")
            assert has == (want == "primitive"), \
                f"group {g} slice {j}: DSP48E2 instance {'missing' if not has else 'present'}"
            if has:
                prim = sl.u_dsp.u_dsp            # the DSP48E2 inside plait_dsp48e2
                opmode = int(prim.OPMODE.value)
                z = (opmode >> 4) & 0b111
                assert z == (0b001 if j else 0b000), \
                    f"group {g} slice {j}: OPMODE {opmode:09b} (Z-MUX {z:03b})"
                assert (opmode & 0b1111) == 0b0101 and int(prim.ALUMODE.value) == 0
                # W-MUX: the lane bias RND on the first slice of a group, else 0
                assert opmode >> 7 == (0b00 if j else 0b10), \
                    f"group {g} slice {j}: OPMODE {opmode:09b} (W-MUX {opmode >> 7:02b})"
                assert int(prim.INMODE.value) == 0b00100


#: mutants of the campaign (plait.sim.mutate.dsp_chain_campaign) that no stimulus can
#: tell from the design, each looked at: (file, statement or a unique part of it, change)
#: -> why
MUTANT_EQUIVALENT: dict[tuple[str, str, str], str] = {
    ("dsp_chain.sv", "last <= '0;", "`'0` -> `'1`"):
        "last is read only together with v (v_tap / last_tap, acc_v_q && acc_last_q), which the "
        "reset clears: the reset value of last is never used",
    ("dsp_chain.sv", "assign pair_r[i] = 1'b0;", "`1'b0` -> `1'b1`"): "the g_nopair branch is not elaborated in a build with pair mode (the campaign's all-modes build)",
    ("dsp_chain.sv", "assign wq_hi_r[i*8 +: 8] = '0;", "`'0` -> `'1`"): "the g_nopair branch is not elaborated in a build with pair mode (the campaign's all-modes build)",
    ("dsp_chain.sv", "assign tree_q[((l*NG + n)*2)*TREE_W +: 2*TREE_W] = '0;", "`'0` -> `'1`"): "tree nodes n >= NG >> l of level l do not exist; the accumulators select level l only for rows r < NG >> l, so the filler is never read",
    ("dsp_chain.sv", "if (MODE_EN[M_DENSE] && cur_mode == M_DENSE)", "`&&` -> `||`"): "lev is LEV_ANY before the decode, and LEV_ANY = LEV_16 whenever dense or pair is built: the dense and pair lines are redundant (stuck at 1 / `||`: a later line for the sparse modes overrides them; stuck at 0 / `!=`: LEV_ANY gives the same level)",
    ("dsp_chain.sv", "if (MODE_EN[M_DENSE] && cur_mode == M_DENSE)", "`==` -> `!=`"): "lev is LEV_ANY before the decode, and LEV_ANY = LEV_16 whenever dense or pair is built: the dense and pair lines are redundant (stuck at 1 / `||`: a later line for the sparse modes overrides them; stuck at 0 / `!=`: LEV_ANY gives the same level)",
    ("dsp_chain.sv", "if (MODE_EN[M_DENSE] && cur_mode == M_DENSE)", "condition stuck at 1"): "lev is LEV_ANY before the decode, and LEV_ANY = LEV_16 whenever dense or pair is built: the dense and pair lines are redundant (stuck at 1 / `||`: a later line for the sparse modes overrides them; stuck at 0 / `!=`: LEV_ANY gives the same level)",
    ("dsp_chain.sv", "if (MODE_EN[M_DENSE] && cur_mode == M_DENSE)", "condition stuck at 0"): "lev is LEV_ANY before the decode, and LEV_ANY = LEV_16 whenever dense or pair is built: the dense and pair lines are redundant (stuck at 1 / `||`: a later line for the sparse modes overrides them; stuck at 0 / `!=`: LEV_ANY gives the same level)",
    ("dsp_chain.sv", "if (EN_PAIR && cur_mode == M_PAIR)", "`&&` -> `||`"): "lev is LEV_ANY before the decode, and LEV_ANY = LEV_16 whenever dense or pair is built: the dense and pair lines are redundant (stuck at 1 / `||`: a later line for the sparse modes overrides them; stuck at 0 / `!=`: LEV_ANY gives the same level)",
    ("dsp_chain.sv", "if (EN_PAIR && cur_mode == M_PAIR)", "`==` -> `!=`"): "lev is LEV_ANY before the decode, and LEV_ANY = LEV_16 whenever dense or pair is built: the dense and pair lines are redundant (stuck at 1 / `||`: a later line for the sparse modes overrides them; stuck at 0 / `!=`: LEV_ANY gives the same level)",
    ("dsp_chain.sv", "if (EN_PAIR && cur_mode == M_PAIR)", "condition stuck at 1"): "lev is LEV_ANY before the decode, and LEV_ANY = LEV_16 whenever dense or pair is built: the dense and pair lines are redundant (stuck at 1 / `||`: a later line for the sparse modes overrides them; stuck at 0 / `!=`: LEV_ANY gives the same level)",
    ("dsp_chain.sv", "if (EN_PAIR && cur_mode == M_PAIR)", "condition stuck at 0"): "lev is LEV_ANY before the decode, and LEV_ANY = LEV_16 whenever dense or pair is built: the dense and pair lines are redundant (stuck at 1 / `||`: a later line for the sparse modes overrides them; stuck at 0 / `!=`: LEV_ANY gives the same level)",
    ("dsp_chain.sv", "if (lev_q == LV_W'(l) && r < (NG >> l))", "`<` -> `<=`"): "the row guard: rows beyond it select the nonexistent nodes of g_none, which are 0 like the default x = '0, so a looser guard reads the same zeros",
    ("dsp_chain.sv", "if (lev_q == LV_W'(l) && r < (NG >> l))", "`>>` -> `<<`"): "the row guard: rows beyond it select the nonexistent nodes of g_none, which are 0 like the default x = '0, so a looser guard reads the same zeros",
    ("dsp_operand_decode.sv", "if (EN_N16)", "condition stuck at 1"):
        "EN_N16 = 1 in the campaign's build: stuck at 1 is the design",
    ("dsp_operand_decode.sv", "if (EN_24)", "condition stuck at 1"): "the fallback selects after `if (EN_N16)` are not reached when an N:16 mode is built (EN_N16 = 1 in the campaign's build; the 2:4 select is the `mode == M_2_4` line)",
    ("dsp_operand_decode.sv", "if (EN_24)", "condition stuck at 0"): "the fallback selects after `if (EN_N16)` are not reached when an N:16 mode is built (EN_N16 = 1 in the campaign's build; the 2:4 select is the `mode == M_2_4` line)",
    ("dsp_cascade_group.sv", "assign p_biased = p_last + P_W'(RND - RND_DSP);", "`+` -> `-`"):
        "RND - RND_DSP = 0 except on the 7-series / Spartan-6 families (the bias is inside the "
        "first slice): adding or subtracting 0 is the same (the `-` -> `+` mutant, 2 RND, is killed)",
    ("dsp_cascade_group.sv", "assign pcin = '0;", "`'0` -> `'1`"):
        "the first slice of a cascade group does not read pcin (behavioural: p <= m_r; the "
        "DSP48E2 primitive: Z-MUX = 0)",
}
