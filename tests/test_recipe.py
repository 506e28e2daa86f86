"""Recipes: bundled TOML recipes, validation errors naming file + key, run_recipe."""
import json
import textwrap

import numpy as np
import pytest

from plait.ir import Interpreter, SparsitySpec, print_graph, verify
from plait.passes import RecipeError, list_recipes, load_recipe, run_recipe
from plait.passes.recipe import RECIPE_DIR
from plait.tests.graphs import llama, tiny_block

from .test_passes import LINEARS, TOKENS, ptype

BUNDLED = ["default", "fp32", "w8", "w4g128", "w4g32-asym", "sparse24", "w4-sparse24"]


def write(tmp_path, text, name="r.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_bundled_recipes_exist_and_load():
    assert set(BUNDLED) <= set(list_recipes())
    for name in list_recipes():
        r = load_recipe(name)
        assert r.name == name and r.source == str(RECIPE_DIR / f"{name}.toml")
        assert r.text.startswith("#") and r.description
        assert [p.spec() for p in r.pipeline] == [p.spec() for p in r.build()]
    d = load_recipe("default")
    q = [p for p in d.pipeline if p.name == "quantize"]
    assert len(q) == 1 and q[0].options["bits"] == 8 and q[0].options["scheme"] == "sym"
    assert q[0].options["group_size"] == 128 and "lm_head*" in q[0].options["exclude"]
    assert [p.name for p in load_recipe("fp32").pipeline] == ["canonicalize"]


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_recipes_run_on_a_small_model(name):
    g0, w0 = llama(tied=False)
    text0 = print_graph(g0)
    g, w, rep = run_recipe(g0, w0, name, debug=True)
    verify(g, w)
    assert print_graph(g0) == text0                        # inputs untouched
    assert [p.name for p in rep.passes] == [s["pass"] for s in load_recipe(name).passes]
    assert rep.recipe == name
    for lw in LINEARS:
        t = ptype(g, lw)
        assert (t.quant is not None) == (name in ("default", "w8", "w4g128", "w4g32-asym", "w4-sparse24"))
        assert (t.sparsity == SparsitySpec(2, 4)) == ("sparse24" in name)
        if t.quant:
            assert t.quant.bits == (4 if "w4" in name else 8)
    head = ptype(g, "lm_head.weight")
    assert head.quant is None and head.sparsity is None     # lm_head stays float everywhere
    out = Interpreter(g, w).logits(TOKENS)
    assert out.shape == (1, TOKENS.shape[1], 40) and np.isfinite(out).all()


def test_default_recipe_group_fallback_on_k_not_multiple_of_128():
    g, w, rep = run_recipe(*llama(tied=False), "default")   # K = 64 and 128
    assert ptype(g, "model.layers.0.mlp.down_proj.weight").quant.group_size == 128
    assert ptype(g, "model.layers.0.mlp.up_proj.weight").quant.group_size == 64
    g, w, _ = run_recipe(*tiny_block(), "w4g128")           # K = 32 and 48
    assert ptype(g, "wd").quant.group_size == 16 and ptype(g, "wq").quant.group_size == 32


def test_load_by_path_dict_and_round_trip(tmp_path):
    p = write(tmp_path, """
        [recipe]
        description = "mlp only, 3-bit asym"

        [[passes]]
        pass = "quantize"
        bits = 3
        scheme = "asym"
        group_size = 32
        include = ["*.mlp.*"]
    """, name="mlp3.toml")
    r = load_recipe(p)
    assert r.name == "mlp3" and r.source == str(p)
    assert load_recipe(str(p)).passes == r.passes
    d = json.loads(json.dumps(r.to_dict()))
    assert d["name"] == "mlp3" and d["description"] == "mlp only, 3-bit asym"
    again = load_recipe(d)
    assert [x.spec() for x in again.pipeline] == [x.spec() for x in r.pipeline]
    assert (again.name, again.description) == (r.name, r.description)
    assert load_recipe(r) is r
    g, w, _ = run_recipe(*llama(), r)
    for lw in LINEARS:
        t = ptype(g, lw)
        assert (t.dtype == "u3") == (".mlp." in lw) and (t.quant is None) == (".mlp." not in lw)


def test_empty_pipeline_is_allowed(tmp_path):
    r = load_recipe(write(tmp_path, "passes = []\n"))
    g, w, rep = run_recipe(*llama(), r)
    assert rep.passes == [] and not rep.changed


BAD = [
    ("[[passes]]\npass = 'quantize'\nbits = 4\n[extra]\nx = 1\n", "extra", "unknown top-level key"),
    ("[recipe]\nname = 'x'\nauthor = 'me'\npasses = []\n", "recipe.author", "unknown key"),
    ("[recipe]\nname = 3\npasses = []\n", "recipe.name", "must be a string"),
    ("description = 1\npasses = []\n", "description", "must be a string"),
    ("name = 'a'\npasses = []\n[recipe]\nname = 'b'\n", "name", "given twice"),
    ("[recipe]\nname = 'x'\n", "passes", "missing"),
    ("passes = 'quantize'\n", "passes", "array of tables"),
    ("passes = [1]\n", "passes[1]", "must be a table"),
    ("[[passes]]\nbits = 4\n", "passes[1].pass", "missing"),
    ("[[passes]]\npass = 'dce'\n[[passes]]\npass = 'quantise'\n", "passes[2].pass", "unknown pass 'quantise'"),
    ("[[passes]]\npass = 'quantize'\nbits = 4\nbitz = 4\n", "passes[1].bitz", "unknown option"),
    ("[[passes]]\npass = 'quantize'\nbits = '4'\n", "passes[1].bits", "expected int"),
    ("[[passes]]\npass = 'quantize'\nbits = 5\n", "passes[1].bits", "supports 2, 3, 4, 8 bits, got 5"),
    ("[[passes]]\npass = 'quantize'\n", "passes[1].bits", "required option is missing"),
    ("[[passes]]\npass = 'quantize'\nbits = 4\nscheme = 'nf4'\n", "passes[1].scheme", "must be one of"),
    ("[[passes]]\npass = 'quantize'\nbits = 4\ngroup_size = 30\n", "passes[1].group_size", "multiple of 4"),
    ("[[passes]]\npass = 'quantize'\nbits = 4\nfallback_group_sizes = 64\n", "passes[1].fallback_group_sizes",
     "expected list[int]"),
    ("[[passes]]\npass = 'quantize'\nbits = 4\nexclude = ['lm_head', 3]\n", "passes[1].exclude", "expected list[str]"),
    ("[[passes]]\npass = 'quantize'\nscheme = 'ternary'\nbits = 3\n", "passes[1].bits", "ternary"),
    ("[[passes]]\npass = 'sparsify'\npattern = '3:4'\n", "passes[1].pattern", "must be one of"),
    ("[[passes]]\npass = 'canonicalize'\nmax_iterations = 0\n", "passes[1].max_iterations", ">= 1"),
    ("[[passes]]\npass = 'dce'\nverbose = true\n", "passes[1].verbose", "known options: none"),
]


@pytest.mark.parametrize("text,key,msg", BAD, ids=[b[1] + ":" + b[2][:16] for b in BAD])
def test_bad_recipe_names_file_and_key(tmp_path, text, key, msg):
    p = write(tmp_path, text, name="bad.toml")
    with pytest.raises(RecipeError) as e:
        load_recipe(p)
    s = str(e.value)
    assert s.startswith(f"recipe {p}: {key}: "), s
    assert msg in s, s


def test_bad_toml_syntax_and_missing_files(tmp_path):
    p = write(tmp_path, "[[passes]]\npass = quantize\n", name="syntax.toml")
    with pytest.raises(RecipeError, match=rf"recipe {p}: not valid TOML: .*line 2"):
        load_recipe(p)
    with pytest.raises(RecipeError, match=r"recipe 'w3': no such file and no bundled recipe .*bundled: .*w4g128"):
        load_recipe("w3")
    with pytest.raises(RecipeError, match=r"recipe nope/r\.toml: no such file"):
        load_recipe("nope/r.toml")


def test_run_recipe_errors_at_run_time_name_the_weight(tmp_path):
    p = write(tmp_path, """
        [[passes]]
        pass = "quantize"
        bits = 4
        group_size = 128
    """)
    from plait.passes import PassError
    with pytest.raises(PassError, match=r"weight 'model\.layers\.0\.self_attn\.q_proj\.weight' has K=64"):
        run_recipe(*llama(), p)


def test_run_recipe_dump_and_resume(tmp_path):
    g0, w0 = llama()
    g1, w1, rep1 = run_recipe(g0, w0, "w4-sparse24", dump_dir=tmp_path / "dump")
    assert sorted(p.name for p in (tmp_path / "dump").iterdir() if p.is_dir()) == \
        ["00-input", "01-canonicalize", "02-sparsify", "03-quantize", "04-map_engines", "05-pack"]
    g2, w2, rep2 = run_recipe(g0, w0, "w4-sparse24", resume_from=tmp_path / "dump" / "02-sparsify")
    assert [p.resumed for p in rep2.passes] == [True, True, False, False, False]
    assert [p.changed for p in rep2.passes] == [p.changed for p in rep1.passes]
    assert print_graph(g1) == print_graph(g2)
    assert all(np.array_equal(w1[n], w2[n]) for n in w1.names())
    from plait.passes import PassError
    with pytest.raises(PassError, match="pass 2 differs"):
        run_recipe(g0, w0, "w8", resume_from=tmp_path / "dump" / "02-sparsify")
    with pytest.raises(PassError, match="the dump has 5 passes but this pipeline only 4"):
        run_recipe(g0, w0, "w8", resume_from=tmp_path / "dump")


def test_recipe_report_lines_for_the_cli():
    _, _, rep = run_recipe(*llama(), "w8")
    lines = rep.lines()
    assert "canonicalize" in lines[0] and "quantize" in lines[1] and "changed" in lines[1]
    assert lines[-1].strip().startswith("total")
