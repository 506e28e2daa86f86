"""The calibrate pass (input-activation statistics) and Wanda N:M pruning."""
import numpy as np
import pytest

from plait.ir import Graph, Interpreter, SparsitySpec, TensorType, WeightStore
from plait.ir.numerics import signed_weight
from plait.ir.numerics.common import QuantizedWeight
from plait.passes import PassError, PassManager, PassOptionError, load_recipe, make_pass, run_recipe
from plait.passes.calibrate import stat_names
from plait.tests.graphs import tiny_block

V, K, N = 12, 8, 6


def two_linears(table, w1, w2):
    """tokens -> embedding(table) -> linear(w1) -> linear(w2): both linear inputs are
    computable by hand (table rows; table rows @ w1.T)."""
    g, ws = Graph("two"), WeightStore()

    def param(name, arr):
        ws[name] = np.asarray(arr, np.float32)
        return g.add("param", attrs={"weight": name}, type=TensorType(arr.shape, "f32"), name=name)

    tok = g.add("input", name="tokens", type=TensorType((1, "S"), "i64"))
    x = g.add("embedding", [param("emb", table), tok], name="x", origin="model.embed_tokens")
    h = g.add("linear", [x, param("w1", w1)], name="h", origin="model.up")
    y = g.add("linear", [h, param("w2", w2)], name="y", origin="lm_head")
    g.outputs = [y]
    return g, ws


def int_model(seed=0):
    """Small-integer weights: every activation and every sum of squares is exact in
    float32/float64, whatever the summation order."""
    rng = np.random.default_rng(seed)
    table = rng.integers(-3, 4, (V, K)).astype(np.float32)
    w1 = rng.integers(-2, 3, (N, K)).astype(np.float32)
    w2 = rng.integers(-2, 3, (4, N)).astype(np.float32)
    return table, w1, w2, two_linears(table, w1, w2)


def run(g, w, *passes, calibration=None, **kw):
    return PassManager(list(passes), calibration=calibration, **kw).run(g, w)


IDS = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4, 3], np.int64)


# --------------------------------------------------------------------------- statistics

@pytest.mark.parametrize("take,tokens,window", [("last", 16, 5), ("first", 16, 16), ("last", 100, 7)])
def test_stats_equal_numpy(take, tokens, window):
    table, w1, _, (g, w) = int_model()
    g, w, rep = run(g, w, make_pass("calibrate", tokens=tokens, window=window, take=take),
                    calibration={"ids": IDS}, debug=True)
    used = IDS[-tokens:] if take == "last" else IDS[:tokens]
    x1 = table[used].astype(np.float64)           # input of linear w1
    x2 = x1 @ w1.T.astype(np.float64)             # input of linear w2 (exact: small integers)
    for name, x in (("w1", x1), ("w2", x2)):
        sq, mx = stat_names(name)
        assert w[sq].dtype == np.float32 and w[sq].shape == (x.shape[1],)
        assert np.array_equal(w[sq], (x * x).sum(0).astype(np.float32))
        assert np.array_equal(w[mx], np.abs(x).max(0).astype(np.float32))
        assert g.node(name).attrs == {"weight": name, "act_sqsum": sq, "act_absmax": mx,
                                      "act_tokens": len(used)}
    assert "emb.act_sqsum" not in w and "act_sqsum" not in g.node("emb").attrs   # not a linear weight
    d = rep.passes[0].details
    assert d["tokens"] == len(used) and d["windows"] == -(-len(used) // window)
    assert d["weights"] == ["w1", "w2"] and rep.passes[0].changed


def test_stats_tied_head_and_random_block():
    """tiny_block: random float weights, the LM head tied to the embedding table: the
    statistics of every linear equal those of its input captured in one window."""
    g, w = tiny_block()
    ids = (np.arange(30) * 7) % 50
    seen = {}
    Interpreter(g, w, observer=lambda n, a, o: seen.__setitem__(n.name, a[0].copy())
                if n.op == "linear" else None).run(ids[None])
    g2, w2, _ = run(g, w, make_pass("calibrate", window=64), calibration={"ids": ids})
    weight_of = {"q": "wq", "k": "wk", "v": "wv", "o": "wo", "gate": "wg", "up": "wu", "down": "wd",
                 "logits": "emb"}
    for lin, wname in weight_of.items():
        x = seen[lin].reshape(-1, seen[lin].shape[-1]).astype(np.float64)
        sq, mx = stat_names(wname)
        assert np.array_equal(w2[sq], np.square(x).sum(axis=0).astype(np.float32))
        assert np.array_equal(w2[mx], np.abs(x).max(axis=0).astype(np.float32))
    assert g2.node("emb").attrs["act_tokens"] == 30          # the tied table's param carries them too


def test_interpreter_observer_sees_every_node_and_changes_nothing():
    g, w = tiny_block()
    ids = np.array([[1, 2, 3, 4, 5]])
    ref = Interpreter(g, w).run(ids)
    calls = []
    got = Interpreter(g, w, observer=lambda n, a, o: calls.append((n.name, len(a), o.shape))).run(ids)
    assert all(np.array_equal(ref[k], got[k]) for k in ref)
    names = [c[0] for c in calls]
    assert sorted(names) == sorted(n for n in g.order() if g.node(n).op != "input")
    assert dict((c[0], c[1]) for c in calls)["logits"] == 2


# --------------------------------------------------------------------------- wanda

@pytest.mark.parametrize("pattern", ["2:4", "2:16", "4:16", "8:16"])
def test_wanda_keeps_n_per_block_by_score(pattern):
    n, m = map(int, pattern.split(":"))
    g, w = tiny_block()
    ids = (np.arange(40) * 11) % 50
    g2, w2, rep = run(g, w, make_pass("calibrate"),
                      make_pass("sparsify", pattern=pattern, method="wanda", exclude=["lm_head*", "emb"]),
                      calibration={"ids": ids}, debug=True)
    assert rep.passes[1].details["method"] == "wanda" and rep.passes[1].details["density"] == n / m
    for name in ("wq", "wk", "wv", "wo", "wg", "wu", "wd"):
        orig, pruned = w[name], w2[name]
        assert g2.node(name).type.sparsity == SparsitySpec(n, m)
        keep = (pruned != 0).reshape(orig.shape[0], -1, m)
        assert (keep.sum(axis=2) == n).all()                               # exactly N per block
        assert np.array_equal(pruned[pruned != 0], orig[pruned != 0])      # no weight update
        score = (np.abs(orig.astype(np.float64)) * np.sqrt(w2[f"{name}.act_sqsum"].astype(np.float64))
                 ).reshape(keep.shape)
        lo = np.where(keep, score, np.inf).min(axis=2)
        hi = np.where(keep, -np.inf, score).max(axis=2)
        assert (lo >= hi).all()                                            # the top-N scores are kept


def test_wanda_differs_from_magnitude_on_skewed_inputs():
    # features 0,1 are nearly silent, features 2,3 are loud: wanda must keep 2,3 of each
    # row although |W| is larger at 0,1 -- magnitude keeps 0,1
    table = np.tile(np.array([[0.01, -0.01, 10.0, -10.0]], np.float32), (V, 1))
    table[::2] *= -1
    w1 = np.array([[1.0, 0.9, 0.1, 0.2], [-0.8, 1.0, 0.3, -0.1], [0.5, -0.6, 0.05, 0.4]], np.float32)
    w2 = np.ones((2, 3), np.float32)
    masks = {}
    for method in ("magnitude", "wanda"):
        g, w = two_linears(table, w1, w2)
        _, w_out, _ = run(g, w, make_pass("calibrate"),
                          make_pass("sparsify", method=method, include=["w1"]), calibration={"ids": IDS})
        masks[method] = w_out["w1"] != 0
    assert np.array_equal(masks["magnitude"], np.array([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]], bool))
    assert np.array_equal(masks["wanda"], np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]], bool))


def test_wanda_then_quantize_keeps_zeros():
    g, w = tiny_block()
    g2, w2, _ = run_recipe(g, w, "w4-sparse24-wanda", calibration={"ids": np.arange(50)}, debug=True)
    for name in ("wq", "wo", "wd"):
        t = g2.node(name).type
        assert t.sparsity == SparsitySpec(2, 4) and t.quant.bits == 4
        q = signed_weight(QuantizedWeight(w2[name], w2[t.quant.scales], None, 4, t.quant.group_size, "sym"))
        assert ((q.reshape(q.shape[0], -1, 4) != 0).sum(axis=2) <= 2).all()
    assert g2.node("emb").type.sparsity is None                               # lm_head excluded


def test_calibration_survives_dump_and_resume(tmp_path):
    g, w = tiny_block()
    passes = lambda: [make_pass("calibrate"), make_pass("sparsify", method="wanda", exclude=["emb"])]  # noqa: E731
    ga, wa, _ = run(g.copy(), w.copy(), *passes(), calibration={"ids": np.arange(20)}, dump_dir=tmp_path)
    # resume after calibrate without calibration data: the statistics come from the dump
    gb, wb, rep = PassManager(passes(), resume_from=tmp_path / "01-calibrate").run(g.copy(), w.copy())
    assert rep.passes[0].resumed and not rep.passes[1].resumed
    for name in ("wq", "wd"):
        assert np.array_equal(wa[name], wb[name]) and np.array_equal(wa[f"{name}.act_sqsum"], wb[f"{name}.act_sqsum"])


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("calibration", [None, {}, {"ids": None}])
def test_calibrate_without_data_is_an_error(calibration):
    g, w = tiny_block()
    with pytest.raises(PassError, match="calibrate: no calibration data.*calibration="):
        run(g, w, make_pass("calibrate"), calibration=calibration)


@pytest.mark.parametrize("ids,msg", [(np.zeros((2, 3), np.int64), "1-D integer"),
                                     (np.array([1.5, 2.0]), "1-D integer"),
                                     (np.array([], np.int64), "empty")])
def test_calibrate_bad_ids(ids, msg):
    g, w = tiny_block()
    with pytest.raises(PassError, match=msg):
        run(g, w, make_pass("calibrate"), calibration={"ids": ids})


def test_calibrate_shape_only_is_an_error():
    g, w = tiny_block()
    shapes = WeightStore()
    for n in w.names():
        shapes.declare(n, w.info(n).shape)
    with pytest.raises(PassError, match="has no data.*needs real weights"):
        run(g, shapes, make_pass("calibrate"), calibration={"ids": np.arange(4)})


def test_wanda_without_calibration_is_an_error():
    g, w = tiny_block()
    with pytest.raises(PassError, match="weight 'wq' has no input-activation statistics.*"
                                        "run the calibrate pass first"):
        run(g, w, make_pass("sparsify", method="wanda", exclude=["emb"]))


def test_bad_options():
    with pytest.raises(PassOptionError, match="option 'tokens'.*must be positive"):
        make_pass("calibrate", tokens=0)
    with pytest.raises(PassOptionError, match="option 'take'.*must be one of"):
        make_pass("calibrate", take="middle")
    with pytest.raises(PassOptionError, match="option 'method'.*must be one of"):
        make_pass("sparsify", method="obs")


# --------------------------------------------------------------------------- recipes / CLI

@pytest.mark.parametrize("name,passes", [
    ("sparse24-wanda", ["canonicalize", "calibrate", "sparsify", "map_engines"]),
    ("w4-sparse24-wanda", ["canonicalize", "calibrate", "sparsify", "quantize", "map_engines", "pack"])])
def test_recipes_load(name, passes):
    r = load_recipe(name)
    assert [p.name for p in r.pipeline] == passes and r.needs_calibration
    sp = r.pipeline[2]
    assert sp.options["method"] == "wanda" and sp.options["pattern"] == "2:4" and sp.options["exclude"] == ["lm_head*"]
    assert r.pipeline[1].options == {"tokens": 2048, "window": 512, "take": "last"}
    assert not load_recipe("sparse24").needs_calibration


def test_cli_wanda_without_tokenizer_fails_cleanly(tmp_path, capsys):
    from plait.cli import main
    assert main(["compile", "llama-tiny", "--recipe", "sparse24-wanda", "-o", str(tmp_path / "x")]) == 2
    assert "calibrate: no calibration data" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_compile_with_calibration(tmp_path, capsys):
    """The CLI tokenizes pydoc_data.topics and hands the ids to the calibrate pass."""
    from plait.cli import main
    from plait.runtime.artifact import load_artifact
    recipe = tmp_path / "r.toml"
    recipe.write_text('[[passes]]\npass = "calibrate"\ntokens = 16\nwindow = 16\n\n'
                      '[[passes]]\npass = "sparsify"\nmethod = "wanda"\ninclude = ["*.mlp.*"]\n')
    out = tmp_path / "art"
    assert main(["compile", "smollm2-135m-random", "--recipe", str(recipe), "-o", str(out)]) == 0
    art = load_artifact(out, check=False)
    p = art.graph.node(next(n for n in art.graph.order() if "layers.0.mlp.down_proj" in n))
    assert p.attrs["act_tokens"] == 16 and p.type.sparsity == SparsitySpec(2, 4)
