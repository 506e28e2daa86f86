"""Whole linear layers on the RTL engines (Verilator), tile by tile.

    from plait.sim.engines import run_linear_dsp, run_linear_lut, DspJob, LutJob, run_jobs

    acc, cycles = run_linear_dsp(x, qw, mode="2:4", cfg=DspChainConfig())   # [T, N, K/G]
    p, cycles = run_linear_lut(x, qw, cfg=LutCoreConfig())                   # [T, N]
    run = run_jobs([DspJob("q", x, qw, "2:4"), ...], dsp_cfg=...)            # one simulation

``x`` is the int8 activation matrix ``[T, K]`` (T token rows of one linear call), the
weight a :class:`~plait.ir.numerics.QuantizedWeight` ``[N, K]`` or its packed form
(:mod:`plait.ir.numerics.pack`: the artifact's ``DspPacked`` / ``LutPacked``).

How a layer maps onto an engine
-------------------------------
* **DSP chain** (:mod:`plait.ir.numerics.dsp`): two token rows per *pass* (the two
  packed lanes); ``T`` rows -> ``ceil(T/2)`` passes, an odd last row padded with
  zeros in lane 1.  A pass streams every weight tile (``n_dsp / N_mode`` output rows
  each, ``K / M`` beats) back to back; the chain emits one ``[2, rows]`` word per
  quantization group and tile.  In decode lane packing (mode ``"pair"``, a weight
  of at most 4 bits packed with ``pack_dsp(qw, "pair")``) a pass is one token row and
  the two lanes carry two weight rows of a ``2 n_dsp / 16``-row tile.  Result:
  ``acc[T, N, K/G]``, the contract's :func:`~plait.ir.numerics.common.group_accumulate`.
* **LUT core** (:mod:`plait.rtl.lut_core`): ``m`` token rows per tile (rows padded
  with zeros), ``n`` output columns per tile (the pack pads the last tile with code
  0; its mantissas are driven as 0); column tiles outer, row tiles inner.  The group
  mantissas are the pack's -- the *whole tensor's* shared exponent, exactly as
  :func:`~plait.ir.numerics.common.linear_int`.  Result: ``P[T, N]``.

Beat source
-----------
The weight words are the packed arrays, as they are: the DSP pack's ``codes`` rows
are ``in_w``, its ``idx`` rows (nibble-packed, two 4-bit indices per byte: the stored
field) ``in_idx``; the LUT pack's ``planes`` rows (its stored field) are ``w_data``
and its ``mant`` / ``zp`` columns ``s_mant`` / ``s_zp``.  Activation words are laid out here in numpy.  Every bus word travels as
its little-endian byte image (``uint8[..., bytes]``); the testbench turns the rows
into integers (``int.from_bytes``) before the clock starts and only assigns them.

One simulation for many jobs
----------------------------
:func:`run_jobs` turns all jobs of one engine into one stream *program*
(:func:`dsp_program` / :func:`lut_program`, a :class:`plait.sim.player.Program`: the
jobs stream back to back; the LUT core drains between jobs, since its run-time
configuration must be stable while a tile is in flight) and plays it once, on the C++
stream player (:mod:`plait.sim.player`, the default) or through cocotb
(:mod:`plait.sim.tb.test_linear_stream`, ``bench="cocotb"``: the same program, op by
op).  Either bench returns every output word, the cycle of each and the cycle of every
job start; this module unpacks them.

Measured cycles of a job: clock edges from the cycle its first input beat is
presented to the cycle its last output word is valid (the difference of the two cycle
indices, as ``tests/test_rtl_lut_core.py`` measures latency) -- what
:func:`~plait.ir.target.dsp_linear_cycles` / :func:`~plait.ir.target.lut_linear_cycles`
predict.  (Back-to-back DSP jobs overlap by the pipeline latency; a mode-switch stall
counts against the job that waits.)
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from plait.ir.numerics import P_BITS, SCALE_BITS, QuantizedWeight
from plait.ir.numerics.common import NumericsError
from plait.ir.numerics.dsp import CHAIN_MODES, M_MAX, WBITS_CODE, parse_mode
from plait.ir.numerics.lut import LUT_G, ZP_BITS
from plait.ir.numerics.pack import DspPacked, LutPacked, pack_dsp, pack_lut, pack_nibbles
from plait.ir.target import DspChainGeometry, dsp_pair_pass
from plait.rtl.dsp_chain import DspChainConfig
from plait.rtl.lut_core import LutCoreConfig, mode_of

from .player import COCOTB_OUT, PROGRAM_ENV

__all__ = ["DspJob", "LutJob", "JobResult", "StreamRun", "run_jobs", "dsp_call_jobs",
           "run_linear_dsp", "run_linear_lut", "dsp_stimulus", "lut_stimulus", "dsp_packed", "lut_packed",
           "pack_fields", "unpack_fields", "dsp_program", "lut_program", "BENCHES",
           "TB_MODULE", "DSP_BUILD_ARGS", "SIM_ENV"]

TB_MODULE = "plait.sim.tb.test_linear_stream"
#: Verilator arguments of the DSP chain build (one C++ file: see tests/test_rtl_dsp_chain.py)
DSP_BUILD_ARGS = ["--output-split", "0"]
#: extra simulator environment of the streaming runs: trust the simulator's inertial
#: writes (what cocotb's Makefile flow does for Verilator; the Python runner leaves it
#: off): no ReadWrite write-back phase per cycle and the C++ clock -- ~1.6x faster
SIM_ENV: dict[str, str] = {"COCOTB_TRUST_INERTIAL_WRITES": "1"}


# ------------------------------------------------------------------ bus images
def pack_fields(vals, width: int) -> np.ndarray:
    """Pack the last axis of ``vals`` (``count`` fields of ``width`` bits, two's
    complement for negatives, field ``i`` at bits ``[i*width +: width]``) into the
    little-endian byte image of the bus: ``uint8[..., ceil(count*width/8)]``."""
    v = np.asarray(vals).astype(np.int64)
    if not 1 <= width <= 62:
        raise ValueError(f"pack_fields: width must be in [1, 62], got {width}")
    u = v & ((np.int64(1) << width) - 1)
    bits = ((u[..., None] >> np.arange(width, dtype=np.int64)) & 1).astype(np.uint8)
    bits = bits.reshape(*v.shape[:-1], v.shape[-1] * width)
    return np.packbits(bits, axis=-1, bitorder="little")


def unpack_fields(img, width: int, count: int, signed: bool = True) -> np.ndarray:
    """Inverse of :func:`pack_fields`: ``uint8[..., bytes]`` -> int64 ``[..., count]``."""
    img = np.asarray(img, np.uint8)
    if not 1 <= width <= 62:
        raise ValueError(f"unpack_fields: width must be in [1, 62], got {width}")
    bits = np.unpackbits(img, axis=-1, bitorder="little")[..., :count * width]
    if bits.shape[-1] != count * width:
        raise ValueError(f"unpack_fields: {img.shape[-1]} bytes hold fewer than "
                         f"{count} x {width} bits")
    bits = bits.reshape(*img.shape[:-1], count, width).astype(np.int64)
    v = (bits << np.arange(width, dtype=np.int64)).sum(axis=-1)
    if signed:
        v = v - ((v >> (width - 1)) & 1) * (np.int64(1) << width)
    return v


# ------------------------------------------------------------------ jobs
@dataclass
class DspJob:
    """One linear call on the DSP chain: ``x`` int8 ``[T, K]`` times the weight.

    The weight is ``packed`` (a :class:`~plait.ir.numerics.pack.DspPacked`, e.g. from
    the compiled artifact) or ``qw`` (a ``QuantizedWeight``, packed here with
    :func:`~plait.ir.numerics.pack.pack_dsp` in sparsity ``mode``)."""
    name: str
    x: np.ndarray
    qw: Optional[QuantizedWeight] = None
    mode: str = "dense"
    packed: Optional[DspPacked] = None
    engine: str = field(default="dsp_chain", init=False)


def dsp_call_jobs(name: str, x8: np.ndarray, pk: DspPacked, geometry: DspChainGeometry,
                  pair_pack: Callable[[], DspPacked]) -> list[DspJob]:
    """The DSP chain jobs of one linear call ``x8 [T, K]`` on the pack ``pk``: one job
    of all rows in the pack's mode; where :func:`~plait.ir.target.dsp_pair_pass` says
    the call's odd last row runs in decode lane packing (a dense weight of at most
    4-bit codes on chains of ``geometry`` with ``pair``: batch-1 decode), the first
    ``T - 1`` rows (if any) in the pack's mode and the last row as a pair-mode job
    ``<name>:pair`` on ``pair_pack()`` (called only then: the caller packs the weight
    for pair mode once).  What :func:`~plait.ir.target.dsp_linear_cycles` counts."""
    t = x8.shape[0]
    if not dsp_pair_pass(pk.mode, t, geometry, pk.bits):
        return [DspJob(name, x8, packed=pk)]
    pair = DspJob(f"{name}:pair", x8[t - 1:], packed=pair_pack())
    return ([DspJob(name, x8[:t - 1], packed=pk)] if t > 1 else []) + [pair]


@dataclass
class LutJob:
    """One linear call on the LUT core: ``x`` int8 ``[T, K]`` times the weight
    (``packed``: a :class:`~plait.ir.numerics.pack.LutPacked`; or ``qw``, packed here
    with :func:`~plait.ir.numerics.pack.pack_lut`)."""
    name: str
    x: np.ndarray
    qw: Optional[QuantizedWeight] = None
    packed: Optional[LutPacked] = None
    engine: str = field(default="lut_core", init=False)


@dataclass
class JobResult:
    """What the RTL produced for one job: ``out`` (DSP: ``acc[T, N, K/G]``; LUT:
    ``P[T, N]``), measured ``cycles`` (``end - start``: the cycle its first input beat
    was presented, the cycle its last output word was valid, counted from the run's
    start), weight ``beats`` streamed (over all passes / tiles), the ``packed`` weight
    that was streamed and the job's geometry (``info``)."""
    name: str
    engine: str
    out: np.ndarray
    cycles: int
    beats: int
    packed: object
    info: dict
    start: int = 0
    end: int = 0


@dataclass
class StreamRun:
    """One simulator run: the job results, timings (seconds) and the SimRun."""
    results: list[JobResult]
    sim: object
    seconds: dict
    beats: int
    cycles: int

    @property
    def beats_per_second(self) -> float:
        s = self.seconds.get("sim", 0.0)
        return self.beats / s if s else float("nan")

    @property
    def cycles_per_second(self) -> float:
        s = self.seconds.get("sim", 0.0)
        return self.cycles / s if s else float("nan")


def _check_x(x, k: int, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise NumericsError(f"{what}: activations must be an integer (int8) array, got {x.dtype}")
    if x.ndim != 2 or x.shape[1] != k or x.shape[0] < 1:
        raise NumericsError(f"{what}: activations must be [T, K={k}], got shape {x.shape}")
    if x.min() < -128 or x.max() > 127:
        raise NumericsError(f"{what}: activations outside int8: [{x.min()}, {x.max()}]")
    return x.astype(np.int64)


# ------------------------------------------------------------------ DSP chain
def dsp_packed(job: DspJob, cfg: DspChainConfig) -> DspPacked:
    """The job's packed weight (given, or packed for this build), checked against it."""
    pk = job.packed
    if pk is None:
        if job.qw is None:
            raise ValueError(f"{job.name}: a DspJob needs qw or packed")
        pk = pack_dsp(job.qw, job.mode, n_dsp=cfg.n_dsp)
    if pk.n_dsp != cfg.n_dsp:
        raise NumericsError(f"{job.name}: weight packed for n_dsp={pk.n_dsp}, the build has "
                            f"n_dsp={cfg.n_dsp} (repack it: pack_dsp(qw, mode, n_dsp=...))")
    if pk.mode not in cfg.mode_list():
        raise NumericsError(f"{job.name}: mode {pk.mode} is not in this DSP chain build's "
                            f"modes {cfg.modes!r}")
    return pk


def dsp_stimulus(job: DspJob, cfg: DspChainConfig) -> dict:
    """Bus images of one DSP job (arrays for the testbench), its pack and geometry.

    ``in_w`` / ``in_idx`` are the packed weight's ``codes`` / ``idx`` rows as they are
    (one row per beat of one pass); ``in_act`` is built per pass from two token rows."""
    pk = dsp_packed(job, cfg)
    md = parse_mode(pk.mode)
    n, k, g = pk.rows, pk.k, pk.group_size
    x = _check_x(job.x, k, job.name)
    r, tiles, nb = pk.rows_per_tile, pk.n_tiles, k // md.m
    idx = pack_nibbles(pk.idx)                         # in_idx words (== the stored field)
    t, lanes = x.shape[0], md.lanes                   # token rows per pass: 2 (pair: 1)
    passes = -(-t // lanes)
    xp = np.zeros((lanes * passes, k), np.int64)
    xp[:t] = x
    # act[p, beat, lane, j]: lane l of pass p = token row lanes*p + l, block position j
    act = np.zeros((passes, nb, 2, M_MAX), np.int64)
    act[:, :, :lanes, :md.m] = xp.reshape(passes, lanes, nb, md.m).transpose(0, 2, 1, 3)
    last = ((np.arange(nb) + 1) % (g // md.m) == 0).astype(np.uint8)
    return {
        "act": pack_fields(act.reshape(passes, nb, 2 * M_MAX), 8),
        "w": np.ascontiguousarray(pk.codes, np.uint8),
        "idx": np.ascontiguousarray(idx, np.uint8),
        "last": last,
        "packed": pk,
        "meta": {"name": job.name, "mode": CHAIN_MODES[md.name][2], "wbits": WBITS_CODE[pk.bits],
                 "bits": pk.bits, "passes": passes, "tiles": tiles, "nb": nb,
                 "groups": k // g, "rows_per_tile": r, "t": t, "n": n, "k": k, "g": g,
                 "mode_name": md.name, "lanes": lanes, "n_out": passes * tiles * (k // g),
                 "beats": passes * tiles * nb},
    }


def _dsp_result(meta: dict, words: np.ndarray, cfg: DspChainConfig) -> np.ndarray:
    """Output words ``[n_out, bytes]`` of one job -> ``acc[T, N, K/G]``.  A word holds
    ``[2 lanes, rows_max]`` sums: lane = token row of the pass (pair mode: lane ``l``,
    row ``r`` is tile row ``l*R + r`` of the pass's one token row)."""
    rmax = cfg.rows_max
    p, tiles, groups, r = meta["passes"], meta["tiles"], meta["groups"], meta["rows_per_tile"]
    if meta["lanes"] == 2:
        v = unpack_fields(words, cfg.acc_w, 2 * rmax).reshape(p, tiles, groups, 2, rmax)[..., :r]
        acc = v.transpose(0, 3, 1, 4, 2).reshape(p * 2, tiles * r, groups)
    else:
        half = r // 2
        v = unpack_fields(words, cfg.acc_w, 2 * rmax).reshape(p, tiles, groups, 2, rmax)
        acc = v[..., :half].transpose(0, 1, 3, 4, 2).reshape(p, tiles * r, groups)
    return acc[:meta["t"], :meta["n"]]


# ------------------------------------------------------------------ LUT core
def lut_packed(job: LutJob, cfg: LutCoreConfig) -> LutPacked:
    """The job's packed weight (given, or packed for this core), checked against it."""
    pk = job.packed
    if pk is None:
        if job.qw is None:
            raise ValueError(f"{job.name}: a LutJob needs qw or packed")
        mode_of(job.qw, cfg)                           # the build can run it
        pk = pack_lut(job.qw, n=cfg.n)
    if pk.tile_n != cfg.n:
        raise NumericsError(f"{job.name}: weight packed for tiles of {pk.tile_n} columns, the "
                            f"core has n={cfg.n} (repack it: pack_lut(qw, n=...))")
    if pk.bits > cfg.max_bits or pk.group_size > cfg.max_group:
        raise NumericsError(f"{job.name}: {pk.bits}-bit weights in groups of {pk.group_size} "
                            f"exceed the core's max_bits {cfg.max_bits} / max_group "
                            f"{cfg.max_group}")
    return pk


def lut_stimulus(job: LutJob, cfg: LutCoreConfig) -> dict:
    """Bus images of one LUT job: ``a`` per row tile, ``w`` (the pack's ``planes`` rows
    of each column tile, as they are), ``mant`` / ``zp`` per column tile and group."""
    pk = lut_packed(job, cfg)
    n, k, g = pk.rows, pk.k, pk.group_size
    x = _check_x(job.x, k, job.name)
    groups = k // g
    if groups >= (1 << cfg.cnt_w):
        raise NumericsError(f"{job.name}: {groups} groups per tile exceed the core's "
                            f"counter (cnt_w={cfg.cnt_w})")
    t = x.shape[0]
    rt, ct, chunks = -(-t // cfg.m), pk.n_tiles, k // LUT_G
    xp = np.zeros((rt * cfg.m, k), np.int64)
    xp[:t] = x
    # a_data[(m*4 + kk)*8 +: 8] = x[m][4c + kk]  -> [rt, chunks, m*4]
    a = xp.reshape(rt, cfg.m, chunks, LUT_G).transpose(0, 2, 1, 3).reshape(rt, chunks,
                                                                            cfg.m * LUT_G)
    w = np.ascontiguousarray(pk.planes, np.uint8).reshape(ct, pk.beats_per_tile, -1)
    mp = np.zeros((ct * cfg.n, groups), np.int64)
    zpp = np.zeros((ct * cfg.n, groups), np.int64)
    mp[:n], zpp[:n] = pk.mant, pk.zp                   # padding columns: mantissa 0
    mp = mp.reshape(ct, cfg.n, groups).transpose(0, 2, 1)   # [ct, groups, n_core]
    zpp = zpp.reshape(ct, cfg.n, groups).transpose(0, 2, 1)
    return {
        "a": pack_fields(a, 8),
        "w": w,
        "mant": pack_fields(mp, SCALE_BITS),
        "zp": pack_fields(zpp, ZP_BITS),
        "packed": pk,
        "meta": {"name": job.name, "bits": pk.bits, "offset": int(pk.offset),
                 "group_chunks": g // LUT_G, "groups": groups, "row_tiles": rt,
                 "col_tiles": ct, "chunks": chunks, "t": t, "n": n, "k": k, "g": g,
                 "mode_name": f"W{pk.bits} {pk.scheme}",
                 "n_out": rt * ct * cfg.dq_steps,       # output beats: N/dq_lanes per tile
                 "beats": rt * ct * pk.beats_per_tile},
    }


def _lut_result(meta: dict, words: np.ndarray, cfg: LutCoreConfig) -> np.ndarray:
    """Output beats ``[n_out, bytes]`` of one job -> ``P[T, N]``: per tile
    ``dq_steps`` beats, beat ``t`` word ``m * dq_lanes + l`` = ``P[m][t * dq_lanes + l]``."""
    rt, ct = meta["row_tiles"], meta["col_tiles"]
    v = unpack_fields(words, P_BITS, cfg.m * cfg.dq_lanes)
    v = v.reshape(ct, rt, cfg.dq_steps, cfg.m, cfg.dq_lanes).transpose(0, 1, 3, 2, 4)
    v = v.reshape(ct, rt, cfg.m, cfg.n)                   # column t * dq_lanes + l
    p = v.transpose(1, 2, 0, 3).reshape(rt * cfg.m, ct * cfg.n)
    return p[:meta["t"], :meta["n"]]


# ------------------------------------------------------------------ the schedule
def _fit(img, nbytes: int, what: str) -> np.ndarray:
    """Byte images ``uint8[rows, b]`` of one port, refused unless ``b`` is the build's
    byte width of that port (a stimulus laid out for another geometry)."""
    img = np.ascontiguousarray(img, np.uint8).reshape(len(img), -1)
    if img.shape[1] != nbytes:
        raise ValueError(f"{what}: {img.shape[1]}-byte words for a {nbytes}-byte port "
                         f"(stimulus for another build geometry)")
    return img


def _const(value: int, rows: int, nbytes: int) -> np.ndarray:
    return np.tile(np.frombuffer(int(value).to_bytes(nbytes, "little"), np.uint8), (rows, 1))


def dsp_program(stims: list[dict], ports) -> "Program":
    """The DSP chain's schedule of ``stims`` (:func:`dsp_stimulus`): reset, then every
    job's passes x tiles x K/M beats back to back on one stream (``in_mode`` /
    ``in_wbits`` held per job), a mark at each job's first beat, all output words, 64
    quiet cycles and ``err`` low."""
    from plait.sim.player import Program
    nbytes = {k: ports[k].nbytes for k in ports}
    prog = Program(ports)
    for p in ("in_act", "in_w", "in_idx", "in_last", "in_mode", "in_wbits", "in_valid"):
        prog.set(p, 0)
    prog.set("out_ready", 1).monitor("out_valid", "out_ready", "out_acc").reset("rst_n", 4)
    fields = ["in_act", "in_w", "in_idx", "in_last", "in_mode", "in_wbits"]
    for st in stims:
        m = st["meta"]
        passes, tiles, nb = m["passes"], m["tiles"], m["nb"]
        n = passes * tiles * nb
        p_of = np.repeat(np.arange(passes), tiles * nb)
        b_of = np.tile(np.arange(nb), passes * tiles)
        wrow = np.tile(np.arange(tiles * nb), passes)
        act = _fit(st["act"][p_of, b_of], nbytes["in_act"], "in_act")
        beats = np.hstack([act, _fit(st["w"][wrow], nbytes["in_w"], "in_w"),
                           _fit(st["idx"][wrow], nbytes["in_idx"], "in_idx"),
                           _fit(st["last"][b_of].reshape(n, 1), nbytes["in_last"], "in_last"),
                           _const(m["mode"], n, nbytes["in_mode"]),
                           _const(m["wbits"], n, nbytes["in_wbits"])])
        prog.mark().stream(("in_valid", "in_ready", fields, beats))
    prog.wait(sum(s["meta"]["n_out"] for s in stims), 1000).tick(64).check_zero("err")
    return prog


def lut_program(stims: list[dict], ports) -> "Program":
    """The LUT core's schedule of ``stims`` (:func:`lut_stimulus`): reset, then per job
    the run-time mode (``cfg_err`` must stay low), one edge, a mark, the a / w / s
    streams at once (column tiles outer, row tiles inner) and a drain of the job's
    output tiles (the mode must be stable while a tile is in flight); 64 quiet cycles."""
    from plait.sim.player import Program
    nbytes = {k: ports[k].nbytes for k in ports}
    prog = Program(ports)
    for p in ("s_mant", "s_zp", "a_data", "w_data", "a_valid", "w_valid", "s_valid"):
        prog.set(p, 0)
    prog.set("o_ready", 1).monitor("o_valid", "o_ready", "o_p").reset("rst_n", 3)
    seen = 0
    for st in stims:
        m = st["meta"]
        ct, rt = m["col_tiles"], m["row_tiles"]
        cols = np.repeat(np.arange(ct), rt)            # column tiles outer
        rows = np.tile(np.arange(rt), ct)
        a = st["a"][rows].reshape(-1, st["a"].shape[-1])
        w = st["w"][cols].reshape(-1, st["w"].shape[-1])
        s = np.hstack([_fit(st["mant"][cols].reshape(-1, st["mant"].shape[-1]),
                            nbytes["s_mant"], "s_mant"),
                       _fit(st["zp"][cols].reshape(-1, st["zp"].shape[-1]),
                            nbytes["s_zp"], "s_zp")])
        for port, key in (("cfg_bits", "bits"), ("cfg_offset", "offset"),
                          ("cfg_group_chunks", "group_chunks"), ("cfg_groups", "groups")):
            prog.set(port, m[key])
        seen += m["n_out"]
        prog.check_zero("cfg_err").tick(1).mark().stream(
            ("a_valid", "a_ready", ["a_data"], _fit(a, nbytes["a_data"], "a_data")),
            ("w_valid", "w_ready", ["w_data"], _fit(w, nbytes["w_data"], "w_data")),
            ("s_valid", "s_ready", ["s_mant", "s_zp"], s)).wait(seen, 1000)
    prog.tick(64)
    return prog


# ------------------------------------------------------------------ running
#: the benches :func:`run_jobs` can play a schedule on (``$PLAIT_STREAM_BENCH``)
BENCHES = ("player", "cocotb")


def run_jobs(jobs: Sequence, *, dsp_cfg: DspChainConfig | None = None,
             lut_cfg: LutCoreConfig | None = None, workdir: str | Path | None = None,
             waves=None, bench: str | None = None, opt: str | None = None) -> StreamRun:
    """Run every job (all :class:`DspJob` or all :class:`LutJob`) in ONE simulation of
    that engine's build (``dsp_cfg`` / ``lut_cfg``, default geometry if None); returns
    a :class:`StreamRun` (results in job order).

    ``bench``: ``"player"`` (default, ``$PLAIT_STREAM_BENCH``) plays the schedule from
    C++ (:mod:`plait.sim.player`); ``"cocotb"`` plays the same schedule through cocotb
    (:mod:`plait.sim.tb.test_linear_stream`; ``waves`` needs it).  ``opt``: the build's
    C++ optimisation (:func:`~plait.sim.runner.build_model`; a player run is cheap
    enough that a one-off build gains from ``"-O0"``)."""
    from plait.rtl.units import unit_sources
    from plait.sim.player import PlayerFailed, model_ports, play, read_out
    from plait.sim.runner import SimulationFailed, build_model, run_cocotb

    jobs = list(jobs)
    if not jobs:
        raise ValueError("run_jobs: no jobs")
    engines = {getattr(j, "engine", None) for j in jobs}
    if len(engines) != 1 or not engines <= {"dsp_chain", "lut_core"}:
        raise ValueError(f"run_jobs: all jobs must be DspJob or all LutJob, got "
                         f"{sorted(map(str, engines))}")
    bench = bench or os.environ.get("PLAIT_STREAM_BENCH") or "player"
    if bench not in BENCHES:
        raise ValueError(f"run_jobs: bench (or $PLAIT_STREAM_BENCH) must be one of "
                         f"{', '.join(BENCHES)}, got {bench!r}")
    if waves and bench != "cocotb":
        raise ValueError("run_jobs: waves need bench='cocotb' (the player writes none)")
    engine = engines.pop()
    t0 = time.perf_counter()
    if engine == "dsp_chain":
        cfg = dsp_cfg or DspChainConfig()
        stims = [dsp_stimulus(j, cfg) for j in jobs]
        srcs, args, program = unit_sources("dsp_chain"), DSP_BUILD_ARGS, dsp_program
    else:
        cfg = lut_cfg or LutCoreConfig()
        stims = [lut_stimulus(j, cfg) for j in jobs]
        srcs, args, program = unit_sources("lut_core"), [], lut_program
    top = engine
    bdir, built = build_model(top, srcs, config=cfg, build_args=args, waves=waves, opt=opt)
    prog = program(stims, model_ports(bdir))
    t1 = time.perf_counter()
    sim = None
    if bench == "player":
        try:
            res = play(bdir, prog, workdir=workdir)
        except PlayerFailed as e:
            raise SimulationFailed(f"{top}: {e}") from None
    else:
        with tempfile.TemporaryDirectory(prefix="plait-stream-", dir=workdir) as tmp:
            path = prog.write(Path(tmp) / "program.bin")
            sim = run_cocotb(top, srcs, TB_MODULE, config=cfg, build_args=args, opt=opt,
                             env={PROGRAM_ENV: str(path), **SIM_ENV}, waves=waves)
        out_path = Path(sim.run_dir) / COCOTB_OUT
        if not out_path.is_file():
            raise SimulationFailed(f"{TB_MODULE} on {top} wrote no {COCOTB_OUT} in "
                                   f"{sim.run_dir}: {sim.tests}")
        res = read_out(out_path)
    t2 = time.perf_counter()
    words, out_cycle, starts = res.words, res.out_cycle, res.marks
    n_out = [s["meta"]["n_out"] for s in stims]
    if words.shape[0] != sum(n_out) or starts.shape[0] != len(jobs):
        raise SimulationFailed(f"{top}: {words.shape[0]} output words for {sum(n_out)} "
                               f"expected, {starts.shape[0]} job starts for {len(jobs)} jobs")
    results = []
    pos = 0
    for j, s, no, st in zip(jobs, stims, n_out, starts):
        meta = s["meta"]
        w = words[pos:pos + no]
        end = int(out_cycle[pos + no - 1])
        pos += no
        out = _dsp_result(meta, w, cfg) if engine == "dsp_chain" else _lut_result(meta, w, cfg)
        results.append(JobResult(j.name, engine, out, end - int(st), meta["beats"],
                                 s["packed"], meta, start=int(st), end=end))
    cycles = int(out_cycle[-1]) - int(starts[0])
    t3 = time.perf_counter()
    secs = {"stimulus": t1 - t0, "run": t2 - t1, "sim": res.seconds, "unpack": t3 - t2,
            "built": bool(built), "bench": bench}
    return StreamRun(results, sim, secs, sum(r.beats for r in results), cycles)


def run_linear_dsp(x_int8, weight, *, mode="dense", cfg: DspChainConfig | None = None
                   ) -> tuple[np.ndarray, int]:
    """One linear on the DSP chain: ``(acc int64[T, N, K/G], cycles)``.  ``weight``: a
    ``QuantizedWeight`` (packed in ``mode``) or a ``DspPacked`` (its own mode)."""
    job = (DspJob("linear", x_int8, packed=weight) if isinstance(weight, DspPacked)
           else DspJob("linear", x_int8, weight, mode))
    r = run_jobs([job], dsp_cfg=cfg).results[0]
    return r.out, r.cycles


def run_linear_lut(x_int8, qw, *, cfg: LutCoreConfig | None = None
                   ) -> tuple[np.ndarray, int]:
    """One linear on the LUT core: ``(P int64[T, N], cycles)``.  ``qw``: a
    ``QuantizedWeight`` or a ``LutPacked``."""
    job = (LutJob("linear", x_int8, packed=qw) if isinstance(qw, LutPacked)
           else LutJob("linear", x_int8, qw))
    r = run_jobs([job], lut_cfg=cfg).results[0]
    return r.out, r.cycles
