"""Strict reading of a Hugging Face model directory: ``config.json`` + weight files.

transformers is lenient where a compiler must not be: a ``config.json`` without its
size keys silently takes Llama-2-7B's defaults, and a checkpoint that lacks a tensor
loads with a random one (it only warns).  Here every check names the file, the key
or the tensor, and what was expected:

* ``config.json`` must be a JSON object with a supported ``model_type`` and every
  key in :data:`REQUIRED_CONFIG_KEYS` (the keys that size the model or change its
  arithmetic).  Keys the format itself defines as optional (``num_key_value_heads``,
  ``rope_theta``, ``tie_word_embeddings``, ``head_dim``, ...) keep their documented
  defaults.
* the weights (``*.safetensors``, sharded with ``model.safetensors.index.json`` or
  not; ``pytorch_model*.bin`` when there is no safetensors file) must hold exactly
  the model's parameters -- none missing, none extra -- each with the shape the
  config implies and finite values.
"""
from __future__ import annotations

import json
import os
from typing import Any

from .lower import FrontendError

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2")
REQUIRED_CONFIG_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                        "num_attention_heads", "max_position_embeddings", "rms_norm_eps")
# checkpoints of older transformers versions store these non-persistent buffers
_IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)


def read_config(directory: str):
    """The transformers config of a HF directory, refusing what transformers would guess."""
    from transformers import AutoConfig

    path = os.path.join(directory, "config.json")
    try:
        with open(path, "rb") as f:
            raw = json.loads(f.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FrontendError(f"{path}: not valid JSON ({e})") from None
    except OSError as e:
        raise FrontendError(f"{path}: cannot be read ({e.strerror})") from None
    if not isinstance(raw, dict):
        raise FrontendError(f"{path}: expected a JSON object, found a {type(raw).__name__}")
    mt = raw.get("model_type")
    if mt is None:
        raise FrontendError(f"{path}: no 'model_type' key (supported: {', '.join(SUPPORTED_MODEL_TYPES)})")
    if mt not in SUPPORTED_MODEL_TYPES:
        raise FrontendError(f"{path}: model_type {mt!r} is not supported "
                            f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})")
    missing = [k for k in REQUIRED_CONFIG_KEYS if k not in raw]
    if missing:
        raise FrontendError(f"{path}: missing required key{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(missing)} (plait does not guess a model's size)")
    for k in REQUIRED_CONFIG_KEYS:
        v = raw[k]
        ok = (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0) if k == "rms_norm_eps" else (
            isinstance(v, int) and not isinstance(v, bool) and v > 0)
        if not ok:
            raise FrontendError(f"{path}: {k} = {v!r} is not a positive "
                                f"{'number' if k == 'rms_norm_eps' else 'integer'}")
    if raw["hidden_size"] % raw["num_attention_heads"] and "head_dim" not in raw:
        raise FrontendError(f"{path}: hidden_size {raw['hidden_size']} is not a multiple of "
                            f"num_attention_heads {raw['num_attention_heads']} and no head_dim is given")
    kw = {k: v for k, v in raw.items() if k != "model_type"}
    try:
        return AutoConfig.for_model(mt, **kw)
    except (TypeError, ValueError) as e:
        raise FrontendError(f"{path}: {e}") from None


def weight_files(directory: str) -> list[str]:
    """The checkpoint's weight files (safetensors preferred), in a stable order."""
    names = sorted(os.listdir(directory))
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.isfile(index):
        try:
            with open(index) as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise FrontendError(f"{index}: not a valid safetensors index ({e})") from None
        for s in shards:
            if not os.path.isfile(os.path.join(directory, s)):
                raise FrontendError(f"{index}: lists the shard {s}, which is missing")
        return [os.path.join(directory, s) for s in shards]
    st = [n for n in names if n.endswith(".safetensors")]
    pt = [n for n in names if n.startswith("pytorch_model") and n.endswith(".bin")]
    chosen = st or pt
    if not chosen:
        raise FrontendError(f"{directory}: no weight files (*.safetensors or pytorch_model*.bin); "
                            f"use --shape-only to plan without weights")
    return [os.path.join(directory, n) for n in chosen]


def read_state_dict(directory: str) -> tuple[dict[str, Any], dict[str, str]]:
    """``(tensors, tensor name -> file)`` of every weight file of ``directory``."""
    import torch

    state: dict[str, Any] = {}
    where: dict[str, str] = {}
    for path in weight_files(directory):
        try:
            if path.endswith(".safetensors"):
                from safetensors import safe_open
                with safe_open(path, framework="pt") as f:
                    part = {k: f.get_tensor(k) for k in f.keys()}
            else:
                part = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - safetensors / torch raise assorted errors on damaged files
            raise FrontendError(f"{path}: not a readable weight file ({type(e).__name__}: {e})") from None
        for k, t in part.items():
            if k in state:
                raise FrontendError(f"{path}: tensor {k!r} is also in {where[k]}")
            state[k], where[k] = t, path
    return state, where


def check_state_dict(config, state: dict, where: dict[str, str], directory: str) -> dict:
    """Refuse missing, extra or mis-shaped tensors; returns the tensors to load
    (:func:`check_finite` runs when the model is built from them)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        ref = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    expected = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    tied = bool(getattr(config, "tie_word_embeddings", False))
    state = {k: v for k, v in state.items() if not k.endswith(_IGNORED_SUFFIXES)}
    if tied:
        expected.pop("lm_head.weight", None)
        state.pop("lm_head.weight", None)  # some checkpoints store the tied copy too
    cfg_file = os.path.join(directory, "config.json")
    missing = sorted(set(expected) - set(state))
    if missing:
        raise FrontendError(f"{directory}: the checkpoint lacks {len(missing)} tensor"
                            f"{'s' if len(missing) > 1 else ''} that {cfg_file} requires: "
                            f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
    extra = sorted(set(state) - set(expected))
    if extra:
        raise FrontendError(f"{where[extra[0]]}: tensor{'s' if len(extra) > 1 else ''} "
                            f"{', '.join(extra[:4])}{' ...' if len(extra) > 4 else ''} "
                            f"{'are' if len(extra) > 1 else 'is'} not part of a {config.model_type} "
                            f"model as {cfg_file} describes it")
    for k, shape in expected.items():
        t = state[k]
        if tuple(t.shape) != shape:
            raise FrontendError(f"{where[k]}: tensor {k!r} has shape {list(t.shape)}, but {cfg_file} "
                                f"implies {list(shape)}")
        if not t.dtype.is_floating_point:
            raise FrontendError(f"{where[k]}: tensor {k!r} has dtype {t.dtype}, expected a float tensor")
    return state


def check_finite(state: dict, where) -> None:
    """Refuse a tensor with NaN or Inf; ``where`` maps a tensor name to its file (or is the file)."""
    import numpy as np
    import torch

    for k, t in state.items():
        bad = int((~torch.isfinite(t)).sum()) if isinstance(t, torch.Tensor) else int((~np.isfinite(t)).sum())
        if bad:
            src = where.get(k, "?") if isinstance(where, dict) else where
            raise FrontendError(f"{src}: tensor {k!r} has {bad} non-finite value{'s' if bad > 1 else ''} "
                                f"(NaN or Inf)")
