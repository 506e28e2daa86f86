"""cocotb test of the stream helpers' sleeping modes on rtl/sv/plait_skid_buffer.sv.

:class:`~plait.sim.drivers.StreamDriver` (``wait_ready_edge=True``) and
:class:`~plait.sim.drivers.StreamMonitor` (``period_ns``) sleep while a stream is
stalled instead of resuming at every clock edge.  This bench streams the same random
words with the same random gaps and backpressure twice -- polling, then sleeping --
and requires the same transfers in the same cycles.  Launched from
``tests/test_rtl_layer.py``.
"""
from __future__ import annotations

import random

import cocotb
from cocotb.triggers import RisingEdge

from plait.sim.drivers import BackpressureDriver, StreamDriver, StreamMonitor, reset, start_clock

PERIOD_NS = 10


async def _stream(dut, sleeping: bool, n: int = 300, seed: int = 11):
    rng = random.Random(seed)
    width = len(dut.s_data)
    words = [rng.getrandbits(width) for _ in range(n)]
    dut.m_ready.value = 0
    await reset(dut, 3, idle={dut.s_valid: 0})
    mon = StreamMonitor(dut.clk, dut.m_valid, dut.m_ready, {"data": dut.m_data},
                        period_ns=PERIOD_NS if sleeping else None).start()
    # long stalls (ready low 80% of the time) so that sleeping matters
    bp = BackpressureDriver(dut.clk, dut.m_ready, prob=0.2, rng=random.Random(seed + 1)).start()
    drv = StreamDriver(dut.clk, dut.s_valid, dut.s_ready, {"data": dut.s_data},
                       gap_prob=0.3, rng=random.Random(seed + 2), wait_ready_edge=sleeping)
    await drv.send({"data": w} for w in words)
    await mon.wait_for(n, timeout_cycles=20 * n)
    bp.stop(final=1)
    for _ in range(5):
        await RisingEdge(dut.clk)
    mon.stop()
    return words, [t["data"] for t in mon.transactions], list(mon.cycles)


@cocotb.test()
async def test_sleeping_equals_polling(dut):
    """Same words, same order, same transfer cycles with and without sleeping."""
    start_clock(dut.clk, PERIOD_NS)
    words, got_poll, cyc_poll = await _stream(dut, sleeping=False)
    assert got_poll == words, "polling monitor: words differ"
    words2, got_sleep, cyc_sleep = await _stream(dut, sleeping=True)
    assert words2 == words and got_sleep == words, "sleeping monitor: words differ"
    assert cyc_sleep == cyc_poll, (
        f"transfer cycles differ: first difference at word "
        f"{next(i for i, (a, b) in enumerate(zip(cyc_poll, cyc_sleep)) if a != b)}")
    dut._log.info(f"{len(words)} words, identical transfers over {cyc_poll[-1]} cycles")
