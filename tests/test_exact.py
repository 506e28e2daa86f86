"""Exact mode (ir/exact.py) and the quantize_act pass on tiny random models; SmolLM2 (slow).

The integer model is checked against its own contract (every linear's P equals
``linear_int`` of the int8 rows it was given; decode == prefill), against float
mode (close, not equal: the accuracy reference), and for its errors.
"""
from __future__ import annotations

import numpy as np
import pytest

from plait.frontend import load_model
from plait.ir import Interpreter, parse_graph, print_graph
from plait.ir.exact import ExactError, ExactInterpreter
from plait.ir.numerics import linear_int
from plait.passes import PassError, load_recipe, make_pass, run_recipe


def _compiled(recipe: str, model: str = "qwen2-tiny", **kw):
    g, w = load_model(model)
    return run_recipe(g, w, load_recipe(recipe), **kw)[:2]


def test_quantize_act_marks_every_linear_input_and_prints():
    g, w = _compiled("w8a8")
    text = print_graph(g)
    lin_inputs = {n.inputs[0] for n in g.nodes("linear")}
    assert lin_inputs and all(g.node(i).type.act is not None for i in lin_inputs)
    assert text.count("act(i8, dynamic)") == len(lin_inputs)
    assert all(n.attrs["kv_cache"].startswith("i8") for n in g.nodes("attention"))
    g2 = parse_graph(text)                                     # the spec round-trips through text
    assert all(g2.node(i).type.act == g.node(i).type.act for i in lin_inputs)


@pytest.mark.parametrize("recipe", ["w8a8", "w4a8-lut", "w2a8-lut"])
def test_exact_linears_equal_the_contract_and_track_float(recipe):
    g, w = _compiled(recipe)
    seen = []

    def on_linear(node, x8, qw, p):
        assert x8.dtype == np.int8 and x8.shape[0] == p.shape[0]
        assert np.array_equal(p, linear_int(x8, qw)[0]), node.name
        seen.append(node.name)

    ex = ExactInterpreter(g, w, on_linear=on_linear)
    ids = np.random.default_rng(0).integers(0, 250, (1, 12))
    le = ex.logits(ids)[0]
    assert set(seen) == {n.name for n in g.nodes("linear")}
    lf = Interpreter(g, w).logits(ids)[0]
    # random tiny models have flat logits; exact mode must follow float mode closely
    tol = {"w8a8": 0.05, "w4a8-lut": 0.05, "w2a8-lut": 0.1}[recipe]
    assert np.abs(le - lf).max() < tol * np.abs(lf).max() + 0.05


def test_exact_decode_equals_prefill():
    g, w = _compiled("w8a8")
    ids = np.random.default_rng(1).integers(0, 250, (1, 10))
    full = ExactInterpreter(g, w).run(ids)[g.outputs[0]]
    ex = ExactInterpreter(g, w)
    ex.run(ids[:, :7])
    steps = [ex.run(ids[:, t:t + 1])[g.outputs[0]] for t in range(7, 10)]
    assert np.array_equal(steps[-1][:, -1], full[:, -1])
    ex.reset()
    assert np.array_equal(ex.run(ids)[g.outputs[0]], full)        # reset forgets the cache


def test_exact_is_deterministic_and_integer():
    g, w = _compiled("w8a8")
    ids = np.arange(20)[None] * 11 % 250
    a = ExactInterpreter(g, w).run(ids)[g.outputs[0]]
    b = ExactInterpreter(g, w).run(ids)[g.outputs[0]]
    assert a.dtype == np.int64 and np.array_equal(a, b)


def test_exact_refuses_a_graph_without_activation_specs():
    g, w = _compiled("default")
    with pytest.raises(ExactError, match=r"exact mode: %.*q_proj.*no int8 activation spec.*quantize_act"):
        ExactInterpreter(g, w)


def test_static_activation_quantization_needs_and_uses_calibration():
    g, w = load_model("qwen2-tiny")
    g, w = run_recipe(g, w, load_recipe("default"))[:2]
    with pytest.raises(PassError, match="run the calibrate pass before static quantize_act"):
        make_pass("quantize_act", mode="static").run(g, w, _ctx())
    g, w = load_model("qwen2-tiny")
    cal = make_pass("calibrate", tokens=64, window=32)
    ctx = _ctx(calibration={"ids": np.arange(64) * 3 % 250})
    cal.run(g, w, ctx)
    assert make_pass("quantize_act", mode="static").run(g, w, _ctx())
    specs = {g.node(n.inputs[0]).type.act for n in g.nodes("linear")}
    assert all(s.mode == "static" and 128 <= s.m <= 255 for s in specs)
    ids = np.arange(12)[None] * 19 % 250          # other tokens than calibration: some saturate
    le, lf = ExactInterpreter(g, w).logits(ids)[0], Interpreter(g, w).logits(ids)[0]
    assert np.abs(le - lf).max() < 0.15 * np.abs(lf).max()


def test_quantize_act_conflicting_spec_is_an_error():
    g, w = _compiled("w8a8")
    x = next(g.nodes("linear")).inputs[0]
    node = g.node(x)
    from plait.ir.types import ActSpec
    node.type = node.type.with_(act=ActSpec("static", 200, -10))
    with pytest.raises(PassError, match=f"%{x} already has act\\(i8, static"):
        make_pass("quantize_act").run(g, w, _ctx())


def _ctx(**kw):
    from plait.passes import PassContext
    c = PassContext()
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def test_exact_runs_the_packed_tensors():
    """With the pack pass, exact mode multiplies the unpacked engine beats: corrupting one
    packed code changes the output, the unpacked codes/scales alone do not matter."""
    g, w = _compiled("w8a8")
    assert any("pack" in p.attrs for p in g.params())
    ids = np.arange(9)[None] * 13 % 250
    ref = ExactInterpreter(g, w).run(ids)[g.outputs[0]]
    param = next(p for p in g.params() if "pack" in p.attrs and "q_proj" in p.attrs["weight"])
    name = param.attrs["pack"]["arrays"]["codes"]
    codes = np.array(w[name])
    codes[0, 0] ^= 0x40
    w[name] = codes
    assert not np.array_equal(ExactInterpreter(g, w).run(ids)[g.outputs[0]], ref)
