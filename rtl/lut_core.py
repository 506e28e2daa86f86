"""Configuration and models of the LUT tensor core (``rtl/sv/lut_*.sv``).

The core (after LUT Tensor Core, ISCA'25, T-MAC and MixPE) multiplies ``M`` int8
activation rows by ``N`` low-bit weight columns, ``K = g = 4`` inputs per step, one
weight bit-plane per cycle; it dequantizes once per quantization group and outputs
the contract's 48-bit ``P`` (:func:`plait.ir.numerics.lut.lut_trace` is the golden
model of every register; ``docs`` of the arithmetic live there).

Sources (``rtl/sv/``): ``lut_precompute.sv`` (8-entry symmetrized table of 4 int8),
``lut_lookup.sv`` (sign from the top index bit), ``lut_core.sv`` (streams, table
stage whose table register doubles after each weight plane (so the plane weight
``2^i`` costs no shifter per column), ``M x N`` lookup units (8:1 MUX) and column
accumulators (one add/subtract each), background group dequantizer with
``dq_lanes`` columns per cycle: group totals, mantissas and zero points in holding
registers read through ``N/dq_lanes``:1 MUX trees (``lut_sel.sv``), ``P`` of each
row and lane in distributed RAM (``N/dq_lanes`` words, streamed out in as many beats)
so only ``M * dq_lanes`` multiply-accumulates exist; pipelined for an estimated
300 MHz: registered inputs, replicated control, a 4-stage dequantizer,
:data:`plait.ir.target.LUT_PIPE` clocks of latency), ``lut_dq_mac.sv`` (the
dequantizer's ``A * mant + P`` as a DSP48E2 primitive) and ``plait_dsp48e2.sv`` (the
engines' one DSP48E2 instance, also the dequantizer's ``z' X``), built where
``PLAIT_DSP_PRIMITIVE`` is defined (synthesis for the DSP48E2 families;
``lut_core.sv`` holds the behavioural twins).  The parameters come from the generated
``lut_core_pkg.sv`` (:meth:`LutCoreConfig.sv_package`).

Run-time modes (one build covers all): ``cfg_bits`` 1..4 planes, ``cfg_offset``
(zero correction + halving for sym/asym/ternary; off for odd-level weights),
``cfg_group_chunks = G/4`` and ``cfg_groups`` groups per tile.  :func:`mode_of`
maps a :class:`~plait.ir.numerics.QuantizedWeight` to these values and
:func:`stream_tile` produces the exact beats the RTL consumes.

Performance terms used by the testbench and the report
    *lookup units*   ``M * N`` (one table lookup per row and column per cycle);
    *useful lookups* ``M * N * bits * K / 4`` per tile (one per plane per chunk; a
    ternary weight uses 2 planes);
    *utilisation*    useful lookups / (lookup units * cycles), i.e. the fraction of
    cycles in which the lookup array consumes a weight plane;
    *MACs per cycle* ``M * N * K_tile / cycles`` (weight x activation products).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np

from plait.ir.numerics import (
    LUT_G, LOOKUP_BITS, P_BITS, SCALE_BITS, TABLE_BITS, ZP_BITS, NumericsError,
    QuantizedWeight, lut_widths, odd_zero_point,
)
from plait.ir.numerics.pack import pack_lut
from plait.ir.target import (LutCoreGeometry, get_target, lut_linear_cycles, lut_tile_cycles,
                             lut_tile_period)
from .config import UnitConfig, clog2
from .units import register_unit

__all__ = ["LutCoreConfig", "LutMode", "mode_of", "stream_tile", "LUT_SOURCES"]

LUT_SOURCES = ["lut_precompute.sv", "lut_lookup.sv", "lut_sel.sv", "plait_dsp48e2.sv",
               "lut_dq_mac.sv", "lut_core.sv"]


@dataclass
class LutCoreConfig(UnitConfig):
    """Build-time parameters of the LUT tensor core.

    m, n, k     tile (rows x columns x inputs per step); ``k`` must be 4 (g = 4)
    max_group   largest quantization group (inputs) the accumulators are sized for
    dq_lanes    columns the group dequantizer handles per cycle (``n % dq_lanes == 0``)
    cnt_w       width of the groups-per-tile counter (``cfg_groups < 2^cnt_w``)
    max_bits    largest weight width (planes) the build supports, 1..4; accumulators
                and the plane shifter are sized for it (a W1 build has no shifter)

    The cycle models (:meth:`tile_cycles`, :meth:`tile_period`, :meth:`linear_cycles`)
    are those of :mod:`plait.ir.target`, which the engine-mapping pass uses;
    :meth:`from_target` sizes one core of a target.
    """

    pkg_name: ClassVar[str] = "lut_core_pkg"
    # geometry defaults: the one definition in plait.ir.target (what the mapping sizes)
    m: int = LutCoreGeometry.m
    n: int = LutCoreGeometry.n
    k: int = 4
    max_group: int = LutCoreGeometry.max_group
    dq_lanes: int = LutCoreGeometry.dq_lanes
    cnt_w: int = 16
    max_bits: int = LutCoreGeometry.max_bits

    @classmethod
    def from_target(cls, target, **overrides) -> "LutCoreConfig":
        """One LUT core of ``target`` (a :class:`~plait.ir.target.Target` or its name);
        ``overrides`` set the other fields (e.g. ``cnt_w``).  A target without LUT
        cores is refused."""
        t = get_target(target)
        g = t.lut_core
        if g is None:
            raise ValueError(f"target {t.name!r} has no LUT core (lut_core=None)")
        return cls(m=g.m, n=g.n, max_group=g.max_group, dq_lanes=g.dq_lanes,
                   max_bits=g.max_bits, **overrides)

    def geometry(self, count: int = 1) -> LutCoreGeometry:
        """This build as the ir-level geometry (``count`` cores of it)."""
        return LutCoreGeometry(m=self.m, n=self.n, max_group=self.max_group,
                               dq_lanes=self.dq_lanes, max_bits=self.max_bits, count=count)

    def validate(self) -> None:
        if self.k != LUT_G:
            raise ValueError(f"LutCoreConfig.k must be {LUT_G} (the table group g), got {self.k}")
        if not 1 <= self.m <= 16:
            raise ValueError(f"LutCoreConfig.m must be in [1, 16], got {self.m}")
        if not 1 <= self.n <= 256:
            raise ValueError(f"LutCoreConfig.n must be in [1, 256], got {self.n}")
        if self.max_group < LUT_G or self.max_group % LUT_G or self.max_group > 4096:
            raise ValueError(f"LutCoreConfig.max_group must be a multiple of {LUT_G} in "
                             f"[{LUT_G}, 4096], got {self.max_group}")
        if self.dq_lanes < 1 or self.n % self.dq_lanes:
            raise ValueError(f"LutCoreConfig.dq_lanes must divide n={self.n}, got {self.dq_lanes}")
        if self.max_bits not in (1, 2, 3, 4):
            raise ValueError(f"LutCoreConfig.max_bits must be 1..4, got {self.max_bits}")
        if not 1 <= self.cnt_w <= 24:
            raise ValueError(f"LutCoreConfig.cnt_w must be in [1, 24], got {self.cnt_w}")

    # ---------------------------------------------------------------- params
    def derived(self) -> dict[str, int]:
        w = lut_widths(self.max_group, self.max_bits)
        chunks = self.max_group // LUT_G
        steps = self.n // self.dq_lanes
        return {
            "act_w": 8, "tbl_w": TABLE_BITS, "lk_w": LOOKUP_BITS, "wb_max": self.max_bits,
            "acc_w": w.acc, "xs_w": w.xsum, "corr_w": w.corr, "grp_w": w.grp,
            "prod_w": w.prod, "p_w": P_BITS, "mant_w": SCALE_BITS, "zp_w": ZP_BITS,
            "idx_w": LUT_G,     # table index per column and plane (bit k: weight k of a chunk)
            "max_chunks": chunks, "gc_w": clog2(chunks + 1),
            "dq_steps": steps, "dqs_w": max(1, clog2(steps)),
        }

    @property
    def dq_steps(self) -> int:
        """Dequantizer steps per group, ``n / dq_lanes``: also the output beats per tile."""
        return self.n // self.dq_lanes

    # ---------------------------------------------------------------- models
    def lookup_units(self) -> int:
        return self.m * self.n

    def macs_per_cycle(self, bits: Optional[int] = None) -> int:
        """Peak MACs per cycle for ``bits``-plane weights: ``M * N * 4 / bits`` (one
        plane per cycle).  Default: the build's widest weights (``max_bits``), the
        mode its resources are sized for, so per-MAC figures of a report describe it."""
        bits = self.max_bits if bits is None else bits
        if bits not in (1, 2, 3, 4):
            raise ValueError(f"the LUT core runs 1..4 weight planes, got {bits}")
        return self.m * self.n * self.k // bits if (self.m * self.n * self.k) % bits == 0 \
            else self.m * self.n * self.k / bits

    def tile_cycles(self, bits: int, k: int, group: int) -> int:
        """Cycles of one isolated tile from the first input beat to its last output beat.

        Lookup array: ``bits`` cycles per chunk after a 1-cycle table fill; each
        group end waits for the dequantizer (``n / dq_lanes`` cycles per group)
        when groups are shorter than that; the last group's dequantization adds
        ``n / dq_lanes`` cycles and the pipeline (registered inputs, 4 dequantizer
        stages) :data:`~plait.ir.target.LUT_PIPE` = 5, the output ``n / dq_lanes``
        beats (:func:`plait.ir.target.lut_tile_cycles`).
        """
        return lut_tile_cycles(bits, k, group, self.n, self.dq_lanes)

    def tile_period(self, bits: int, k: int, group: int) -> int:
        """Cycles between outputs of back-to-back tiles with ``o_ready`` high
        (:func:`plait.ir.target.lut_tile_period`)."""
        return lut_tile_period(bits, k, group, self.n, self.dq_lanes)

    def linear_cycles(self, rows: int, k: int, bits: int, group: int, tokens: int) -> int:
        """Cycles of a ``rows x k`` linear layer for ``tokens`` token rows on this one
        core (:func:`plait.ir.target.lut_linear_cycles`)."""
        return lut_linear_cycles(rows, k, bits, group, tokens, self.geometry())

    def estimate_resources(self) -> dict[str, int]:
        """Analytical LUT/FF/CARRY/DSP count of ``lut_core.sv`` (used when yosys is
        unavailable; within ~15% of yosys 0.23 ``synth_xilinx -family xcup`` for the
        default tile at max_bits 1, 2 and 4).

        Per lookup unit: an 8:1 MUX of ``SH_W = 10 + max_bits - 1`` bit entries (the
        row's table register is pre-shifted by the plane: 2 LUT6 + MUXF7 per bit), the
        select XOR, and one add/subtract LUT per accumulator bit on the carry chain.
        Per row: the table shift register (load/shift select per bit; none for W1),
        12 precompute adders.  Dequantizer: an ``N/dq_lanes``:1 MUX tree per lane bit
        (group totals per row and lane, mantissa and zero point per lane), the
        zero-correction subtract and halving select per lane; two
        DSP48E2 per lane (``z' X`` and ``A * mant + P``, P's add in its post-adder);
        ``P`` in distributed RAM, one ``RAM32M16`` (14 bits of ``n / dq_lanes <= 32``
        words: seven read ports, the write port apart) per 14 bits of each lane
        (``LUTRAM`` counts those cells; ``LUT``
        includes the 8 LUTs each occupies, as the DSP chain's estimate does: compare it
        with yosys's ``LUT+mem``).  Flip-flops include the pipeline
        the core has for 300 MHz (registered inputs, replicated control, the 4-stage
        dequantizer; :data:`plait.ir.target.LUT_PIPE`).
        """
        w = lut_widths(self.max_group, self.max_bits)
        sh_w = TABLE_BITS + self.max_bits - 1
        units = self.m * self.n
        lanes = self.m * self.dq_lanes
        steps = self.n // self.dq_lanes
        mux_lut = 0 if steps == 1 else -(-(steps - 1) // 3)     # LUTs per bit of a steps:1 MUX
        c4 = lambda bits: -(-bits // 4)                          # CARRY4 per adder
        unit_lut = 2 * sh_w + 2 + w.acc
        table = self.m * 8 * (sh_w if self.max_bits > 1 else 0)
        pre = self.m * 12 * TABLE_BITS
        dq_sel = mux_lut * (lanes * w.acc + self.dq_lanes * (SCALE_BITS + ZP_BITS))
        dq = lanes * (w.corr + w.grp)
        ctrl = 100
        # pipeline registers (timing, 300 MHz): the registered inputs (decoded lookup
        # select/sign per unit, the precompute's pair sums; the s words load the holding
        # registers from the port, their registered copy is per lane, after the column
        # select), the replicated control copies, and the dequantizer per lane (the group
        # totals for two stages, the mantissa for two; z' X with its operands, and stages
        # 3 and 4, the corrected group integer, the mantissa and A * mant + P, are in the
        # two DSP48E2's A/B and P registers)
        pipe_in = units * 4 + self.m * 4 * 9 + self.dq_lanes * (SCALE_BITS + ZP_BITS)
        pipe_ctl = 2 * units + 2 * self.n + 8 * self.m + self.dq_lanes * 4 + lanes * 11 + 40
        pipe_dq = lanes * (2 * w.acc + 2 * (SCALE_BITS + 1) + 5)
        # P words per lane, one read port and one write port: 32 per RAM32M16 (14 bits),
        # 64 per RAM64M8 (7 bits)
        lutram = lanes * (-(-P_BITS // 14) if steps <= 32 else -(-P_BITS // 7) * -(-steps // 64))
        return {
            "LUT": units * unit_lut + table + pre + dq_sel + dq + ctrl + 8 * lutram,
            "FF": units * 2 * w.acc + self.m * (8 * sh_w + TABLE_BITS + 2 * w.xsum)
                  + self.n * (SCALE_BITS + ZP_BITS) + 64 + pipe_in + pipe_ctl + pipe_dq,
            "CARRY": units * c4(w.acc + 1) + lanes * c4(w.corr)
                     + self.m * 36 + 16,
            "DSP48E2": 2 * lanes,
            "BRAM": 0, "LUTRAM": lutram,
        }


register_unit("lut_core", LutCoreConfig, top="lut_core", sources=LUT_SOURCES)


# --------------------------------------------------------------------- streams

@dataclass(frozen=True)
class LutMode:
    """Run-time configuration of the core for one weight format."""

    bits: int           # planes per chunk (ternary: 2)
    offset: bool        # zero correction + halving (sym / asym / ternary)
    group_chunks: int   # G / 4

    @property
    def name(self) -> str:
        return f"W{self.bits}{'' if not self.offset else '+z'}"


def mode_of(qw: QuantizedWeight, cfg: LutCoreConfig | None = None) -> LutMode:
    """The run-time mode for ``qw``; raises ``NumericsError`` if the core cannot run it."""
    cfg = cfg or LutCoreConfig()
    odd_zero_point(qw)  # validates bits / scheme / codes
    if qw.bits > cfg.max_bits:
        raise NumericsError(f"{qw.bits}-bit weights exceed the core's max_bits {cfg.max_bits}")
    if qw.group_size > cfg.max_group:
        raise NumericsError(f"group size {qw.group_size} exceeds the core's max_group "
                            f"{cfg.max_group}")
    return LutMode(qw.bits, qw.scheme != "odd", qw.group_size // LUT_G)


def stream_tile(x, qw: QuantizedWeight, cfg: LutCoreConfig):
    """The beats of one tile: ``(mode, a_beats, w_beats, s_beats)``.

    ``x``: int8 ``[M, K]``; ``qw``: ``[N, K]`` with ``M, N`` equal to the config.
    ``a_beats[c]`` is the ``a_data`` integer of chunk ``c``; ``w_beats`` lists the
    ``w_data`` integers in stream order (chunk-major, planes LSB first);
    ``s_beats[g] = (s_mant, s_zp)`` integers of group ``g``.  The weight side is the
    packed artifact format (:func:`plait.ir.numerics.pack.pack_lut`, whose order is
    :func:`plait.ir.numerics.lut.lut_weight_beats`) read as bus words.
    """
    x = np.asarray(x, dtype=np.int64)
    n, k = qw.codes.shape
    if x.shape != (cfg.m, k) or n != cfg.n:
        raise ValueError(f"tile shapes x{x.shape}, w{qw.codes.shape} do not match the core "
                         f"M={cfg.m}, N={cfg.n}")
    mode = mode_of(qw, cfg)
    chunks = k // LUT_G
    a_beats = []
    for c in range(chunks):
        v = 0
        for m in range(cfg.m):
            for kk in range(LUT_G):
                v |= (int(x[m, c * LUT_G + kk]) & 0xFF) << ((m * LUT_G + kk) * 8)
        a_beats.append(v)
    packed = pack_lut(qw, n=cfg.n)
    w_beats = packed.w_words(0)
    s_beats = []
    for g in range(qw.n_groups):
        mv = zv = 0
        for col in range(n):
            mv |= int(packed.mant[col, g]) << (col * SCALE_BITS)
            zv |= (int(packed.zp[col, g]) & ((1 << ZP_BITS) - 1)) << (col * ZP_BITS)
        s_beats.append((mv, zv))
    return mode, a_beats, w_beats, s_beats


# --------------------------------------------------------------------- report

def resource_rows(bits_list=(1, 2, 4), base: LutCoreConfig | None = None, **synth_kw):
    """yosys ``synth_xilinx`` resources of one build per weight width (``max_bits = b``),
    with totals and per-MAC figures (MACs = peak MACs per cycle of that width).

    Returns a list of dicts ``{"mode": "W{b}A8", "macs_per_cycle", "LUT", "LUT+mem", "FF",
    "CARRY", "DSP48E2", "BRAM", "LUTRAM"`` and the same keys with ``/MAC``}: ``LUT`` the
    logic LUTs, ``LUT+mem`` with the LUTs P's distributed RAM occupies (8 per ``RAM32M16``
    cell, :func:`plait.rtl.synth.memory_luts`), ``LUTRAM`` the RAM cells.  Raises
    :class:`plait.rtl.synth.ToolMissing` if yosys is not installed.
    """
    from .synth import synthesize
    from .units import unit_sources

    base = base or LutCoreConfig()
    rows = []
    for b in bits_list:
        cfg = base.replace(max_bits=b)
        res = synthesize("lut_core", unit_sources("lut_core"), config=cfg, **synth_kw)
        t = dict(res.table(), **{"LUT+mem": res.lut_with_memory})
        macs = cfg.macs_per_cycle(b)
        row = {"mode": f"W{b}A8", "config": cfg.to_dict(), "macs_per_cycle": macs}
        for key in ("LUT", "LUT+mem", "FF", "CARRY", "DSP48E2", "BRAM", "LUTRAM"):
            row[key] = t.get(key, 0)
            row[f"{key}/MAC"] = t.get(key, 0) / macs
        rows.append(row)
    return rows


def format_rows(rows) -> str:
    head = (f"{'mode':8} {'MAC/cyc':>8} {'LUT':>8} {'LUT+mem':>8} {'FF':>8} {'LUTRAM':>6} "
            f"{'CARRY':>6} {'DSP':>5} {'BRAM':>5} {'LUT/MAC':>8} {'LUT+mem/MAC':>11} "
            f"{'FF/MAC':>7} {'DSP/MAC':>8}")
    lines = [head]
    for r in rows:
        lines.append(f"{r['mode']:8} {r['macs_per_cycle']:>8.0f} {r['LUT']:>8.0f} "
                     f"{r['LUT+mem']:>8.0f} {r['FF']:>8.0f} {r['LUTRAM']:>6.0f} "
                     f"{r['CARRY']:>6.0f} {r['DSP48E2']:>5.0f} {r['BRAM']:>5.1f} "
                     f"{r['LUT/MAC']:>8.2f} {r['LUT+mem/MAC']:>11.2f} {r['FF/MAC']:>7.2f} "
                     f"{r['DSP48E2/MAC']:>8.3f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    """``python -m plait.rtl.lut_core [FIELD=VALUE ...]``: the yosys resource table of
    the LUT core for W1, W2 and W4 builds (A8)."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    base = LutCoreConfig.from_overrides(args)
    print(f"LUT tensor core {base.m}x{base.n}x{base.k}, max_group={base.max_group}, "
          f"dq_lanes={base.dq_lanes} (yosys synth_xilinx, xcup)")
    print(format_rows(resource_rows(base=base)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
