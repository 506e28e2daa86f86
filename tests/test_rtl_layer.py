"""Whole linear layers through both RTL engines (Verilator, played by the C++ stream
player: :mod:`plait.sim.player`; tests/test_player.py checks it against the cocotb
bench), bit-exact.

* Fast tests (no simulator): the bus words :mod:`plait.sim.engines` streams are the
  golden schedulers' (:func:`~plait.ir.numerics.dsp.schedule_chain`,
  :func:`~plait.rtl.lut_core.stream_tile`), the output words unschedule to the
  contract, and bad jobs are refused with clear errors.
* ``test_smollm2_shaped_random_linears_bit_exact`` (slow): SmolLM2-shaped linears
  with random int8 activations and random weights, several per engine in one
  simulation each (odd token counts, a column-padded LUT tile, mode and format
  switches), against ``group_accumulate`` / ``linear_int``; cycles against the
  ir-level cycle model.
* ``test_smollm2_layers_on_rtl_match_exact_mode`` (slow, per recipe): SmolLM2-135M-
  Instruct compiled with ``w8a8-sparse24-wanda`` (DSP chain) and ``w4a8-lut`` (LUT
  core), mapped (``map_engines``) and packed (``pack``) for the build's target;
  exact mode runs a chat prompt (24-token prefill, then 2 greedy decode steps) and every
  linear evaluation of decoder layer 15 (``PLAIT_RTL_LAYERS=0,15`` for more) runs on its
  engine from the artifact's packed arrays; every integer equals exact mode's and measured cycles
  are within 5% of the mapping's cycle model.  ``-s`` prints the cycle table.

Geometry: ``sim16``, the sim device's builds: a 16-slice DSP chain
(``PLAIT_RTL_LAYER_NDSP=64`` for 64 slices, 4x fewer cycles; on the stream player the
16-slice run is cheaper than building a second chain) and a 2 x 64 LUT core.  Calibration of
the Wanda recipe uses the last ``PLAIT_RTL_LAYER_CALIB`` (default 512) token ids of
the default text instead of 2048 (the calibration runs the float model; 2048 tokens
cost ~50 s here).
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from plait.ir.numerics import (QuantizedWeight, dequant_groups, encode_scales, group_accumulate,
                               linear_int, lut_trace, quantize_rtn, signed_weight)
from plait.ir.numerics.common import NumericsError
from plait.ir.numerics.dsp import prune_nm, run_schedule, schedule_chain
from plait.ir.numerics.pack import pack_dsp, pack_lut
from plait.ir.target import dsp_linear_cycles, lut_linear_cycles
from plait.rtl.dsp_chain import DspChainConfig
from plait.rtl.lut_core import LutCoreConfig, stream_tile
from plait.sim.drivers import pack_signed, pack_unsigned
from plait.sim.engines import (DspJob, LutJob, _dsp_result, _lut_result, dsp_stimulus,
                               lut_stimulus, pack_fields, run_jobs, unpack_fields)
from plait.sim.layers import CYCLE_TOLERANCE, layer_of, sim_target
from plait.sim.scoreboard import Scoreboard

N_DSP = int(os.environ.get("PLAIT_RTL_LAYER_NDSP", "16"))
CALIB_TOKENS = int(os.environ.get("PLAIT_RTL_LAYER_CALIB", "512"))
#: the chat: SmolLM2's chat template with a short system message (24 tokens; the
#: template's default system message makes it 37, +50% simulation time)
SYSTEM = "Answer briefly."
PROMPT = "What is the capital of France?"
#: decoder layers run on the RTL (``PLAIT_RTL_LAYERS``, e.g. ``0,15``); CI runs one per
#: recipe to fit its time budget (each layer: ~7 s of simulation on the DSP chain, ~20 s
#: on the LUT core, on the stream player)
LAYERS = tuple(int(v) for v in os.environ.get("PLAIT_RTL_LAYERS", "15").split(","))
DECODE_STEPS = 2


def _ints(img) -> list[int]:
    return [int.from_bytes(r.tobytes(), "little") for r in np.asarray(img, np.uint8)]


def _sparse_w8(rng, n, k, g=64) -> QuantizedWeight:
    w = rng.standard_normal((n, k)).astype(np.float32)
    return quantize_rtn(w * prune_nm(w, 2, 4), 8, g, "sym")


# ------------------------------------------------------------------ no simulator
def test_pack_fields_roundtrip():
    rng = np.random.default_rng(0)
    for width in (1, 4, 5, 8, 16, 32, 48):
        v = rng.integers(-(1 << (width - 1)), 1 << (width - 1), (3, 7))
        img = pack_fields(v, width)
        assert img.shape == (3, -(-7 * width // 8))
        assert np.array_equal(unpack_fields(img, width, 7), v)
        assert _ints(img)[1] == pack_signed(v[1], width)
    with pytest.raises(ValueError, match="width"):
        pack_fields([1], 0)


def test_dsp_words_are_the_schedule_chain_beats():
    """in_act / in_w / in_idx words of every pass == schedule_chain's beats of that
    pass's two token rows (the words tests/test_rtl_dsp_chain.py's bench drives)."""
    rng = np.random.default_rng(1)
    cfg = DspChainConfig()
    qw = _sparse_w8(rng, 20, 128)                    # 20 rows: a padded last tile
    x = rng.integers(-128, 128, (3, 128)).astype(np.int8)   # odd T: lane 1 of pass 1 = 0
    st = dsp_stimulus(DspJob("q", x, qw, "2:4"), cfg)
    m = st["meta"]
    assert (m["passes"], m["tiles"], m["nb"], m["n_out"]) == (2, 3, 32, 2 * 3 * 2)
    w_ints, i_ints = _ints(st["w"]), _ints(st["idx"])
    for p in range(2):
        pair = np.zeros((2, 128), np.int64)
        pair[:min(2, 3 - 2 * p)] = x[2 * p:2 * p + 2]
        s = schedule_chain(pair, signed_weight(qw), "2:4", 64, n_dsp=cfg.n_dsp, bits=8)
        act = _ints(st["act"][p])
        assert [act[b % m["nb"]] for b in range(s.beats)] == \
            [pack_signed(a.reshape(-1), 8) for a in s.act]
        assert w_ints == [pack_unsigned(c, 8) for c in s.codes]
        assert i_ints == [pack_unsigned(c, 4) for c in s.idx]
        assert list(np.tile(st["last"], m["tiles"])) == [int(v) for v in s.last]


def test_lut_words_are_the_stream_tile_beats():
    """a / w / s words of every tile == stream_tile's for that tile; the mantissas are
    the whole tensor's (one shared exponent, as linear_int)."""
    rng = np.random.default_rng(2)
    cfg = LutCoreConfig()
    n, k, g = 100, 128, 32                          # 100 columns: a padded last tile
    codes = rng.integers(0, 16, (n, k)).astype(np.uint8)
    scales = rng.uniform(0.01, 1.0, (n, k // g)).astype(np.float32)
    scales[::64, 0] = 2.0                            # every column tile holds the max scale
    qw = QuantizedWeight(codes, scales, None, 4, g, "odd")
    x = rng.integers(-128, 128, (3, k)).astype(np.int8)
    st = lut_stimulus(LutJob("k", x, qw), cfg)
    m = st["meta"]
    assert (m["row_tiles"], m["col_tiles"], m["n_out"]) == (2, 2, 4 * cfg.dq_steps)   # beats
    for c in range(2):
        cols = slice(c * 64, min(n, (c + 1) * 64))
        pad = 64 - (cols.stop - cols.start)
        sub = QuantizedWeight(np.pad(codes[cols], ((0, pad), (0, 0))),
                              np.pad(scales[cols], ((0, pad), (0, 0))), None, 4, g, "odd")
        for r in range(2):
            xt = np.zeros((2, k), np.int64)
            xt[:min(2, 3 - 2 * r)] = x[2 * r:2 * r + 2]
            mode, a, w, s = stream_tile(xt, sub, cfg)
            assert (mode.bits, int(mode.offset), mode.group_chunks) == \
                (m["bits"], m["offset"], m["group_chunks"])
            assert _ints(st["a"][r]) == a
            assert _ints(st["w"][c]) == w
            assert list(zip(_ints(st["mant"][c]), _ints(st["zp"][c]))) == s
    mant, _ = encode_scales(scales)
    assert np.array_equal(unpack_fields(st["mant"][1], 16, 64, signed=False)[:, :n - 64].T,
                          mant[64:])


def test_output_words_unschedule_to_the_contract():
    """Golden output words (run_schedule / lut_trace) laid out as the RTL emits them
    come back as group_accumulate / linear_int (checks the unpacking, not the RTL)."""
    rng = np.random.default_rng(3)
    cfg = DspChainConfig()
    qw = _sparse_w8(rng, 20, 128)
    x = rng.integers(-128, 128, (3, 128)).astype(np.int8)
    st = dsp_stimulus(DspJob("q", x, qw, "2:4"), cfg)
    outs = []
    for p in range(2):
        pair = np.zeros((2, 128), np.int64)
        pair[:min(2, 3 - 2 * p)] = x[2 * p:2 * p + 2]
        o = run_schedule(schedule_chain(pair, signed_weight(qw), "2:4", 64, n_dsp=cfg.n_dsp),
                         cascade=cfg.cascade)
        full = np.zeros((o.shape[0], 2, cfg.rows_max), np.int64)
        full[:, :, :o.shape[2]] = o
        outs.append(full.reshape(o.shape[0], -1))
    words = pack_fields(np.concatenate(outs), cfg.acc_w)
    assert np.array_equal(_dsp_result(st["meta"], words, cfg),
                          group_accumulate(signed_weight(qw), x, 64))
    lcfg = LutCoreConfig()
    lq = quantize_rtn(rng.standard_normal((100, 128)).astype(np.float32), 4, 32, "odd")
    lst = lut_stimulus(LutJob("k", x, lq), lcfg)
    tiles = []
    for c in range(2):                                # column tiles outer, row tiles inner
        for r in range(2):
            xt = np.zeros((2, 128), np.int64)
            xt[:min(2, 3 - 2 * r)] = x[2 * r:2 * r + 2]
            p = np.zeros((2, 64), np.int64)
            cols = slice(c * 64, min(100, c * 64 + 64))
            mant, _ = encode_scales(lq.scales)
            grp = lut_trace(xt, QuantizedWeight(lq.codes[cols], lq.scales[cols], None, 4, 32,
                                                "odd")).grp
            p[:, :cols.stop - cols.start] = dequant_groups(grp, mant[cols])
            # dq_steps beats per tile: beat t, word m * dq_lanes + l = P[m][t * dq_lanes + l]
            tiles += list(p.reshape(2, lcfg.dq_steps, lcfg.dq_lanes).transpose(1, 0, 2)
                          .reshape(lcfg.dq_steps, -1))
    assert np.array_equal(_lut_result(lst["meta"], pack_fields(np.array(tiles), 48), lcfg),
                          linear_int(x, lq)[0])


def test_bad_jobs_are_refused():
    rng = np.random.default_rng(4)
    qw = _sparse_w8(rng, 16, 64)
    x = rng.integers(-128, 128, (2, 64)).astype(np.int8)
    with pytest.raises(NumericsError, match="packed for n_dsp=16, the build has n_dsp=64"):
        dsp_stimulus(DspJob("q", x, packed=pack_dsp(qw, "2:4")), DspChainConfig(n_dsp=64))
    with pytest.raises(NumericsError, match="mode 2:4 is not in this DSP chain build"):
        dsp_stimulus(DspJob("q", x, qw, "2:4"), DspChainConfig(modes="dense"))
    with pytest.raises(NumericsError, match=r"activations must be \[T, K=64\]"):
        dsp_stimulus(DspJob("q", x[:, :32], qw, "2:4"), DspChainConfig())
    with pytest.raises(NumericsError, match="integer"):
        dsp_stimulus(DspJob("q", x.astype(np.float32), qw, "2:4"), DspChainConfig())
    with pytest.raises(NumericsError, match="outside int8"):
        dsp_stimulus(DspJob("q", x.astype(np.int64) * 2, qw, "2:4"), DspChainConfig())
    with pytest.raises(ValueError, match="needs qw or packed"):
        dsp_stimulus(DspJob("q", x), DspChainConfig())
    lq = quantize_rtn(rng.standard_normal((64, 64)).astype(np.float32), 4, 32, "odd")
    with pytest.raises(NumericsError, match="tiles of 128 columns, the core has n=64"):
        lut_stimulus(LutJob("k", x, packed=pack_lut(lq, n=128)), LutCoreConfig())
    with pytest.raises(NumericsError, match="max_bits"):
        lut_stimulus(LutJob("k", x, lq), LutCoreConfig(max_bits=2))
    with pytest.raises(ValueError, match="all jobs must be DspJob or all LutJob"):
        run_jobs([DspJob("q", x, qw, "2:4"), LutJob("k", x, lq)])
    with pytest.raises(ValueError, match="no jobs"):
        run_jobs([])
    with pytest.raises(ValueError, match="bench .* must be one of player, cocotb, got 'vcs'"):
        run_jobs([DspJob("q", x, qw, "2:4")], bench="vcs")
    with pytest.raises(ValueError, match="waves need bench='cocotb'"):
        run_jobs([DspJob("q", x, qw, "2:4")], waves=True)


def test_layer_names_and_sim_target():
    assert layer_of("layers.15.mlp.up_proj") == 15 and layer_of("lm_head") is None
    t = sim_target(64)
    assert t.dsp_chain.n_dsp == 64 and t.lut_core.n == 64 and t.name == "sim16-dsp64"
    assert sim_target(64) == t and sim_target(16).name == "sim16"
    assert DspChainConfig.from_target(t).n_dsp == 64


def test_prediction_must_be_the_mapping_passes():
    from plait.sim.layers import _check_mapping
    a = {"cycles_decode": 2599, "cycles_prefill_per_token": 1296.292}
    _check_mapping("q", a, 1, 2599, 24, "t")
    _check_mapping("q", a, 24, 31111, 24, "t")              # 1296.292 * 24 = 31111.008
    _check_mapping("q", a, 7, 1, 24, "t")                   # no mapping number for T=7
    with pytest.raises(AssertionError, match="mapping pass predicts 2599 cycles"):
        _check_mapping("q", a, 1, 10375, 24, "t")
    with pytest.raises(AssertionError, match="another geometry"):
        _check_mapping("q", a, 24, 124441, 24, "t")


# ------------------------------------------------------------------ random data on the RTL
@pytest.mark.slow
def test_sleeping_stream_drivers_match_polling():
    """The streaming bench's drivers sleep through stalls (StreamDriver
    wait_ready_edge, StreamMonitor period_ns): on the skid buffer, random gaps and
    heavy backpressure give the same transfers in the same cycles as polling."""
    from plait.rtl.units import SkidBufferConfig, unit_sources
    from plait.sim.runner import run_cocotb
    run = run_cocotb("plait_skid_buffer", unit_sources("skid_buffer"),
                     "plait.sim.tb.test_stream_drivers", config=SkidBufferConfig(width=12))
    assert [t.passed for t in run.tests] == [True], run.tests


def _within(measured: int, predicted: int) -> bool:
    return abs(measured / predicted - 1.0) <= CYCLE_TOLERANCE


@pytest.mark.slow
def test_smollm2_shaped_random_linears_bit_exact():
    """SmolLM2-shaped linears, random data, one simulation per engine: DSP chain 2:4
    W8 (q with T=3, k with T=2, down with T=1 and G=128) and a dense W4 switch; LUT core
    W4 odd (k, T=3), W2 odd (down, T=1), W4 sym g192 (gate, T=2: zero correction) and a
    100-column weight (padded tile).  Every integer equals the contract; cycles are
    within 5% of the ir-level model."""
    rng = np.random.default_rng(2025)
    tgt = sim_target(N_DSP)
    dcfg, lcfg = DspChainConfig.from_target(tgt), LutCoreConfig.from_target(tgt)

    def x8(t, k):
        return rng.integers(-128, 128, (t, k)).astype(np.int8)

    dense_w4 = quantize_rtn(rng.standard_normal((64, 576)).astype(np.float32), 4, 64, "sym")
    djobs = [DspJob("q_proj", x8(3, 576), _sparse_w8(rng, 576, 576), "2:4"),
             DspJob("k_proj", x8(2, 576), _sparse_w8(rng, 192, 576), "2:4"),
             DspJob("down_proj", x8(1, 1536), _sparse_w8(rng, 576, 1536, 128), "2:4"),
             DspJob("dense_w4", x8(2, 576), dense_w4, "dense")]
    ljobs = [LutJob("k_proj", x8(3, 576), quantize_rtn(
                 rng.standard_normal((192, 576)).astype(np.float32), 4, 64, "odd")),
             LutJob("down_proj", x8(1, 1536), quantize_rtn(
                 rng.standard_normal((576, 1536)).astype(np.float32), 2, 64, "odd")),
             LutJob("gate_proj", x8(2, 576), quantize_rtn(
                 rng.standard_normal((1536, 576)).astype(np.float32), 4, 192, "sym")),
             LutJob("narrow", x8(2, 576), quantize_rtn(
                 rng.standard_normal((100, 576)).astype(np.float32), 3, 32, "odd"))]
    sb = Scoreboard("random SmolLM2-shaped linears")
    lines = []
    t0 = time.perf_counter()
    drun = run_jobs(djobs, dsp_cfg=dcfg)
    for j, r in zip(djobs, drun.results):
        sb.expect(f"{j.name}.acc", group_accumulate(signed_weight(j.qw), j.x, j.qw.group_size))
        sb.observe(f"{j.name}.acc", r.out)
        sb.expect(f"{j.name}.P", linear_int(j.x, j.qw)[0])
        sb.observe(f"{j.name}.P", dequant_groups(r.out, r.packed.mant))
        n, k = j.qw.codes.shape
        pred = dsp_linear_cycles(n, k, j.mode, j.x.shape[0], tgt.dsp_chain)
        lines.append((f"dsp {j.name}", r.cycles, pred))
    t1 = time.perf_counter()
    lrun = run_jobs(ljobs, lut_cfg=lcfg)
    for j, r in zip(ljobs, lrun.results):
        sb.expect(f"{j.name}.P", linear_int(j.x, j.qw)[0])
        sb.observe(f"{j.name}.P", r.out)
        n, k = j.qw.codes.shape
        pred = lut_linear_cycles(n, k, j.qw.bits, j.qw.group_size, j.x.shape[0], tgt.lut_core)
        lines.append((f"lut {j.name}", r.cycles, pred))
    t2 = time.perf_counter()
    print(f"\n{'job':16} {'measured':>9} {'predicted':>9}")
    for name, m, p in lines:
        print(f"{name:16} {m:>9} {p:>9}")
    print(f"dsp_chain n_dsp={dcfg.n_dsp}: {t1 - t0:.1f}s ({drun.cycles_per_second:.0f} cycles/s "
          f"in simulation); lut_core: {t2 - t1:.1f}s ({lrun.cycles_per_second:.0f} cycles/s)")
    sb.assert_clean()
    assert sb.compared == 2 * len(djobs) + len(ljobs)
    bad = [(n, m, p) for n, m, p in lines if not _within(m, p)]
    assert not bad, f"measured cycles off the model by more than 5%: {bad}"


# ------------------------------------------------------------------ the real model
@pytest.fixture(scope="module")
def smollm2():
    from plait.frontend import load_model, load_tokenizer
    g, w = load_model("smollm2", progress=False)
    tok = load_tokenizer("smollm2")
    ids = tok.apply_chat_template([{"role": "system", "content": SYSTEM},
                                   {"role": "user", "content": PROMPT}],
                                  add_generation_prompt=True, tokenize=True)
    if hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return g, w, tok, list(ids)


@pytest.mark.slow
@pytest.mark.parametrize("recipe, engine", [("w8a8-sparse24-wanda", "dsp_chain"),
                                            ("w4a8-lut", "lut_core")])
def test_smollm2_layers_on_rtl_match_exact_mode(smollm2, recipe, engine):
    from plait.passes import PassManager, load_recipe, make_pass, run_recipe
    from plait.passes.textdata import default_text
    from plait.sim.layers import artifact_packs, capture_linears, check_on_rtl, format_table

    from plait.tests.hls_models import CALIB_TOKENS as SHARED_CALIB, compiled_smollm2

    base_g, base_w, tok, ids = smollm2
    assert len(ids) >= 8
    t0 = time.perf_counter()
    if CALIB_TOKENS == SHARED_CALIB:        # the compile the HLS layer tests share (cached)
        g, w = compiled_smollm2(recipe)
    else:
        r = load_recipe(recipe)
        cal = {"ids": tok.encode(default_text())[-CALIB_TOKENS:]} if r.needs_calibration else None
        g, w, _ = run_recipe(base_g.copy(), base_w.copy(), r, calibration=cal)
    tgt = sim_target(N_DSP)
    g, w, _ = PassManager([make_pass("map_engines", target=tgt.name, prefill_tokens=len(ids)),
                           make_pass("pack")]).run(g, w)
    t1 = time.perf_counter()
    calls, new = capture_linears(g, w, ids, decode_steps=DECODE_STEPS, layers=LAYERS)
    t2 = time.perf_counter()
    assert {c.call for c in calls} == {"prefill", "decode1", "decode2"}
    assert len(calls) == 7 * len(LAYERS) * (1 + DECODE_STEPS), [c.node for c in calls]
    check = check_on_rtl(g, calls, tgt, packed=artifact_packs(g, w))
    t3 = time.perf_counter()
    print(f"\n{recipe}: prompt {len(ids)} tokens, decoded {tok.decode(new)!r}; "
          f"layers {LAYERS} on {tgt.summary()}")
    print(format_table(check.rows))
    run = check.runs[engine]
    print(f"times: compile+map+pack {t1 - t0:.1f}s, exact mode {t2 - t1:.1f}s, RTL {t3 - t2:.1f}s "
          f"(simulation {run.seconds['sim']:.1f}s: {run.beats_per_second:.0f} beats/s, "
          f"{run.cycles_per_second:.0f} cycles/s; build {'yes' if run.seconds['built'] else 'cached'})")
    print(check.scoreboard.summary())
    assert set(check.runs) == {engine}, f"{recipe}: engines used {sorted(check.runs)}"
    check.scoreboard.assert_clean()
    assert check.scoreboard.compared == len(calls) * (2 if engine == "dsp_chain" else 1)
    bad = check.cycle_outliers()
    assert not bad, "measured cycles off the model by more than 5%:\n" + format_table(bad)
