// dsp_slice -- one DSP48E2 MAC slice of the sparse DSP chain: two int8 MACs that
// share one weight (see plait.ir.numerics.dsp).
//
//   AD = (a_hi << SH) + a_lo        pre-adder: packs the two activation lanes
//   M  = AD * b                     27 x 18 signed multiplier (b = int8 weight)
//   P  = M + (CASCADE_IN ? PCIN : RND)
//
// Pipeline (the DSP48E2's own registers, latency 4 from a_hi/a_lo/b to p):
//   stage 1  A2 = a_hi << SH (AREG = 1), D = a_lo (DREG = 1), B1 = b
//   stage 2  AD = A2 + D (ADREG = 1),  B2 = B1            (BREG = 2)
//   stage 3  M  = AD * B2 (MREG = 1)
//   stage 4  P  = M + Z + W, Z = PCIN or 0, W = 0 or RND (PREG = 1)
// or, with PREADD_REG = 0 (the first slice of a cascade group), latency 3: no AD
// register, B once (ADREG = 0, BREG = 1), stage 2 M = (A2 + D) * B1 (pre-adder and
// multiplier in one stage, inside the DSP).  The group's further slices then need
// one clock less of operand skew (dsp_cascade_group.sv): the second slice none.
// `pcin` is the previous slice's `pcout` (the dedicated PCOUT -> PCIN cascade);
// the first slice of a cascade group has CASCADE_IN = 0: its Z-MUX selects 0 --
// that cut is FlightLLM's reduction node -- and its W-MUX adds the constant RND, the
// lane bias that lets the reduction node read the two lanes as bit fields
// (dsp_lane_adjust.sv).  Datapath registers have no reset: validity travels in the
// chain's control pipeline.
//
// Two implementations of the same pipeline:
//  * `PLAIT_DSP_PRIMITIVE defined: an instance of the DSP48E2 primitive with
//      A = a_hi << SH (30 bits), D = a_lo, B = b (sign-extended)
//      INMODE  = 5'b00100  A2 into the pre-adder, D enabled, add, B2 to the multiplier
//      OPMODE  = 9'b00_001_01_01 (W = 0, Z = PCIN, Y = X = M) or, first slice of a
//                group, 9'b10_000_01_01 (W = RND, Z = 0)
//      ALUMODE = 4'b0000 (Z + W + X + Y + CIN), CARRYINSEL = 000, CARRYIN = 0
//      AMULTSEL = "AD", AREG = 1, BREG = 1 + PREADD_REG, DREG = MREG = PREG = 1,
//      ADREG = PREADD_REG.
//    plait.rtl.synth defines PLAIT_DSP_PRIMITIVE on the DSP48E2 families (xcup, xcu;
//    the one place that decides it, for every engine's DSP48E2 instances), so
//    `synth_xilinx -family xcup` keeps one DSP48E2 per slice and the PCOUT -> PCIN
//    links (yosys 0.23 packs registers and cascades only for DSP48E1 when it infers).
//    Define PLAIT_DSP_BEHAVIOURAL to synthesize the behavioural form instead; the
//    7-series/Spartan-6 families (no DSP48E2) always get it, and yosys infers DSP48E1
//    cascades from it.
//    The branch is simulated (Verilator) with -DPLAIT_DSP_PRIMITIVE and the model
//    rtl/sv/dsp_model_dsp48e2.sv as an extra source (tests/test_rtl_dsp_chain.py).
//  * otherwise: behavioural registers (the default in Verilator).
// Behavioural slices in synthesis (yosys infers the DSPs): yosys 0.23 infers no
// PCOUT -> PCIN cascade when a group's first slice adds a constant, so the lane bias
// then goes to the group's P in fabric (dsp_cascade_group.sv, read after this file)
// and the slices get RND = 0.
`ifdef SYNTHESIS
`ifndef PLAIT_DSP_PRIMITIVE
`define PLAIT_DSP_BIAS_IN_FABRIC
`endif
`endif
module dsp_slice #(
  parameter int SH         = dsp_chain_pkg::LANE_SHIFT,  // a_hi's weight 2^SH in the packed operand
  parameter int P_W        = dsp_chain_pkg::P_W,         // cascade / P path (the DSP48E2's)
  parameter bit CASCADE_IN = 1'b1,
  parameter int RND        = 0,                           // W-MUX constant (CASCADE_IN = 0)
  parameter bit PREADD_REG = 1'b1                         // AD register (0: latency 3)
) (
  input  logic                  clk,
  input  logic signed [7:0]     a_hi,   // lane 1 (token row 1) activation
  input  logic signed [7:0]     a_lo,   // lane 0 (token row 0) activation
  input  logic signed [7:0]     b,      // int8 weight
  input  logic signed [P_W-1:0] pcin,
  output logic signed [P_W-1:0] p,
  output logic signed [P_W-1:0] pcout
);
  localparam int AD_W = SH + 9;      // packed operand (the DSP48E2 pre-adder has 27 bits)

`ifdef PLAIT_DSP_PRIMITIVE
  localparam logic [8:0] OPMODE = CASCADE_IN ? 9'b00_001_01_01 : 9'b10_000_01_01;
  logic [29:0] a_port;
  logic [26:0] d_port;
  logic [17:0] b_port;
  logic [P_W-1:0] p_port, pcout_port, pcin_port;   // the primitive's 48-bit ports
  assign a_port    = 30'(a_hi) << SH;        // sign-extended, then shifted
  assign d_port    = 27'(a_lo);
  assign b_port    = 18'(b);
  assign pcin_port = pcin;

  plait_dsp48e2 #(.P_W(P_W), .AMULTSEL("AD"), .AREG(1), .BREG(PREADD_REG ? 2 : 1),
                  .DREG(1), .ADREG(PREADD_REG ? 1 : 0), .MREG(1), .PREG(1),
                  .RND(P_W'(RND))) u_dsp (
    .clk, .a(a_port), .b(b_port), .c('0), .d(d_port), .pcin(pcin_port),
    .inmode(5'b00100), .opmode(OPMODE), .p(p_port), .pcout(pcout_port));
  assign p     = signed'(p_port);
  assign pcout = signed'(pcout_port);
`ifndef SYNTHESIS
  // the primitive's P/PCIN/PCOUT/C ports are the contract's P (dsp_chain_pkg::P_W)
  initial if (P_W != dsp_chain_pkg::P_W)
    $fatal(1, "dsp_slice: the DSP48E2 primitive path needs P_W = %0d", dsp_chain_pkg::P_W);
`endif
`else
  logic signed [AD_W-1:0] a2_r, d_r, ad;
  logic signed [7:0]      b1_r, b2;
  logic signed [P_W-1:0]  m_r;

  always_ff @(posedge clk) begin
    a2_r <= AD_W'(a_hi) <<< SH;
    d_r  <= AD_W'(a_lo);
    b1_r <= b;
    m_r  <= P_W'(ad * b2);
  end
  if (PREADD_REG) begin : g_adreg
    logic signed [AD_W-1:0] ad_r;
    logic signed [7:0]      b2_r;
    always_ff @(posedge clk) begin
      ad_r <= a2_r + d_r;                     // pre-adder (27 bits, like the DSP's)
      b2_r <= b1_r;
    end
    assign ad = ad_r;
    assign b2 = b2_r;
  end else begin : g_no_adreg
    assign ad = a2_r + d_r;                   // pre-adder in the multiplier's stage
    assign b2 = b1_r;
  end

  if (CASCADE_IN) begin : g_cascade
    always_ff @(posedge clk) p <= m_r + pcin;
  end else begin : g_first
    always_ff @(posedge clk) p <= m_r + P_W'(RND);
    // pcin is unused by the first slice of a cascade group (Z-MUX = 0)
    logic unused_pcin;
    assign unused_pcin = ^pcin;
  end
  assign pcout = p;
`endif
endmodule
