"""HLS C++ engines (hls/src/plait_dsp_chain.h, plait_lut_core.h): g++ C simulation,
bit-exact against plait.ir.numerics for every engine mode, plus the generator, the
type layer, error flags and mutation checks.

Each build is compiled once (cached by a hash of its sources) and fed many cases.
"""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from plait.hls import csim as hc
from plait.hls.gen import ENGINES, HlsError, generate
from plait.ir.numerics import QuantizedWeight, parse_mode, signed_weight, wrap
from plait.rtl.dsp_chain import DspChainConfig
from plait.rtl.lut_core import LutCoreConfig

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")

DSP_CONFIGS = {
    "default": {},                                                        # n16 c2 S18, all modes
    "n32_c4": {"n_dsp": 32, "cascade": 4, "modes": "dense,4:16,8:16"},
    "c1_s16": {"cascade": 1, "lane_shift": 16},                           # DSP48E1-style lanes
    "c8": {"cascade": 8, "modes": "dense,8:16"},                          # widest lane window
}
LUT_CONFIGS = {
    "default": {},                                                        # 2 x 64, G<=256, W<=4
    "m3_n5_b3": {"m": 3, "n": 5, "max_group": 16, "max_bits": 3, "dq_lanes": 5},
    "m1_n16_b1": {"m": 1, "n": 16, "max_group": 64, "max_bits": 1, "dq_lanes": 4},
}


def _ok(res: hc.CsimResult) -> None:
    assert res.ok, res.summary() + "\n" + res.output[-2000:]
    assert res.cases == len(res.names) > 0


def _seeded(unit, cfg, seeds, **kw):
    cases = []
    for s in seeds:
        for c in hc.random_cases(unit, cfg, seed=s, **kw):
            c["name"] = f"s{s}_{c['name']}"
            cases.append(c)
    return cases


# --------------------------------------------------------------------------- config header

@pytest.mark.parametrize("cfg", [DspChainConfig(), LutCoreConfig(),
                                 DspChainConfig(n_dsp=32, cascade=4, modes="dense,8:16")])
def test_cpp_header_is_the_sv_package(cfg):
    """One config object: every SV package parameter is in the C++ header, same value."""
    sv = dict(re.findall(r"localparam int (\w+)\s*= (-?\d+);", cfg.sv_package()))
    cpp = dict(re.findall(r"static constexpr int (\w+)\s*= (-?\d+);", cfg.cpp_header()))
    assert sv and sv == cpp
    assert f"struct {cfg.pkg_name} {{" in cfg.cpp_header()
    assert cfg.key() in cfg.cpp_header()


def test_dsp_code_tables():
    from plait.ir.numerics.dsp import MODES, WBITS_CODE
    h = DspChainConfig().cpp_header()
    for name, (n, m, code) in MODES.items():
        assert f"i == {code} ? {n}" in h.split("MODE_N(int i)")[1].split("\n")[0]
        assert f"i == {code} ? {m}" in h.split("MODE_M(int i)")[1].split("\n")[0]
    for b, code in WBITS_CODE.items():
        assert f"i == {code} ? {b}" in h.split("WBITS_OF(int i)")[1].split("\n")[0]


# --------------------------------------------------------------------------- generator

@pytest.mark.parametrize("unit", sorted(ENGINES))
def test_generate_build(unit, tmp_path):
    b = generate(unit, None, tmp_path)
    cfg = b.config
    assert (tmp_path / f"{cfg.pkg_name}.h").read_text() == cfg.cpp_header()
    assert "#define PLAIT_K_MAX 8192" in (tmp_path / "plait_hls_build.h").read_text()
    tcl = b.tcl.read_text()
    for s in ("open_project", f"set top        \"{b.top}\"", "set_top $top", "add_files",
              "csim_design", "csynth_design", "xcu280-fsvh2892-2L-e", "3.33"):
        assert s in tcl, s
    assert "@" not in "".join(line for line in tcl.splitlines() if not line.startswith("#"))
    top = (tmp_path / b.sources[0]).read_text()
    assert "#pragma HLS INTERFACE m_axi" in top
    lib = (tmp_path / ENGINES[unit].headers[0]).read_text()
    for p in ("#pragma HLS DATAFLOW", "#pragma HLS PIPELINE II = 1", "ARRAY_PARTITION",
              "#pragma HLS INLINE"):
        assert p in lib, p
    # weights come in through memory ports, never as a whole on-chip matrix
    assert re.search(r"(CodeWord|PlaneWord)<C>\* (codes|planes)", lib)


def test_generate_errors(tmp_path):
    with pytest.raises(HlsError, match="unknown HLS engine"):
        generate("conv", None, tmp_path)
    with pytest.raises(HlsError, match="n_dsp"):
        generate("dsp_chain", ["n_dsp=20"], tmp_path)
    with pytest.raises(HlsError, match="unknown field"):
        generate("lut_core", ["foo=1"], tmp_path)
    with pytest.raises(HlsError, match="k_max"):
        generate("lut_core", None, tmp_path, k_max=10)


def test_no_vendor_headers_in_repo():
    from plait.hls.gen import SRC_DIR
    names = {p.name for p in SRC_DIR.iterdir()}
    assert not names & {"ap_int.h", "hls_stream.h", "ap_fixed.h"}
    t = (SRC_DIR / "plait_types.h").read_text()
    assert "#if defined(__SYNTHESIS__) || defined(PLAIT_USE_AP_TYPES)" in t


def test_gxx_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", "no-such-gxx-plait")
    b = generate("dsp_chain", None, tmp_path)
    with pytest.raises(HlsError, match="g\\+\\+"):
        hc.compile_tb(b)


# --------------------------------------------------------------------------- type layer

def _wrap_py(v: int, w: int) -> int:
    h = 1 << (w - 1)
    return (v + h) % (1 << w) - h


def test_portable_types_wrap_like_registers():
    """plait::sint<W> / uint<W> (g++ path) wrap on assignment like a W-bit register
    (numerics.common.wrap), including compound add and shift."""
    rng = np.random.default_rng(0)
    vals = [int(v) for v in rng.integers(-2 ** 62, 2 ** 62, 40)]
    vals += [0, 1, -1, 127, -128, 128, 255, 2 ** 47, -2 ** 47 - 1, 2 ** 62]
    cases = []
    for w in (1, 5, 8, 17, 48, 63, 64):
        sw = [_wrap_py(v, w) for v in vals]
        nxt = vals[1:] + vals[:1]
        cases.append({"name": f"w{w}", "ints": {"w": w}, "arrays": {
            "v": np.array(vals, np.int64),
            "sint_expected": np.array(sw, np.int64),
            "uint_expected": np.array([v % (1 << min(w, 63)) for v in vals], np.int64),
            "add_expected": np.array([_wrap_py(a + b, w) for a, b in zip(sw, nxt)], np.int64),
            "shl_expected": np.array([_wrap_py(a * 8, w) for a in sw], np.int64)}})
    # the reference agrees with the contract's register wrap
    assert [_wrap_py(v, 17) for v in vals[:40]] == wrap(np.array(vals[:40]), 17).tolist()
    _ok(hc.run_types_tb(cases))


# --------------------------------------------------------------------------- DSP chain

@pytest.mark.parametrize("name", sorted(DSP_CONFIGS))
def test_dsp_chain_every_mode_bit_exact(name):
    """Every mode x weight width 2/3/4/8 x two group sizes, partial tiles, extremes,
    several seeds: load beats == schedule_chain, accumulators == run_schedule, P ==
    linear_int."""
    cfg = DspChainConfig.from_overrides(DSP_CONFIGS[name])
    cases = _seeded("dsp_chain", cfg, (0, 1, 2) if name == "default" else (0,))
    res = hc.csim_cases("dsp_chain", cases, cfg)
    _ok(res)
    modes = {c["ints"]["mode"] for c in cases}
    assert len(modes) == len(cfg.mode_list())


def _dsp_qw(rng, q, group_size, scheme="sym", bits=8):
    codes = (q + (1 << (bits - 1))).astype(np.uint8)
    return QuantizedWeight(codes, rng.uniform(0.01, 0.1, (q.shape[0], q.shape[1] // group_size))
                           .astype(np.float32), None, bits, group_size, scheme)


def test_dsp_chain_extremes_and_recoded_schemes():
    """+127/-128 activations against -128/127 weights in every mode; asym / ternary / odd
    weights re-coded to the chain's widths by the pack (narrowest width)."""
    cfg = DspChainConfig()
    rng = np.random.default_rng(7)
    cases = []
    for mname in cfg.mode_list():
        md = parse_mode(mname)
        k, rows = 4 * md.m, 2 * (cfg.n_dsp // md.n) + 1
        for xa, wv in ((127, -128), (-128, -128), (-128, 127), (127, 127)):
            qw = hc.dsp_weight(rng, rows, k, md, 8, 2 * md.m)
            q = np.where(signed_weight(qw) != 0, wv, 0)
            x = np.full((2, k), xa, np.int8)
            x[1, ::3] = -xa - 1 if xa == 127 else 127
            cases.append(hc.dsp_case(cfg, x, _dsp_qw(rng, q, 2 * md.m), md, bits=8,
                                     name=f"{mname}_x{xa}_w{wv}"))
    for scheme, bits in (("asym", 4), ("ternary", 2), ("odd", 3), ("odd", 1), ("asym", 2)):
        qw = hc.lut_weight(rng, 19, 64, bits, scheme, 16)
        cases.append(hc.dsp_case(cfg, rng.integers(-128, 128, (2, 64)).astype(np.int8), qw,
                                 "dense", name=f"dense_{scheme}{bits}"))
    _ok(hc.csim_cases("dsp_chain", cases, cfg))


def test_dsp_chain_error_flags():
    """The hardware flags what the golden model refuses: a sparse index outside the
    block, a mode the build lacks, K beyond the activation buffer."""
    cfg = DspChainConfig(modes="dense,2:4")
    rng = np.random.default_rng(3)
    qw = hc.dsp_weight(rng, 16, 32, "2:4", 4, 8)
    good = hc.dsp_case(cfg, rng.integers(-128, 128, (2, 32)).astype(np.int8), qw, "2:4",
                       bits=4, name="good", schedule=False)
    bad_idx = {**good, "name": "bad_index", "ints": {**good["ints"], "err_expected": 2},
               "arrays": dict(good["arrays"])}
    idx = np.array(good["arrays"]["idx"], np.uint8).copy()
    idx[3, 1] = (idx[3, 1] & 0x0F) | 0x60          # slice 3 of beat 3 -> index 6 >= M=4
    bad_idx["arrays"]["idx"] = idx
    from plait.ir.numerics.dsp import MODES
    bad_mode = {**good, "name": "mode_not_built",
                "ints": {**good["ints"], "mode": MODES["4:16"][2], "err_expected": 1}}
    big_k = {**good, "name": "k_too_big",
             "ints": {**good["ints"], "k": 16384, "group_size": 16384, "err_expected": 1}}
    _ok(hc.csim_cases("dsp_chain", [good, bad_idx, bad_mode, big_k], cfg))


# --------------------------------------------------------------------------- LUT core

@pytest.mark.parametrize("name", sorted(LUT_CONFIGS))
def test_lut_core_every_format_bit_exact(name):
    """1..4 bits x odd/sym/asym + ternary, group sizes 4 / 32 / max, partial tiles, 1..M
    rows, extremes, several seeds: tables == lut_precompute, 16 lookups == lut_full_table,
    group integers == lut_trace.grp, P == lut_trace.p == linear_int."""
    cfg = LutCoreConfig.from_overrides(LUT_CONFIGS[name])
    cases = _seeded("lut_core", cfg, (0, 1) if name == "default" else (0, 1, 2))
    _ok(hc.csim_cases("lut_core", cases, cfg))
    fmts = {(c["ints"]["bits"], c["ints"]["offset"]) for c in cases}
    assert max(b for b, _ in fmts) == cfg.max_bits


def test_lut_core_error_flags():
    cfg = LutCoreConfig()
    rng = np.random.default_rng(5)
    qw = hc.lut_weight(rng, 70, 64, 4, "asym", 32)
    good = hc.lut_case(cfg, rng.integers(-128, 128, (2, 64)).astype(np.int8), qw,
                       name="good", trace=False)
    zp = np.array(good["arrays"]["zp"], np.int8)
    zp_big = zp.copy()
    zp_big[5, 1] = 20                                # outside 5 bits
    # an even z' (off the odd grid) makes A' - z' X odd when the group's activation sum
    # is odd (A' = sum q' x with odd q' has the parity of sum x)
    zp_even = zp.copy()
    zp_even[2, 0] = 2
    x_odd = np.array(good["arrays"]["x"]).copy()
    if x_odd[0, :32].astype(int).sum() % 2 == 0:
        x_odd[0, 0] = x_odd[0, 0] + 1 if x_odd[0, 0] < 127 else 126
    cases = [good,
             {**good, "name": "zp_outside", "ints": {**good["ints"], "err_expected": 2},
              "arrays": {**good["arrays"], "zp": zp_big}},
             {**good, "name": "zp_even", "ints": {**good["ints"], "err_expected": 4},
              "arrays": {**good["arrays"], "zp": zp_even, "x": x_odd}},
             {**good, "name": "bits_not_built", "ints": {**good["ints"], "bits": 5,
                                                         "err_expected": 1}},
             {**good, "name": "group_too_big", "ints": {**good["ints"], "group_size": 512,
                                                        "k": 512, "err_expected": 1}}]
    _ok(hc.csim_cases("lut_core", cases, cfg))


# --------------------------------------------------------------------------- negative tests

def test_wrong_expected_value_is_reported_with_its_index():
    cfg = DspChainConfig()
    rng = np.random.default_rng(11)
    qw = hc.dsp_weight(rng, 9, 64, "4:16", 8, 16)
    c = hc.dsp_case(cfg, rng.integers(-128, 128, (2, 64)).astype(np.int8), qw, "4:16",
                    name="tampered")
    p = np.array(c["arrays"]["p_expected"]).reshape(-1)
    true_val = int(p[7])
    p[7] += 1
    c["arrays"]["p_expected"] = p
    acc = np.array(c["arrays"]["acc_expected"]).reshape(-1).copy()
    clean = hc.dsp_case(cfg, c["arrays"]["x"], qw, "4:16", name="clean")
    res = hc.csim_cases("dsp_chain", [clean, c], cfg)
    assert not res.ok and res.failed == ["tampered"]
    assert res.mismatches == [hc.Mismatch("tampered", "top.p", 7, true_val, true_val + 1)]
    # the engine-level comparison reports its own index
    acc[4] -= 3
    c2 = {**clean, "name": "tampered_acc", "arrays": {**clean["arrays"], "acc_expected": acc}}
    res = hc.csim_cases("dsp_chain", [c2], cfg)
    m = res.mismatches[0]
    assert (m.array, m.index, m.got - m.expected) == ("engine.acc", 4, 3)


def _mutated_run(unit, cfg, cases, tmp_path, fname, old, new):
    b = generate(unit, cfg, tmp_path)
    path = b.path(fname)
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))
    return hc.run_csim(b, cases)


def test_mutations_in_the_cpp_are_caught(tmp_path):
    """A wrong sparse index (DSP chain) and a wrong lookup sign (LUT core) in the C++
    make the C simulation fail with a reported mismatch."""
    dcfg = DspChainConfig()
    rng = np.random.default_rng(1)
    dcases = [hc.dsp_case(dcfg, rng.integers(-128, 128, (2, 64)).astype(np.int8),
                          hc.dsp_weight(rng, 8, 64, "2:16", 4, 16), "2:16", bits=4, name="d")]
    res = _mutated_run("dsp_chain", dcfg, dcases, tmp_path / "d", "plait_dsp_chain.h",
                       "sel = int(int64_t(idx[i]));", "sel = int(int64_t(idx[i])) ^ 1;")
    assert not res.ok and res.mismatches and res.mismatches[0].case == "d"
    lcfg = LutCoreConfig()
    lcases = [hc.lut_case(lcfg, rng.integers(-128, 128, (2, 32)).astype(np.int8),
                          hc.lut_weight(rng, 64, 32, 2, "sym", 16), name="l")]
    res = _mutated_run("lut_core", lcfg, lcases, tmp_path / "l", "plait_lut_core.h",
                       "return top ? v : -v;", "return top ? v : v;")
    assert not res.ok and res.mismatches and res.mismatches[0].array in ("lookups", "tables")
    # the same mutation, seen only end to end (no trace vectors): the top's P differs
    lcases[0]["arrays"] = {k: v for k, v in lcases[0]["arrays"].items()
                           if k not in ("tables_expected", "full_expected", "grp_expected")}
    res = _mutated_run("lut_core", lcfg, lcases, tmp_path / "l2", "plait_lut_core.h",
                       "return top ? v : -v;", "return top ? v : v;")
    assert not res.ok and res.mismatches[0].array == "top.p"


# --------------------------------------------------------------------------- CLI

def test_cli_csim(capsys):
    import argparse
    from plait.hls.cli import register_cli
    p = argparse.ArgumentParser()
    register_cli(p.add_subparsers(dest="cmd"))
    a = p.parse_args(["csim", "dsp_chain", "--mode", "2:4", "8:16", "--seed", "4"])
    assert a.fn(a) == 0
    out = capsys.readouterr().out
    assert "bit-exact" in out and "vitis_hls -f" in out
    a = p.parse_args(["csim", "lut_core", "--config", "max_bits=2", "--mode", "w4-sym"])
    with pytest.raises(HlsError, match="max_bits"):
        a.fn(a)
    a = p.parse_args(["csim", "dsp_chain", "--mode", "3:16"])
    with pytest.raises(HlsError, match="3:16"):
        a.fn(a)


def test_pack_for_another_geometry_is_refused():
    """A pack made for a 32-slice chain / 16-column core does not run on the default
    builds: the testbench names the geometry field."""
    from plait.ir.numerics import linear_int
    from plait.ir.numerics.pack import pack_dsp, pack_lut
    rng = np.random.default_rng(2)
    qw = hc.dsp_weight(rng, 8, 32, "2:4", 8, 8)
    x = rng.integers(-128, 128, (2, 32)).astype(np.int8)
    c = hc.dsp_packed_case(x, pack_dsp(qw, "2:4", n_dsp=32, bits=8), linear_int(x, qw)[0],
                           name="n32_pack")
    res = hc.csim_cases("dsp_chain", [c], DspChainConfig())
    assert not res.ok and res.mismatches[0].array == "config.n_dsp"
    lw = hc.lut_weight(rng, 20, 32, 2, "sym", 16)
    c = hc.lut_packed_case(x, pack_lut(lw, n=16), linear_int(x, lw)[0], name="n16_pack")
    res = hc.csim_cases("lut_core", [c], LutCoreConfig())
    assert not res.ok and res.mismatches[0] == hc.Mismatch("n16_pack", "config.tile_n", 0, 64, 16)


@pytest.mark.parametrize("path", ["hls/gen.py", "hls/csim.py", "hls/cli.py", "hls/tables.py",
                                  "hls/sfu_tb.py", "hls/layer_tb.py"])
def test_layer_rule(path):
    """hls uses ir and rtl's unit configs only (DESIGN.md, Layers of the code); the tests'
    helper that compiles SmolLM2 (tests/hls_models.py) may use plait.passes and
    plait.frontend, the hls package itself never does."""
    import ast
    from pathlib import Path
    tree = ast.parse((Path(__file__).resolve().parents[1] / path).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and n.level == 0]
    plait = [n for n in names if n.startswith("plait")]
    assert all(n.startswith(("plait.ir", "plait.rtl")) for n in plait), plait


def test_smollm2_sized_linears():
    """A 576 -> 1536 linear (SmolLM2's gate/up shape) through each top, end to end from
    the packed weight: 2:4 int8 on the DSP chain, W4 sym (G=32) on the LUT core."""
    rng = np.random.default_rng(9)
    k, n = 576, 1536
    x = rng.integers(-128, 128, (2, k)).astype(np.int8)
    qd = hc.dsp_weight(rng, n, k, "2:4", 8, 64)
    res = hc.csim_cases("dsp_chain", [hc.dsp_case(DspChainConfig(), x, qd, "2:4", bits=8,
                                                  name="gate_2_4", schedule=False)])
    _ok(res)
    ql = hc.lut_weight(rng, n, k, 4, "sym", 32)
    res = hc.csim_cases("lut_core", [hc.lut_case(LutCoreConfig(), x, ql, name="gate_w4",
                                                 trace=False)])
    _ok(res)
