"""The rotate pass: Hadamard constructions, float invariance (tiny_block and a real-structure
tied Llama from a Hugging Face directory), the untie, the refusals, and what it is for."""
from __future__ import annotations

import numpy as np
import pytest

from plait.frontend import load_model
from plait.ir import Interpreter, TensorType, print_graph, verify
from plait.ir.exact import ExactInterpreter
from plait.passes import PassContext, PassError, PassOptionError, load_recipe, make_pass, run_recipe
from plait.passes.rotate import Rotation, hadamard, hadamard_plan
from plait.tests.graphs import tiny_block

from .test_passes import llama

IDS = np.array([[3, 17, 4, 41, 5, 9, 26, 8, 30, 11]], dtype=np.int64)
HF_IDS = np.array([[1, 500, 70, 3000, 9, 27000, 44, 12, 49000, 6]], dtype=np.int64)
NORMS = ("input_layernorm", "post_attention_layernorm")


def _rotate(g, w, **opts):
    ctx = PassContext()
    changed = make_pass("rotate", **opts).run(g, w, ctx)
    return changed, ctx.details


def _close(after, before):
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4 * np.abs(before).max())


class _NoTokenizer:
    def save_pretrained(self, d):
        pass


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory):
    """tiny_hf_dir's two-layer Llama (hidden 64, 4 heads / 2 kv heads, tied embeddings,
    vocabulary 49152) loaded through plait.frontend; its tokenizer is not needed here
    (and reading SmolLM2's takes longer than every test of this file)."""
    from plait.tests.graphs import tiny_hf_dir
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("plait.frontend.load_tokenizer", lambda source: _NoTokenizer())
        d = tiny_hf_dir(tmp_path_factory.mktemp("hf") / "tiny")
    return load_model(d, progress=False)


# --------------------------------------------------------------------------- Hadamard matrices

def test_every_supported_hadamard_order_is_a_hadamard_matrix():
    orders = [n for n in range(1, 257) if hadamard_plan(n) is not None]
    for n in orders + [576, 960, 1024]:           # every order to 256, and SmolLM2 / SmolLM2-360M widths
        h = hadamard(n)
        assert h.shape == (n, n) and set(np.unique(h)) <= {-1, 1}, n
        hf = h.astype(np.float64)                   # exact: integer sums below 2^53
        assert np.array_equal(hf @ hf.T, n * np.eye(n)), n
    assert {1, 2, 4, 8, 16, 32, 64, 128, 256, 12, 20, 24, 28, 36, 44, 48, 60, 80, 96, 112} <= set(orders)
    assert hadamard_plan(576) == (("paley1", 11), ("paley1", 11), ("sylvester", 4))     # H12 x H12 x H4
    assert hadamard_plan(48) == (("paley1", 11), ("sylvester", 4))
    assert hadamard_plan(28) == (("paley2", 13),)
    assert hadamard_plan(960) is not None and hadamard_plan(1024) == (("sylvester", 1024),)
    assert len(orders) > 40 and 92 not in orders and 6 not in orders


@pytest.mark.parametrize("n, why", [(6, "no Hadamard matrix of that order exists"),
                                    (10, "no Hadamard matrix of that order exists"),
                                    (92, "it is not a product of 2\\^k and Paley orders")])
def test_orders_it_cannot_build_are_refused_by_size(n, why):
    assert hadamard_plan(n) is None
    with pytest.raises(PassError, match=rf"order {n} \(width\) can be built: {why}.*kind = \"random\""):
        hadamard(n, "width")


def test_rotations_are_orthogonal_and_seeded():
    rng = np.random.default_rng(1)
    r = Rotation.randomized_hadamard(576, rng, "x")
    assert np.allclose(r.q @ r.q.T, np.eye(576), atol=1e-12)
    assert np.allclose(np.abs(r.q), 1 / 24)                         # every entry +-1/sqrt(576): no outlier survives
    assert "H12 (Paley I, q=11) x H12 (Paley I, q=11) x H4 (Sylvester)" in r.construction
    x = rng.standard_normal((5, 576)).astype(np.float32)
    assert np.allclose(r.right(x), x @ r.q, atol=1e-5) and np.allclose(r.left_t(x.T), r.q.T @ x.T, atol=1e-5)
    q = Rotation.random_orthogonal(48, np.random.default_rng(2))
    assert np.allclose(q.q @ q.q.T, np.eye(48), atol=1e-12) and np.abs(q.q).max() > 2 / np.sqrt(48)
    same = Rotation.randomized_hadamard(576, np.random.default_rng(1), "x")
    other = Rotation.randomized_hadamard(576, np.random.default_rng(3), "x")
    assert np.array_equal(same.q, r.q) and not np.array_equal(other.q, r.q)


# --------------------------------------------------------------------------- float invariance

@pytest.mark.parametrize("kind, residual, heads", [("hadamard", True, True), ("random", True, True),
                                                   ("hadamard", True, False), ("random", False, True)])
def test_rotation_leaves_the_float_logits_unchanged_on_tiny_block(kind, residual, heads):
    g, w = tiny_block()
    w0 = {n: np.array(w[n]) for n in w.names()}
    interp = Interpreter(g, w)
    before = np.concatenate([interp.logits(IDS[:, :7]), interp.logits(IDS[:, 7:8]), interp.logits(IDS[:, 8:])], 1)
    changed, det = _rotate(g, w, kind=kind, residual=residual, heads=heads)
    verify(g, w)
    assert changed
    interp = Interpreter(g, w)                                         # prefill, then decode steps (KV cache)
    after = np.concatenate([interp.logits(IDS[:, :7]), interp.logits(IDS[:, 7:8]), interp.logits(IDS[:, 8:])], 1)
    _close(after, before)
    moved = {n for n in w0 if n in w and not np.array_equal(w0[n], np.asarray(w[n]))}
    if residual:   # every linear, the table and the norm; tiny_block's head is tied (no final norm): untied
        assert moved == {"emb", "n1", "wq", "wk", "wv", "wo", "wg", "wu", "wd"}
        assert np.array_equal(w["n1"], np.ones(32, np.float32))
        assert g.node("logits").inputs[1] == "lm_head.weight" and det["untied"] == {"lm_head.weight": "emb"}
        assert g.node("x").inputs[0] == "emb" and det["residual"]["writers"] == ["wo", "wd"]
    else:          # R2 only: v's rows and o's columns
        assert moved == {"wv", "wo"} and "untied" not in det and g.node("logits").inputs[1] == "emb"
    assert ("heads" in det) == heads and "online Hadamard" in det["online"]
    if heads:
        assert det["heads"]["rotated"] == [["wv", "wo"]]


def test_real_structure_llama_with_tied_embeddings(hf_model):
    g0, w0 = hf_model[0].copy(), hf_model[1].copy()
    rng = np.random.default_rng(4)
    for n in w0.names():                      # HF initialises RMSNorm weights to ones: make the fold count
        if n.endswith("norm.weight"):
            w0[n] = (0.5 + rng.random(64)).astype(np.float32)
    g, w = g0.copy(), w0.copy()
    text0 = print_graph(g0)
    interp = Interpreter(g, w)
    before = np.concatenate([interp.logits(HF_IDS[:, :8]), interp.logits(HF_IDS[:, 8:9])], 1)
    table = np.array(w["model.embed_tokens.weight"])
    final = np.array(w["model.norm.weight"])
    changed, det = _rotate(g, w)
    verify(g, w)
    interp = Interpreter(g, w)
    after = np.concatenate([interp.logits(HF_IDS[:, :8]), interp.logits(HF_IDS[:, 8:9])], 1)
    _close(after, before)
    assert print_graph(g0) == text0 and np.array_equal(w0["model.embed_tokens.weight"], table)  # the copies moved
    # the untie: the head has its own weight-store entry and param, the embedding keeps its own
    head = g.node("logits")
    assert head.inputs[1] == "lm_head.weight" and g.node("lm_head.weight").attrs["weight"] == "lm_head.weight"
    assert g.node("embed_tokens").inputs[0] == "model.embed_tokens.weight"
    assert det["untied"] == {"lm_head.weight": "model.embed_tokens.weight"}
    q = Rotation.randomized_hadamard(64, np.random.default_rng(0), "").q    # the pass's first draw (seed 0)
    assert np.allclose(w["model.embed_tokens.weight"], table @ q, atol=1e-5)
    assert np.allclose(w["lm_head.weight"], (table * final) @ q, atol=1e-5)
    assert g.meta["tie_embeddings"] is False and g.meta["n_params"] == g0.meta["n_params"] + table.size
    # every RMSNorm weight folded into the linears that read it
    norms = [f"model.layers.{i}.{n}.weight" for i in range(2) for n in NORMS] + ["model.norm.weight"]
    for n in norms:
        assert np.array_equal(w[n], np.ones(64, np.float32)), n
    assert sorted(det["folded_norms"]) == sorted(norms)
    assert det["folded_norms"]["model.norm.weight"] == ["lm_head.weight"]
    assert [x.rsplit(".", 2)[-2] for x in det["folded_norms"]["model.layers.1.post_attention_layernorm.weight"]] \
        == ["gate_proj", "up_proj"]
    r1 = det["residual"]
    assert r1["dim"] == 64 and len(r1["readers"]) == 2 * 5 + 1 and len(r1["writers"]) == 4
    assert [p[0].rsplit(".", 2)[-2] for p in det["heads"]["rotated"]] == ["v_proj", "v_proj"]


def test_biases_and_grouped_heads_of_qwen2():
    """qwen2-tiny: q/k/v biases (v's bias turns with v's rows), tied embeddings, two query heads per kv head."""
    g, w = load_model("qwen2-tiny", progress=False)
    rng = np.random.default_rng(6)
    for n in list(w.names()):                 # HF initialises biases to zero: make them count
        if n.endswith(".bias"):
            w[n] = rng.standard_normal(w.info(n).shape).astype(np.float32) * 0.5
    ids = IDS % 256
    before = Interpreter(g, w).logits(ids)
    vb = np.array(w["model.layers.0.self_attn.v_proj.bias"])
    _, det = _rotate(g, w, seed=3)
    _close(Interpreter(g, w).logits(ids), before)
    assert not np.allclose(w["model.layers.0.self_attn.v_proj.bias"], vb)
    assert np.isclose(np.linalg.norm(w["model.layers.0.self_attn.v_proj.bias"]), np.linalg.norm(vb), rtol=1e-5)
    assert det["untied"] == {"lm_head.weight": "model.embed_tokens.weight"}


def test_widths_without_a_hadamard_need_kind_random():
    """Embedding -> RMSNorm -> head with a residual width of 92 (= 4 x 23: no construction here)."""
    from plait.ir import Graph, WeightStore
    rng = np.random.default_rng(0)
    g, w = Graph("w92"), WeightStore()
    w["table"] = rng.standard_normal((40, 92)).astype(np.float32)
    w["g"] = (1 + rng.random(92)).astype(np.float32)
    w["head"] = rng.standard_normal((40, 92)).astype(np.float32)
    tok = g.add("input", name="tokens", type=TensorType((1, "S"), "i64"))
    x = g.add("embedding", [g.add("param", attrs={"weight": "table"}, type=TensorType((40, 92)), name="table"), tok])
    n = g.add("rmsnorm", [x, g.add("param", attrs={"weight": "g"}, type=TensorType((92,)), name="g")], {"eps": 1e-5})
    g.outputs = [g.add("linear", [n, g.add("param", attrs={"weight": "head"}, type=TensorType((40, 92)), name="head")])]
    gamma = np.array(w["g"])
    with pytest.raises(PassError, match=r"order 92 \(the residual stream width\).*kind = \"random\""):
        _rotate(g, w)
    assert np.array_equal(w["g"], gamma)                                # nothing changed
    before = Interpreter(g, w).logits(IDS % 40)
    changed, det = _rotate(g, w, kind="random", seed=5)
    _close(Interpreter(g, w).logits(IDS % 40), before)
    assert det["residual"]["construction"].startswith("random orthogonal 92x92")


# --------------------------------------------------------------------------- refusals

def _calibrated(g, w):
    make_pass("calibrate", tokens=16, window=8).run(g, w, PassContext(calibration={"ids": np.arange(16) * 3 % 50}))


def _add_swiglu_on_norm(g, w):
    g.outputs = g.outputs + [g.add("swiglu", ["n1o", "n1o"], name="extra")]


def _residual_output(g, w):
    g.outputs = g.outputs + ["x2"]


def _rope_on_v(g, w):
    rv = g.add("rope", ["v"], {"n_heads": 2, "head_dim": 8, "theta": 10000.0}, name="rv")
    g.set_inputs("attn", ["rq", "rk", rv])


def _shared_weight(g, w):
    g.set_inputs("up", ["x2", "wg"])


REFUSALS = [
    (lambda g, w: run_recipe(g, w, "w4g128"), "already quantized .*before quantize"),
    (lambda g, w: make_pass("sparsify", pattern="2:4").run(g, w, PassContext()), "already sparse.*before sparsify"),
    (_calibrated, "calibration statistics .*before calibrate"),
    (lambda g, w: make_pass("quantize_act").run(g, w, PassContext()), "activation spec.*before quantize_act"),
    (_add_swiglu_on_norm, r"RMSNorm %n1o feeds %extra \(swiglu\), not only linears"),
    (_residual_output, r"residual-stream value %x2 is a graph output"),
    (_rope_on_v, r"the v input of %attn is %rv \(rope\), not a linear"),
    (_shared_weight, r"weight 'wg' .* is also used by %(gate|up)"),
]


@pytest.mark.parametrize("prepare, msg", REFUSALS, ids=["quantized", "sparse", "calibrated", "act-spec",
                                                        "norm-to-swiglu", "residual-output", "v-not-linear",
                                                        "shared-weight"])
def test_refusals_name_the_weight_or_op_and_change_nothing(prepare, msg):
    g, w = tiny_block()
    out = prepare(g, w)
    if isinstance(out, tuple):
        g, w = out[:2]
    text, arrays = print_graph(g), {n: np.array(w[n]) for n in w.names()}
    with pytest.raises(PassError, match=msg):
        _rotate(g, w)
    assert print_graph(g) == text
    assert all(np.array_equal(arrays[n], np.asarray(w[n])) for n in arrays)


def test_shape_only_stores_and_bad_options_are_refused():
    g, w = llama(shape_only=True)
    with pytest.raises(PassError, match=r"weight 'model\.layers\.0\.input_layernorm\.weight' has no data \(shape-only"):
        _rotate(g, w)
    with pytest.raises(PassOptionError, match="'residual'.*rotate nothing"):
        make_pass("rotate", residual=False, heads=False)
    with pytest.raises(PassOptionError, match="'kind'.*must be one of"):
        make_pass("rotate", kind="qr")


# --------------------------------------------------------------------------- what it is for

OUTLIER_COLS = [5, 40]


def _with_outlier_channels(g, w, scale=12.0):
    """Real LLM weights have a few input channels (features of the residual stream) far
    larger than the rest; plant two in every q/k/v/gate/up projection."""
    for name in list(w.names()):
        if any(p in name for p in ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")):
            m = np.array(w[name])
            m[:, OUTLIER_COLS] *= scale
            w[name] = m
    return g, w


def _max_to_rms(m):
    m = np.asarray(m, np.float64)
    return np.abs(m).max() / np.sqrt((m ** 2).mean())


def _kurtosis(m):
    m = np.asarray(m, np.float64).ravel()
    m = m - m.mean()
    return (m ** 4).mean() / (m ** 2).mean() ** 2


def test_rotation_flattens_outlier_weights_and_cuts_the_w4_error(hf_model):
    g0, w0 = _with_outlier_channels(hf_model[0].copy(), hf_model[1].copy())
    g, w = g0.copy(), w0.copy()
    _rotate(g, w)
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.up_proj.weight"):
        assert _kurtosis(w0[name]) > 10 and _kurtosis(w[name]) < 4, name       # Gaussian: 3
        assert _max_to_rms(w[name]) < 0.5 * _max_to_rms(w0[name]), name
    ref = Interpreter(g0, w0).logits(HF_IDS)

    def w4_error(recipe):
        gq, wq, _ = run_recipe(g0, w0, recipe)
        return np.abs(Interpreter(gq, wq).logits(HF_IDS) - ref).mean()
    plain, rotated = w4_error("w4g128"), w4_error("w4g128-rotate")
    assert rotated < 0.65 * plain, (plain, rotated)         # measured: 0.036 vs 0.074


def test_rotation_rescues_int8_activations_from_a_massive_residual_channel():
    """A residual-stream feature far above the rest (SmolLM2 has them): per-token int8
    rows lose every other feature, unless the stream is rotated.  Exact mode vs float
    mode of the same compiled model measures the activation error alone."""
    errs = []
    g0, w0 = load_model("smollm2-tiny", progress=False)
    e = np.array(w0["model.embed_tokens.weight"])
    e[:, 7] += 40.0 * np.abs(e).max()
    w0["model.embed_tokens.weight"] = e
    for recipe in ("w4a8-rotate", "no-rotate"):
        r = load_recipe("w4a8-rotate").to_dict()
        if recipe == "no-rotate":
            r["passes"] = [p for p in r["passes"] if p["pass"] != "rotate"]
        g, w, _ = run_recipe(g0, w0, load_recipe(r))
        ids = IDS % 256
        lf, le = Interpreter(g, w).logits(ids), ExactInterpreter(g, w).logits(ids)
        errs.append(np.abs(le - lf).mean() / np.abs(lf).mean())
    assert errs[0] < 0.5 * errs[1], errs


# --------------------------------------------------------------------------- recipes

@pytest.mark.parametrize("name", ["w4g128-rotate", "w4a8-rotate"])
def test_rotate_recipes(name, hf_model):
    r = load_recipe(name)
    names = [p.name for p in r.pipeline]
    assert names[:2] == ["canonicalize", "rotate"] and names[-2:] == ["map_engines", "pack"]
    assert ("quantize_act" in names) == (name == "w4a8-rotate")
    g, w, rep = run_recipe(*hf_model, name)
    verify(g, w)
    assert rep.passes[1].details["untied"] == {"lm_head.weight": "model.embed_tokens.weight"}
    for p in g.params():
        t, wname = p.type, p.attrs["weight"]
        if wname.endswith("_proj.weight"):
            assert t.quant is not None and t.quant.bits == 4 and t.quant.scheme == "sym", wname
    assert g.node("lm_head.weight").type.quant is None          # the untied head stays float
    assert g.node("model.embed_tokens.weight").type.quant is None
    assert np.isfinite(Interpreter(g, w).logits(HF_IDS)).all()


def test_dump_and_resume_after_the_untie(tmp_path):
    g0, w0 = llama()                                     # tied: the head reads the embedding table
    g1, w1, rep = run_recipe(g0, w0, "w4g128-rotate", dump_dir=tmp_path / "dump")
    assert rep.passes[1].weights["added"] == ["lm_head.weight"]
    g2, w2, rep2 = run_recipe(g0, w0, "w4g128-rotate", resume_from=tmp_path / "dump" / "02-rotate")
    assert [p.resumed for p in rep2.passes] == [True, True, False, False, False]
    assert print_graph(g1) == print_graph(g2) and all(np.array_equal(w1[n], w2[n]) for n in w1.names())
