// dsp_operand_decode -- per-slice decode of the incoming beat, in front of the chain's
// input register (combinational):
//  * MUX select: dense mode: slice POS takes activation POS mod M_MAX; 2:4 mode:
//    idx[1:0] (activations 0..3); N:16 modes: idx.  Modes not enabled in
//    MODE_MASK (their beats are dropped by the chain) are left out, so a dense-only
//    build has a constant select and a 2:4-only build a 2-bit one;
//  * weight widening: b-bit symmetric code u -> int8 q = u - 2^(b-1)
//    (flip the code's top bit and sign-extend), b in {2, 3, 4, 8};
//  * pair mode (decode lane packing, MODE_PAIR): the dense select, and the code
//    slot carries two rows' codes -- w from code[b-1:0] (as above), w_hi from
//    code[4 +: b] (b <= 4).  Without MODE_PAIR in MODE_MASK w_hi is unused.
// Decoding before the register gives the sparse MUX (dsp_sparse_mux) a clean
// registered select (no mode logic inside the MUX's LUTs) at no FF cost.
// Mode codes (dsp_chain_pkg::MODE_*) and weight-width codes (dsp_chain_pkg::WBITS_*)
// come from the generated package (plait.ir.numerics.dsp MODES / WBITS_CODE).
// Golden model: plait.ir.numerics.dsp (widen_code, chain_beat).
module dsp_operand_decode #(
  parameter int POS       = 0,                          // slice number in the chain
  parameter int MODE_MASK = dsp_chain_pkg::MODE_MASK,   // enabled mode codes (bit per code)
  parameter int M_MAX     = dsp_chain_pkg::M_MAX,
  parameter int IDX_W     = dsp_chain_pkg::IDX_W,
  parameter int CODE_W    = dsp_chain_pkg::CODE_W,      // the 8-bit code is the widest
  parameter int MODE_W    = dsp_chain_pkg::MODE_W,
  parameter int WBITS_W   = dsp_chain_pkg::WBITS_W
) (
  input  logic [MODE_W-1:0]  mode,   // mode code (dsp_chain_pkg::MODE_*)
  input  logic [WBITS_W-1:0] wbits,  // weight-width code (dsp_chain_pkg::WBITS_*)
  input  logic [IDX_W-1:0]   idx,    // stored sparse index
  input  logic [CODE_W-1:0]  code,   // weight code
  output logic [IDX_W-1:0]   sel,    // activation position for the sparse MUX
  output logic signed [7:0]  w,      // widened int8 weight
  output logic signed [7:0]  w_hi    // pair mode: the lane-1 row's widened weight
);
  localparam int EN_W = 1 << MODE_W;
  localparam logic [EN_W-1:0]    MODE_EN = EN_W'(MODE_MASK);
  localparam logic [MODE_W-1:0]  M_DENSE = MODE_W'(dsp_chain_pkg::MODE_DENSE);
  localparam logic [MODE_W-1:0]  M_2_4   = MODE_W'(dsp_chain_pkg::MODE_2_4);
  localparam logic [MODE_W-1:0]  M_2_16  = MODE_W'(dsp_chain_pkg::MODE_2_16);
  localparam logic [MODE_W-1:0]  M_4_16  = MODE_W'(dsp_chain_pkg::MODE_4_16);
  localparam logic [MODE_W-1:0]  M_8_16  = MODE_W'(dsp_chain_pkg::MODE_8_16);
  localparam logic [MODE_W-1:0]  M_PAIR  = MODE_W'(dsp_chain_pkg::MODE_PAIR);
  localparam logic [WBITS_W-1:0] WB_2    = WBITS_W'(dsp_chain_pkg::WBITS_2);
  localparam logic [WBITS_W-1:0] WB_3    = WBITS_W'(dsp_chain_pkg::WBITS_3);
  localparam logic [WBITS_W-1:0] WB_4    = WBITS_W'(dsp_chain_pkg::WBITS_4);
  localparam logic [IDX_W-1:0]   DENSE_SEL = IDX_W'(POS % M_MAX);
  localparam bit EN_DENSE = MODE_EN[M_DENSE];
  localparam bit EN_24    = MODE_EN[M_2_4];
  localparam bit EN_N16   = MODE_EN[M_2_16] | MODE_EN[M_4_16] | MODE_EN[M_8_16];
  // an int index: yosys 0.23 evaluates MODE_EN[M_PAIR] (a 3-bit localparam of value 5)
  // as x, which silently dropped pair mode from the netlist
  localparam bit EN_PAIR  = MODE_EN[dsp_chain_pkg::MODE_PAIR];

  // 2:4 reads the two low index bits only (the upper ones are don't-care on the bus)
  logic [IDX_W-1:0] sel_24;
  assign sel_24 = {{(IDX_W-2){1'b0}}, idx[1:0]};
  always_comb begin
    // N:16 modes use the full index; without them, 2:4 (or dense) is the fallback
    if (EN_N16)     sel = idx;
    else if (EN_24) sel = sel_24;
    else            sel = DENSE_SEL;
    if (EN_DENSE && mode == M_DENSE) sel = DENSE_SEL;
    if (EN_PAIR && mode == M_PAIR)   sel = DENSE_SEL;
    if (EN_24 && mode == M_2_4)      sel = sel_24;
  end

  // the b-bit code u sits in code[b-1:0]; q = u - 2^(b-1): invert bit b-1, sign-extend
  always_comb begin
    case (wbits)
      WB_2:    w = {{7{~code[1]}}, code[0]};
      WB_3:    w = {{6{~code[2]}}, code[1:0]};
      WB_4:    w = {{5{~code[3]}}, code[2:0]};
      default: w = {~code[7], code[6:0]};          // dsp_chain_pkg::WBITS_8
    endcase
  end

  // pair mode: the upper nibble holds the second row's code (WBITS_8 is refused by
  // the chain in pair mode, so the default arm is never used then)
  logic [3:0] hi;
  assign hi = code[7:4];
  always_comb begin
    case (wbits)
      WB_2:    w_hi = {{7{~hi[1]}}, hi[0]};
      WB_3:    w_hi = {{6{~hi[2]}}, hi[1:0]};
      default: w_hi = {{5{~hi[3]}}, hi[2:0]};      // WB_4 (and the refused WB_8)
    endcase
  end
endmodule
