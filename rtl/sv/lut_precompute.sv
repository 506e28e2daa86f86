// lut_precompute -- table precompute of the LUT tensor core for one group of g=4
// int8 activations (see plait.ir.numerics.lut, "Table precompute").
//
// The full table is T[idx] = sum_k (idx[k] ? +x_k : -x_k) for the 16 indices.  With
// table symmetrization T[~idx] = -T[idx], so only the half with idx[3] = 1 is kept:
//     S[j] = T[8 + j] = x_3 + (j[2] ? x_2 : -x_2) + (j[1] ? x_1 : -x_1) + (j[0] ? x_0 : -x_0)
// S lies in [-512, 511]: exactly TBL_W = 10 bits signed.  S[7] = x_0 + x_1 + x_2 + x_3
// is the chunk sum used by the zero correction.
//
// Adder sharing: two pair sums of the high half (x3 +- x2) and two of the low half
// (x1 +- x0) -- 4 pre-adders -- then one add/sub per entry: 12 adders per table.
// PIPE = 0: purely combinational; PIPE = 1: the four pair sums are registered (one
// clock from x to s; the core uses it as its registered activation input, so the two
// adder levels sit in two clock cycles).  The core registers the table.
module lut_precompute #(
  parameter int ACT_W = lut_core_pkg::ACT_W,
  parameter int TBL_W = lut_core_pkg::TBL_W,
  parameter bit PIPE  = 1'b0
) (
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic               clk,   // used when PIPE = 1
  /* verilator lint_on UNUSEDSIGNAL */
  input  logic [4*ACT_W-1:0] x,     // x_k at [k*ACT_W +: ACT_W], signed
  output logic [8*TBL_W-1:0] s      // S[j] at [j*TBL_W +: TBL_W], signed
);
  logic signed [ACT_W-1:0] x0, x1, x2, x3;
  logic signed [ACT_W:0]   hp_c, hm_c, lp_c, lm_c;
  logic signed [ACT_W:0]   hp, hm, lp, lm;   // x3+x2, x3-x2, x1+x0, x1-x0

  assign x0 = x[0*ACT_W +: ACT_W];
  assign x1 = x[1*ACT_W +: ACT_W];
  assign x2 = x[2*ACT_W +: ACT_W];
  assign x3 = x[3*ACT_W +: ACT_W];

  assign hp_c = {x3[ACT_W-1], x3} + {x2[ACT_W-1], x2};
  assign hm_c = {x3[ACT_W-1], x3} - {x2[ACT_W-1], x2};
  assign lp_c = {x1[ACT_W-1], x1} + {x0[ACT_W-1], x0};
  assign lm_c = {x1[ACT_W-1], x1} - {x0[ACT_W-1], x0};
  if (PIPE) begin : g_reg
    always_ff @(posedge clk) begin
      hp <= hp_c;
      hm <= hm_c;
      lp <= lp_c;
      lm <= lm_c;
    end
  end else begin : g_comb
    assign hp = hp_c;
    assign hm = hm_c;
    assign lp = lp_c;
    assign lm = lm_c;
  end

  // sign-extended to the entry width
  logic signed [TBL_W-1:0] hpe, hme, lpe, lme;
  assign hpe = {{(TBL_W-ACT_W-1){hp[ACT_W]}}, hp};
  assign hme = {{(TBL_W-ACT_W-1){hm[ACT_W]}}, hm};
  assign lpe = {{(TBL_W-ACT_W-1){lp[ACT_W]}}, lp};
  assign lme = {{(TBL_W-ACT_W-1){lm[ACT_W]}}, lm};

  // j[2] selects x3+x2 / x3-x2; j[1:0]: 11 -> +(x1+x0), 10 -> +(x1-x0),
  // 01 -> -(x1-x0), 00 -> -(x1+x0)
  assign s[0*TBL_W +: TBL_W] = hme - lpe;
  assign s[1*TBL_W +: TBL_W] = hme - lme;
  assign s[2*TBL_W +: TBL_W] = hme + lme;
  assign s[3*TBL_W +: TBL_W] = hme + lpe;
  assign s[4*TBL_W +: TBL_W] = hpe - lpe;
  assign s[5*TBL_W +: TBL_W] = hpe - lme;
  assign s[6*TBL_W +: TBL_W] = hpe + lme;
  assign s[7*TBL_W +: TBL_W] = hpe + lpe;
endmodule : lut_precompute
