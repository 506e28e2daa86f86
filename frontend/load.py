"""``load_model``: any source -> (IR graph, weight store), via ``torch.export``."""
from __future__ import annotations

import numpy as np

from plait.ir import Graph, WeightStore, verify

from .capture import export_llm, model_meta, program_from_exported
from .lower import FrontendError, Program, lower_program
from .models import build_model

WEIGHT_DTYPES = {"f32": "float32", "f16": "float16", "bf16": "float32"}  # bf16 values stored in float32


def weight_aliases(model) -> dict[str, str]:
    """Every state-dict name -> the canonical name of its tensor (tied weights share one).

    The canonical name is the first in ``named_parameters`` order, e.g.
    ``lm_head.weight -> model.embed_tokens.weight`` for tied embeddings.
    """
    first: dict[int, str] = {}
    alias: dict[str, str] = {}
    for name, t in list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False)):
        alias[name] = first.setdefault(id(t), name)
    return alias


def canonicalize(prog: Program, alias: dict[str, str]) -> Program:
    for i in prog.inputs:
        if i.kind == "param":
            i.weight = alias.get(i.weight, i.weight)
    return prog


def _check_dtype(dtype: str) -> None:
    if dtype not in WEIGHT_DTYPES:
        raise FrontendError(f"unsupported weight dtype {dtype!r} (supported: {', '.join(WEIGHT_DTYPES)})")


def _to_numpy(t, dtype: str) -> np.ndarray:
    import torch
    t = t.detach()
    if dtype == "f16":
        return t.to(torch.float16).numpy()
    if dtype == "bf16":
        return t.to(torch.bfloat16).to(torch.float32).numpy()
    return t.to(torch.float32).numpy()


def fill_weights(graph: Graph, model, dtype: str = "f32", shape_only: bool = False) -> WeightStore:
    """A weight store with every weight the graph names, taken from ``model``."""
    tensors = dict(model.named_parameters(remove_duplicate=False))
    tensors.update(dict(model.named_buffers(remove_duplicate=False)))
    ws = WeightStore()
    for node in graph.params():
        name = node.attrs["weight"]
        if name in ws:
            continue
        if name not in tensors:
            raise FrontendError(f"graph weight {name!r} is not in the model's state dict")
        t = tensors[name]
        if shape_only or t.is_meta:
            ws.declare(name, tuple(t.shape), WEIGHT_DTYPES[dtype])
        else:
            ws[name] = _to_numpy(t, dtype)
    return ws


def param_count(graph: Graph, weights: WeightStore) -> int:
    """Number of weight elements the graph uses (tied weights counted once)."""
    return int(sum(int(np.prod(weights.info(n).shape, dtype=np.int64)) for n in graph.weight_names()))


def graph_name(source: str) -> str:
    import os
    base = os.path.basename(os.path.normpath(str(source)))
    return base[:-5] if base.endswith(".gguf") else (base or "model")


def import_model(model, *, source: str = "", name: str = "model", dtype: str = "f32",
                 shape_only: bool = False, via: str = "fx") -> tuple[Graph, WeightStore]:
    """Capture a Llama-family transformers model and convert it to (graph, weights).

    ``via="fx"`` reads the ``torch.export`` program directly; ``via="mlir"``
    imports it with torch-mlir first and reads the torch-dialect MLIR.
    """
    _check_dtype(dtype)
    ep = export_llm(model)
    if via == "fx":
        prog = program_from_exported(ep)
    elif via == "mlir":
        from .mlir import exported_to_mlir, program_from_mlir
        prog = program_from_mlir(exported_to_mlir(ep))
    else:
        raise FrontendError(f"unknown import path {via!r} (use 'fx' or 'mlir')")
    canonicalize(prog, weight_aliases(model))
    g = lower_program(prog, name=name, param_dtype=dtype, meta=model_meta(model, source))
    ws = fill_weights(g, model, dtype, shape_only)
    g.meta["weight_dtype"] = dtype
    g.meta["n_params"] = param_count(g, ws)
    g.meta["shape_only"] = bool(shape_only)
    g.meta["import_path"] = via
    verify(g, ws)
    return g, ws


def load_model(source, *, shape_only: bool = False, dtype: str = "f32", seed: int = 0,
               progress: bool = True, via: str = "fx") -> tuple[Graph, WeightStore]:
    """Load a model from a source (see :mod:`plait.frontend.models`) as (graph, weights).

    The graph takes ``%tokens : i64[1,S]`` and returns ``%logits : f32[1,S,vocab]``;
    weights are named as in the HF state dict; ``graph.meta`` records the config.
    """
    _check_dtype(dtype)
    model, desc = build_model(source, shape_only=shape_only, seed=seed, progress=progress)
    return import_model(model, source=desc, name=graph_name(source), dtype=dtype,
                        shape_only=shape_only, via=via)


# Peak memory of a compile, per weight element: the transformers model in float32, the
# IR's float32 copy, and the passes' working arrays.  Measured: SmolLM2-135M with the
# w8a8-smooth recipe (calibration included) peaks at 1.52 GB RSS, i.e. about 7 bytes per
# parameter above the process itself; the estimate keeps a margin.
COMPILE_BYTES_PER_PARAM = 8
COMPILE_BASE_BYTES = 1 << 30          # the Python process with torch and transformers loaded


def estimate_compile_memory(source, *, shape_only: bool = False) -> int:
    """Bytes a compile of ``source`` needs at its peak, from its config alone (nothing is
    loaded): refused up front when they do not fit (``plait.ir.limits.check_memory``)."""
    import torch
    from transformers import AutoModelForCausalLM

    from .models import hf_config
    if shape_only:
        return COMPILE_BASE_BYTES
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config(source), dtype=torch.float32)
    n = sum(p.numel() for p in model.parameters())
    return COMPILE_BASE_BYTES + COMPILE_BYTES_PER_PARAM * n
