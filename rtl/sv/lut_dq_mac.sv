// lut_dq_mac -- the LUT core dequantizer lane's last stage as one DSP48E2 primitive:
// P' = A * mant + Z, with its A/B input registers (stage 3 of lut_core's dequantizer)
// and its P register (stage 4); Z chosen per clock:
//   first:        zero (a tile's first group overwrites P);
//   FWD && held:  P itself (the lane has one word, DQ_STEPS = 1, and the previous
//                 step's sum is still in P, not yet written back);
//   otherwise:    the C port (the step's P word, read from the lane's distributed RAM
//                 in the same clock).
// AREG = BREG = 1, MREG = 0, PREG = 1, CREG = 0, OPMODE = {W 00, Z 000 | 010 | 011,
// Y 01, X 01} (OPMODEREG = 0).  Signed a (<= 27 bits), signed b (<= 18).
//
// Only with `PLAIT_DSP_PRIMITIVE (plait.rtl.synth defines it on the DSP48E2 families;
// simulated with -DPLAIT_DSP_PRIMITIVE and the model dsp_model_dsp48e2.sv in
// tests/test_rtl_lut_core.py): lut_core.sv has the behavioural twin (the same
// registers and arithmetic) for every other build.  yosys 0.23 infers neither the
// post-adder with C nor these registers from behavioural code (measured: the 48-bit
// add stayed in fabric behind a combinational multiply, 219 MHz).
`ifdef PLAIT_DSP_PRIMITIVE
module lut_dq_mac #(
  parameter int A_W = 20,
  parameter int B_W = 17,
  parameter int P_W = lut_core_pkg::P_W,      // the contract's P: the DSP48E2's P port
  parameter bit FWD = 1'b0
) (
  input  logic                  clk,
  input  logic signed [A_W-1:0] a,
  input  logic signed [B_W-1:0] b,
  input  logic signed [P_W-1:0] c,
  input  logic                  first,
  input  logic                  held,
  output logic signed [P_W-1:0] p
);
  logic [8:0] opmode;
  assign opmode = {2'b00, first ? 3'b000 : (FWD && held) ? 3'b010 : 3'b011, 4'b0101};
  logic [P_W-1:0] p_port;
  /* verilator lint_off PINCONNECTEMPTY */
  plait_dsp48e2 #(.P_W(P_W), .AREG(1), .BREG(1), .MREG(0), .PREG(1)) u_dsp (
    .clk, .a(30'(a)), .b(18'(b)), .c(c), .d('0), .pcin('0), .inmode(5'b00000),
    .opmode(opmode), .p(p_port), .pcout());
  /* verilator lint_on PINCONNECTEMPTY */
  assign p = signed'(p_port);
endmodule : lut_dq_mac
`endif
