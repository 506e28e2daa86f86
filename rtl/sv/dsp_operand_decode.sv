// dsp_operand_decode -- per-slice decode of the incoming beat, in front of the chain's
// input register (combinational):
//  * MUX select: dense mode: slice POS takes activation POS mod 16; 2:4 mode:
//    idx[1:0] (activations 0..3); N:16 modes: idx.  Modes not enabled in
//    MODE_MASK (their beats are dropped by the chain) are left out, so a dense-only
//    build has a constant select and a 2:4-only build a 2-bit one;
//  * weight widening: b-bit symmetric code u -> int8 q = u - 2^(b-1)
//    (flip the code's top bit and sign-extend), b in {2, 3, 4, 8}.
// Decoding before the register gives the sparse MUX (dsp_sparse_mux) a clean
// registered 4-bit select (no mode logic inside the MUX's LUTs) at no FF cost.
// Golden model: plait.ir.numerics.dsp (widen_code, chain_beat).
module dsp_operand_decode #(
  parameter int         POS       = 0,       // slice number in the chain
  parameter logic [7:0] MODE_MASK = 8'h1f    // enabled mode codes (dsp_chain_pkg)
) (
  input  logic [2:0]        mode,   // 0 dense, 1 2:4, 2 2:16, 3 4:16, 4 8:16
  input  logic [1:0]        wbits,  // 0: 2-bit, 1: 3-bit, 2: 4-bit, 3: 8-bit codes
  input  logic [3:0]        idx,    // stored sparse index
  input  logic [7:0]        code,   // weight code
  output logic [3:0]        sel,    // activation position for the sparse MUX
  output logic signed [7:0] w       // widened int8 weight
);
  localparam logic [3:0] DENSE_SEL = 4'(POS % 16);
  localparam bit EN_DENSE = MODE_MASK[0];
  localparam bit EN_24    = MODE_MASK[1];
  localparam bit EN_N16   = |MODE_MASK[4:2];

  always_comb begin
    // N:16 modes use the full index; without them, 2:4 (or dense) is the fallback
    if (EN_N16)     sel = idx;
    else if (EN_24) sel = {2'b00, idx[1:0]};
    else            sel = DENSE_SEL;
    if (EN_DENSE && mode == 3'd0) sel = DENSE_SEL;
    if (EN_24 && mode == 3'd1)    sel = {2'b00, idx[1:0]};
  end

  always_comb begin
    case (wbits)
      2'd0:    w = {{7{~code[1]}}, code[0]};
      2'd1:    w = {{6{~code[2]}}, code[1:0]};
      2'd2:    w = {{5{~code[3]}}, code[2:0]};
      default: w = {~code[7], code[6:0]};
    endcase
  end
endmodule
