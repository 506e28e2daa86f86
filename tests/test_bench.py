"""`plait bench`: the tables are produced, the equality check runs, options are checked."""
from __future__ import annotations

import json

import pytest

from plait.cli import main


def test_bench_kernels_small_shapes_are_equal_to_the_numerics(capsys):
    pytest.importorskip("tvm")
    assert main(["bench", "kernels", "--shapes", "128x256", "--batches", "1,2", "--repeat", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["format"] for r in rows} == {"W2A8", "W4A8", "W8A8", "2:4"}
    assert all(r["equal"] is True for r in rows if r["M"] == 1)
    assert all(r["kernel_ms"] > 0 and r["fp32_over_kernel"] > 0 for r in rows)


@pytest.mark.parametrize("argv,words", [
    (["--formats", "W5A8"], ["--formats", "W5A8"]),
    (["--shapes", "4096by4096"], ["--shapes", "N x K"]),
    (["--repeat", "0"], ["--repeat", "at least 1"]),
])
def test_bench_kernels_bad_options(argv, words, capsys):
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main(["bench", "kernels", *argv]))
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("plait: error:") and all(w in err for w in words), err


def test_bench_model_rows_for_both_modes(tmp_path, capsys):
    from plait.tests.graphs import tiny_hf_dir
    hf = tiny_hf_dir(tmp_path / "hf")
    out = tmp_path / "a"
    assert main(["compile", str(hf), "--recipe", "w8a8", "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["bench", "model", str(out), "--prefill", "16", "--tokens", "4", "--no-baselines", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["engine"] for r in rows] == ["plait fast", "plait float (graph)", "plait exact"]
    assert all(r["prefill_tok_s"] > 0 and r["decode_tok_s"] > 0 for r in rows)
    assert main(["bench", "model", str(out), "--prefill", "16", "--tokens", "2", "--no-baselines", "--json",
                 "--mode", "float", "--no-graph-runner"]) == 0
    assert [r["engine"] for r in json.loads(capsys.readouterr().out)] == ["plait fast"]
