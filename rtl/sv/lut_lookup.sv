// lut_lookup -- symmetric table lookup of the LUT tensor core.
//
// The table holds the 8 entries S[j] = T[8 + j] (index bit 3 set).  For a 4-bit
// index (bit k = weight-plane bit of weight k of the group):
//     idx[3] = 1:  L = S[idx[2:0]]
//     idx[3] = 0:  L = T[idx] = -T[~idx] = -S[~idx[2:0]]
// so the top index bit picks the sign and, when negative, the low bits are inverted.
// Combinational (PIPE = 0, see below).  The core passes its table pre-shifted by the current weight plane
// (entries S << i, TBL_W = 10 + WB_MAX - 1 bits), so val = L << i; with the plain
// 10-bit table L lies in [-512, 512] (LK_W = 11).  LK_W must be TBL_W + 1.
//
// The entry is picked by a plain 8:1 tree of 2:1 selects (two 4:1 halves on sel[1:0],
// then sel[2]): 2 LUT6 + MUXF7 per bit.  (A priority chain `if (sel == j)` or a
// variable part-select maps to several times more LUTs in yosys 0.23.)
// The lookup also exports the stored entry `mag` and `neg` separately: the column
// accumulator folds the negation into its adder (acc + (mag ^ neg) + neg, an
// add/subtract on the carry chain) instead of spending a negator per lookup; `val`
// is the reference form (for waveforms; unused logic is removed by synthesis).
//
// PIPE = 1: the decoded sign and select are registered (idx is then the unregistered
// weight-plane input and the answer comes one clock later; the core's registered
// weight input, decoded before the register so the select reaches the MUX directly).
module lut_lookup #(
  parameter int TBL_W = lut_core_pkg::TBL_W,
  parameter int LK_W  = lut_core_pkg::LK_W,
  parameter bit PIPE  = 1'b0
) (
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic                    clk,   // used when PIPE = 1
  /* verilator lint_on UNUSEDSIGNAL */
  input  logic [8*TBL_W-1:0]    tbl,   // S[j] at [j*TBL_W +: TBL_W]
  input  logic [3:0]            idx,
  output logic signed [LK_W-1:0] val,   // L (reference form)
  output logic signed [TBL_W-1:0] mag,  // S[sel]: L = neg ? -mag : mag
  output logic                    neg
);
  logic [2:0]         sel, sel_d;
  logic               neg_d;
  logic [TBL_W-1:0]   s0, s1, s2, s3, s4, s5, s6, s7, lo, hi;
  logic signed [LK_W-1:0] ee;

  assign neg_d = !idx[3];                      // symmetrization: sign from the top bit
  assign sel_d = idx[2:0] ^ {3{neg_d}};        // ~idx[2:0] when negative
  if (PIPE) begin : g_reg
    always_ff @(posedge clk) begin
      neg <= neg_d;
      sel <= sel_d;
    end
  end else begin : g_comb
    assign neg = neg_d;
    assign sel = sel_d;
  end

  assign s0 = tbl[0*TBL_W +: TBL_W];
  assign s1 = tbl[1*TBL_W +: TBL_W];
  assign s2 = tbl[2*TBL_W +: TBL_W];
  assign s3 = tbl[3*TBL_W +: TBL_W];
  assign s4 = tbl[4*TBL_W +: TBL_W];
  assign s5 = tbl[5*TBL_W +: TBL_W];
  assign s6 = tbl[6*TBL_W +: TBL_W];
  assign s7 = tbl[7*TBL_W +: TBL_W];
  assign lo  = sel[1] ? (sel[0] ? s3 : s2) : (sel[0] ? s1 : s0);
  assign hi  = sel[1] ? (sel[0] ? s7 : s6) : (sel[0] ? s5 : s4);
  assign mag = signed'(sel[2] ? hi : lo);
  assign ee  = {mag[TBL_W-1], mag};
  assign val = (ee ^ {LK_W{neg}}) + LK_W'(neg);  // conditional two's-complement negate
endmodule : lut_lookup
