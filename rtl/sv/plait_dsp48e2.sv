// plait_dsp48e2 -- the one instance of the Xilinx DSP48E2 primitive the engines use
// (dsp_slice.sv in the DSP chain; lut_dq_mac.sv and the z' X multiplier of the LUT
// core's dequantizer), with what they share fixed: direct A/B inputs, the multiplier
// on, ALUMODE 0000 (Z + W + X + Y), no carry input, no pattern detect, no register on
// C or on the control ports (OPMODE / INMODE act in the clock they are driven), every
// clock enable high and every reset low (the engines reset their control state, never
// a DSP register).  The caller picks the register stages, the multiplier's A input (A
// or the pre-adder AD), the W-MUX constant RND, and drives INMODE and OPMODE.  P_W is
// the caller's package P width (the contract's P, which is the DSP48E2's 48-bit P).
//
// Only with `PLAIT_DSP_PRIMITIVE (plait.rtl.synth defines it on the DSP48E2 families;
// simulated with -DPLAIT_DSP_PRIMITIVE and the UG579 model dsp_model_dsp48e2.sv).
`ifdef PLAIT_DSP_PRIMITIVE
module plait_dsp48e2 #(
  parameter int             P_W,
  parameter                 AMULTSEL = "A",
  parameter int             AREG     = 1,
  parameter int             BREG     = 1,
  parameter int             DREG     = 0,
  parameter int             ADREG    = 0,
  parameter int             MREG     = 0,
  parameter int             PREG     = 1,
  parameter logic [P_W-1:0] RND      = '0
) (
  input  logic           clk,
  input  logic [29:0]    a,
  input  logic [17:0]    b,
  input  logic [P_W-1:0] c,
  input  logic [26:0]    d,
  input  logic [P_W-1:0] pcin,
  input  logic [4:0]     inmode,
  input  logic [8:0]     opmode,
  output logic [P_W-1:0] p,
  output logic [P_W-1:0] pcout
);
  /* verilator lint_off PINCONNECTEMPTY */
  DSP48E2 #(
    .A_INPUT("DIRECT"), .B_INPUT("DIRECT"), .AMULTSEL(AMULTSEL), .BMULTSEL("B"),
    .PREADDINSEL("A"), .USE_MULT("MULTIPLY"), .USE_SIMD("ONE48"),
    .USE_PATTERN_DETECT("NO_PATDET"), .RND(RND),
    .AREG(AREG), .ACASCREG(AREG), .BREG(BREG), .BCASCREG(BREG), .DREG(DREG),
    .ADREG(ADREG), .MREG(MREG), .PREG(PREG), .CREG(0), .INMODEREG(0), .OPMODEREG(0),
    .ALUMODEREG(0), .CARRYINREG(0), .CARRYINSELREG(0)
  ) u_dsp (
    .CLK(clk),
    .A(a), .B(b), .C(c), .D(d), .PCIN(pcin),
    .ACIN(30'd0), .BCIN(18'd0), .CARRYCASCIN(1'b0), .MULTSIGNIN(1'b0),
    .INMODE(inmode), .OPMODE(opmode), .ALUMODE(4'b0000),
    .CARRYIN(1'b0), .CARRYINSEL(3'b000),
    .CEA1(1'b1), .CEA2(1'b1), .CEB1(1'b1), .CEB2(1'b1), .CED(1'b1), .CEAD(1'b1),
    .CEM(1'b1), .CEP(1'b1), .CEC(1'b0), .CECTRL(1'b1), .CEINMODE(1'b1),
    .CEALUMODE(1'b1), .CECARRYIN(1'b1),
    .RSTA(1'b0), .RSTB(1'b0), .RSTC(1'b0), .RSTD(1'b0), .RSTM(1'b0), .RSTP(1'b0),
    .RSTCTRL(1'b0), .RSTINMODE(1'b0), .RSTALUMODE(1'b0), .RSTALLCARRYIN(1'b0),
    .P(p), .PCOUT(pcout),
    .ACOUT(), .BCOUT(), .CARRYCASCOUT(), .CARRYOUT(), .MULTSIGNOUT(), .OVERFLOW(),
    .UNDERFLOW(), .PATTERNDETECT(), .PATTERNBDETECT(), .XOROUT()
  );
  /* verilator lint_on PINCONNECTEMPTY */
endmodule : plait_dsp48e2
`endif
