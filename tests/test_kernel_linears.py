"""Exact mode with every linear on the TVM kernels (plait.runtime.kernels.linears, the
``linear_p`` hook of ExactInterpreter): the logits and greedy tokens of the tiny model
equal exact mode's own, integer for integer, for DSP-chain (dense, 2:4) and LUT-core
(W4, W2) artifacts on the llvm target (the same code runs on cuda)."""
from __future__ import annotations

import numpy as np
import pytest

from plait.cli import main
from plait.ir import generate
from plait.ir.exact import ExactError, ExactInterpreter

pytest.importorskip("tvm", reason="TVM is an optional dependency (plait[kernels])")

IDS = np.array([1, 7, 42, 99, 3, 250, 17, 5], np.int64)


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory):
    from plait.tests.graphs import tiny_hf_dir
    return tiny_hf_dir(tmp_path_factory.mktemp("hf") / "tiny")


_ARTS: dict = {}


def _artifact_dir(tiny_hf, tmp_path_factory, recipe):
    """The tiny model compiled with ``recipe`` (once per module run)."""
    if recipe not in _ARTS:
        out = tmp_path_factory.mktemp("art") / recipe
        assert main(["compile", str(tiny_hf), "--recipe", recipe, "-o", str(out)]) == 0
        _ARTS[recipe] = out
    return _ARTS[recipe]


def _artifact(tiny_hf, tmp_path_factory, recipe):
    from plait.runtime.artifact import load_artifact
    art = load_artifact(_artifact_dir(tiny_hf, tmp_path_factory, recipe))
    return art.graph, art.weights


@pytest.mark.parametrize("recipe, kernels", [
    ("w8a8", {("sparse", "dense")}),
    ("w8a8-sparse24-wanda", {("sparse", "2:4"), ("sparse", "dense")}),
    ("w4a8-lut", {("lut", "W4"), ("sparse", "dense")}),
    ("w2a8-lut", {("lut", "W2"), ("sparse", "dense")}),
])
def test_kernel_linears_equal_exact_mode(tiny_hf, tmp_path_factory, recipe, kernels):
    from plait.runtime.kernels.linears import KernelLinears
    g, w = _artifact(tiny_hf, tmp_path_factory, recipe)
    ref = ExactInterpreter(g, w)
    lin = KernelLinears("llvm")
    ker = ExactInterpreter(g, w, linear_p=lin)
    np.testing.assert_array_equal(ker.logits(IDS[None, :]), ref.logits(IDS[None, :]))
    assert generate(ker, IDS, 4) == generate(ref, IDS, 4)
    print(f"\n{recipe}: {lin.summary()}")
    assert set(lin.calls) == kernels, lin.calls
    n_linear = sum(1 for n in g.nodes() if n.op == "linear")
    # logits, then generate: the prefill and 3 steps (the 4th token is not fed back)
    assert sum(lin.calls.values()) == n_linear * (1 + 1 + 3), lin.calls


def test_a_wrong_p_shape_names_the_linear(tiny_hf, tmp_path_factory):
    g, w = _artifact(tiny_hf, tmp_path_factory, "w8a8")
    bad = ExactInterpreter(g, w, linear_p=lambda node, x8, qw, packed: np.zeros((1, 3), np.int64))
    with pytest.raises(ExactError, match=r"linear_p returned P of shape \(1, 3\)"):
        bad.logits(IDS[None, :])


def test_cuda_device_runs_exact_mode_on_the_kernels(tiny_hf, tmp_path_factory, monkeypatch):
    """The cuda device's exact runner is exact mode with KernelLinears: here with the
    kernels built for llvm in place of cuda (no GPU), the Session's tokens equal the cpu
    device's; its float mode says it runs the fp32 GEMM (tested below)."""
    import plait.runtime.kernels.linears as kl
    from plait.runtime import Session
    from plait.runtime.devices import CudaDevice
    out = _artifact_dir(tiny_hf, tmp_path_factory, "w4a8-lut")
    monkeypatch.setattr(CudaDevice, "probe", classmethod(lambda cls: (True, "")))
    real = kl.KernelLinears
    monkeypatch.setattr(kl, "KernelLinears", lambda target: real("llvm"))
    with Session(out, device="cuda", exact=True) as s, Session(out, device="cpu", exact=True) as c:
        assert "TVM cuda kernels" in s.runner_note
        assert list(s.generate_ids(IDS, 5, stop_ids=set())) == list(c.generate_ids(IDS, 5, stop_ids=set()))
    with Session(out, device="cuda") as s:
        assert s.runner_note.startswith("float mode, linears on the TVM cuda fp32 GEMM")


def _float_linears_llvm(monkeypatch):
    """The cuda device's float path with the fp32 GEMM built for llvm in place of cuda."""
    import plait.runtime.kernels.fgemm as fg
    from plait.runtime.devices import CudaDevice
    monkeypatch.setattr(CudaDevice, "probe", classmethod(lambda cls: (True, "")))
    real, made = fg.FloatKernelLinears, []

    def on_llvm(target):
        made.append(real("llvm"))
        return made[-1]
    monkeypatch.setattr(fg, "FloatKernelLinears", on_llvm)
    return made


@pytest.mark.parametrize("recipe", ["w4a8-lut", "w8a8-sparse24-wanda"])
def test_cuda_device_float_mode_runs_linears_on_the_fp32_gemm(tiny_hf, tmp_path_factory,
                                                              monkeypatch, recipe):
    """The cuda device's float mode: the graph runner with every linear on the TVM fp32
    GEMM, each weight uploaded once (here built for llvm: no GPU).  Its logits equal
    the cpu graph runner's to float32 rounding (another summation order) and its greedy
    tokens are the same."""
    from plait.runtime import Session
    made = _float_linears_llvm(monkeypatch)
    out = _artifact_dir(tiny_hf, tmp_path_factory, recipe)
    g, w = _artifact(tiny_hf, tmp_path_factory, recipe)
    n_linear = sum(1 for _ in g.nodes("linear"))
    with Session(out, device="cuda") as s, Session(out, device="cpu", fast=False) as c:
        lin = made[-1]
        np.testing.assert_allclose(s.forward(IDS, s.new_cache()), c.forward(IDS, c.new_cache()),
                                   rtol=1e-4, atol=1e-4)
        assert sum(lin.calls.values()) == n_linear
        assert list(s.generate_ids(IDS, 5, stop_ids=set())) == list(c.generate_ids(IDS, 5, stop_ids=set()))
        weights = {n.inputs[1] for n in g.nodes("linear")}
        assert set(lin.calls) == weights and len(lin._w) == len(weights)   # one upload each
    print(f"\n{recipe}: {lin.summary()}")


def test_cuda_float_mode_refuses_the_host_fast_decoder(tiny_hf, tmp_path_factory, monkeypatch):
    from plait.runtime import DeviceUnavailable, Session
    _float_linears_llvm(monkeypatch)
    out = _artifact_dir(tiny_hf, tmp_path_factory, "w4a8-lut")
    with pytest.raises(DeviceUnavailable, match="fast=True is the cpu device's C decoder"):
        Session(out, device="cuda", fast=True)


def test_cuda_float_mode_on_a_gpu(tiny_hf, tmp_path_factory):
    from plait.runtime import Session
    from plait.runtime.kernels.build import cuda_enabled, gpu_present
    if not (cuda_enabled() and gpu_present()):
        pytest.skip("no CUDA GPU here")
    out = _artifact_dir(tiny_hf, tmp_path_factory, "w4a8-lut")
    with Session(out, device="cuda") as s, Session(out, device="cpu", fast=False) as c:
        np.testing.assert_allclose(s.forward(IDS, s.new_cache()), c.forward(IDS, c.new_cache()),
                                   rtol=1e-4, atol=1e-4)
        assert list(s.generate_ids(IDS, 5, stop_ids=set())) == list(c.generate_ids(IDS, 5, stop_ids=set()))


def test_float_kernel_linears_with_a_bias():
    """The hook's contract (x @ W^T + b for any leading shape), against numpy."""
    from types import SimpleNamespace
    from plait.runtime.kernels import FloatKernelLinears
    rng = np.random.default_rng(3)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((2, 3, 48), (20, 48), (20,)))
    lin = FloatKernelLinears("llvm")
    node = SimpleNamespace(inputs=["x", "w", "b"])
    y = lin(node, x, w, b)
    assert y.shape == (2, 3, 20) and y.dtype == np.float32
    np.testing.assert_allclose(y, x @ w.T + b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lin(node, x[0, 0], w), x[0, 0] @ w.T, rtol=1e-5, atol=1e-5)
    assert lin.calls["w"] == 2 and len(lin._w) == 1


def test_cuda_device_without_a_gpu_says_why():
    from plait.runtime import DeviceUnavailable
    from plait.runtime.devices import CudaDevice, open_device
    from plait.runtime.kernels.build import gpu_present
    if gpu_present():
        pytest.skip("a CUDA GPU is present")
    ok, why = CudaDevice.probe()
    assert not ok and ("no CUDA GPU" in why or "without CUDA" in why), why
    with pytest.raises(DeviceUnavailable, match="device 'cuda' is not available"):
        open_device("cuda")


def test_cuda_kernels_equal_exact_mode_on_a_gpu(tiny_hf, tmp_path_factory):
    from plait.runtime.kernels.build import cuda_enabled, gpu_present
    from plait.runtime.kernels.linears import KernelLinears
    if not (cuda_enabled() and gpu_present()):
        pytest.skip("no CUDA GPU here")
    g, w = _artifact(tiny_hf, tmp_path_factory, "w4a8-lut")
    ref, lin = ExactInterpreter(g, w), KernelLinears("cuda")
    ker = ExactInterpreter(g, w, linear_p=lin)
    np.testing.assert_array_equal(ker.logits(IDS[None, :]), ref.logits(IDS[None, :]))
    assert generate(ker, IDS, 4) == generate(ref, IDS, 4)
