"""Passes: manager (dumps, resume, debug verify), canonicalize/fusions, quantize, sparsify."""
import json

import numpy as np
import pytest

from plait.ir import (Graph, Interpreter, QuantSpec, SparsitySpec, TensorType, WeightStore, parse_graph,
                      print_graph, verify)
from plait.ir.numerics import QuantizedWeight, dequantize, quantize_rtn, signed_weight
from plait.passes import PASSES, Pass, PassError, PassManager, PassOptionError, make_pass
from plait.passes.framework import PassContext
from plait.passes.select import linear_weights
from plait.tests.graphs import LLAMA_DIMS, llama, tiny_block

D, F, V, H, HKV, HD = LLAMA_DIMS
TOKENS = np.array([[3, 1, 4, 1, 5, 9, 2]], dtype=np.int64)


def run(graph, weights, *passes, **kw):
    return PassManager(list(passes), **kw).run(graph, weights)


def logits(graph, weights, tokens=TOKENS):
    return Interpreter(graph, weights).logits(tokens)


def qweight(graph, weights, name) -> QuantizedWeight:
    t = next(p for p in graph.params() if p.attrs["weight"] == name).type
    q = t.quant
    return QuantizedWeight(np.asarray(weights[name]), np.asarray(weights[q.scales]),
                           weights[q.zeros] if q.zeros else None, q.bits, q.group_size, q.scheme)


def ptype(graph, name):
    return next(p for p in graph.params() if p.attrs["weight"] == name).type


LINEARS = [n for n in linear_weights(llama(tied=False)[0]) if n != "lm_head.weight"]


# --------------------------------------------------------------------------- quantize

QCASES = [(8, "sym"), (4, "sym"), (3, "sym"), (2, "sym"), (8, "asym"), (4, "asym"), (3, "asym"),
          (2, "asym"), (4, "odd"), (2, "odd"), (1, "odd"), (None, "ternary")]


@pytest.mark.parametrize("bits,scheme", QCASES)
@pytest.mark.parametrize("group", [32, 64])
def test_quantize_types_codes_and_rtn_error(bits, scheme, group):
    g, w = llama(tied=False)
    orig = {n: w[n] for n in w.names()}
    g, w2, rep = run(g, w.copy(), make_pass("quantize", bits=bits, scheme=scheme, group_size=group), debug=True)
    b = 2 if scheme == "ternary" else bits
    assert rep.passes[0].changed
    assert set(rep.passes[0].details["weights"]) == set(LINEARS) | {"lm_head.weight"}
    verify(g, w2)
    for name in LINEARS:
        t = ptype(g, name)
        assert t.dtype == ("ternary" if scheme == "ternary" else ("u8" if b == 8 else f"u{b}"))
        assert t.quant == QuantSpec(b, group, scheme, f"{name}.scales", f"{name}.zeros" if scheme == "asym" else None)
        codes = w2[name]
        assert codes.dtype == np.uint8 and codes.shape == orig[name].shape
        assert codes.max() <= (2 if scheme == "ternary" else (1 << b) - 1)
        n, k = codes.shape
        assert w2[f"{name}.scales"].shape == (n, k // group) and w2[f"{name}.scales"].dtype == np.float32
        if scheme == "asym":
            z = w2[f"{name}.zeros"]
            assert z.dtype == np.int32 and z.min() >= 0 and z.max() <= (1 << b) - 1
        else:
            assert f"{name}.zeros" not in w2
        # the pass stores exactly what the numeric contract's RTN gives
        ref = quantize_rtn(orig[name], b, group, scheme)
        assert np.array_equal(codes, ref.codes) and np.array_equal(w2[f"{name}.scales"], ref.scales)
        # RTN error: at most half a quantization step (step = s, or 2s on the odd grid)
        deq = dequantize(qweight(g, w2, name))
        s = np.repeat(w2[f"{name}.scales"], group, axis=1)
        err = np.abs(deq - orig[name])
        if scheme == "ternary":
            inside = np.abs(orig[name]) <= 1.5 * s   # beyond 1.5 s ternary clips to +-s
            assert inside.mean() > 0.5
            assert (err[inside] <= s[inside] / 2 * (1 + 1e-5)).all()
        else:
            step = 2 * s if scheme == "odd" else s
            assert (err <= step / 2 * (1 + 1e-5) + 1e-7).all(), float((err - step / 2).max())
    # norms and embeddings are untouched, and the very same arrays (no copies)
    for name in ("model.norm.weight", "model.embed_tokens.weight", "model.layers.0.input_layernorm.weight"):
        assert w2[name] is orig[name]
        assert ptype(g, name).quant is None


@pytest.mark.parametrize("bits,scheme", [(8, "sym"), (4, "asym"), (3, "odd"), (None, "ternary")])
def test_quantized_graph_equals_float_graph_with_dequantized_weights(bits, scheme):
    g0, w0 = llama(tied=False)
    gq, wq, _ = run(g0.copy(), w0.copy(), make_pass("quantize", bits=bits, scheme=scheme, group_size=32))
    wd = w0.copy()
    for name in LINEARS + ["lm_head.weight"]:
        wd[name] = dequantize(qweight(gq, wq, name))
    a, b = logits(gq, wq), logits(g0, wd)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, logits(g0, w0))  # quantization did change the model


def test_quantize_is_idempotent_and_inputs_untouched():
    g0, w0 = llama()
    text0 = print_graph(g0)
    arr0 = w0["model.layers.0.mlp.up_proj.weight"]
    g, w = g0.copy(), w0.copy()
    q = make_pass("quantize", bits=4, group_size=32)
    _, _, rep = run(g, w, q, q)
    assert [p.changed for p in rep.passes] == [True, False]
    assert rep.passes[1].details["quantized"] == 0
    assert rep.passes[1].details["skipped"]["model.layers.0.mlp.up_proj.weight"] == "already quantized"
    assert rep.passes[1].weights == {"replaced": [], "added": [], "removed": []}
    assert print_graph(g0) == text0 and w0["model.layers.0.mlp.up_proj.weight"] is arr0
    assert arr0.dtype == np.float32


def test_quantize_tied_embedding_is_skipped_with_reason():
    g, w = llama(tied=True)
    _, _, rep = run(g, w, make_pass("quantize", bits=8, group_size=32))
    why = rep.passes[0].details["skipped"]["model.embed_tokens.weight"]
    assert "embedding" in why
    assert ptype(g, "model.embed_tokens.weight").quant is None


def test_quantize_select_by_glob_and_mixed_precision():
    g, w = llama(tied=False)
    run(g, w, make_pass("quantize", bits=4, group_size=32, include=["*.mlp.*"]),
        make_pass("quantize", bits=8, group_size=64, exclude=["lm_head*"]), debug=True)
    for name in LINEARS:
        t = ptype(g, name)
        if ".mlp." in name:
            assert (t.dtype, t.quant.bits, t.quant.group_size) == ("u4", 4, 32)
        else:
            assert (t.dtype, t.quant.bits, t.quant.group_size) == ("u8", 8, 64)
    assert ptype(g, "lm_head.weight") == TensorType((V, D))


def test_exclude_matches_the_module_path_of_a_tied_head():
    g, w = llama(tied=True)
    _, _, rep = run(g, w, make_pass("sparsify", pattern="2:4", exclude=["lm_head"]))
    assert rep.passes[0].details["skipped"]["model.embed_tokens.weight"] == "excluded by 'lm_head'"


def test_include_that_matches_nothing_names_the_key():
    g, w = llama()
    with pytest.raises(PassOptionError, match=r"option 'include'.*'\*\.mpl\.\*' matches no linear weight"):
        run(g, w, make_pass("quantize", bits=4, group_size=32, include=["*.mpl.*"]))


def test_group_size_fallback_and_error():
    g, w = llama(tied=False)  # K = 64 (attn, gate/up, lm_head) and 128 (down)
    _, _, rep = run(g, w, make_pass("quantize", bits=4, group_size=128, fallback_group_sizes=[32]))
    assert ptype(g, "model.layers.0.mlp.down_proj.weight").quant.group_size == 128
    assert ptype(g, "model.layers.0.mlp.up_proj.weight").quant.group_size == 32
    assert rep.passes[0].details["group_sizes"] == {"32": 13, "128": 2}
    g, w = llama(tied=False)
    with pytest.raises(PassError, match=r"'model\.layers\.0\.self_attn\.q_proj\.weight' has K=64.*\[128\]"):
        run(g, w, make_pass("quantize", bits=4, group_size=128))


def test_quantize_shape_only_store_declares_codes():
    g, w = llama(tied=False, shape_only=True)
    _, _, rep = run(g, w, make_pass("quantize", bits=4, scheme="asym", group_size=32), debug=True)
    name = "model.layers.1.self_attn.o_proj.weight"
    assert ptype(g, name).dtype == "u4"
    assert w.info(name).dtype == "uint8" and w.info(name + ".scales").shape == (D, H * HD // 32)
    assert w.info(name + ".zeros").dtype == "int32"
    assert not w.has_data(name) and w.shape_only
    assert name + ".scales" in rep.passes[0].weights["added"]


@pytest.mark.parametrize("opts,key", [
    ({"bits": 5}, "bits"), ({"bits": 1}, "bits"), ({"bits": 8, "scheme": "odd"}, "bits"),
    ({"scheme": "ternary", "bits": 4}, "bits"), ({}, "bits"), ({"bits": 4, "scheme": "nf4"}, "scheme"),
    ({"bits": 4, "group_size": 0}, "group_size"), ({"bits": 4, "group_size": 6}, "group_size"),
    ({"bits": 4, "fallback_group_sizes": [64, 3]}, "fallback_group_sizes"),
    ({"bits": 4.0}, "bits"), ({"bits": 4, "include": "*.mlp.*"}, "include"), ({"bits": 4, "bogus": 1}, "bogus"),
])
def test_quantize_bad_options_name_the_key(opts, key):
    with pytest.raises(PassOptionError) as e:
        make_pass("quantize", **opts)
    assert e.value.key == key and f"option {key!r}" in str(e.value)


# --------------------------------------------------------------------------- sparsify

@pytest.mark.parametrize("pattern", ["2:4", "2:16", "4:16", "8:16"])
def test_sparsify_nm_mask_and_types(pattern):
    n, m = map(int, pattern.split(":"))
    g, w = llama(tied=False)
    orig = {k: w[k] for k in w.names()}
    _, w2, rep = run(g, w.copy(), make_pass("sparsify", pattern=pattern, exclude=["lm_head*"]), debug=True)
    assert rep.passes[0].changed and rep.passes[0].details["density"] == n / m
    for name in LINEARS:
        assert ptype(g, name).sparsity == SparsitySpec(n, m)
        assert ptype(g, name).dtype == "f32"
        a, o = w2[name], orig[name]
        blocks = a.reshape(a.shape[0], -1, m)
        assert ((blocks != 0).sum(axis=2) == n).all()          # exactly N nonzeros per block
        assert np.array_equal(a[a != 0], o[a != 0])             # survivors unchanged
        mag = np.abs(o).reshape(blocks.shape)
        kept = np.where(blocks != 0, mag, np.inf).min(axis=2)
        dropped = np.where(blocks == 0, mag, -np.inf).max(axis=2)
        assert (kept >= dropped).all()                          # magnitude pruning
    assert w2["lm_head.weight"] is orig["lm_head.weight"] and ptype(g, "lm_head.weight").sparsity is None


def test_sparsify_idempotent_and_conflicts():
    g, w = llama()
    s = make_pass("sparsify", pattern="2:4")
    _, _, rep = run(g, w, s, s)
    assert [p.changed for p in rep.passes] == [True, False]
    with pytest.raises(PassError, match="already 2:4 sparse; cannot re-prune it to 2:16"):
        run(g, w, make_pass("sparsify", pattern="2:16"))
    g, w = llama()
    with pytest.raises(PassError, match="already quantized.*run sparsify before quantize"):
        run(g, w, make_pass("quantize", bits=4, group_size=32), make_pass("sparsify", pattern="2:4"))


def test_sparsify_bad_pattern_and_k():
    with pytest.raises(PassOptionError, match="option 'pattern'.*'2:4', '2:16', '4:16', '8:16'.*'1:4'"):
        make_pass("sparsify", pattern="1:4")
    g, w = Graph("odd_k"), WeightStore()
    w["w"] = np.ones((8, 24), np.float32)
    x = g.add("input", name="x", type=TensorType((1, 24)))
    g.outputs = [g.add("linear", [x, g.add("param", attrs={"weight": "w"}, type=TensorType((8, 24)), name="w")])]
    with pytest.raises(PassError, match="'w' has K=24, not a multiple of M=16"):
        run(g, w, make_pass("sparsify", pattern="8:16"))


@pytest.mark.parametrize("bits,scheme", [(8, "sym"), (4, "sym"), (2, "sym"), (4, "asym"), (3, "asym"),
                                         (None, "ternary")])
def test_sparsify_then_quantize_keeps_zeros(bits, scheme):
    g, w = llama()
    _, w2, _ = run(g, w, make_pass("sparsify", pattern="2:4"),
                   make_pass("quantize", bits=bits, scheme=scheme, group_size=32), debug=True)
    for name in LINEARS:
        t = ptype(g, name)
        assert t.sparsity == SparsitySpec(2, 4) and t.quant.scheme == scheme
        q = signed_weight(qweight(g, w2, name))
        blocks = q.reshape(q.shape[0], -1, 4)
        assert ((blocks != 0).sum(axis=2) <= 2).all()            # pruned stay exactly zero
        assert (dequantize(qweight(g, w2, name)).reshape(blocks.shape)[blocks == 0] == 0).all()


def test_odd_scheme_refuses_sparse_weights():
    g, w = llama()
    with pytest.raises(PassError, match="'odd' has no zero level"):
        run(g, w, make_pass("sparsify", pattern="2:4"), make_pass("quantize", bits=2, scheme="odd", group_size=32))


# --------------------------------------------------------------------------- canonicalize

def unfused():
    """An MLP written with primitives, a linear + separate bias add, dead and duplicated nodes."""
    rng = np.random.default_rng(1)
    g, w = Graph("unfused"), WeightStore()
    for name, shape in (("wg", (F, D)), ("wu", (F, D)), ("wd", (D, F)), ("bd", (D,)), ("junk", (D, D))):
        w[name] = rng.standard_normal(shape).astype(np.float32) * 0.2
    x = g.add("input", name="x", type=TensorType((1, "S", D)))
    pg = g.add("param", attrs={"weight": "wg"}, type=TensorType((F, D)), name="pg")
    pu = g.add("param", attrs={"weight": "wu"}, type=TensorType((F, D)), name="pu")
    pu2 = g.add("param", attrs={"weight": "wu"}, type=TensorType((F, D)), name="pu2")  # duplicate
    gate = g.add("linear", [x, pg], name="gate", origin="mlp.gate_proj")
    up = g.add("linear", [x, pu2], name="up", origin="mlp.up_proj")
    up_dup = g.add("linear", [x, pu], name="up_dup")                                       # CSE'd to up
    s = g.add("silu", [gate], name="s")
    h = g.add("mul", [up_dup, s], name="h", origin="mlp.act")                             # up * silu(gate)
    d = g.add("linear", [h, g.add("param", attrs={"weight": "wd"}, type=TensorType((D, F)), name="pd")],
              name="d", origin="mlp.down_proj")
    out = g.add("add", [g.add("param", attrs={"weight": "bd"}, type=TensorType((D,)), name="pb"), d], name="out",
                origin="mlp.bias")
    dead = g.add("linear", [x, g.add("param", attrs={"weight": "junk"}, type=TensorType((D, D)), name="pj")],
                 name="dead")
    g.add("silu", [dead], name="dead2")
    g.outputs = [out]
    return g, w


def test_canonicalize_fuses_and_preserves_semantics_exactly():
    g0, w = unfused()
    verify(g0, w)
    xin = np.random.default_rng(2).standard_normal((1, 5, D)).astype(np.float32)
    before = Interpreter(g0, w).run({"x": xin})["out"]
    g = g0.copy()
    _, _, rep = run(g, w, make_pass("canonicalize"), debug=True)
    assert rep.passes[0].changed
    ops = [n.op for n in g.nodes()]
    assert "silu" not in ops and "mul" not in ops and "add" not in ops
    assert ops.count("swiglu") == 1 and ops.count("linear") == 3 and "dead" not in g and "pj" not in g
    assert len([p for p in g.params()]) == 4          # pu/pu2 merged, pj gone
    sw = next(g.nodes("swiglu"))
    assert [g.node(i).name for i in sw.inputs] == ["gate", "up"] and sw.origin == "mlp.act"
    down = g.node(g.outputs[0])
    assert down.op == "linear" and len(down.inputs) == 3 and g.node(down.inputs[2]).attrs["weight"] == "bd"
    assert down.origin == "mlp.down_proj"              # the linear's module path survives the fusion
    order = [n.name for n in g.nodes()]
    assert order.index(sw.name) < order.index("pd")   # fused node sits where the mul was
    after = Interpreter(g, w).run({"x": xin})[g.outputs[0]]
    assert np.array_equal(before, after)
    d = rep.passes[0].details
    assert d["fuse_swiglu"] == 1 and d["fuse_linear_bias"] == 1 and d["cse"] >= 2 and d["dce"] >= 1
    # idempotent; and the text form round-trips
    _, _, rep2 = run(g, w, make_pass("canonicalize"))
    assert not rep2.passes[0].changed
    assert print_graph(parse_graph(print_graph(g))) == print_graph(g)


def test_fusions_leave_non_matching_patterns_alone():
    g, w = Graph("nofuse"), WeightStore()
    w["b"] = np.ones(D, np.float32)
    w["w"] = np.ones((D, D), np.float32)
    x = g.add("input", name="x", type=TensorType((1, "S", D)))
    y = g.add("input", name="y", type=TensorType((1, "S", 1)))
    s = g.add("silu", [x], name="s")
    m = g.add("mul", [s, y], name="m")                       # broadcasting mul: not a SwiGLU
    lin = g.add("linear", [m, g.add("param", attrs={"weight": "w"}, type=TensorType((D, D)), name="pw")], name="l")
    a = g.add("add", [lin, g.add("param", attrs={"weight": "b"}, type=TensorType((D,)), name="pb")], name="a")
    g.outputs = [a, lin]                                     # linear output used twice: no bias fusion
    text = print_graph(g)
    _, _, rep = run(g, w, make_pass("canonicalize"))
    assert not rep.passes[0].changed and print_graph(g) == text


def test_dce_pass_on_tiny_block():
    g, w = tiny_block()
    g.add("silu", ["x"], name="unused")
    _, _, rep = run(g, w, make_pass("dce"), make_pass("dce"))
    assert [p.changed for p in rep.passes] == [True, False] and "unused" not in g
    assert rep.passes[0].details["removed"] == 1


# --------------------------------------------------------------------------- manager

def pipeline():
    return [make_pass("canonicalize"), make_pass("sparsify", pattern="2:4", include=["*.mlp.*"]),
            make_pass("quantize", bits=4, scheme="asym", group_size=32, exclude=["lm_head*"]),
            make_pass("verify")]


def test_dump_dir_writes_one_graph_per_pass(tmp_path):
    g, w = llama()
    g, w2, rep = PassManager(pipeline(), dump_dir=tmp_path, recipe_name="t").run(g, w.copy())
    steps = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert steps == ["00-input", "01-canonicalize", "02-sparsify", "03-quantize", "04-verify"]
    for i, s in enumerate(steps[1:], start=1):
        ch = json.loads((tmp_path / s / "changes.json").read_text())
        assert ch["index"] == i and ch["changed"] == rep.passes[i - 1].changed
        parse_graph((tmp_path / s / "graph.plait").read_text())
    q = json.loads((tmp_path / "03-quantize" / "changes.json").read_text())
    assert "model.layers.0.mlp.up_proj.weight.zeros" in q["weights"]["added"]
    assert "model.layers.0.mlp.up_proj.weight" in q["weights"]["replaced"]
    assert not (tmp_path / "04-verify" / "weights.safetensors").exists()   # nothing changed, no delta
    assert (tmp_path / "04-verify" / "graph.plait").read_text() == print_graph(g)
    assert "u4[" not in (tmp_path / "02-sparsify" / "graph.plait").read_text()
    assert "sparse(2:4)" in (tmp_path / "02-sparsify" / "graph.plait").read_text()
    assert json.loads((tmp_path / "pipeline.json").read_text())["passes"][2]["bits"] == 4


@pytest.mark.parametrize("where", ["root", "01-canonicalize", "02-sparsify", "03-quantize"])
def test_resume_from_dump_gives_the_same_result(tmp_path, where):
    g0, w0 = llama()
    g1, w1, _ = PassManager(pipeline(), dump_dir=tmp_path / "d").run(g0.copy(), w0.copy())
    src = tmp_path / "d" if where == "root" else tmp_path / "d" / where
    g2, w2, rep = PassManager(pipeline(), resume_from=src, dump_dir=tmp_path / "e").run(g0.copy(), w0.copy())
    start = 4 if where == "root" else int(where[:2])
    assert [p.resumed for p in rep.passes] == [i < start for i in range(4)]
    assert print_graph(g2) == print_graph(g1)
    assert sorted(w1.names()) == sorted(w2.names())
    for n in w1.names():
        assert np.array_equal(w1[n], w2[n]) and w1[n].dtype == w2[n].dtype, n
    assert np.array_equal(logits(g1, w1), logits(g2, w2))
    assert sorted(p.name for p in (tmp_path / "e").iterdir() if p.is_dir()) == \
        sorted(p.name for p in (tmp_path / "d").iterdir() if p.is_dir())


def test_resume_refuses_other_pipelines_and_graphs(tmp_path):
    g0, w0 = llama()
    PassManager(pipeline(), dump_dir=tmp_path).run(g0.copy(), w0.copy())
    other = pipeline()
    other[2] = make_pass("quantize", bits=8, group_size=32)
    with pytest.raises(PassError, match=r"pass 3 differs"):
        PassManager(other, resume_from=tmp_path).run(g0.copy(), w0.copy())
    g_other, _ = llama(n_layers=1)
    with pytest.raises(PassError, match="different input graph"):
        PassManager(pipeline(), resume_from=tmp_path).run(g_other, w0.copy())
    with pytest.raises(PassError, match="not a pass dump"):
        PassManager(pipeline(), resume_from=tmp_path / "nowhere").run(g0.copy(), w0.copy())
    PassManager(pipeline(), dump_dir=tmp_path / "light", dump_weights=False).run(g0.copy(), w0.copy())
    with pytest.raises(PassError, match="dumped without its weights"):
        PassManager(pipeline(), resume_from=tmp_path / "light").run(g0.copy(), w0.copy())


class _Breaker(Pass):
    name = "test_breaker"

    def run(self, graph, weights, ctx):
        p = next(graph.params())
        p.type = p.type.with_(shape=(3, 3))     # no longer matches its weight
        return True


class _Liar(Pass):
    name = "test_liar"

    def run(self, graph, weights, ctx):
        w = next(graph.params()).attrs["weight"]
        weights[w] = weights[w] * 1.0
        return False


class _NotBool(Pass):
    name = "test_not_bool"

    def run(self, graph, weights, ctx):
        return 1


def test_debug_verify_names_the_breaking_pass(monkeypatch):
    monkeypatch.setitem(PASSES, "test_breaker", _Breaker)
    g, w = llama()
    with pytest.raises(PassError, match=r"(?s)verification failed after pass 2 \(test_breaker\).*shape"):
        run(g, w, make_pass("dce"), _Breaker(), debug=True)
    g, w = llama()
    run(g, w, _Breaker(), debug=False)            # without debug the manager trusts the pass
    monkeypatch.setenv("PLAIT_DEBUG", "1")
    g, w = llama()
    with pytest.raises(PassError, match="verification failed"):
        run(g, w, _Breaker())
    with pytest.raises(PassError, match="must return True/False"):
        run(*llama(), _NotBool())
    with pytest.raises(PassError, match=r"pass 1 \(test_liar\) returned changed=False but it did change"):
        run(*llama(), _Liar(), debug=True)


def test_report_progress_and_print_ir(capsys):
    g, w = llama()
    _, _, rep = run(g, w, *pipeline(), progress=True, print_ir=True, recipe_name="mine")
    assert [p.name for p in rep.passes] == ["canonicalize", "sparsify", "quantize", "verify"]
    assert [p.changed for p in rep.passes] == [False, True, True, False]
    assert all(p.seconds >= 0 for p in rep.passes) and rep.seconds == sum(p.seconds for p in rep.passes)
    lines = rep.lines()
    assert len(lines) == 5 and "quantize" in lines[2] and "changed" in lines[2]
    d = rep.to_dict()
    assert d["recipe"] == "mine" and d["passes"][1]["spec"] == {"pass": "sparsify", "include": ["*.mlp.*"]}
    out = capsys.readouterr()
    assert out.out.count("// after pass") == 4 and "quant(bits=4" in out.out
    assert "pass" in out.err                                       # the tqdm bar


def test_registry_errors():
    with pytest.raises(PassError, match="unknown pass 'quantise'; registered passes: .*quantize"):
        make_pass("quantise")
    with pytest.raises(PassError, match="no 'pass' key"):
        PassManager([{"bits": 4}])
    assert {"dce", "cse", "fuse_swiglu", "fuse_linear_bias", "canonicalize", "quantize", "sparsify",
            "verify"} <= set(PASSES)
    pm = PassManager([("quantize", {"bits": 4}), {"pass": "sparsify", "pattern": "4:16"}, "dce"])
    assert pm.specs() == [{"pass": "quantize", "bits": 4}, {"pass": "sparsify", "pattern": "4:16"}, {"pass": "dce"}]


def test_pass_context_details_are_per_pass():
    ctx = PassContext()
    assert ctx.details == {} and not ctx.debug


def test_compressed_graph_save_load_round_trip(tmp_path):
    from plait.ir import serialize
    g, w = llama(tied=False)
    run(g, w, make_pass("sparsify", pattern="4:16", include=["*.mlp.*"]),
        make_pass("quantize", bits=3, scheme="asym", group_size=32, exclude=["lm_head*"]))
    serialize.save(g, w, tmp_path / "art")
    g2, w2 = serialize.load(tmp_path / "art")
    assert print_graph(g2) == print_graph(g)
    verify(g2, w2)
    assert ptype(g2, "model.layers.1.mlp.down_proj.weight") == ptype(g, "model.layers.1.mlp.down_proj.weight")
    assert np.array_equal(logits(g2, w2), logits(g, w))


def test_sparsify_shape_only_sets_types_only():
    g, w = llama(shape_only=True)
    _, _, rep = run(g, w, make_pass("sparsify", pattern="8:16"), make_pass("quantize", bits=4, group_size=64),
                    debug=True)
    t = ptype(g, "model.layers.0.mlp.gate_proj.weight")
    assert t.sparsity == SparsitySpec(8, 16) and t.dtype == "u4" and w.shape_only
    assert "density" not in rep.passes[0].details and rep.passes[0].details["pruned"] == len(LINEARS)


@pytest.mark.slow
def test_default_recipe_on_smollm2():
    """The real model: every linear but the tied head quantized W8 (g128, g64 where K=576),
    the quantized graph equals the float graph with dequantized weights, same greedy token."""
    from plait.frontend import load_model, load_tokenizer
    from plait.passes import run_recipe
    g0, w0 = load_model("smollm2", progress=False)
    g, w, rep = run_recipe(g0, w0, "default", debug=True)
    q = next(p for p in rep.passes if p.name == "quantize").details
    assert q["quantized"] == 30 * 7 and q["group_sizes"] == {"64": 180, "128": 30}
    assert "model.embed_tokens.weight" in q["skipped"]
    ids = np.array([load_tokenizer("smollm2").encode("The capital of France is Paris. The capital of Italy is")])
    wd = w0.copy()
    for name in q["weights"]:
        wd[name] = dequantize(qweight(g, w, name))
    out = logits(g, w, ids)
    assert np.array_equal(out, logits(g0, wd, ids))
    ref = logits(g0, w0, ids)
    assert out[0, -1].argmax() == ref[0, -1].argmax()


_PEAK_SCRIPT = """
import json, numpy as np
from plait.ir.limits import PeakMeter
from plait.passes import Pass, PassManager, make_pass
from plait.tests.graphs import llama

class Hog(Pass):
    name = "hog_test"
    def run(self, graph, weights, ctx):
        a = np.ones(40 << 20 >> 3)          # 40 MB, freed before the pass returns
        a[0] = 1
        return False

g, w = llama()
outer = PeakMeter()
base = outer.peak()
hog, ver = PassManager([Hog(), make_pass("verify")]).run(g, w)[2].passes
print(json.dumps([base / 2**20, hog.peak_rss_mb, ver.peak_rss_mb, outer.peak() / 2**20]))
"""


def test_pass_peak_memory_is_measured_and_meters_nest():
    """In a fresh process (the suite's own heap would blur the megabytes): a pass's peak
    is its own, the next pass starts afresh, and an outer meter still sees both."""
    import json
    import subprocess
    import sys
    if not sys.platform.startswith("linux"):
        pytest.skip("VmHWM is Linux's")
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    base, hog, ver, outer = json.loads(out.stdout.strip().splitlines()[-1])
    assert hog >= base + 35
    assert ver < hog - 20
    assert outer >= hog
