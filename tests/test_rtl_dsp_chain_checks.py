"""The DSP chain's long RTL checks, beside tests/test_rtl_dsp_chain.py (in their own file
so that the pytest-xdist processes can share the work): the geometry sweep with at least
10^6 random MACs per mode, and the input protocol assertion firing on a deliberate
violation (the assertion mutants and the mutation campaign:
tests/test_rtl_dsp_chain_mutants.py)."""
from __future__ import annotations

import time

import numpy as np
import pytest

from plait.ir.numerics.dsp import CHAIN_MODES
from plait.rtl.dsp_chain import DspChainConfig
from plait.tests.test_rtl_dsp_chain import ALL_MODES, _ran, _run


#: the geometry sweep: (n_dsp, cascade, modes, random beats per mode through cocotb).
#: Cascades of 1, 2, 4 and 8; 16 to 64 slices, 48 of them a tree of 24 groups (not a
#: power of two); every mode each cascade allows; every weight width each mode takes.
#: The cocotb random test streams with input gaps and output back-pressure; the stream
#: player then adds PLAYER_MACS per mode of random whole linears on the same build.
GEOMETRIES = [
    (16, 1, ALL_MODES, 2048),
    (32, 4, "dense,4:16,8:16,pair", 1024),
    (64, 8, "dense,8:16,pair", 1024),
    (48, 2, ALL_MODES, 2048),
]
#: random MACs per mode the stream player checks on each geometry's build
PLAYER_MACS = 500_000
MIN_RANDOM_MACS = 1_000_000     # per mode, over the sweep (cocotb + player)


def _player_campaign(cfg: DspChainConfig, macs_min: int, seed: int, opt: str):
    """Random whole linears in every mode of the build, one stream-player simulation:
    T of 1..4 token rows, N of 1..3 tiles' rows (a padded last tile), K of 1..3 groups,
    every weight width the mode takes, N:M-pruned weights, constrained-random int8
    activations; every group sum against group_accumulate.  ``{mode: (jobs, MACs,
    cycles)}`` (MACs: the products the slices form, T x N x K x N/M)."""
    from plait.ir.numerics import group_accumulate, quantize_rtn, signed_weight
    from plait.ir.numerics.dsp import parse_mode, prune_nm, tile_rows
    from plait.sim.engines import DspJob, run_jobs
    rng = np.random.default_rng(seed)
    jobs, owner = [], []
    for mode in cfg.mode_list():
        md = parse_mode(mode)
        macs = 0
        while macs < macs_min:
            bits = int(rng.choice(md.weight_bits))
            g = md.m * int(rng.integers(1, 65 // md.m + 1))
            k = g * int(rng.integers(1, 4))
            t = int(rng.integers(1, 5))
            n = int(rng.integers(1, 3 * tile_rows(md, cfg.n_dsp) + 1))
            w = rng.standard_normal((n, k)).astype(np.float32)
            if not (md.dense or md.pair):
                w = w * prune_nm(w, md.n, md.m)
            kind = rng.integers(0, 3)
            x = (rng.choice(np.array([-128, 127]), (t, k)) if kind == 0 else
                 np.where(rng.random((t, k)) < 0.6, 0, rng.integers(-128, 128, (t, k)))
                 if kind == 1 else rng.integers(-128, 128, (t, k))).astype(np.int8)
            jobs.append(DspJob(f"{mode}#{len(jobs)}", x, quantize_rtn(w, bits, g, "sym"), mode))
            owner.append(md.name)
            macs += t * n * k * md.n // md.m
    run = run_jobs(jobs, dsp_cfg=cfg, opt=opt)
    out: dict[str, list[int]] = {}
    for j, name, r in zip(jobs, owner, run.results):
        qw = j.qw
        assert np.array_equal(r.out, group_accumulate(signed_weight(qw), j.x, qw.group_size)), j.name
        md = parse_mode(j.mode)
        o = out.setdefault(name, [0, 0, 0])
        o[0] += 1
        o[1] += j.x.shape[0] * qw.codes.shape[0] * qw.codes.shape[1] * md.n // md.m
        o[2] += r.cycles
    return out, run


@pytest.mark.slow
def test_rtl_geometry_sweep_random_macs():
    """Cascades of 1/2/4/8 and 16..64 slices, every mode and weight width: random
    streams (with gaps and back-pressure) and mode switching bit-exact through cocotb,
    the latency measured on the waveform equal to the model; random whole linears on
    the stream player; at least 10^6 random MACs per mode over the sweep."""
    macs: dict[str, int] = {}
    rows, times = [], []
    for i, (n_dsp, cascade, modes, beats) in enumerate(GEOMETRIES):
        cfg = DspChainConfig(n_dsp=n_dsp, cascade=cascade, modes=modes)
        t0 = time.time()
        # -O0: each build runs one short simulation, and compiling is most of its time
        run = _run(cfg, tests="random,switch", beats=beats, opt="-O0")
        assert _ran(run) == ["test_random_modes", "test_mode_switch_and_errors"], run.tests
        assert all(t.passed for t in run.tests), run.tests
        perf = {p["mode"]: p for p in run.perf()}
        assert sorted(perf) == sorted(cfg.mode_list())
        for m, p in perf.items():
            assert p["latency_measured"] == [cfg.latency(m)], (n_dsp, cascade, p)
            assert p["steady_utilisation"] == 1.0, (n_dsp, cascade, p)
            macs[m] = macs.get(m, 0) + p["macs"]
            rows.append((n_dsp, cascade, m, "cocotb", p["beats"], p["macs"], p["latency"]))
        t1 = time.time()
        camp, prun = _player_campaign(cfg, PLAYER_MACS, seed=41 + i, opt="-O0")
        times.append((n_dsp, cascade, t1 - t0, time.time() - t1, prun.seconds["sim"]))
        assert not prun.seconds["built"]                 # the cocotb run's build
        assert sorted(camp) == sorted(cfg.mode_list())
        for m, (jobs, pm, cycles) in camp.items():
            assert pm >= PLAYER_MACS
            macs[m] += pm
            rows.append((n_dsp, cascade, m, "player", cycles, pm, jobs))
    print("\nn_dsp cascade mode   bench   beats/cycles  random MACs  latency/jobs")
    for r in rows:
        print(f"{r[0]:5d} {r[1]:7d} {r[2]:6s} {r[3]:7s} {r[4]:12d} {r[5]:12,d} {r[6]:8d}")
    print("total per mode: " + ", ".join(f"{m} {v:,}" for m, v in macs.items()))
    for n_dsp, cascade, tc, tp, sim in times:
        print(f"  {n_dsp} slices, cascade {cascade}: build + cocotb {tc:.1f} s, player {tp:.1f} s "
              f"({sim:.1f} s of simulation)")
    assert sorted(macs) == sorted(CHAIN_MODES)
    assert min(macs.values()) >= MIN_RANDOM_MACS, macs


@pytest.mark.slow
def test_input_protocol_assertion_fires():
    """a_in_hold: the testbench withdraws a beat the chain held back (a protocol
    violation on purpose); the simulation must stop with the assertion's message."""
    from plait.sim.runner import SimulationFailed
    with pytest.raises(SimulationFailed) as exc:
        _run(DspChainConfig(modes="dense,2:4"), tests="violate")
    assert "a_in_hold" in str(exc.value) and "in_valid dropped" in str(exc.value), str(exc.value)[-2000:]
