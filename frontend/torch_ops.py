"""Custom PyTorch ops (namespace ``plait``) that stand for the IR's LLM-level ops.

Before capture, the forward methods of a model's RMSNorm, attention and MLP
modules are replaced (see :mod:`.capture`) by calls to these ops, so that the
exported graph holds one node per RMSNorm / RoPE / attention / SwiGLU instead of
dozens of ATen ops.  Each op has

* an eager kernel that computes what transformers computes (so the substituted
  model still runs, and matches the original model), and
* a fake kernel (shapes only) for ``torch.export`` and the meta device.

Schemas (all activations are ``[B, S, features]``, heads packed in the last dim):

``plait::rmsnorm(Tensor x, Tensor weight, float eps) -> Tensor``
``plait::rope(Tensor x, int n_heads, int head_dim, float theta, str scaling) -> Tensor``
    rotary embedding (half-split layout) at positions ``0..S-1`` of this call;
    ``scaling`` is the JSON text of the RoPE scaling dict, ``""`` for none.  (In the
    IR the positions continue after the KV cache; the eager kernel has no cache.)
``plait::attention(Tensor q, Tensor k, Tensor v, int n_heads, int n_kv_heads, int head_dim, float scale) -> Tensor``
    causal attention with grouped KV heads over this call's keys.
``plait::swiglu(Tensor gate, Tensor up) -> Tensor``  ``silu(gate) * up``.

The torch-mlir FX importer emits these as ``torch.operator "torch.plait.<op>"``.
"""
from __future__ import annotations

import json

import torch
import torch.nn.functional as F

from plait.ir.ops import rope_inv_freq

NAMESPACE = "plait"


# --------------------------------------------------------------------------- rmsnorm
@torch.library.custom_op("plait::rmsnorm", mutates_args=())
def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # Same arithmetic as transformers' LlamaRMSNorm.
    h = x.to(torch.float32)
    var = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(var + eps)
    return weight * h.to(x.dtype)


@rmsnorm.register_fake
def _rmsnorm_fake(x, weight, eps):
    return torch.empty_like(x)


# --------------------------------------------------------------------------- rope
def scaling_text(scaling) -> str:
    """The ``scaling`` argument of ``plait::rope``: canonical JSON, ``""`` for none."""
    return json.dumps(scaling, sort_keys=True) if scaling else ""


def _cos_sin(s: int, head_dim: int, theta: float, scaling: str, device) -> tuple[torch.Tensor, torch.Tensor]:
    inv = torch.tensor(rope_inv_freq(head_dim, theta, json.loads(scaling) if scaling else None),
                       dtype=torch.float32, device=device)
    pos = torch.arange(s, device=device, dtype=torch.float32)
    freqs = pos[:, None] * inv[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


@torch.library.custom_op("plait::rope", mutates_args=())
def rope(x: torch.Tensor, n_heads: int, head_dim: int, theta: float, scaling: str) -> torch.Tensor:
    b, s, _ = x.shape
    cos, sin = _cos_sin(s, head_dim, theta, scaling, x.device)
    xs = x.reshape(b, s, n_heads, head_dim)
    half = head_dim // 2
    rot = torch.cat((-xs[..., half:], xs[..., :half]), dim=-1)
    out = xs * cos[:, None, :].to(x.dtype) + rot * sin[:, None, :].to(x.dtype)
    return out.reshape(b, s, n_heads * head_dim)


@rope.register_fake
def _rope_fake(x, n_heads, head_dim, theta, scaling):
    return torch.empty_like(x)


# --------------------------------------------------------------------------- attention
@torch.library.custom_op("plait::attention", mutates_args=())
def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_heads: int, n_kv_heads: int,
              head_dim: int, scale: float) -> torch.Tensor:
    # Same arithmetic as transformers' eager_attention_forward with a causal mask.
    b, s, _ = q.shape
    t = k.shape[1]
    qh = q.reshape(b, s, n_heads, head_dim).transpose(1, 2)
    kh = k.reshape(b, t, n_kv_heads, head_dim).transpose(1, 2)
    vh = v.reshape(b, t, n_kv_heads, head_dim).transpose(1, 2)
    rep = n_heads // n_kv_heads
    kh = kh.repeat_interleave(rep, dim=1)
    vh = vh.repeat_interleave(rep, dim=1)
    scores = torch.matmul(qh, kh.transpose(2, 3)) * scale
    mask = torch.ones(s, t, dtype=torch.bool, device=q.device).triu(t - s + 1)
    scores = scores.masked_fill(mask, float("-inf"))
    p = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    out = torch.matmul(p, vh)
    return out.transpose(1, 2).reshape(b, s, n_heads * head_dim)


@attention.register_fake
def _attention_fake(q, k, v, n_heads, n_kv_heads, head_dim, scale):
    return q.new_empty((*q.shape[:-1], n_heads * head_dim))


# --------------------------------------------------------------------------- swiglu
@torch.library.custom_op("plait::swiglu", mutates_args=())
def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return F.silu(gate) * up


@swiglu.register_fake
def _swiglu_fake(gate, up):
    return torch.empty_like(gate)

