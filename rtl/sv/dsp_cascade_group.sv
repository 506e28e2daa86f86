// dsp_cascade_group -- C slices joined by the dedicated PCOUT -> PCIN cascade, ended
// by a reduction node (dsp_lane_adjust: bit fields of the last P).  The first slice
// runs without its AD register (PREADD_REG = 0: latency 3, dsp_slice.sv), the others
// with it (latency 4), so slice j >= 1's operands are skewed by j - 1 cycles for its
// product to meet the partial sum arriving on PCIN: a cascade of 2 has no skew
// register.  The first slice's Z-MUX selects 0 (CASCADE_IN = 0): the cut between
// groups; its W-MUX adds the lane bias RND (dsp_lane_adjust.sv).  Latency from
// (a_hi, a_lo, w) to (s_lo, s_hi): 2 + C cycles (A/D/B1, M and P registers of slice
// 0, one P register per further slice).
// Where the lane bias is added: inside the first slice (W-MUX = RND), except where
// yosys infers the DSPs from behavioural slices (the 7-series / Spartan-6 families, or
// PLAIT_DSP_BEHAVIOURAL): there dsp_slice.sv defines PLAIT_DSP_BIAS_IN_FABRIC and the
// group's P gets the bias in fabric (an adder per group).
module dsp_cascade_group #(
  parameter int C      = dsp_chain_pkg::CASCADE,   // slices in the cascade
  parameter int P_W    = dsp_chain_pkg::P_W,
  parameter int SH     = dsp_chain_pkg::LANE_SHIFT,
  parameter int LANE_W = dsp_chain_pkg::LANE_W,
  parameter int RND    = dsp_chain_pkg::RND        // lane bias, added by the first slice
) (
  input  logic                     clk,
  input  logic [C*8-1:0]           a_hi,  // lane 1 activation per slice
  input  logic [C*8-1:0]           a_lo,  // lane 0 activation per slice
  input  logic [C*8-1:0]           w,     // int8 weight per slice
  output logic signed [LANE_W-1:0] s_lo,  // lane 0 (token row 0) partial sum
  output logic signed [LANE_W-1:0] s_hi   // lane 1 (token row 1) partial sum
);
`ifdef PLAIT_DSP_BIAS_IN_FABRIC
  localparam int RND_DSP = 0;
`else
  localparam int RND_DSP = RND;
`endif
  // pc[j]: PCOUT of slice j; p_last: P of the last slice (to the reduction node)
  logic [C*P_W-1:0]      pc;
  logic signed [P_W-1:0] p_last;

  for (genvar j = 0; j < C; j++) begin : g_slice
    logic [23:0] ops, ops_sk;
    assign ops = {a_hi[j*8 +: 8], a_lo[j*8 +: 8], w[j*8 +: 8]};
    dsp_delay #(.W(24), .D(j == 0 ? 0 : j - 1)) u_skew (.clk, .d(ops), .q(ops_sk));
    logic signed [P_W-1:0] pcin, p_j, pcout_j;
    if (j == 0) begin : g_head
      assign pcin = '0;
    end else begin : g_link
      assign pcin = pc[(j-1)*P_W +: P_W];
    end
    dsp_slice #(.SH(SH), .P_W(P_W), .CASCADE_IN(j != 0), .RND(RND_DSP),
                .PREADD_REG(j != 0)) u_slice (
      .clk, .a_hi(ops_sk[23:16]), .a_lo(ops_sk[15:8]), .b(ops_sk[7:0]), .pcin,
      .p(p_j), .pcout(pcout_j));
    assign pc[j*P_W +: P_W] = pcout_j;
    if (j == C - 1) begin : g_last
      assign p_last = p_j;
    end else begin : g_mid
      // only the last slice's P leaves the cascade (the others feed PCOUT -> PCIN)
      logic unused_p;
      assign unused_p = ^p_j;
    end
  end

  // the bias not added inside the slice (0 unless PLAIT_DSP_BIAS_IN_FABRIC)
  logic signed [P_W-1:0] p_biased;
  assign p_biased = p_last + P_W'(RND - RND_DSP);
  dsp_lane_adjust #(.P_W(P_W), .SH(SH), .LANE_W(LANE_W)) u_adjust (.p(p_biased), .s_lo, .s_hi);

  if (C > 0) begin : g_unused
    logic unused_pc;
    assign unused_pc = ^pc[(C-1)*P_W +: P_W];   // PCOUT of the last slice: the cut
  end
endmodule
