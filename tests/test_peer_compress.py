"""benchmarks/peer_llmcompressor.py: llmcompressor's GPTQ W4 beside plait.

llmcompressor lives in its own venv (``make peer-venv``; it pins an older transformers).
The round trip (plait's side -> the peer subprocess -> dequantized weights scored by
plait's ``perplexity``) runs only where that peer is installed; the missing-peer path
(one clear line, exit status 2) is checked everywhere.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from plait.tests.graphs import tiny_hf_dir

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "peer_llmcompressor.py"


def _load():
    spec = importlib.util.spec_from_file_location("plait_bench_peer_llmcompressor", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_missing_peer_is_one_clear_line(tmp_path, monkeypatch, capsys):
    mod = _load()
    monkeypatch.delenv(mod.PEER_ENV_VAR, raising=False)
    missing = tmp_path / "no-venv" / "bin" / "python"
    with pytest.raises(mod.PeerUnavailable) as e:
        mod.check_peer(missing)
    msg = str(e.value)
    assert "\n" not in msg and "llmcompressor peer not installed" in msg and "make peer-venv" in msg
    assert str(missing) in msg
    # the command line: the same line after "error: ", status 2, before loading any model
    assert mod.main(["--python", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {msg}\n"
    # run_peer refuses before loading anything, too
    with pytest.raises(mod.PeerUnavailable):
        mod.run_peer([1, 2, 3], {"t": [1, 2, 3]}, python=missing, model="does-not-exist")


def test_shared_constants():
    mod = _load()
    assert mod.PROMPTS == ("The capital of France is", "def fibonacci(n):", "Water boils at")
    assert "class ArgumentParser" in mod.second_text()


def _peer_or_skip(mod):
    try:
        return mod.check_peer()
    except mod.PeerUnavailable as e:
        pytest.skip(str(e))


@pytest.mark.slow                                             # ~1 min: the peer imports llmcompressor
def test_round_trip_on_tiny_model(tmp_path):
    mod = _load()
    _peer_or_skip(mod)
    from plait.frontend import load_tokenizer
    from plait.runtime.evaluate import default_text

    d = tiny_hf_dir(tmp_path / "tiny")
    ids = load_tokenizer(d).encode(default_text()[:6000])
    # hidden 64: g64 for q/k/v/o/gate/up, g128 for down_proj (K 128), as in w4g128
    rep = mod.run_peer(ids[-128:], {"head": ids}, window=64, max_tokens=128, model=d,
                       prompts=mod.PROMPTS[:1], max_new_tokens=2, echo=False, work_dir=tmp_path)
    assert rep["quantized_modules"] == 14                     # 2 layers x 7 linears; lm_head float
    assert rep["code_levels"] <= 16 and rep["dequant_vs_weight_max_abs"] == 0.0
    assert rep["check_max_abs_diff"] <= 1e-4                  # the peer's forward == its weights here
    assert rep["calib_windows"] == 2 and rep["calib_tokens"] == 128
    f, q = rep["fp32"]["texts"]["head"], rep["quantized"]["texts"]["head"]
    assert f["tokens"] == q["tokens"] == 126                  # 2 windows of 64 -> 63 predicted each
    assert math.isfinite(q["ppl"]) and q["ppl"] != f["ppl"]
    assert q["ratio_to_fp32"] == pytest.approx(q["ppl"] / f["ppl"])
    assert rep["gptq"]["wall_s"] > 0 and rep["gptq"]["peak_rss_bytes"] >= rep["gptq"]["rss_before_bytes"] > 0
    assert set(rep["quantized"]["answers"]) == {mod.PROMPTS[0]}
    assert "| llmcompressor" in mod.markdown(rep)
    assert rep["peer_config"]["modules_per_group_size"] == {"128": 2, "64": 12}
