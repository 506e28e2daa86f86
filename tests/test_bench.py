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
    assert [r["engine"] for r in rows] == ["plait fast", "plait fast (int8 act)", "plait float (graph)",
                                           "plait exact"]
    assert all(r["prefill_tok_s"] > 0 and r["decode_tok_s"] > 0 for r in rows)
    assert main(["bench", "model", str(out), "--prefill", "16", "--tokens", "2", "--no-baselines", "--json",
                 "--mode", "float", "--no-graph-runner"]) == 0
    assert [r["engine"] for r in json.loads(capsys.readouterr().out)] == ["plait fast", "plait fast (int8 act)"]


def test_llama_cpp_row_survives_a_crash_of_the_peer(monkeypatch):
    """llama.cpp runs in a child process: a segfault of its batched prefill (seen with
    llama-cpp-python 0.3.36 on an AVX-512 host) retries with one token per batch and
    says so in the row; two failures leave an empty row that names both."""
    pytest.importorskip("llama_cpp")
    import plait.runtime.bench as B
    tries = []

    def child(ids, n_prefill, n_ubatch):
        tries.append(n_ubatch)
        if n_ubatch == 0:
            return None, "signal 11"
        return {"prefill_tok_s": 10.0, "decode_tok_s": 20.0, "model": "m.gguf"}, ""
    monkeypatch.setattr(B, "_llama_cpp_child", child)
    row = B._llama_cpp_row([1, 2, 3], 2)
    assert tries == [0, 1] and row["decode_tok_s"] == 20.0
    assert "batched prefill failed (signal 11)" in row["note"] and "n_ubatch=1" in row["note"]
    monkeypatch.setattr(B, "_llama_cpp_child", lambda *a: (None, "signal 11"))
    row = B._llama_cpp_row([1, 2, 3], 2)
    assert row["decode_tok_s"] is None and row["note"].count("signal 11") == 2
