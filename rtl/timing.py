"""Static timing estimate of a yosys ``synth_xilinx`` netlist (UltraScale+, speed grade -2).

No vendor static timing analysis can run here (no Vivado), so this module walks the
netlist that :func:`plait.rtl.synth.synthesize_netlist` writes (``synth_xilinx -family
xcup`` then ``write_json``, cached next to the resource counts) and computes the longest
register-to-register path with per-cell delays and a fanout-dependent net delay.  It is
an *estimate* for comparing designs and finding the critical structure (a combinational
DSP, a 48-bit carry chain, a control net with thousands of loads), not sign-off timing:
there is no placement, so every routed net gets the same fanout-only delay.

Timing graph
    A node is one bit of a cell pin (or a pseudo pin inside a DSP48E2, below).  Edges:
    net edges from a driver bit to each of its sinks (delay :func:`net_delay` of the
    net's fanout, or 0 on a dedicated route: carry chain ``CO -> CI``, LUT -> MUXF7 ->
    MUXF8 -> MUXF9 inside a slice, the DSP cascades ``PCOUT -> PCIN``, ``ACOUT ->
    ACIN``, ``BCOUT -> BCIN``), and cell arcs from an input bit to an output bit.
    *Start points*: the Q of FDRE/FDSE/FDCE/FDPE (clock-to-out), SRL and LUTRAM outputs,
    BRAM/URAM outputs, and every internal DSP48E2 register (AREG/BREG/DREG/ADREG/MREG/
    PREG/CREG/...: read from the cell's parameters).  *End points*: the D/CE/R/S pins of
    flip-flops, SRL/LUTRAM/BRAM write ports and the inputs of internal DSP registers
    (setup).  Top-level ports are modelled as registered on the other side: an input
    port launches at a flip-flop's clock-to-out, an output port is captured with a
    flip-flop's setup (so an unregistered input that fans out to thousands of loads, or a
    combinational in -> out path, shows up as a long path).  Paths are grouped as
    ``reg2reg``, ``in2reg``, ``reg2out`` and ``in2out``; the estimated fmax is
    ``1 / max(path delay)`` over all groups (``fmax_reg2reg`` is reported too).

DSP48E2 model
    The slice is expanded into pseudo pins, each one a register (two nodes: its input
    is an end point with :data:`DELAYS` ``dsp_setup``, its output a start point with
    ``dsp_cko``) or a combinational stage, according to the instance's parameters (UG579
    defaults where a parameter is absent)::

        A, ACIN -> #A (AREG) ; B, BCIN -> #B (BREG) ; D -> #D (DREG) ; C -> #C (CREG)
        INMODE -> #INMODE (INMODEREG) ; OPMODE, ALUMODE, CARRYIN* -> #CTRL (OPMODEREG)
        #A|#B, #D, #INMODE -> #AD (ADREG, pre-adder; only if AMULTSEL/BMULTSEL = "AD")
        (#AD|#A), (#AD|#B) -> #M (MREG, multiplier; skipped if USE_MULT = "NONE")
        #M, #C, PCIN, #CTRL -> #P (PREG, ALU) -> P, PCOUT, CARRYOUT, ...

    so ``A -> P`` is one combinational arc of ``dsp_in + mult + alu + dsp_out`` when no
    register is used, and ``MREG = 1`` cuts it at the multiplier.

Delay table
    :data:`DELAYS` is the one place where the numbers live (see the comments there for
    their source).  Cell delays are rounded figures of the AMD/Xilinx *Virtex/Kintex/Zynq
    UltraScale+ Data Sheet: DC and AC Switching Characteristics* (DS923, speed grade -2,
    V_CCINT = 0.85 V: CLB switching characteristics T_ILO, T_CKO, T_DICK; CARRY8;
    DSP48E2 switching characteristics and f_MAX with/without the M and P registers; block
    RAM clock-to-out); the routing term is a heuristic (the data sheet gives no routing
    delays) fitted to typical post-route UltraScale+ net delays: ~0.35 ns for a local net,
    ~1.2 ns at a fanout of 300, ~2.7 ns at 3000.

Entry points: :func:`analyze` (a netlist dict -> :class:`TimingReport`),
:func:`unit_timing` (synthesize a registered unit with its config, cached, and analyze
it), :func:`format_timing` (the text of ``plait hw report --timing``).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from plait.ir.cache import cache_dir

__all__ = ["DELAYS", "TIMING_VERSION", "net_delay", "analyze", "TimingReport", "TimingPath",
           "PathStep", "unit_timing", "format_timing", "DEFAULT_TARGET_MHZ"]

#: bump when the delay table or the walker changes (keys the timing cache)
TIMING_VERSION = 3
#: the clock every unit is pipelined for (FlightLLM closed at 225 MHz)
DEFAULT_TARGET_MHZ = 300.0

#: Per-cell delay estimates in ns, UltraScale+ speed grade -2 (DS923, rounded; see the
#: module docstring).  The one table every delay of this module comes from.
DELAYS: dict[str, float] = {
    # CLB (DS923 "CLB Switching Characteristics")
    "lut": 0.10,          # T_ILO: LUT address in -> O (LUT1..LUT6, LUT6_2, INV)
    "muxf": 0.10,         # MUXF7/8/9 data in -> O (I0/I1)
    "muxf_sel": 0.15,     # MUXF7/8/9 select S -> O
    "carry_in": 0.15,     # CARRY4/8 S or DI -> CO / O (entry into the chain)
    "carry_ci_co": 0.03,  # CARRY4 CI -> CO[3] (CARRY8 CI -> CO[7]: 0.05)
    "carry8_ci_co": 0.05,
    "carry_ci_o": 0.08,   # CARRY4/8 CI -> O (sum out)
    "ff_cko": 0.10,       # T_CKO: FDRE/FDSE/FDCE/FDPE clock -> Q
    "ff_setup": 0.05,     # T_DICK: D setup
    "ff_ctrl_setup": 0.10,  # T_CECK / T_SRCK: CE and R/S/CLR/PRE setup
    "srl_cko": 1.00,      # SRL16E/SRLC32E clock -> Q (shift register out)
    "srl_setup": 0.10,    # SRL D / CE setup
    "lutram_cko": 1.00,   # distributed RAM write clock -> O
    "lutram_setup": 0.30,  # distributed RAM write data / WE / address setup
    "bram_cko": 1.20,     # RAMB18E2/36E2 clock -> DOUT without DO_REG
    "bram_cko_reg": 0.40,  # with the optional output register (DOA_REG/DOB_REG = 1)
    "bram_setup": 0.35,
    "uram_cko": 1.50,
    "uram_setup": 0.40,
    # DSP48E2 (DS923 "DSP48E2 Switching Characteristics"): stage delays, chosen so that
    # a fully pipelined multiply (AREG/BREG, MREG, PREG) runs near the data sheet's
    # ~740 MHz, one without MREG near 500 MHz, and a combinational A/B -> P multiply-add
    # takes ~2.2 ns (~2.7 ns through the pre-adder)
    "dsp_in": 0.25,       # fabric pin -> first internal stage
    "dsp_setup": 0.10,    # setup of an internal register (A1/A2, B1/B2, D, AD, M, C, P)
    "dsp_cko": 0.20,      # clock -> out of an internal register
    "dsp_preadd": 0.50,   # 27-bit pre-adder A/B +- D
    "dsp_mult": 0.95,     # 27 x 18 multiplier
    "dsp_alu": 0.75,      # 48-bit ALU (X/Y/Z/W MUX + add)
    "dsp_out": 0.25,      # ALU/PREG -> P, PCOUT, CARRYOUT pins
    "dsp_casc": 0.10,     # A/B register -> ACOUT/BCOUT
    # cells this table does not know: like a LUT (listed in TimingReport.unknown_cells)
    "unknown": 0.10,
    # routing (heuristic, not in the data sheet): net_base + net_fanout * fanout**0.4
    "net_base": 0.25,
    "net_fanout": 0.10,
}
_NET_EXP = 0.4


def net_delay(fanout: int, delays: dict[str, float] | None = None) -> float:
    """Estimated routing delay (ns) of a general-interconnect net with ``fanout`` sinks:
    ``net_base + net_fanout * fanout ** 0.4`` (0.35 ns at 1, ~0.64 at 30, ~1.2 at 300,
    ~2.7 at 3000, ~3.5 at 6000)."""
    d = delays or DELAYS
    return d["net_base"] + d["net_fanout"] * max(1, fanout) ** _NET_EXP


# ----------------------------------------------------------------- cell models
_FF = re.compile(r"^FD[RSCP]E(_1)?$|^FD[A-Z]*$")
_LUT = re.compile(r"^(LUT[1-6](_2)?|INV|BUF)$")
_MUXF = re.compile(r"^MUXF[789]$")
_CARRY = re.compile(r"^CARRY(4|8)$")
_SRL = re.compile(r"^(SRL16E?|SRLC16E|SRLC32E)$")
_LUTRAM = re.compile(r"^RAM(16|32|64|128|256|512)(X\d+[SDQ]?|M\d*)$")
_BRAM = re.compile(r"^RAMB(18|36)(E1|E2)?$")
_URAM = re.compile(r"^URAM288(_BASE)?$")
_CLOCK_PINS = {"C", "CLK", "CLKARDCLK", "CLKBWRCLK", "WCLK", "CLKA", "CLKB"}
#: (driver type regex, driver pin, sink type regex, sink pin) pairs on dedicated routing
_DEDICATED = [
    (_CARRY, "CO", _CARRY, "CI"),
    (_LUT, "O", _MUXF, "I0"), (_LUT, "O", _MUXF, "I1"), (_LUT, "O6", _MUXF, "I0"),
    (_LUT, "O6", _MUXF, "I1"),
    (_MUXF, "O", _MUXF, "I0"), (_MUXF, "O", _MUXF, "I1"),
    (re.compile("^DSP48E[12]$"), "PCOUT", re.compile("^DSP48E[12]$"), "PCIN"),
    (re.compile("^DSP48E[12]$"), "ACOUT", re.compile("^DSP48E[12]$"), "ACIN"),
    (re.compile("^DSP48E[12]$"), "BCOUT", re.compile("^DSP48E[12]$"), "BCIN"),
    (re.compile("^DSP48E[12]$"), "CARRYCASCOUT", re.compile("^DSP48E[12]$"), "CARRYCASCIN"),
    (re.compile("^DSP48E[12]$"), "MULTSIGNOUT", re.compile("^DSP48E[12]$"), "MULTSIGNIN"),
]

#: DSP48E2 parameter defaults (UG579) for parameters the netlist does not set
_DSP_DEFAULTS = {"AREG": 1, "BREG": 1, "CREG": 1, "DREG": 1, "ADREG": 1, "MREG": 1, "PREG": 1,
                 "INMODEREG": 1, "OPMODEREG": 1, "ALUMODEREG": 1, "CARRYINREG": 1,
                 "AMULTSEL": "A", "BMULTSEL": "B", "USE_MULT": "MULTIPLY",
                 "PREADDINSEL": "A"}
_DSP_OUT_PINS = ("P", "PCOUT", "CARRYOUT", "CARRYCASCOUT", "MULTSIGNOUT", "PATTERNDETECT",
                 "PATTERNBDETECT", "OVERFLOW", "UNDERFLOW", "XOROUT")


def _param(v: Any) -> Any:
    """A yosys JSON parameter: binary string -> int, other strings stay strings."""
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v and set(v) <= {"0", "1"} and len(v) >= 1:
        return int(v, 2)
    if isinstance(v, str):
        return v.strip()
    return v


@dataclass
class _Model:
    """One cell's timing view: ``arcs`` (src pin, dst pin, delay, label); ``starts``
    {pin: clock-to-out}; ``ends`` {pin: setup}.  Pins are ``(name, bit)``; a whole
    port is ``(name, None)`` (every bit), pseudo pins start with ``#``."""

    arcs: list = field(default_factory=list)
    starts: dict = field(default_factory=dict)
    ends: dict = field(default_factory=dict)


def _dsp_model(params: dict, inputs: set[str], outputs: set[str], d: dict) -> _Model:
    p = {k: _param(params.get(k, v)) for k, v in _DSP_DEFAULTS.items()}
    m = _Model()

    def stage(name: str, registered: bool, srcs: list[tuple], delay: float, label: str):
        """Pseudo node ``name`` fed by ``srcs`` (pins or pseudo names) through ``delay``."""
        if registered:
            m.ends[(name + ".d", 0)] = d["dsp_setup"]
            m.starts[(name + ".q", 0)] = d["dsp_cko"]
            dst = (name + ".d", 0)
        else:
            dst = (name, 0)
        for s in srcs:
            m.arcs.append((s, dst, delay, label))

    def out(name: str, registered: bool) -> tuple:
        return (name + ".q", 0) if registered else (name, 0)

    def pins(*names):
        return [(n, None) for n in names if n in inputs]

    stage("#A", p["AREG"] > 0, pins("A", "ACIN"), d["dsp_in"], "A in")
    stage("#B", p["BREG"] > 0, pins("B", "BCIN"), d["dsp_in"], "B in")
    stage("#D", p["DREG"] > 0, pins("D"), d["dsp_in"], "D in")
    stage("#C", p["CREG"] > 0, pins("C"), d["dsp_in"], "C in")
    stage("#INMODE", p["INMODEREG"] > 0, pins("INMODE"), d["dsp_in"], "INMODE in")
    stage("#CTRL", p["OPMODEREG"] > 0,
          pins("OPMODE", "ALUMODE", "CARRYIN", "CARRYINSEL"), d["dsp_in"], "OPMODE in")
    a, b = out("#A", p["AREG"] > 0), out("#B", p["BREG"] > 0)
    inm = out("#INMODE", p["INMODEREG"] > 0)
    use_ad = "AD" in (p["AMULTSEL"], p["BMULTSEL"])
    if use_ad:
        stage("#AD", p["ADREG"] > 0, [a if p["PREADDINSEL"] == "A" else b,
                                      out("#D", p["DREG"] > 0), inm],
              d["dsp_preadd"], "pre-adder")
        ad = out("#AD", p["ADREG"] > 0)
    mult = p["USE_MULT"] != "NONE"
    if mult:
        ma = ad if use_ad and p["AMULTSEL"] == "AD" else a
        mb = ad if use_ad and p["BMULTSEL"] == "AD" else b
        srcs = [ma, mb] + ([] if use_ad else [inm])
        stage("#M", p["MREG"] > 0, list(dict.fromkeys(srcs)), d["dsp_mult"], "multiplier")
        alu_in = [out("#M", p["MREG"] > 0)]
    else:
        alu_in = [a, b]
    alu_in += [out("#C", p["CREG"] > 0), out("#CTRL", p["OPMODEREG"] > 0)]
    alu_in += pins("PCIN", "CARRYCASCIN", "MULTSIGNIN")
    stage("#P", p["PREG"] > 0, alu_in, d["dsp_alu"], "ALU")
    pq = out("#P", p["PREG"] > 0)
    for o in _DSP_OUT_PINS:
        if o in outputs:
            m.arcs.append((pq, (o, None), d["dsp_out"], "P out"))
    if "ACOUT" in outputs:
        m.arcs.append((a, ("ACOUT", None), d["dsp_casc"], "ACOUT"))
    if "BCOUT" in outputs:
        m.arcs.append((b, ("BCOUT", None), d["dsp_casc"], "BCOUT"))
    return m


def _cell_model(typ: str, params: dict, conns: dict, dirs: dict, d: dict,
                unknown: set) -> _Model:
    ins = {p for p, dr in dirs.items() if dr == "input" and p not in _CLOCK_PINS}
    outs = {p for p, dr in dirs.items() if dr == "output"}
    m = _Model()
    if _FF.match(typ):
        for o in outs:
            m.starts[(o, None)] = d["ff_cko"]
        for i in ins:
            m.ends[(i, None)] = d["ff_setup"] if i == "D" else d["ff_ctrl_setup"]
    elif _LUT.match(typ):
        for i in ins:
            for o in outs:
                m.arcs.append(((i, None), (o, None), d["lut"], "LUT"))
    elif _MUXF.match(typ):
        for i in ins:
            for o in outs:
                m.arcs.append(((i, None), (o, None),
                               d["muxf_sel"] if i == "S" else d["muxf"], typ))
    elif _CARRY.match(typ):
        width = 8 if typ == "CARRY8" else 4
        ci_co = d["carry8_ci_co"] if width == 8 else d["carry_ci_co"]
        for i in ins:
            chain = i in ("CI", "CYINIT", "CI_TOP")
            for o in ("CO", "O"):
                if o not in outs:
                    continue
                for j in range(len(conns.get(o, []))):
                    if chain:
                        dl = (d["carry_ci_o"] if o == "O"
                              else ci_co * (j + 1) / width)
                        m.arcs.append(((i, None), (o, j), dl, "carry"))
                    else:
                        for k in range(min(j + 1, len(conns.get(i, [])))):
                            # S/DI of bit k reach CO/O of bits >= k
                            dl = d["carry_in"] + ci_co * (j - k) / width
                            m.arcs.append(((i, k), (o, j), dl, "carry"))
    elif typ in ("BUFG", "BUFGCE", "BUFGCTRL", "BUFG_GT", "IBUF", "IBUFG", "OBUF"):
        pass                                     # clock / IO buffers: not timed
    elif typ == "DSP48E2":
        m = _dsp_model(params, ins, outs, d)
    elif typ == "DSP48E1":          # 7-series (family xc7): same stages; D port = pre-adder
        p1 = dict(params)
        if str(_param(p1.get("USE_DPORT", "FALSE"))).upper() == "TRUE":
            p1["AMULTSEL"] = "AD"
        m = _dsp_model(p1, ins, outs, d)
    elif _SRL.match(typ):
        for o in outs:
            m.starts[(o, None)] = d["srl_cko"]
            for a in ins:
                if a.startswith("A"):
                    m.arcs.append(((a, None), (o, None), d["lut"], "SRL addr"))
        for i in ins:
            if not i.startswith("A"):
                m.ends[(i, None)] = d["srl_setup"]
    elif _LUTRAM.match(typ):
        for o in outs:
            m.starts[(o, None)] = d["lutram_cko"]
            for a in ins:
                if a.startswith(("A", "DPRA", "ADDR")):
                    m.arcs.append(((a, None), (o, None), d["lut"], "LUTRAM read"))
        for i in ins:
            m.ends[(i, None)] = d["lutram_setup"]
    elif _BRAM.match(typ):
        reg = any(_param(params.get(k, 0)) == 1 for k in ("DOA_REG", "DOB_REG"))
        for o in outs:
            m.starts[(o, None)] = d["bram_cko_reg"] if reg else d["bram_cko"]
        for i in ins:
            m.ends[(i, None)] = d["bram_setup"]
    elif _URAM.match(typ):
        for o in outs:
            m.starts[(o, None)] = d["uram_cko"]
        for i in ins:
            m.ends[(i, None)] = d["uram_setup"]
    else:
        unknown.add(typ)
        for i in ins:
            for o in outs:
                m.arcs.append(((i, None), (o, None), d["unknown"], typ))
    return m


# ----------------------------------------------------------------- results
@dataclass
class PathStep:
    """One step of a path: a cell arc (``kind="cell"``), a net (``kind="net"``), the
    launch (``"start"``) or the capture (``"end"``)."""

    kind: str
    what: str            # cell type + pin / arc label, or the net name
    delay: float
    at: float            # arrival time after this step
    fanout: int = 0


@dataclass
class TimingPath:
    group: str           # reg2reg / in2reg / reg2out / in2out
    delay: float         # ns, launch clock-to-out .. capture setup
    start: str
    end: str
    cells: int           # combinational cells on the path
    logic: float         # ns in cells (incl. clock-to-out and setup)
    route: float         # ns in nets
    steps: list = field(default_factory=list)

    @property
    def fmax_mhz(self) -> float:
        return 1000.0 / self.delay if self.delay > 0 else float("inf")


@dataclass
class TimingReport:
    top: str
    fmax_mhz: float
    fmax_reg2reg_mhz: float
    worst_ns: float
    groups: dict                     # group -> worst delay (ns)
    paths: list                      # TimingPath, worst first (distinct path classes)
    fanout: list                     # [(net name, fanout, driver)], highest first
    unknown_cells: list
    loops: int                       # nodes on combinational loops (left out)
    nodes: int
    version: int = TIMING_VERSION
    target_mhz: float = DEFAULT_TARGET_MHZ
    cached: bool = False

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TimingReport":
        d = dict(d)
        d["paths"] = [TimingPath(**{**p, "steps": [PathStep(**s) for s in p["steps"]]})
                      for p in d["paths"]]
        d["fanout"] = [tuple(x) for x in d["fanout"]]
        return cls(**d)

    @property
    def meets_target(self) -> bool:
        return self.fmax_mhz >= self.target_mhz


# ----------------------------------------------------------------- the walker
def _top_module(netlist: dict, top: str | None) -> tuple[str, dict]:
    mods = netlist.get("modules", {})
    if top and top in mods:
        return top, mods[top]
    for name, mod in mods.items():
        if int(_param(mod.get("attributes", {}).get("top", 0)) or 0):
            return name, mod
    cands = [(n, m) for n, m in mods.items()
             if not int(_param(m.get("attributes", {}).get("blackbox", 0)) or 0)]
    if len(cands) == 1:
        return cands[0]
    raise ValueError(f"timing: cannot tell the top module among {sorted(mods)}")


def _short(name: str, width: int = 72) -> str:
    """A readable cell/net name: yosys' repeated generate scopes folded, long names cut
    in the middle, no blanks (labels are split on them)."""
    name = re.sub(r"(genblk\d+\.)+", "genblk*.", name).replace(" ", "_")
    if len(name) > width:
        name = name[: width // 2 - 2] + "..." + name[-(width // 2 - 1):]
    return name


def _class_name(name: str) -> str:
    """A path class: bit and generate indices replaced by ``*``."""
    return re.sub(r"\[\d+\]", "[*]", re.sub(r"\$\d+", "$*", name))


def analyze(netlist: dict, top: str | None = None, *, n_paths: int = 5, n_fanout: int = 10,
            delays: dict[str, float] | None = None,
            target_mhz: float = DEFAULT_TARGET_MHZ) -> TimingReport:
    """Longest paths of a flattened yosys JSON netlist (see the module docstring)."""
    d = dict(DELAYS, **(delays or {}))
    top, mod = _top_module(netlist, top)
    cells = mod.get("cells", {})

    # readable names of net bits (non-hidden netnames first)
    bitname: dict[int, str] = {}
    for hidden in (False, True):
        for nname, nd in sorted(mod.get("netnames", {}).items()):
            if bool(nd.get("hide_name", 0)) != hidden:
                continue
            bits = nd.get("bits", [])
            for i, b in enumerate(bits):
                if isinstance(b, int) and b not in bitname:
                    bitname[b] = nname.lstrip("\\") + (f"[{i}]" if len(bits) > 1 else "")

    # nodes: integer ids; meta per node
    node_id: dict[tuple, int] = {}
    meta: list[tuple] = []          # (cell name, type, pin, bit)

    def nid(cell: str, typ: str, pin: str, bit: int) -> int:
        k = (cell, pin, bit)
        i = node_id.get(k)
        if i is None:
            i = node_id[k] = len(meta)
            meta.append((cell, typ, pin, bit))
        return i

    succ: dict[int, list] = defaultdict(list)      # node -> [(node, delay, label, fanout)]
    start_t: dict[int, float] = {}
    end_setup: dict[int, float] = {}
    driver: dict[int, int] = {}                    # net bit -> driver node
    drv_bit: dict[int, int] = {}                   # driver node -> net bit
    sinks: dict[int, list] = defaultdict(list)     # net bit -> [(node, type, pin)]
    unknown: set[str] = set()
    in_ports: set[int] = set()
    out_ports: set[int] = set()

    for pname, pd in mod.get("ports", {}).items():
        pn = pname.lstrip("\\")
        for i, b in enumerate(pd.get("bits", [])):
            if not isinstance(b, int):
                continue
            if pd.get("direction") == "input":
                n = nid("<port>", "PORT", pn, i)
                driver[b] = n
                start_t[n] = d["ff_cko"]
                in_ports.add(n)
            else:
                n = nid("<port>", "PORT", pn, i)
                sinks[b].append((n, "PORT", pn))
                end_setup[n] = d["ff_setup"]
                out_ports.add(n)

    for cname, c in cells.items():
        typ = c.get("type", "").lstrip("\\$")
        conns = c.get("connections", {})
        dirs = c.get("port_directions", {})
        if not dirs:            # direction unknown: guess from Xilinx pin names
            dirs = {p: ("output" if p in ("O", "O5", "O6", "Q", "CO", "P", "PCOUT")
                        else "input") for p in conns}
        m = _cell_model(typ, c.get("parameters", {}), conns, dirs, d, unknown)

        def expand(pin: tuple) -> list[int]:
            name, bit = pin
            if name.startswith("#"):
                return [nid(cname, typ, name, 0)]
            bits = conns.get(name, [])
            idx = range(len(bits)) if bit is None else ([bit] if bit < len(bits) else [])
            out = []
            for i in idx:
                if dirs.get(name) == "input" and not isinstance(bits[i], int):
                    continue                     # tied to a constant: no timing
                out.append(nid(cname, typ, name, i))
            return out

        for pin, t in m.starts.items():
            for n in expand(pin):
                start_t[n] = t
        for pin, t in m.ends.items():
            for n in expand(pin):
                end_setup[n] = t
        for src, dst, dl, label in m.arcs:
            for a in expand(src):
                for b in expand(dst):
                    succ[a].append((b, dl, label, 0))
        for pin, bits in conns.items():
            if pin in _CLOCK_PINS:
                continue
            for i, b in enumerate(bits):
                if not isinstance(b, int):
                    continue
                if dirs.get(pin) == "output":
                    driver[b] = nid(cname, typ, pin, i)
                elif dirs.get(pin) == "input":
                    sinks[b].append((nid(cname, typ, pin, i), typ, pin))

    # net edges
    fanouts = []
    for b, snk in sinks.items():
        drv = driver.get(b)
        if drv is None:
            continue
        drv_bit[drv] = b
        f = len(snk)
        dtyp, dpin = meta[drv][1], meta[drv][2]
        general = net_delay(f, d)
        fanouts.append((f, b, drv))
        for (s, styp, spin) in snk:
            dedicated = any(rd.match(dtyp) and dpin == pd_ and rs.match(styp) and spin == ps
                            for rd, pd_, rs, ps in _DEDICATED)
            succ[drv].append((s, 0.0 if dedicated else general, "net", f))

    # longest paths (Kahn's order over the arc/net graph)
    nn = len(meta)
    indeg = [0] * nn
    for a, lst in succ.items():
        for (b, *_r) in lst:
            indeg[b] += 1
    arr = [float("-inf")] * nn
    pred: list = [None] * nn
    origin = [None] * nn           # the start node of the worst path into each node
    for n, t in start_t.items():
        arr[n] = t
        origin[n] = n
    stack = [n for n in range(nn) if indeg[n] == 0]
    seen = 0
    while stack:
        a = stack.pop()
        seen += 1
        ta = arr[a]
        for (b, dl, label, f) in succ.get(a, ()):
            # a start node (register output) begins a new path: nothing arrives at it
            if b not in start_t and ta != float("-inf") and ta + dl > arr[b]:
                arr[b] = ta + dl
                pred[b] = (a, dl, label, f)
                origin[b] = origin[a]
            indeg[b] -= 1
            if indeg[b] == 0:
                stack.append(b)
    loops = nn - seen

    def group(s: int, e: int) -> str:
        return ("in" if s in in_ports else "reg") + "2" + ("out" if e in out_ports else "reg")

    ends = []
    for e, su in end_setup.items():
        if arr[e] == float("-inf") or origin[e] is None:
            continue
        ends.append((arr[e] + su, e))
    ends.sort(reverse=True)

    def cname_of(n: int) -> str:
        return label(n).rsplit(" ", 1)[0]

    def pin_of(n: int) -> str:
        return label(n).rsplit(" ", 1)[1]

    def label(n: int) -> str:
        cell, typ, pin, bit = meta[n]
        if typ == "PORT":
            return f"port {pin}[{bit}]"
        c = cells[cell]
        # name a cell by the net its first output drives
        nm = None
        for p, bits in c.get("connections", {}).items():
            if c.get("port_directions", {}).get(p) == "output":
                for bb in bits:
                    if isinstance(bb, int) and bb in bitname:
                        nm = bitname[bb]
                        break
            if nm:
                break
        pn = pin if pin.startswith("#") else f"{pin}[{bit}]"
        return f"{typ} {_short(nm or cell.lstrip(chr(92)))} {pn}"

    groups: dict[str, float] = {}
    for t, e in ends:
        g = group(origin[e], e)
        groups[g] = max(groups.get(g, 0.0), t)

    # the top n_paths (one per start/end class), then the worst path of every group
    # that is not among them
    picked = []
    classes = set()
    for t, e in ends:
        if len(picked) >= n_paths:
            break
        key = (_class_name(label(origin[e])), _class_name(label(e)))
        if key not in classes:
            classes.add(key)
            picked.append((t, e))
    have = {group(origin[e], e) for _t, e in picked}
    for t, e in ends:
        g = group(origin[e], e)
        if g not in have:
            have.add(g)
            picked.append((t, e))
    paths = []
    for t, e in picked:
        s = origin[e]
        chain = []
        n = e
        while pred[n] is not None:
            a, dl, lab, f = pred[n]
            chain.append((a, n, dl, lab, f))
            n = a
        chain.reverse()
        steps = [PathStep("start", label(s) + " (clock -> out)", start_t[s], start_t[s])]
        at = start_t[s]
        ncell = 0
        logic = start_t[s]
        route = 0.0
        for a, b, dl, lab, f in chain:
            at += dl
            if lab == "net":
                nm = _short(bitname.get(drv_bit.get(a, -1), "?"))
                steps.append(PathStep("net", f"{nm} -> {label(b)}", dl, at, f))
                route += dl
            else:
                steps.append(PathStep("cell", f"{cname_of(a)} {pin_of(a)} -> {pin_of(b)}"
                                      f" ({lab})", dl, at))
                ncell += 1
                logic += dl
        su = end_setup[e]
        at += su
        logic += su
        steps.append(PathStep("end", label(e) + " (setup)", su, at))
        paths.append(TimingPath(group(s, e), round(t, 4), label(s), label(e), ncell,
                                round(logic, 4), round(route, 4), steps))

    fanouts.sort(key=lambda x: (-x[0], x[1]))
    fan = [(_short(bitname.get(b, f"net {b}")), f, label(drv)) for f, b, drv in fanouts[:n_fanout]]
    worst = ends[0][0] if ends else 0.0
    r2r = groups.get("reg2reg", 0.0)
    return TimingReport(top=top, fmax_mhz=round(1000.0 / worst, 2) if worst else float("inf"),
                        fmax_reg2reg_mhz=round(1000.0 / r2r, 2) if r2r else float("inf"),
                        worst_ns=round(worst, 4), groups={k: round(v, 4) for k, v in
                                                          sorted(groups.items())},
                        paths=paths, fanout=fan, unknown_cells=sorted(unknown), loops=loops,
                        nodes=nn, target_mhz=target_mhz)


# ----------------------------------------------------------------- units
def unit_timing(name: str, config=None, *, family: str = "xcup", n_paths: int = 5,
                n_fanout: int = 10, use_cache: bool = True,
                target_mhz: float | None = None) -> tuple[Any, TimingReport]:
    """Synthesize unit ``name`` (:func:`plait.rtl.synth.synthesize_netlist`, cached) and
    analyze its netlist; returns ``(Resources, TimingReport)``.  The analysis is cached
    too (``$PLAIT_CACHE/timing/``), keyed by the synthesis key, :data:`TIMING_VERSION`,
    :data:`DELAYS` and the report sizes."""
    from .synth import load_netlist, synthesize_netlist
    from .units import get_unit, unit_sources

    spec = get_unit(name)
    cfg = config if config is not None else spec.config_cls()
    target = DEFAULT_TARGET_MHZ if target_mhz is None else float(target_mhz)
    res = synthesize_netlist(spec.top, unit_sources(name), config=cfg, family=family,
                             use_cache=use_cache)
    h = hashlib.sha256(json.dumps({"synth": res.key, "v": TIMING_VERSION, "d": DELAYS,
                                   "np": n_paths, "nf": n_fanout}, sort_keys=True).encode())
    tfile = cache_dir() / "timing" / f"{spec.top}-{h.hexdigest()[:24]}.json"
    if use_cache and tfile.is_file():
        try:
            rep = TimingReport.from_dict(json.loads(tfile.read_text()))
            rep.cached = True
            rep.target_mhz = target
            return res, rep
        except (ValueError, TypeError, KeyError):
            pass
    rep = analyze(load_netlist(res), spec.top, n_paths=n_paths, n_fanout=n_fanout,
                  target_mhz=target)
    if use_cache:
        tfile.parent.mkdir(parents=True, exist_ok=True)
        tmp = tfile.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(rep.as_dict()))
        tmp.replace(tfile)
    return res, rep


def _compress(steps: list) -> list:
    """Merge a carry chain (carry arcs joined by dedicated CO -> CI nets) into one step."""
    out: list = []
    run: list = []

    def flush():
        if not run:
            return
        cells = [s for s in run if s.kind == "cell"]
        if len(cells) == 1 and len(run) == 1:
            out.append(run[0])
        else:
            first = cells[0].what.split(" (carry)")[0]
            out.append(PathStep("cell", f"carry chain of {len(cells)} cells from {first}",
                                round(sum(s.delay for s in run), 4), run[-1].at))
        run.clear()

    for s in steps:
        if s.kind == "cell" and s.what.endswith("(carry)"):
            run.append(s)
        elif s.kind == "net" and s.delay == 0.0 and run:
            run.append(s)
        else:
            flush()
            out.append(s)
    flush()
    return out


def format_timing(rep: TimingReport, *, detail: int = 3) -> str:
    """Text of the timing section of ``plait hw report``."""
    ok = "meets" if rep.meets_target else "BELOW"
    lines = [f"  timing estimate (UltraScale+ -2, rtl/timing.py DELAYS; not sign-off STA):",
             f"    estimated fmax {rep.fmax_mhz:.1f} MHz ({ok} the {rep.target_mhz:.0f} MHz "
             f"target); worst path {rep.worst_ns:.3f} ns; reg2reg fmax "
             f"{rep.fmax_reg2reg_mhz:.1f} MHz",
             "    worst path per group: " + ", ".join(
                 f"{g} {t:.3f} ns ({1000 / t:.0f} MHz)" for g, t in rep.groups.items() if t)]
    if rep.unknown_cells:
        lines.append(f"    cells without a delay model (timed as a LUT): "
                     f"{', '.join(rep.unknown_cells)}")
    if rep.loops:
        lines.append(f"    WARNING: {rep.loops} timing nodes on combinational loops left out")
    lines.append("    critical paths (one per start/end class; then the worst of each group):")
    for i, p in enumerate(rep.paths):
        lines.append(f"    {i + 1}. {p.group} {p.delay:.3f} ns ({p.fmax_mhz:.0f} MHz): "
                     f"{p.start} -> {p.end}; {p.cells} cells, logic {p.logic:.2f} ns, "
                     f"route {p.route:.2f} ns")
        if i < detail:
            for s in _compress(p.steps):
                fo = f" (fanout {s.fanout})" if s.kind == "net" else ""
                lines.append(f"         {s.delay:6.3f} {s.at:7.3f}  {s.kind:5} {s.what}{fo}")
    lines.append("    highest-fanout nets:")
    for nm, f, drv in rep.fanout:
        lines.append(f"      {f:6d}  {nm}  (driver {drv})")
    return "\n".join(lines)
