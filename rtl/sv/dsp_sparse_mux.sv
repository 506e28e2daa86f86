// dsp_sparse_mux -- the operand stage in front of one slice (combinational):
//  * sparse MUX: picks the slice's activation (both lanes) among the M of the
//    current block by its stored index; dense mode: slice POS takes activation
//    POS mod 16; 2:4 mode uses idx[1:0] over activations 0..3;
//  * weight widening: b-bit symmetric code u -> int8 q = u - 2^(b-1)
//    (flip the code's top bit and sign-extend), b in {2, 3, 4, 8};
//  * packing: pk = (a_hi << SH) + a_lo (lane 1 = a_hi, lane 0 = a_lo).
// Golden model: plait.ir.numerics.dsp (widen_code, dsp_pack, chain_beat).
module dsp_sparse_mux #(
  parameter int POS = 0,            // slice number in the chain
  parameter int SH  = 18,           // lane shift
  parameter int A_W = SH + 9
) (
  input  logic [2:0]           mode,   // 0 dense, 1 2:4, 2 2:16, 3 4:16, 4 8:16
  input  logic [1:0]           wbits,  // 0: 2-bit, 1: 3-bit, 2: 4-bit, 3: 8-bit codes
  input  logic [2*16*8-1:0]    act,    // lane l, position j at [(l*16+j)*8 +: 8]
  input  logic [7:0]           code,
  input  logic [3:0]           idx,
  output logic signed [A_W-1:0] pk,
  output logic signed [7:0]     w
);
  localparam logic [3:0] DENSE_SEL = 4'(POS % 16);
  logic [3:0]        sel;
  logic signed [7:0] a_lo, a_hi;

  always_comb begin
    case (mode)
      3'd0:    sel = DENSE_SEL;
      3'd1:    sel = {2'b00, idx[1:0]};
      default: sel = idx;
    endcase
  end

  assign a_lo = act[{1'b0, sel} * 8 +: 8];
  assign a_hi = act[({1'b0, sel} + 5'd16) * 8 +: 8];

  always_comb begin
    case (wbits)
      2'd0:    w = {{7{~code[1]}}, code[0]};
      2'd1:    w = {{6{~code[2]}}, code[1:0]};
      2'd2:    w = {{5{~code[3]}}, code[2:0]};
      default: w = {~code[7], code[6:0]};
    endcase
  end

  assign pk = (A_W'(a_hi) <<< SH) + A_W'(a_lo);
endmodule
