"""The smooth pass (SmoothQuant folded offline) on tiny random models."""
from __future__ import annotations

import numpy as np
import pytest

from plait.frontend import load_model
from plait.ir import Interpreter
from plait.ir.exact import ExactInterpreter
from plait.passes import PassContext, PassOptionError, load_recipe, make_pass, run_recipe
from plait.passes.calibrate import stat_names

IDS = {"ids": np.arange(96) * 7 % 250}


def _calibrated(model="llama-tiny"):
    g, w = load_model(model)
    make_pass("calibrate", tokens=96, window=48).run(g, w, PassContext(calibration=IDS))
    return g, w


def _smooth(g, w, **opts):
    ctx = PassContext()
    changed = make_pass("smooth", **opts).run(g, w, ctx)
    return changed, ctx.details


@pytest.mark.parametrize("model", ["llama-tiny", "qwen2-tiny", "smollm2-tiny"])
def test_smoothing_leaves_the_float_model_unchanged(model):
    g, w = _calibrated(model)
    ids = np.arange(10)[None] * 13 % 250
    before = Interpreter(g, w).logits(ids)
    changed, det = _smooth(g, w)
    assert changed
    kinds = {name.rsplit(".", 2)[-2] for name in det["smoothed"]}
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= kinds
    after = Interpreter(g, w).logits(ids)
    assert np.abs(after - before).max() < 1e-4 * np.abs(before).max()


def test_statistics_are_rescaled_to_the_smoothed_inputs():
    g, w = _calibrated()
    _smooth(g, w, alpha=0.8)
    name = stat_names("model.layers.0.mlp.down_proj.weight")[1]
    rescaled = np.asarray(w[name]).copy()
    make_pass("calibrate", tokens=96, window=48).run(g, w, PassContext(calibration=IDS))
    assert np.allclose(np.asarray(w[name]), rescaled, rtol=1e-4, atol=1e-6)


def test_smoothing_rescues_int8_activations_from_an_outlier_channel():
    """Plant an outlier feature (x100 in one RMSNorm weight, /100 in the linears' columns:
    the same float model); per-token int8 activations then lose the other features,
    unless the pass migrates the outlier into the weights."""
    def build(smooth):
        g, w = load_model("llama-tiny")
        norm = "model.layers.0.post_attention_layernorm.weight"
        gam = np.asarray(w[norm]).copy()
        gam[5] *= 100.0
        w[norm] = gam
        for proj in ("gate_proj", "up_proj"):
            name = f"model.layers.0.mlp.{proj}.weight"
            m = np.asarray(w[name]).copy()
            m[:, 5] /= 100.0
            w[name] = m
        make_pass("calibrate", tokens=96, window=48).run(g, w, PassContext(calibration=IDS))
        if smooth:
            _smooth(g, w)
        return run_recipe(g, w, load_recipe("w8a8"))[:2]

    ids = np.arange(12)[None] * 17 % 250
    errs = []
    for smooth in (False, True):
        g, w = build(smooth)
        lf, le = Interpreter(g, w).logits(ids), ExactInterpreter(g, w).logits(ids)
        errs.append(np.abs(le - lf).mean())
    assert errs[1] < 0.5 * errs[0], errs


def test_what_the_pass_leaves_alone():
    g, w = load_model("llama-tiny")
    changed, det = _smooth(g, w)                              # no calibration statistics
    assert not changed and "run the calibrate pass first" in det["skipped"]["model.layers.0.mlp.down_proj.weight"]
    g, w = _calibrated()
    g, w = run_recipe(g, w, load_recipe("default"))[:2]       # quantized, except the (untied) LM head
    changed, det = _smooth(g, w)
    assert "not a float weight" in det["skipped"]["model.layers.0.self_attn.q_proj.weight"]
    assert [n for n in det["smoothed"]] == ["lm_head.weight"]
    g, w = _calibrated()
    changed, det = _smooth(g, w, exclude=["*down_proj*"])
    assert "model.layers.0.mlp.down_proj.weight" not in det["smoothed"]
    assert "model.layers.0.mlp.up_proj.weight" in det["smoothed"]


def test_alpha_is_checked():
    with pytest.raises(PassOptionError, match="alpha"):
        make_pass("smooth", alpha=1.5)
