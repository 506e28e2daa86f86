"""cocotb testbench of the engines' AXI4-Stream tops (``rtl/sv/dsp_chain_axis.sv``,
``rtl/sv/lut_core_axis.sv``), driven by cocotbext-axi's ``AxiStreamSource`` /
``AxiStreamSink`` with random pauses on every stream, both sides.

Launched from pytest (``tests/test_rtl_axis.py``); the unit's config arrives as JSON in
``PLAIT_TB_CONFIG`` and the test of the other engine is skipped.  ``PLAIT_AXIS_PAUSE``
sets the pause probability of every source and sink (default 0.3).

Every output word is compared with *equality*: the DSP chain's against the bit-level
golden model :func:`plait.ir.numerics.dsp.run_schedule` and, per schedule, the
contract :func:`plait.ir.numerics.common.group_accumulate`; the LUT core's tiles
against the contract :func:`plait.ir.numerics.linear_int`.  Each test also asserts
that the pauses really stalled both the input side (tvalid high, tready low) and the
output side (the sink paused with a word offered).
"""
from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from plait.sim.drivers import pack_signed, pack_unsigned, reset, start_clock, unpack_signed
from plait.sim.scoreboard import Scoreboard

PERIOD_NS = 10


def _top_name() -> str:
    top = getattr(cocotb, "top", None)
    return getattr(top, "_name", "") if top is not None else ""


def _config_fields() -> dict:
    raw = os.environ.get("PLAIT_TB_CONFIG", "")
    if not raw:
        return {}
    d = json.loads(raw)
    return d.get("fields", d)


def _pause_prob() -> float:
    return float(os.environ.get("PLAIT_AXIS_PAUSE", "0.3"))


def _pauses(rng: random.Random, prob: float):
    """cocotbext-axi pause generator: paused with probability ``prob`` each cycle,
    with occasional bursts of 4..24 paused cycles (fills the queues)."""
    while True:
        if rng.random() < prob / 8:
            for _ in range(rng.randint(4, 24)):
                yield True
        yield rng.random() < prob


def _source(dut, prefix: str, rng: random.Random) -> AxiStreamSource:
    src = AxiStreamSource(AxiStreamBus.from_prefix(dut, prefix), dut.clk, dut.rst_n,
                          reset_active_level=False, byte_lanes=1)
    src.set_pause_generator(_pauses(random.Random(rng.random()), _pause_prob()))
    return src


def _sink(dut, prefix: str, rng: random.Random) -> AxiStreamSink:
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, prefix), dut.clk, dut.rst_n,
                         reset_active_level=False, byte_lanes=1)
    sink.set_pause_generator(_pauses(random.Random(rng.random()), _pause_prob()))
    return sink


class StallCounter:
    """Counts, per stream, the cycles a word was offered and not taken."""

    def __init__(self, clk, streams: dict[str, tuple]):
        self.clk, self.streams = clk, streams
        self.stalls = {k: 0 for k in streams}
        cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await RisingEdge(self.clk)
            await ReadOnly()
            for k, (valid, ready) in self.streams.items():
                if int(valid.value) and not int(ready.value):
                    self.stalls[k] += 1


async def _start(dut):
    start_clock(dut.clk, PERIOD_NS)
    await reset(dut, 4)


# ------------------------------------------------------------------ DSP chain
@cocotb.skipif(_top_name() != "dsp_chain_axis", reason="the build is not dsp_chain_axis")
@cocotb.test()
async def test_dsp_chain_axis(dut):
    """Every enabled mode and weight width, groups of one beat and of several, streamed
    as one AXI4-Stream packet per quantization group (tuser = {wbits, mode}); every
    output packet is one word (tlast) whose tuser is its mode."""
    from plait.ir.numerics.common import group_accumulate
    from plait.ir.numerics.dsp import WBITS_CODE, parse_mode, run_schedule, schedule_chain
    from plait.rtl.dsp_chain import DspChainConfig
    from plait.sim.tb.test_dsp_chain import garbage_fill, random_weights

    cfg = DspChainConfig.from_dict(_config_fields())
    p = cfg.sv_params()
    act_w, w_w = 2 * p["M_MAX"] * 8, cfg.n_dsp * p["CODE_W"]
    mode_w = p["MODE_W"]
    assert len(dut.s_axis_tdata) == act_w + w_w + cfg.n_dsp * p["IDX_W"]
    rng_py = random.Random(5)
    src, sink = _source(dut, "s_axis", rng_py), _sink(dut, "m_axis", rng_py)
    stalls = StallCounter(dut.clk, {"in": (dut.s_axis_tvalid, dut.s_axis_tready),
                                    "out": (dut.m_axis_tvalid, dut.m_axis_tready)})
    await _start(dut)
    sb = Scoreboard("dsp_chain_axis")
    rng = np.random.default_rng(21)
    scheds, xs, qs = [], [], []
    for mname in cfg.mode_list():
        md = parse_mode(mname)
        for bits in md.weight_bits:
            for g, k in ((md.m, 4 * md.m), (4 * md.m, 16 * md.m)):   # 1-beat and 4-beat groups
                x = rng.integers(-128, 128, (md.lanes, k))
                q = random_weights(rng, 2 * cfg.rows(md), k, md, bits)
                s = schedule_chain(x, q, md, g, n_dsp=cfg.n_dsp, bits=bits)
                garbage_fill(s, rng)
                scheds.append(s)
                xs.append(x)
                qs.append(q)
    words = 0
    for s in scheds:
        for o in run_schedule(s, cascade=cfg.cascade, lane_shift=cfg.lane_shift,
                              acc_w=cfg.acc_w):
            sb.expect("acc", o)
            sb.expect("mode", s.mode.code)
            words += 1
        user = s.mode.code | (WBITS_CODE[s.bits] << mode_w)
        data = [pack_signed(a.reshape(-1), 8) | (pack_unsigned(w, 8) << act_w)
                | (pack_unsigned(ix, 4) << (act_w + w_w))
                for a, w, ix in zip(s.act, s.codes, s.idx)]
        start = 0
        for t in range(s.beats):                    # one packet per quantization group
            if s.last[t]:
                await src.send(AxiStreamFrame(tdata=data[start:t + 1],
                                              tuser=[user] * (t + 1 - start)))
                start = t + 1
        assert start == s.beats
    got = []
    for _ in range(words):
        f = await sink.recv()
        assert len(f.tdata) == 1, f"an output packet of {len(f.tdata)} words (tlast on every word)"
        vals = unpack_signed(f.tdata[0], cfg.acc_w, 2 * cfg.rows_max)
        o = np.array(vals, np.int64).reshape(2, cfg.rows_max)
        tuser = f.tuser[0] if isinstance(f.tuser, list) else f.tuser
        got.append(o)
        sb.observe("mode", int(tuser))
    pos = 0
    for s, x, q in zip(scheds, xs, qs):
        n = s.n_tiles * (s.k // s.group_size)
        mine = [o[:, :s.lane_rows] for o in got[pos:pos + n]]
        for o in mine:
            sb.observe("acc", o)
        sb.expect("contract", group_accumulate(q, x, s.group_size))
        sb.observe("contract", s.unschedule(np.array(mine)))
        pos += n
    for _ in range(50):
        await RisingEdge(dut.clk)
    await ReadOnly()
    assert sink.empty() and not int(dut.m_axis_tvalid.value), "output words beyond the expected"
    assert not int(dut.err.value), "err raised"
    sb.assert_clean()
    dut._log.info(sb.summary())
    dut._log.info(f"dsp_chain_axis: {len(scheds)} schedules, {words} words, stalled cycles "
                  f"{stalls.stalls}")
    if _pause_prob() > 0:
        assert stalls.stalls["in"] > 0 and stalls.stalls["out"] > 0, stalls.stalls


# ------------------------------------------------------------------ LUT core
@cocotb.skipif(_top_name() != "lut_core_axis", reason="the build is not lut_core_axis")
@cocotb.test()
async def test_lut_core_axis(dut):
    """Random tiles of every weight format the build runs (1..3 tiles back to back per
    run-time configuration), the a / w / s streams and the output all paused at random."""
    from plait.ir.numerics import linear_int
    from plait.rtl.lut_core import LutCoreConfig, stream_tile
    from plait.sim.tb.test_lut_core import MODES, random_batches

    cfg = LutCoreConfig.from_dict(_config_fields())
    mant_w = cfg.sv_params()["MANT_W"] * cfg.n
    p_w = cfg.sv_params()["P_W"]
    rng_py = random.Random(9)
    sa, sw, ss = (_source(dut, f"s_axis_{k}", rng_py) for k in "aws")
    sink = _sink(dut, "m_axis_o", rng_py)
    stalls = StallCounter(dut.clk, {
        "a": (dut.s_axis_a_tvalid, dut.s_axis_a_tready),
        "w": (dut.s_axis_w_tvalid, dut.s_axis_w_tready),
        "s": (dut.s_axis_s_tvalid, dut.s_axis_s_tready),
        "o": (dut.m_axis_o_tvalid, dut.m_axis_o_tready)})
    dut.cfg_bits.value = 1
    dut.cfg_offset.value = 0
    dut.cfg_group_chunks.value = 1
    dut.cfg_groups.value = 1
    await _start(dut)
    sb = Scoreboard("lut_core_axis")
    rng = np.random.default_rng(13)
    tiles_done = 0
    for mode in [md for md in MODES if md[2] <= cfg.max_bits]:
        for tiles, _g, _ng in random_batches(cfg, rng, mode, ntiles=3, check_trace=False):
            streams = [stream_tile(x, qw, cfg) for x, qw in tiles]
            md = streams[0][0]
            # the run-time configuration of this batch's format, set before its first
            # beat and held until its last tile is out
            dut.cfg_bits.value = md.bits
            dut.cfg_offset.value = int(md.offset)
            dut.cfg_group_chunks.value = md.group_chunks
            dut.cfg_groups.value = tiles[0][1].n_groups
            await ReadOnly()
            assert not int(dut.cfg_err.value), f"cfg_err for {mode}"
            await RisingEdge(dut.clk)
            for (x, qw), (_md, a, w, sp) in zip(tiles, streams):
                sb.expect("P", linear_int(np.asarray(x, np.int64).astype(np.int8), qw)[0])
                await sa.send(AxiStreamFrame(tdata=a))
                await sw.send(AxiStreamFrame(tdata=w))
                await ss.send(AxiStreamFrame(tdata=[m | (z << mant_w) for m, z in sp]))
            for _ in tiles:
                f = await sink.recv()          # one frame per tile: tlast on its last beat
                assert len(f.tdata) == cfg.dq_steps, (len(f.tdata), cfg.dq_steps)
                # beat t, word m * dq_lanes + l = P[m][t * dq_lanes + l]
                pv = np.array([unpack_signed(d, p_w, cfg.m * cfg.dq_lanes) for d in f.tdata],
                              np.int64).reshape(cfg.dq_steps, cfg.m, cfg.dq_lanes)
                sb.observe("P", pv.transpose(1, 0, 2).reshape(cfg.m, cfg.n))
            tiles_done += len(tiles)
    sb.assert_clean()
    dut._log.info(sb.summary())
    dut._log.info(f"lut_core_axis: {tiles_done} tiles, stalled cycles {stalls.stalls}")
    if _pause_prob() > 0:
        assert stalls.stalls["o"] > 0 and (stalls.stalls["a"] + stalls.stalls["w"]) > 0, \
            stalls.stalls
