"""The sim device (plait.runtime.devices.SimDevice, plait.runtime.rtl_linears): exact
mode with every linear on the RTL engines.

* Fast: the probe names a missing tool; float mode is refused.
* Slow: the tiny model compiled for ``sim16`` -- W4 on the LUT core, W8 2:4 on the DSP
  chain -- generates on the sim device the same tokens, from the same logits, as the
  cpu device's exact mode; the LM head runs on the DSP chain (dense W8).
* Slow: on chains that enable ``pair``, dense W4 weights run their last token row in
  decode lane packing; the logits still equal exact mode's.
"""
from __future__ import annotations

import numpy as np
import pytest

from plait.cli import main
from plait.ir import generate
from plait.ir.exact import ExactInterpreter

IDS = np.array([1, 7, 42, 99, 3, 250, 17, 5], np.int64)


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory):
    from plait.tests.graphs import tiny_hf_dir
    return tiny_hf_dir(tmp_path_factory.mktemp("hf") / "tiny")


_ARTS: dict = {}


def _compiled(tiny_hf, tmp_path_factory, recipe: str, target: str = "sim16", edit=None):
    """The tiny model compiled with a bundled recipe, its engines mapped for ``target``;
    ``edit`` = (old, new) text replaced in the recipe as well."""
    from plait.passes.recipe import RECIPE_DIR
    if (recipe, target, edit) not in _ARTS:
        d = tmp_path_factory.mktemp(f"{recipe}-{target}")
        text = (RECIPE_DIR / f"{recipe}.toml").read_text()
        assert 'target = "u280"' in text
        text = text.replace('target = "u280"', f'target = "{target}"')
        if edit:
            assert edit[0] in text
            text = text.replace(*edit)
        (d / "recipe.toml").write_text(text)
        assert main(["compile", str(tiny_hf), "--recipe", str(d / "recipe.toml"),
                     "-o", str(d / "art")]) == 0
        _ARTS[recipe, target, edit] = d / "art"
    return _ARTS[recipe, target, edit]


def test_sim_device_probe_names_a_missing_tool(monkeypatch):
    import plait.sim.runner as runner
    from plait.runtime import DeviceUnavailable
    from plait.runtime.devices import SimDevice, open_device
    from plait.sim.verilator import ToolMissing
    assert SimDevice.probe() == (True, "")               # Verilator, make and g++ are here

    def no_make():
        raise ToolMissing("`make` not found on PATH (Verilator builds need it)")
    monkeypatch.setattr(runner, "check_build_tools", no_make)
    with pytest.raises(DeviceUnavailable, match="device 'sim' is not available: `make` not found"):
        open_device("sim")


def test_sim_device_refuses_float_mode(tiny_hf, tmp_path_factory, capsys):
    """(An artifact mapped for another target: tests/test_session.py.)"""
    from plait.runtime import DeviceUnavailable, Session
    art = _compiled(tiny_hf, tmp_path_factory, "w4a8-lut")
    with pytest.raises(DeviceUnavailable, match="the sim device runs exact mode only"):
        Session(art, device="sim")
    capsys.readouterr()
    assert main(["run", str(art), "--device", "sim", "--prompt", "Hi"]) != 0
    err = capsys.readouterr().err
    assert "runs exact mode only" in err and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize("recipe, engines", [
    ("w4a8-lut", {("lut_core", "W4 odd"), ("dsp_chain", "dense W8")}),
    ("w8a8-sparse24-wanda", {("dsp_chain", "2:4 W8"), ("dsp_chain", "dense W8")}),
])
def test_sim_device_generates_exact_modes_tokens(tiny_hf, tmp_path_factory, recipe, engines):
    from plait.runtime import Session
    from plait.runtime.artifact import load_artifact
    from plait.runtime.rtl_linears import RtlLinears
    art = _compiled(tiny_hf, tmp_path_factory, recipe)
    a = load_artifact(art)
    lin = RtlLinears(a.graph)
    np.testing.assert_array_equal(
        ExactInterpreter(a.graph, a.weights, linear_p=lin).logits(IDS[None, :]),
        ExactInterpreter(a.graph, a.weights).logits(IDS[None, :]))
    assert set(lin.calls) == engines, lin.calls
    n_linear = sum(1 for n in a.graph.nodes() if n.op == "linear")
    assert sum(lin.calls.values()) == n_linear and all(v > 0 for v in lin.cycles.values())
    with Session(art, device="sim", exact=True) as s, \
            Session(art, device="cpu", exact=True) as c:
        assert "RTL engines of sim16" in s.runner_note
        assert list(s.generate_ids(IDS, 3, stop_ids=set())) == \
            list(c.generate_ids(IDS, 3, stop_ids=set()))
        summary = s._device.linears.summary()
    print(f"\n{recipe}: logits {lin.summary()}\n  3 tokens: {summary}")


def _pair_artifact(tiny_hf, tmp_path_factory):
    """A target whose chains enable ``pair`` (and no LUT core), and the tiny model
    compiled W4 sym (the LUT recipe's weights, on the DSP chain) for it."""
    import dataclasses
    from plait.ir.target import SIM16, register_target
    from plait.runtime.artifact import load_artifact
    tgt = register_target(dataclasses.replace(
        SIM16, name="t_pair_sim", lut_core=None,
        dsp_chain=dataclasses.replace(SIM16.dsp_chain, modes=SIM16.dsp_chain.modes + ("pair",))))
    art = _compiled(tiny_hf, tmp_path_factory, "w4a8-lut", tgt.name,
                    edit=('scheme = "odd"', 'scheme = "sym"'))
    return tgt, load_artifact(art)


@pytest.mark.slow
def test_sim_device_runs_decode_lane_packing(tiny_hf, tmp_path_factory):
    """On chains that enable ``pair`` (and no LUT core), dense W4 weights run a decoded
    token -- the one token row -- in decode lane packing, and an odd prefill's last row
    too: the RTL's logits equal exact mode's."""
    from plait.runtime.rtl_linears import RtlLinears
    tgt, a = _pair_artifact(tiny_hf, tmp_path_factory)
    modes = {n.attrs["engine_decode_mode"] for n in a.graph.nodes("linear")}
    assert modes == {"pair W4", "dense W8"}, modes
    for ids in (IDS[None, :1], IDS[None, :7]):
        lin = RtlLinears(a.graph, target=tgt)
        np.testing.assert_array_equal(
            ExactInterpreter(a.graph, a.weights, linear_p=lin).logits(ids),
            ExactInterpreter(a.graph, a.weights).logits(ids))
        assert {m for _, m in lin.calls} == {"pair W4", "dense W4", "dense W8"} - (
            {"dense W4"} if ids.shape[1] == 1 else set()), lin.calls


@pytest.mark.slow
def test_layer_check_runs_decode_lane_packing(tiny_hf, tmp_path_factory):
    """plait.sim.layers on the pair target: an odd prefill's last row and each decoded
    token run in pair mode (the artifact's dense pack plus a pair pack), every integer
    equals exact mode's, and the cycle model it compares with is the mapping pass's
    (cycles_decode counts the pair pass: a mismatch would raise)."""
    from plait.sim.layers import artifact_packs, capture_linears, check_on_rtl, format_table
    tgt, a = _pair_artifact(tiny_hf, tmp_path_factory)
    calls, _ = capture_linears(a.graph, a.weights, IDS[:7], decode_steps=2, layers=(0,))
    check = check_on_rtl(a.graph, calls, tgt, packed=artifact_packs(a.graph, a.weights))
    print("\n" + format_table(check.rows))
    check.scoreboard.assert_clean()
    modes = {(r["call"], r["mode"]) for r in check.rows}
    assert ("prefill", "dense W4 + pair W4") in modes and ("decode1", "pair W4") in modes, modes
    assert ("decode2", "pair W4") in modes, modes
    # measured = the cycle model: the first call exactly (its pair beats wait for its
    # dense pass to drain); a later prefill call's dense beats also wait for the call
    # before it (pair mode) to drain, which an isolated layer's model does not count
    from plait.ir.target import dsp_pipeline_depth
    depth = dsp_pipeline_depth(tgt.dsp_chain)
    for i, r in enumerate(check.rows):
        wait = depth if r["call"] == "prefill" and i > 0 else 0
        assert r["measured"] == r["predicted"] + wait, r
