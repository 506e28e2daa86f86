// dsp_chain -- the sparse DSP chain engine (after FlightLLM, FPGA'24).
//
// N_DSP DSP48E2 slices (dsp_slice: the DSP48E2 primitive in synthesis, the same
// pipeline in behavioural form in simulation), cut into cascade groups of CASCADE
// slices (dedicated PCOUT -> PCIN path; at each group end the reduction node reads
// the two lanes as bit fields of P, biased by the group's first slice so that the
// lower lane never borrows: dsp_lane_adjust), each slice packing two int8 MACs (two
// token rows) that share one weight (the DSP's pre-adder packs the two activation
// lanes).  A
// sparse MUX in front of each slice selects its activation by the stored N:M index;
// the weight is widened from 2/3/4/8-bit codes.  The extracted lanes of the groups
// are added by a registered binary tree (the reconfigurable links between groups);
// tree level log2(N / CASCADE) holds the per-row beat sums of mode N:M, and a row
// accumulator (ACC_W bits) sums them over a quantization group.
//
// Dataflow per beat (one accepted input word): every logical group of N slices
// computes one output row of the current tile on one block of M activations of each
// lane (broadcast to all groups): R = N_DSP / N rows per tile, M inputs of K per
// beat, every slice busy in every mode.  Golden model and formats:
// plait.ir.numerics.dsp (schedule_chain / run_schedule).
//
// Interface (clk, synchronous active-low rst_n):
//   in_valid/in_ready   input stream; a beat moves when both are 1.
//   in_mode  [MODE_W]   mode code dsp_chain_pkg::MODE_DENSE / MODE_2_4 / MODE_2_16 /
//                       MODE_4_16 / MODE_8_16 / MODE_PAIR (runtime, per beat; the
//                       codes are plait.ir.numerics.dsp.CHAIN_MODES).
//                       A beat whose mode differs from the beats in flight waits
//                       (in_ready = 0) until the pipeline has drained.  A mode not
//                       enabled in MODE_MASK is dropped and sets err.
//   in_wbits [WBITS_W]  weight code width: dsp_chain_pkg::WBITS_2 / _3 / _4 / _8
//                       (plait.ir.numerics.dsp.WBITS_CODE).  Not read by a single-width
//                       build (SINGLE_WIDTH: the width SINGLE_WIDTH_CODE only, its widening
//                       wired without a select).
//   in_last             last beat of a quantization group (emit and clear the rows).
//   in_act   [2*M_MAX*8] lane l (token row), block position j at [(l*M_MAX+j)*8 +: 8].
//   in_w     [N_DSP*CODE_W] weight code of slice i at [i*CODE_W +: CODE_W] (low wbits used).
//   in_idx   [N_DSP*IDX_W]  sparse index of slice i at [i*IDX_W +: IDX_W] (ignored when dense
//                       and pair; 2:4 reads its two low bits only).
//   out_valid/out_ready output stream, one word per quantization group; a word moves
//                       when both are 1, and stays unchanged until it does (AXI4-Stream
//                       rule).  The group sums wait in an OUT_DEPTH-word FIFO
//                       (distributed RAM); the chain never stalls inside: in_ready holds
//                       back a group's last beat while OUT_DEPTH groups are in flight or
//                       queued (credits), so a full FIFO is never written.  OUT_DEPTH >=
//                       latency + 2 keeps one-beat groups at one beat per clock while
//                       out_ready stays high.
//   out_acc             lane l, row r at [(l*ROWS_MAX + r)*ACC_W +: ACC_W] (signed);
//                       rows >= N_DSP / N of the mode read 0.  It is the FIFO head, read
//                       from the distributed RAM at a registered pointer.
//   out_mode            mode of the beats that produced out_acc.
//   busy                a beat is in flight (in the pipeline; words in the FIFO not).
//   err                 sticky: a beat with an unsupported mode was received.
// Parameters default to the generated dsp_chain_pkg (plait.rtl.dsp_chain.DspChainConfig);
// the mode and weight-width codes are read from the package (fixed encodings).
// Pair mode (decode lane packing, MODE_PAIR, when enabled in MODE_MASK): the two
// lanes of a slice carry two weight rows sharing one activation -- the widened
// weights of code[3:0] / code[7:4] go to the pre-adder (a_lo / a_hi) and the
// lane-0 activation at the dense position to B -- so a batch-1 GEMV keeps both
// lanes busy: 2 * N_DSP / 16 rows per tile, output lane l row r = tile row
// l * N_DSP/16 + r.  Weights of 2..4 bits only: a pair beat with in_wbits = WBITS_8
// is dropped and sets err.  Golden model: plait.ir.numerics.dsp (mode "pair").
// Input register (IN_REG, plait.ir.target.dsp_input_register): a build with an
// operand select in front of the slices (an N:M mode's sparse MUX, pair mode's
// operand swap) registers the beat and the decoded selects first; a dense-only build
// has no select, and the slices' own A2/D/B1 registers take the beat (the widened
// weight) directly: they are its input registers.
// Latency: out_valid rises IN_REG + 2 + CASCADE + level(mode) clock edges after the
// edge that accepted the group's last beat (level(mode) = log2(N / CASCADE)).
module dsp_chain #(
  parameter int N_DSP     = dsp_chain_pkg::N_DSP,
  parameter int CASCADE    = dsp_chain_pkg::CASCADE,
  parameter int LANE_SHIFT = dsp_chain_pkg::LANE_SHIFT,
  parameter int ACC_W      = dsp_chain_pkg::ACC_W,
  parameter int N_GROUPS   = dsp_chain_pkg::N_GROUPS,    // cascade groups
  parameter int LEVELS     = dsp_chain_pkg::LEVELS,      // log2(N_GROUPS)
  parameter int ROWS_MAX   = dsp_chain_pkg::ROWS_MAX,
  parameter int LANE_W     = dsp_chain_pkg::LANE_W,
  parameter int RND        = dsp_chain_pkg::RND,         // lane bias (dsp_lane_adjust.sv)
  parameter int LO_OFF     = dsp_chain_pkg::LO_OFF,      // lower-lane offset per group
  parameter int MODE_MASK  = dsp_chain_pkg::MODE_MASK,   // enabled mode codes (bit per code)
  parameter int SINGLE_WIDTH  = dsp_chain_pkg::SINGLE_WIDTH,   // 1: one weight width only ...
  parameter int SINGLE_WIDTH_CODE = dsp_chain_pkg::SINGLE_WIDTH_CODE,  // ... this one
  parameter int IN_REG     = dsp_chain_pkg::IN_REG,      // fabric input register (0: dense only)
  parameter int P_W        = dsp_chain_pkg::P_W,
  parameter int M_MAX      = dsp_chain_pkg::M_MAX,
  parameter int IDX_W      = dsp_chain_pkg::IDX_W,
  parameter int CODE_W     = dsp_chain_pkg::CODE_W,
  parameter int MODE_W     = dsp_chain_pkg::MODE_W,
  parameter int WBITS_W    = dsp_chain_pkg::WBITS_W,
  parameter int OUT_DEPTH  = dsp_chain_pkg::OUT_DEPTH    // output FIFO words (power of two)
) (
  input  logic                       clk,
  input  logic                       rst_n,
  input  logic                       in_valid,
  output logic                       in_ready,
  input  logic                       in_last,
  input  logic [MODE_W-1:0]          in_mode,
  input  logic [WBITS_W-1:0]         in_wbits,
  input  logic [2*M_MAX*8-1:0]       in_act,
  input  logic [N_DSP*CODE_W-1:0]    in_w,
  input  logic [N_DSP*IDX_W-1:0]     in_idx,
  output logic                       out_valid,
  input  logic                       out_ready,
  output logic [MODE_W-1:0]          out_mode,
  output logic [2*ROWS_MAX*ACC_W-1:0] out_acc,
  output logic                       busy,
  output logic                       err
);
  localparam int C      = CASCADE;
  localparam int SH     = LANE_SHIFT;
  localparam int NG     = N_GROUPS;
  localparam int TREE_W = LANE_W + LEVELS;
  // MODE_EN[code]: mode code enabled in this build
  localparam int EN_W = 1 << MODE_W;
  localparam logic [EN_W-1:0] MODE_EN = EN_W'(MODE_MASK);
  // mode codes at the width of in_mode
  localparam logic [MODE_W-1:0] M_DENSE = MODE_W'(dsp_chain_pkg::MODE_DENSE);
  localparam logic [MODE_W-1:0] M_2_4   = MODE_W'(dsp_chain_pkg::MODE_2_4);
  localparam logic [MODE_W-1:0] M_2_16  = MODE_W'(dsp_chain_pkg::MODE_2_16);
  localparam logic [MODE_W-1:0] M_4_16  = MODE_W'(dsp_chain_pkg::MODE_4_16);
  localparam logic [MODE_W-1:0] M_8_16  = MODE_W'(dsp_chain_pkg::MODE_8_16);
  localparam logic [MODE_W-1:0] M_PAIR  = MODE_W'(dsp_chain_pkg::MODE_PAIR);
  localparam logic [WBITS_W-1:0] WB_8   = WBITS_W'(dsp_chain_pkg::WBITS_8);
  // an int index: yosys 0.23 evaluates MODE_EN[M_PAIR] (a 3-bit localparam of value 5)
  // as x, which silently dropped pair mode from the netlist
  localparam bit EN_PAIR = MODE_EN[dsp_chain_pkg::MODE_PAIR];
  // control pipeline: v[k] = beat accepted k cycles ago; the tree level l of a beat
  // is valid while v[IN_REG + 1 + C + l] is set (the input register if built, the
  // first slice's A2/D/B1 and M registers, C P registers -- level 0 is the bit fields
  // of the last one -- and l tree registers).
  localparam int TAP0     = (IN_REG != 0 ? 2 : 1) + C;
  localparam int DEPTH    = TAP0 + LEVELS + 1;

  // log2(logical group / CASCADE): tree level holding the rows of a mode (modes
  // whose group is shorter than the cascade are masked out by MODE_MASK)
  localparam int LEV_2  = (C <= 2)  ? $clog2(2 / C)  : 0;
  localparam int LEV_4  = (C <= 4)  ? $clog2(4 / C)  : 0;
  localparam int LEV_8  = (C <= 8)  ? $clog2(8 / C)  : 0;
  localparam int LEV_16 = (C <= 16) ? $clog2(16 / C) : 0;

  // ------------------------------------------------------------ input stage
  logic [DEPTH-1:0] v, last;
  logic [MODE_W-1:0] cur_mode;     // mode of the beats in flight
  logic             mode_ok, accept;

  // the beat's weight width: a single-width build's constant (its decode folds away)
  logic [WBITS_W-1:0] wbits;
  if (SINGLE_WIDTH != 0) begin : g_one_width
    assign wbits = WBITS_W'(SINGLE_WIDTH_CODE);
  end else begin : g_wbits
    assign wbits = in_wbits;
  end
  // pair mode holds two codes per slot: 8-bit weights cannot be paired
  assign mode_ok  = MODE_EN[in_mode] && !(EN_PAIR && in_mode == M_PAIR && wbits == WB_8);
  // credits: a group's last beat needs a free output FIFO word (in flight + queued)
  localparam int OD_W = $clog2(OUT_DEPTH);
  logic [OD_W:0] pending;          // groups accepted, their word not yet taken
  logic          room;             // a last beat may enter
  logic          push, pop;        // a group sum enters / a word leaves the output FIFO
  assign room     = pending != (OD_W+1)'(OUT_DEPTH);
  assign in_ready = (!(|v) || (in_mode == cur_mode)) && (room || !in_last);
  assign accept   = in_valid && in_ready;
  assign busy     = |v;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      v        <= '0;
      last     <= '0;
      cur_mode <= M_DENSE;
      err      <= 1'b0;
    end else begin
      v    <= {v[DEPTH-2:0], accept && mode_ok};
      last <= {last[DEPTH-2:0], in_last};
      if (accept) cur_mode <= in_mode;
      if (accept && !mode_ok) err <= 1'b1;
    end
  end

  // per-slice decode (MUX select, weight widening) before the input register (with
  // IN_REG = 0 the decoded operands go to the slices in the beat's own clock)
  logic [2*M_MAX*8-1:0] act_r;
  logic [N_DSP*8-1:0]   wq_r, wq_hi_r;
  logic [N_DSP*IDX_W-1:0] sel_r;
  logic [N_DSP-1:0]     pair_r;    // per slice: this beat is a pair beat

  for (genvar i = 0; i < N_DSP; i++) begin : g_dec
    logic [IDX_W-1:0]  sel;
    logic signed [7:0] wq, wq_hi;
    dsp_operand_decode #(.POS(i), .MODE_MASK(MODE_MASK), .M_MAX(M_MAX), .IDX_W(IDX_W),
                         .CODE_W(CODE_W), .MODE_W(MODE_W), .WBITS_W(WBITS_W)) u_dec (
      .mode(in_mode), .wbits(wbits), .idx(in_idx[i*IDX_W +: IDX_W]),
      .code(in_w[i*CODE_W +: CODE_W]), .sel, .w(wq), .w_hi(wq_hi));
    if (IN_REG != 0) begin : g_reg
      always_ff @(posedge clk) begin
        sel_r[i*IDX_W +: IDX_W] <= sel;
        wq_r[i*8 +: 8]          <= wq;
      end
    end else begin : g_wire
      assign sel_r[i*IDX_W +: IDX_W] = sel;
      assign wq_r[i*8 +: 8]          = wq;
    end
    if (EN_PAIR) begin : g_pair
      // one copy of the pair flag per slice ((* keep *): yosys would merge them; one
      // register would fan out to every slice's operand select)
      (* keep *) always_ff @(posedge clk) begin
        pair_r[i]          <= (in_mode == M_PAIR);
        wq_hi_r[i*8 +: 8]  <= wq_hi;
      end
    end else begin : g_nopair
      assign pair_r[i]         = 1'b0;
      assign wq_hi_r[i*8 +: 8] = '0;
      logic unused_hi;
      assign unused_hi = ^wq_hi;
    end
  end

  if (IN_REG != 0) begin : g_act_reg
    always_ff @(posedge clk) act_r <= in_act;
  end else begin : g_act_wire
    assign act_r = in_act;
  end
`ifndef SYNTHESIS
  // only a dense-only build may leave the input register out (its MUX selects are
  // constants): every other mode's select needs a registered beat
  localparam int DENSE_ONLY = 1 << dsp_chain_pkg::MODE_DENSE;
  initial if (IN_REG == 0 && MODE_MASK != DENSE_ONLY)
    $fatal(1, "dsp_chain: IN_REG = 0 needs a dense-only build (MODE_MASK = %0d)", MODE_MASK);
`endif

  // ------------------------------------------------------------ sparse MUX
  // The MUX outputs go straight into the slices' input registers (A2/D/B1 of the
  // DSP48E2); the pre-adder packs the two lanes.  Pair mode swaps the roles: the two
  // rows' weights into the pre-adder, the lane-0 activation into B.
  logic [N_DSP*8-1:0] a_lo_m, a_hi_m, b_m;

  for (genvar i = 0; i < N_DSP; i++) begin : g_mux
    logic signed [7:0] a_lo, a_hi;
    dsp_sparse_mux #(.M_MAX(M_MAX), .IDX_W(IDX_W)) u_mux (
      .act(act_r), .sel(sel_r[i*IDX_W +: IDX_W]), .a_lo, .a_hi);
    assign a_lo_m[i*8 +: 8] = pair_r[i] ? wq_r[i*8 +: 8]    : a_lo;
    assign a_hi_m[i*8 +: 8] = pair_r[i] ? wq_hi_r[i*8 +: 8] : a_hi;
    assign b_m[i*8 +: 8]    = pair_r[i] ? a_lo              : wq_r[i*8 +: 8];
  end

  // ------------------------------------- cascade groups + reduction nodes
  // tree_q: level l, node n, lane ln at ((l*NG + n)*2 + ln)*TREE_W, sign-extended
  // (level 0: the groups' lanes, bit fields of their last P register; levels >= 1:
  // the registers of g_level below, LANE_W + l bits wide)
  logic [(LEVELS+1)*NG*2*TREE_W-1:0] tree_q;

  for (genvar g = 0; g < NG; g++) begin : g_group
    logic signed [LANE_W-1:0] s_lo, s_hi;
    dsp_cascade_group #(.C(C), .P_W(P_W), .SH(SH), .LANE_W(LANE_W), .RND(RND)) u_group (
      .clk, .a_hi(a_hi_m[g*C*8 +: C*8]), .a_lo(a_lo_m[g*C*8 +: C*8]), .w(b_m[g*C*8 +: C*8]),
      .s_lo, .s_hi);
    assign tree_q[(g*2 + 0)*TREE_W +: TREE_W] = TREE_W'(s_lo);
    assign tree_q[(g*2 + 1)*TREE_W +: TREE_W] = TREE_W'(s_hi);
  end

  // ------------------------- reconfigurable links: registered adder tree
  for (genvar l = 1; l <= LEVELS; l++) begin : g_level
    for (genvar n = 0; n < (NG >> l); n++) begin : g_node
      for (genvar ln = 0; ln < 2; ln++) begin : g_lane
        // exact in LANE_W + l bits: a node sums 2^l groups' lanes
        logic signed [LANE_W+l-1:0] x0, x1, s_r;
        assign x0 = tree_q[(((l-1)*NG + 2*n)     * 2 + ln)*TREE_W +: LANE_W+l];
        assign x1 = tree_q[(((l-1)*NG + 2*n + 1) * 2 + ln)*TREE_W +: LANE_W+l];
        always_ff @(posedge clk) s_r <= x0 + x1;
        assign tree_q[((l*NG + n)*2 + ln)*TREE_W +: TREE_W] = TREE_W'(s_r);
      end
    end
    // nodes n >= NG >> l of level l do not exist
    for (genvar n = (NG >> l); n < NG; n++) begin : g_none
      assign tree_q[((l*NG + n)*2)*TREE_W +: 2*TREE_W] = '0;
    end
  end

  // ------------------------------------------------------ row accumulators
  // lev: tree level of the beats in flight.  Only enabled modes are decoded (a
  // disabled mode never has a valid beat in flight), so a single-mode build has a
  // constant level and no level MUX in front of the accumulators.
  localparam int LEV_ANY = (MODE_EN[M_DENSE] || EN_PAIR) ? LEV_16 :
                           (MODE_EN[M_2_4] || MODE_EN[M_2_16]) ? LEV_2 :
                           MODE_EN[M_4_16] ? LEV_4 : LEV_8;
  int lev;
  always_comb begin
    lev = LEV_ANY;
    if (MODE_EN[M_DENSE] && cur_mode == M_DENSE) lev = LEV_16;
    if (EN_PAIR          && cur_mode == M_PAIR)  lev = LEV_16;
    if (MODE_EN[M_2_4]   && cur_mode == M_2_4)   lev = LEV_2;
    if (MODE_EN[M_2_16]  && cur_mode == M_2_16)  lev = LEV_2;
    if (MODE_EN[M_4_16]  && cur_mode == M_4_16)  lev = LEV_4;
    if (MODE_EN[M_8_16]  && cur_mode == M_8_16)  lev = LEV_8;
  end

  // Accumulator control, registered and replicated (timing: one copy would fan out to
  // every accumulator bit).  v and last are plain shift registers (no stall), so the
  // register of tap TAP0 + lev - 1 holds exactly tap TAP0 + lev: acc_v / acc_last keep
  // their cycle.  cur_mode (hence lev) changes only when no beat is in flight, so the
  // per-row level select may follow it one cycle late: a new mode's first beat
  // reaches the accumulators TAP0 + lev >= 4 cycles after it was accepted (a build of
  // one mode, e.g. dense only with IN_REG = 0, has a constant level).  So the
  // level is registered first (lev_r, and tap_r: the tap of each level, one-hot) and
  // the taps are picked by an AND-OR with tap_r: no mode decode, no index adder and no
  // shifter in front of the accumulator controls (it limited 64-slice chains to
  // ~286 MHz); the per-row level select follows two cycles late.
  localparam int LV_W = (LEVELS < 1) ? 1 : $clog2(LEVELS + 1);   // width of a level
  (* fsm_encoding = "none" *) logic [LV_W-1:0] lev_r;
  (* fsm_encoding = "none" *) logic [LEVELS:0] tap_r;   // tap_r[l]: lev == l
  always_ff @(posedge clk) begin
    lev_r <= LV_W'(lev);
    for (int l = 0; l <= LEVELS; l++) tap_r[l] <= (lev == l);
  end
  logic v_tap, last_tap;           // v / last at tap TAP0 + lev - 1
  assign v_tap    = |(v[TAP0 - 1 +: LEVELS + 1] & tap_r);
  assign last_tap = |(last[TAP0 - 1 +: LEVELS + 1] & tap_r);
  logic unused_last;               // the top tap only keeps |v (busy) company
  assign unused_last = last[DEPTH-1];
  logic acc_v, acc_last;           // the copy for out_valid / out_mode
  always_ff @(posedge clk) begin
    if (!rst_n) acc_v <= 1'b0;
    else        acc_v <= v_tap;
    acc_last <= last_tap;
  end

  logic out_valid_d;              // out_valid of the next cycle
  for (genvar r = 0; r < ROWS_MAX; r++) begin : g_row
    logic [2*ACC_W-1:0] row_sum;   // this row's group sums (lane l at [l*ACC_W +: ACC_W])
    for (genvar ln = 0; ln < 2; ln++) begin : g_lane
      // this row and lane's copies: beat valid, group end and the level select.
      // (* keep *): yosys would merge them.
      logic acc_v_q, acc_last_q;
      (* fsm_encoding = "none" *) logic [LV_W-1:0] lev_q;   // a register, not an FSM
      (* keep *) always_ff @(posedge clk) begin
        if (!rst_n) acc_v_q <= 1'b0;
        else        acc_v_q <= v_tap;
        acc_last_q <= last_tap;
        lev_q <= lev_r;
      end

      logic signed [TREE_W-1:0] x;
      logic signed [ACC_W-1:0]  acc, sum;
      always_comb begin
        x = '0;
        for (int l = 0; l <= LEVELS; l++)
          if (lev_q == LV_W'(l) && r < (NG >> l)) x = tree_q[((l*NG + r)*2 + ln)*TREE_W +: TREE_W];
      end
      if (LO_OFF != 0 && ln == 0) begin : g_lo_off
        // the lower lane's window offset, LO_OFF per cascade group of the row (rows
        // the mode does not have read 0; plait.ir.numerics.dsp.lane_bias: built only
        // where the symmetric window is too small, e.g. a cascade of 8 at LANE_SHIFT 18)
        logic signed [TREE_W-1:0] off;
        always_comb begin
          off = '0;
          for (int l = 0; l <= LEVELS; l++)
            if (r < (NG >> l) && lev_q == LV_W'(l)) off = TREE_W'(LO_OFF << l);
        end
        assign sum = acc + ACC_W'(x) + ACC_W'(off);
      end else begin : g_plain
        assign sum = acc + ACC_W'(x);
      end
      // a group's last beat writes its sum to the output FIFO and clears the
      // accumulator (the flip-flops' synchronous reset), so the adder needs no load
      // select in front of its carry chain (that cost one more LUT per bit)
      always_ff @(posedge clk) begin
        if (!rst_n || (acc_v_q && acc_last_q)) acc <= '0;
        else if (acc_v_q)                      acc <= sum;
      end

      assign row_sum[ln*ACC_W +: ACC_W] = sum;
    end

    // this row's slice of the output FIFO (both lanes): distributed RAM written with
    // the group sums at the tail, read at the head, with its own copies of the two
    // pointers and of out_valid ((* keep *): one copy would fan out to every RAM's
    // address pins); the row's lane-0 controls write it (both lanes' are equal)
    logic [2*ACC_W-1:0] q_mem [OUT_DEPTH];
    logic [OD_W-1:0]    wp_q, rp_q;
    logic               ov_q, push_q, pop_q;
    assign push_q = g_lane[0].acc_v_q && g_lane[0].acc_last_q;
    assign pop_q  = ov_q && out_ready;
    (* keep *) always_ff @(posedge clk) begin
      if (!rst_n) begin
        wp_q <= '0;
        rp_q <= '0;
        ov_q <= 1'b0;
      end else begin
        if (push_q) wp_q <= wp_q + 1'b1;
        if (pop_q)  rp_q <= rp_q + 1'b1;
        ov_q <= out_valid_d;
      end
    end
    always_ff @(posedge clk) begin
      if (push_q) q_mem[wp_q] <= row_sum;
    end
    assign out_acc[r*ACC_W +: ACC_W]              = q_mem[rp_q][0 +: ACC_W];
    assign out_acc[(ROWS_MAX + r)*ACC_W +: ACC_W] = q_mem[rp_q][ACC_W +: ACC_W];
  end

  // ------------------------------------------------------------ output FIFO
  // the master copy of the pointers, the occupancy and the mode of each word
  logic [OD_W-1:0]  wp, rp;
  logic [OD_W:0]    n_out;         // words in the FIFO
  logic [MODE_W-1:0] mode_mem [OUT_DEPTH];
  assign push = acc_v && acc_last;
  assign pop  = out_valid && out_ready;
  // a word next cycle: one arrives, or one stays (not the last one leaving)
  assign out_valid_d = push || (n_out > (OD_W+1)'(1)) || (n_out == (OD_W+1)'(1) && !pop);
  always_ff @(posedge clk) begin
    if (!rst_n) begin
      wp        <= '0;
      rp        <= '0;
      n_out     <= '0;
      out_valid <= 1'b0;
      pending   <= '0;
    end else begin
      if (push) wp <= wp + 1'b1;
      if (pop)  rp <= rp + 1'b1;
      n_out     <= n_out + (OD_W+1)'(push) - (OD_W+1)'(pop);
      out_valid <= out_valid_d;
      pending   <= pending + (OD_W+1)'(accept && mode_ok && in_last) - (OD_W+1)'(pop);
    end
    if (push) mode_mem[wp] <= cur_mode;
  end
  assign out_mode = mode_mem[rp];

`ifndef SYNTHESIS
  // ------------------------------------------------- assertions (simulation only)
  // Stream protocol (AXI4-Stream rule for the source): a beat offered and not taken
  // stays offered, unchanged, until it is taken.
  a_in_hold: assert property (@(posedge clk) disable iff (!rst_n)
      in_valid && !in_ready |=> in_valid && $stable({in_last, in_mode, in_wbits, in_act, in_w, in_idx}))
    else $error("dsp_chain: in_valid dropped or the offered beat changed while in_ready was low");
  // ... and for the output: a word offered and not taken stays offered, unchanged
  a_out_hold: assert property (@(posedge clk) disable iff (!rst_n)
      out_valid && !out_ready |=> out_valid && $stable({out_mode, out_acc}))
    else $error("dsp_chain: out_valid dropped or the output word changed while out_ready was low");
  // the FIFO holds no more words than groups are outstanding (the credits bound
  // those by OUT_DEPTH, a_groups_bound below: so a full FIFO is never written)
  a_fifo_count: assert property (@(posedge clk) disable iff (!rst_n) n_out <= pending)
    else $error("dsp_chain: %0d words in the output FIFO, only %0d groups outstanding",
                n_out, pending);
  // The mode changes only on an empty pipeline (the tree level and the operand
  // decode of the beats in flight follow cur_mode).
  a_mode_drained: assert property (@(posedge clk) disable iff (!rst_n)
      accept && in_mode != cur_mode |-> !(|v))
    else $error("dsp_chain: mode %0d accepted with beats of mode %0d in flight", in_mode, cur_mode);
  // Groups in flight or queued: each accepted last beat of an enabled mode gives
  // exactly one output word; never more than the credits allow, never a word that was
  // not asked for.
  int groups;
  always_ff @(posedge clk) begin
    if (!rst_n) groups <= 0;
    else        groups <= groups + int'(accept && mode_ok && in_last) - int'(pop);
  end
  a_no_spurious_out: assert property (@(posedge clk) disable iff (!rst_n) out_valid |-> groups > 0)
    else $error("dsp_chain: out_valid without a group in flight");
  a_groups_bound: assert property (@(posedge clk) disable iff (!rst_n) groups <= OUT_DEPTH)
    else $error("dsp_chain: %0d groups in flight or queued, more than the %0d credits",
                groups, OUT_DEPTH);
  // The replicated accumulator controls equal the master copy (yosys must not merge
  // them, nothing may make them differ).
  for (genvar r = 0; r < ROWS_MAX; r++) begin : g_chk_row
    for (genvar ln = 0; ln < 2; ln++) begin : g_chk_lane
      a_replica: assert property (@(posedge clk) disable iff (!rst_n)
          g_row[r].g_lane[ln].acc_v_q == acc_v && g_row[r].g_lane[ln].acc_last_q == acc_last)
        else $error("dsp_chain: row %0d lane %0d accumulator control differs from acc_v/acc_last", r, ln);
    end
    a_fifo_replica: assert property (@(posedge clk) disable iff (!rst_n)
        g_row[r].wp_q == wp && g_row[r].rp_q == rp && g_row[r].ov_q == out_valid)
      else $error("dsp_chain: row %0d output FIFO pointers differ from the master copy", r);
  end
  if (EN_PAIR) begin : g_chk_pair
    // every slice sees the same beat type; a pair beat never carries 8-bit codes
    a_pair_replica: assert property (@(posedge clk) disable iff (!rst_n) pair_r == {N_DSP{pair_r[0]}})
      else $error("dsp_chain: the per-slice pair flags differ");
    a_pair_wbits: assert property (@(posedge clk) disable iff (!rst_n)
        accept && mode_ok && in_mode == M_PAIR |-> wbits != WB_8)
      else $error("dsp_chain: a pair beat with 8-bit codes was accepted");
  end
`endif
endmodule
