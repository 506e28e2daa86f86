"""The DSP chain's long RTL checks, beside tests/test_rtl_dsp_chain.py (in their own file
so that the two pytest-xdist processes can share the work): the geometry sweep with at
least 10^6 random MACs per mode, and the proof that every simulation assertion of
dsp_chain.sv can fire (a deliberate protocol violation; one mutant per invariant)."""
from __future__ import annotations

import pytest

from plait.ir.numerics.dsp import CHAIN_MODES
from plait.rtl.dsp_chain import DspChainConfig
from plait.rtl.units import unit_sources
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
        run = _run(cfg, tests="random,switch", beats=beats)
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


# Each simulation assertion of dsp_chain.sv and a mutant that must make it fire:
# assertion -> (site, expression in the site, its mutant, testbench tests to run).  All
# are in one build (plait.sim.mutate.switched_mutants; the bench writes plait_mut from
# PLAIT_TB_MUTANT), of the modes every mutant needs.
MUTANT_MODES = "dense,2:4,pair"
ASSERTION_MUTANTS = {
    # a new mode enters with beats of the old one in flight
    "a_mode_drained": ("assign in_ready = (!(|v) || (in_mode == cur_mode)) && (room || !in_last);",
                       "(!(|v) || (in_mode == cur_mode))", "1'b1", "switch"),
    # out_valid stays up one cycle after the last word left (the end of the
    # backpressure test's first stream of one-beat groups: nothing is outstanding)
    "a_no_spurious_out": ("assign out_valid_d = push || (n_out > (OD_W+1)'(1))",
                          "(n_out > (OD_W+1)'(1))", "(n_out > (OD_W+1)'(0))", "backpressure"),
    # no credits: more groups than the output FIFO holds enter under back-pressure
    "a_groups_bound": ("assign room     = pending != (OD_W+1)'(OUT_DEPTH);",
                       "pending != (OD_W+1)'(OUT_DEPTH)", "1'b1", "backpressure"),
    # one lane's accumulator control is not the master copy
    "a_replica": ("          acc_v_q <= v_tap;", "v_tap", "v_tap && !(r == 0 && ln == 1)", "edges"),
    # one row's FIFO read pointer misses the pops
    "a_fifo_replica": ("assign pop_q  = ov_q && out_ready;", "ov_q && out_ready",
                       "ov_q && out_ready && (r != 0)", "edges"),
    # one slice's pair flag is wrong
    "a_pair_replica": ("        pair_r[i]          <= (in_mode == M_PAIR);", "(in_mode == M_PAIR)",
                       "(in_mode == M_PAIR) && (i != 3)", "edges"),
    # a pair beat with 8-bit codes is accepted
    "a_pair_wbits": ("MODE_EN[in_mode] && !(EN_PAIR && in_mode == M_PAIR && in_wbits == WB_8);",
                     "!(EN_PAIR && in_mode == M_PAIR && in_wbits == WB_8)", "1'b1", "switch"),
    # the last word is withdrawn while out_ready is low
    "a_out_hold": ("(n_out == (OD_W+1)'(1) && !pop)", "!pop", "1'b0", "backpressure"),
    # the FIFO's word count runs ahead of its words
    "a_fifo_count": ("n_out     <= n_out + (OD_W+1)'(push) - (OD_W+1)'(pop);", "(OD_W+1)'(push)",
                     "(OD_W+1)'(push) + (OD_W+1)'(push)", "edges"),
}


@pytest.fixture(scope="module")
def switched(tmp_path_factory):
    """The one build of every assertion mutant: (sources, {assertion: plait_mut})."""
    from plait.sim.mutate import switched_mutants
    return switched_mutants(unit_sources("dsp_chain"), tmp_path_factory.mktemp("dsp_mutants"),
                            "dsp_chain.sv", "dsp_chain",
                            {k: v[:3] for k, v in ASSERTION_MUTANTS.items()})


@pytest.mark.slow
def test_switched_mutant_build_unmutated_passes(switched):
    """With no mutant switched on, the mutants' build is the design: it passes."""
    srcs, _ids = switched
    run = _run(DspChainConfig(modes=MUTANT_MODES), sources=srcs, tests="backpressure,edges,switch",
               quick=True, mutant=0)
    assert _ran(run) == ["test_output_backpressure", "test_edge_cases",
                         "test_mode_switch_and_errors"], run.tests
    assert all(t.passed for t in run.tests), run.tests


@pytest.mark.slow
def test_input_protocol_assertion_fires():
    """a_in_hold: the testbench withdraws a beat the chain held back (a protocol
    violation on purpose); the simulation must stop with the assertion's message."""
    from plait.sim.runner import SimulationFailed
    with pytest.raises(SimulationFailed) as exc:
        _run(DspChainConfig(modes="dense,2:4"), tests="violate")
    assert "a_in_hold" in str(exc.value) and "in_valid dropped" in str(exc.value), str(exc.value)[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ASSERTION_MUTANTS))
def test_assertion_fires_on_its_mutant(switched, name):
    """Every internal-invariant assertion can fail: the mutant that breaks its invariant
    stops the simulation with that assertion named (before any scoreboard compare)."""
    from plait.sim.runner import SimulationFailed
    srcs, ids = switched
    with pytest.raises(SimulationFailed) as exc:
        _run(DspChainConfig(modes=MUTANT_MODES), sources=srcs, tests=ASSERTION_MUTANTS[name][3],
             quick=True, mutant=ids[name])
    assert f"{name}:" in str(exc.value) or f".{name}" in str(exc.value), str(exc.value)[-2000:]


@pytest.mark.slow
def test_mutation_campaign_no_survivors():
    """The DSP chain's whole mutation campaign (plait.sim.mutate.dsp_chain_campaign: every
    enumerated site of dsp_chain.sv and the submodules the behavioural build simulates,
    all in one switched build and one simulation, about 45 s): every mutant is killed --
    a wrong / missing output word or mode, a nonzero unused row, a latency off the model,
    a hang, err, a failed assertion -- or listed equivalent with its reason; none
    survives (`make mutation` prints the table)."""
    from plait.sim.mutate import SITE_CLASSES, dsp_chain_campaign, run_campaign
    res = run_campaign(dsp_chain_campaign())
    print("\n" + res.table())
    assert not res.survivors, "\n".join(r.row() for r in res.survivors)
    counts = res.counts()
    assert set(counts) == set(SITE_CLASSES) and len(res.results) >= 200, counts
    killed = sum(c["killed"] for c in counts.values())
    assert killed >= 0.9 * len(res.results), counts
