"""Configuration, registration and models of the sparse DSP chain engine.

The hardware is hand-written SystemVerilog in ``rtl/sv/``:

* ``dsp_slice.sv``         -- DSP48E2 MAC slice: pre-adder packs the two int8 lanes,
  A2/D/B1, AD/B2 (not in a cascade group's first slice), M and P registers,
  P = M + PCIN.  In synthesis an instance of the
  ``DSP48E2`` primitive (``PLAIT_DSP_PRIMITIVE``), otherwise the same pipeline in
  behavioural form
* ``dsp_delay.sv``         -- operand skew of the cascade slices
* ``dsp_lane_adjust.sv``   -- reduction node: overflow adjust / lane extraction
* ``dsp_cascade_group.sv`` -- ``cascade`` slices on the PCOUT->PCIN path + reduction node
* ``dsp_operand_decode.sv`` -- per-slice MUX select (mode + N:M index), weight widening
* ``dsp_sparse_mux.sv``    -- sparse MUX (16:1 per activation bit, both lanes)
* ``dsp_chain.sv``         -- top: input stage, groups, adder tree (reconfigurable
  links between groups), row accumulators, valid/ready control

``dsp_model_dsp48e2.sv`` is a simulation-only functional model of the DSP48E2
primitive (yosys 0.23 ships none); :func:`primitive_sim_sources` plus the Verilator
define ``-DPLAIT_DSP_PRIMITIVE`` (:data:`PRIMITIVE_BUILD_ARGS`) simulate the
primitive path with the same cocotb testbench.

The architecture and the arithmetic are documented in
:mod:`plait.ir.numerics.dsp` (its golden model is bit-exact to this RTL).
:class:`DspChainConfig` generates ``dsp_chain_pkg.sv``; the runtime inputs
``in_mode`` / ``in_wbits`` select the sparsity mode and the weight width, so one
build covers every mode enabled in ``modes``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from plait.ir.numerics.dsp import (CHAIN_MODES, CODE_BITS, DSP_P_BITS, DSP_WEIGHT_BITS, IDX_BITS, MODE_BITS,
                                   MODES, M_MAX, WBITS_BITS, WBITS_CODE, chain_acc_bits,
                                   check_lane_geometry, lane_bias, lane_bits,
                                   lane_window, parse_mode)
from plait.ir.numerics.common import NumericsError
from plait.ir.target import (DspChainGeometry, dsp_input_register, dsp_latency, dsp_level,
                             dsp_linear_cycles, dsp_pipeline_depth, dsp_rows, dsp_tile_beats,
                             get_target)

from . import synth as _synth
from .config import UnitConfig, clog2
from .units import register_unit

__all__ = ["DspChainConfig", "DSP_CHAIN_SOURCES", "P_W", "DSP48E2_SIM_MODEL",
           "PRIMITIVE_DEFINE", "PRIMITIVE_BUILD_ARGS", "primitive_sim_sources",
           "encoding_params", "mode_param"]

P_W = DSP_P_BITS                    # the P path (cascade, reduction nodes): numerics' 48 bits
# dsp_slice.sv before dsp_cascade_group.sv: the slice file defines the macro the group reads
DSP_CHAIN_SOURCES = ("dsp_delay.sv", "plait_dsp48e2.sv", "dsp_slice.sv", "dsp_lane_adjust.sv",
                     "dsp_cascade_group.sv", "dsp_operand_decode.sv", "dsp_sparse_mux.sv",
                     "dsp_chain.sv")
#: simulation-only functional model of the DSP48E2 primitive (never synthesized)
DSP48E2_SIM_MODEL = "dsp_model_dsp48e2.sv"
#: define that selects the DSP48E2 primitive (plait.rtl.synth: one name for both engines)
PRIMITIVE_DEFINE = _synth.PRIMITIVE_DEFINE
PRIMITIVE_BUILD_ARGS = (f"-D{PRIMITIVE_DEFINE}",)


def primitive_sim_sources() -> list[Path]:
    """Sources for simulating the DSP48E2 primitive path: the sim model first, then
    the unit's sources (build with :data:`PRIMITIVE_BUILD_ARGS`)."""
    from .units import SV_DIR, unit_sources
    return [SV_DIR / DSP48E2_SIM_MODEL, *unit_sources("dsp_chain")]


def mode_param(name: str) -> str:
    """Package name of a mode code: ``"dense"`` -> ``MODE_DENSE``, ``"2:4"`` -> ``MODE_2_4``."""
    return "MODE_" + parse_mode(name).name.upper().replace(":", "_")


def encoding_params() -> dict[str, int]:
    """The chain's hardware encodings as package parameters, all taken from
    :mod:`plait.ir.numerics.dsp` (the RTL compares against these names, never
    against literals): mode codes ``MODE_<name>`` and their width ``MODE_W``,
    weight-width codes ``WBITS_<b>`` and ``WBITS_W``, the activation block
    ``M_MAX``, the sparse index width ``IDX_W``, the weight-code bus width
    ``CODE_W`` and the P path ``P_W``."""
    out = {mode_param(m): code for m, (_, _, code) in CHAIN_MODES.items()}
    out["MODE_W"] = MODE_BITS
    out.update({f"WBITS_{b}": c for b, c in WBITS_CODE.items()})
    out.update({"WBITS_W": WBITS_BITS, "M_MAX": M_MAX, "IDX_W": IDX_BITS, "CODE_W": CODE_BITS,
                "P_W": P_W})
    return out


@dataclass
class DspChainConfig(UnitConfig):
    """Geometry of one sparse DSP chain.

    ``n_dsp``: slices (a multiple of 16); ``cascade``: slices per cascade group (fixed
    PCOUT->PCIN links; FlightLLM uses 2); ``lane_shift``: bit position of the upper
    packed lane (18 for the DSP48E2's 27-bit A port, 16 fits the DSP48E1's 25 bits);
    ``acc_w``: row accumulator width; ``modes``: comma-separated sparsity modes the
    build accepts (a subset of ``dense,2:4,2:16,4:16,8:16,pair``; ``pair`` is decode
    lane packing, two weight rows per slice for batch-1 GEMV -- see
    :mod:`plait.ir.numerics.dsp`); ``wbits``: the weight code widths the build widens,
    every width (``2,3,4,8``, the default: ``in_wbits`` picks one per beat) or a single
    one (e.g. ``8`` for a W8A8 chain: the widening is that width's wiring only, no
    per-slice select, and ``in_wbits`` is not read).

    The cycle models (:meth:`latency`, :meth:`rows`, :meth:`cycles_per_tile`,
    :meth:`linear_cycles`) are those of :mod:`plait.ir.target`, which the
    engine-mapping pass uses; :meth:`from_target` sizes one chain of a target.
    """

    pkg_name: ClassVar[str] = "dsp_chain_pkg"
    # geometry defaults: the one definition in plait.ir.target (what the mapping sizes)
    n_dsp: int = DspChainGeometry.n_dsp
    cascade: int = DspChainGeometry.cascade
    lane_shift: int = DspChainGeometry.lane_shift
    acc_w: int = 32
    modes: str = ",".join(DspChainGeometry.modes)
    wbits: str = ",".join(map(str, DSP_WEIGHT_BITS))

    @classmethod
    def from_target(cls, target, **overrides) -> "DspChainConfig":
        """One chain of ``target`` (a :class:`~plait.ir.target.Target` or its name):
        its n_dsp, cascade, lane_shift and modes; ``overrides`` set other fields
        (e.g. ``acc_w``)."""
        g = get_target(target).dsp_chain
        return cls(n_dsp=g.n_dsp, cascade=g.cascade, lane_shift=g.lane_shift,
                   modes=",".join(g.mode_names()), **overrides)

    def geometry(self, count: int = 1) -> DspChainGeometry:
        """This build as the ir-level geometry (``count`` chains of it)."""
        return DspChainGeometry(n_dsp=self.n_dsp, cascade=self.cascade,
                                lane_shift=self.lane_shift, modes=tuple(self.mode_list()),
                                count=count)

    def mode_list(self) -> list[str]:
        return [parse_mode(m).name for m in self.modes.split(",") if m.strip()]

    def wbits_list(self) -> list[int]:
        """The weight widths this build widens (ascending)."""
        try:
            return sorted({int(b) for b in self.wbits.split(",") if b.strip()})
        except ValueError:
            raise ValueError(f"DspChainConfig.wbits must be comma-separated bit widths, "
                             f"got {self.wbits!r}") from None

    def widths(self, mode) -> list[int]:
        """Weight widths a beat of ``mode`` may carry on this build."""
        return [b for b in parse_mode(mode).weight_bits if b in self.wbits_list()]

    def validate(self) -> None:
        if self.n_dsp <= 0 or self.n_dsp % M_MAX:
            raise ValueError(f"DspChainConfig.n_dsp must be a positive multiple of {M_MAX}, "
                             f"got {self.n_dsp}")
        if self.cascade < 1 or self.cascade & (self.cascade - 1) or self.n_dsp % self.cascade:
            raise ValueError(f"DspChainConfig.cascade must be a power of two dividing "
                             f"n_dsp={self.n_dsp}, got {self.cascade}")
        try:
            check_lane_geometry(self.cascade, self.lane_shift)
            modes = self.mode_list()
        except NumericsError as e:
            raise ValueError(f"DspChainConfig.cascade/lane_shift/modes: {e}") from None
        if not modes:
            raise ValueError("DspChainConfig.modes is empty")
        for m in modes:
            n = CHAIN_MODES[m][0]
            if n % self.cascade:
                raise ValueError(f"DspChainConfig.modes: mode {m} needs logical groups of {n} "
                                 f"DSPs, not a multiple of cascade={self.cascade}")
        wb = self.wbits_list()
        if wb != sorted(DSP_WEIGHT_BITS) and (len(wb) != 1 or wb[0] not in DSP_WEIGHT_BITS):
            raise ValueError(f"DspChainConfig.wbits must be every width "
                             f"({','.join(map(str, DSP_WEIGHT_BITS))}) or one of them, got {self.wbits!r}")
        for m in modes:
            if not self.widths(m):
                raise ValueError(f"DspChainConfig: mode {m} takes {parse_mode(m).weight_bits}-bit "
                                 f"weights, none of wbits={self.wbits!r}")
        need = chain_acc_bits()
        if not need <= self.acc_w <= P_W:
            raise ValueError(f"DspChainConfig.acc_w must be in [{need}, {P_W}] (exact group "
                             f"sums up to K=65536), got {self.acc_w}")

    # ------------------------------------------------------------- derived
    @property
    def n_groups(self) -> int:
        return self.n_dsp // self.cascade

    @property
    def rows_max(self) -> int:
        return self.n_dsp // min(CHAIN_MODES[m][0] for m in self.mode_list())

    @property
    def out_depth(self) -> int:
        """Words of the output FIFO: the smallest power of two >= the longest latency
        of the built modes + 2, at least 4.  The credits that keep the FIFO from
        overflowing hold ``out_depth`` groups in flight or queued, and a one-beat group
        per clock has ``latency + 1`` of them outstanding while ``out_ready`` is high, so
        this depth never slows a stream that is not back-pressured.  (Distributed RAM of
        up to 32 words costs the same LUTs.)"""
        need = max(self.latency(m) for m in self.mode_list()) + 2
        return max(4, 1 << clog2(need))

    def derived(self) -> dict[str, int]:
        rnd, lo_off = lane_bias(self.cascade, self.lane_shift)
        mask = 0
        for m in self.mode_list():
            mask |= 1 << CHAIN_MODES[m][2]
        return {
            "n_groups": self.n_groups,
            "levels": clog2(self.n_groups),
            "rows_max": self.rows_max,
            "out_depth": self.out_depth,
            "a_w": self.lane_shift + 9,
            "lane_w": lane_bits(self.cascade, self.lane_shift),
            "win_hi": lane_window(self.cascade, self.lane_shift)[1],
            "rnd": rnd,
            "lo_off": lo_off,
            "mode_mask": mask,
            # a single-width build: its width's code (the widening's constant select)
            "single_width": int(len(self.wbits_list()) == 1),
            "single_width_code": WBITS_CODE[self.wbits_list()[0]] if len(self.wbits_list()) == 1 else 0,
            "in_reg": int(self.in_reg),
            **encoding_params(),
        }

    def cpp_arrays(self) -> dict[str, list[int]]:
        """C++-only tables indexed by the hardware codes (from :mod:`plait.ir.numerics.dsp`):
        ``MODE_N`` / ``MODE_M`` (N and M of mode code ``c``; 0 for unused codes) and
        ``WBITS_OF`` (weight bits of width code ``c``).  The HLS chain implements the
        sparsity modes only: the pair code reads 0 (unsupported)."""
        ncodes = 1 << MODE_BITS
        mode_n, mode_m = [0] * ncodes, [0] * ncodes
        for n, m, code in MODES.values():
            mode_n[code], mode_m[code] = n, m
        wbits = [0] * (1 << WBITS_BITS)
        for b, code in WBITS_CODE.items():
            wbits[code] = b
        return {"MODE_N": mode_n, "MODE_M": mode_m, "WBITS_OF": wbits}

    @property
    def in_reg(self) -> bool:
        """The fabric input register in front of the slices
        (:func:`plait.ir.target.dsp_input_register`: absent in a dense-only build)."""
        return dsp_input_register(self.mode_list())

    def level(self, mode) -> int:
        return dsp_level(self.cascade, mode)

    def latency(self, mode) -> int:
        """Clock edges from accepting a group's last beat to ``out_valid``."""
        return dsp_latency(self.cascade, mode, self.mode_list())

    def rows(self, mode) -> int:
        return dsp_rows(self.n_dsp, mode)

    # ------------------------------------------------------------- models
    def macs_per_cycle(self) -> int:
        """int8 MACs per clock: two packed lanes on every slice, in every mode."""
        return 2 * self.n_dsp

    def dense_equivalent_macs_per_cycle(self, mode) -> int:
        """MACs of the dense product covered per clock (``M/N`` times more when sparse)."""
        md = parse_mode(mode)
        return 2 * self.n_dsp * md.m // md.n

    def cycles_per_tile(self, k: int, mode) -> int:
        """Beats of one tile (``rows(mode)`` rows x ``k`` inputs x 2 lanes), streaming."""
        return dsp_tile_beats(k, mode)

    def linear_cycles(self, rows: int, k: int, mode, tokens: int) -> int:
        """Clocks of a ``rows x k`` linear layer for ``tokens`` token rows on this one
        chain, first beat to last output (:func:`plait.ir.target.dsp_linear_cycles`)."""
        return dsp_linear_cycles(rows, k, mode, tokens, self.geometry())

    def estimate_resources(self) -> dict[str, int]:
        """Analytical counts (UltraScale+: LUT6, FF, CARRY8, DSP48E2).

        Slice registers (A2/D/B1, AD/B2 -- none in a group's first slice --, M, P) and
        the lane-packing pre-adder are inside the DSP48E2.  Fabric: input registers
        (activations, decoded select and widened weight per slice; none in a dense-only
        build, :attr:`in_reg`), the sparse MUX (16 bits of a 16:1 MUX = 5 LUT6 per
        bit with N:16 modes, one LUT per bit for a 4:1 MUX with 2:4 only, none when
        dense only), select decode + widening, the operand skew lines, reduction
        nodes' bit fields (no logic), the adder tree, the row accumulators (one LUT per
        bit; the group-end clear is the flip-flops' synchronous reset), the
        output FIFO (distributed RAM: RAM32M16, 14 bits x 32 words per 8 LUTs, one
        row's two lanes per RAM group, plus the mode of each word; its pointers
        replicated per row) and the control pipeline.
        """
        lane_w = lane_bits(self.cascade, self.lane_shift)
        levels = clog2(self.n_groups)
        rows = self.rows_max
        n, c, ng = self.n_dsp, self.cascade, self.n_groups
        modes = self.mode_list()
        if any(parse_mode(m).m == 16 and not parse_mode(m).dense for m in modes):
            mux_per_bit = 5
        elif "2:4" in modes:
            mux_per_bit = 1
        else:
            mux_per_bit = 0
        pair = "pair" in modes          # operand swap (3 x 8 2:1 selects) + second widening
        # slice j >= 1 of a group: j - 1 clocks of operand skew (the first has no AD)
        skew_ff = ng * sum(j - 1 for j in range(1, c)) * 24
        # tree level lv: ng >> lv nodes x 2 lanes of lane_w + lv bits (the reduction
        # node, level 0, is bit fields of the last slice's P: no logic, no register)
        tree_bits = sum((ng >> lv) * 2 * (lane_w + lv) for lv in range(1, levels + 1))
        tree_nodes = sum(ng >> lv for lv in range(1, levels + 1))
        tree_w = lane_w + levels
        lo_off = lane_bias(c, self.lane_shift)[1]
        depth = dsp_pipeline_depth(self.geometry())
        od_w = clog2(self.out_depth)
        lutram = rows * -(-2 * self.acc_w // 14) + 1   # RAM32M16 cells (<= 32 words)
        in_ff = (2 * 16 * 8 + n * 12 + 5) if self.in_reg else 0   # act, sel, weight
        ff = (in_ff                              # input registers (none when dense only)
              + (n * 9 if pair else 0)           # second weight + pair flag per slice
              + skew_ff
              + tree_bits                        # tree registers
              + rows * 2 * self.acc_w            # accumulators
              + rows * (2 * od_w + 1)            # FIFO pointers + out_valid per row
              + 2 * depth + 3 + 2 + 4            # control
              + 4 * (od_w + 1))                  # FIFO master pointers, count, credits
        widen = 7 if len(self.wbits_list()) > 1 else 0   # a single width is wiring (and an inverter)
        lut = (n * (2 * 8 * mux_per_bit + widen + 4)  # mux, widening, select decode
               + (n * (12 + 4) if pair else 0)   # operand swap, second widening
               + tree_bits                       # tree adders
               + rows * 2 * self.acc_w           # accumulate (clear = the FFs' reset)
               + (rows * self.acc_w if lo_off else 0)   # lower-lane window offset
               + 8 * lutram                      # output FIFO (distributed RAM)
               + rows * 2 * od_w                 # its pointer increments
               + 16)
        carry = (tree_nodes * 2 * -(-tree_w // 8)
                 + rows * 2 * -(-self.acc_w // 8))
        return {"LUT": lut, "FF": ff, "CARRY": carry, "DSP48E2": n, "BRAM": 0, "LUTRAM": lutram}


register_unit("dsp_chain", DspChainConfig, top="dsp_chain", sources=list(DSP_CHAIN_SOURCES))
