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
// The tree is written for M_MAX = 16 positions (IDX_W = 4 select bits), the block of
// plait.ir.numerics.dsp.M_MAX; other values are refused in simulation.
module dsp_sparse_mux #(
  parameter int M_MAX = dsp_chain_pkg::M_MAX,
  parameter int IDX_W = dsp_chain_pkg::IDX_W
) (
  input  logic [2*M_MAX*8-1:0] act,    // lane l, position j at [(l*M_MAX+j)*8 +: 8]
  input  logic [IDX_W-1:0]     sel,
  output logic signed [7:0]    a_lo,   // lane 0 (token row 0)
  output logic signed [7:0]    a_hi    // lane 1 (token row 1)
);
`ifndef SYNTHESIS
  initial if (M_MAX != 16 || IDX_W != 4)
    $fatal(1, "dsp_sparse_mux: the MUX tree covers 16 positions (M_MAX=%0d IDX_W=%0d)",
           M_MAX, IDX_W);
`endif
  function automatic logic [7:0] mux4(input logic [7:0] d0, input logic [7:0] d1,
                                      input logic [7:0] d2, input logic [7:0] d3,
                                      input logic [1:0] s);
    mux4 = s[1] ? (s[0] ? d3 : d2) : (s[0] ? d1 : d0);
  endfunction

  for (genvar ln = 0; ln < 2; ln++) begin : g_lane
    logic [4*8-1:0] q;            // level 1: one of 4 within each group of 4
    for (genvar g = 0; g < 4; g++) begin : g_quad
      assign q[g*8 +: 8] = mux4(act[(ln*M_MAX + 4*g + 0)*8 +: 8], act[(ln*M_MAX + 4*g + 1)*8 +: 8],
                                act[(ln*M_MAX + 4*g + 2)*8 +: 8], act[(ln*M_MAX + 4*g + 3)*8 +: 8],
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
