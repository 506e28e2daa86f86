"""The C++ stream player (plait.sim.player) against the cocotb bench, and its errors.

* Fast: programs are checked against the model's ports as they are written; the file
  formats round-trip; ``Vtop.h`` is read into ports.
* Slow: both engines' schedules (several jobs, mode switches, padded tiles) played by
  the player and by cocotb give the same output words, in the same cycles, with the same
  job starts -- and equal the numeric contract; a failing check, a stalled stream and a
  port the build lacks are reported by name.
"""
from __future__ import annotations

import numpy as np
import pytest

from plait.ir.numerics import group_accumulate, linear_int, quantize_rtn, signed_weight
from plait.ir.numerics.dsp import prune_nm
from plait.sim.player import (PlayResult, PortInfo, Program, model_ports, read_out,
                              read_program, write_out)

PORTS = {p.name: p for p in (PortInfo("clk", True, 1), PortInfo("rst_n", True, 1),
                             PortInfo("v", True, 1), PortInfo("r", False, 1),
                             PortInfo("d", True, 70), PortInfo("m", True, 3),
                             PortInfo("q", False, 40))}


def test_program_is_checked_against_the_ports():
    p = Program(PORTS)
    with pytest.raises(ValueError, match="no port 'nope'.*clk, d, m"):
        p.set("nope", 1)
    with pytest.raises(ValueError, match="q is an output"):
        p.set("q", 0)
    with pytest.raises(ValueError, match="8 does not fit m \\(3 bits\\)"):
        p.set("m", 8)
    with pytest.raises(ValueError, match="2 bytes for d \\(70 bits: 9 bytes\\)"):
        p.set("d", b"\0\0")
    with pytest.raises(ValueError, match=r"beats of shape \(4, 9\), fields \['d', 'm'\] take 10"):
        p.stream(("v", "r", ["d", "m"], np.zeros((4, 9), np.uint8)))
    with pytest.raises(ValueError, match="r is an output"):
        p.stream(("r", "v", ["d"], np.zeros((1, 9), np.uint8)))
    assert p.ops == []                                 # nothing half-written


def test_program_file_round_trips(tmp_path):
    beats = np.arange(30, dtype=np.uint8).reshape(3, 10)
    p = (Program(PORTS).set("m", 5).monitor("r", "v", "q").reset("rst_n", 4).check_zero("q")
         .tick(2).mark().stream(("v", "r", ["d", "m"], beats)).wait(7, 99))
    ops = read_program(p.write(tmp_path / "p.bin"))
    assert [o for o, _ in ops] == ["set", "monitor", "reset", "check_zero", "tick", "mark",
                                   "stream", "wait"]
    assert ops[0][1] == ("m", b"\x05") and ops[2][1] == ("rst_n", 4)
    assert ops[1][1] == ("r", "v", "q") and ops[7][1] == (7, 99)
    (valid, ready, fields, got), = ops[6][1]
    assert (valid, ready, fields) == ("v", "r", ["d", "m"]) and np.array_equal(got, beats)
    (tmp_path / "bad.bin").write_bytes(b"PLAITPRX")
    with pytest.raises(ValueError, match="not a plait stream program"):
        read_program(tmp_path / "bad.bin")


def test_output_file_round_trips(tmp_path):
    r = PlayResult(np.arange(12, dtype=np.uint8).reshape(3, 4), np.array([5, 9, 11]),
                   np.array([0, 7]), 80, 1.5)
    got = read_out(write_out(tmp_path / "o.bin", r))
    assert np.array_equal(got.words, r.words) and got.out_cycle.tolist() == [5, 9, 11]
    assert got.marks.tolist() == [0, 7] and (got.cycles, got.seconds) == (80, 1.5)


def test_ports_are_read_from_vtop_h(tmp_path):
    (tmp_path / "Vtop.h").write_text("    VL_IN8(&clk,0,0);\n    VL_OUT8(&o_valid,0,0);\n"
                                     "    VL_IN16(&cfg_groups,15,0);\n"
                                     "    VL_INW(&s_mant,127,0,4);\n    VL_OUT64(&zp,39,0);\n")
    ports = model_ports(tmp_path)
    assert [(p.name, p.input, p.width, p.kind) for p in ports.values()] == [
        ("clk", True, 1, "K8"), ("o_valid", False, 1, "K8"), ("cfg_groups", True, 16, "K16"),
        ("s_mant", True, 128, "KW"), ("zp", False, 40, "K64")]
    (tmp_path / "Vtop.h").write_text("    VL_IN8(&aclk,0,0);\n")
    with pytest.raises(ValueError, match="port named clk"):
        model_ports(tmp_path)
    with pytest.raises(FileNotFoundError, match="no Vtop.h"):
        model_ports(tmp_path / "nowhere")


def test_a_schedule_for_another_geometry_is_refused():
    """A 16-slice stimulus against a 48-slice build's ports (Vtop.h as Verilator writes it)."""
    from plait.rtl.dsp_chain import DspChainConfig
    from plait.sim.engines import dsp_program, dsp_stimulus
    ports = {p.name: p for p in (
        PortInfo("clk", True, 1), PortInfo("rst_n", True, 1), PortInfo("in_valid", True, 1),
        PortInfo("in_ready", False, 1), PortInfo("in_last", True, 1),
        PortInfo("in_mode", True, 3), PortInfo("in_wbits", True, 2),
        PortInfo("out_valid", False, 1), PortInfo("out_ready", True, 1),
        PortInfo("err", False, 1), PortInfo("in_act", True, 256), PortInfo("in_w", True, 384),
        PortInfo("in_idx", True, 192), PortInfo("out_acc", False, 1536))}
    (job,) = _dsp_jobs(np.random.default_rng(1))[:1]
    st = dsp_stimulus(job, DspChainConfig())
    with pytest.raises(ValueError, match="in_w: 16-byte words for a 48-byte port"):
        dsp_program([st], ports)


# ------------------------------------------------------------------ on the RTL
def _dsp_jobs(rng):
    from plait.sim.engines import DspJob

    def w8(n, k, g=64):
        w = rng.standard_normal((n, k)).astype(np.float32)
        return quantize_rtn(w * prune_nm(w, 2, 4), 8, g, "sym")

    def x8(t, k):
        return rng.integers(-128, 128, (t, k)).astype(np.int8)
    w4 = quantize_rtn(rng.standard_normal((16, 128)).astype(np.float32), 4, 64, "sym")
    return [DspJob("q", x8(3, 128), w8(20, 128), "2:4"), DspJob("d", x8(2, 128), w4, "dense"),
            DspJob("k", x8(1, 256), w8(16, 256, 128), "2:4")]


def _lut_jobs(rng):
    from plait.sim.engines import LutJob

    def x8(t, k):
        return rng.integers(-128, 128, (t, k)).astype(np.int8)

    def q(n, k, bits, g, scheme):
        return quantize_rtn(rng.standard_normal((n, k)).astype(np.float32), bits, g, scheme)
    return [LutJob("k", x8(3, 128), q(100, 128, 4, 32, "odd")),
            LutJob("d", x8(1, 128), q(64, 128, 2, 64, "odd")),
            LutJob("g", x8(2, 192), q(64, 192, 4, 192, "sym"))]


def _contract(job):
    if job.engine == "dsp_chain":
        return group_accumulate(signed_weight(job.qw), job.x, job.qw.group_size)
    return linear_int(job.x, job.qw)[0]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["dsp_chain", "lut_core"])
def test_player_equals_the_cocotb_bench(engine):
    """Same program on both benches: the same words in the same cycles, the same job
    starts; every job equals the contract."""
    from plait.rtl.dsp_chain import DspChainConfig
    from plait.rtl.lut_core import LutCoreConfig
    from plait.sim.engines import run_jobs
    rng = np.random.default_rng(7)
    jobs = _dsp_jobs(rng) if engine == "dsp_chain" else _lut_jobs(rng)
    kw = {"dsp_cfg": DspChainConfig()} if engine == "dsp_chain" else {"lut_cfg": LutCoreConfig()}
    runs = {b: run_jobs(jobs, bench=b, **kw) for b in ("player", "cocotb")}
    p, c = runs["player"], runs["cocotb"]
    assert p.seconds["bench"] == "player" and c.seconds["bench"] == "cocotb"
    assert [r.cycles for r in p.results] == [r.cycles for r in c.results]
    assert p.cycles == c.cycles and p.cycles > 0
    for j, rp, rc in zip(jobs, p.results, c.results):
        assert np.array_equal(rp.out, rc.out), j.name
        assert np.array_equal(rp.out, _contract(j)), j.name
    print(f"\n{engine}: {p.cycles} cycles; player {p.seconds['sim']:.3f}s, cocotb "
          f"{c.seconds['sim']:.3f}s of simulation")


@pytest.mark.slow
def test_player_reports_failed_checks_stalls_and_missing_ports(tmp_path):
    from plait.rtl.lut_core import LutCoreConfig
    from plait.rtl.units import unit_sources
    from plait.sim.player import PlayerFailed, play
    from plait.sim.runner import build_model
    bdir, _ = build_model("lut_core", unit_sources("lut_core"), config=LutCoreConfig())
    ports = model_ports(bdir)

    def base():
        return (Program(ports).set("o_ready", 1).monitor("o_valid", "o_ready", "o_p")
                .reset("rst_n", 3))
    # 5-bit weights on a core built for 4 at most: cfg_err rises
    prog = base().set("cfg_bits", 5).set("cfg_group_chunks", 8).set("cfg_groups", 1)
    with pytest.raises(PlayerFailed, match=r"check failed: cfg_err is not 0 \(op \d+, cycle 0\)"):
        play(bdir, prog.check_zero("cfg_err"), workdir=tmp_path)
    # weights without activations: no table, so the core takes no weight beat
    w = np.zeros((3, ports["w_data"].nbytes), np.uint8)
    prog = base().set("cfg_bits", 4).set("cfg_group_chunks", 8).set("cfg_groups", 1)
    with pytest.raises(PlayerFailed, match=r"streams stalled for 100000 cycles: w_valid beat "
                                           r"0/3 \(op \d+, cycle 100001\)"):
        play(bdir, prog.stream(("w_valid", "w_ready", ["w_data"], w)), workdir=tmp_path)
    # a program written for another build's ports
    other = dict(ports, in_act=PortInfo("in_act", True, 256))
    with pytest.raises(PlayerFailed, match="names port 'in_act', the model has none"):
        play(bdir, Program(other).set("in_act", 0), workdir=tmp_path)
    # a failed player process is not kept: the next program runs on a fresh one, which
    # then serves the program after it too (a fresh model each time: the same result)
    import plait.sim.player as P
    def server_pids():
        return [v.proc.pid for k, v in P._SERVERS.items()
                if k[0] == str(P.player_exe(bdir)) and v.alive()]
    r1 = play(bdir, base().tick(5), workdir=tmp_path)
    pids = server_pids()
    r2 = play(bdir, base().tick(5), workdir=tmp_path)
    assert len(pids) == 1 and server_pids() == pids
    assert r1.cycles == r2.cycles == 5 and r1.words.shape == r2.words.shape
    assert list(tmp_path.iterdir()) == []              # no leftovers
