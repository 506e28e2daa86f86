"""cocotb testbench of rtl/sv/plait_skid_buffer.sv (the library valid/ready slice).

Launched from pytest through :func:`plait.sim.runner.run_cocotb` (see
tests/test_sim_infra.py).  Settings from the environment:

* ``PLAIT_SKID_N``       number of random words (default 400)
* ``PLAIT_SKID_SEED``    stimulus seed (default 7)
* ``PLAIT_SKID_CORRUPT`` if set to an index ``k``, the testbench deliberately
  corrupts the *expected* value of word ``k`` (flips bit 0); the scoreboard must
  then fail -- used to prove that a single-bit difference is caught.
"""
from __future__ import annotations

import os
import random

import cocotb
from cocotb.triggers import RisingEdge

from plait.sim.drivers import (BackpressureDriver, StreamDriver, StreamMonitor, reset,
                               start_clock)
from plait.sim.scoreboard import Perf, Scoreboard


def _setup(dut):
    start_clock(dut.clk, 10)
    width = len(dut.s_data)
    return width


@cocotb.test()
async def test_random_stream(dut):
    """Random words, random idle gaps, random backpressure: order and values exact."""
    width = _setup(dut)
    n = int(os.environ.get("PLAIT_SKID_N", "400"))
    rng = random.Random(int(os.environ.get("PLAIT_SKID_SEED", "7")))
    corrupt = os.environ.get("PLAIT_SKID_CORRUPT")
    dut.m_ready.value = 0
    await reset(dut, 4, idle={dut.s_valid: 0})

    words = [rng.getrandbits(width) for _ in range(n)]
    sb = Scoreboard("skid_buffer")
    for i, w in enumerate(words):
        exp = w ^ 1 if corrupt is not None and i == int(corrupt) else w
        sb.expect("data", [exp])
    mon = StreamMonitor(dut.clk, dut.m_valid, dut.m_ready, {"data": dut.m_data},
                        callback=lambda t: sb.observe("data", [t["data"]])).start()
    bp = BackpressureDriver(dut.clk, dut.m_ready, prob=0.6, rng=random.Random(rng.random())).start()
    drv = StreamDriver(dut.clk, dut.s_valid, dut.s_ready, {"data": dut.s_data},
                       gap_prob=0.3, rng=random.Random(rng.random()))
    await drv.send({"data": w} for w in words)
    bp.stop(final=1)
    await mon.wait_for(n, timeout_cycles=100)
    for _ in range(5):                       # nothing extra may come out
        await RisingEdge(dut.clk)
    mon.stop()
    dut._log.info(sb.summary())
    assert len(mon.transactions) == n, f"{len(mon.transactions)} words out, {n} in"
    sb.assert_clean()


@cocotb.test()
async def test_full_throughput(dut):
    """With ready always high and no gaps, one word per cycle (latency 1)."""
    width = _setup(dut)
    n = 64
    dut.m_ready.value = 1
    await reset(dut, 3, idle={dut.s_valid: 0})
    sb = Scoreboard("skid_buffer_tp")
    words = [(i * 2654435761) % (1 << width) for i in range(n)]
    for w in words:
        sb.expect("data", [w])
    mon = StreamMonitor(dut.clk, dut.m_valid, dut.m_ready, {"data": dut.m_data},
                        callback=lambda t: sb.observe("data", [t["data"]])).start()
    drv = StreamDriver(dut.clk, dut.s_valid, dut.s_ready, {"data": dut.s_data})
    await drv.send({"data": w} for w in words)
    await mon.wait_for(n, timeout_cycles=10)
    mon.stop()
    sb.assert_clean()
    span = mon.cycles[-1] - mon.cycles[0] + 1
    perf = Perf("skid_buffer full throughput", units=1)
    perf.add(cycles=span, macs=n, tiles=n)          # one "useful op" = one word moved
    perf.log(dut._log)
    perf.write_json()
    assert span == n, f"{n} words took {span} cycles (expected one per cycle)"


@cocotb.test()
async def test_stall_holds_output(dut):
    """While m_ready is low, m_valid/m_data hold and at most two words are taken."""
    _setup(dut)
    dut.m_ready.value = 0
    await reset(dut, 3, idle={dut.s_valid: 0})
    dut.s_valid.value = 1
    accepted = []
    for i in range(6):
        dut.s_data.value = 100 + i
        await RisingEdge(dut.clk)
        # s_ready is registered: read the value that was presented for that edge
    dut.s_valid.value = 0
    await RisingEdge(dut.clk)
    assert int(dut.m_valid.value) == 1
    assert int(dut.m_data.value) == 100, f"head word {int(dut.m_data.value)} != 100"
    assert int(dut.s_ready.value) == 0, "skid full: s_ready must be low"
    dut.m_ready.value = 1
    mon = StreamMonitor(dut.clk, dut.m_valid, dut.m_ready, {"data": dut.m_data}).start()
    for _ in range(6):
        await RisingEdge(dut.clk)
    mon.stop()
    accepted = [t["data"] for t in mon.transactions]
    assert accepted == [100, 101], f"drained {accepted}, expected [100, 101]"
