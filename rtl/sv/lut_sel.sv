// lut_sel -- N:1 multiplexer of W-bit words as a plain binary tree of 2:1 selects
// (combinational), used by the LUT core's group dequantizer to pick the column
// each lane handles in the current step.
//
// The first level selects on s[0], the last on s[L-1] (L = clog2(N) levels), so
// each output bit is an ordinary N:1 MUX (an 8:1 is 2 LUT6 + MUXF7).  A variable part-select
// d[s*W +: W] would instead become a bit-level shifter over the whole vector, which
// yosys 0.23 maps to several times more LUTs and MUXF7/8/9.  Leaves beyond N (N not
// a power of two) are zero; s never selects them.  N = 1: a wire.
module lut_sel #(
  parameter int W  = 8,
  parameter int N  = 2,
  parameter int SW = 1                  // width of s, >= clog2(N)
) (
  input  logic [N*W-1:0] d,             // word t at [t*W +: W]
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic [SW-1:0]  s,             // unused when N = 1
  /* verilator lint_on UNUSEDSIGNAL */
  output logic [W-1:0]   y
);
  localparam int L = (N <= 1) ? 0 : $clog2(N);
  localparam int P = 1 << L;            // leaves (N rounded up to a power of two)

  // level by level, in place: after level lv, word i is the choice among leaves
  // i*2^(lv+1) .. (i+1)*2^(lv+1)-1 made by s[lv:0] (word i is written after words 2i
  // and 2i+1 were read, and later words of the level read only words above 2i+1)
  logic [P*W-1:0] v;
  always_comb begin
    v = '0;
    v[N*W-1:0] = d;
    for (int lv = 0; lv < L; lv++)
      for (int i = 0; i < (P >> (lv + 1)); i++)
        v[i*W +: W] = s[lv] ? v[(2*i + 1)*W +: W] : v[2*i*W +: W];
    y = v[0 +: W];
  end
endmodule : lut_sel
