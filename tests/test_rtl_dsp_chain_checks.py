"""The DSP chain's long RTL checks, beside tests/test_rtl_dsp_chain.py (in their own file
so that the pytest-xdist processes can share the work): the geometry sweep with at least
10^6 random MACs per mode, and the input protocol assertion firing on a deliberate
violation (the assertion mutants and the mutation campaign:
tests/test_rtl_dsp_chain_mutants.py)."""
from __future__ import annotations

import pytest

from plait.ir.numerics.dsp import CHAIN_MODES
from plait.rtl.dsp_chain import DspChainConfig
from plait.tests.test_rtl_dsp_chain import ALL_MODES, _ran, _run


#: the geometry sweep: (n_dsp, cascade, modes, random beats per mode).  Cascades of 1, 2,
#: 4 and 8; 16 to 64 slices, 48 of them a tree of 24 groups (not a power of two); every
#: mode each cascade allows; every weight width each mode takes (random test).
GEOMETRIES = [
    (16, 1, ALL_MODES, 8192),
    (32, 4, "dense,4:16,8:16,pair", 4096),
    (64, 8, "dense,8:16,pair", 4096),
    (48, 2, ALL_MODES, 8192),
]
MIN_RANDOM_MACS = 1_000_000     # per mode, over the sweep


@pytest.mark.slow
def test_rtl_geometry_sweep_random_macs():
    """Cascades of 1/2/4/8 and 16..64 slices, every mode and weight width: random
    streams and mode switching bit-exact, the latency measured on the waveform equal
    to the model, and at least 10^6 random MACs per mode over the sweep (2 MACs per
    slice per beat)."""
    macs: dict[str, int] = {}
    rows = []
    for n_dsp, cascade, modes, beats in GEOMETRIES:
        cfg = DspChainConfig(n_dsp=n_dsp, cascade=cascade, modes=modes)
        # -O0: each build runs one simulation, and compiling is most of its time
        run = _run(cfg, tests="random,switch", beats=beats, opt="-O0")
        assert _ran(run) == ["test_random_modes", "test_mode_switch_and_errors"], run.tests
        assert all(t.passed for t in run.tests), run.tests
        perf = {p["mode"]: p for p in run.perf()}
        assert sorted(perf) == sorted(cfg.mode_list())
        for m, p in perf.items():
            assert p["latency_measured"] == [cfg.latency(m)], (n_dsp, cascade, p)
            assert p["steady_utilisation"] == 1.0, (n_dsp, cascade, p)
            macs[m] = macs.get(m, 0) + p["macs"]
            rows.append((n_dsp, cascade, m, p["beats"], p["macs"], p["latency"]))
    print("\nn_dsp cascade mode   beats   random MACs  latency")
    for r in rows:
        print(f"{r[0]:5d} {r[1]:7d} {r[2]:6s} {r[3]:7d} {r[4]:12,d} {r[5]:8d}")
    print("total per mode: " + ", ".join(f"{m} {v:,}" for m, v in macs.items()))
    assert sorted(macs) == sorted(CHAIN_MODES)
    assert min(macs.values()) >= MIN_RANDOM_MACS, macs


@pytest.mark.slow
def test_input_protocol_assertion_fires():
    """a_in_hold: the testbench withdraws a beat the chain held back (a protocol
    violation on purpose); the simulation must stop with the assertion's message."""
    from plait.sim.runner import SimulationFailed
    with pytest.raises(SimulationFailed) as exc:
        _run(DspChainConfig(modes="dense,2:4"), tests="violate")
    assert "a_in_hold" in str(exc.value) and "in_valid dropped" in str(exc.value), str(exc.value)[-2000:]
