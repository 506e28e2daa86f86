"""``plait sweep`` on a local Ray with 2 workers, on the two-layer tiny Llama.

One sweep (fp32 baseline, w8, w4g128 and a recipe that fails when it runs, on the
default text and an extra one) is made once per module; the tests then read its table
and JSON, run it again (every cell from the cache, Ray not used), damage cache entries
(recomputed, not trusted), and check that bad input is refused in one line before
anything is written or any Ray task starts.  Ray is started once for the module.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest

from plait.cli import main

SETTINGS = ["--max-tokens", "128", "--window", "64", "--workers", "2"]
NOTES = "The quick brown fox jumps over the lazy dog, again and again, " * 20
# a recipe that loads (every key is valid) but fails when it runs: Wanda needs calibrate first
WANDA_NO_CALIBRATE = '[[passes]]\npass = "canonicalize"\n\n[[passes]]\npass = "sparsify"\nmethod = "wanda"\n'


def run(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def hf_tiny(tmp_path_factory) -> Path:
    from plait.tests.graphs import tiny_hf_dir
    return tiny_hf_dir(tmp_path_factory.mktemp("hf") / "tiny", ctx=256)


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs, started the way ``plait sweep --workers 2`` starts it."""
    import ray

    from plait.runtime.sweep import start_ray
    assert start_ray(workers=2)
    assert ray.cluster_resources()["CPU"] == 2
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def first(hf_tiny, local_ray, tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("sweep")
    (d / "nocal.toml").write_text(WANDA_NO_CALIBRATE)
    (d / "notes.txt").write_text(NOTES)
    out = d / "out"
    argv = ["sweep", str(hf_tiny), "--recipes", f"w8,w4g128,{d / 'nocal.toml'}", "--text", str(d / "notes.txt"),
            "-o", str(out), *SETTINGS]
    rc, stdout, stderr = run(argv)
    return {"rc": rc, "stdout": stdout, "stderr": stderr, "out": out, "dir": d, "argv": argv,
            "doc": json.loads((out / "sweep.json").read_text())}


def rows(doc) -> dict:
    return {r["recipe"]: r for r in doc["rows"]}


def test_sweep_on_local_ray_with_2_workers(first):
    d, doc = first["dir"], first["doc"]
    bad = str(d / "nocal.toml")
    notes = str(d / "notes.txt")
    assert [r["recipe"] for r in doc["rows"]] == ["fp32", "w8", "w4g128", bad]   # the baseline first
    r = rows(doc)
    # the failing cell is reported in its row; the others finished; exit 2 with one line naming it
    assert first["rc"] == 2
    last = first["stderr"].strip().splitlines()[-1]
    assert last.startswith("plait: error: 1 of 4 sweep cells failed") and bad in last and "calibrate" in last
    assert not r[bad]["ok"] and "PassError" in r[bad]["error"] and "run the calibrate pass first" in r[bad]["error"]
    good = [r["fp32"], r["w8"], r["w4g128"]]
    assert all(x["ok"] and not x["cached"] for x in good)
    assert len({(x["worker"]["host"], x["worker"]["pid"]) for x in good}) == 2      # two Ray workers
    assert doc["ray"]["cpus"] == 2 and doc["settings"] == {"max_tokens": 128, "window": 64, "mode": "float"}
    assert [t["label"] for t in doc["texts"]] == ["pydoc_data.topics", notes]
    for x in good:
        assert set(x["perplexity"]) == {"pydoc_data.topics", notes}
        assert all(math.isfinite(p) and p > 1 for p in x["perplexity"].values())
        assert x["tokens"]["pydoc_data.topics"] == 126 and x["compile_seconds"] > 0 and x["eval_seconds"] > 0
        assert x["peak_rss_bytes"] > 100 << 20
    assert r["fp32"]["ratio_to_fp32"] == {"pydoc_data.topics": 1.0, notes: 1.0}
    assert r["w4g128"]["ratio_to_fp32"][notes] == r["w4g128"]["perplexity"][notes] / r["fp32"]["perplexity"][notes]
    assert r["w8"]["perplexity"] != r["fp32"]["perplexity"]                          # quantized: not the same model
    # bits per linear weight (the tied lm_head stays float32): fp32 > w8 > w4g128
    assert r["fp32"]["bits_per_weight"] == 32.0 > r["w8"]["bits_per_weight"] > r["w4g128"]["bits_per_weight"]
    # the table (stdout and sweep.md) and the plot
    md = (first["out"] / "sweep.md").read_text()
    assert md in first["stdout"]
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert lines[0].startswith("| recipe | bits/weight | ppl pydoc_data.topics | x fp32 |") and len(lines) == 5
    assert lines[1].startswith("| fp32 | 32.00 |") and "| 1.0000 |" in lines[1]
    assert "PassError" in lines[4]
    png = (first["out"] / "sweep.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert sorted(p.name for p in first["out"].iterdir()) == ["cache", "sweep.json", "sweep.md", "sweep.png"]
    assert len(list((first["out"] / "cache").iterdir())) == 3                      # the failed cell is not cached


def test_the_sweep_measures_what_plait_eval_measures(first, hf_tiny, tmp_path):
    art = tmp_path / "a"
    assert run(["compile", str(hf_tiny), "--recipe", "w4g128", "-o", str(art)])[0] == 0
    rc, out, _ = run(["eval", str(art), "--max-tokens", "128", "--window", "64", "--json"])
    assert rc == 0
    assert json.loads(out)["perplexity"] == pytest.approx(rows(first["doc"])["w4g128"]["perplexity"]
                                                          ["pydoc_data.topics"], rel=1e-5)


def test_a_second_run_takes_every_cell_from_the_cache(first, monkeypatch):
    from plait.runtime import sweep
    monkeypatch.setattr(sweep, "_run_on_ray", lambda *a: pytest.fail("a cached cell was recomputed"))
    argv = list(first["argv"])
    argv[argv.index("--recipes") + 1] = "w8,w4g128"
    rc, _, err = run(argv)
    assert rc == 0 and "all 3 cells are in the cache" in err
    doc = json.loads((first["out"] / "sweep.json").read_text())
    assert doc["ray"] is None and all(r["cached"] for r in doc["rows"])
    for name, r in rows(doc).items():
        assert r["perplexity"] == rows(first["doc"])[name]["perplexity"]


def test_a_damaged_cache_entry_is_recomputed(first, tmp_path):
    import shutil
    out = tmp_path / "out"
    shutil.copytree(first["out"], out)
    keys = {r["recipe"]: r["key"] for r in first["doc"]["rows"]}
    (out / "cache" / f"{keys['w8']}.json").write_text('{"schema": 1, "key": "')            # truncated
    entry = json.loads((out / "cache" / f"{keys['w4g128']}.json").read_text())
    entry["result"]["perplexity"][0] = -1.0                                                  # a wrong value
    (out / "cache" / f"{keys['w4g128']}.json").write_text(json.dumps(entry))
    argv = list(first["argv"])
    argv[argv.index("-o") + 1] = str(out)
    argv[argv.index("--recipes") + 1] = "w8,w4g128"
    rc, _, err = run(argv)
    assert rc == 0
    assert "cache entry of w8 is damaged" in err and "cache entry of w4g128 is damaged" in err
    r = rows(json.loads((out / "sweep.json").read_text()))
    assert r["fp32"]["cached"] and not r["w8"]["cached"] and not r["w4g128"]["cached"]
    for name in ("w8", "w4g128"):
        assert r[name]["perplexity"] == pytest.approx(rows(first["doc"])[name]["perplexity"], rel=1e-6)
        assert json.loads((out / "cache" / f"{keys[name]}.json").read_text())["result"]["perplexity"][0] > 1


def _foreign(tmp):
    (tmp / "mine").mkdir()
    (tmp / "mine" / "notes.txt").write_text("keep me")
    return tmp / "mine"


@pytest.mark.parametrize("case,words", [
    ("unknown recipe", ["recipe 'w5-nope'", "no bundled recipe"]),
    ("bad recipe key", ["passes[2].bitz", "quantize"]),
    ("recipe twice", ["'w8' is listed twice"]),
    ("missing text", ["--text", "no such file"]),
    ("output is a file", ["-o", "exists and is not a directory"]),
    ("foreign output", ["not part of a plait sweep", "notes.txt"]),
    ("window too long", ["--window 1024", "context of 256"]),
    ("no cluster there", ["--address 127.0.0.1:1", "no Ray cluster answers"]),
])
def test_bad_input_is_refused_before_anything_runs(case, words, hf_tiny, tmp_path, monkeypatch):
    from plait.runtime import sweep
    monkeypatch.setattr(sweep, "start_ray", lambda *a, **k: pytest.fail("Ray started on bad input"))
    out = tmp_path / "out"
    recipes, extra = "w8", []
    if case == "unknown recipe":
        recipes = "w8,w5-nope"
    elif case == "bad recipe key":
        (tmp_path / "r.toml").write_text('[[passes]]\npass = "canonicalize"\n\n[[passes]]\npass = "quantize"\nbitz = 4\n')
        recipes = f"w8,{tmp_path / 'r.toml'}"
    elif case == "recipe twice":
        recipes = "w8,w4g128,w8"
    elif case == "missing text":
        extra = ["--text", str(tmp_path / "absent.txt")]
    elif case == "output is a file":
        out.write_text("mine")
    elif case == "foreign output":
        out = _foreign(tmp_path)
    elif case == "window too long":
        extra = ["--window", "1024"]
    elif case == "no cluster there":
        extra = ["--address", "127.0.0.1:1"]
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    rc, stdout, err = run(["sweep", str(hf_tiny), "--recipes", recipes, "-o", str(out), *extra])
    assert rc == 2 and stdout == ""
    assert err.startswith("plait: error:") and err.count("\n") == 1 and "Traceback" not in err, err
    assert all(w in err for w in words), (words, err)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == before   # nothing written
    if case == "foreign output":
        assert (out / "notes.txt").read_text() == "keep me"
