"""Small hand-built graphs shared by the tests."""
import numpy as np
import torch

from plait.ir import Graph, TensorType, WeightStore

H, HKV, HD, D, V, F = 4, 2, 8, 32, 50, 48


def tiny_block(quant: bool = False):
    """One Llama block + head, random weights: every LLM op appears once."""
    rng = np.random.default_rng(0)
    g, ws = Graph("tiny"), WeightStore()

    def param(name, shape, qspec=None, sspec=None):
        ws[name] = (rng.standard_normal(shape) * 0.2).astype(np.float32)
        return g.add("param", attrs={"weight": name}, type=TensorType(shape, "f32", qspec, sspec), name=name)

    tok = g.add("input", name="tokens", type=TensorType((1, "S"), "i64"))
    emb = param("emb", (V, D))
    x = g.add("embedding", [emb, tok], name="x", origin="model.embed_tokens")
    n1 = g.add("rmsnorm", [x, param("n1", (D,))], {"eps": 1e-5}, name="n1o")
    q = g.add("linear", [n1, param("wq", (H * HD, D))], name="q")
    k = g.add("linear", [n1, param("wk", (HKV * HD, D))], name="k")
    v = g.add("linear", [n1, param("wv", (HKV * HD, D))], name="v")
    rq = g.add("rope", [q], {"n_heads": H, "head_dim": HD, "theta": 10000.0}, name="rq")
    rk = g.add("rope", [k], {"n_heads": HKV, "head_dim": HD, "theta": 10000.0}, name="rk")
    a = g.add("attention", [rq, rk, v], {"n_heads": H, "n_kv_heads": HKV, "head_dim": HD}, name="attn")
    o = g.add("linear", [a, param("wo", (D, H * HD))], name="o")
    x2 = g.add("add", [x, o], name="x2")
    gate = g.add("linear", [x2, param("wg", (F, D))], name="gate")
    up = g.add("linear", [x2, param("wu", (F, D))], name="up")
    act = g.add("swiglu", [gate, up], name="act")
    down = g.add("linear", [act, param("wd", (D, F))], name="down")
    x3 = g.add("add", [x2, down], name="x3")
    logits = g.add("linear", [x3, emb], name="logits", origin="lm_head")
    g.outputs = [logits]
    return g, ws



LLAMA_DIMS = (64, 128, 40, 4, 2, 16)   # D, F, V, H, HKV, HD of llama()


def llama(n_layers=2, tied=True, seed=0, shape_only=False):
    """A small Llama-shaped graph with HF weight names and module-path origins
    (dimensions :data:`LLAMA_DIMS`)."""
    D, F, V, H, HKV, HD = LLAMA_DIMS
    rng = np.random.default_rng(seed)
    g, ws = Graph("llama"), WeightStore()

    def param(name, shape):
        if shape_only:
            ws.declare(name, shape)
        else:
            ws[name] = (rng.standard_normal(shape) * 0.1).astype(np.float32)
        return g.add("param", attrs={"weight": name}, type=TensorType(shape), name=name)

    tok = g.add("input", name="tokens", type=TensorType((1, "S"), "i64"))
    emb = param("model.embed_tokens.weight", (V, D))
    x = g.add("embedding", [emb, tok], name="x0", origin="model.embed_tokens")
    for i in range(n_layers):
        p = f"model.layers.{i}"
        n1 = g.add("rmsnorm", [x, param(f"{p}.input_layernorm.weight", (D,))], {"eps": 1e-5},
                   name=f"l{i}.n1", origin=f"{p}.input_layernorm")
        lin = {}
        for nm, n_out in (("q", H * HD), ("k", HKV * HD), ("v", HKV * HD)):
            lin[nm] = g.add("linear", [n1, param(f"{p}.self_attn.{nm}_proj.weight", (n_out, D))],
                            name=f"l{i}.{nm}", origin=f"{p}.self_attn.{nm}_proj")
        rq = g.add("rope", [lin["q"]], {"n_heads": H, "head_dim": HD, "theta": 10000.0}, name=f"l{i}.rq")
        rk = g.add("rope", [lin["k"]], {"n_heads": HKV, "head_dim": HD, "theta": 10000.0}, name=f"l{i}.rk")
        a = g.add("attention", [rq, rk, lin["v"]], {"n_heads": H, "n_kv_heads": HKV, "head_dim": HD},
                  name=f"l{i}.attn")
        o = g.add("linear", [a, param(f"{p}.self_attn.o_proj.weight", (D, H * HD))], name=f"l{i}.o",
                  origin=f"{p}.self_attn.o_proj")
        x = g.add("add", [x, o], name=f"l{i}.r1")
        n2 = g.add("rmsnorm", [x, param(f"{p}.post_attention_layernorm.weight", (D,))], {"eps": 1e-5},
                   name=f"l{i}.n2")
        gate = g.add("linear", [n2, param(f"{p}.mlp.gate_proj.weight", (F, D))], name=f"l{i}.gate",
                     origin=f"{p}.mlp.gate_proj")
        up = g.add("linear", [n2, param(f"{p}.mlp.up_proj.weight", (F, D))], name=f"l{i}.up",
                   origin=f"{p}.mlp.up_proj")
        act = g.add("swiglu", [gate, up], name=f"l{i}.act")
        down = g.add("linear", [act, param(f"{p}.mlp.down_proj.weight", (D, F))], name=f"l{i}.down",
                     origin=f"{p}.mlp.down_proj")
        x = g.add("add", [x, down], name=f"l{i}.r2")
    xn = g.add("rmsnorm", [x, param("model.norm.weight", (D,))], {"eps": 1e-5}, name="norm")
    head = emb if tied else param("lm_head.weight", (V, D))
    g.outputs = [g.add("linear", [xn, head], name="logits", origin="lm_head")]
    return g, ws


class GeluBlock(torch.nn.Module):
    """Linear + GELU + residual: GELU is an op the frontend does not support (error tests)."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 8)
        self.act = torch.nn.GELU()

    def forward(self, x):
        return x + self.act(self.fc(x))


def big_linear_graph(mb: int):
    """One linear layer whose float32 weight is about ``mb`` MiB (artifact-writing tests:
    big enough that a write takes long enough to be interrupted)."""
    n = max(1, (mb << 20) // (4 * 4096))
    g, ws = Graph("big"), WeightStore()
    ws["w"] = np.ones((n, 4096), np.float32)
    x = g.add("input", name="x", type=TensorType((1, 4096), "f32"))
    w = g.add("param", attrs={"weight": "w"}, type=TensorType((n, 4096), "f32"), name="w")
    g.outputs = [g.add("linear", [x, w], name="y")]
    return g, ws


def tiny_hf_dir(d, ctx: int = 256):
    """A two-layer Llama (hidden 64) saved as a Hugging Face directory with SmolLM2's
    tokenizer (vocabulary 49152): every command on it runs in seconds."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from plait.frontend import load_tokenizer
    cfg = AutoConfig.for_model("llama", vocab_size=49152, hidden_size=64, intermediate_size=128,
                               num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                               max_position_embeddings=ctx, rms_norm_eps=1e-5, tie_word_embeddings=True,
                               bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(d, safe_serialization=True)
    load_tokenizer("smollm2").save_pretrained(d)
    return d
