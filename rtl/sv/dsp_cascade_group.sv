// dsp_cascade_group -- C slices joined by the fixed PCOUT -> PCIN cascade, ended by
// a reduction node (dsp_lane_adjust).  Slice j's operands are skewed by j cycles so
// that its product meets the partial sum arriving on PCIN.  Latency from
// (pk, w) to (s_lo, s_hi): 3 + C cycles (A/B, M, P registers of slice 0, one P
// register per further slice, one in the reduction node).
module dsp_cascade_group #(
  parameter int C      = 2,        // slices in the cascade
  parameter int A_W    = 27,
  parameter int P_W    = 48,
  parameter int SH     = 18,
  parameter int LANE_W = SH + 1,
  parameter int WIN_HI = 131071
) (
  input  logic                     clk,
  input  logic [C*A_W-1:0]         pk,    // packed activation pair per slice
  input  logic [C*8-1:0]           w,     // int8 weight per slice
  output logic signed [LANE_W-1:0] s_lo,  // lane 0 (token row 0) partial sum
  output logic signed [LANE_W-1:0] s_hi   // lane 1 (token row 1) partial sum
);
  logic [C*P_W-1:0] p;

  for (genvar j = 0; j < C; j++) begin : g_slice
    logic [A_W-1:0] a_sk;
    logic [7:0]     w_sk;
    dsp_delay #(.W(A_W), .D(j)) u_skew_a (.clk, .d(pk[j*A_W +: A_W]), .q(a_sk));
    dsp_delay #(.W(8),   .D(j)) u_skew_w (.clk, .d(w[j*8 +: 8]),      .q(w_sk));
    logic signed [P_W-1:0] pcin;
    if (j == 0) begin : g_head
      assign pcin = '0;
    end else begin : g_link
      assign pcin = p[(j-1)*P_W +: P_W];
    end
    logic signed [P_W-1:0] p_j;
    dsp_slice #(.A_W(A_W), .B_W(8), .P_W(P_W), .CASCADE_IN(j != 0)) u_slice (
      .clk, .a(a_sk), .b(w_sk), .pcin(pcin), .p(p_j));
    assign p[j*P_W +: P_W] = p_j;
  end

  dsp_lane_adjust #(.P_W(P_W), .SH(SH), .LANE_W(LANE_W), .WIN_HI(WIN_HI)) u_adjust (
    .clk, .p(p[(C-1)*P_W +: P_W]), .s_lo, .s_hi);
endmodule
