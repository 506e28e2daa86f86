// dsp_lane_adjust -- the reduction node's overflow adjust / lane extraction.
//
// The last slice of a cascade group holds P = (S1 << SH) + S0 where S0, S1 are the
// two lanes' partial dot products (SH = LANE_SHIFT).  The lower lane has only SH
// bits and its sign borrows from the upper lane.  S0 is decoded from the low SH
// bits in the window [WIN_HI - 2^SH + 1, WIN_HI] (not the symmetric two's-complement
// window: a cascade of c slices gives S0 in [-16256 c, 16384 c]), and the borrow
// corrects the upper lane:
//   borrow = P[SH-1:0] > WIN_HI
//   s_lo   = P[SH-1:0] - borrow * 2^SH
//   s_hi   = (P >>> SH) + borrow
// Golden model: plait.ir.numerics.dsp.overflow_adjust.  One register stage.
module dsp_lane_adjust #(
  parameter int P_W    = dsp_chain_pkg::P_W,
  parameter int SH     = dsp_chain_pkg::LANE_SHIFT,  // lane shift
  parameter int LANE_W = SH + 1,                     // width of an extracted lane (signed)
  parameter int WIN_HI = dsp_chain_pkg::WIN_HI       // top of the lower lane's decoding window
) (
  input  logic                     clk,
  input  logic signed [P_W-1:0]    p,
  output logic signed [LANE_W-1:0] s_lo,
  output logic signed [LANE_W-1:0] s_hi
);
  logic [SH-1:0]            lo_u;
  logic                     borrow;
  logic signed [LANE_W-1:0] p_hi;

  assign lo_u   = p[SH-1:0];
  assign borrow = {1'b0, lo_u} > (SH+1)'(WIN_HI);
  // P >>> SH, truncated: exact because |S1| < 2^SH (checked by the config)
  assign p_hi   = p[SH +: LANE_W];

  // upper-lane borrow correction: both candidates in parallel, the borrow (the carry out
  // of the window compare) only selects -- the compare and the increment are two carry
  // chains side by side instead of one after the other (timing)
  logic signed [LANE_W-1:0] p_hi1;
  assign p_hi1 = p_hi + LANE_W'(1);

  always_ff @(posedge clk) begin
    // lo_u - borrow * 2^SH in SH+1 bits is just {borrow, lo_u}
    s_lo <= LANE_W'($signed({borrow, lo_u}));
    s_hi <= borrow ? p_hi1 : p_hi;
  end

  if (P_W > SH + LANE_W) begin : g_unused
    logic unused_p;
    assign unused_p = ^p[P_W-1:SH+LANE_W];
  end
endmodule
