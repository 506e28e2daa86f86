"""cocotb testbench: whole linear layers streamed through one engine, back to back.

Launched by :func:`plait.sim.engines.run_jobs` (one run per engine and batch of
jobs; ``testcase`` selects the engine's test, and a test whose engine is not the
build's top is *skipped*).  Settings from the environment:

* ``PLAIT_STREAM_STIM`` -- the stimulus ``.npz`` written by :mod:`plait.sim.engines`:
  a JSON ``header`` (engine, unit config, per-job geometry and run-time mode) and per
  job ``j<i>_<bus>`` arrays holding the little-endian byte image of every bus word.
* ``PLAIT_SIM_OUT``     -- where ``linear_stream_out.npz`` goes: ``words`` (every
  output word's byte image, in order), ``out_cycle`` (cycle of each), ``job_start``
  (cycle each job's first beat was presented) and ``sim_seconds`` (wall time of the
  streaming part).

The bench only converts byte rows to integers before streaming starts and assigns
them (through :class:`~plait.sim.drivers.StreamDriver`); outputs are captured by a
:class:`~plait.sim.drivers.StreamMonitor`.  Comparison with the numeric contract
happens in Python afterwards (:mod:`plait.sim.engines` callers).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from plait.sim.drivers import StreamDriver, StreamMonitor, reset, start_clock

PERIOD_NS = 10
OUT_NAME = "linear_stream_out.npz"


def _top_name() -> str:
    top = getattr(cocotb, "top", None)
    return getattr(top, "_name", "") if top is not None else ""


def _load(engine: str):
    """The stimulus header and arrays, refused unless they were written for ``engine``."""
    path = os.environ.get("PLAIT_STREAM_STIM")
    if not path:
        raise RuntimeError("PLAIT_STREAM_STIM is not set: this testbench streams the jobs "
                           "written by plait.sim.engines.run_jobs")
    z = np.load(path)
    header = json.loads(bytes(z["header"]).decode())
    if header["engine"] != engine:
        raise ValueError(f"stimulus is for {header['engine']}, the build is {engine}")
    return header, z


def _ints(img: np.ndarray) -> list[int]:
    """Byte-image rows ``uint8[rows, bytes]`` -> list of bus integers."""
    img = np.ascontiguousarray(img, np.uint8)
    rows, nb = img.shape
    buf = img.tobytes()
    fb = int.from_bytes
    return [fb(buf[i * nb:(i + 1) * nb], "little") for i in range(rows)]


class _Clock:
    """Cycle index from simulation time (rising edges since ``t0``)."""

    def __init__(self):
        self.t0 = get_sim_time("ns")

    def now(self) -> int:
        return int(round((get_sim_time("ns") - self.t0) / PERIOD_NS))


def _write_out(words: list[int], nbytes: int, out_cycles: list[int], starts: list[int],
               seconds: float) -> None:
    out = Path(os.environ.get("PLAIT_SIM_OUT", "."))
    img = np.frombuffer(b"".join(w.to_bytes(nbytes, "little") for w in words),
                        np.uint8).reshape(len(words), nbytes)
    np.savez(out / OUT_NAME, words=img, out_cycle=np.asarray(out_cycles, np.int64),
             job_start=np.asarray(starts, np.int64), sim_seconds=np.float64(seconds))


@cocotb.skipif(_top_name() != "dsp_chain", reason="the build is not the DSP chain")
@cocotb.test()
async def test_dsp_stream(dut):
    """Every job's passes x tiles x K/M beats back to back; one output per group."""
    header, z = _load("dsp_chain")
    jobs = header["jobs"]
    n_dsp = header["config"]["n_dsp"]
    if len(dut.in_w) != 8 * n_dsp:
        raise ValueError(f"stimulus for n_dsp={n_dsp}, build has in_w of {len(dut.in_w)} bits")
    # all beat integers before the clock starts
    prepared = []
    for i, jm in enumerate(jobs):
        act = z[f"j{i}_act"]                              # [passes, nb, 32]
        prepared.append((jm, [_ints(a) for a in act], _ints(z[f"j{i}_w"]),
                          _ints(z[f"j{i}_idx"]), [int(v) for v in z[f"j{i}_last"]]))
    start_clock(dut.clk, PERIOD_NS)
    for h in (dut.in_act, dut.in_w, dut.in_idx, dut.in_last, dut.in_mode, dut.in_wbits):
        h.value = 0
    dut.out_ready.value = 1
    await reset(dut, 4, idle={dut.in_valid: 0})
    clk = _Clock()
    mon = StreamMonitor(dut.clk, dut.out_valid, dut.out_ready, {"acc": dut.out_acc},
                        period_ns=PERIOD_NS).start()
    drv = StreamDriver(dut.clk, dut.in_valid, dut.in_ready,
                       {"act": dut.in_act, "w": dut.in_w, "idx": dut.in_idx,
                        "last": dut.in_last, "mode": dut.in_mode, "wbits": dut.in_wbits},
                       wait_ready_edge=True)

    def beats(jm, acts, w, idx, last):
        nb, tiles = jm["nb"], jm["tiles"]
        first = {"mode": jm["mode"], "wbits": jm["wbits"]}
        for a in acts:
            for t in range(tiles):
                base = t * nb
                for b in range(nb):
                    txn = {"act": a[b], "w": w[base + b], "idx": idx[base + b], "last": last[b]}
                    if first:
                        txn.update(first)
                        first = None
                    yield txn

    starts = []
    total = sum(jm["n_out"] for jm in jobs)
    wall = time.perf_counter()
    for jm, acts, w, idx, last in prepared:
        starts.append(clk.now())
        await drv.send(beats(jm, acts, w, idx, last))
    await mon.wait_for(total, timeout_cycles=1000)
    for _ in range(64):                                   # nothing may follow
        await RisingEdge(dut.clk)
    seconds = time.perf_counter() - wall
    mon.stop()
    await ReadOnly()
    assert int(dut.err.value) == 0, "dsp_chain raised err (unsupported mode code)"
    assert len(mon.transactions) == total, \
        f"dsp_chain emitted {len(mon.transactions)} output words, expected {total}"
    nbytes = -(-len(dut.out_acc) // 8)
    _write_out([t["acc"] for t in mon.transactions], nbytes, mon.cycles, starts, seconds)
    beats_total = sum(jm["passes"] * jm["tiles"] * jm["nb"] for jm in jobs)
    dut._log.info(f"dsp_chain stream: {len(jobs)} jobs, {beats_total} beats, "
                  f"{mon.cycles[-1] + 1} cycles in {seconds:.1f}s "
                  f"({beats_total / seconds:.0f} beats/s)")


@cocotb.skipif(_top_name() != "lut_core", reason="the build is not the LUT core")
@cocotb.test()
async def test_lut_stream(dut):
    """Per job: set the run-time mode, stream all tiles (a, w, s streams at once), drain."""
    header, z = _load("lut_core")
    jobs = header["jobs"]
    cfg = header["config"]
    m, n = cfg["m"], cfg["n"]
    if len(dut.w_data) != 4 * n or len(dut.a_data) != 32 * m:
        raise ValueError(f"stimulus for m={m}, n={n}; build has a_data {len(dut.a_data)} / "
                         f"w_data {len(dut.w_data)} bits")
    prepared = []
    for i, jm in enumerate(jobs):
        a = [_ints(r) for r in z[f"j{i}_a"]]              # [row_tiles][chunks]
        w = [_ints(c) for c in z[f"j{i}_w"]]              # [col_tiles][chunks*bits]
        mant = [_ints(c) for c in z[f"j{i}_mant"]]        # [col_tiles][groups]
        zp = [_ints(c) for c in z[f"j{i}_zp"]]
        a_seq, w_seq, s_seq = [], [], []
        for c in range(jm["col_tiles"]):                  # column tiles outer
            for r in range(jm["row_tiles"]):
                a_seq += a[r]
                w_seq += w[c]
                s_seq += list(zip(mant[c], zp[c]))
        prepared.append((jm, a_seq, w_seq, s_seq))
    start_clock(dut.clk, PERIOD_NS)
    dut.o_ready.value = 1
    for h in (dut.s_mant, dut.s_zp, dut.a_data, dut.w_data):
        h.value = 0
    await reset(dut, 3, idle={dut.a_valid: 0, dut.w_valid: 0, dut.s_valid: 0})
    clk = _Clock()
    mon = StreamMonitor(dut.clk, dut.o_valid, dut.o_ready, {"p": dut.o_p},
                        period_ns=PERIOD_NS).start()
    da = StreamDriver(dut.clk, dut.a_valid, dut.a_ready, {"d": dut.a_data}, wait_ready_edge=True)
    dw = StreamDriver(dut.clk, dut.w_valid, dut.w_ready, {"d": dut.w_data}, wait_ready_edge=True)
    ds = StreamDriver(dut.clk, dut.s_valid, dut.s_ready, {"m": dut.s_mant, "z": dut.s_zp},
                      wait_ready_edge=True)
    starts = []
    seen = 0
    wall = time.perf_counter()
    for jm, a_seq, w_seq, s_seq in prepared:
        dut.cfg_bits.value = jm["bits"]
        dut.cfg_offset.value = jm["offset"]
        dut.cfg_group_chunks.value = jm["group_chunks"]
        dut.cfg_groups.value = jm["groups"]
        await ReadOnly()
        assert int(dut.cfg_err.value) == 0, f"job {jm['name']}: cfg_err for {jm}"
        await RisingEdge(dut.clk)
        starts.append(clk.now())
        ta = cocotb.start_soon(da.send({"d": v} for v in a_seq))
        tw = cocotb.start_soon(dw.send({"d": v} for v in w_seq))
        ts = cocotb.start_soon(ds.send({"m": mv, "z": zv} for mv, zv in s_seq))
        await ta
        await tw
        await ts
        seen += jm["n_out"]
        await mon.wait_for(seen, timeout_cycles=1000)      # drain before the next mode
    for _ in range(64):
        await RisingEdge(dut.clk)
    seconds = time.perf_counter() - wall
    mon.stop()
    assert len(mon.transactions) == seen, \
        f"lut_core emitted {len(mon.transactions)} tiles, expected {seen}"
    nbytes = -(-len(dut.o_p) // 8)
    _write_out([t["p"] for t in mon.transactions], nbytes, mon.cycles, starts, seconds)
    beats_total = sum(len(p[2]) for p in prepared)
    dut._log.info(f"lut_core stream: {len(jobs)} jobs, {beats_total} weight beats, "
                  f"{mon.cycles[-1] + 1} cycles in {seconds:.1f}s "
                  f"({beats_total / seconds:.0f} beats/s)")
