// lut_lookup -- symmetric table lookup of the LUT tensor core.
//
// The table holds the 8 entries S[j] = T[8 + j] (index bit 3 set).  For a 4-bit
// index (bit k = weight-plane bit of weight k of the group):
//     idx[3] = 1:  L = S[idx[2:0]]
//     idx[3] = 0:  L = T[idx] = -T[~idx] = -S[~idx[2:0]]
// so the top index bit picks the sign and, when negative, the low bits are inverted.
// L lies in [-512, 512]: LK_W = 11 bits signed.  Combinational.
//
// The lookup also exports the stored entry `mag` and `neg` separately: the column
// accumulator folds the negation into its adder (acc + (mag ^ neg) + neg, an
// add/subtract on the carry chain) instead of spending a negator per lookup.
module lut_lookup #(
  parameter int TBL_W = lut_core_pkg::TBL_W,
  parameter int LK_W  = lut_core_pkg::LK_W
) (
  input  logic [8*TBL_W-1:0]    tbl,   // S[j] at [j*TBL_W +: TBL_W]
  input  logic [3:0]            idx,
  output logic signed [LK_W-1:0] val,   // L (reference form)
  output logic signed [TBL_W-1:0] mag,  // S[sel]: L = neg ? -mag : mag
  output logic                    neg
);
  logic [2:0]              sel;
  logic signed [TBL_W-1:0] e;
  logic signed [LK_W-1:0]  ee;

  assign neg = !idx[3];                        // symmetrization: sign from the top bit
  assign sel = idx[2:0] ^ {3{neg}};            // ~idx[2:0] when negative
  always_comb begin                            // 8:1 multiplexer
    e = tbl[0 +: TBL_W];
    for (int j = 1; j < 8; j++)
      if (sel == 3'(j)) e = tbl[j*TBL_W +: TBL_W];
  end
  assign mag = e;
  assign ee  = {{(LK_W-TBL_W){e[TBL_W-1]}}, e};
  assign val = (ee ^ {LK_W{neg}}) + LK_W'(neg);  // conditional two's-complement negate
endmodule : lut_lookup
