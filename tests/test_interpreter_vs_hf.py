"""Acceptance: the IR interpreter on SmolLM2-135M-Instruct (fp32) vs transformers.

The fp32 reference is transformers' own GGUF loader (dequantized Q4_1 weights).
"""
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from plait.frontend import load_hf_model, load_model, load_tokenizer  # noqa: E402
from plait.frontend.gguf_loader import find_smollm2_gguf  # noqa: E402
from plait.ir import Interpreter, generate  # noqa: E402

pytestmark = pytest.mark.slow

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time"]
N_TOKENS = 32


@pytest.fixture(scope="module")
def reference():
    """transformers' own GGUF load of the file (the fp32 reference model)."""
    from transformers import AutoModelForCausalLM
    d, f = find_smollm2_gguf()
    return AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def plait_model():
    return load_model("smollm2", progress=False)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("smollm2")


def test_our_gguf_reader_equals_transformers_loader(reference):
    ours = load_hf_model("smollm2")
    a, b = ours.state_dict(), reference.state_dict()
    assert set(a) == set(b)
    for k in b:
        assert torch.equal(a[k], b[k]), k
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "intermediate_size", "vocab_size", "rms_norm_eps", "tie_word_embeddings",
                "max_position_embeddings", "bos_token_id", "eos_token_id"):
        assert getattr(ours.config, key) == getattr(reference.config, key), key
    assert ours.config.rope_parameters["rope_theta"] == reference.config.rope_parameters["rope_theta"]


def test_smollm2_graph_facts(plait_model):
    g, ws = plait_model
    m = g.meta
    assert (m["n_layers"], m["hidden"], m["n_heads"], m["n_kv_heads"], m["vocab"]) == (30, 576, 9, 3, 49152)
    assert m["tie_embeddings"] and "lm_head.weight" not in ws
    assert m["n_params"] == 134_515_008


def _hf_greedy(model, ids, n):
    out_ids = []
    with torch.no_grad():
        out = model(torch.tensor([ids]), use_cache=True)
        for _ in range(n):
            nxt = int(out.logits[0, -1].argmax())
            out_ids.append(nxt)
            out = model(torch.tensor([[nxt]]), past_key_values=out.past_key_values, use_cache=True)
    return out_ids


@pytest.mark.parametrize("prompt", PROMPTS)
def test_logits_and_greedy_tokens_match_transformers(reference, plait_model, tokenizer, prompt):
    g, ws = plait_model
    ids = tokenizer(prompt)["input_ids"]
    interp = Interpreter(g, ws)
    got = interp.logits(np.array([ids], dtype=np.int64))
    with torch.no_grad():
        ref = reference(torch.tensor([ids])).logits.numpy()
    diff = float(np.abs(got - ref).max())
    assert diff < 1e-3, f"max abs logit diff {diff}"
    ours = generate(interp, ids, N_TOKENS)
    theirs = _hf_greedy(reference, ids, N_TOKENS)
    assert len(ours) == N_TOKENS
    assert ours == theirs, (tokenizer.decode(ours), tokenizer.decode(theirs))
