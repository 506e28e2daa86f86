// dsp_slice -- one DSP48E2-style MAC slice of the sparse DSP chain.
//
//   P = M + (CASCADE_IN ? PCIN : 0),   M = A * B
//
// with the DSP48 pipeline: input registers A/B (AREG = BREG = 1), the multiplier
// register M (MREG = 1) and the output register P (PREG = 1): latency 3 cycles
// from a/b to p.  `pcin` is the previous slice's `p` (the PCOUT -> PCIN cascade of
// the real primitive); the first slice of a cascade group has CASCADE_IN = 0,
// i.e. the Z-MUX selects 0 -- that cut is the reduction node of FlightLLM's chain.
//
// A carries the packed pair of int8 activations (a_hi << LANE_SHIFT) + a_lo,
// B the int8 weight shared by both lanes (see plait.ir.numerics.dsp).
// Written in the multiply/add/register form synthesis tools pack into a DSP
// (yosys' xilinx_dsp folds A/B/M/P registers and the P -> C add into a DSP48E1
// cascade; for xcup it maps the multiplier onto a DSP48E2).  Datapath registers
// have no reset: validity travels in the chain's control pipeline.
module dsp_slice #(
  parameter int A_W        = 27,   // packed activation operand (signed)
  parameter int B_W        = 8,    // weight (signed)
  parameter int P_W        = 48,   // cascade / P path
  parameter bit CASCADE_IN = 1'b1
) (
  input  logic                  clk,
  input  logic signed [A_W-1:0] a,
  input  logic signed [B_W-1:0] b,
  input  logic signed [P_W-1:0] pcin,
  output logic signed [P_W-1:0] p
);
  logic signed [A_W-1:0] a_r;
  logic signed [B_W-1:0] b_r;
  logic signed [P_W-1:0] m_r;

  always_ff @(posedge clk) begin
    a_r <= a;
    b_r <= b;
    m_r <= P_W'(a_r * b_r);
  end

  if (CASCADE_IN) begin : g_cascade
    always_ff @(posedge clk) p <= m_r + pcin;
  end else begin : g_first
    always_ff @(posedge clk) p <= m_r;
    // pcin is unused by the first slice of a cascade group (Z-MUX = 0)
    logic unused_pcin;
    assign unused_pcin = ^pcin;
  end
endmodule
