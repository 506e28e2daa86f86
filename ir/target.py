"""Hardware targets: one object per FPGA target, and the engines' cycle models.

A :class:`Target` describes one FPGA build: its clock, the device budgets (DSP48E2,
LUT, FF, BRAM36, URAM), the HBM (pseudo-channels and peak bandwidth), the
special-function unit's width, and the geometry of the two engines it instantiates
-- :class:`DspChainGeometry` (the sparse DSP chain, ``rtl/sv/dsp_*.sv``) and
:class:`LutCoreGeometry` (the LUT tensor core, ``rtl/sv/lut_*.sv``).  The same object

* sizes the RTL (``DspChainConfig.from_target(t)``, ``LutCoreConfig.from_target(t)``
  in :mod:`plait.rtl`),
* drives the engine-mapping pass (:mod:`plait.passes.mapping`): which engine runs
  each linear layer, in which mode, in how many cycles,
* gives the roofline and tokens/s estimates of ``plait inspect``
  (:mod:`plait.ir.stats`).

Targets are registered by name (:func:`get_target`, :func:`list_targets`).  A target
is frozen; :func:`dataclasses.replace` gives a validated variant.  Every validation
error raises :class:`TargetError` naming the target and the field
(``target 'u280': dsp_chain.n_dsp must be a positive multiple of 16, got 24``).

Bundled targets
---------------
``u280`` -- AMD Alveo U280 (XCU280, UltraScale+ with HBM2).
    Budgets from AMD's Alveo U280 data sheet (DS963) / product brief: 9,024 DSP48E2
    slices, 1,304K LUTs, 2,607K flip-flops, 2,016 BRAM36 (4,032 BRAM18), 960 URAM,
    8 GB HBM2 in 32 pseudo-channels, 460 GB/s peak.  Clock: 225 MHz, the frequency
    FlightLLM (FPGA'24) reports for its U280 build.  Engine counts are plait's
    choice, sized with the analytical resource models of the RTL
    (``DspChainConfig.estimate_resources`` / ``LutCoreConfig.estimate_resources``;
    ``tests/test_mapping.py`` re-checks that they fit):

    ======================  ======  =====  =====  =====  ==============================
    engine                  count   LUT    FF     DSP    weight stream per cycle
    ======================  ======  =====  =====  =====  ==============================
    DSP chain 512 x c2      4       397K   219K   2048   4 x 512 B (W8) = 2048 B
    LUT core 2 x 128 x 4    24      401K   803K    768   24 x 64 B (one bit-plane)
    total                           798K   1022K  2816
    share of the device             61%    39%    31%
    ======================  ======  =====  =====  =====  ==============================

    At 225 MHz the HBM delivers 460e9 / 225e6 = 2044 B per cycle, so the four
    chains read W8 weights at the HBM rate and the 24 LUT cores (one 4-bit plane
    index per column and cycle) at 75% of it.  LUTs, not DSP slices, bound the
    chain count: the sparse MUX of the N:16 modes costs ~170 LUT per slice, and each
    chain's output FIFO (16 words of 2 x 256 rows x 32 bits, for back-pressure) 10K
    LUTs of distributed RAM.  39% of the LUTs and 61% of the FFs stay for the SFU, the controller, the HBM AXI ports
    and the buffers.
``sim16`` -- the default RTL geometries (``DspChainConfig()``: 16 slices, cascade 2,
    all modes; ``LutCoreConfig()``: 2 x 64 tile, max_group 256, 8 dequantizer lanes,
    W1..W4), one engine of each, on the U280's budgets with one HBM pseudo-channel
    (460 / 32 GB/s): the geometry the RTL tests and the Verilator cycle measurements run.

Cycle models
------------
Pure functions of the geometry; the RTL configs delegate to them, so the mapping
pass (which may not import :mod:`plait.rtl`) and the RTL agree.  A *linear layer*
is ``y[T, rows] = x[T, K] @ W[rows, K]^T`` for ``T`` token rows.

DSP chain (``rtl/sv/dsp_chain.sv``)
    One beat per clock, no bubbles while the mode stays the same.  A beat feeds
    ``M`` inputs of ``K`` of the two packed lanes (two token rows) to every slice; a
    logical group of ``N`` slices computes one output row, so a *tile* is
    ``rows(mode) = n_dsp / N`` output rows x ``K`` inputs x 2 token rows and takes
    ``K / M`` beats (:func:`dsp_tile_beats`).  A layer is
    ``ceil(T / 2)`` passes x ``ceil(rows / rows(mode))`` tiles; with ``count``
    chains (each its own activation broadcast) the units of work are spread evenly,
    and the layer ends ``latency(mode) = 3 + cascade + log2(N / cascade)`` clocks
    after its last beat (one less on a dense-only chain: :func:`dsp_latency`, the
    RTL's out_valid latency)::

        cycles = ceil(passes * tiles / count) * K / M + latency(mode)

    A decoded token (T = 1) uses one lane: half of the chain's MACs are idle, unless
    the chain has decode lane packing (``pair``): then an odd last token row of a
    dense linear of <= 4-bit weights takes a pair pass of ``2 n_dsp / 16``-row tiles
    (:func:`dsp_pair_pass`), whose beats wait for the pass before to drain
    (:func:`dsp_pipeline_depth` clocks: a mode change empties the pipeline).
LUT core (``rtl/sv/lut_core.sv``)
    A tile is ``m`` token rows x ``n`` output columns x ``K``; the lookup array takes
    one weight bit-plane of one chunk of 4 inputs per clock (``bits * G / 4`` clocks
    per quantization group of ``G`` inputs).  The dequantizer needs ``S = n /
    dq_lanes`` clocks per group and takes a new group only in its last step, so a
    group end waits when groups are shorter than that; the first group of the next
    tile also waits until the previous tile's output has left (``S + 2 + P`` clocks
    after that tile's last group end, with ``o_ready`` high; ``P =``
    :data:`LUT_PIPE` ``= 5`` clocks of registered inputs and dequantizer pipeline).
    An isolated tile (:func:`lut_tile_cycles`, first activation beat to output
    transfer) takes ``1 + L + (g - 1) max(L, S) + S + P`` clocks (``L = bits * G / 4``,
    ``g = K / G``); back-to-back tiles follow every ``max(L, S + 2 + P) + (g - 1)
    max(L, S)`` clocks
    (:func:`lut_tile_period`; ``K / 4 * bits`` when groups are long).  A layer is
    ``ceil(T / m) * ceil(rows / n)`` tiles spread over ``count`` cores::

        cycles = tile_cycles + (ceil(tiles / count) - 1) * tile_period

    A decoded token (T = 1) uses one of the ``m`` rows.

Cycles are counted as the RTL measurements count them: clock edges from the cycle a
layer's first input beat is presented to the cycle its last output is valid.  On
the default geometries (one chain, one core) Verilator agrees to the cycle for
isolated and back-to-back tiles, short and long groups, padded tiles and several
passes.  Spreading a layer over ``count`` engines assumes the controller keeps them
all fed (an even split of tiles/passes, no shared-bus stalls); that part is a model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Optional, Union

from .numerics.common import MAX_K, NumericsError
from .numerics.dsp import PAIR_MAX_BITS, DspMode, M_MAX, check_lane_geometry, parse_mode
from .numerics.lut import LUT_G, LUT_WEIGHT_BITS

__all__ = ["TargetError", "DspChainGeometry", "LutCoreGeometry", "Target", "TARGETS", "U280",
           "SIM16", "register_target", "get_target", "list_targets", "dsp_level", "dsp_latency",
           "dsp_input_register", "dsp_pipeline_depth", "dsp_rows", "dsp_tile_beats",
           "dsp_linear_cycles", "dsp_pair_pass", "lut_tile_cycles", "lut_tile_period",
           "lut_linear_cycles", "LUT_PIPE", "ENGINES"]

#: engine names used by the mapping pass and the reports
ENGINES = ("dsp_chain", "lut_core")


class TargetError(ValueError):
    """A bad target (the message names the target and the field) or an input the
    engines' cycle models cannot describe."""


def _clog2(n: int) -> int:
    return max(0, (int(n) - 1).bit_length())


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# --------------------------------------------------------------------------- geometry

@dataclass(frozen=True)
class DspChainGeometry:
    """``count`` sparse DSP chains of ``n_dsp`` slices (a multiple of 16) in cascade
    groups of ``cascade`` slices, upper packed lane at bit ``lane_shift`` (18: the
    DSP48E2's 27-bit A port), accepting the sparsity ``modes`` at run time."""

    n_dsp: int = 16
    cascade: int = 2
    lane_shift: int = 18
    modes: tuple[str, ...] = ("dense", "2:4", "2:16", "4:16", "8:16")
    count: int = 1

    def problems(self) -> list[tuple[str, str]]:
        """``[(field, message), ...]``: everything wrong with these values."""
        out = []
        for f in ("n_dsp", "cascade", "lane_shift", "count"):
            if not _is_int(getattr(self, f)):
                out.append((f, f"must be an int, got {getattr(self, f)!r}"))
        if out:
            return out
        if self.n_dsp <= 0 or self.n_dsp % M_MAX:
            out.append(("n_dsp", f"must be a positive multiple of {M_MAX}, got {self.n_dsp}"))
        if self.cascade < 1 or self.cascade & (self.cascade - 1) or self.n_dsp % self.cascade:
            out.append(("cascade", f"must be a power of two dividing n_dsp={self.n_dsp}, "
                                   f"got {self.cascade}"))
        else:
            try:
                check_lane_geometry(self.cascade, self.lane_shift)
            except NumericsError as e:
                out.append(("lane_shift", str(e)))
        if self.count < 1:
            out.append(("count", f"must be >= 1 (attention and float layers need a DSP "
                                 f"chain), got {self.count}"))
        if not isinstance(self.modes, tuple) or not self.modes:
            out.append(("modes", f"must be a non-empty tuple of sparsity modes, got {self.modes!r}"))
            return out
        for m in self.modes:
            try:
                md = parse_mode(m)
            except NumericsError as e:
                out.append(("modes", str(e)))
                continue
            if md.n % self.cascade:
                out.append(("modes", f"mode {md.name} needs logical groups of {md.n} DSPs, "
                                     f"not a multiple of cascade={self.cascade}"))
        return out

    def mode_names(self) -> list[str]:
        return [parse_mode(m).name for m in self.modes]

    def supports(self, mode) -> bool:
        return parse_mode(mode).name in self.mode_names()

    def rows(self, mode) -> int:
        return dsp_rows(self.n_dsp, mode)

    def latency(self, mode) -> int:
        return dsp_latency(self.cascade, mode, self.modes)

    @property
    def dsp48(self) -> int:
        """DSP48E2 slices of all chains."""
        return self.n_dsp * self.count


@dataclass(frozen=True)
class LutCoreGeometry:
    """``count`` LUT tensor cores with an ``m`` x ``n`` x 4 tile (token rows x output
    columns x inputs per step), groups of at most ``max_group`` inputs, ``dq_lanes``
    dequantizer columns per clock and weights of 1..``max_bits`` bit-planes."""

    m: int = 2
    n: int = 64
    max_group: int = 256
    dq_lanes: int = 8
    max_bits: int = 4
    count: int = 1

    def problems(self) -> list[tuple[str, str]]:
        out = []
        for f in ("m", "n", "max_group", "dq_lanes", "max_bits", "count"):
            if not _is_int(getattr(self, f)):
                out.append((f, f"must be an int, got {getattr(self, f)!r}"))
        if out:
            return out
        if not 1 <= self.m <= 16:
            out.append(("m", f"must be in [1, 16], got {self.m}"))
        if not 1 <= self.n <= 256:
            out.append(("n", f"must be in [1, 256], got {self.n}"))
        if self.max_group < LUT_G or self.max_group % LUT_G or self.max_group > 4096:
            out.append(("max_group", f"must be a multiple of {LUT_G} in [{LUT_G}, 4096], "
                                     f"got {self.max_group}"))
        if self.dq_lanes < 1 or self.n % self.dq_lanes:
            out.append(("dq_lanes", f"must divide n={self.n}, got {self.dq_lanes}"))
        if self.max_bits not in LUT_WEIGHT_BITS:
            out.append(("max_bits", f"must be one of {LUT_WEIGHT_BITS}, got {self.max_bits}"))
        if self.count < 1:
            out.append(("count", f"must be >= 1 (use lut_core=None for a target without "
                                 f"LUT cores), got {self.count}"))
        return out

    @property
    def dq_steps(self) -> int:
        return self.n // self.dq_lanes


@dataclass(frozen=True)
class Target:
    """One FPGA target (see the module docstring for the bundled ones).

    Budgets are device totals: ``dsp`` DSP48E2 slices, ``lut`` LUT6, ``ff``
    flip-flops, ``bram36`` 36 Kb block RAMs, ``uram`` UltraRAMs.  ``hbm_gbps`` is the
    peak bandwidth of all ``hbm_channels`` pseudo-channels together (GB/s, 1e9 B/s).
    ``sfu_lanes``: elements per clock of the special-function unit (RMSNorm, RoPE,
    softmax, SwiGLU, residual adds), used only by the performance estimate.
    ``lut_core`` may be ``None`` (no LUT cores); the DSP chain is required.
    """

    name: str
    description: str
    clock_mhz: float
    dsp: int
    lut: int
    ff: int
    bram36: int
    uram: int
    hbm_channels: int
    hbm_gbps: float
    dsp_chain: DspChainGeometry
    lut_core: Optional[LutCoreGeometry]
    sfu_lanes: int = 16
    source: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or not self.name.replace("-", "_").isidentifier():
            raise TargetError(f"target name must be a word like 'u280', got {self.name!r}")
        bad = []
        for f in ("clock_mhz", "hbm_gbps"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or not math.isfinite(v):
                bad.append((f, f"must be a positive number, got {v!r}"))
        for f in ("dsp", "lut", "ff", "hbm_channels", "sfu_lanes"):
            v = getattr(self, f)
            if not _is_int(v) or v < 1:
                bad.append((f, f"must be a positive int, got {v!r}"))
        for f in ("bram36", "uram"):
            v = getattr(self, f)
            if not _is_int(v) or v < 0:
                bad.append((f, f"must be a non-negative int, got {v!r}"))
        if not isinstance(self.dsp_chain, DspChainGeometry):
            bad.append(("dsp_chain", f"must be a DspChainGeometry, got {type(self.dsp_chain).__name__}"))
        else:
            bad += [(f"dsp_chain.{f}", m) for f, m in self.dsp_chain.problems()]
        if self.lut_core is not None:
            if not isinstance(self.lut_core, LutCoreGeometry):
                bad.append(("lut_core", f"must be a LutCoreGeometry or None, got "
                                        f"{type(self.lut_core).__name__}"))
            else:
                bad += [(f"lut_core.{f}", m) for f, m in self.lut_core.problems()]
        if not bad and self.dsp_chain.dsp48 > self.dsp:
            bad.append(("dsp_chain.count", f"{self.dsp_chain.count} chains x {self.dsp_chain.n_dsp} "
                                           f"slices = {self.dsp_chain.dsp48} DSP48E2 exceed the "
                                           f"device's dsp={self.dsp}"))
        if bad:
            f, m = bad[0]
            more = f" (and {len(bad) - 1} more: {', '.join(b[0] for b in bad[1:])})" if len(bad) > 1 else ""
            raise TargetError(f"target {self.name!r}: {f} {m}{more}")

    # ------------------------------------------------------------------ derived
    @property
    def clock_hz(self) -> float:
        return self.clock_mhz * 1e6

    @property
    def hbm_bytes_per_cycle(self) -> float:
        """Peak HBM bytes per clock of this target's clock."""
        return self.hbm_gbps * 1e9 / self.clock_hz

    def has_lut_core(self) -> bool:
        return self.lut_core is not None

    def budget(self) -> dict[str, int]:
        return {"DSP48E2": self.dsp, "LUT": self.lut, "FF": self.ff, "BRAM": self.bram36,
                "URAM": self.uram}

    def utilisation(self, used: dict[str, float]) -> dict[str, float]:
        """Share of the device budget taken by ``used`` (keys of :meth:`budget`;
        others are ignored), e.g. the engines' resource estimates."""
        b = self.budget()
        return {k: used[k] / b[k] for k in b if k in used and b[k]}

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["dsp_chain"] = {f.name: getattr(self.dsp_chain, f.name) for f in fields(self.dsp_chain)}
        d["dsp_chain"]["modes"] = list(self.dsp_chain.modes)
        d["lut_core"] = (None if self.lut_core is None else
                         {f.name: getattr(self.lut_core, f.name) for f in fields(self.lut_core)})
        return d

    def summary(self) -> str:
        """One line: clock, HBM and the engines."""
        c, l = self.dsp_chain, self.lut_core
        eng = f"{c.count} x DSP chain {c.n_dsp} (cascade {c.cascade}; {','.join(c.mode_names())})"
        if l is not None:
            eng += f", {l.count} x LUT core {l.m}x{l.n}x4 (W1..W{l.max_bits}, G<={l.max_group})"
        return (f"{self.name}: {self.clock_mhz:g} MHz, HBM {self.hbm_gbps:g} GB/s "
                f"({self.hbm_channels} ch), {eng}")


# --------------------------------------------------------------------------- registry

TARGETS: dict[str, Target] = {}


def register_target(t: Target) -> Target:
    if not isinstance(t, Target):
        raise TargetError(f"register_target expects a Target, got {type(t).__name__}")
    if t.name in TARGETS and TARGETS[t.name] != t:
        raise TargetError(f"target {t.name!r} registered twice with different values")
    TARGETS[t.name] = t
    return t


def list_targets() -> list[str]:
    return sorted(TARGETS)


def get_target(target: Union[str, Target]) -> Target:
    """The registered target of that name (a :class:`Target` is returned as is)."""
    if isinstance(target, Target):
        return target
    try:
        return TARGETS[target]
    except (KeyError, TypeError):
        raise TargetError(f"unknown target {target!r}; known targets: "
                          f"{', '.join(list_targets())}") from None


U280 = register_target(Target(
    name="u280",
    description="AMD Alveo U280 (XCU280 with 8 GB HBM2)",
    clock_mhz=225.0,
    dsp=9024, lut=1_304_000, ff=2_607_000, bram36=2016, uram=960,
    hbm_channels=32, hbm_gbps=460.0,
    dsp_chain=DspChainGeometry(n_dsp=512, cascade=2, lane_shift=18, count=4,
                               modes=DspChainGeometry.modes + ("pair",)),
    lut_core=LutCoreGeometry(m=2, n=128, max_group=256, dq_lanes=8, max_bits=4, count=24),
    sfu_lanes=64,
    source="budgets: AMD Alveo U280 data sheet DS963; clock: FlightLLM (FPGA'24) U280 build; "
           "engine counts: plait, sized by the RTL resource models (see plait.ir.target)",
))

SIM16 = register_target(Target(
    name="sim16",
    description="default RTL geometries (DspChainConfig(), LutCoreConfig()), one engine each",
    clock_mhz=225.0,
    dsp=9024, lut=1_304_000, ff=2_607_000, bram36=2016, uram=960,
    hbm_channels=1, hbm_gbps=460.0 / 32,
    dsp_chain=DspChainGeometry(),
    lut_core=LutCoreGeometry(),
    sfu_lanes=16,
    source="the RTL tests' default geometries on the U280 part, one HBM pseudo-channel",
))


# --------------------------------------------------------------------------- DSP chain cycles

def dsp_level(cascade: int, mode) -> int:
    """Adder-tree level holding the rows of ``mode``: ``log2(N / cascade)``."""
    return _clog2(parse_mode(mode).n // cascade)


def dsp_input_register(modes) -> bool:
    """Whether a chain built for ``modes`` has a fabric input register in front of its
    slices.  A build with an operand select between the input beat and the slices
    (the sparse MUX of an N:M mode, pair mode's operand swap) registers the beat and
    the decoded selects first, so that the select has a clean registered input; a
    dense-only build has no select: its activations go straight into the slices'
    A2/D registers and the widened weights into B1, which are then the chain's input
    registers (one clock less latency, no fabric copy of the beat)."""
    return any(not parse_mode(m).dense for m in modes)


def _dsp_tree_base(cascade: int, modes) -> int:
    """Clocks from accepting a beat to its lanes at tree level 0 (the reduction nodes)
    plus one for the row accumulator: the input register (:func:`dsp_input_register`),
    the group's first slice's A2/D/B1 and M registers (it has no AD register) and
    ``cascade`` P registers (the reduction node reads the last one's bit fields)."""
    return 2 + int(dsp_input_register(modes)) + cascade


def dsp_latency(cascade: int, mode, modes) -> int:
    """Clock edges from accepting a group's last beat to ``out_valid`` on a chain
    built for ``modes``: :func:`_dsp_tree_base` (input register, first slice, the P
    registers, the row accumulator) and ``level`` tree registers."""
    return _dsp_tree_base(cascade, modes) + dsp_level(cascade, mode)


def dsp_pipeline_depth(geometry: DspChainGeometry) -> int:
    """Clocks a beat stays in the chain's control pipeline (``DEPTH`` of
    ``dsp_chain.sv``: :func:`_dsp_tree_base` and every tree level): a beat of another
    mode waits that long after the last beat in flight (the pipeline drains before the
    mode changes)."""
    levels = _clog2(geometry.n_dsp // geometry.cascade)
    return _dsp_tree_base(geometry.cascade, geometry.modes) + levels


def dsp_rows(n_dsp: int, mode) -> int:
    """Output rows of one tile: ``n_dsp / N`` (pair mode: ``2 n_dsp / 16``)."""
    md = parse_mode(mode)
    return n_dsp // md.n * (2 if md.pair else 1)


def dsp_tile_beats(k: int, mode) -> int:
    """Beats (clocks) of one tile: ``K / M`` (every slice busy in every mode)."""
    md = parse_mode(mode)
    if k <= 0 or k % md.m:
        raise TargetError(f"K={k} is not a positive multiple of M={md.m} (mode {md.name})")
    return k // md.m


def _check_layer(rows: int, k: int, tokens: int) -> None:
    for what, v in (("rows", rows), ("K", k), ("tokens", tokens)):
        if not _is_int(v) or v <= 0:
            raise TargetError(f"{what} must be a positive int, got {v!r}")
    if k > MAX_K:
        raise TargetError(f"K={k} exceeds the numeric contract's maximum {MAX_K}")


def dsp_pair_pass(mode: Union[str, DspMode], tokens: int, geometry: DspChainGeometry,
                  bits: int = 8) -> bool:
    """Whether the odd token row of a dense linear runs in pair mode (decode lane
    packing: two weight rows per slice; :mod:`plait.ir.numerics.dsp`): the chain
    enables ``pair``, the weights have at most ``PAIR_MAX_BITS`` bits and the token
    count is odd (batch-1 decode)."""
    return (parse_mode(mode).dense and tokens % 2 == 1 and geometry.supports("pair")
            and bits <= PAIR_MAX_BITS)


def dsp_linear_cycles(rows: int, k: int, mode: Union[str, DspMode], tokens: int,
                      geometry: DspChainGeometry, bits: int = 8) -> int:
    """Clocks of a ``rows x K`` linear layer of ``bits``-bit weights for ``tokens``
    token rows on the chains of ``geometry``, from its first beat to its last output
    (module docstring).  Token rows go two per pass (the packed lanes); an odd last
    row of a dense linear takes a pair-mode pass (:func:`dsp_pair_pass`, half the
    tiles) where the chain has it; its beats wait for the dense beats to drain
    (:func:`dsp_pipeline_depth`, the mode change)."""
    _check_layer(rows, k, tokens)
    md = parse_mode(mode)
    if not geometry.supports(md):
        raise TargetError(f"mode {md.name} is not enabled in the chain's modes "
                          f"{','.join(geometry.mode_names())}")
    pair = dsp_pair_pass(md, tokens, geometry, bits)
    passes = tokens // 2 if pair else -(-tokens // 2)
    work = passes * -(-rows // dsp_rows(geometry.n_dsp, md))
    if pair:
        work += -(-rows // dsp_rows(geometry.n_dsp, "pair"))
    per_chain = -(-work // geometry.count)
    drain = dsp_pipeline_depth(geometry) if pair and passes else 0
    return (per_chain * dsp_tile_beats(k, md) + drain
            + dsp_latency(geometry.cascade, md, geometry.modes))


# --------------------------------------------------------------------------- LUT core cycles

def _lut_tile_terms(bits: int, k: int, group: int, n: int, dq_lanes: int) -> tuple[int, int, int]:
    if bits not in LUT_WEIGHT_BITS:
        raise TargetError(f"the LUT core runs 1..4 weight planes, got {bits}")
    if group <= 0 or k <= 0 or k % group or group % LUT_G:
        raise TargetError(f"K={k} must be a multiple of the group {group}, itself a multiple of 4")
    if dq_lanes <= 0 or n % dq_lanes:
        raise TargetError(f"dq_lanes={dq_lanes} must divide n={n}")
    return bits * group // LUT_G, n // dq_lanes, k // group


#: clocks the LUT core's datapath adds behind its control (timing: 300 MHz): the
#: registered inputs (one stage) and the dequantizer pipeline (select, z' X, zero
#: correction + halving, A * mant: four stages) before a step updates P
LUT_PIPE = 5


def lut_tile_cycles(bits: int, k: int, group: int, n: int, dq_lanes: int) -> int:
    """Clocks of one isolated tile, first activation beat to its last output beat:
    a 1-clock table fill, ``L = bits * G / 4`` clocks per group (a group end waits
    for the dequantizer, ``S = n / dq_lanes`` clocks per group, when groups are
    shorter than that), the last group's dequantization, the :data:`LUT_PIPE`
    pipeline clocks and the ``S`` output beats (the first leaves with the last step)."""
    per, steps, ngroups = _lut_tile_terms(bits, k, group, n, dq_lanes)
    return 1 + per + (ngroups - 1) * max(per, steps) + 2 * steps - 1 + LUT_PIPE


def lut_tile_period(bits: int, k: int, group: int, n: int, dq_lanes: int) -> int:
    """Clocks between the last output beats of back-to-back tiles (same mode,
    ``o_ready`` high): the first group of a tile ends no earlier than
    ``2 S + 1 + LUT_PIPE`` clocks after the previous tile's last group end (its
    dequantization through the pipeline, then its ``S`` output beats leaving: P is
    overwritten by the next tile's first group)."""
    per, steps, ngroups = _lut_tile_terms(bits, k, group, n, dq_lanes)
    return max(per, 2 * steps + 1 + LUT_PIPE) + (ngroups - 1) * max(per, steps)


def lut_linear_cycles(rows: int, k: int, bits: int, group: int, tokens: int,
                      geometry: LutCoreGeometry) -> int:
    """Clocks of a ``rows x K`` linear layer (``bits``-plane weights, groups of
    ``group``) for ``tokens`` token rows on the cores of ``geometry``: the first
    tile isolated, the others back to back (module docstring)."""
    _check_layer(rows, k, tokens)
    if bits > geometry.max_bits:
        raise TargetError(f"{bits}-bit weights exceed the LUT core's max_bits {geometry.max_bits}")
    if group > geometry.max_group:
        raise TargetError(f"group size {group} exceeds the LUT core's max_group {geometry.max_group}")
    tiles = -(-tokens // geometry.m) * -(-rows // geometry.n)
    per_core = -(-tiles // geometry.count)
    first = lut_tile_cycles(bits, k, group, geometry.n, geometry.dq_lanes)
    return first + (per_core - 1) * lut_tile_period(bits, k, group, geometry.n, geometry.dq_lanes)
