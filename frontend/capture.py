"""Capture with ``torch.export`` and read the exported program into the neutral form.

Llama-family models (LlamaForCausalLM and the same shape: Mistral, Qwen2 with
q/k/v bias, ...) are captured with their module forwards substituted by the
``plait::`` custom ops of :mod:`.torch_ops` (see :func:`substituted`):

* ``*RMSNorm.forward``        -> ``plait::rmsnorm``
* ``*Attention.forward``      -> q/k/v ``nn.Linear`` + ``plait::rope`` (q and k)
  + ``plait::attention`` + the ``o_proj`` ``nn.Linear``
* ``*MLP.forward`` (SiLU)     -> gate/up ``nn.Linear`` + ``plait::swiglu`` + ``down_proj``
* the model's top forwards    -> embedding, the decoder layers (their own HF
  forward: two residual adds), final norm, ``lm_head``; no mask, no cache
  object, no position tensors (the IR keeps positions and the KV cache).

Substitution is per instance and undone on exit, so the model is unchanged
afterwards.  The exported graph has one dynamic dimension, the sequence length
``S`` of ``input_ids [1, S]``.
"""
from __future__ import annotations

import contextlib
import json
import types
from typing import Any, Iterator, Optional

import torch
from torch import nn

from . import torch_ops
from .lower import Dynamic, FrontendError, InputRecord, OpRecord, Program, Ref, UnsupportedOpError, ir_dtype

# model_type values with the Llama block structure (q/k/v/o projections, gate/up/down MLP,
# two RMSNorms per layer, rotary embeddings)
LLAMA_LIKE = ("llama", "mistral", "qwen2")
SUPPORTED_ROPE = ("default", "linear", "llama3")


class UnsupportedModelError(FrontendError):
    """A model architecture or option the Llama-family capture does not handle."""


# --------------------------------------------------------------------------- model facts
def rope_settings(config) -> tuple[float, Optional[dict]]:
    """(theta, scaling dict or None) from a transformers config (4.x and 5.x spellings)."""
    params = getattr(config, "rope_parameters", None)
    if params is None:
        params = dict(getattr(config, "rope_scaling", None) or {})
        params.setdefault("rope_theta", getattr(config, "rope_theta", 10000.0))
    params = dict(params)
    if "rope_theta" not in params:
        if any(isinstance(v, dict) for v in params.values()):
            raise UnsupportedModelError("per-layer-type RoPE parameters are not supported")
        params["rope_theta"] = getattr(config, "rope_theta", 10000.0)
    theta = float(params.pop("rope_theta"))
    kind = params.get("rope_type", params.get("type", "default")) or "default"
    if kind not in SUPPORTED_ROPE:
        raise UnsupportedModelError(f"RoPE type {kind!r} is not supported (supported: {', '.join(SUPPORTED_ROPE)})")
    if float(params.get("partial_rotary_factor", 1.0)) != 1.0:
        raise UnsupportedModelError("partial rotary embeddings (partial_rotary_factor < 1) are not supported")
    if kind == "default":
        return theta, None
    scaling = {"rope_type": kind}
    keys = ("factor",) if kind == "linear" else ("factor", "low_freq_factor", "high_freq_factor",
                                                  "original_max_position_embeddings")
    for k in keys:
        if k not in params:
            raise UnsupportedModelError(f"RoPE scaling {kind!r} is missing {k!r}")
        scaling[k] = float(params[k]) if k != "original_max_position_embeddings" else int(params[k])
    return theta, scaling


def head_dim_of(config) -> int:
    return int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)


def check_llama_like(model: nn.Module) -> None:
    cfg = getattr(model, "config", None)
    mtype = getattr(cfg, "model_type", None)
    if mtype not in LLAMA_LIKE:
        raise UnsupportedModelError(f"model type {mtype!r} ({type(model).__name__}) is not supported; "
                                    f"the frontend captures the Llama family: {', '.join(LLAMA_LIKE)}")
    for attr in ("model", "lm_head"):
        if not hasattr(model, attr):
            raise UnsupportedModelError(f"{type(model).__name__} has no .{attr}; expected a *ForCausalLM model")
    base = model.model
    for attr in ("embed_tokens", "layers", "norm"):
        if not hasattr(base, attr):
            raise UnsupportedModelError(f"{type(base).__name__} has no .{attr}")
    for i, layer in enumerate(base.layers):
        for attr in ("self_attn", "mlp", "input_layernorm", "post_attention_layernorm"):
            if not hasattr(layer, attr):
                raise UnsupportedModelError(f"model.layers.{i} has no .{attr}")
        for attr in ("q_proj", "k_proj", "v_proj", "o_proj"):
            if not isinstance(getattr(layer.self_attn, attr, None), nn.Linear):
                raise UnsupportedModelError(f"model.layers.{i}.self_attn.{attr} is not an nn.Linear")
        extra = [n for n, _ in layer.self_attn.named_children() if n not in ("q_proj", "k_proj", "v_proj", "o_proj")]
        if extra:
            raise UnsupportedModelError(f"model.layers.{i}.self_attn has extra submodules {extra} "
                                        f"(e.g. q/k norms) that the Llama capture does not handle")
    if getattr(cfg, "use_sliding_window", False) and getattr(cfg, "sliding_window", None):
        # Qwen2 with sliding windows on some layers: not representable by the IR's attention
        raise UnsupportedModelError("sliding-window attention (use_sliding_window=True) is not supported")


# --------------------------------------------------------------------------- substituted forwards
def _lm_forward(self, input_ids):
    return self.lm_head(self.model(input_ids))


def _base_forward(self, input_ids):
    x = self.embed_tokens(input_ids)
    for layer in self.layers:
        x = layer(x)
    return self.norm(x)


def _make_attn_forward(n_heads: int, n_kv: int, head_dim: int, theta: float, scaling: str, scale: float):
    def forward(self, hidden_states, *args, **kwargs):
        q = torch.ops.plait.rope(self.q_proj(hidden_states), n_heads, head_dim, theta, scaling)
        k = torch.ops.plait.rope(self.k_proj(hidden_states), n_kv, head_dim, theta, scaling)
        v = self.v_proj(hidden_states)
        o = torch.ops.plait.attention(q, k, v, n_heads, n_kv, head_dim, scale)
        return self.o_proj(o), None
    return forward


def _rmsnorm_forward(self, x):
    eps = getattr(self, "variance_epsilon", getattr(self, "eps", None))
    return torch.ops.plait.rmsnorm(x, self.weight, float(eps))


def _mlp_forward(self, x):
    return self.down_proj(torch.ops.plait.swiglu(self.gate_proj(x), self.up_proj(x)))


def _is_silu(act) -> bool:
    return isinstance(act, nn.SiLU) or type(act).__name__ in ("SiLUActivation", "SiLU")


@contextlib.contextmanager
def substituted(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, ``model``'s forwards call the ``plait::`` ops (see module doc)."""
    check_llama_like(model)
    cfg = model.config
    hd = head_dim_of(cfg)
    theta, scaling = rope_settings(cfg)
    sc = torch_ops.scaling_text(scaling)
    patched: list[tuple[nn.Module, Any]] = []

    def patch(mod: nn.Module, fn) -> None:
        patched.append((mod, mod.__dict__.get("forward")))
        mod.forward = types.MethodType(fn, mod)

    try:
        patch(model, _lm_forward)
        patch(model.model, _base_forward)
        for mod in model.modules():
            cls = type(mod).__name__
            if cls.endswith("RMSNorm"):
                patch(mod, _rmsnorm_forward)
        for layer in model.model.layers:
            at = layer.self_attn
            scale = float(getattr(at, "scaling", hd ** -0.5))
            patch(at, _make_attn_forward(cfg.num_attention_heads, cfg.num_key_value_heads, hd, theta, sc, scale))
            mlp = layer.mlp
            if all(hasattr(mlp, a) for a in ("gate_proj", "up_proj", "down_proj")) and _is_silu(getattr(mlp, "act_fn", None)):
                patch(mlp, _mlp_forward)
            # other activations keep the HF forward: their ATen ops then fail with a clear error
        yield model
    finally:
        for mod, old in reversed(patched):
            if old is None:
                del mod.forward
            else:
                mod.forward = old


def export_llm(model: nn.Module, *, example_len: int = 8) -> torch.export.ExportedProgram:
    """``torch.export`` a Llama-family causal LM: ``input_ids [1, S] -> logits [1, S, vocab]``."""
    model.eval()
    max_pos = int(getattr(model.config, "max_position_embeddings", 4096) or 4096)
    example_len = max(2, min(example_len, max_pos))
    device = next(model.parameters()).device
    tokens = torch.zeros((1, example_len), dtype=torch.long, device=device)
    seq = torch.export.Dim("S", min=2, max=max(max_pos, 3))
    with substituted(model), torch.no_grad():
        return torch.export.export(model, (tokens,), dynamic_shapes=({1: seq},), strict=False)


def export_module(module: nn.Module, example_inputs: tuple, dynamic_shapes=None) -> torch.export.ExportedProgram:
    """``torch.export`` any module (no substitution): for generic, non-LLM graphs."""
    module.eval()
    with torch.no_grad():
        return torch.export.export(module, tuple(example_inputs), dynamic_shapes=dynamic_shapes, strict=False)


# --------------------------------------------------------------------------- FX -> Program
def op_name(target) -> str:
    """Common spelling of an op: ``aten.add.Tensor``, ``aten.linear``, ``plait.rope``."""
    if isinstance(target, torch._ops.OpOverload):
        ns, _, rest = target._schema.name.partition("::")
        ov = target._overloadname
        return f"{ns}.{rest}" + ("" if ov in ("default", "") else f".{ov}")
    return getattr(target, "__name__", str(target))


def module_origin(node) -> tuple[str, str]:
    """(nn.Module path, module class name) of an FX node, from ``nn_module_stack``."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "", ""
    path, cls = list(stack.values())[-1]
    cls = cls if isinstance(cls, str) else getattr(cls, "__name__", str(cls))
    return str(path), cls.rsplit(".", 1)[-1]


class _Dims:
    """Maps the program's shape symbols to IR dimension names."""

    def __init__(self, names: dict):
        self.names = names

    def shape(self, size, where: str) -> tuple:
        out = []
        for d in size:
            if isinstance(d, int):
                out.append(d)
                continue
            key = str(d)
            try:
                out.append(int(key))
                continue
            except ValueError:
                pass
            if key not in self.names:
                raise FrontendError(f"{where}: dimension {key!r} is not a plain symbol of the inputs "
                                    f"(known: {', '.join(f'{k}->{v}' for k, v in self.names.items()) or 'none'})")
            out.append(self.names[key])
        return tuple(out)


def _const(a, where: str):
    if a is None or isinstance(a, (bool, int, float, str)):
        return a
    if isinstance(a, (torch.dtype, torch.device, torch.layout, torch.memory_format)):
        return str(a)
    if isinstance(a, (list, tuple)):
        return [_const(x, where) for x in a]
    raise FrontendError(f"{where}: argument {a!r} of type {type(a).__name__} is not a constant the frontend reads")


def program_from_exported(ep: torch.export.ExportedProgram, dim_names: Optional[dict] = None) -> Program:
    """Read an :class:`~torch.export.ExportedProgram` into the neutral :class:`Program`.

    ``dim_names`` maps positions of user-input dims to IR names, default
    ``{(0, 1): "S"}`` (dim 1 of the first input is the sequence length).
    """
    from torch.export.graph_signature import InputKind

    dim_names = {(0, 1): "S"} if dim_names is None else dim_names
    sig = ep.graph_signature
    specs = {s.arg.name: s for s in sig.input_specs if hasattr(s.arg, "name")}
    nodes = list(ep.graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    user = [n for n in placeholders if specs[n.name].kind == InputKind.USER_INPUT]
    syms = {}
    for (i, d), nm in dim_names.items():
        if i < len(user):
            val = user[i].meta["val"]
            if d < val.dim() and not isinstance(val.shape[d], int):
                syms[str(val.shape[d])] = nm
    dims = _Dims(syms)
    prog = Program()
    scalars: dict[str, str] = {}
    for n in placeholders:
        spec = specs[n.name]
        val = n.meta["val"]
        shape = dims.shape(val.shape, f"input {n.name}")
        if spec.kind == InputKind.USER_INPUT:
            prog.inputs.append(InputRecord(n.name, "user", shape, ir_dtype(val.dtype)))
        elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER):
            prog.inputs.append(InputRecord(n.name, "param", shape, ir_dtype(val.dtype), spec.target))
        else:
            raise FrontendError(f"input {n.name} of kind {spec.kind.name} ({spec.target}) is not supported")
    for n in nodes:
        if n.op == "output":
            outs = n.args[0]
            prog.outputs = [o.name for o in (outs if isinstance(outs, (list, tuple)) else [outs])]
        elif n.op == "call_function":
            name = op_name(n.target)
            origin, mtype = module_origin(n)
            val = n.meta.get("val")
            where = f"{name} at {origin or 'top level'}"
            if not isinstance(val, torch.Tensor):
                if isinstance(val, (tuple, list)) and any(isinstance(v, torch.Tensor) for v in val):
                    raise UnsupportedOpError(name, origin, "ops with several tensor results are not supported", mtype)
                scalars[n.name] = where     # run-time shape checks: no data flow into the IR
                continue
            args = _normalized_args(n, where, scalars)
            prog.ops.append(OpRecord(name, args, n.name, dims.shape(val.shape, where), ir_dtype(val.dtype),
                                     origin, mtype))
        elif n.op != "placeholder":
            raise FrontendError(f"FX node {n.name} of kind {n.op} is not supported")
    return prog


def _normalized_args(n, where: str, scalars: dict) -> list:
    """Positional arguments in schema order, defaults filled in (as torch-mlir does)."""
    def conv(a):
        if isinstance(a, torch.fx.Node):
            return Dynamic(scalars[a.name]) if a.name in scalars else Ref(a.name)
        if isinstance(a, (list, tuple)) and any(isinstance(x, torch.fx.Node) for x in a):
            return [conv(x) for x in a]
        return _const(a, where)

    target = n.target
    if not isinstance(target, torch._ops.OpOverload):
        return [conv(a) for a in n.args] + [conv(v) for v in n.kwargs.values()]
    out = []
    for i, arg in enumerate(target._schema.arguments):
        if i < len(n.args):
            out.append(conv(n.args[i]))
        elif arg.name in n.kwargs:
            out.append(conv(n.kwargs[arg.name]))
        elif arg.has_default_value():
            out.append(_const(arg.default_value, where))
        else:
            raise FrontendError(f"{where}: missing argument {arg.name!r}")
    return out


def _sliding_window(cfg) -> Optional[int]:
    window = getattr(cfg, "sliding_window", None)
    if getattr(cfg, "model_type", "") == "qwen2" and not getattr(cfg, "use_sliding_window", False):
        window = None
    return window


def context_of_config(cfg) -> int:
    """The context length a model of config ``cfg`` runs with (``graph.meta["max_position"]``):
    ``max_position_embeddings``, or its sliding window when shorter; 0 when unknown."""
    max_pos = int(getattr(cfg, "max_position_embeddings", 0) or 0)
    window = _sliding_window(cfg)
    return max_pos if not window else min(max_pos, int(window))


def model_meta(model: nn.Module, source: str) -> dict:
    """The JSON-serialisable model facts recorded in ``graph.meta``."""
    cfg = model.config
    theta, scaling = rope_settings(cfg)
    window = _sliding_window(cfg)
    meta = {
        "family": cfg.model_type,
        "architecture": type(model).__name__,
        "hidden": int(cfg.hidden_size),
        "intermediate": int(cfg.intermediate_size),
        "n_layers": int(cfg.num_hidden_layers),
        "n_heads": int(cfg.num_attention_heads),
        "n_kv_heads": int(cfg.num_key_value_heads),
        "head_dim": head_dim_of(cfg),
        "vocab": int(cfg.vocab_size),
        "rope_theta": theta,
        "rope_scaling": scaling,
        "rms_eps": float(cfg.rms_norm_eps),
        "max_position": context_of_config(cfg),
        "tie_embeddings": bool(getattr(cfg, "tie_word_embeddings", False)),
        "attention_bias": bool(getattr(cfg, "attention_bias", False) or cfg.model_type == "qwen2"),
        "bos_token_id": getattr(cfg, "bos_token_id", None),
        "eos_token_id": getattr(cfg, "eos_token_id", None),
        "source": source,
    }
    if window:
        meta["sliding_window"] = int(window)
    return json.loads(json.dumps(meta))
