"""Static timing estimate (plait.rtl.timing): the walker on hand-written netlists, and each
engine's estimated fmax against its target on the real yosys netlist (slow)."""
from __future__ import annotations

import shutil

import pytest

from plait.rtl.timing import (DEFAULT_TARGET_MHZ, DELAYS, TimingReport, analyze,
                              format_timing, net_delay)

D = DELAYS
needs_yosys = pytest.mark.skipif(shutil.which("yosys") is None, reason="yosys not installed")


class Net:
    """A tiny yosys ``write_json`` netlist builder (one flattened module)."""

    def __init__(self):
        self.cells, self.ports, self.netnames, self._n = {}, {}, {}, 10

    def bit(self, name=None):
        self._n += 1
        if name:
            self.netnames[name] = {"bits": [self._n], "hide_name": 0}
        return self._n

    def port(self, name, direction, bit):
        self.ports[name] = {"direction": direction, "bits": [bit]}

    def cell(self, name, typ, ins, outs, params=None):
        conns = {**{k: v if isinstance(v, list) else [v] for k, v in ins.items()},
                 **{k: v if isinstance(v, list) else [v] for k, v in outs.items()}}
        dirs = {**{k: "input" for k in ins}, **{k: "output" for k in outs}}
        self.cells[name] = {"type": typ, "parameters": params or {}, "connections": conns,
                            "port_directions": dirs}

    def ff(self, name, d, q, clk):
        self.cell(name, "FDRE", {"C": clk, "CE": "1", "R": "0", "D": d}, {"Q": q})

    def json(self):
        return {"modules": {"t": {"attributes": {"top": "00000000000000000000000000000001"},
                                  "ports": self.ports, "cells": self.cells,
                                  "netnames": self.netnames}}}


def _lut_chain(n_luts):
    nl = Net()
    clk = nl.bit("clk")
    nl.port("clk", "input", clk)
    q0 = nl.bit("q0")
    prev = q0
    for i in range(n_luts):
        o = nl.bit(f"l{i}")
        nl.cell(f"lut{i}", "LUT2", {"I0": prev, "I1": q0 if i else "0"}, {"O": o})
        prev = o
    q1 = nl.bit("q1")
    nl.ff("ff0", q1, q0, clk)            # q1 -> ff0 -> q0 (a loop through registers)
    nl.ff("ff1", prev, q1, clk)
    return nl


def test_lut_chain_between_two_ffs_has_the_hand_computed_delay():
    rep = analyze(_lut_chain(3).json())
    # ff0.Q fans out to lut0.I0, lut1.I1, lut2.I1 (3 sinks), then two fanout-1 nets
    want = (D["ff_cko"] + net_delay(3) + 3 * D["lut"] + 2 * net_delay(1) + net_delay(1)
            + D["ff_setup"])
    assert rep.worst_ns == pytest.approx(want, abs=1e-3)
    assert rep.fmax_mhz == pytest.approx(1000 / want, rel=1e-3)
    assert rep.groups == {"reg2reg": pytest.approx(want, abs=1e-3)}
    (p, *_rest) = rep.paths
    assert p.group == "reg2reg" and p.cells == 3 and "q0" in p.start and "q1" in p.end
    assert p.logic + p.route == pytest.approx(p.delay, abs=1e-3)
    assert [s.kind for s in p.steps] == ["start"] + ["net", "cell"] * 3 + ["net", "end"]
    assert rep.loops == 0 and not rep.unknown_cells
    text = format_timing(rep)
    assert "estimated fmax" in text and "BELOW" not in text and "q0" in text


def test_longer_chain_is_slower_and_net_delay_grows_with_fanout():
    assert analyze(_lut_chain(6).json()).worst_ns > analyze(_lut_chain(3).json()).worst_ns
    assert net_delay(1) == pytest.approx(D["net_base"] + D["net_fanout"])
    assert net_delay(1) < net_delay(30) < net_delay(300) < net_delay(3000)
    # the documented anchor points
    assert 0.3 <= net_delay(1) <= 0.5 and 1.0 <= net_delay(300) <= 1.5
    assert 2.3 <= net_delay(3000) <= 3.0


def test_high_fanout_net_is_reported_and_slows_the_path():
    nl = Net()
    clk = nl.bit("clk")
    src = nl.bit("ctrl")
    nl.ff("drv", nl.bit("dd"), src, clk)
    for i in range(400):
        nl.ff(f"load{i}", src, nl.bit(f"o{i}"), clk)
    rep = analyze(nl.json(), n_fanout=3)
    assert rep.fanout[0][0] == "ctrl" and rep.fanout[0][1] == 400
    assert rep.worst_ns == pytest.approx(D["ff_cko"] + net_delay(400) + D["ff_setup"],
                                         abs=1e-3)


def _dsp_netlist(**regs):
    nl = Net()
    clk = nl.bit("clk")
    a = [nl.bit(f"a{i}") for i in range(4)]
    b = [nl.bit(f"b{i}") for i in range(4)]
    p = [nl.bit(f"p{i}") for i in range(4)]
    for i in range(4):
        nl.ff(f"fa{i}", nl.bit(), a[i], clk)
        nl.ff(f"fb{i}", nl.bit(), b[i], clk)
        nl.ff(f"fp{i}", p[i], nl.bit(), clk)
    params = {"AREG": 0, "BREG": 0, "CREG": 0, "DREG": 0, "ADREG": 0, "MREG": 0, "PREG": 0,
              "INMODEREG": 0, "OPMODEREG": 0, "ALUMODEREG": 0, "CARRYINREG": 0,
              "AMULTSEL": "A", "BMULTSEL": "B", "USE_MULT": "MULTIPLY"}
    params.update(regs)
    # yosys writes integer parameters as 32-bit binary strings
    params = {k: (format(v, "032b") if isinstance(v, int) else v) for k, v in params.items()}
    nl.cell("dsp", "DSP48E2", {"CLK": clk, "A": a + ["0"] * 26, "B": b + ["0"] * 14,
                               "C": ["0"] * 48, "OPMODE": ["1", "0", "1"] + ["0"] * 6},
            {"P": p + [nl.bit() for _ in range(44)]}, params)
    return nl.json()


def test_combinational_dsp48e2_is_one_long_arc():
    rep = analyze(_dsp_netlist())
    want = (D["ff_cko"] + net_delay(1) + D["dsp_in"] + D["dsp_mult"] + D["dsp_alu"]
            + D["dsp_out"] + net_delay(1) + D["ff_setup"])
    assert rep.worst_ns == pytest.approx(want, abs=1e-3)
    assert any("multiplier" in s.what for s in rep.paths[0].steps)


def test_dsp48e2_mreg_cuts_the_path():
    rep = analyze(_dsp_netlist(MREG=1))
    into_m = D["ff_cko"] + net_delay(1) + D["dsp_in"] + D["dsp_mult"] + D["dsp_setup"]
    out_of_m = D["dsp_cko"] + D["dsp_alu"] + D["dsp_out"] + net_delay(1) + D["ff_setup"]
    assert rep.worst_ns == pytest.approx(max(into_m, out_of_m), abs=1e-3)
    # fully registered (AREG/BREG, MREG, PREG): the multiplier stage is internal
    full = analyze(_dsp_netlist(AREG=1, BREG=1, MREG=1, PREG=1))
    assert full.worst_ns == pytest.approx(D["dsp_cko"] + D["dsp_mult"] + D["dsp_setup"],
                                          abs=1e-3)
    assert full.fmax_mhz > 600 > analyze(_dsp_netlist()).fmax_mhz
    # parameter values are read from the cell, missing ones take the UG579 default (1)
    dflt = _dsp_netlist()
    for k in ("AREG", "BREG", "MREG", "PREG"):
        del dflt["modules"]["t"]["cells"]["dsp"]["parameters"][k]
    assert analyze(dflt).worst_ns == pytest.approx(full.worst_ns, abs=1e-3)


def test_carry_chain_uses_dedicated_routing_and_ports_are_timed():
    nl = Net()
    clk = nl.bit("clk")
    x = nl.bit("x")
    nl.port("x", "input", x)
    co = [nl.bit() for _ in range(4)]
    co2 = [nl.bit() for _ in range(4)]
    s_out = [nl.bit() for _ in range(4)]
    nl.cell("c0", "CARRY4", {"CI": "0", "CYINIT": "0", "DI": ["0"] * 4, "S": [x] + ["0"] * 3},
            {"CO": co, "O": [nl.bit() for _ in range(4)]})
    nl.cell("c1", "CARRY4", {"CI": co[3], "CYINIT": "0", "DI": ["0"] * 4, "S": ["0"] * 4},
            {"CO": co2, "O": s_out})
    y = nl.bit("y")
    nl.ff("f", s_out[3], y, clk)
    nl.port("y", "output", y)
    rep = analyze(nl.json())
    in2reg = (D["ff_cko"] + net_delay(1) + D["carry_in"] + 3 * D["carry_ci_co"] / 4 + 0.0
              + D["carry_ci_o"] + net_delay(1) + D["ff_setup"])
    assert rep.groups["in2reg"] == pytest.approx(in2reg, abs=1e-3)
    assert rep.groups["reg2out"] == pytest.approx(D["ff_cko"] + net_delay(1) + D["ff_setup"],
                                                  abs=1e-3)
    assert set(rep.groups) == {"in2reg", "reg2out"}


def test_combinational_loop_is_counted_not_hung_and_report_round_trips():
    nl = Net()
    a, b = nl.bit("a"), nl.bit("b")
    nl.cell("l0", "LUT1", {"I0": b}, {"O": a})
    nl.cell("l1", "LUT1", {"I0": a}, {"O": b})
    nl.cell("odd", "FOO", {"I": a}, {"Z": nl.bit()})
    rep = analyze(nl.json())
    assert rep.loops > 0 and rep.unknown_cells == ["FOO"]
    rep2 = analyze(_lut_chain(2).json())
    again = TimingReport.from_dict(rep2.as_dict())
    assert again.paths[0].steps == rep2.paths[0].steps and again.fmax_mhz == rep2.fmax_mhz


@needs_yosys
def test_hw_report_prints_the_timing_estimate(tmp_path, monkeypatch):
    from plait.rtl.report import hw_report, hw_report_data
    monkeypatch.setenv("PLAIT_CACHE", str(tmp_path / "cache"))
    text = hw_report("skid_buffer", ["width=8"])
    assert "timing estimate (UltraScale+ -2" in text and "estimated fmax" in text
    assert "highest-fanout nets" in text and "reg2reg" in text
    d = hw_report_data("skid_buffer", ["width=8"])
    rep = TimingReport.from_dict(d["timing"])
    assert rep.fmax_mhz > DEFAULT_TARGET_MHZ and rep.cached       # the second call: cached
    assert hw_report_data("skid_buffer", ["width=8"], timing=False)["timing"] is None
    assert "timing estimate" not in hw_report("skid_buffer", ["width=8"], timing=False)


# ---------------------------------------------------------------- the engines
#: estimated fmax floor per unit and config (MHz): every unit meets the 300 MHz target
#: (DEFAULT_TARGET_MHZ; FlightLLM closed at 225 MHz).
FMAX_FLOOR = {
    ("dsp_chain", "modes=dense,2:4,2:16,4:16,8:16"): DEFAULT_TARGET_MHZ,
    ("dsp_chain", "modes=dense"): DEFAULT_TARGET_MHZ,
    ("dsp_chain", "modes=2:4"): DEFAULT_TARGET_MHZ,
    # 64 slices: 286.4 MHz before the accumulator controls took a registered one-hot
    # level (cur_mode -> level decode -> index adder -> shifter -> 64 replicas)
    ("dsp_chain", "n_dsp=64"): DEFAULT_TARGET_MHZ,
    # before pipelining 87.6 MHz (one-stage dequantizer with two combinational DSP48E2
    # multiplies and a 48-bit add; control nets of 6147 / 3957 / 2563 loads)
    ("lut_core", "max_bits=4"): DEFAULT_TARGET_MHZ,
    # W2 and W1 builds on the small tile (tests/test_rtl_lut_core.py's SMALL, whose W1
    # synthesis the resource test shares): their narrower datapaths; the control fanout
    # of a full tile is checked at max_bits 4 (the default tile the LUT-per-MAC ceiling
    # test synthesizes).  A full W2 or W1 tile costs another 80-90 s of yosys in CI.
    ("lut_core", "m=1;n=8;dq_lanes=2;max_group=32;max_bits=2"): DEFAULT_TARGET_MHZ,
    ("lut_core", "m=1;n=8;dq_lanes=2;max_group=32;max_bits=1"): DEFAULT_TARGET_MHZ,
}


@needs_yosys
@pytest.mark.slow
@pytest.mark.parametrize("unit, override", list(FMAX_FLOOR), ids=[
    f"{u}-{o}" for u, o in FMAX_FLOOR])
def test_unit_estimated_fmax_meets_its_floor(unit, override):
    from plait.rtl.timing import unit_timing
    from plait.rtl.units import get_unit
    cfg = get_unit(unit).config_cls.from_overrides(override.split(";"))
    res, rep = unit_timing(unit, cfg)
    print(f"\n{unit} {override}: LUT {res.lut} FF {res.ff} DSP {res.dsp}\n"
          + format_timing(rep, detail=1))
    assert rep.loops == 0 and not rep.unknown_cells
    assert rep.fmax_mhz >= FMAX_FLOOR[(unit, override)], format_timing(rep, detail=1)
