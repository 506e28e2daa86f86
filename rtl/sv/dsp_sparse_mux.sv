// dsp_sparse_mux -- the sparse MUX in front of one slice (combinational): picks the
// slice's activation, both lanes, among the 16 positions of the activation bus by
// the registered select from dsp_operand_decode (N:M index, or the slice's fixed
// position in dense mode).  The two lanes leave separately: the DSP48E2's
// pre-adder packs them ((a_hi << SH) + a_lo, dsp_slice.sv).
//
// Written as a tree of 2:1 selects on the select bits (sel[1:0] within each group
// of 4 positions, sel[3:2] among the groups): a plain 16:1 MUX per activation bit,
// ~5-6 LUTs.  (A variable part-select act[sel*8 +: 8] becomes a bit-level shifter
// that yosys 0.23 maps to several times more LUTs and MUXF7/8/9; mode logic inside
// the select has the same effect, hence the decode before the input register.)
// When the select is constant (dense-only build) the MUX is a wire; when sel[3:2]
// is 0 (2:4-only build) a 4:1 MUX.  Golden model: plait.ir.numerics.dsp.chain_beat.
module dsp_sparse_mux (
  input  logic [2*16*8-1:0] act,    // lane l, position j at [(l*16+j)*8 +: 8]
  input  logic [3:0]        sel,
  output logic signed [7:0] a_lo,   // lane 0 (token row 0)
  output logic signed [7:0] a_hi    // lane 1 (token row 1)
);
  function automatic logic [7:0] mux4(input logic [7:0] d0, input logic [7:0] d1,
                                      input logic [7:0] d2, input logic [7:0] d3,
                                      input logic [1:0] s);
    mux4 = s[1] ? (s[0] ? d3 : d2) : (s[0] ? d1 : d0);
  endfunction

  for (genvar ln = 0; ln < 2; ln++) begin : g_lane
    logic [4*8-1:0] q;            // level 1: one of 4 within each group of 4
    for (genvar g = 0; g < 4; g++) begin : g_quad
      assign q[g*8 +: 8] = mux4(act[(ln*16 + 4*g + 0)*8 +: 8], act[(ln*16 + 4*g + 1)*8 +: 8],
                                act[(ln*16 + 4*g + 2)*8 +: 8], act[(ln*16 + 4*g + 3)*8 +: 8],
                                sel[1:0]);
    end
    logic [7:0] a;                // level 2: one of the 4 groups
    assign a = mux4(q[7:0], q[15:8], q[23:16], q[31:24], sel[3:2]);
    if (ln == 0) begin : g_lo
      assign a_lo = signed'(a);
    end else begin : g_hi
      assign a_hi = signed'(a);
    end
  end
endmodule
