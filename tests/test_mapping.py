"""Hardware targets (plait.ir.target), the engines' cycle models, the map_engines pass
and the mapping table / roofline of `plait inspect`."""
import ast
import dataclasses
import json
import math
import textwrap
from pathlib import Path

import numpy as np
import pytest

from plait.ir import Graph, QuantSpec, SparsitySpec, TensorType, WeightStore, parse_graph, print_graph
from plait.ir.stats import engine_summary, format_summary, summarize
from plait.ir.target import (SIM16, U280, DspChainGeometry, LutCoreGeometry, Target,
                             TargetError, dsp_input_register, dsp_linear_cycles,
                             dsp_pipeline_depth, get_target, list_targets, lut_linear_cycles,
                             lut_tile_cycles, lut_tile_period)
from plait.ir.types import code_dtype
from plait.passes import PassError, PassManager, PassOptionError, make_pass, run_recipe
from plait.passes.mapping import ENGINE_ATTRS, map_engines
from plait.rtl.dsp_chain import DspChainConfig
from plait.rtl.lut_core import LutCoreConfig
from plait.tests.graphs import tiny_block

from plait.tests.graphs import llama

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers

def wtype(n, k, bits=None, scheme="sym", group=64, sparse=None):
    """A weight type: float when ``bits`` is None (and not ternary), else quantized."""
    sp = SparsitySpec(*sparse) if sparse else None
    if bits is None and scheme != "ternary":
        return TensorType((n, k), "f32", None, sp)
    b = 2 if scheme == "ternary" else bits
    q = QuantSpec(b, group, scheme, "s", "z" if scheme == "asym" else None)
    return TensorType((n, k), code_dtype(b, scheme), q, sp)


def graph_of(**types):
    """One linear per keyword (name -> weight type), each on its own input."""
    g = Graph("m")
    outs = []
    for name, t in types.items():
        k = t.shape[1]
        x = f"x{k}"
        if x not in g:
            g.add("input", name=x, type=TensorType((1, "S", k)))
        p = g.add("param", attrs={"weight": f"{name}.weight"}, type=t, name=f"{name}.weight")
        outs.append(g.add("linear", [x, p], name=name, origin=f"model.{name}"))
    g.outputs = outs
    return g


def mapped(target="u280", **types):
    g = graph_of(**types)
    map_engines(g, target)
    return {n.name: n.attrs for n in g.nodes("linear")}


def variant(base: Target, name: str, **kw) -> Target:
    return dataclasses.replace(base, name=name, **kw)


NO_LUT = variant(SIM16, "t_nolut", lut_core=None)
W2_LUT = variant(SIM16, "t_w2", lut_core=dataclasses.replace(SIM16.lut_core, max_bits=2))
NARROW_MODES = variant(SIM16, "t_24", dsp_chain=dataclasses.replace(SIM16.dsp_chain, modes=("dense", "2:4")))


# --------------------------------------------------------------------------- targets

def test_registry_and_unknown_target():
    assert {"u280", "sim16"} <= set(list_targets())
    assert get_target("u280") is U280 and get_target(U280) is U280
    with pytest.raises(TargetError, match=r"unknown target 'u250'; known targets: .*sim16.*u280"):
        get_target("u250")


def test_u280_numbers():
    t = U280
    assert (t.dsp, t.lut, t.ff, t.bram36, t.uram) == (9024, 1_304_000, 2_607_000, 2016, 960)
    assert (t.hbm_channels, t.hbm_gbps, t.clock_mhz) == (32, 460.0, 225.0)
    assert t.hbm_bytes_per_cycle == pytest.approx(460e9 / 225e6)
    assert t.dsp_chain.lane_shift == 18 and t.dsp_chain.dsp48 == 2048
    assert "DS963" in t.source and "FlightLLM" in t.source


def test_u280_engines_fit_the_device_with_room_for_the_rest():
    """The engine counts are sized with the RTL's resource models: DSP chains + LUT
    cores take at most 62% of LUTs (59%, the distributed RAM of the DSP chains' output
    FIFOs and of the LUT cores' P included; 56% before the chains enabled decode lane
    packing, 61% before the lane bias), 45% of FFs (22%; 37% while the LUT cores held P
    in flip-flops; 23% before the first slice of a cascade group lost its AD register)
    and 35% of DSPs (the rest is for the SFU, controller, HBM ports and
    buffers)."""
    dsp = DspChainConfig.from_target(U280).estimate_resources()
    lut = LutCoreConfig.from_target(U280).estimate_resources()
    used = {k: dsp[k] * U280.dsp_chain.count + lut[k] * U280.lut_core.count
            for k in ("LUT", "FF", "DSP48E2")}
    share = U280.utilisation(used)
    assert share["LUT"] <= 0.62 and share["FF"] <= 0.45 and share["DSP48E2"] <= 0.35, share
    # the docstring's table
    assert round(used["LUT"] / 1e3) == 767 and round(used["FF"] / 1e3) == 562 and used["DSP48E2"] == 2816


def test_sim16_is_the_default_rtl_geometry():
    assert DspChainConfig.from_target("sim16") == DspChainConfig()
    assert LutCoreConfig.from_target("sim16") == LutCoreConfig()
    c, l = DspChainConfig.from_target("u280"), LutCoreConfig.from_target("u280")
    assert (c.n_dsp, c.cascade, c.mode_list()) == (512, 2, ["dense", "2:4", "2:16", "4:16", "8:16", "pair"])
    assert (l.m, l.n, l.dq_lanes, l.max_group, l.max_bits) == (2, 128, 8, 256, 4)
    assert DspChainConfig.from_target("u280", acc_w=40).acc_w == 40
    with pytest.raises(ValueError, match="target 't_nolut' has no LUT core"):
        LutCoreConfig.from_target(NO_LUT)


@pytest.mark.parametrize("change, field", [
    (dict(clock_mhz=0), "clock_mhz"),
    (dict(hbm_gbps=-1.0), "hbm_gbps"),
    (dict(dsp=0), "dsp must be a positive int"),
    (dict(uram=-1), "uram must be a non-negative int"),
    (dict(sfu_lanes=0), "sfu_lanes"),
    (dict(dsp_chain=DspChainGeometry(n_dsp=24)), "dsp_chain.n_dsp must be a positive multiple of 16"),
    (dict(dsp_chain=DspChainGeometry(cascade=3)), "dsp_chain.cascade must be a power of two"),
    (dict(dsp_chain=DspChainGeometry(cascade=16, n_dsp=16)), "dsp_chain.lane_shift"),
    (dict(dsp_chain=DspChainGeometry(modes=("dense", "3:8"))), "dsp_chain.modes"),
    (dict(dsp_chain=DspChainGeometry(cascade=4, lane_shift=18)), "dsp_chain.modes mode 2:4 needs"),
    (dict(dsp_chain=DspChainGeometry(count=0)), "dsp_chain.count must be >= 1"),
    (dict(dsp_chain=DspChainGeometry(n_dsp=4096, count=4)), "dsp_chain.count 4 chains x 4096"),
    (dict(lut_core=LutCoreGeometry(dq_lanes=7)), "lut_core.dq_lanes must divide n=64"),
    (dict(lut_core=LutCoreGeometry(max_bits=8)), "lut_core.max_bits"),
    (dict(lut_core=LutCoreGeometry(max_group=6)), "lut_core.max_group"),
    (dict(lut_core=LutCoreGeometry(m=0)), "lut_core.m must be in"),
    (dict(lut_core=LutCoreGeometry(count=0)), "lut_core.count"),
])
def test_target_validation_names_the_field(change, field):
    with pytest.raises(TargetError, match="target 'x': " + field.replace(".", r"\.").replace("(", r"\(")):
        variant(SIM16, "x", **change)


def test_target_validation_lists_every_bad_field_and_the_name():
    with pytest.raises(TargetError, match=r"clock_mhz .* \(and 1 more: lut_core\.n\)"):
        variant(SIM16, "x", clock_mhz=-5, lut_core=LutCoreGeometry(n=0, dq_lanes=1))
    with pytest.raises(TargetError, match="target name"):
        variant(SIM16, "no spaces")


# --------------------------------------------------------------------------- cycle models

def _old_dsp(cfg, k, mode_n, mode_m):
    """The bodies of DspChainConfig.latency / rows / cycles_per_tile before the move
    (latency less the reduction node's register, which the lane bias removed, and less
    the AD register of a cascade group's first slice)."""
    level = max(0, (mode_n // cfg.cascade - 1).bit_length())
    return 3 + cfg.cascade + level, cfg.n_dsp // mode_n, k // mode_m


def _old_tile_cycles(cfg, bits, k, group):
    steps = cfg.n // cfg.dq_lanes
    per_group = max(bits * group // 4, steps)
    # + LUT_PIPE, + the output's steps - 1 further beats (P streamed from its LUTRAM)
    return 1 + bits * group // 4 + (k // group - 1) * per_group + steps + 5 + steps - 1


@pytest.mark.parametrize("n_dsp,cascade,lane_shift", [(16, 2, 18), (32, 1, 18), (64, 4, 18),
                                                       (16, 8, 18), (48, 2, 16)])
def test_dsp_cycle_models_equal_the_old_rtl_methods(n_dsp, cascade, lane_shift):
    modes = [m for m, n in (("dense", 16), ("2:4", 2), ("2:16", 2), ("4:16", 4), ("8:16", 8))
             if n % cascade == 0]
    cfg = DspChainConfig(n_dsp=n_dsp, cascade=cascade, lane_shift=lane_shift, modes=",".join(modes))
    nm = {"dense": (16, 16), "2:4": (2, 4), "2:16": (2, 16), "4:16": (4, 16), "8:16": (8, 16)}
    for m in modes:
        for k in (16, 64, 576, 4096):
            assert (cfg.latency(m), cfg.rows(m), cfg.cycles_per_tile(k, m)) == _old_dsp(cfg, k, *nm[m])
    assert DspChainConfig(cascade=8, modes="dense,8:16").latency("dense") == 3 + 8 + 1
    with pytest.raises(ValueError, match="not a positive multiple of M=16"):
        cfg.cycles_per_tile(40, "dense")


@pytest.mark.parametrize("n,dq", [(64, 8), (8, 1), (8, 2), (128, 8), (64, 64)])
def test_lut_tile_cycles_equal_the_old_rtl_method(n, dq):
    cfg = LutCoreConfig(n=n, dq_lanes=dq)
    for bits in (1, 2, 3, 4):
        for g in (4, 8, 16, 64, 256):
            for groups in (1, 2, 5):
                assert cfg.tile_cycles(bits, g * groups, g) == _old_tile_cycles(cfg, bits, g * groups, g)
    # the RTL test's values (+ 5: registered inputs and the dequantizer pipeline; + 7:
    # the output's 8 beats, the first with the last step)
    assert LutCoreConfig().tile_cycles(1, 256, 64) == 1 + 64 + 8 + 5 + 7
    assert LutCoreConfig().tile_cycles(1, 16, 4) == 1 + 1 + 3 * 8 + 8 + 5 + 7
    with pytest.raises(ValueError, match="multiple of the group"):
        cfg.tile_cycles(2, 100, 64)


def test_lut_tile_period():
    # long groups: the lookup array is never idle (K/4 * bits per tile, as measured)
    for bits in (1, 2, 3, 4):
        assert lut_tile_period(bits, 512, 128, 64, 8) == 512 // 4 * bits
    # W1 groups of 64 (16 beats) are shorter than a tile's drain (22 clocks)
    assert lut_tile_period(1, 256, 64, 64, 8) == 22 + 3 * 16
    # groups shorter than the dequantizer (S = 8): the first group of the next tile
    # waits for the previous tile's last dequantization through the 5-clock pipeline
    # and its S output beats (2 S + 1 + 5)
    assert lut_tile_period(1, 16, 4, 64, 8) == (16 + 1 + 5) + 3 * 8
    assert lut_tile_period(2, 32, 16, 64, 8) == (16 + 1 + 5) + 1 * 8  # L = 8 = S: waits 14
    assert lut_tile_period(4, 16, 4, 8, 1) == max(4, 16 + 1 + 5) + 3 * 8
    assert lut_tile_period(4, 16, 4, 8, 8) == max(4, 2 + 1 + 5) + 3 * 4  # one step, one beat


def test_dsp_linear_cycles_by_hand():
    g = SIM16.dsp_chain                                   # 16 slices, cascade 2, 1 chain
    assert dsp_linear_cycles(64, 128, "dense", 1, g) == 64 * 8 + (3 + 2 + 3)
    assert dsp_linear_cycles(64, 128, "dense", 2, g) == 64 * 8 + 8    # two lanes: same pass
    assert dsp_linear_cycles(64, 128, "dense", 3, g) == 2 * 64 * 8 + 8
    assert dsp_linear_cycles(64, 128, "2:4", 1, g) == 8 * 32 + (3 + 2 + 0)
    assert dsp_linear_cycles(65, 128, "2:4", 1, g) == 9 * 32 + 5        # a padded tile
    assert dsp_linear_cycles(64, 128, "8:16", 1, g) == 32 * 8 + (3 + 2 + 2)
    u = U280.dsp_chain                                    # 4 chains of 512: 32 dense rows/tile
    assert dsp_linear_cycles(576, 576, "dense", 1, u) == math.ceil(18 / 4) * 36 + 8
    assert dsp_linear_cycles(576, 576, "dense", 8, u) == 18 * 36 + 8    # 4 passes x 18 tiles / 4
    cfg = DspChainConfig()
    assert cfg.linear_cycles(64, 128, "2:4", 1) == dsp_linear_cycles(64, 128, "2:4", 1, g)
    with pytest.raises(TargetError, match="mode 4:16 is not enabled"):
        dsp_linear_cycles(64, 128, "4:16", 1, NARROW_MODES.dsp_chain)
    with pytest.raises(TargetError, match="tokens must be a positive int"):
        dsp_linear_cycles(64, 128, "dense", 0, g)
    # decode lane packing: an odd token row of a dense linear with <= 4-bit weights
    # takes a pair-mode pass (two weight rows per slice: half the tiles)
    p = dataclasses.replace(g, modes=g.modes + ("pair",))
    assert dsp_linear_cycles(64, 128, "dense", 1, p, bits=4) == 32 * 8 + 8
    assert dsp_linear_cycles(64, 128, "dense", 1, p, bits=8) == 64 * 8 + 8   # 8-bit: no pair
    # three rows: a dense pass, then the pair pass once the pipeline drained (8 clocks)
    assert dsp_pipeline_depth(p) == 2 + 1 + 2 + 3 == 8
    assert dsp_linear_cycles(64, 128, "dense", 3, p, bits=4) == (64 + 32) * 8 + 8 + 8
    assert dsp_linear_cycles(64, 128, "dense", 2, p, bits=4) == 64 * 8 + 8   # even: lanes
    assert dsp_linear_cycles(64, 128, "2:4", 1, p, bits=4) == 8 * 32 + 5     # sparse: no pair
    assert dsp_linear_cycles(64, 128, "dense", 1, g, bits=4) == 64 * 8 + 8   # not enabled
    # a dense-only chain has no fabric input register (no operand select): one clock less
    d = dataclasses.replace(g, modes=("dense",))
    assert not dsp_input_register(d.modes) and dsp_input_register(g.modes)
    assert dsp_linear_cycles(64, 128, "dense", 1, d) == 64 * 8 + (2 + 2 + 3)
    assert DspChainConfig(modes="dense").latency("dense") == d.latency("dense") == 7
    assert DspChainConfig(modes="dense,pair").latency("dense") == 8   # pair swaps operands


def test_lut_linear_cycles_by_hand():
    g = SIM16.lut_core                                    # 2 x 64, dq 8, 1 core
    first = 1 + 64 + 64 + 8 + 5 + 7                       # W4 g64 K=128: 2 groups of 64 beats,
    #                                                       then the output's 8 beats
    period = 64 + 64
    assert lut_linear_cycles(64, 128, 4, 64, 1, g) == first
    assert lut_linear_cycles(128, 128, 4, 64, 2, g) == first + period       # 2 column tiles
    assert lut_linear_cycles(128, 128, 4, 64, 3, g) == first + 3 * period   # x 2 token tiles
    u = U280.lut_core                                     # 24 cores of 2 x 128
    assert lut_linear_cycles(4096, 4096, 4, 128, 1, u) == \
        lut_tile_cycles(4, 4096, 128, 128, 8) + lut_tile_period(4, 4096, 128, 128, 8)  # 32 tiles
    assert LutCoreConfig().linear_cycles(128, 128, 4, 64, 3) == first + 3 * period
    with pytest.raises(TargetError, match="exceed the LUT core's max_bits 2"):
        lut_linear_cycles(64, 128, 4, 64, 1, W2_LUT.lut_core)
    with pytest.raises(TargetError, match="max_group 256"):
        lut_linear_cycles(64, 1024, 2, 512, 1, g)


# --------------------------------------------------------------------------- decisions

def test_mapping_per_weight_format():
    a = mapped("sim16",
               f32=wtype(64, 128),
               w8=wtype(64, 128, 8, group=128),
               w4=wtype(64, 128, 4),
               w3a=wtype(64, 128, 3, "asym"),
               tern=wtype(64, 128, scheme="ternary"),
               w4odd=wtype(64, 128, 4, "odd"),
               w1odd=wtype(64, 128, 1, "odd", group=32),
               w4s24=wtype(64, 128, 4, sparse=(2, 4)),
               w4a24=wtype(64, 128, 4, "asym", sparse=(2, 4)),
               terns=wtype(64, 128, scheme="ternary", sparse=(8, 16)),
               w8s=wtype(64, 128, 8, sparse=(4, 16)),
               f24=wtype(64, 128, sparse=(2, 4)))
    want = {  # engine, mode, bits, group
        "f32": ("dsp_chain", "dense W8", 8, 128), "w8": ("dsp_chain", "dense W8", 8, 128),
        "w4": ("lut_core", "4 planes +zp", 4, 64), "w3a": ("lut_core", "3 planes +zp", 3, 64),
        "tern": ("lut_core", "2 planes +zp", 2, 64), "w4odd": ("lut_core", "4 planes", 4, 64),
        "w1odd": ("lut_core", "1 plane", 1, 32), "w4s24": ("dsp_chain", "2:4 W4", 4, 64),
        "w4a24": ("dsp_chain", "2:4 W8", 8, 64), "terns": ("dsp_chain", "8:16 W2", 2, 64),
        "w8s": ("dsp_chain", "4:16 W8", 8, 64), "f24": ("dsp_chain", "2:4 W8", 8, 128),
    }
    for name, (engine, mode, bits, group) in want.items():
        at = a[name]
        assert (at["engine"], at["engine_mode"], at["engine_bits"], at["engine_group"]) == \
            (engine, mode, bits, group), name
        assert set(ENGINE_ATTRS) <= set(at)
    assert "run time" in a["f32"]["engine_reason"] and "W8 sym g128" in a["f32"]["engine_reason"]
    assert "sparse MUX" in a["w4s24"]["engine_reason"]
    assert "table-symmetrized" in a["w4odd"]["engine_reason"]
    assert "int8" in a["w8"]["engine_reason"]
    # cycles: the cycle models with the chosen mode, one token row / prefill rows
    assert a["w8"]["cycles_decode"] == dsp_linear_cycles(64, 128, "dense", 1, SIM16.dsp_chain)
    assert a["w4s24"]["cycles_decode"] == dsp_linear_cycles(64, 128, "2:4", 1, SIM16.dsp_chain)
    assert a["w4"]["cycles_decode"] == lut_linear_cycles(64, 128, 4, 64, 1, SIM16.lut_core)
    assert a["w4"]["cycles_prefill_per_token"] == round(
        lut_linear_cycles(64, 128, 4, 64, 512, SIM16.lut_core) / 512, 3)
    assert a["w8"]["cycles_prefill_per_token"] < a["w8"]["cycles_decode"] / 1.9   # 2 lanes
    # bytes streamed: the stored form (float weights as their run-time W8 form)
    assert a["w4"]["weight_bytes"] == (64 * 128 * 4 + 64 * 2 * 16) // 8
    assert a["f32"]["weight_bytes"] == (64 * 128 * 8 + 64 * 1 * 16) // 8      # W8 g128
    assert a["w4s24"]["weight_bytes"] == (64 * 64 * 4 + 64 * 64 * 2 + 64 * 2 * 16) // 8


def test_runtime_w8_group_falls_back_where_k_needs_it():
    a = mapped("sim16", k48=wtype(16, 48), k96=wtype(16, 96))
    assert a["k48"]["engine_group"] == 16 and a["k96"]["engine_group"] == 32
    with pytest.raises(PassError, match=r"layer model\.k40 \(%k40\) has a float weight.*K=40"):
        mapped("sim16", k40=wtype(16, 40))


def test_fallbacks_when_the_lut_core_cannot_run_the_weight():
    a = mapped(NO_LUT, w4=wtype(64, 128, 4))
    assert a["w4"]["engine"] == "dsp_chain" and a["w4"]["engine_mode"] == "dense W4"
    assert "has no LUT core" in a["w4"]["engine_reason"]
    a = mapped(W2_LUT, w4=wtype(64, 128, 4), w2=wtype(64, 128, 2), tern=wtype(64, 128, scheme="ternary"))
    assert a["w4"]["engine"] == "dsp_chain" and "max_bits=2" in a["w4"]["engine_reason"]
    assert a["w2"]["engine"] == a["tern"]["engine"] == "lut_core"
    a = mapped("sim16", big=wtype(64, 1024, 4, group=512))
    assert a["big"]["engine"] == "dsp_chain" and "max_group=256" in a["big"]["engine_reason"]


def test_weights_no_engine_runs_are_errors_naming_the_layer():
    with pytest.raises(PassError, match=r"layer model\.a8 \(%a8\) \(W8-asym g64\) fits no engine.*"
                                        r"outside the chain's int8.*LUT core: 8-bit"):
        mapped("sim16", a8=wtype(64, 128, 8, "asym"))
    with pytest.raises(PassError, match=r"layer model\.s416 .* is N:M-sparse.*do not enable mode 4:16"):
        mapped(NARROW_MODES, s416=wtype(64, 128, 4, sparse=(4, 16)))
    with pytest.raises(PassError, match=r"layer model\.odd .*odd-level weights, which only the LUT core "
                                        r"runs, but target 't_nolut' has no LUT core"):
        mapped(NO_LUT, odd=wtype(64, 128, 2, "odd"))


def test_asym_w8_maps_when_the_stored_codes_fit_int8():
    g = graph_of(a8=wtype(64, 128, 8, "asym"))
    ws = WeightStore()
    ws["a8.weight"] = np.random.default_rng(0).integers(0, 256, (64, 128)).astype(np.uint8)
    ws["s"] = np.ones((64, 2), np.float32)
    ws["z"] = np.full((64, 2), 128, np.int32)             # u - 128 in [-128, 127]
    map_engines(g, "sim16", weights=ws)
    assert g.node("a8").attrs["engine_mode"] == "dense W8"
    ws["z"] = np.full((64, 2), 3, np.int32)               # u - 3 up to 252: not int8
    with pytest.raises(PassError, match="fits no engine"):
        map_engines(g, "sim16", weights=ws)


# --------------------------------------------------------------------------- forcing

def test_forced_mappings():
    g = graph_of(w4=wtype(64, 128, 4), w8=wtype(64, 128, 8), w2=wtype(64, 128, 2))
    map_engines(g, "sim16", dsp_chain=["model.w4"], lut_core=["w2.weight"])
    a = {n.name: n.attrs for n in g.nodes("linear")}
    assert a["w4"]["engine"] == "dsp_chain" and a["w4"]["engine_mode"] == "dense W4"
    assert a["w4"]["engine_reason"] == "forced onto the DSP chain by dsp_chain='model.w4'"
    assert a["w2"]["engine"] == "lut_core" and "forced" in a["w2"]["engine_reason"]
    assert a["w8"]["engine"] == "dsp_chain" and "forced" not in a["w8"]["engine_reason"]


@pytest.mark.parametrize("target, wt, force, msg", [
    ("sim16", wtype(64, 128, 4, "odd"), "dsp_chain", r"odd-level weights are the LUT core's format"),
    ("sim16", wtype(64, 128, 4, sparse=(2, 4)), "lut_core", r"2:4-sparse weights need the DSP chain's sparse MUX"),
    ("sim16", wtype(64, 128), "lut_core", r"not float weights"),
    ("sim16", wtype(64, 128, 8), "lut_core", r"8-bit weights: the LUT core runs 1\.\.4 bit-planes"),
    (W2_LUT, wtype(64, 128, 4), "lut_core", r"4-plane weights exceed the target's LUT core build \(max_bits=2\)"),
    ("sim16", wtype(64, 1024, 2, group=512), "lut_core", r"group 512 exceeds .*\(max_group=256\)"),
    (NARROW_MODES, wtype(64, 128, 4, sparse=(4, 16)), "dsp_chain", r"do not enable mode 4:16 \(modes: dense,2:4\)"),
    ("sim16", wtype(64, 128, 4, group=8), "dsp_chain", r"group 8 is not a multiple of mode dense's block M=16"),
    (NO_LUT, wtype(64, 128, 4), "lut_core", r"target 't_nolut' has no LUT core"),
])
def test_bad_forced_mappings_name_the_layer(target, wt, force, msg):
    g = graph_of(layer=wt)
    with pytest.raises(PassError, match=rf"map_engines: layer model\.layer \(%layer\) \(.*\) is forced onto "
                                        rf"the .* by option {force}='model\.layer', but .*{msg}"):
        map_engines(g, target, **{force: ["model.layer"]})


def test_forcing_option_errors():
    g = graph_of(a=wtype(64, 128, 4), b=wtype(64, 128, 4))
    with pytest.raises(PassOptionError, match=r"option 'lut_core': pattern 'model\.c\*' matches no linear layer"):
        map_engines(g, "sim16", lut_core=["model.c*"])
    with pytest.raises(PassOptionError, match=r"layer model\.a \(%a\) is matched by dsp_chain='model\.\*' "
                                              r"and lut_core='\*a'"):
        map_engines(g, "sim16", dsp_chain=["model.*"], lut_core=["*a"])
    with pytest.raises(PassOptionError, match=r"option 'target': unknown target 'vu9p'"):
        make_pass("map_engines", target="vu9p")
    with pytest.raises(PassOptionError, match="prefill_tokens"):
        make_pass("map_engines", prefill_tokens=0)
    with pytest.raises(TargetError, match="unknown target 'vu9p'"):
        map_engines(g, "vu9p")


# --------------------------------------------------------------------------- the pass

def test_pass_in_a_pipeline_is_idempotent_and_round_trips():
    g, w = llama(tied=True)
    pm = PassManager([make_pass("quantize", bits=4, group_size=64, exclude=["*down_proj*"]),
                      make_pass("map_engines", target="sim16")], debug=True)
    g, w, rep = pm.run(g, w)
    assert rep.passes[1].changed and rep.passes[1].details["target"] == "sim16"
    assert rep.passes[1].details["engines"] == {"dsp_chain": 3, "lut_core": 12}   # 2 down + tied head
    assert g.meta["engine_map"] == {"target": "sim16", "prefill_tokens": 512}
    # running it again changes nothing (the debug manager checks the answer)
    g, w, rep = PassManager([make_pass("map_engines", target="sim16")], debug=True).run(g, w)
    assert not rep.passes[0].changed
    # the text form keeps every attribute
    g2 = parse_graph(print_graph(g))
    for n in g.nodes("linear"):
        assert {k: g2.node(n.name).attrs[k] for k in ENGINE_ATTRS} == {k: n.attrs[k] for k in ENGINE_ATTRS}
    assert g2.meta == g.meta
    # another target: same engines, other cycles; the meta follows
    before = {n.name: n.attrs["cycles_decode"] for n in g.nodes("linear")}
    g, w, rep = PassManager([make_pass("map_engines")], debug=True).run(g, w)
    assert rep.passes[0].changed and g.meta["engine_map"]["target"] == "u280"
    after = {n.name: n.attrs["cycles_decode"] for n in g.nodes("linear")}
    assert sum(after.values()) < sum(before.values())
    assert before["l0.q"] == lut_linear_cycles(64, 64, 4, 64, 1, SIM16.lut_core)
    assert after["l0.q"] == lut_linear_cycles(64, 64, 4, 64, 1, U280.lut_core) != before["l0.q"]


def test_non_param_weight_is_reported_not_silently_skipped():
    g = Graph("m")
    x = g.add("input", name="x", type=TensorType((1, "S", 16)))
    y = g.add("input", name="y", type=TensorType((16, 16)))
    g.outputs = [g.add("linear", [x, y], name="xy")]
    res = map_engines(g, "sim16")
    assert res["skipped"] == {"xy": "weight %y is a input, not a param"}
    assert "engine" not in g.node("xy").attrs and summarize(g)["mapping"] is None


# --------------------------------------------------------------------------- inspect

def test_inspect_totals_by_hand_on_a_tiny_graph():
    """tiny_block (D=32, 4 heads / 2 KV heads of 8, F=48, V=50, tied float head)
    on sim16 (one 16-slice chain, 16 SFU lanes, 460/32 GB/s at 225 MHz): every
    weight is float, so every linear runs on the chain as W8 (dense: 1 row per tile,
    K/16 beats, latency 3 + 2 + 3)."""
    g, _ = tiny_block()
    map_engines(g, "sim16")
    ctx = 16
    m = summarize(g, context=ctx)["mapping"]
    shapes = {"q": (32, 32), "k": (16, 32), "v": (16, 32), "o": (32, 32), "gate": (48, 32),
              "up": (48, 32), "down": (32, 48), "logits": (50, 32)}
    linear = sum(n * (k // 16) + 8 for n, k in shapes.values())
    assert linear == 644 and m["totals"]["linear_cycles"] == linear
    attention = -(-2 * 4 * 8 * ctx // 16)                    # QK^T + PV MACs / 16 slices
    sfu_elems = {"x": 32, "n1o": 32, "rq": 32, "rk": 16, "attn": 32 + 4 * ctx, "x2": 32, "act": 48, "x3": 32}
    sfu = sum(-(-e // 16) for e in sfu_elems.values())
    assert (m["totals"]["attention_cycles"], m["totals"]["sfu_cycles"]) == (attention, sfu) == (64, 20)
    compute = linear + attention + sfu
    groups = {"q": 32, "k": 32, "v": 32, "o": 32, "gate": 32, "up": 32, "down": 16, "logits": 32}
    weight_bytes = sum((n * k * 8 + n * k // groups[name] * 16) // 8 for name, (n, k) in shapes.items())
    weight_bytes += 32 * 4                                   # the embedding row (f32)
    kv = 2 * ctx * 2 * 8 * 2                                 # fp16 K and V of 2 KV heads
    assert (m["totals"]["weight_bytes"], m["totals"]["kv_bytes"]) == (weight_bytes, kv) == (10084, 1024)
    memory = (weight_bytes + kv) / (460e9 / 32 / 225e6)
    assert m["totals"]["memory_cycles"] == pytest.approx(memory)
    assert m["totals"]["bound"] == "compute" and compute > memory
    assert m["totals"]["tokens_per_s"] == pytest.approx(225e6 / max(compute, memory))
    assert m["totals"]["hbm_roofline_share"] == pytest.approx(memory / compute)
    assert m["totals"]["hbm_seconds"] == pytest.approx((weight_bytes + kv) / (460e9 / 32))
    # on the U280 the same graph is memory-bound: 4 x 512 slices, 2044 B per clock
    u = summarize(g, context=ctx, target="u280")["mapping"]["totals"]
    assert u["compute_cycles"] < compute and u["tokens_per_s"] == pytest.approx(
        225e6 / max(u["compute_cycles"], u["memory_cycles"]))


def test_inspect_text_groups_layers_by_kind_and_class():
    g, w, _ = run_recipe(*llama(tied=False, n_layers=3), "w4g128")
    s = summarize(g)
    m = s["mapping"]
    kinds = {(r["kind"], r["engine"]): r["count"] for r in m["by_kind"]}
    assert kinds == {("q_proj", "lut_core"): 3, ("k_proj", "lut_core"): 3, ("v_proj", "lut_core"): 3,
                     ("o_proj", "lut_core"): 3, ("gate_proj", "lut_core"): 3, ("up_proj", "lut_core"): 3,
                     ("down_proj", "lut_core"): 3, ("lm_head", "dsp_chain"): 1}
    assert [c["count"] for c in m["by_class"]] == [18, 3, 1]     # W4 g64, W4 g128, f32
    assert sum(c["cycles_decode"] for c in m["by_class"]) == m["totals"]["linear_cycles"]
    text = format_summary(s)
    assert "target           u280: 225 MHz" in text and "engine mapping   22 linear layers" in text
    assert "q_proj" in text and "model.layers.0.self_attn.q_proj" not in text
    assert "tokens/s at 225 MHz" in text and "bound" in text
    per_layer = format_summary(s, layers=True)
    assert "model.layers.2.mlp.down_proj" in per_layer
    json.dumps(s)                                                # the --json form


def test_stale_meta_is_refused():
    g = graph_of(a=wtype(64, 128, 4))
    map_engines(g, "sim16")
    del g.meta["engine_map"]
    with pytest.raises(ValueError, match="no meta\\['engine_map'\\] naming its target"):
        engine_summary(g)
    assert engine_summary(g, target="sim16")["target"] == "sim16"


def test_cli_inspect_remaps_without_recompiling(tmp_path, capsys):
    from plait.cli import main
    recipe = tmp_path / "force.toml"
    recipe.write_text(textwrap.dedent("""
        [[passes]]
        pass = "quantize"
        bits = 4
        group_size = 64
        exclude = ["lm_head*"]

        [[passes]]
        pass = "map_engines"
        dsp_chain = ["*.mlp.*"]
    """))
    out = tmp_path / "a"
    assert main(["compile", "llama-tiny", "--recipe", str(recipe), "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "target           u280" in text and "tokens/s" in text
    assert main(["inspect", str(out), "--target", "sim16", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["mapping"]["target"] == "sim16"
    eng = {r["name"]: r["engine"] for r in s["mapping"]["layers"]}
    assert eng["model.layers.0.mlp.up_proj"] == "dsp_chain"          # the recipe's forcing holds
    assert eng["model.layers.0.self_attn.q_proj"] == "lut_core"
    assert json.loads((out / "manifest.json").read_text())["graph"]["meta"]["engine_map"]["target"] == "u280"
    assert main(["inspect", str(out), "--target", "nope"]) == 2
    assert "unknown target 'nope'; known targets:" in capsys.readouterr().err


def test_shape_only_llama2_7b_maps():
    """A 7B model planned without weights: types alone decide (and the numbers are
    the U280's W8 decode roofline: memory-bound, tens of tokens/s)."""
    from plait.frontend import load_model
    g, w = load_model("llama2-7b", shape_only=True)
    g, w, rep = run_recipe(g, w, "default")
    mapped = next(p for p in rep.passes if p.name == "map_engines")
    assert mapped.details["engines"] == {"dsp_chain": 225, "lut_core": 0}
    head = g.node("lm_head") if "lm_head" in g else next(n for n in g.nodes("linear") if n.origin == "lm_head")
    assert head.attrs["engine_mode"] == "dense W8" and head.attrs["engine_group"] == 128
    t = summarize(g)["mapping"]["totals"]
    assert t["bound"] == "memory" and 30 < t["tokens_per_s"] < 100
    g4, _, _ = run_recipe(*load_model("llama2-7b", shape_only=True), "w4g128")
    m4 = summarize(g4)["mapping"]
    assert m4["by_engine"]["lut_core"]["layers"] == 224
    assert m4["totals"]["tokens_per_s"] > t["tokens_per_s"]


# --------------------------------------------------------------------------- layers

@pytest.mark.parametrize("path, banned", [
    ("ir/target.py", ("plait.rtl", "plait.passes")),
    ("ir/stats.py", ("plait.rtl", "plait.passes")),
    ("passes/mapping.py", ("plait.rtl",)),
])
def test_layer_rule(path, banned):
    """ir sits at the bottom; passes never import rtl (DESIGN.md, Layers of the code)."""
    tree = ast.parse((REPO / path).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0]
    if path.startswith("ir/"):
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level > 1]
    assert not [n for n in names if n.startswith(banned)], names


PAIR = variant(SIM16, "t_pair", dsp_chain=dataclasses.replace(
    SIM16.dsp_chain, modes=SIM16.dsp_chain.modes + ("pair",)))


@pytest.mark.parametrize("target", [PAIR, "u280"])
def test_decode_lane_packing_is_chosen_per_layer(target):
    """Where the chains enable ``pair``, a dense DSP weight of at most 4-bit codes runs
    its decoded token in decode lane packing (two weight rows per slice): the mapping
    says so and counts its cycles; W8, sparse weights and prefill's token pairs do not."""
    geo = get_target(target).dsp_chain
    a = mapped(target, w4=wtype(1024, 1024, 4, group=512), w2=wtype(1024, 1024, 2, group=512),
               w8=wtype(1024, 1024, 8, group=512), s24=wtype(1024, 1024, 4, sparse=(2, 4)))
    assert a["w4"]["engine"] == a["w2"]["engine"] == "dsp_chain"    # group > the LUT core's
    assert (a["w4"]["engine_mode"], a["w4"]["engine_decode_mode"]) == ("dense W4", "pair W4")
    assert a["w2"]["engine_decode_mode"] == "pair W2"
    assert a["w8"]["engine_decode_mode"] == a["w8"]["engine_mode"] == "dense W8"
    assert a["s24"]["engine_decode_mode"] == a["s24"]["engine_mode"] == "2:4 W4"
    pair = dsp_linear_cycles(1024, 1024, "dense", 1, geo, bits=4)
    assert a["w4"]["cycles_decode"] == pair < dsp_linear_cycles(1024, 1024, "dense", 1, geo)
    assert a["w8"]["cycles_decode"] == dsp_linear_cycles(1024, 1024, "dense", 1, geo)
    g = graph_of(w4=wtype(1024, 1024, 4, group=512), w8=wtype(1024, 1024, 8, group=512))
    map_engines(g, target)
    modes = {r["node"]: r["mode"] for r in engine_summary(g, target=target)["layers"]}
    assert modes == {"w4": "dense W4 +pair", "w8": "dense W8"}


def test_no_decode_lane_packing_without_the_mode():
    a = mapped("sim16", w4=wtype(64, 1024, 4, group=512))
    assert a["w4"]["engine_decode_mode"] == a["w4"]["engine_mode"] == "dense W4"
    assert a["w4"]["cycles_decode"] == dsp_linear_cycles(64, 1024, "dense", 1, SIM16.dsp_chain)
