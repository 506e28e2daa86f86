"""IR: types, graph, op shape rules, verifier errors, text round trip, save/load."""
import numpy as np
import pytest

from plait.ir import (Graph, GraphError, Interpreter, IRTypeError, OpError, ParseError, QuantSpec,
                      SparsitySpec, TensorType, VerifyError, WeightError, WeightStore, parse_graph,
                      parse_type, print_graph, verify)
from plait.ir import serialize
from plait.ir.ops import OPS, graph_cost

from plait.tests.graphs import D, F, H, HD, HKV, V, tiny_block


def test_type_text_round_trip():
    t = TensorType((576, 1536), "u4", QuantSpec(4, 128, "asym", "w.scales", "w.zeros"), SparsitySpec(2, 4, "w.idx"))
    assert parse_type(t.text()) == t
    assert parse_type("f32[1,S,576]") == TensorType((1, "S", 576), "f32")


@pytest.mark.parametrize("bad", ["f33[1]", "f32[1", "f32[a-b]", "f32[1] quant(bits=4)", "f32[2] junk"])
def test_bad_types_are_refused(bad):
    with pytest.raises(IRTypeError):
        parse_type(bad)


def test_printer_parser_round_trip_and_verify():
    g, ws = tiny_block()
    verify(g, ws)
    text = print_graph(g)
    g2 = parse_graph(text)
    assert print_graph(g2) == text
    verify(g2, ws)
    assert "# model.embed_tokens" in text


def test_shape_inference_of_every_llm_op():
    g, _ = tiny_block()
    t = {n.name: n.type for n in g.nodes()}
    assert t["x"].shape == (1, "S", D)
    assert t["q"].shape == (1, "S", H * HD) and t["k"].shape == (1, "S", HKV * HD)
    assert t["rq"] == t["q"] and t["attn"].shape == (1, "S", H * HD)
    assert t["act"].shape == (1, "S", F) and t["logits"].shape == (1, "S", V)
    last = g.add("last_token", ["logits"])
    assert g.node(last).type.shape == (1, 1, V)
    covered = {n.op for n in g.nodes()} | {"last_token", "mul", "silu"}
    assert covered >= set(OPS), f"ops without a shape test: {set(OPS) - covered}"
    m = g.add("mul", ["gate", "up"])
    s = g.add("silu", [m])
    assert g.node(s).type.shape == (1, "S", F)


@pytest.mark.parametrize("op,inputs,attrs,msg", [
    ("linear", ["gate", "wq"], {}, "K="),
    ("rmsnorm", ["x", "wq"], {"eps": 1e-5}, "does not match"),
    ("rmsnorm", ["x", "n1"], {}, "eps"),
    ("attention", ["q", "k", "v"], {"n_heads": 3, "n_kv_heads": 2, "head_dim": 8}, "multiple"),
    ("rope", ["q"], {"n_heads": H, "head_dim": HD}, "theta"),
    ("embedding", ["x", "tokens"], {}, "2-D"),
    ("add", ["q", "gate"], {}, "broadcast"),
    ("nosuchop", ["x"], {}, "unknown op"),
])
def test_shape_errors_name_the_node(op, inputs, attrs, msg):
    g, _ = tiny_block()
    with pytest.raises(OpError, match=msg):
        g.add(op, inputs, attrs, name="bad")


def test_graph_errors():
    g, _ = tiny_block()
    with pytest.raises(GraphError, match="not defined"):
        g.add("add", ["x", "nope"])
    with pytest.raises(GraphError, match="defined twice"):
        g.add("add", ["x", "x"], name="x2")
    with pytest.raises(GraphError, match="still has users"):
        g.remove("x")


def test_verifier_reports_every_problem():
    g, ws = tiny_block()
    ws.pop("wo")
    ws["wg"] = np.zeros((3, 3), np.float32)
    g.node("q").type = TensorType((1, "S", 7), "f32")
    g.outputs.append("ghost")
    with pytest.raises(VerifyError) as e:
        verify(g, ws)
    text = str(e.value)
    assert "'wo' is not in the weight store" in text
    assert "'wg' has shape [3, 3]" in text
    assert "%q: recorded type" in text
    assert "output %ghost" in text
    assert len(e.value.problems) >= 4


def test_verifier_checks_quant_side_arrays():
    g, ws = tiny_block()
    g.node("wq").type = TensorType((H * HD, D), "u4", QuantSpec(4, 16, "sym", "wq.scales"))
    with pytest.raises(VerifyError, match="wq.scales"):
        verify(g, ws)


def test_parse_errors_name_the_line():
    g, _ = tiny_block()
    lines = print_graph(g).splitlines()
    lines[3] = "  %broken = = oops"
    with pytest.raises(ParseError, match="line 4"):
        parse_graph("\n".join(lines))
    with pytest.raises(ParseError, match="line 1"):
        parse_graph("nonsense")


def test_save_load_round_trip(tmp_path):
    g, ws = tiny_block()
    serialize.save(g, ws, tmp_path)
    g2, ws2 = serialize.load(tmp_path)
    assert print_graph(g2) == print_graph(g)
    for n in ws.names():
        assert np.array_equal(ws[n], ws2[n])
    toks = np.array([[1, 2, 3, 4]])
    a = Interpreter(g, ws).logits(toks)
    b = Interpreter(g2, ws2).logits(toks)
    assert np.array_equal(a, b)


def test_weight_store_copy_shares_arrays_and_shape_only():
    _, ws = tiny_block()
    c = ws.copy()
    assert c["wq"] is ws["wq"]
    c["wq"] = np.zeros_like(ws["wq"])
    assert not np.array_equal(c["wq"], ws["wq"])
    s = WeightStore()
    s.declare("big", (4096, 4096))
    assert s.shape_only and s.info("big").nbytes == 4096 * 4096 * 4
    with pytest.raises(WeightError, match="no data"):
        s["big"]
    with pytest.raises(WeightError, match="not in the weight store"):
        s["other"]


def test_interpreter_kv_cache_matches_full_prefill():
    g, ws = tiny_block()
    toks = np.array([[3, 1, 4, 1, 5, 9, 2, 6]])
    full = Interpreter(g, ws).logits(toks)
    it = Interpreter(g, ws)
    parts = [it.logits(toks[:, :5])] + [it.logits(toks[:, i:i + 1]) for i in range(5, 8)]
    inc = np.concatenate(parts, axis=1)
    np.testing.assert_allclose(inc, full, atol=1e-5)  # float reference, not an integer path


def test_cost_counts_macs():
    g, _ = tiny_block()
    c = graph_cost(g, {"S": 1, "T": 10})
    lin = (H * HD * D + 2 * HKV * HD * D + D * H * HD + 2 * F * D + D * F + V * D)
    assert c["linear"].macs == lin
    assert c["attention"].macs == 2 * H * HD * 10
