"""Frontend: torch.export capture of the Llama family -> IR, checked against transformers."""
import os
import time
from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from plait.frontend import (  # noqa: E402
    MODEL_CONFIGS, FrontendError, UnknownModelError, UnsupportedModelError, UnsupportedOpError,
    build_model, export_module, import_model, load_hf_model, load_model, load_tokenizer, lower_program,
    program_from_exported,
)
from plait.frontend.capture import export_llm, substituted  # noqa: E402
from plait.frontend.models import named_config  # noqa: E402
from plait.ir import Interpreter, parse_graph, print_graph, verify  # noqa: E402
from plait.tests.graphs import GeluBlock  # noqa: E402

TINY = ["llama-tiny", "smollm2-tiny", "tinyllama-tiny", "llama3-tiny", "mistral-tiny", "qwen2-tiny"]
LLM_OPS = {"input", "param", "embedding", "rmsnorm", "linear", "rope", "attention", "swiglu", "add"}


def _hf_logits_with_decode(hf, ids, steps):
    """Prefill logits and the logits of each greedy decode step, with transformers' KV cache."""
    with torch.no_grad():
        out = hf(torch.from_numpy(ids), use_cache=True)
        logits = [out.logits.numpy()]
        for _ in range(steps):
            nxt = out.logits[:, -1:].argmax(-1)
            out = hf(nxt, past_key_values=out.past_key_values, use_cache=True)
            logits.append(out.logits.numpy())
    return logits


@pytest.fixture(scope="module")
def tiny_models():
    out = {}
    for name in TINY:
        g, ws = load_model(name, progress=False)
        out[name] = (g, ws, load_hf_model(name))
    return out


@pytest.mark.parametrize("name", TINY)
def test_family_matches_transformers_prefill_and_decode(tiny_models, name):
    g, ws, hf = tiny_models[name]
    verify(g, ws)
    ids = np.random.default_rng(3).integers(0, g.meta["vocab"], size=(1, 13)).astype(np.int64)
    ref = _hf_logits_with_decode(hf, ids, steps=3)
    it = Interpreter(g, ws)
    got = [it.logits(ids)]
    for r in ref[:-1]:
        got.append(it.logits(np.array([[int(np.argmax(got[-1][0, -1]))]], dtype=np.int64)))
    assert got[0].shape == (1, 13, g.meta["vocab"])
    for k, (a, b) in enumerate(zip(got, ref)):
        assert np.abs(a - b).max() < 1e-4, f"{name} step {k}: max diff {np.abs(a - b).max()}"
    # the logits are not trivially small: the comparison means something
    assert np.abs(ref[0]).max() > 0.5


@pytest.mark.parametrize("name", TINY)
def test_graph_structure_one_op_per_llm_block(tiny_models, name):
    g, ws, hf = tiny_models[name]
    cfg = hf.config
    n = cfg.num_hidden_layers
    ops = Counter(node.op for node in g.nodes())
    assert set(ops) == LLM_OPS
    assert ops["rmsnorm"] == 2 * n + 1 and ops["rope"] == 2 * n
    assert ops["attention"] == n and ops["swiglu"] == n and ops["add"] == 2 * n
    assert ops["linear"] == 7 * n + 1 and ops["embedding"] == 1
    assert [g.node(i).type.text() for i in g.inputs] == ["i64[1,S]"]
    assert g.outputs == ["logits"] and g.node("logits").type.text() == f"f32[1,S,{cfg.vocab_size}]"
    # weights are named as in the HF state dict, tied embeddings once
    sd_names = set(hf.state_dict())
    assert set(ws.names()) <= sd_names
    tied = bool(cfg.tie_word_embeddings)
    assert ("lm_head.weight" in ws) is (not tied)
    assert g.node(g.node("logits").inputs[1]).attrs["weight"] == (
        "model.embed_tokens.weight" if tied else "lm_head.weight")
    att = next(g.nodes("attention"))
    hd = cfg.hidden_size // cfg.num_attention_heads if not getattr(cfg, "head_dim", None) else cfg.head_dim
    assert att.attrs == {"n_heads": cfg.num_attention_heads, "n_kv_heads": cfg.num_key_value_heads,
                         "head_dim": hd, "scale": hd ** -0.5}
    assert att.origin == "model.layers.0.self_attn"
    norm = g.node("layers.0.input_layernorm")
    assert norm.op == "rmsnorm" and norm.attrs["eps"] == pytest.approx(cfg.rms_norm_eps)
    m = g.meta
    assert (m["hidden"], m["n_layers"], m["n_heads"], m["n_kv_heads"], m["head_dim"], m["vocab"]) == (
        cfg.hidden_size, n, cfg.num_attention_heads, cfg.num_key_value_heads, hd, cfg.vocab_size)
    assert m["tie_embeddings"] is tied and m["n_params"] == sum(
        p.numel() for p in hf.parameters())
    # printed text round-trips
    assert print_graph(parse_graph(print_graph(g))) == print_graph(g)


def test_family_specifics(tiny_models):
    g, _, _ = tiny_models["qwen2-tiny"]
    q = g.node("layers.0.self_attn.q_proj")
    assert len(q.inputs) == 3 and g.node(q.inputs[2]).attrs["weight"] == "model.layers.0.self_attn.q_proj.bias"
    assert len(g.node("layers.0.self_attn.o_proj").inputs) == 2
    assert g.meta["attention_bias"] is True
    g, _, _ = tiny_models["llama3-tiny"]
    rope = g.node("layers.0.self_attn.rope")
    assert rope.attrs["scaling"] == {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                     "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    assert rope.attrs["theta"] == 500000.0 and g.meta["rope_scaling"] == rope.attrs["scaling"]
    g, _, _ = tiny_models["mistral-tiny"]
    assert g.meta["sliding_window"] == 32 and g.meta["max_position"] == 32
    g, _, _ = tiny_models["tinyllama-tiny"]
    assert next(g.nodes("attention")).attrs["n_kv_heads"] == 1


def test_substitution_is_exact_and_undone():
    hf = load_hf_model("llama-tiny")
    ids = torch.randint(0, 256, (1, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = hf(ids).logits
        with substituted(hf):
            sub = hf(ids)
        export_llm(hf)
        after = hf(ids).logits
    assert torch.equal(before, after)                    # nothing left patched
    assert (sub - before).abs().max() < 1e-5             # the plait:: ops compute what HF computes
    assert "forward" not in vars(hf) and "forward" not in vars(hf.model.layers[0].self_attn)


def test_seed_gives_reproducible_random_weights():
    g0, w0 = load_model("llama-tiny", seed=0, progress=False)
    g1, w1 = load_model("llama-tiny", seed=1, progress=False)
    hf0 = load_hf_model("llama-tiny", seed=0)
    name = "model.layers.0.mlp.up_proj.weight"
    assert np.array_equal(w0[name], hf0.state_dict()[name].numpy())
    assert not np.array_equal(w0[name], w1[name])
    assert print_graph(g0).replace("seed 0", "seed 1") == print_graph(g1)


def test_local_hf_directory_source(tmp_path):
    hf = load_hf_model("qwen2-tiny", seed=5)
    hf.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").exists() and list(tmp_path.glob("*.safetensors"))
    g, ws = load_model(str(tmp_path), progress=False)
    assert g.meta["source"].startswith("hf_dir:") and g.meta["family"] == "qwen2"
    ids = np.arange(5, 16, dtype=np.int64)[None]
    with torch.no_grad():
        ref = hf(torch.from_numpy(ids)).logits.numpy()
    assert np.abs(Interpreter(g, ws).logits(ids) - ref).max() < 1e-4
    assert np.array_equal(ws["model.layers.1.self_attn.k_proj.bias"],
                          hf.state_dict()["model.layers.1.self_attn.k_proj.bias"].numpy())
    assert load_tokenizer(str(tmp_path)) is None     # saved without tokenizer files


def test_shape_only_llama2_7b():
    t0 = time.perf_counter()
    g, ws = load_model("llama2-7b", shape_only=True, progress=False)
    dt = time.perf_counter() - t0
    assert dt < 60, f"shape-only 7B took {dt:.1f}s"
    assert ws.shape_only and g.meta["shape_only"] is True
    assert abs(g.meta["n_params"] - 6.74e9) / 6.74e9 < 0.01
    assert g.meta["n_params"] == 6_738_415_616
    ops = Counter(node.op for node in g.nodes())
    assert ops["attention"] == 32 and ops["linear"] == 7 * 32 + 1
    assert ws.info("model.layers.31.mlp.down_proj.weight").shape == (4096, 11008)
    verify(g, ws)
    with pytest.raises(Exception, match="no data"):
        ws["model.norm.weight"]


def test_shape_only_graph_equals_real_graph():
    gs, _ = load_model("mistral-tiny", shape_only=True, progress=False)
    gr, _ = load_model("mistral-tiny", progress=False)
    strip = lambda g: "\n".join(l for l in print_graph(g).splitlines() if not l.strip().startswith("meta "))  # noqa: E731
    assert strip(gs) == strip(gr)


def test_half_precision_weights():
    g, ws = load_model("smollm2-tiny", dtype="f16", progress=False)
    assert ws["model.layers.0.self_attn.q_proj.weight"].dtype == np.float16
    assert g.node("model.layers.0.self_attn.q_proj.weight").type.dtype == "f16"
    hf = load_hf_model("smollm2-tiny")
    ids = np.arange(1, 9, dtype=np.int64)[None]
    with torch.no_grad():
        ref = hf(torch.from_numpy(ids)).logits.numpy()
    got = Interpreter(g, ws).logits(ids)
    diff = np.abs(got - ref).max()
    assert 0 < diff < 2e-2
    with pytest.raises(FrontendError, match="unsupported weight dtype 'int3'"):
        load_model("smollm2-tiny", dtype="int3")


# ---------------------------------------------------------------------------- errors
class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(8, 8)
        self.block = GeluBlock()

    def forward(self, x):
        return self.block(torch.nn.functional.silu(self.inp(x)))


def test_generic_module_lowers_until_the_unsupported_op():
    ep = export_module(_Net(), (torch.randn(1, 4, 8),),
                       dynamic_shapes=({1: torch.export.Dim("S", min=2, max=64)},))
    prog = program_from_exported(ep)
    assert [r.target for r in prog.ops] == ["aten.linear", "aten.silu", "aten.linear", "aten.gelu", "aten.add.Tensor"]
    with pytest.raises(UnsupportedOpError) as e:
        lower_program(prog, input_names=("x",), output_names=("y",))
    msg = str(e.value)
    assert "aten.gelu" in msg and "'block.act'" in msg and "GELU" in msg
    assert e.value.op == "aten.gelu" and e.value.origin == "block.act"


def test_supported_generic_module_runs():
    net = nn.Sequential(nn.Linear(8, 16), nn.SiLU(), nn.Linear(16, 8))
    x = torch.randn(1, 5, 8)
    ep = export_module(net, (x,), dynamic_shapes=({1: torch.export.Dim("S", min=2, max=64)},))
    g = lower_program(program_from_exported(ep), input_names=("x",), output_names=("y",))
    from plait.ir import WeightStore
    ws = WeightStore()
    for k, v in net.state_dict().items():
        ws[k] = v.numpy()
    verify(g, ws)
    assert [n.op for n in g.nodes() if n.op not in ("input", "param")] == ["linear", "silu", "linear"]
    y = Interpreter(g, ws).run({"x": x.numpy()})["y"]
    assert np.abs(y - net(x).detach().numpy()).max() < 1e-5


def test_llama_with_gelu_mlp_names_op_and_module():
    cfg = named_config("llama-tiny")
    cfg.hidden_act = "gelu"
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_config(cfg)
    with pytest.raises(UnsupportedOpError, match=r"aten\.gelu in module 'model\.layers\.0\.mlp\.act_fn'"):
        import_model(model)


def test_unknown_and_bad_sources(tmp_path):
    with pytest.raises(UnknownModelError, match="unknown model 'gpt-17'.*llama2-7b"):
        load_model("gpt-17")
    with pytest.raises(UnknownModelError, match="no config.json"):
        load_model(str(tmp_path))
    bad = tmp_path / "weights.bin"
    bad.write_bytes(b"x")
    with pytest.raises(UnknownModelError, match="neither a .gguf file"):
        load_model(str(bad))
    g = tmp_path / "broken.gguf"
    g.write_bytes(b"not a gguf at all")
    with pytest.raises(FrontendError, match="not a readable GGUF file"):
        load_model(str(g))
    with pytest.raises(FrontendError, match="import path 'onnx'"):
        import_model(load_hf_model("llama-tiny"), via="onnx")


def test_unsupported_architectures_are_refused():
    from transformers import AutoConfig, AutoModelForCausalLM
    gpt2 = AutoModelForCausalLM.from_config(AutoConfig.for_model("gpt2", n_layer=1, n_embd=32, n_head=2))
    with pytest.raises(UnsupportedModelError, match="model type 'gpt2'"):
        import_model(gpt2)
    cfg = named_config("llama-tiny")
    cfg.rope_parameters = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0}
    with pytest.raises(UnsupportedModelError, match="RoPE type 'yarn'"):
        import_model(AutoModelForCausalLM.from_config(named_config("llama-tiny")).__class__(cfg))


def test_tokenizers_of_named_configs():
    assert load_tokenizer("llama-tiny") is None
    assert set(MODEL_CONFIGS) >= {"smollm2-135m-random", "tinyllama-1.1b", "llama2-7b", "llama3-8b",
                                  "mistral-7b", "qwen2-0.5b"}
    assert build_model("llama2-7b", shape_only=True)[0].model.embed_tokens.weight.is_meta


def test_gguf_tokenizer_is_converted_once_and_a_damaged_cache_entry_rebuilt(tmp_path, monkeypatch):
    """SmolLM2's tokenizer is built from its GGUF file once per cache and read back from
    the cache afterwards, with the same encodings and chat template; an entry that does not
    load is converted again and rewritten, not an error."""
    import shutil

    from transformers import AutoTokenizer

    from plait.ir.cache import cache_dir
    from plait.passes.textdata import default_text
    ref = load_tokenizer("smollm2")                  # fills the shared cache (at most one conversion)
    entries = sorted((cache_dir() / "tokenizers").glob("*.gguf-*"))
    assert entries and (entries[-1] / "done").is_file()
    shutil.copytree(entries[-1], tmp_path / "tokenizers" / entries[-1].name)
    monkeypatch.setenv("PLAIT_CACHE", str(tmp_path))
    conversions, orig = [], AutoTokenizer.from_pretrained

    def counting(*a, **k):
        if "gguf_file" in k:
            conversions.append(k["gguf_file"])
        return orig(*a, **k)
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", counting)
    text = default_text()[:20000]
    chat = [{"role": "user", "content": "What is 2+2?"}]

    def same(tok):
        assert tok.encode(text) == ref.encode(text) and tok.eos_token_id == ref.eos_token_id
        assert tok.apply_chat_template(chat, add_generation_prompt=True) == \
            ref.apply_chat_template(chat, add_generation_prompt=True)
    same(load_tokenizer("smollm2"))
    assert conversions == []                         # read from the cache
    (tmp_path / "tokenizers" / entries[-1].name / "tokenizer.json").write_text("{not json")
    same(load_tokenizer("smollm2"))
    assert len(conversions) == 1                     # converted again ...
    same(load_tokenizer("smollm2"))
    assert len(conversions) == 1                     # ... and the entry rewritten


# ---------------------------------------------------------------------------- GGUF files
def _write_gguf(path, hf, arch):
    """Write a tiny HF model as a float32 GGUF file the way llama.cpp's converter lays it out."""
    import gguf
    cfg = hf.config
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    w.add_vocab_size(cfg.vocab_size)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    names = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
             "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down"}

    def permute(t, n_head):  # llama.cpp's q/k row interleaving
        return t.reshape(n_head, 2, t.shape[0] // n_head // 2, *t.shape[1:]).swapaxes(1, 2).reshape(t.shape)

    for k, v in hf.state_dict().items():
        v = v.numpy().astype(np.float32)
        if k == "model.embed_tokens.weight":
            g = "token_embd.weight"
        elif k == "model.norm.weight":
            g = "output_norm.weight"
        elif k == "lm_head.weight":
            if cfg.tie_word_embeddings:
                continue
            g = "output.weight"
        else:
            parts = k.split(".")
            layer, mod, kind = parts[2], ".".join(parts[3:-1]), parts[-1]
            g = f"blk.{layer}.{names[mod]}.{kind}"
            if arch == "llama" and mod in ("self_attn.q_proj", "self_attn.k_proj") and kind == "weight":
                v = permute(v, cfg.num_attention_heads if "q_proj" in mod else cfg.num_key_value_heads)
        w.add_tensor(g, np.ascontiguousarray(v))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("name,arch", [("llama-tiny", "llama"), ("smollm2-tiny", "llama"), ("qwen2-tiny", "qwen2")])
def test_gguf_file_source(tmp_path, name, arch):
    hf = load_hf_model(name, seed=2)
    path = tmp_path / f"{name}.gguf"
    _write_gguf(path, hf, arch)
    back = load_hf_model(str(path))
    for k, v in hf.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    assert back.config.tie_word_embeddings == hf.config.tie_word_embeddings
    g, ws = load_model(str(path), progress=False)
    assert g.meta["source"] == f"gguf:{path}" and g.name == name
    ids = np.arange(3, 14, dtype=np.int64)[None]
    with torch.no_grad():
        ref = hf(torch.from_numpy(ids)).logits.numpy()
    assert np.abs(Interpreter(g, ws).logits(ids) - ref).max() < 1e-4
    gs, wss = load_model(str(path), shape_only=True, progress=False)
    assert wss.shape_only and gs.meta["n_params"] == g.meta["n_params"]
