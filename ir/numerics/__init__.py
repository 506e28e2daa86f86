"""The numeric contract of plait: the single executable definition of every
hardware operation's integer arithmetic (see DESIGN.md, "One numeric contract").

RTL, HLS C++ and the runtime's exact mode reproduce these functions bit for bit;
tests compare integers with equality.  Submodules:

* :mod:`.common` -- shared formats: int8 activations, quantized weight codes,
  fixed-point group scales, per-group dequantization, requantization, rounding.
* :mod:`.dsp`    -- the sparse DSP chain (packed int8 lanes, N:M sparse MUX).
* :mod:`.lut`    -- the LUT tensor core (symmetrized tables, bit-serial planes).
* :mod:`.pack`   -- the packed weight formats of the artifact (each engine's beats).
"""
from .common import (  # noqa: F401
    INT8_MAX, INT8_MIN, MAX_K, MULT_BITS, P_BITS, SCALE_BITS, SCHEME_BITS, SCHEMES, WEIGHT_BITS,
    NumericsError, QuantizedWeight, as_int, check_fits, check_format, grid_value, group_grid, round_to_grid, dequant_groups, dequantize,
    encode_multiplier, encode_scales, group_accumulate, linear_int, quantize_act,
    quantize_rtn, requantize, rshift_round, sat, sat8, signed_range, signed_weight, wrap,
)
from .lut import (  # noqa: F401
    LOOKUP_BITS, LUT_ENTRIES, LUT_G, LUT_SCHEMES, LUT_WEIGHT_BITS, TABLE_BITS, ZP_BITS,
    LutTrace, LutWidths, bit_planes, lut_full_table, lut_group_accumulate, lut_linear,
    lut_codes_from_beats, lut_lookup, lut_precompute, lut_trace, lut_weight_beats, lut_widths,
    odd_levels, odd_zero_point, plane_indices,
)
from .dsp import (  # noqa: F401,E402
    DSP_WEIGHT_BITS, MODES as DSP_MODES, ChainSchedule, DspMode, chain_beat, chain_weight_beats,
    chain_weight_from_beats, compress_nm,
    decompress_nm, dsp_cascade, dsp_pack, dsp_weight_codes, encode_weight_codes,
    lane_bias, lane_bits, lane_split, overflow_adjust, parse_mode, prune_nm, run_chain,
    run_schedule, schedule_chain,
    widen_code,
)
