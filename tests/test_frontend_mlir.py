"""The torch-mlir import path gives the same IR as the torch.export (FX) path."""
import os
import sys

import numpy as np
import pytest
import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest.importorskip("torch_mlir", reason="torch-mlir is an optional dependency (pip install plait[mlir])")

from plait.frontend import (  # noqa: E402
    FrontendError, UnsupportedOpError, export_module, import_model, load_hf_model, lower_program,
    program_from_exported,
)
from plait.frontend.capture import export_llm  # noqa: E402
from plait.frontend.mlir import MlirUnavailable, exported_to_mlir, program_from_mlir  # noqa: E402
from plait.ir import Interpreter, print_graph  # noqa: E402
from plait.tests.graphs import GeluBlock  # noqa: E402

DYN = ({1: torch.export.Dim("S", min=2, max=64)},)


def _text_without_path_meta(g) -> str:
    g = g.copy()
    g.meta.pop("import_path")
    return print_graph(g)


def _same_nodes(g1, g2) -> None:
    n1, n2 = list(g1.nodes()), list(g2.nodes())
    assert len(n1) == len(n2)
    for a, b in zip(n1, n2):
        assert (a.name, a.op, a.inputs, a.attrs, a.type, a.origin) == (b.name, b.op, b.inputs, b.attrs, b.type, b.origin)
    assert g1.inputs == g2.inputs and g1.outputs == g2.outputs


@pytest.mark.parametrize("name", ["llama-tiny", "qwen2-tiny", "llama3-tiny"])
def test_fx_and_mlir_paths_give_the_same_graph(name):
    hf = load_hf_model(name)
    g_fx, w_fx = import_model(hf, source=name, via="fx")
    g_ml, w_ml = import_model(hf, source=name, via="mlir")
    assert g_fx.meta["import_path"] == "fx" and g_ml.meta["import_path"] == "mlir"
    _same_nodes(g_fx, g_ml)
    assert _text_without_path_meta(g_fx) == _text_without_path_meta(g_ml)
    assert sorted(w_fx.names()) == sorted(w_ml.names())
    ids = np.array([[3, 1, 4, 1, 5, 9, 2, 6]], dtype=np.int64)
    assert np.array_equal(Interpreter(g_fx, w_fx).logits(ids), Interpreter(g_ml, w_ml).logits(ids))


def test_mlir_text_holds_custom_ops_named_weights_and_module_paths():
    text = exported_to_mlir(export_llm(load_hf_model("qwen2-tiny")))
    for op in ("rmsnorm", "rope", "attention", "swiglu"):
        assert f'torch.operator "torch.plait.{op}"' in text
    assert "torch.aten.linear" in text and "torch.aten.embedding" in text
    assert 'torch.constant.str "model.layers.1.self_attn.v_proj.bias"' in text
    assert "torch.vtensor.literal" not in text                         # no weights frozen into the text
    assert 'loc("model.layers.0.self_attn (Qwen2Attention)"' in text
    # the text is all the MLIR path needs: parse it back from a string
    prog = program_from_mlir(text)
    targets = [r.target for r in prog.ops]
    assert targets.count("plait.attention") == 2 and targets.count("aten.linear") == 15
    assert {i.weight for i in prog.inputs if i.kind == "param"} >= {"lm_head.weight", "model.norm.weight"}


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = GeluBlock()

    def forward(self, x):
        return self.block(x)


def test_unsupported_op_through_mlir_names_op_and_module():
    ep = export_module(_Net(), (torch.randn(1, 4, 8),), dynamic_shapes=DYN)
    prog = program_from_mlir(exported_to_mlir(ep))
    with pytest.raises(UnsupportedOpError) as e:
        lower_program(prog, input_names=("x",), output_names=("y",))
    assert e.value.op == "aten.gelu" and e.value.origin == "block.act"
    assert "'block.act' (GELU)" in str(e.value)


def test_stock_torch_mlir_import_is_read_or_refused_clearly():
    from torch_mlir import fx
    # frozen weights (stock export_and_import): refused, saying why
    module = fx.export_and_import(_Net(), torch.randn(1, 4, 8), dynamic_shapes=DYN)
    with pytest.raises(FrontendError, match="frozen into the MLIR as a literal"):
        program_from_mlir(module.operation.get_asm(enable_debug_info=True))

    # no weights, no name locations: the op is identified by its position and file:line
    class Act(nn.Module):
        def forward(self, x):
            return torch.nn.functional.gelu(x) + x
    module = fx.export_and_import(Act(), torch.randn(1, 4, 8), dynamic_shapes=DYN)
    prog = program_from_mlir(module.operation.get_asm(enable_debug_info=True))
    with pytest.raises(UnsupportedOpError, match=r"aten\.gelu in MLIR op #\d+ at test_frontend_mlir\.py:\d+"):
        lower_program(prog, input_names=("x",), output_names=("y",))


def test_generic_module_same_program_on_both_paths():
    net = nn.Sequential(nn.Linear(8, 16), nn.SiLU(), nn.Linear(16, 8))
    ep = export_module(net, (torch.randn(1, 5, 8),), dynamic_shapes=DYN)
    p_fx = program_from_exported(ep)
    p_ml = program_from_mlir(exported_to_mlir(ep))
    assert [(r.target, r.shape, r.dtype, r.origin) for r in p_fx.ops] == \
        [(r.target, r.shape, r.dtype, r.origin) for r in p_ml.ops]
    g1 = lower_program(p_fx, input_names=("x",), output_names=("y",))
    g2 = lower_program(p_ml, input_names=("x",), output_names=("y",))
    _same_nodes(g1, g2)


def test_bad_mlir_text_and_missing_torch_mlir(monkeypatch):
    with pytest.raises(FrontendError, match="cannot parse the MLIR text"):
        program_from_mlir("this is not mlir")
    with pytest.raises(FrontendError, match="no func.func"):
        program_from_mlir("module {\n}")
    monkeypatch.setitem(sys.modules, "torch_mlir", None)
    with pytest.raises(MlirUnavailable, match="needs torch-mlir"):
        program_from_mlir("module {\n}")


@pytest.mark.slow
def test_smollm2_fx_and_mlir_paths_agree():
    hf = load_hf_model("smollm2")
    g_fx, _ = import_model(hf, source="smollm2", via="fx")
    g_ml, _ = import_model(hf, source="smollm2", via="mlir")
    assert len(g_fx) == len(g_ml) > 500
    _same_nodes(g_fx, g_ml)
