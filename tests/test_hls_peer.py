"""benchmarks/hls_peer.py: hls4ml beside plait's DSP-chain HLS top on one int8 Linear.

The comparison runs only where hls4ml (the optional ``peer`` extra) is installed; the
missing-extra path (a clear install line, exit status 2) is checked everywhere.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "hls_peer.py"


def _load():
    spec = importlib.util.spec_from_file_location("plait_bench_hls_peer", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_without_hls4ml_says_how_to_install(monkeypatch, capsys):
    mod = _load()
    monkeypatch.setitem(sys.modules, "hls4ml", None)       # import hls4ml -> ImportError
    assert mod.main(["--k", "64", "--n", "96"]) == 2
    err = capsys.readouterr().err
    assert "hls4ml is not installed" in err and ".[peer]" in err


def test_resource_reuse_factor_is_valid_for_hls4ml():
    mod = _load()
    rf = mod.resource_rf(576, 1536)
    assert mod._valid_rf(576, 1536, rf) and 576 * 1536 // rf <= mod.U280_DSP
    assert rf == 144                                        # 6144 multipliers


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_hls4ml_and_plait_equal_numerics(tmp_path):
    pytest.importorskip("hls4ml")
    mod = _load()
    out = tmp_path / "peer.json"
    rc = mod.main(["--k", "64", "--n", "96", "--batch", "5", "--weights", "random",
                   "--reuse-factor", "32", "--out-dir", str(tmp_path / "build"),
                   "--json", str(out)])
    rep = json.loads(out.read_text())
    def key(flow: str) -> str:                              # "hls4ml 1.3.0 latency RF=1"
        w = flow.split()
        return f"hls4ml {w[2]}" if w[0] == "hls4ml" else " ".join(w[:2])

    rows = {key(r["flow"]): r for r in rep["rows"]}
    assert set(rows) == {"hls4ml latency", "hls4ml resource", "plait dsp_chain"}, rows
    for r in rows.values():
        assert r["equal_numerics"], r
        assert r["max_abs_diff_p"] == 0
    for s in ("latency", "resource"):
        h = rows[f"hls4ml {s}"]
        # hls4ml's output is the integer accumulator; acc * mant == linear_int's P
        assert h["max_abs_diff_acc"] == 0 and h["output"].startswith("acc")
        assert h["weight_bytes_in_sources"] > 64 * 96 and h["weight_ports"] == []
    assert rows["hls4ml resource"]["multipliers"] == 64 * 96 // 32
    p = rows["plait dsp_chain"]
    assert p["weight_bytes_in_sources"] == 0 and {"codes", "mant"} <= set(p["weight_ports"])
    assert p["code_generated"]["pragmas"].get("INTERFACE", 0) >= 5
    assert rc == 0
