"""The DSP chain's mutation tests (own file: the pytest-xdist processes share the long
RTL work): one mutant per simulation assertion of dsp_chain.sv, all in one switched build,
each stopping the simulation with its assertion named; and the mutation campaign over
every enumerated site (plait.sim.mutate.dsp_chain_campaign) with no survivor."""
from __future__ import annotations

import pytest

from plait.rtl.dsp_chain import DspChainConfig
from plait.rtl.units import unit_sources
from plait.tests.test_rtl_dsp_chain import _ran, _run


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
    "a_replica": ("else        acc_v_q <= v_tap;", "v_tap", "v_tap && !(r == 0 && ln == 1)", "edges"),
    # one row's FIFO read pointer misses the pops
    "a_fifo_replica": ("assign pop_q  = ov_q && out_ready;", "ov_q && out_ready",
                       "ov_q && out_ready && (r != 0)", "edges"),
    # one slice's pair flag is wrong
    "a_pair_replica": ("        pair_r[i]          <= (in_mode == M_PAIR);", "(in_mode == M_PAIR)",
                       "(in_mode == M_PAIR) && (i != 3)", "edges"),
    # a pair beat with 8-bit codes is accepted
    "a_pair_wbits": ("MODE_EN[in_mode] && !(EN_PAIR && in_mode == M_PAIR && wbits == WB_8);",
                     "!(EN_PAIR && in_mode == M_PAIR && wbits == WB_8)", "1'b1", "switch"),
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
               mutant=0, opt="-O0")
    assert _ran(run) == ["test_output_backpressure", "test_edge_cases",
                         "test_mode_switch_and_errors"], run.tests
    assert all(t.passed for t in run.tests), run.tests


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ASSERTION_MUTANTS))
def test_assertion_fires_on_its_mutant(switched, name):
    """Every internal-invariant assertion can fail: the mutant that breaks its invariant
    stops the simulation with that assertion named (before any scoreboard compare)."""
    from plait.sim.runner import SimulationFailed
    srcs, ids = switched
    with pytest.raises(SimulationFailed) as exc:
        _run(DspChainConfig(modes=MUTANT_MODES), sources=srcs, tests=ASSERTION_MUTANTS[name][3],
             mutant=ids[name], opt="-O0")
    assert f"{name}:" in str(exc.value) or f".{name}" in str(exc.value), str(exc.value)[-2000:]


#: mutants per site class of the CI campaign (the whole campaign: `make mutation`)
CI_MUTANTS_PER_CLASS = 6


@pytest.mark.slow
def test_mutation_campaign_no_survivors():
    """The CI-sized DSP chain mutation campaign (plait.sim.mutate.dsp_chain_campaign,
    CI_MUTANTS_PER_CLASS mutants of each site class of dsp_chain.sv and the submodules the
    behavioural build simulates, one switched build, one simulation): every mutant is
    killed -- a wrong / missing output word or mode, a nonzero unused row, a latency off
    the model, a hang, err, a failed assertion -- or listed equivalent with its reason;
    none survives.  The whole campaign (222 mutants, about a minute: 203 killed, 19
    equivalent) is `make mutation`."""
    from plait.sim.mutate import dsp_chain_campaign, run_sample
    res = run_sample(dsp_chain_campaign(), CI_MUTANTS_PER_CLASS)
    assert len(res.results) >= 50
    assert not res.survivors, "\n".join(r.row() for r in res.survivors)
    counts = res.counts()
    assert all(c["killed"] for k, c in counts.items() if k != "shift"), counts
