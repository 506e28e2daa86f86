"""One decoder layer through the HLS dataflow top (hls/src/layer_top.cpp: plait_layer.h's
stages, the linears on the DSP chain / LUT core from the packed weights), in g++ C
simulation, equal integer for integer to exact mode (plait.ir.exact.ExactInterpreter)
through a prefill and decode steps: every output row and the int8 KV cache.

Fast: random small layers compiled with plait.passes (mixed engines in one layer:
2:4 W8 on the DSP chain next to W4 on the LUT core; static scales, q/k/v bias, MHA and
GQA).  Slow: a real SmolLM2-135M decoder layer compiled with the recipes
``w8a8-sparse24-wanda`` (DSP chain) and ``w4a8-lut`` (LUT core), the model compiled once
and cached (tests/hls_models.py)."""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")

from plait.hls.gen import LINEARS, HlsError, generate  # noqa: E402
from plait.hls.layer_tb import find_layer, layer_case, layer_config, layer_graph, run_layer_csim  # noqa: E402
from plait.ir.numerics.act import static_scale  # noqa: E402
from plait.ir.types import ActSpec  # noqa: E402

RNG = np.random.default_rng(11)


def _compile_small(g, w, *, lut=("wo", "wu", "wd")):
    """Test helper: 2:4 W8 sym (DSP chain) on the linears not in ``lut``, W4 odd (LUT core)
    on those in ``lut``; mapped and packed for the sim16 target (n_dsp 16, LUT 2 x 64)."""
    from plait.passes import PassManager, make_pass
    dsp = [n for n in ("wq", "wk", "wv", "wo", "wg", "wu", "wd") if n not in lut]
    passes = []
    if dsp:
        passes += [make_pass("sparsify", pattern="2:4", include=dsp),
                   make_pass("quantize", bits=8, scheme="sym", group_size=16, include=dsp)]
    if lut:
        passes.append(make_pass("quantize", bits=4, scheme="odd", group_size=16, include=list(lut)))
    passes += [make_pass("map_engines", target="sim16"), make_pass("pack")]
    g, w, _ = PassManager(passes).run(g, w)
    return g, w


def _cache_values(case) -> int:
    return sum(case["arrays"][k].size for k in ("exp_kc", "exp_mk", "exp_ek", "exp_vc", "exp_mv", "exp_ev"))


def _ok(res):
    assert res.ok, res.summary() + "\n" + res.output[-3000:]
    assert res.cases == len(res.names) and res.values > 0


def test_random_layer_mixed_engines_prefill_and_decode():
    """A 64-wide layer (4 heads on 2 kv heads of 16, MLP 96): q/k/v/gate 2:4 W8 on the DSP
    chain, o/up/down W4 on the LUT core; prefill of 5 tokens (odd: a half-filled lane
    pair) with a massive-activation token, two decode steps, a chunk of 2."""
    g, w = _compile_small(*layer_graph(64, 4, 2, 16, 96, seed=1))
    cfg = layer_config(g, w, 0, max_ctx=64)
    assert cfg.engines == ("dsp_chain",) * 3 + ("lut_core", "dsp_chain", "lut_core", "lut_core")
    case = layer_case(g, w, [[0, *RNG.integers(0, 64, 4)], [3], [7], RNG.integers(0, 64, 2)], cfg=cfg)
    res = run_layer_csim(cfg, [case])
    _ok(res)
    assert res.values == 9 * 64 + _cache_values(case)


def test_random_layer_static_scales_bias_mha():
    """Static input scales on o and down (values beyond them saturate), q/k/v biases, MHA
    heads, every linear on the LUT core; a second layer with every linear on the DSP chain."""
    acts = {"o": ActSpec("static", *static_scale(1.5)), "down": ActSpec("static", *static_scale(0.3))}
    g, w = _compile_small(*layer_graph(64, 4, 4, 16, 96, acts=acts, qkv_bias=True, seed=2),
                          lut=("wq", "wk", "wv", "wo", "wg", "wu", "wd"))
    cfg = layer_config(g, w, 0, max_ctx=64)
    assert set(cfg.engines) == {"lut_core"}
    _ok(run_layer_csim(cfg, [layer_case(g, w, [RNG.integers(0, 64, 4), [1], [2]], cfg=cfg)]))
    g, w = _compile_small(*layer_graph(64, 4, 4, 16, 96, acts=acts, qkv_bias=True, seed=3), lut=())
    cfg = layer_config(g, w, 0, max_ctx=64)
    assert set(cfg.engines) == {"dsp_chain"}
    _ok(run_layer_csim(cfg, [layer_case(g, w, [RNG.integers(0, 64, 3), [1]], cfg=cfg)]))


def test_layer_mismatch_and_refusals_are_reported(tmp_path):
    """A wrong expected integer of the output or of the KV cache is caught with its
    index; a prefill beyond MAX_CTX is refused by the top (LERR_SIZE); a C++ mutation in
    a stage (the residual add of add_write) fails the comparison."""
    g, w = _compile_small(*layer_graph(64, 4, 2, 16, 96, seed=4))
    cfg = layer_config(g, w, 0, max_ctx=64)
    case = layer_case(g, w, [RNG.integers(0, 64, 4), [2]], cfg=cfg)
    bad = {**case, "name": "bad_y", "arrays": dict(case["arrays"])}
    bad["arrays"]["exp_y1"] = case["arrays"]["exp_y1"].copy()
    bad["arrays"]["exp_y1"][0, 5] -= 1
    badkv = {**case, "name": "bad_kv", "arrays": dict(case["arrays"])}
    badkv["arrays"]["exp_ev"] = case["arrays"]["exp_ev"].copy()
    badkv["arrays"]["exp_ev"][1, 3] += 1
    big = {**case, "name": "too_long", "ints": {**case["ints"], "steps": 1, "err_expected": 1 << 17},
           "arrays": {**case["arrays"], "x0": np.zeros((65, 64), np.int64)}}
    res = run_layer_csim(cfg, [case, bad, badkv, big])
    assert res.failed == ["bad_y", "bad_kv"], res.output[-2000:]
    assert [(m.case, m.array, m.index) for m in res.mismatches] == [("bad_y", "y1", 5), ("bad_kv", "cache.ev", 5 + 3)]
    b = generate("layer", cfg, tmp_path)
    p = b.path("plait_layer.h")
    text = p.read_text()
    old = "y[i] = residual_add((int64_t)x1s.read(), (int64_t)ds.read());"
    assert text.count(old) == 1
    p.write_text(text.replace(old, "y[i] = residual_add((int64_t)x1s.read(), (int64_t)ds.read() >> 1);"))
    from plait.hls.csim import run_csim
    res = run_csim(b, [case])
    assert not res.ok and res.mismatches[0].array == "y0"


def test_layer_build_files(tmp_path):
    """The generated layer build: config header from LayerConfig (+ both engines' headers
    from the target's config objects, the model's tables), a dataflow top with streamed
    weights and the KV cache on m_axi, a tcl project."""
    g, w = _compile_small(*layer_graph(64, 4, 2, 16, 96, seed=5))
    cfg = layer_config(g, w, 0, max_ctx=64)
    b = generate("layer", cfg, tmp_path)
    pkg = (tmp_path / "plait_layer_pkg.h").read_text()
    for s in ("static constexpr int D = 64;", "static constexpr int HKV = 2;", "static constexpr int F = 96;",
              "static constexpr int MAX_CTX = 64;", "typedef dsp_chain_pkg DSP;"):
        assert s in pkg, s
    assert (tmp_path / "dsp_chain_pkg.h").read_text() == cfg.dsp.cpp_header()
    assert "PLAIT_ROPE_N_POS 64" in (tmp_path / "plait_tables.h").read_text()
    top = (tmp_path / "layer_top.cpp").read_text()
    assert top.count("#pragma HLS INTERFACE m_axi") == 31
    for port in ("kc", "vc", "codes_qkv", "planes_down", "mant_gu"):
        assert f"port = {port} " in top, port
    lib = (tmp_path / "plait_layer.h").read_text()
    for s in ("#pragma HLS DATAFLOW", "#pragma HLS PIPELINE II=1", "#pragma HLS STREAM"):
        assert s in lib, s
    tcl = b.tcl.read_text()
    assert 'set top        "layer_top"' in tcl and "layer_top.cpp" in tcl and "tb_layer.cpp" in tcl
    with pytest.raises(HlsError, match="LayerConfig"):
        generate("layer", None, tmp_path)
    with pytest.raises(HlsError, match="decoder layers"):
        find_layer(g, 1)


# ------------------------------------------------------------------ the real model
sys.path.insert(0, str(Path(__file__).resolve().parent))
PROMPT_TOKENS = 7
DECODE_STEPS = 2


@pytest.mark.slow
@pytest.mark.parametrize("recipe, engine, layer", [("w8a8-sparse24-wanda", "dsp_chain", 0),
                                                   ("w4a8-lut", "lut_core", 5)])
def test_smollm2_layer_through_hls_equals_exact_mode(recipe, engine, layer):
    """A real SmolLM2-135M decoder layer (compiled with the recipe for the u280 target:
    the pack pass's weights, the map_engines mapping) through the layer's dataflow top:
    a 7-token prefill and two decode steps, every output integer and the KV cache equal
    to exact mode's."""
    from hls_models import compiled_smollm2
    t0 = time.perf_counter()
    g, w = compiled_smollm2(recipe)
    cfg = layer_config(g, w, layer, max_ctx=64)
    assert set(cfg.engines) == {engine}
    assert (cfg.d, cfg.h, cfg.hkv, cfg.hd, cfg.f) == (576, 9, 3, 64, 1536)
    ids = [1, 9690, 314, 253, 3575, 28, 216][:PROMPT_TOKENS]
    steps = [ids] + [[int(t)] for t in RNG.integers(0, 49152, DECODE_STEPS)]
    case = layer_case(g, w, steps, layer=layer, cfg=cfg, name=f"smollm2_l{layer}_{recipe}")
    t1 = time.perf_counter()
    res = run_layer_csim(cfg, [case])
    t2 = time.perf_counter()
    print(f"\n{recipe} layer {layer} on {engine}: {res.values} integers compared; "
          f"model + exact mode {t1 - t0:.1f}s, HLS build + csim {t2 - t1:.1f}s (run {res.seconds:.1f}s)")
    _ok(res)
    assert res.values == (PROMPT_TOKENS + DECODE_STEPS) * 576 + _cache_values(case)


def test_cli_csim_layer(tmp_path, capsys):
    """plait hls csim layer --artifact DIR: a saved compiled model's layer through the top."""
    import argparse
    from plait.hls.cli import register_cli
    from plait.ir.serialize import save
    g, w = _compile_small(*layer_graph(64, 4, 2, 16, 96, seed=6))
    save(g, w, tmp_path / "model")
    p = argparse.ArgumentParser()
    register_cli(p.add_subparsers(dest="cmd"))
    a = p.parse_args(["csim", "layer", "--artifact", str(tmp_path / "model"), "--tokens", "3", "--decode", "1"])
    assert a.fn(a) == 0
    out = capsys.readouterr().out
    assert "bit-exact" in out and "up=lut_core" in out and "vitis_hls -f" in out
    build = Path(out.split("build: ")[1].split()[0])
    assert (build / "vectors.txt").read_text().startswith("plait-vectors 1")
    a = p.parse_args(["csim", "layer", "--recipe", "w4a8-lut"])
    with pytest.raises(HlsError, match="--artifact"):
        a.fn(a)
    a = p.parse_args(["csim", "layer", "--artifact", str(tmp_path / "model"), "--layer", "3"])
    with pytest.raises(HlsError, match="1 decoder layers"):
        a.fn(a)
    # the top-level CLI hands a compiler in for --recipe
    p2 = argparse.ArgumentParser()
    register_cli(p2.add_subparsers(dest="cmd"), compile_model=lambda recipe: (g, w))
    a = p2.parse_args(["csim", "layer", "--recipe", "any", "--tokens", "2", "--decode", "0", "--json"])
    assert a.fn(a) == 0
    assert '"ok": true' in capsys.readouterr().out
