"""cocotb testbench: a stream *program* (:mod:`plait.sim.player`) played through cocotb.

Launched by :func:`plait.sim.engines.run_jobs` with ``bench="cocotb"`` (whole linear
layers streamed through one engine, back to back).  The schedule is the program the C++
stream player plays (:func:`plait.sim.engines.dsp_program` /
:func:`~plait.sim.engines.lut_program`); this bench interprets it op by op with plait's
cocotb drivers, so the two benches drive the same values in the same cycles
(``tests/test_player.py`` compares them).  Settings from the environment:

* ``PLAIT_STREAM_PROGRAM`` -- the program file.
* ``PLAIT_SIM_OUT``        -- where ``linear_stream_out.bin`` goes (the player's output
  format, :func:`plait.sim.player.write_out`: every output word, the cycle of each, the
  marks, the cycles and the wall seconds of the program).

Ops in cocotb terms: ``set`` assigns a handle; ``check_zero`` waits for ``ReadOnly``
(so only ``tick``, or the end, may follow it); ``tick`` awaits rising edges; ``stream``
runs one :class:`~plait.sim.drivers.StreamDriver` per stream at once; ``wait`` is the
output monitor's ``wait_for``; ``reset`` is :func:`~plait.sim.drivers.reset` (the monitor
starts right after it: cycle 0).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from plait.sim.drivers import StreamDriver, StreamMonitor, reset, start_clock
from plait.sim.player import COCOTB_OUT, PROGRAM_ENV, PlayResult, read_program, write_out

PERIOD_NS = 10


def _ints(img: np.ndarray) -> list[int]:
    """Byte-image rows ``uint8[rows, bytes]`` -> list of bus integers."""
    img = np.ascontiguousarray(img, np.uint8)
    rows, nb = img.shape
    if nb <= 8:
        wide = np.zeros((rows, 8), np.uint8)
        wide[:, :nb] = img
        return wide.view("<u8").reshape(-1).tolist()
    buf = img.tobytes()
    fb = int.from_bytes
    return [fb(buf[i * nb:(i + 1) * nb], "little") for i in range(rows)]


def _txns(dut, fields: list[str], beats: np.ndarray) -> list[dict]:
    """One dict per beat with the fields whose value changed (a driver holds the rest)."""
    cols, pos = [], 0
    for f in fields:
        nb = -(-len(getattr(dut, f)) // 8)
        cols.append(_ints(beats[:, pos:pos + nb]))
        pos += nb
    out, prev = [], [None] * len(fields)
    for row in zip(*cols):
        out.append({f: v for f, v, p in zip(fields, row, prev) if v != p})
        prev = list(row)
    return out


@cocotb.test()
async def test_program(dut):
    """Interpret the program; write what the output monitor saw."""
    path = os.environ.get(PROGRAM_ENV)
    if not path:
        raise RuntimeError(f"{PROGRAM_ENV} is not set: this testbench plays the "
                           "programs written by plait.sim.engines.run_jobs")
    ops = read_program(Path(path))
    # every stream's beats as integers before the clock starts
    prepared = {i: [(v, r, _txns(dut, f, b)) for v, r, f, b in args]
                for i, (op, args) in enumerate(ops) if op == "stream"}
    start_clock(dut.clk, PERIOD_NS)
    mon, monitor, drivers, marks = None, None, {}, []
    t0, wall, in_readonly = 0.0, time.perf_counter(), False

    def now() -> int:
        return int(round((get_sim_time("ns") - t0) / PERIOD_NS))

    for i, (op, args) in enumerate(ops):
        if in_readonly and op not in ("tick",):
            raise RuntimeError(f"op {i} ({op}) follows check_zero: only tick may (cocotb "
                               f"cannot write in ReadOnly)")
        if op == "set":
            getattr(dut, args[0]).value = int.from_bytes(args[1], "little")
        elif op == "monitor":
            monitor = args
        elif op == "reset":
            if monitor is None:
                raise RuntimeError("the program must name its output stream (monitor) "
                                   "before reset")
            await reset(dut, args[1], rst=getattr(dut, args[0]), active_low=True)
            t0, wall = get_sim_time("ns"), time.perf_counter()
            v, r, d = monitor
            mon = StreamMonitor(dut.clk, getattr(dut, v), getattr(dut, r),
                                {"d": getattr(dut, d)}, period_ns=PERIOD_NS).start()
        elif op == "check_zero":
            await ReadOnly()
            in_readonly = True
            assert int(getattr(dut, args[0]).value) == 0, \
                f"op {i}: {args[0]} is not 0 at cycle {now()}"
        elif op == "tick":
            for _ in range(args[0]):
                await RisingEdge(dut.clk)
            in_readonly = in_readonly and args[0] == 0
        elif op == "mark":
            marks.append(now())
        elif op == "stream":
            tasks = []
            for v, r, txns in prepared[i]:
                if v not in drivers:
                    fields = {k: getattr(dut, k) for t in txns[:1] for k in t}
                    drivers[v] = StreamDriver(dut.clk, getattr(dut, v), getattr(dut, r),
                                              fields, wait_ready_edge=True)
                drv = drivers[v]
                for k in (k for t in txns for k in t):
                    drv.data.setdefault(k, getattr(dut, k))
                tasks.append(cocotb.start_soon(drv.send(txns)))
            for t in tasks:
                await t
        elif op == "wait":
            await mon.wait_for(args[0], timeout_cycles=args[1])
    cycles, seconds = now(), time.perf_counter() - wall
    mon.stop()
    d = getattr(dut, monitor[2])
    nb = -(-len(d) // 8)
    words = np.frombuffer(b"".join(t["d"].to_bytes(nb, "little") for t in mon.transactions),
                          np.uint8).reshape(len(mon.transactions), nb)
    out = Path(os.environ.get("PLAIT_SIM_OUT", "."))
    write_out(out / COCOTB_OUT, PlayResult(words, np.asarray(mon.cycles, np.int64),
                                         np.asarray(marks, np.int64), cycles, seconds))
    dut._log.info(f"{len(ops)} ops, {len(mon.transactions)} output words, {cycles} cycles "
                  f"in {seconds:.1f}s")
