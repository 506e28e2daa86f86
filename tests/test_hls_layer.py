"""One decoder layer in HLS C++ (hls/src/plait_layer.h: RMSNorm -> q/k/v -> RoPE ->
attention -> o -> residual -> RMSNorm -> gate/up -> SwiGLU -> down -> residual), in g++
C simulation, equal integer for integer to exact mode (plait.ir.exact.ExactInterpreter)
through a prefill and decode steps.  The linears' P is the contract's per-group integer
product (the engines' own C simulation is tests/test_hls_engines.py)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")

from plait.hls.layer_tb import layer_case, layer_graph, run_layer_csim  # noqa: E402
from plait.hls.sfu_tb import SfuMismatch  # noqa: E402
from plait.ir.numerics.act import static_scale  # noqa: E402
from plait.ir.types import ActSpec  # noqa: E402

RNG = np.random.default_rng(11)


def test_layer_smollm2_shapes_prefill_and_decode():
    """SmolLM2-135M's layer shapes (hidden 576, 9 heads on 3 kv heads of 64, MLP 1536):
    a 9-token prefill (with a massive-activation token), two decode steps, a chunk of 3."""
    g, ws = layer_graph(576, 9, 3, 64, 1536, seed=1)
    case = layer_case(g, ws, [RNG.integers(0, 64, 9), [0], [5], RNG.integers(0, 64, 3)])
    assert run_layer_csim([case]) == 14 * 576


def test_layer_static_scales_and_bias():
    """Static (calibrated) input scales on o and down (values beyond them saturate),
    q/k/v biases, MHA and GQA head layouts."""
    cases = []
    for i, (h, hkv) in enumerate(((4, 4), (6, 2))):
        m, e = static_scale(1.5)
        acts = {"o": ActSpec("static", m, e), "down": ActSpec("static", *static_scale(0.3))}
        g, ws = layer_graph(64, h, hkv, 16, 96, acts=acts, qkv_bias=True, seed=2 + i)
        cases.append(layer_case(g, ws, [RNG.integers(0, 64, 5), [3], [1]], name=f"layer/{i}"))
    run_layer_csim(cases)


def test_layer_mismatch_is_reported():
    g, ws = layer_graph(32, 2, 1, 16, 48, seed=4)
    case = layer_case(g, ws, [RNG.integers(0, 64, 4), [2]])
    case["arrays"]["exp_y1"] = case["arrays"]["exp_y1"].copy()
    case["arrays"]["exp_y1"][0, 5] -= 1
    with pytest.raises(SfuMismatch) as e:
        run_layer_csim([case])
    assert e.value.array == "y1" and e.value.index == 5
