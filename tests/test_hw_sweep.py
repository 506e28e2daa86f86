"""``plait hw sweep``: grid parsing, the Pareto front and the target pick, the CLI's
output and its bad-input errors (plait.rtl.sweep).

Almost everything here runs without yosys: the front and the cheapest-config logic on
hand-built rows, the grid on the config classes, and the CLI with a stand-in for the
per-config measurement (``measure_config``, which would synthesize), so a bad request is
also shown to stop before anything is synthesized.  One end-to-end test (slow) sweeps two
DSP chain configs that tests/test_timing.py synthesizes too (shared synthesis cache).
"""
from __future__ import annotations

import contextlib
import io
import json

import pytest

from plait.cli import main
from plait.rtl import sweep as hs
from plait.rtl.dsp_chain import DspChainConfig
from plait.rtl.lut_core import LutCoreConfig


def run(argv) -> tuple[int, str, str]:
    """``main(argv)`` -> (exit status, stdout, stderr); argparse's exits count as status."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code
    return rc, out.getvalue(), err.getvalue()


def row(index, gmacs, cost, cost_sum=None, **kw):
    """A hand-built sweep row: what pareto_front / cheapest_meeting read."""
    return {"index": index, "gmacs": gmacs, "cost": cost,
            "cost_sum": cost if cost_sum is None else cost_sum, **kw}


# ------------------------------------------------------------ front and target
def test_pareto_front_two_objectives():
    rows = [row(1, 10.0, 0.10), row(2, 20.0, 0.20), row(3, 15.0, 0.25),   # 3: dominated by 2
            row(4, 20.0, 0.30), row(5, 40.0, 0.40), row(6, 5.0, 0.10)]    # 4 by 2, 6 by 1
    assert hs.pareto_front(rows) == [True, True, False, False, True, False]


def test_pareto_front_ties_and_tie_break_on_the_sum_of_shares():
    # equal binding share: the one with less other logic (smaller sum) is cheaper, so a
    # slower but leaner config stays on the front; an exact duplicate dominates nothing
    rows = [row(1, 10.0, 0.2, 0.30), row(2, 12.0, 0.2, 0.35), row(3, 9.0, 0.2, 0.40),
            row(4, 12.0, 0.2, 0.35)]
    assert hs.pareto_front(rows) == [True, True, False, True]
    assert hs.pareto_front([row(1, 1.0, 0.1)]) == [True]


def test_cheapest_meeting_target():
    rows = [row(1, 10.0, 0.10), row(2, 20.0, 0.20), row(3, 25.0, 0.20, 0.25),
            row(4, 25.0, 0.20, 0.25), row(5, 40.0, 0.40)]
    assert hs.cheapest_meeting(rows, 5.0)["index"] == 1
    assert hs.cheapest_meeting(rows, 10.0)["index"] == 1           # "at least" X
    assert hs.cheapest_meeting(rows, 15.0)["index"] == 2           # sum 0.20 < 0.25
    assert hs.cheapest_meeting(rows, 22.0)["index"] == 3           # equal: the earlier
    assert hs.cheapest_meeting(rows, 40.0)["index"] == 5
    assert hs.cheapest_meeting(rows, 40.1) is None
    # the pick is always on the front
    front = {r["index"] for r, on in zip(rows, hs.pareto_front(rows)) if on}
    for x in (1, 11, 21, 30):
        assert hs.cheapest_meeting(rows, x)["index"] in front


def test_device_shares_and_binding_resource():
    from plait.ir.target import get_target
    u280 = get_target("u280")
    s = hs.device_shares({"LUT": 1304, "FF": 0, "DSP48E2": 90, "BRAM": 2016, "URAM": 0}, u280)
    assert s["LUT"] == pytest.approx(0.001) and s["BRAM"] == 1.0
    assert s["DSP48E2"] == pytest.approx(90 / 9024) and s["FF"] == 0.0
    assert max(s, key=s.get) == "BRAM"


# ------------------------------------------------------------------ the grid
def test_parse_grid_types_separators_and_order():
    g = hs.parse_grid(DspChainConfig, ["N_DSP=16,32;64", "cascade=1", "modes=dense;dense,2:4"])
    assert g == {"n_dsp": [16, 32, 64], "cascade": [1], "modes": ["dense", "dense,2:4"]}
    assert list(g) == ["n_dsp", "cascade", "modes"]
    g = hs.parse_grid(LutCoreConfig, ["n=0x10, 32"])
    assert g == {"n": [16, 32]}


@pytest.mark.parametrize("items, words", [
    ([], "at least one"),
    (["n_dsp"], "not KEY=V1,V2"),
    (["nope=1,2"], "no field 'nope'"),
    (["n_dsp=16,x"], "cannot parse 'x' as int"),
    (["n_dsp="], "empty value"),
    (["n_dsp=16,,32"], "empty value"),
    (["modes=dense;"], "separated by ';'"),
    (["n_dsp=16", "N_DSP=32"], "given twice"),
    (["n_dsp=16,16"], "'16' is given twice"),
])
def test_parse_grid_errors(items, words):
    with pytest.raises(hs.HwSweepError) as e:
        hs.parse_grid(DspChainConfig, items)
    assert words in str(e.value)


def test_expand_grid_skips_invalid_combinations_with_their_reason():
    grid = hs.parse_grid(DspChainConfig, ["cascade=1,2,4", "modes=dense;dense,2:4"])
    configs, skipped = hs.expand_grid(DspChainConfig, grid)
    assert [c["label"] for c in configs] == [
        "cascade=1 modes=dense", "cascade=1 modes=dense,2:4", "cascade=2 modes=dense",
        "cascade=2 modes=dense,2:4", "cascade=4 modes=dense"]
    assert [c["index"] for c in configs] == [1, 2, 3, 4, 5]
    (s,) = skipped
    assert s["index"] == 6 and s["label"] == "cascade=4 modes=dense,2:4"
    assert "cascade=4" in s["reason"] and "2:4" in s["reason"]
    assert all(isinstance(c["config"], DspChainConfig) for c in configs)


def test_expand_grid_fixed_overrides_duplicates_and_limits():
    configs, _ = hs.expand_grid(DspChainConfig, {"n_dsp": [16, 32]}, {"acc_w": 40})
    assert [c["config"].acc_w for c in configs] == [40, 40]
    with pytest.raises(hs.HwSweepError, match="both set n_dsp"):
        hs.expand_grid(DspChainConfig, {"n_dsp": [16]}, {"n_dsp": 32})
    with pytest.raises(hs.HwSweepError, match="no valid config"):
        hs.expand_grid(DspChainConfig, {"n_dsp": [17, 33]})
    with pytest.raises(hs.HwSweepError, match="more than"):
        hs.expand_grid(LutCoreConfig, {"n": list(range(1, 17)), "m": list(range(1, 17)),
                                       "max_bits": [1, 2]})


# ------------------------------------------------------- the CLI, no synthesis
def fake_measure(unit, cfg, *, family="xcup"):
    """A stand-in for measure_config: resources and fmax made up from the config
    (more slices: more of everything; a longer cascade: fewer LUTs, lower fmax)."""
    macs = cfg.macs_per_cycle()
    fmax = 360.0 - 20 * cfg.cascade
    lut = 40 * cfg.n_dsp // cfg.cascade + 100
    return {"LUT": lut, "FF": 60 * cfg.n_dsp, "CARRY": 0, "DSP48E2": cfg.n_dsp, "BRAM": 0.0,
            "URAM": 0, "LUTRAM": 0, "fmax_mhz": fmax, "fmax_reg2reg_mhz": fmax,
            "meets_clock": True, "clock_mhz": 300.0, "macs_per_cycle": macs,
            "gmacs": macs * fmax / 1000, "mode_macs_per_cycle": hs.mode_rates(cfg),
            "best_mode": "2:4", "best_mode_gmacs": 2 * macs * fmax / 1000,
            "lut_per_mac": lut / macs, "ff_per_mac": 60 * cfg.n_dsp / macs,
            "cached": True, "seconds": 0.0, "synth_seconds": 0.0}


@pytest.fixture
def no_synthesis(monkeypatch):
    """measure_config replaced by fake_measure, and yosys not looked for."""
    calls = []

    def measure(unit, cfg, *, family="xcup"):
        calls.append(cfg)
        return fake_measure(unit, cfg, family=family)
    monkeypatch.setattr(hs, "measure_config", measure)
    monkeypatch.setattr("plait.rtl.synth.find_yosys", lambda: None)
    return calls


GRID = ["dsp_chain", "--grid", "n_dsp=16,32,64", "--grid", "cascade=1,2,4",
        "--grid", "modes=dense;dense,2:4"]


def test_cli_table_front_target_and_plot(no_synthesis, tmp_path):
    png = tmp_path / "front.png"
    rc, out, err = run(["hw", "sweep", *GRID, "--target-gmacs", "20", "--plot", str(png)])
    assert rc == 0, err
    assert len(no_synthesis) == 15                  # 18 combinations, 3 skipped
    assert "LUT/base" in out and "GMAC/base" in out and "front" in out
    assert out.count("skipped #") == 3 and "cascade=4 modes=dense,2:4" in out
    assert "Pareto front (throughput up, cost down): #" in out
    # 20 GMAC/s needs 64 MACs/clock at >= 312.5 MHz: n_dsp=32, cascade 1 or 2 (fake fmax
    # 340/320); both take 32 DSPs, cascade=2 fewer LUTs -> cheaper; #9 and #10 (modes)
    # measure the same -> the earlier
    assert "cheapest config meeting 20 GMAC/s: #9 n_dsp=32 cascade=2 modes=dense (" in out
    assert "[15/15]" in err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_json_only_and_target_not_met(no_synthesis):
    rc, out, err = run(["hw", "sweep", *GRID, "--target-gmacs", "1000", "--json"])
    assert rc == 0, err
    doc = json.loads(out)                           # stdout holds the JSON only
    assert doc["cheapest"] is None and doc["target_gmacs"] == 1000
    rows = {r["index"]: r for r in doc["rows"]}
    assert doc["baseline"] == 1 and rows[1]["vs_base"]["gmacs"] == 1.0
    assert rows[doc["fastest"]]["label"] == "n_dsp=64 cascade=1 modes=dense"
    assert set(doc["front"]) == {i for i, r in rows.items() if r["on_front"]}
    assert all(r["binding"] == "DSP48E2" for r in rows.values())
    assert [s["index"] for s in doc["skipped"]] == [6, 12, 18]
    r = rows[2]                                      # n_dsp=16 cascade=1 modes=dense,2:4
    assert r["mode_macs_per_cycle"] == {"dense": 32, "2:4": 64}
    assert r["config"]["modes"] == "dense,2:4"
    rc, out, _ = run(["hw", "sweep", *GRID, "--target-gmacs", "1000"])
    assert "no config meets 1000 GMAC/s; the fastest is #13 n_dsp=64 cascade=1" in out


def test_cli_synthesis_failure_is_listed_and_exit_1(monkeypatch):
    from plait.rtl.synth import SynthesisFailed

    def measure(unit, cfg, *, family="xcup"):
        if cfg.cascade == 2:
            raise SynthesisFailed("yosys failed on dsp_chain (exit 1): ERROR: boom\n--- log ---")
        return fake_measure(unit, cfg)
    monkeypatch.setattr(hs, "measure_config", measure)
    monkeypatch.setattr("plait.rtl.synth.find_yosys", lambda: None)
    rc, out, err = run(["hw", "sweep", "dsp_chain", "--grid", "cascade=1,2"])
    assert rc == 1
    assert "FAILED #2 cascade=2: yosys failed on dsp_chain (exit 1): ERROR: boom" in out
    assert "Traceback" not in err


BAD = [
    (["dsp_chain"], "give at least one"),
    (["dsp_chain", "--grid", "wat=1,2"], "no field 'wat'"),
    (["dsp_chain", "--grid", "n_dsp=16,sixteen"], "cannot parse 'sixteen' as int"),
    (["dsp_chain", "--grid", "n_dsp="], "empty value"),
    (["dsp_chain", "--grid", "n_dsp=17,33"], "no valid config"),
    (["dsp_chain", "--grid", "n_dsp=16", "--grid", "n_dsp=32"], "given twice"),
    (["dsp_chain", "--grid", "n_dsp=16", "--config", "n_dsp=32"], "both set n_dsp"),
    (["dsp_chain", "--grid", "n_dsp=16", "--config", "acc_w=wide"], "--config"),
    (["dsp_chain", "--grid", "n_dsp=16", "--target-gmacs", "-3"], "--target-gmacs"),
    (["dsp_chain", "--grid", "n_dsp=16", "--target-gmacs", "fast"], "--target-gmacs"),
    (["dsp_chain", "--grid", "n_dsp=16", "--target", "vu19p"], "unknown target 'vu19p'"),
    (["dsp_chain", "--grid", "n_dsp=16", "--plot", "front.svg"], "expected a .png"),
    (["dsp_chain", "--grid", "n_dsp=16", "--plot", "/no/such/dir/f.png"], "does not exist"),
    (["no_such_unit", "--grid", "n=1"], "unknown hardware unit 'no_such_unit'"),
]


@pytest.mark.parametrize("argv, words", BAD, ids=[" ".join(a[1:]) or "no-grid" for a, _ in BAD])
def test_bad_input_is_one_line_exit_2_before_any_synthesis(monkeypatch, argv, words):
    def measure(*a, **k):
        raise AssertionError("synthesis started on bad input")
    monkeypatch.setattr(hs, "measure_config", measure)
    rc, out, err = run(["hw", "sweep", *argv])
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("plait: error: hw sweep"), err
    assert words in lines[0] and "Traceback" not in err and out == ""


def test_missing_yosys_is_one_line_exit_2(monkeypatch, tmp_path):
    monkeypatch.setenv("PLAIT_YOSYS", str(tmp_path / "no-yosys"))
    monkeypatch.setenv("PLAIT_CACHE", str(tmp_path / "cache"))
    rc, out, err = run(["hw", "sweep", "dsp_chain", "--grid", "cascade=1,2"])
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "yosys unavailable" in lines[0] and "apt-get install yosys" in lines[0]


def test_plot_without_matplotlib_names_the_extra(monkeypatch, tmp_path):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    rc, _, err = run(["hw", "sweep", "dsp_chain", "--grid", "cascade=1,2",
                      "--plot", str(tmp_path / "f.png")])
    assert rc == 2 and "matplotlib" in err and ".[sweep]" in err


# ------------------------------------------------------------- end to end
@pytest.mark.slow
def test_sweep_two_dsp_chain_configs_end_to_end(tmp_path):
    """Real yosys + timing on two configs test_timing.py synthesizes too (modes=dense,
    modes=2:4 of the default 16-slice chain): cached there, nearly free here."""
    from plait.rtl.synth import ToolMissing, find_yosys
    try:
        find_yosys()
    except ToolMissing as e:
        pytest.skip(str(e))
    png = tmp_path / "dsp.png"
    argv = ["hw", "sweep", "dsp_chain", "--grid", "modes=dense;2:4", "--target-gmacs", "5"]
    rc, out, err = run([*argv, "--plot", str(png), "--json"])
    assert rc == 0, err
    doc = json.loads(out)
    assert [r["label"] for r in doc["rows"]] == ["modes=dense", "modes=2:4"]
    for r in doc["rows"]:
        assert r["DSP48E2"] == 16 and r["macs_per_cycle"] == 32 and r["LUT"] > 0
        assert r["fmax_mhz"] > 100
        assert r["gmacs"] == pytest.approx(32 * r["fmax_mhz"] / 1000, rel=1e-3)
        assert r["binding"] == "DSP48E2"
    assert doc["rows"][1]["mode_macs_per_cycle"] == {"2:4": 64}
    assert doc["front"] and doc["cheapest"] in doc["front"]
    assert png.read_bytes()[:4] == b"\x89PNG"
    rc, out, err = run(argv)                        # the text table, from the cache
    assert rc == 0 and "cached" in err
    assert "cheapest config meeting 5 GMAC/s" in out and "modes=2:4" in out
