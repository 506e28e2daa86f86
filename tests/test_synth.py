"""yosys synthesis flow (plait.rtl.synth) and the hardware report (plait.rtl.report)."""
from __future__ import annotations

import argparse
import json
import shutil

import pytest

from plait.rtl.report import hw_report, hw_report_data, register_cli
from plait.rtl.synth import (Resources, SynthesisFailed, ToolMissing, _count_cascades,
                             classify_cells, find_yosys, synthesize, synthesize_unit)
from plait.rtl.units import SV_DIR, SkidBufferConfig

needs_yosys = pytest.mark.skipif(shutil.which("yosys") is None, reason="yosys not installed")


@pytest.fixture
def synth_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("PLAIT_YOSYS", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def no_yosys(tmp_path, monkeypatch):
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("PLAIT_YOSYS", raising=False)
    monkeypatch.setenv("PLAIT_CACHE", str(tmp_path / "cache"))


@needs_yosys
def test_mac_maps_to_dsp48e2_and_caches(synth_cache):
    mac = SV_DIR / "plait_mac.sv"
    r = synthesize("plait_mac", [mac], params={"A_W": 8, "B_W": 8, "ACC_W": 32})
    assert r.family == "xcup" and r.dsp >= 1 and r.cells["DSP48E2"] == r.dsp
    assert r.ff > 0 and r.lut > 0 and not r.cached
    assert r.table()["DSP48E2"] == r.dsp
    assert "Yosys 0.2" in r.yosys or r.yosys.startswith("Yosys")
    # second call: same inputs -> cached result, identical counts
    r2 = synthesize("plait_mac", [mac], params={"A_W": 8, "B_W": 8, "ACC_W": 32})
    assert r2.cached and r2.table() == r.table() and r2.cells == r.cells
    assert len(list((synth_cache / "synth").glob("plait_mac-*.json"))) == 1
    # a 30-bit operand needs more than one 27x18 multiplier
    wide = synthesize("plait_mac", [mac], params={"A_W": 30, "B_W": 20, "ACC_W": 48})
    assert wide.dsp > r.dsp


@needs_yosys
def test_unit_with_generated_package(synth_cache):
    r = synthesize_unit("skid_buffer", SkidBufferConfig(width=24))
    # two payload registers + two valid flags; no DSP/BRAM in a register slice
    assert r.ff == 2 * 24 + 2 and r.dsp == 0 and r.bram == 0
    r8 = synthesize_unit("skid_buffer", SkidBufferConfig(width=8))
    assert r8.ff == 2 * 8 + 2


@needs_yosys
def test_synthesis_error_is_reported(synth_cache, tmp_path):
    bad = tmp_path / "bad.sv"
    bad.write_text("module bad(input logic a, output logic o);\n  import nopkg::*;\n"
                   "  assign o = a;\nendmodule\n")
    with pytest.raises(SynthesisFailed, match=r"yosys failed on bad .*ERROR"):
        synthesize("bad", [bad])
    with pytest.raises(ValueError, match="unsupported family 'virtex2'"):
        synthesize("bad", [bad], family="virtex2")
    with pytest.raises(ValueError, match="W='x' must be an integer"):
        synthesize("bad", [bad], params={"W": "x"})
    with pytest.raises(FileNotFoundError, match="missing.sv"):
        synthesize("bad", [tmp_path / "missing.sv"])


def test_missing_yosys_raises_toolmissing(no_yosys, monkeypatch, tmp_path):
    with pytest.raises(ToolMissing, match=r"yosys not found on PATH.*apt-get install yosys"):
        find_yosys()
    with pytest.raises(ToolMissing, match="yosys not found"):
        synthesize("plait_mac", [SV_DIR / "plait_mac.sv"])
    monkeypatch.setenv("PLAIT_YOSYS", str(tmp_path / "nope"))
    with pytest.raises(ToolMissing, match="PLAIT_YOSYS=.*not an executable"):
        find_yosys()


def test_report_fallback_without_yosys(no_yosys):
    text = hw_report("skid_buffer", {"width": 10})
    assert "yosys unavailable" in text and "apt-get install yosys" in text
    assert "showing the analytical estimate only" in text
    est = SkidBufferConfig(width=10).estimate_resources()
    row = next(ln for ln in text.splitlines() if ln.strip().startswith("analytical estimate"))
    assert row.split()[2:4] == [str(est["LUT"]), str(est["FF"])]
    assert "yosys synth_xilinx" not in text
    d = hw_report_data("skid_buffer", ["width=10"])
    assert d["synth"] is None and d["estimate"] == est and d["macs_per_cycle"] == 0


@needs_yosys
def test_report_with_yosys(synth_cache):
    text = hw_report("skid_buffer", ["width=16"])
    row = next(ln for ln in text.splitlines() if ln.strip().startswith("yosys synth_xilinx"))
    cols = row.split()
    assert cols[0:3] == ["yosys", "synth_xilinx", "xcup"] and cols[4] == "34"   # FF
    assert "analytical estimate" in text and "cells:" in text


def test_cli_hw_report(no_yosys, capsys):
    p = argparse.ArgumentParser(prog="plait")
    sub = p.add_subparsers(dest="command", required=True)
    hw = sub.add_parser("hw")
    register_cli(hw.add_subparsers(dest="hw_command", required=True))
    args = p.parse_args(["hw", "report", "skid_buffer", "--config", "width=6", "--json"])
    assert args.fn(args) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["config"] == {"width": 6} and d["unit"] == "skid_buffer" and d["synth"] is None
    args = p.parse_args(["hw", "report", "skid_buffer", "--config", "wdth=6"])
    assert args.fn(args) == 2
    assert "unknown field 'wdth'" in capsys.readouterr().err
    args = p.parse_args(["hw", "report", "no_such_unit"])
    assert args.fn(args) == 2
    assert "unknown hardware unit 'no_such_unit'" in capsys.readouterr().err


def test_cell_classification_and_cascade_count():
    cells = {"LUT1": 1, "LUT6": 4, "INV": 2, "FDRE": 10, "FDSE": 1, "CARRY8": 3, "CARRY4": 1,
             "DSP48E2": 2, "RAMB18E2": 3, "RAMB36E2": 1, "RAM32M16": 2, "SRLC32E": 5,
             "MUXF7": 1, "BUFG": 1, "FOO": 9}
    c = classify_cells(cells)
    assert (c["LUT"], c["FF"], c["CARRY"], c["DSP48E2"], c["LUTRAM"], c["SRL"]) == \
        (7, 11, 4, 2, 2, 5)
    assert c["OTHER"] == 9 and c["IO"] == 1
    r = Resources.from_cells("t", "xcup", cells)
    assert r.bram == 2.5 and r.dsp == 2 and r.muxf == 1
    # two DSPs, the second one's PCIN driven by the first one's PCOUT (yosys JSON bits)
    net = {"modules": {"t": {"cells": {
        "d0": {"type": "DSP48E2", "connections": {"PCOUT": [10, 11], "PCIN": ["0", "0"]}},
        "d1": {"type": "DSP48E2", "connections": {"PCIN": [10, 11], "PCOUT": [20, 21],
                                                  "BCIN": [5]}},
        "l0": {"type": "LUT2", "connections": {"O": [5]}},
    }}}}
    assert _count_cascades(net) == {"PCIN": 1, "ACIN": 0, "BCIN": 0}
