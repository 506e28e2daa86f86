"""cocotb testbench of the LUT tensor core (rtl/sv/lut_core.sv).

Launched from pytest through :func:`plait.sim.runner.run_cocotb`
(tests/test_rtl_lut_core.py).  Every output tile ``P[M, N]`` is compared with
*equality* against the contract, :func:`plait.ir.numerics.linear_int`
(``dequant_groups(group_accumulate(signed_weight(qw), x, G), encode_scales(s))``).

Settings from the environment:

* ``PLAIT_TB_CONFIG``   the :class:`plait.rtl.lut_core.LutCoreConfig` JSON of the build
* ``PLAIT_LUT_TILES``   random tiles per weight mode in ``test_random_modes`` (default 24)
* ``PLAIT_LUT_MODES``   comma list of modes (default: all of :data:`MODES`)
* ``PLAIT_LUT_SEED``    stimulus seed (default 11)
* ``PLAIT_LUT_PERF_K``  reduction length of the throughput tiles (default 256)

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

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from plait.ir.numerics import QuantizedWeight, linear_int, lut_trace
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


def _config() -> LutCoreConfig:
    raw = os.environ.get("PLAIT_TB_CONFIG")
    if not raw:
        return LutCoreConfig()
    d = json.loads(raw)
    return LutCoreConfig.from_dict(d.get("fields", d))


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
                 ready_prob: float | None = None, seed: int = 0):
        self.dut, self.cfg, self.sb = dut, cfg, sb
        rnd = random.Random(seed)
        self.a = StreamDriver(dut.clk, dut.a_valid, dut.a_ready, {"d": dut.a_data},
                              gap_prob=gap_prob, rng=random.Random(rnd.random()))
        self.w = StreamDriver(dut.clk, dut.w_valid, dut.w_ready, {"d": dut.w_data},
                              gap_prob=gap_prob, rng=random.Random(rnd.random()))
        self.s = StreamDriver(dut.clk, dut.s_valid, dut.s_ready,
                              {"m": dut.s_mant, "z": dut.s_zp},
                              gap_prob=gap_prob, rng=random.Random(rnd.random()))
        self.outs: list[np.ndarray] = []
        self.mon = StreamMonitor(dut.clk, dut.o_valid, dut.o_ready, {"p": dut.o_p},
                                 callback=self._on_out)
        # records the cycle of every activation beat accepted (same cycle count as mon)
        self.amon = StreamMonitor(dut.clk, dut.a_valid, dut.a_ready, {})
        self.bp = None
        self.ready_prob = ready_prob
        self.rnd = rnd

    def _on_out(self, txn):
        p = np.array(unpack_signed(txn["p"], 48, self.cfg.m * self.cfg.n), np.int64)
        p = p.reshape(self.cfg.m, self.cfg.n)
        self.outs.append(p)
        self.sb.observe("P", p)

    async def start(self):
        dut = self.dut
        start_clock(dut.clk, 10)
        dut.o_ready.value = 1
        for h in (dut.s_mant, dut.s_zp, dut.a_data, dut.w_data):
            h.value = 0
        await reset(dut, 3, idle={dut.a_valid: 0, dut.w_valid: 0, dut.s_valid: 0})
        self.mon.start()
        self.amon.start()
        if self.ready_prob is not None:
            self.bp = BackpressureDriver(dut.clk, dut.o_ready, prob=self.ready_prob,
                                         rng=random.Random(self.rnd.random())).start()

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
        self.set_mode(mode, tiles[0][1].n_groups)
        n_before = len(self.mon.transactions)
        na_before = len(self.amon.cycles)
        ta = cocotb.start_soon(self.a.send({"d": v} for v in a_beats))
        tw = cocotb.start_soon(self.w.send({"d": v} for v in w_beats))
        ts = cocotb.start_soon(self.s.send({"m": m, "z": z} for m, z in s_beats))
        await ta
        await tw
        await ts
        budget = 40 * (len(w_beats) + 50)
        await self.mon.wait_for(n_before + len(tiles), timeout_cycles=budget)
        return self.amon.cycles[na_before], self.mon.cycles[-1]


def _log_sb(dut, sb):
    dut._log.info(sb.summary())


# ------------------------------------------------------------------ tests
@cocotb.test()
async def test_cfg_errors(dut):
    """Illegal run-time configurations raise cfg_err and block every input stream."""
    cfg = _config()
    start_clock(dut.clk, 10)
    dut.o_ready.value = 1
    await reset(dut, 3, idle={dut.a_valid: 0, dut.w_valid: 0, dut.s_valid: 0})
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
    dut.cfg_bits.value = cfg.max_bits
    dut.cfg_group_chunks.value = cfg.max_group // 4
    dut.cfg_groups.value = 1
    await ReadOnly()
    assert int(dut.cfg_err.value) == 0, "cfg_err high for a legal configuration"
    assert int(dut.a_ready.value) == 1, "a_ready low on an idle core with a legal config"


@cocotb.test()
async def test_directed_edges(dut):
    """Extremes: -128 everywhere, all-zero groups, maximum group length, every width."""
    cfg = _config()
    sb = Scoreboard("lut_core directed")
    h = LutHarness(dut, cfg, sb)
    await h.start()
    m, n, gmax = cfg.m, cfg.n, cfg.max_group
    ntile = 0
    for name, scheme, bits in _modes(cfg):
        top = (1 << bits) - 1
        hi = 2 if scheme == "ternary" else top
        for codes_val in (0, hi):
            for xval in (-128, 127):
                # maximum accumulation: largest group, two groups, extreme operands
                k = 2 * gmax
                x = np.full((m, k), xval, np.int64)
                codes = np.full((n, k), codes_val, np.uint8)
                scales = np.ones((n, 2), np.float32)        # mantissa 65535 (2^16 - 1)
                zeros = None
                if scheme == "asym":
                    zeros = np.full((n, 2), top - codes_val, np.int32)   # |q| = 2^b - 1
                qw = QuantizedWeight(codes, scales, zeros, bits, gmax, scheme)
                await h.run_batch([(x, qw)])
                ntile += 1
        # all-zero activation groups and all-zero codes mixed with extremes
        k = 16
        x = np.zeros((m, k), np.int64)
        x[:, 4:8] = -128
        x[0, 12:16] = 127
        codes = np.zeros((n, k), np.uint8)
        codes[::2, :] = hi
        scales = np.linspace(0.0, 2.0, n * 4).reshape(n, 4).astype(np.float32)
        zeros = np.full((n, 4), 1, np.int32) if scheme == "asym" else None
        qw = QuantizedWeight(codes, scales, zeros, bits, 4, scheme)
        await h.run_batch([(x, qw), (np.zeros((m, k), np.int64), qw)])
        ntile += 2
    _log_sb(dut, sb)
    sb.assert_clean()
    assert sb.compared == ntile


@cocotb.test()
async def test_random_modes(dut):
    """Constrained-random tiles in every mode, random input gaps and output stalls."""
    cfg = _config()
    ntiles = int(os.environ.get("PLAIT_LUT_TILES", "24"))
    seed = int(os.environ.get("PLAIT_LUT_SEED", "11"))
    rng = np.random.default_rng(seed)
    sb = Scoreboard("lut_core random")
    h = LutHarness(dut, cfg, sb, gap_prob=0.15, ready_prob=0.7, seed=seed)
    await h.start()
    groups = [g for g in GROUPS if g <= cfg.max_group]
    per_mode = {}
    for name, scheme, bits in _modes(cfg):
        done = 0
        values = 0
        while done < ntiles:
            g = int(rng.choice(groups))
            ng = int(rng.integers(1, max(2, min(5, 1024 // g + 1))))
            nb = int(min(ntiles - done, rng.integers(1, 4)))
            tiles = []
            for _ in range(nb):
                x = rand_acts(rng, cfg.m, g * ng)
                qw = rand_weight(rng, scheme, bits, cfg.n, g * ng, g)
                # the golden model of the internals agrees with the contract
                assert np.array_equal(lut_trace(x, qw, cfg.max_group, cfg.max_bits).p,
                                      linear_int(x.astype(np.int8), qw)[0])
                tiles.append((x, qw))
            await h.run_batch(tiles)
            done += nb
            values += nb * cfg.m * cfg.n
        per_mode[name] = values
        dut._log.info(f"mode {name}: {done} tiles, {values} dot products checked")
    if h.bp is not None:
        h.bp.stop(final=1)
    _log_sb(dut, sb)
    sb.assert_clean()
    assert sb.compared == ntiles * len(_modes(cfg))


@cocotb.test()
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
        n0 = len(h.mon.cycles)
        c0, c1 = await h.run_batch(tiles)
        outs = h.mon.cycles[n0:]
        steady = (outs[-1] - outs[0]) / (ntiles - 1)
        cycles = c1 - c0 + 1
        perf = Perf(f"lut_core {name}", units=cfg.lookup_units())
        useful = cfg.m * cfg.n * bits * (k // 4) * ntiles
        perf.add(cycles=cycles, macs=useful, tiles=ntiles)
        perf.extra.update({
            "mode": name, "bits": bits, "K": k, "G": g,
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
    _log_sb(dut, sb)
    sb.assert_clean()
