"""The numeric contract of plait: the single executable definition of every
hardware operation's integer arithmetic (see DESIGN.md, "One numeric contract").

RTL, HLS C++ and the runtime's exact mode reproduce these functions bit for bit;
tests compare integers with equality.  Submodules:

* :mod:`.common` -- shared formats: int8 activations, quantized weight codes,
  fixed-point group scales, per-group dequantization, requantization, rounding.
* :mod:`.dsp`    -- the sparse DSP chain (packed int8 lanes, N:M sparse MUX).
* :mod:`.lut`    -- the LUT tensor core (symmetrized tables, bit-serial planes).
"""
from .common import (  # noqa: F401
    INT8_MAX, INT8_MIN, MAX_K, MULT_BITS, P_BITS, SCALE_BITS, SCHEMES, WEIGHT_BITS,
    NumericsError, QuantizedWeight, as_int, check_fits, dequant_groups, dequantize,
    encode_multiplier, encode_scales, group_accumulate, linear_int, quantize_act,
    quantize_rtn, requantize, rshift_round, sat, sat8, signed_range, signed_weight, wrap,
)
