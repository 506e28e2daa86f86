// dsp_lane_adjust -- the reduction node's overflow adjust / lane extraction: bit
// fields, no logic and no register.
//
// The last slice of a cascade group holds P = (S1 << SH) + S0 + RND, where S0, S1 are
// the two lanes' partial dot products (SH = LANE_SHIFT) and RND = 2^(SH-1) - LO_OFF is
// the constant the group's first slice adds (its W-MUX, dsp_slice.sv).  S0 lies in
// the window [LO_OFF - 2^(SH-1), LO_OFF + 2^(SH-1) - 1], so the low field S0 + RND is
// in [0, 2^SH): it never borrows from the upper lane, and
//   s_hi = P[SH +: LANE_W]                          = S1
//   s_lo = low SH bits of P, top bit inverted        = S0 - LO_OFF  (signed)
//          (the low LANE_W bits alone when LANE_W < SH)
// each exact in LANE_W bits (plait.ir.numerics.dsp.lane_bits).  The row accumulators
// add the rows' LO_OFF back (0 unless the symmetric window is too small, e.g. a
// cascade of 8 at SH = 18).  Golden model: plait.ir.numerics.dsp.lane_split.
module dsp_lane_adjust #(
  parameter int P_W    = dsp_chain_pkg::P_W,
  parameter int SH     = dsp_chain_pkg::LANE_SHIFT,  // lane shift
  parameter int LANE_W = dsp_chain_pkg::LANE_W       // width of an extracted lane (signed)
) (
  input  logic signed [P_W-1:0]    p,
  output logic signed [LANE_W-1:0] s_lo,
  output logic signed [LANE_W-1:0] s_hi
);
  // S0 - LO_OFF: the low SH bits, top bit inverted; when the lane is narrower than SH
  // bits, its low LANE_W bits already are the value (the inverted bit is cut off)
  if (LANE_W >= SH) begin : g_flip
    logic signed [SH-1:0] lo;
    assign lo   = {~p[SH-1], p[SH-2:0]};
    assign s_lo = LANE_W'(lo);
  end else begin : g_low
    assign s_lo = p[LANE_W-1:0];
    logic unused_lo;
    assign unused_lo = ^p[SH-1:LANE_W];
  end
  assign s_hi = p[SH +: LANE_W];

  if (P_W > SH + LANE_W) begin : g_unused
    logic unused_p;
    assign unused_p = ^p[P_W-1:SH+LANE_W];
  end
endmodule
