// dsp_cascade_group -- C slices joined by the dedicated PCOUT -> PCIN cascade, ended
// by a reduction node (dsp_lane_adjust).  Slice j's operands are skewed by j cycles
// so that its product meets the partial sum arriving on PCIN.  The first slice's
// Z-MUX selects 0 (CASCADE_IN = 0): the cut between groups.  Latency from
// (a_hi, a_lo, w) to (s_lo, s_hi): 4 + C cycles (A/D/B1, AD/B2, M and P registers of
// slice 0, one P register per further slice, one in the reduction node).
module dsp_cascade_group #(
  parameter int C      = dsp_chain_pkg::CASCADE,   // slices in the cascade
  parameter int P_W    = dsp_chain_pkg::P_W,
  parameter int SH     = dsp_chain_pkg::LANE_SHIFT,
  parameter int LANE_W = SH + 1,
  parameter int WIN_HI = dsp_chain_pkg::WIN_HI
) (
  input  logic                     clk,
  input  logic [C*8-1:0]           a_hi,  // lane 1 activation per slice
  input  logic [C*8-1:0]           a_lo,  // lane 0 activation per slice
  input  logic [C*8-1:0]           w,     // int8 weight per slice
  output logic signed [LANE_W-1:0] s_lo,  // lane 0 (token row 0) partial sum
  output logic signed [LANE_W-1:0] s_hi   // lane 1 (token row 1) partial sum
);
  // pc[j]: PCOUT of slice j; p_last: P of the last slice (to the reduction node)
  logic [C*P_W-1:0]      pc;
  logic signed [P_W-1:0] p_last;

  for (genvar j = 0; j < C; j++) begin : g_slice
    logic [23:0] ops, ops_sk;
    assign ops = {a_hi[j*8 +: 8], a_lo[j*8 +: 8], w[j*8 +: 8]};
    dsp_delay #(.W(24), .D(j)) u_skew (.clk, .d(ops), .q(ops_sk));
    logic signed [P_W-1:0] pcin, p_j, pcout_j;
    if (j == 0) begin : g_head
      assign pcin = '0;
    end else begin : g_link
      assign pcin = pc[(j-1)*P_W +: P_W];
    end
    dsp_slice #(.SH(SH), .P_W(P_W), .CASCADE_IN(j != 0)) u_slice (
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

  dsp_lane_adjust #(.P_W(P_W), .SH(SH), .LANE_W(LANE_W), .WIN_HI(WIN_HI)) u_adjust (
    .clk, .p(p_last), .s_lo, .s_hi);

  if (C > 0) begin : g_unused
    logic unused_pc;
    assign unused_pc = ^pc[(C-1)*P_W +: P_W];   // PCOUT of the last slice: the cut
  end
endmodule
