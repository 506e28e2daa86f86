"""LUT tensor core RTL: config, lint, cocotb on Verilator (bit-exact), geometry sweep,
assertions, mutation, yosys.

Slow tests (``-m slow``) build the core with Verilator through
:func:`plait.sim.runner.run_cocotb` and run ``plait.sim.tb.test_lut_core``; every
output tile is compared with equality against ``plait.ir.numerics.linear_int``.
The builds have the SystemVerilog assertions of ``lut_core.sv`` (stream protocol and
internal invariants, ``--assert``): a failing one stops the simulation and fails the
run; :func:`test_assertions_fire` shows that each can fail.
Set ``PLAIT_WAVES=1`` to get ``dump.fst`` in the run directory.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time

import numpy as np
import pytest

from plait.ir.numerics import NumericsError, QuantizedWeight, linear_int
from plait.rtl.lut_core import (LUT_SOURCES, LutCoreConfig, format_rows, mode_of,
                                resource_rows, stream_tile)
from plait.rtl.units import SV_DIR, get_unit, unit_sources

#: a small build (fast Verilator/yosys runs) that still has several dequantizer
#: steps per group (n / dq_lanes = 4), so dequantizer stalls are exercised
SMALL = dict(m=1, n=8, dq_lanes=2, max_group=32)


def _run(cfg: LutCoreConfig, testcase=None, sources=None, plusargs=None, coverage=False,
         opt=None, build_args=None, **env):
    """Run the bench; ``coverage``: a Verilator coverage build (line/branch + toggle:
    the run writes coverage.dat); ``opt``: the model's C++ optimisation
    (plait.sim.runner.DEFAULT_OPT); ``build_args``: extra Verilator arguments."""
    from plait.sim.runner import run_cocotb
    e = {"PLAIT_TB_CONFIG": cfg.to_json(), **{k: str(v) for k, v in env.items()}}
    args = build_args
    if coverage:
        # the DSP chain's coverage builds use the same flags (one C++ file): the
        # run-time objects of that flag set are compiled once (sim/runner.py)
        from plait.sim.coverage import COVERAGE_BUILD_ARGS
        args = ["--output-split", "0", *COVERAGE_BUILD_ARGS]
    return run_cocotb("lut_core", sources or unit_sources("lut_core"),
                      "plait.sim.tb.test_lut_core", config=cfg, env=e, testcase=testcase,
                      plusargs=plusargs, build_args=args, opt=opt)


def _ran(run) -> dict[str, tuple[bool, bool]]:
    """{test name: (passed, skipped)} of a run."""
    return {t.name.rsplit(".", 1)[-1]: (t.passed, t.skipped) for t in run.tests}


# ------------------------------------------------------------------ config
def test_registry_and_package():
    spec = get_unit("lut_core")
    assert spec.top == "lut_core" and list(spec.sources) == LUT_SOURCES
    assert all(p.is_file() for p in unit_sources("lut_core"))
    pkg = LutCoreConfig().sv_package()
    for name, val in [("M", 2), ("N", 64), ("K", 4), ("TBL_W", 10), ("LK_W", 11),
                      ("ACC_W", 20), ("P_W", 48), ("DQ_STEPS", 8), ("WB_MAX", 4)]:
        assert re.search(rf"localparam int {name}\s+= {val};", pkg), name
    assert "ACC_W      = 17;" in LutCoreConfig(max_bits=1).sv_package()


@pytest.mark.parametrize("field,value,msg", [
    ("k", 8, "must be 4"), ("dq_lanes", 3, "must divide n"), ("max_group", 6, "multiple of 4"),
    ("max_bits", 5, "max_bits must be 1..4"), ("m", 0, "m must be"), ("cnt_w", 40, "cnt_w"),
])
def test_config_validation(field, value, msg):
    with pytest.raises(ValueError, match=msg):
        LutCoreConfig(**{field: value})


def test_models():
    cfg = LutCoreConfig()
    assert cfg.macs_per_cycle(1) == 512 and cfg.macs_per_cycle(2) == 256
    assert cfg.macs_per_cycle(4) == 128
    assert cfg.macs_per_cycle() == 128 and LutCoreConfig(max_bits=1).macs_per_cycle() == 512
    assert cfg.lookup_units() == 128
    # isolated tile: table fill + K/4*b beats + dequantization of the last group + the
    # pipeline (registered inputs, 4 dequantizer stages: LUT_PIPE = 5) + the 7 output
    # beats after the first (8 beats of 2 x 8 words)
    assert cfg.tile_cycles(1, 256, 64) == 1 + 64 + 8 + 5 + 7
    # groups shorter than the dequantizer (8 steps) stall the array
    assert cfg.tile_cycles(1, 16, 4) == 1 + 1 + 3 * 8 + 8 + 5 + 7
    assert cfg.dq_steps == 8
    est = cfg.estimate_resources()
    assert est["DSP48E2"] == 2 * 2 * 8 and est["FF"] > 128 * 2 * 20   # z'X and A*mant per lane
    assert est["LUTRAM"] == 2 * 8 * 4          # P: 48 bits per lane, 14 per RAM32M16
    with pytest.raises(ValueError, match="1..4 weight planes"):
        cfg.macs_per_cycle(8)
    with pytest.raises(ValueError, match="multiple of the group"):
        cfg.tile_cycles(2, 100, 64)


def _qw(bits, scheme, n=64, k=16, g=8):
    return QuantizedWeight(np.zeros((n, k), np.uint8), np.ones((n, k // g), np.float32),
                           np.zeros((n, k // g), np.int32) if scheme == "asym" else None,
                           bits, g, scheme)


def test_stream_tile_layout():
    cfg = LutCoreConfig(m=1, n=2, dq_lanes=1)
    codes = np.array([[1, 2, 3, 0, 0, 0, 0, 0], [3, 3, 3, 3, 1, 1, 1, 1]], np.uint8)
    qw = QuantizedWeight(codes, np.ones((2, 2), np.float32), None, 2, 4, "odd")
    x = np.array([[1, -1, 2, -128, 0, 0, 0, 5]])
    mode, a, w, s = stream_tile(x, qw, cfg)
    assert (mode.bits, mode.offset, mode.group_chunks) == (2, False, 1)
    assert a == [0x80_02_FF_01, 0x05_00_00_00]
    # chunk 0: plane 0 of col0 = 0b0101, col1 = 0b1111; plane 1: 0b0110, 0b1111
    assert w == [0xF5, 0xF6, 0x00 | (0b1111 << 4), 0x00]
    assert len(s) == 2 and s[0][1] == 0                      # odd grid: z' = 0
    qa = QuantizedWeight(codes, np.ones((2, 2), np.float32),
                         np.array([[0, 3], [1, 2]], np.int32), 2, 4, "asym")
    _, _, _, sa = stream_tile(x, qa, cfg)
    assert sa[0][1] == ((-3) & 31) | (((-1) & 31) << 5)       # z' = 2z + 1 - 4


def test_stream_tile_errors():
    cfg = LutCoreConfig()
    with pytest.raises(ValueError, match="do not match the core"):
        stream_tile(np.zeros((1, 16)), _qw(2, "odd"), cfg)
    with pytest.raises(NumericsError, match="weight bits"):
        mode_of(_qw(8, "sym"), cfg)
    with pytest.raises(NumericsError, match="max_group"):
        mode_of(_qw(2, "odd", k=512, g=512), cfg)
    with pytest.raises(NumericsError, match="max_bits 2"):
        mode_of(_qw(4, "odd"), LutCoreConfig(max_bits=2))
    assert mode_of(_qw(2, "ternary"), cfg).offset and not mode_of(_qw(3, "odd"), cfg).offset


# ------------------------------------------------------------------ lint
@pytest.mark.parametrize("over", [{}, {"max_bits": 1}, SMALL])
def test_verilator_lint(tmp_path, over):
    from plait.sim.verilator import find_verilator, verilator_env
    root = find_verilator()
    cfg = LutCoreConfig(**over)
    pkg = cfg.write_package(tmp_path)
    cmd = [str(root / "bin" / "verilator"), "--lint-only", "-Wall", "-Wno-UNUSEDPARAM",
           "--top-module", "lut_core", str(pkg), *map(str, unit_sources("lut_core"))]
    r = subprocess.run(cmd, env={**os.environ, **verilator_env()}, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


# ------------------------------------------------------------------ RTL simulation
@pytest.mark.slow
def test_rtl_default_tile_bit_exact_and_perf():
    """Default 2x64x4 tile: cfg errors, directed edges and the cycles/utilisation table
    (W1, W2, W3, W4, ternary).  Its random tiles (about 10^6 MACs per mode, the bulk
    of the sweep's) run in :func:`test_lut_geometry_sweep` on the same build."""
    cfg = LutCoreConfig()
    run = _run(cfg, PLAIT_TB_TESTS="cfg,edges,throughput")
    assert _ran(run) == {"test_cfg_errors": (True, False), "test_directed_edges": (True, False),
                         "test_random_modes": (True, True), "test_throughput": (True, False),
                         "test_resets_and_cycles": (True, True),
                         "test_assertion_checks": (True, True),
                         "test_mutants": (True, True)}, run.tests
    perf = {p["mode"]: p for p in run.perf() if p.get("test") == "throughput"}
    assert set(perf) == {"W1", "W2", "W3", "W4", "ternary"}
    print("\nmode     bits  cycles/tile(steady)  utilisation  MACs/cycle  latency(model)")
    for name, p in perf.items():
        k, b = p["K"], p["bits"]
        print(f"{name:8} {b:4}  {p['steady_cycles_per_tile']:19.1f}  "
              f"{100 * p['steady_utilisation']:10.1f}%  {p['macs_per_cycle']:10.1f}  "
              f"{p['latency_cycles']} ({p['latency_model']})")
        # back-to-back tiles leave every tile_period clocks: the lookup array is busy
        # every cycle, except W1 (groups of 64 = 16 clocks, shorter than the 22 clocks a
        # tile's dequantization and its 8 output beats take before the next tile's first
        # group may overwrite P)
        assert p["steady_cycles_per_tile"] == cfg.tile_period(b, k, p["G"])
        if b > 1:
            assert p["steady_cycles_per_tile"] == k // 4 * b
            assert p["steady_utilisation"] == 1.0
        assert p["latency_cycles"] == p["latency_model"] == cfg.tile_cycles(b, k, p["G"])
        # over the 4 back-to-back tiles, first beat to last output: the first tile's
        # table fill, dequantization, LUT_PIPE = 5 pipeline clocks and output beats are
        # not hidden (W2: 512 busy of 534 clocks; W1, its tiles 22 clocks apart: 256 of 296)
        assert p["utilisation"] > (0.94 if b > 1 else 0.85)


#: code coverage floors of the small build's all-modes run (max_bits 4; Verilator
#: line/branch and toggle points of rtl/sv/lut_*.sv, every instance's hits merged);
#: `make coverage` prints the table.  Measured: branch 74/74, line 40/40, toggle
#: 8320/8358 = 99.55 %.  The 38 toggle points never hit are all counter bits no tile of
#: the bench reaches: plane[2] (plane <= max_bits - 1 = 3: unreachable), and high bits of
#: the 16-bit group counter (group, group_p1) and of cfg_groups (the bench's tiles have
#: at most 4 groups; bit b needs 2^b groups).  Some other high bits of those counters
#: count as toggled only because of the random initial state (+verilator+rand+reset+2,
#: seed 1) going to 0 at reset.
COVERAGE_FLOOR = {"branch": 1.0, "line": 1.0, "toggle": 0.995}


def _check_coverage(run) -> None:
    from plait.sim.coverage import summarise
    cov = summarise(run.run_dir / "coverage.dat", files=tuple(LUT_SOURCES))
    print("\nlut_core code coverage (small build 1x8 dq2, all modes):\n" + cov.table())
    if cov.missed:
        print("  never hit: " + ", ".join(f"{f}:{ln} ({k})" for f, ln, k in cov.missed[:40]))
    for kind, floor in COVERAGE_FLOOR.items():
        assert cov.share(kind) >= floor, (kind, cov.table(), cov.missed[:40])


def _check_functional_coverage(run) -> None:
    """Every functional-coverage bin of the bench (cocotb-coverage, exported by
    sim/tb/test_lut_core.py: format x traffic / tile shape / operand extremes, group
    length x groups per tile) was hit."""
    import yaml
    db = yaml.safe_load((run.run_dir / "functional_coverage.yml").read_text())
    items = {k: v for k, v in db.items() if k.startswith("lut_core.") and "bins:_hits" in v}
    print("\nlut_core functional coverage:")
    for k, v in sorted(items.items()):
        print(f"  {k:28s} {v['coverage']:4d} / {v['size']:4d} bins  {v['cover_percentage']:6.2f} %")
    assert {"lut_core.mode_x_traffic", "lut_core.mode_x_shape", "lut_core.mode_x_extreme",
            "lut_core.group_x_groups"} <= set(items), sorted(items)
    missed = {k: [b for b, n in v["bins:_hits"].items() if not n] for k, v in items.items()}
    assert not any(missed.values()), {k: m for k, m in missed.items() if m}


@pytest.mark.slow
@pytest.mark.parametrize("max_bits", [4, 1])
def test_rtl_small_build_bit_exact(max_bits):
    """A small build (1x8, dequantizer slower than short groups) in every mode it
    supports; the W1-only build drops the plane shifter and narrows the accumulators.
    The max_bits 4 run is a coverage build and holds COVERAGE_FLOOR, and hits every
    functional-coverage bin of the bench."""
    cfg = LutCoreConfig(**SMALL, max_bits=max_bits)
    from plait.sim.tb.test_lut_core import MODES
    run = _run(cfg, PLAIT_LUT_TILES=40, PLAIT_LUT_SEED=3 + max_bits, PLAIT_LUT_PERF_K=64,
               coverage=max_bits == 4)
    if max_bits == 4:
        _check_coverage(run)
        _check_functional_coverage(run)
    assert _ran(run) == {"test_cfg_errors": (True, False), "test_directed_edges": (True, False),
                         "test_random_modes": (True, False), "test_throughput": (True, False),
                         "test_resets_and_cycles": (True, False),
                         "test_assertion_checks": (True, True),
                         "test_mutants": (True, True)}, run.tests
    perf = run.perf()
    assert {p["mode"] for p in perf if p["test"] == "random"} == \
        {name for name, _, bits in MODES if bits <= max_bits}
    for p in perf:
        if p["test"] == "throughput":
            assert p["latency_cycles"] == cfg.tile_cycles(p["bits"], p["K"], p["G"])


@pytest.mark.slow
@pytest.mark.parametrize("fields", [SMALL, dict(m=1, n=4, dq_lanes=4, max_group=32)],
                         ids=["4-steps", "1-step"])
def test_rtl_dsp48e2_primitive_path(fields):
    """The dequantizer's last stage as the DSP48E2 primitive (lut_dq_mac.sv, what yosys
    builds for xcup) on the UG579 model (-DPLAIT_DSP_PRIMITIVE): random tiles of every
    mode bit-exact, the cycle checks and resets; with one step per group (Z = P)."""
    from plait.rtl.dsp_chain import DSP48E2_SIM_MODEL, PRIMITIVE_BUILD_ARGS
    cfg = LutCoreConfig(**fields)
    run = _run(cfg, sources=[SV_DIR / DSP48E2_SIM_MODEL, *unit_sources("lut_core")],
               build_args=list(PRIMITIVE_BUILD_ARGS), PLAIT_TB_TESTS="random,resets",
               PLAIT_LUT_TILES=6, opt="-O0")
    ran = _ran(run)
    assert ran["test_random_modes"] == (True, False) and ran["test_resets_and_cycles"] == \
        (True, False), run.tests
    # the primitive really is in the build: without the model it does not elaborate
    from plait.sim.runner import BuildFailed
    with pytest.raises(BuildFailed, match="DSP48E2"):
        _run(cfg, build_args=list(PRIMITIVE_BUILD_ARGS), PLAIT_TB_TESTS="random",
             PLAIT_LUT_TILES=1, opt="-O0")


# ------------------------------------------------------------------ geometry sweep
#: (LutCoreConfig fields, random MACs per mode, random tiles per mode at least) of each
#: cocotb build.  Every build has max_bits 4, so each runs all of MODES (odd W1..W4,
#: ternary, asym W1..W4, sym W2/W4) with random input gaps and output stalls.  The
#: small builds cover the geometry corners with a few dozen tiles per mode; the default
#: tile (its build is shared with the default-tile and layer tests) runs 10^5 MACs per
#: mode through cocotb and the bulk, PLAYER_MACS, on the stream player
#: (test_lut_random_macs_on_the_player).  (SMALL, 1x8 with 4 dequantizer steps, runs in
#: test_rtl_small_build_bit_exact.)
SWEEP = [
    (dict(m=1, n=8, dq_lanes=8, max_group=64), 10_000, 24),     # a whole row per dequantizer step
    (dict(), 100_000, 1),                                       # default 2x64, dq_lanes 8
    (dict(m=3, n=12, dq_lanes=4, max_group=128), 10_000, 24),   # odd M; 3 steps (not a power of 2)
    (dict(m=4, n=16, dq_lanes=2, max_group=256), 10_000, 24),   # 4 rows, 8 steps, the widest groups
]
#: random MACs per weight mode the stream player checks on the default tile
PLAYER_MACS = 2_000_000
#: random MACs per weight mode the sweep must reach, summed over its geometries (cocotb
#: and player)
MACS_PER_MODE = 1_000_000


def _geom(cfg: LutCoreConfig) -> str:
    return f"{cfg.m}x{cfg.n} dq{cfg.dq_lanes} G<={cfg.max_group}"


def _player_campaign(cfg: LutCoreConfig, macs_min: int, seed: int):
    """Random whole linears of every mode on the stream player, one simulation: T of 1..5
    token rows, N of 1..200 columns (padded column tiles), K of 1..4 groups of 4..256,
    the testbench's constrained-random activations and weights; every P against
    linear_int.  ``{mode: (jobs, MACs checked, cycles)}``."""
    from plait.sim.engines import LutJob, run_jobs
    from plait.sim.tb.test_lut_core import GROUPS, MODES, rand_acts, rand_weight
    rng = np.random.default_rng(seed)
    groups = [g for g in GROUPS if g <= cfg.max_group]
    jobs, owner = [], []
    for name, scheme, bits in MODES:
        macs = 0
        while macs < macs_min:
            g = int(rng.choice(groups))
            k = g * int(rng.integers(1, max(2, min(5, 1024 // g + 1))))
            t, n = int(rng.integers(1, 6)), int(rng.integers(1, 201))
            x = rand_acts(rng, t, k).astype(np.int8)
            jobs.append(LutJob(f"{name}#{len(jobs)}", x, rand_weight(rng, scheme, bits, n, k, g)))
            owner.append(name)
            macs += t * n * k
    run = run_jobs(jobs, lut_cfg=cfg)
    out: dict[str, list[int]] = {}
    for j, name, r in zip(jobs, owner, run.results):
        assert np.array_equal(r.out, linear_int(j.x, j.qw)[0]), j.name
        o = out.setdefault(name, [0, 0, 0])
        o[0] += 1
        o[1] += j.x.shape[0] * j.qw.codes.shape[0] * j.qw.codes.shape[1]
        o[2] += r.cycles
    return out, run


@pytest.mark.slow
def test_lut_geometry_sweep():
    """The random test (gaps, stalls, every weight width 1..4 and format, groups of 4 to
    max_group, bit-exact against plait.ir.numerics) on several M x N tiles and
    dequantizer widths, and PLAYER_MACS per mode on the default tile from the stream
    player; at least MACS_PER_MODE MACs per mode over the sweep."""
    from plait.sim.tb.test_lut_core import MODES
    t_all = time.time()
    rows, times = [], []
    totals = {name: 0 for name, _, _ in MODES}
    for i, (over, macs_min, tiles_min) in enumerate(SWEEP):
        cfg = LutCoreConfig(**over)
        assert cfg.max_bits == 4
        t0 = time.time()
        run = _run(cfg, PLAIT_TB_TESTS="random", PLAIT_LUT_MACS=macs_min,
                   PLAIT_LUT_TILES=tiles_min, PLAIT_LUT_SEED=21 + i)
        times.append((_geom(cfg), time.time() - t0, run.built))
        assert _ran(run)["test_random_modes"] == (True, False), run.tests
        recs = {p["mode"]: p for p in run.perf() if p.get("test") == "random"}
        assert sorted(recs) == sorted(totals), recs.keys()
        for name, _, bits in MODES:
            p = recs[name]
            assert p["bits"] == bits and p["macs_checked"] >= macs_min, p
            assert p["tiles"] >= tiles_min, p
            totals[name] += p["macs_checked"]
            rows.append((_geom(cfg), name, p["tiles"], p["macs_checked"], p["cycles"]))
    t0 = time.time()
    cfg = LutCoreConfig()
    camp, prun = _player_campaign(cfg, PLAYER_MACS, seed=31)
    times.append((f"{_geom(cfg)} player", time.time() - t0, prun.seconds["built"]))
    assert sorted(camp) == sorted(totals)
    for name, (jobs, macs, cycles) in camp.items():
        assert macs >= PLAYER_MACS
        totals[name] += macs
        rows.append((f"{_geom(cfg)} player", name, jobs, macs, cycles))
    print(f"\n{'geometry':22} {'mode':8} {'tiles':>6} {'MACs':>9} {'cycles':>8} {'MACs/cycle':>10}"
          f"   (player rows: jobs, not tiles)")
    for g, name, tiles, macs, cycles in rows:
        print(f"{g:22} {name:8} {tiles:6} {macs:9} {cycles:8} {macs / cycles:10.1f}")
    print(f"{'total':22} {'':8} {'':6} {sum(r[3] for r in rows):9} {sum(r[4] for r in rows):8}")
    print("MACs per mode over the sweep: "
          + ", ".join(f"{name} {tot}" for name, tot in totals.items()))
    for g, secs, built in times:
        print(f"  {g}: {secs:.1f} s ({'built' if built else 'cached build'})")
    print(f"  player simulation {prun.seconds['sim']:.1f} s ({prun.cycles_per_second:.0f} "
          f"cycles/s); sweep wall time {time.time() - t_all:.1f} s")
    short = {name: tot for name, tot in totals.items() if tot < MACS_PER_MODE}
    assert not short, f"modes below {MACS_PER_MODE} random MACs over the sweep: {short}"


# ------------------------------------------------------------------ mutation
MUTANTS = {
    # the symmetrization's sign selection: negative half chosen by idx[3] = 1
    "sign_select": ("lut_lookup.sv", "assign neg_d = !idx[3];", "assign neg_d = idx[3];"),
    # the bit-plane weight 2^i (the row's table register doubles after each plane):
    # no doubling after plane 0, so plane 1 -> 2^0, plane 2 -> 2^1, ...
    "plane_shift": ("lut_core.sv", "assign tbl_shift = w_fire && !plane_last;",
                    "assign tbl_shift = w_fire && !plane_last && (plane != 3'd0);"),
    # zero correction uses table entry S[6] instead of S[7] = sum x (one index bit)
    "zero_sum": ("lut_core.sv", "s_row[7*TBL_W +: TBL_W]", "s_row[6*TBL_W +: TBL_W]"),
}


@pytest.mark.slow
@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_mutated_rtl_fails_scoreboard(tmp_path, mutant):
    """Copy the RTL, change one bit of the arithmetic, run the same testbench: it must
    fail with a scoreboard mismatch (the unmutated RTL passes the same test above)."""
    from plait.sim.mutate import mutated_sources
    from plait.sim.runner import SimulationFailed
    fname, old, new = MUTANTS[mutant]
    srcs = mutated_sources(unit_sources("lut_core"), tmp_path, fname, old, new)
    cfg = LutCoreConfig(**SMALL)
    modes = "W2,W3asym" if mutant != "zero_sum" else "W2asym,ternary"
    with pytest.raises(SimulationFailed) as ei:
        _run(cfg, "test_random_modes", sources=srcs, PLAIT_LUT_TILES=4, PLAIT_LUT_MODES=modes,
             opt="-O0")                       # one short run: the compile is its time
    msg = str(ei.value)
    assert "mismatched" in msg and "expected" in msg, msg[-2000:]
    assert ei.value.failures and ei.value.failures[0][0].endswith("test_random_modes")


# ------------------------------------------------------------------ assertions
#: the assertion each protocol violation of the bench (PROTOCOL_VIOLATIONS) must fire
PROTOCOL_EXPECT = {"a_drop": "a_a_hold", "a_data": "a_a_hold", "w_drop": "a_w_hold",
                   "w_data": "a_w_hold", "s_drop": "a_s_hold", "s_data": "a_s_hold",
                   "cfg": "a_cfg_stable"}

#: one RTL mutant per internal invariant (and per replicated register class) of
#: lut_core.sv: name -> (site, old expression, new expression, the assertion that must
#: be the first to fail).  All in one build (plait.sim.mutate.switched_mutants).
ASSERTION_MUTANTS = {
    # an output beat dropped / changed while o_ready is low (the beat pointer moves on,
    # P is written while presented)
    "o_drop": ("end else if (o_valid && o_ready) begin", "o_valid && o_ready",
               "o_valid", "a_o_hold"),
    "o_shift": ("if (sh_q) pm[wr_t] <= pr4;", "sh_q", "sh_q || (o_valid && !o_ready)",
                "a_o_hold"),
    # o_valid after every dequantized group, not only the tile's last
    "o_early": ("end else if (pv[DQ_PIPE] && pe[DQ_PIPE]) begin",
                "pv[DQ_PIPE] && pe[DQ_PIPE]", "pv[DQ_PIPE]", "a_no_spurious_out"),
    # a tile's first group does not wait for the previous P to be taken
    "p_overwrite": ("assign dq_free  = (!dq_busy || (dq_done && !dq_last)) && "
                    "((group != '0) || !out_hold);", "((group != '0) || !out_hold)", "1'b1",
                    "a_p_overwrite"),
    # the dequantizer takes the next group in any step, not only in its last: it enters
    # too soon (mutating dq_done itself also breaks the holding registers' open copies,
    # whose check fires first)
    "dq_overrun": ("(!dq_busy || (dq_done && !dq_last))", "dq_done && !dq_last",
                   "dq_busy && !dq_last", "a_dq_overrun"),
    # the plane register (waveforms only) stops counting
    "plane_stuck": ("plane    <= plane_last ? 3'd0 : plane_p1;", "plane_p1", "plane",
                    "a_counters"),
    # the chunk counter runs one chunk past cfg_group_chunks
    "chunk_bound": ("assign chunk_last = (chunk_p1 == cfg_group_chunks);", "cfg_group_chunks",
                    "cfg_group_chunks + 1'b1", "a_counter_bounds"),
    # a new table is taken at every weight beat, not only at a chunk's last plane
    "tbl_load": ("assign a_ready  = !cfg_err && (!tbl_valid || (w_fire && plane_last));",
                 "(w_fire && plane_last)", "w_fire", "a_tbl_load"),
    # weight beats accepted without a table
    "tbl_used": ("assign w_ready  = !cfg_err && tbl_valid && (!grp_end || (s_valid && dq_free));",
                 "tbl_valid", "1'b1", "a_tbl_used"),
    # a group's last weight beat accepted without its parameters / parameters taken early
    "s_skip": ("(!grp_end || (s_valid && dq_free))", "s_valid && dq_free", "dq_free",
               "a_s_with_last"),
    "s_early": ("assign s_ready  = w_valid && w_ready && grp_end;",
                "w_valid && w_ready && grp_end", "w_valid && w_ready", "a_s_with_last"),
    # one replicated control register class at a time differs from its decision
    "rep_a_fire": ("a_fire_q    <= a_fire;", "a_fire", "!a_fire", "a_rep_table"),
    "rep_tbl_shift": ("tbl_shift_q <= tbl_shift;", "tbl_shift", "!tbl_shift", "a_rep_table"),
    "rep_xs_en": ("xs_en_q    <= w_fire && plane_last;", "w_fire && plane_last", "w_fire",
                  "a_rep_xsum"),
    "rep_xs_first": ("xs_first_q <= (chunk == '0);", "(chunk == '0)", "(chunk != '0)",
                     "a_rep_xsum"),
    "rep_xs_dq": ("xs_dq_q    <= dq_start;", "dq_start", "!dq_start", "a_rep_xsum"),
    "rep_en": ("en_q  <= w_fire;", "w_fire", "!w_fire", "a_rep_acc"),
    "rep_clr": ("clr_q <= !rst_n || (w_fire && grp_end);", "(w_fire && grp_end)", "w_fire",
                "a_rep_acc"),
    "rep_ld": ("ld_q <= dq_start;", "dq_start", "!dq_start", "a_rep_hold"),
    "rep_open": ("else        op_q <= hold_open_next;", "hold_open_next", "!hold_open_next",
                 "a_rep_hold"),
    "rep_step_sel": ("st_e <= dq_step_next;", "dq_step_next", "~dq_step_next", "a_rep_dq"),
    "rep_step_lane": ("st_q <= dq_step;\n        logic signed [ACC_W-1:0]  a_sel", "dq_step",
                      "~dq_step", "a_rep_dq"),
    "rep_off": ("off_q <= dq_offset;", "dq_offset", "!dq_offset", "a_rep_dq"),
    "rep_first": ("f3_q <= pf[DQ_PIPE-2];", "pf[DQ_PIPE-2]", "!pf[DQ_PIPE-2]", "a_rep_dq"),
    "rep_v3": ("else        v3_q <= pv[DQ_PIPE-2];", "pv[DQ_PIPE-2]", "!pv[DQ_PIPE-2]",
               "a_rep_ring"),
    "rep_sh": ("else        sh_q <= v3_q;", "v3_q", "!v3_q", "a_rep_ring"),
}

_ASSERT_FAIL = re.compile(r"^\[(\d+)\] %Error: \S+ Assertion failed in (\S+): (.*)$", re.M)


def _assertion_failures(log: str) -> list[tuple[int, str, str]]:
    """(time, assertion label, message) of every failed assertion in a sim.log."""
    return [(int(tm), scope.rsplit(".", 1)[-1], msg) for tm, scope, msg in _ASSERT_FAIL.findall(log)]


def test_every_assertion_has_a_failure_check():
    labels = set(re.findall(r"^\s*(a_\w+): assert property", (SV_DIR / "lut_core.sv").read_text(),
                            re.M))
    assert len(labels) >= 15
    assert labels == set(PROTOCOL_EXPECT.values()) | {m[3] for m in ASSERTION_MUTANTS.values()}


@pytest.mark.slow
def test_assertions_fire(tmp_path):
    """Each assertion of lut_core.sv can fail.  One build of the small core with every
    mutant of ASSERTION_MUTANTS switched at run time, one simulation of
    test_assertion_checks: a window per protocol violation the bench drives (the RTL as
    it is: only the expected assertion may fire) and per mutant (the expected assertion
    must be among the first to fire), with the error limit raised so every window is
    logged.  Then the same build without the raised limit: the first violation stops the
    simulation and the run fails with the assertion's message (SimulationFailed)."""
    from plait.sim.mutate import switched_mutants
    from plait.sim.runner import SimulationFailed
    from plait.sim.tb.test_lut_core import PROTOCOL_VIOLATIONS
    assert set(PROTOCOL_VIOLATIONS) == set(PROTOCOL_EXPECT)
    srcs, ids = switched_mutants(unit_sources("lut_core"), tmp_path / "rtl", "lut_core.sv",
                                 "lut_core", {k: v[:3] for k, v in ASSERTION_MUTANTS.items()})
    cfg = LutCoreConfig(**SMALL)
    windows = ([{"name": v, "stim": v, "mut": 0} for v in PROTOCOL_VIOLATIONS]
               + [{"name": k, "stim": "mix", "mut": ids[k]} for k in ASSERTION_MUTANTS])
    expect = {**PROTOCOL_EXPECT, **{k: v[3] for k, v in ASSERTION_MUTANTS.items()}}
    run = _run(cfg, "test_assertion_checks", sources=srcs,
               plusargs=["+verilator+error+limit+1000000"], PLAIT_LUT_CHECKS=json.dumps(windows))
    assert _ran(run) == {"test_assertion_checks": (True, False)}, run.tests
    done = json.loads((run.run_dir / "assertion_windows.json").read_text())
    assert [w["name"] for w in done] == [w["name"] for w in windows]
    fails = _assertion_failures((run.run_dir / "sim.log").read_text(errors="replace"))
    assert fails and fails[0][0] > done[0]["t0"], fails[:3]    # nothing before the first window
    report = []
    for w in done:
        got = [(tm, a) for tm, a, _ in fails if w["t0"] < tm <= w["t1"]]
        first = sorted({a for tm, a in got if got and tm == got[0][0]})
        report.append(f"{w['name']:14} -> first {first}, {len(got)} failure(s) "
                      f"of {sorted({a for _, a in got})}")
        assert got, f"window {w['name']}: no assertion failed (expected {expect[w['name']]})"
        assert expect[w["name"]] in first, report[-1]
        if w["stim"] != "mix":          # the RTL is correct: only the protocol assertion
            assert {a for _, a in got} == {expect[w["name"]]}, report[-1]
    print("\n" + "\n".join(report))

    # the normal limit: the first failing assertion stops the simulation, the test fails
    one = [{"name": "w_data", "stim": "w_data", "mut": 0}]
    with pytest.raises(SimulationFailed) as ei:
        _run(cfg, "test_assertion_checks", sources=srcs, PLAIT_LUT_CHECKS=json.dumps(one))
    msg = str(ei.value)
    assert "Assertion failed in lut_core.a_w_hold" in msg, msg[-2000:]
    assert ei.value.failures and ei.value.failures[0][0].endswith("test_assertion_checks")


# ------------------------------------------------------------------ yosys
@pytest.mark.slow
def test_yosys_resources_small_build():
    """Real synth_xilinx counts for a small W1/W4 build; per-MAC figures are derived."""
    from plait.rtl.synth import find_yosys
    find_yosys()
    base = LutCoreConfig(**SMALL)
    rows = resource_rows((1, 4), base=base)
    print("\n" + format_rows(rows))
    w1, w4 = rows
    for r in rows:
        cfg = base.replace(max_bits=int(r["mode"][1]))
        # both accumulator banks are real flip-flops; P is distributed RAM, one RAM32M16
        # per 14 bits of each lane (8 LUTs each, in LUT+mem), not M*N*48 flip-flops
        assert r["FF"] >= cfg.m * cfg.n * 2 * cfg.derived()["acc_w"]
        assert r["LUTRAM"] == cfg.m * cfg.dq_lanes * 4 == cfg.estimate_resources()["LUTRAM"]
        assert r["LUT+mem"] >= r["LUT"] + 8 * r["LUTRAM"]
        assert r["DSP48E2"] >= cfg.m * cfg.dq_lanes            # mantissa multipliers
        assert r["LUT"] > 0 and r["LUT/MAC"] == r["LUT"] / r["macs_per_cycle"]
    assert w1["macs_per_cycle"] == 4 * w4["macs_per_cycle"]
    assert w1["FF"] < w4["FF"]                                  # narrower accumulators


#: LUT per peak MAC ceiling of the default 2x64x4 tile (max_bits=4, W4 MACs = 128 per
#: cycle), yosys 0.23 synth_xilinx xcup, LUTs of P's distributed RAM included (LUT+mem).
#: Measured 81.7 (9,945 logic LUTs + 64 RAM32M16) with z' X and P's add in DSP48E2s
#: (80.7 with only P's add there)
#: (lut_dq_mac.sv); 88.2 (10,900 + 48 RAM32M16) with P in distributed RAM; 82.7
#: (10,587 LUT, no RAM) with P in 6,144 flip-flops; 85.4 (10,933 LUT) before the 300 MHz
#: pipeline; before the rewrite (per-column plane shifter, priority-chain lookup MUX,
#: load/shift holding registers) 237.3 (30,378 LUT).
LUT_PER_MAC_MAX_W4 = 88
#: flip-flops per W4 MAC of the default tile: 71.1 measured (9,097) with z' X and the
#: last dequantizer stages in DSP48E2 registers; 76.3 (9,769) with only the last
#: stages there; 84.8 (10,857) with P in
#: distributed RAM and the s words loaded into the holding registers from the port;
#: 93.5 (11,969) with their registered input copy; 142.0 (18,174) with P in flip-flops
FF_PER_MAC_MAX_W4 = 76


@pytest.mark.slow
def test_yosys_default_tile_lut_per_mac_ceiling():
    """Regression guard on the default tile's area: LUT per W4 MAC under the ceiling,
    no wide MUXF8/F9 trees, one DSP48E2 pair per dequantizer lane, and the analytical
    estimate within 30% of yosys."""
    from plait.rtl.synth import find_yosys
    find_yosys()
    cfg = LutCoreConfig()
    (row,) = resource_rows((4,), base=cfg)
    print("\n" + format_rows([row]))
    assert row["LUT+mem/MAC"] <= LUT_PER_MAC_MAX_W4, row
    assert row["FF/MAC"] <= FF_PER_MAC_MAX_W4, row
    assert row["FF"] <= row["LUT+mem"], row          # issue 7's "FF no more than LUT"
    assert row["DSP48E2"] == 2 * cfg.m * cfg.dq_lanes, row
    # every column accumulator and holding register is a flip-flop, plus the 300 MHz
    # pipeline (registered inputs, replicated control, 4-stage dequantizer), little
    # else: P is in distributed RAM
    acc_w = cfg.derived()["acc_w"]
    w = cfg.derived()
    lanes = cfg.m * cfg.dq_lanes
    pipe = (cfg.m * cfg.n * 6 + cfg.n * 22
            + lanes * (2 * acc_w + 2 * (w["zp_w"] + w["xs_w"]) + w["grp_w"] + 51 + w["prod_w"] + 10))
    assert cfg.m * cfg.n * 2 * acc_w <= row["FF"] <= 1.1 * cfg.m * cfg.n * 2 * acc_w \
        + cfg.n * 21 + 1000 + pipe, row
    assert row["LUTRAM"] == lanes * 4, row
    est = cfg.estimate_resources()
    for key, got in (("LUT", "LUT+mem"), ("FF", "FF"), ("DSP48E2", "DSP48E2")):
        assert abs(est[key] - row[got]) <= 0.3 * row[got], (key, est[key], row[got])


def test_yosys_missing_is_a_clear_error(monkeypatch, tmp_path):
    from plait.rtl.synth import ToolMissing
    monkeypatch.setenv("PLAIT_YOSYS", str(tmp_path / "no-yosys"))
    monkeypatch.setenv("PLAIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ToolMissing, match="yosys"):
        resource_rows((1,), base=LutCoreConfig(**SMALL))


def test_sources_are_real_sv_files():
    for name in LUT_SOURCES:
        text = (SV_DIR / name).read_text()
        assert re.search(r"^module (lut|plait)_\w+", text, re.M)
        assert "import " not in text                           # yosys 0.23 subset


# ------------------------------------------------------------------ mutation campaign
#: mutants per site class of the CI campaign (a deterministic sample, evenly spread over
#: each class's sites); `make mutation` runs all of them (python -m plait.sim.mutate)
CI_MUTANTS_PER_CLASS = 6


def test_mutation_sites_enumerated():
    """The campaign's site enumeration on the real sources: every class present, keys
    unique, nothing in the simulation-only checkers, every equivalence entry matches
    exactly one mutant."""
    from plait.sim.mutate import (SITE_CLASSES, campaign_mutants, equivalence_reason,
                                  lut_core_campaign)
    spec = lut_core_campaign()
    muts = campaign_mutants(spec)
    assert {m.cls for m in muts} == set(SITE_CLASSES)
    assert len(muts) >= 250 and len({m.key for m in muts}) == len(muts)
    assert {m.file for m in muts} == set(spec.files)
    checkers = (SV_DIR / "lut_core.sv").read_text().split("`ifndef SYNTHESIS")[0].count("\n")
    assert max(m.line for m in muts if m.file == "lut_core.sv") <= checkers   # 1-based lines
    assert all(" ".join(m.alt.split()) != " ".join(m.orig.split()) for m in muts)
    for key in spec.equivalent:
        hits = [m for m in muts if equivalence_reason(m, {key: "x"})]
        assert len(hits) == 1, (key, [m.name for m in hits])
    assert campaign_mutants(spec) == muts                    # deterministic


def test_mutation_enumerator_rules(tmp_path):
    """What the enumerator mutates and what it leaves alone, on a small module."""
    from plait.sim.mutate import enumerate_mutants
    src = tmp_path / "toy.sv"
    src.write_text("""module toy #(parameter int W = 4) (
  input  logic clk, rst_n, en,
  input  logic [W-1:0] a, b,
  output logic [W-1:0] q,
  output logic f
);
  logic [2*W-1:0] w;   // a + b in a comment
  assign w = {{W{a[W-1]}}, a} ^ b;
  if (W > 2) begin : g_big
    assign f = a[W-1] && !b[0];
  end
  always_ff @(posedge clk) begin
    if (!rst_n) q <= '0;
    else if (en) q <= (a > b) ? a - b : q + 4'd1;
  end
`ifndef SYNTHESIS
  a_x: assert property (@(posedge clk) q != a + 1);
`endif
endmodule
""")
    got = {(m.cls, m.desc, m.stmt) for m in enumerate_mutants(src)}
    descs = sorted((c, d) for c, d, _ in got)
    assert ("logic", "`^` -> `|`") in descs                  # the replication count W is not a site
    assert ("logic", "`&&` -> `||`") in descs and ("negation", "unary `!` removed") in descs
    assert ("stuck", "`f` stuck at 0") in descs and ("stuck", "`f` stuck at 1") in descs
    assert ("reset", "condition stuck at 0") in descs and ("reset", "`'0` -> `'1`") in descs
    assert ("enable", "condition stuck at 1") in descs
    assert ("select", "`(a > b) ?` stuck at 1") in descs
    assert ("compare", "`>` -> `>=`") in descs and ("arith", "`-` -> `+`") in descs
    assert ("constant", "`4'd1` -> `4'd2`") in descs and ("constant", "`4'd1` -> `4'd0`") in descs
    # never: the generate-if header, an index ([W-1], [0]), the comment, the checker
    assert not any("W > 2" in s or s.startswith("a_x") for _, _, s in got)
    assert not any(d in ("`-` -> `+`",) and "W-1" in s and "a - b" not in s for _, d, s in got)
    assert not [d for c, d in descs if c == "constant" and "`1`" in d]   # W-1 / a + 1 untouched
    with pytest.raises(ValueError, match="module nope"):
        enumerate_mutants(src, "nope")


def test_switched_build_lints(tmp_path):
    """Every mutant of the campaign in one copy is valid SystemVerilog: Verilator lint of
    the switched sources (the selector, $root references, nested selects)."""
    from plait.sim.mutate import campaign_mutants, lut_core_campaign, switched_build
    from plait.sim.verilator import find_verilator, verilator_env
    spec = lut_core_campaign()
    muts = campaign_mutants(spec)
    srcs, ids = switched_build(unit_sources("lut_core"), tmp_path / "rtl", muts, "lut_core")
    assert sorted(ids.values()) == list(range(1, len(muts) + 1))
    text = (tmp_path / "rtl" / "lut_core.sv").read_text()
    assert "$value$plusargs(\"plait_mut=%d\", plait_mut)" in text
    assert "$root.lut_core.plait_mut == " in (tmp_path / "rtl" / "lut_lookup.sv").read_text()
    pkg = spec.config.write_package(tmp_path)
    cmd = [str(find_verilator() / "bin" / "verilator"), "--lint-only", "--top-module", "lut_core",
           str(pkg), *map(str, srcs)]
    r = subprocess.run(cmd, env={**os.environ, **verilator_env()}, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    with pytest.raises(ValueError, match="no longer has"):
        bad = [m.__class__(**{**m.__dict__, "orig": m.orig + "x"}) for m in muts[:1]]
        switched_build(unit_sources("lut_core"), tmp_path / "rtl2", bad, "lut_core")


@pytest.mark.slow
def test_mutation_campaign_no_survivors():
    """The CI-sized mutation campaign (CI_MUTANTS_PER_CLASS per site class, one build,
    one simulation): every mutant is killed (wrong / missing output, hang, cycle count,
    failed assertion) or listed equivalent with its reason; none survives.  The full
    campaign (every site, 311 mutants, about 2 minutes) is `make mutation`."""
    from plait.sim.mutate import lut_core_campaign, run_sample
    spec = lut_core_campaign()
    res = run_sample(spec, CI_MUTANTS_PER_CLASS)
    assert len(res.results) >= 50
    assert not res.survivors, "\n".join(r.row() for r in res.survivors)
    counts = res.counts()
    assert all(c["killed"] for c in counts.values()), counts
    # one mutant alone: the plusarg selects it in the ordinary random test (same build)
    from plait.sim.runner import SimulationFailed
    one = next(r.mutant for r in res.results if r.how == "mismatch")
    with pytest.raises(SimulationFailed, match="mismatched|Assertion failed"):
        _run(spec.config, "test_random_modes", sources=res.sources, PLAIT_LUT_TILES=2,
             plusargs=[f"+plait_mut={res.ids[one.key]}"])
