// lut_core -- LUT tensor core (after LUT Tensor Core, ISCA'25; T-MAC; MixPE).
//
// Computes, for one output tile, P[m][n] = sum_g A[m][n][g] * mant[n][g] where
// A[m][n][g] = sum_{k in group g} q[n][k] * x[m][k] is the contract's exact group
// integer (plait.ir.numerics.lut documents every step; the golden model
// plait.ir.numerics.lut.lut_trace reproduces every register of this module).
//
// Elongated tile M x N x K (default 2 x 64 x 4, from lut_core_pkg):
//   * one table (8 stored entries, symmetrized) per activation row and chunk of
//     K = g = 4 activations (lut_precompute), registered in the table stage;
//   * M x N lookup units (lut_lookup): each cycle every column presents the 4 bits of
//     one weight bit-plane of its 4 weights, every row's table answers all N columns;
//   * bit-serial over planes, LSB first: the column accumulator adds L << plane;
//     b cycles per chunk for b-bit weights (1..4 at run time; ternary = 2 planes);
//   * per quantization group (cfg_group_chunks chunks) the odd-grid sum A' and the
//     row's activation sum X (= sum of the table entries S[7]) are handed to the
//     dequantizer, which runs in the background, DQ_L columns x M rows per cycle:
//         offset mode (sym/asym/ternary):  A = (A' - z' * X) >>> 1   (exact)
//         odd mode:                        A = A'
//         P += A * mant                    (MixPE: once per group, never per weight)
//     The group totals wait in holding registers and P of each row and lane is a
//     small distributed RAM (N/DQ_L words), so only M*DQ_L multiply-accumulates (in
//     DSP48E2s) exist and P takes no flip-flops; a group end
//     stalls the lookup array only if the previous group is still being dequantized
//     (groups shorter than N/DQ_L cycles).
//   * after cfg_groups groups the tile's P (P_W = 48 bits each) leaves on o_* in
//     N/DQ_L beats of M*DQ_L words.
//   * pipelined for an estimated 300 MHz (plait.rtl.timing): the handshake control
//     decides from the ports, the datapath follows one clock later from registered
//     inputs (the precompute's pair sums, the lookups' decoded select and sign; the s
//     words load the dequantizer's holding registers straight from the port) and
//     replicated copies of every control decision; the dequantizer is a
//     4-stage pipeline.  o_valid rises plait.ir.target.LUT_PIPE = 5 clocks later than
//     without it (the cycle models include it); the arithmetic is unchanged.
//
// Streams (valid/ready, a word moves when valid && ready at a rising edge):
//   a: one chunk of activations per beat, a_data[(m*4 + k)*8 +: 8] = x[m][4c + k].
//   w: one weight bit-plane of one chunk per beat, planes 0..b-1 of chunk 0, then
//      of chunk 1, ...: w_data[n*IDX_W + k] = bit i of code u[n][4c + k] (IDX_W = 4).
//   s: the group's parameters, consumed together with the group's last w beat:
//      s_mant[n*MANT_W +: MANT_W] (unsigned mantissa), s_zp[n*ZP_W +: ZP_W] (signed
//      z' = 2z+1-2^b; ignored in odd mode).
//   o: DQ_STEPS = N/DQ_L beats per tile, o_last on the last: beat t carries
//      o_p[(m*DQ_L + l)*P_W +: P_W] = signed P[m][t*DQ_L + l]; each beat is held until
//      o_ready.
// Run-time configuration (hold stable while a tile is in flight):
//   cfg_bits 1..WB_MAX, cfg_offset (1: zero correction + halving), cfg_group_chunks
//   (G/4, 1..MAX_GROUP/4), cfg_groups (groups per tile, >= 1).  An illegal value
//   raises cfg_err and the core accepts nothing.
// Reset: synchronous, active low; only control state is reset.
module lut_core #(
  parameter int M        = lut_core_pkg::M,
  parameter int N        = lut_core_pkg::N,
  parameter int ACT_W    = lut_core_pkg::ACT_W,
  parameter int TBL_W    = lut_core_pkg::TBL_W,
  parameter int LK_W     = lut_core_pkg::LK_W,
  parameter int WB_MAX   = lut_core_pkg::WB_MAX,
  parameter int ACC_W    = lut_core_pkg::ACC_W,
  parameter int XS_W     = lut_core_pkg::XS_W,
  parameter int CORR_W   = lut_core_pkg::CORR_W,
  parameter int GRP_W    = lut_core_pkg::GRP_W,
  parameter int P_W      = lut_core_pkg::P_W,
  parameter int MANT_W   = lut_core_pkg::MANT_W,
  parameter int ZP_W     = lut_core_pkg::ZP_W,
  parameter int IDX_W    = lut_core_pkg::IDX_W,
  parameter int MAX_GC   = lut_core_pkg::MAX_CHUNKS,
  parameter int GC_W     = lut_core_pkg::GC_W,
  parameter int CNT_W    = lut_core_pkg::CNT_W,
  parameter int DQ_L     = lut_core_pkg::DQ_LANES,
  parameter int DQ_STEPS = lut_core_pkg::DQ_STEPS,
  parameter int DQS_W    = lut_core_pkg::DQS_W
) (
  input  logic                    clk,
  input  logic                    rst_n,
  // run-time configuration
  input  logic [2:0]              cfg_bits,
  input  logic                    cfg_offset,
  input  logic [GC_W-1:0]         cfg_group_chunks,
  input  logic [CNT_W-1:0]        cfg_groups,
  output logic                    cfg_err,
  // activations
  input  logic                    a_valid,
  output logic                    a_ready,
  input  logic [M*4*ACT_W-1:0]    a_data,
  // weight bit-planes
  input  logic                    w_valid,
  output logic                    w_ready,
  input  logic [N*IDX_W-1:0]      w_data,
  // group parameters
  input  logic                    s_valid,
  output logic                    s_ready,
  input  logic [N*MANT_W-1:0]     s_mant,
  input  logic [N*ZP_W-1:0]       s_zp,
  // dequantized tile
  output logic                    o_valid,
  input  logic                    o_ready,
  output logic                    o_last,
  output logic [M*DQ_L*P_W-1:0]   o_p
);
  // ------------------------------------------------------------------ control
  // The table register of each row is a shift register: loaded with S at a new chunk
  // and doubled after every plane, so during plane i it holds S << i (the plane weight
  // 2^i is applied once per row, not by a shifter in each of the N columns).  Its
  // entries are SH_W = TBL_W + WB_MAX - 1 bits (a W1 build never shifts).
  localparam int SH_W = TBL_W + WB_MAX - 1;
  logic                  tbl_valid;
  /* verilator lint_off UNUSEDSIGNAL */
  logic                  tbl_shift;     // unused in a W1 build (one plane)
  /* verilator lint_on UNUSEDSIGNAL */
  logic [M*8*SH_W-1:0]   tbl;
  logic [M*TBL_W-1:0]    s7_r;          // S[7] = sum of the chunk's 4 activations, per row
  /* verilator lint_off UNUSEDSIGNAL */
  logic [2:0]            plane;         // the plane in flight (plane_p1 decides; waveforms)
  /* verilator lint_on UNUSEDSIGNAL */
  logic [GC_W-1:0]       chunk;
  logic [CNT_W-1:0]      group;

  logic plane_last, chunk_last, group_last, grp_end;
  logic a_fire, w_fire;
  logic dq_busy, dq_first, dq_last, dq_done, dq_free, dq_start;
  logic out_hold;           // the tile's last group is being dequantized, or P waits for o_ready
  logic [DQS_W-1:0] dq_step;
  logic [DQS_W-1:0] o_t;    // the output beat presented

  assign cfg_err = (cfg_bits == 3'd0) || (32'(cfg_bits) > WB_MAX) ||
                   (cfg_group_chunks == '0) || (32'(cfg_group_chunks) > MAX_GC) ||
                   (cfg_groups == '0);

  // x == cfg - 1 written as x + 1 == cfg with x + 1 held in a register (the same in
  // modular arithmetic): the configuration ports meet an equality, not a subtract
  logic [2:0]       plane_p1;
  logic [GC_W-1:0]  chunk_p1;
  logic [CNT_W-1:0] group_p1;
  assign plane_last = (plane_p1 == cfg_bits);
  assign chunk_last = (chunk_p1 == cfg_group_chunks);
  assign group_last = (group_p1 == cfg_groups);
  assign grp_end    = plane_last && chunk_last;

  // The dequantizer takes a new group when idle or in its last step; the first group
  // of a tile overwrites P, so it also waits until the previous tile has left.
  assign dq_done  = dq_busy && (dq_step == DQS_W'(DQ_STEPS - 1));
  assign dq_free  = (!dq_busy || (dq_done && !dq_last)) && ((group != '0) || !out_hold);

  assign w_ready  = !cfg_err && tbl_valid && (!grp_end || (s_valid && dq_free));
  assign w_fire   = w_valid && w_ready;
  assign s_ready  = w_valid && w_ready && grp_end;
  assign dq_start = w_fire && grp_end;
  assign a_ready  = !cfg_err && (!tbl_valid || (w_fire && plane_last));
  assign a_fire   = a_valid && a_ready;
  assign tbl_shift = w_fire && !plane_last;       // next plane of the same chunk

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      tbl_valid <= 1'b0;
      plane     <= 3'd0;
      chunk     <= '0;
      group     <= '0;
      plane_p1  <= 3'd1;
      chunk_p1  <= GC_W'(1);
      group_p1  <= CNT_W'(1);
    end else begin
      if (a_fire)                      tbl_valid <= 1'b1;
      else if (w_fire && plane_last)   tbl_valid <= 1'b0;
      if (w_fire) begin
        plane    <= plane_last ? 3'd0 : plane_p1;
        plane_p1 <= plane_last ? 3'd1 : plane_p1 + 3'd1;
        if (plane_last) begin
          chunk    <= chunk_last ? '0 : chunk_p1;
          chunk_p1 <= chunk_last ? GC_W'(1) : chunk_p1 + 1'b1;
        end
        if (grp_end) begin
          group    <= group_last ? '0 : group_p1;
          group_p1 <= group_last ? CNT_W'(1) : group_p1 + 1'b1;
        end
      end
    end
  end

  // ------------------------------------------------------- registered inputs
  // Timing: the handshake control above decides from the ports; the datapath runs one
  // cycle behind it on registered copies of the input words (captured every cycle, no
  // enable) and of every control decision (replicated registers: one copy per row,
  // column or lane, so no control net reaches more than a few dozen flip-flops).
  // Every register of the datapath therefore holds what it held before, one cycle later.
  // (The s words are the exception: they go straight from the port into the
  // dequantizer's holding registers, see g_hold.)
  logic                  dq_first_r, dq_busy_r, dq_end_r;
  always_ff @(posedge clk) begin
    dq_first_r <= dq_first;
    dq_end_r   <= dq_done && dq_last;        // last step of a tile's last group
  end
  always_ff @(posedge clk) begin
    if (!rst_n) dq_busy_r <= 1'b0;
    else        dq_busy_r <= dq_busy;
  end

  // ------------------------------------------------------------ table stage
  genvar gm, gn, gl;
  generate
    for (gm = 0; gm < M; gm++) begin : g_pre
      // this row's copies of the table load / shift decisions
      logic a_fire_q;
      /* verilator lint_off UNUSEDSIGNAL */
      logic tbl_shift_q;                         // unused in a W1 build (one plane)
      /* verilator lint_on UNUSEDSIGNAL */
      (* keep *) always_ff @(posedge clk) begin
        a_fire_q    <= a_fire;
        tbl_shift_q <= tbl_shift;
      end
      logic [8*TBL_W-1:0] s_row;
      // the registered activation input: the precompute's pair sums (PIPE = 1)
      lut_precompute #(.ACT_W(ACT_W), .TBL_W(TBL_W), .PIPE(1'b1)) u_pre (
        .clk, .x(a_data[gm*4*ACT_W +: 4*ACT_W]), .s(s_row));
      // S[7] = x_0 + x_1 + x_2 + x_3 (unshifted) for the group's activation sum X
      always_ff @(posedge clk) if (a_fire_q) s7_r[gm*TBL_W +: TBL_W] <= s_row[7*TBL_W +: TBL_W];
      for (gl = 0; gl < 8; gl++) begin : g_ent
        logic [TBL_W-1:0] s_new;
        assign s_new = s_row[gl*TBL_W +: TBL_W];
        if (SH_W == TBL_W) begin : g_fix          // W1 build: no plane shift
          always_ff @(posedge clk) if (a_fire_q) tbl[(gm*8 + gl)*SH_W +: SH_W] <= s_new;
        end else begin : g_shl
          always_ff @(posedge clk) begin
            if (a_fire_q)
              tbl[(gm*8 + gl)*SH_W +: SH_W] <= {{(SH_W-TBL_W){s_new[TBL_W-1]}}, s_new};
            else if (tbl_shift_q)
              tbl[(gm*8 + gl)*SH_W +: SH_W] <= tbl[(gm*8 + gl)*SH_W +: SH_W] << 1;
          end
        end
      end
    end
  endgenerate

  // --------------------------------------------- lookup + column accumulators
  logic [M*N*ACC_W-1:0] acc;
  logic [M*XS_W-1:0]    xsum, dq_xs;
  logic [M*N*ACC_W-1:0] acc_grp;     // acc_next of every unit (group total at grp_end)

  generate
    for (gm = 0; gm < M; gm++) begin : g_row
      // activation sum of the group: S[7] of each chunk
      logic xs_en_q, xs_first_q, xs_dq_q;
      (* keep *) always_ff @(posedge clk) begin
        xs_en_q    <= w_fire && plane_last;
        xs_first_q <= (chunk == '0);
        xs_dq_q    <= dq_start;
      end
      logic signed [TBL_W-1:0] s7;
      logic signed [XS_W-1:0]  xs_next;
      assign s7      = s7_r[gm*TBL_W +: TBL_W];
      assign xs_next = (xs_first_q ? XS_W'(0) : $signed(xsum[gm*XS_W +: XS_W]))
                       + {{(XS_W-TBL_W){s7[TBL_W-1]}}, s7};
      always_ff @(posedge clk) begin
        if (xs_en_q) xsum[gm*XS_W +: XS_W] <= xs_next;
        if (xs_dq_q) dq_xs[gm*XS_W +: XS_W] <= xs_next;
      end

      for (gn = 0; gn < N; gn++) begin : g_col
        /* verilator lint_off UNUSEDSIGNAL */
        logic signed [SH_W:0]    lk;              // L * 2^i, kept for waveforms
        logic [ACC_W:0]          sum;             // bit 0: carry-in trick, dropped
        /* verilator lint_on UNUSEDSIGNAL */
        logic signed [SH_W-1:0]  mag;             // S[sel] << i (table pre-shifted)
        logic                    neg;
        logic signed [ACC_W-1:0] contrib, acc_next;
        // this unit's copies of the beat enable and the group-end clear (with reset)
        logic en_q, clr_q;
        (* keep *) always_ff @(posedge clk) begin
          en_q  <= w_fire;
          clr_q <= !rst_n || (w_fire && grp_end);
        end
        // the registered weight input: each lookup decodes the plane's index from the
        // port and registers its select and sign (PIPE = 1)
        lut_lookup #(.TBL_W(SH_W), .LK_W(SH_W + 1), .PIPE(1'b1)) u_lk (
          .clk, .tbl(tbl[gm*8*SH_W +: 8*SH_W]), .idx(w_data[gn*IDX_W +: IDX_W]),
          .val(lk), .mag(mag), .neg(neg));
        assign contrib  = {{(ACC_W-SH_W){mag[SH_W-1]}}, mag};     // S * 2^i
        // acc + L * 2^i with the sign of L folded into one adder: acc + (c ^ neg) + neg,
        // the +neg entering as the carry of an extra low bit ({acc,1} + {c^neg,neg}),
        // so one carry chain per column and the register's value feeds DI directly
        assign sum      = {acc[(gm*N + gn)*ACC_W +: ACC_W], 1'b1}
                          + {contrib ^ {ACC_W{neg}}, neg};
        assign acc_next = signed'(sum[ACC_W:1]);
        assign acc_grp[(gm*N + gn)*ACC_W +: ACC_W] = acc_next;
        // the group total leaves through acc_grp at the group's last beat and the
        // register restarts from 0 (synchronous reset pin, no operand gating)
        always_ff @(posedge clk) begin
          if (clr_q)     acc[(gm*N + gn)*ACC_W +: ACC_W] <= '0;
          else if (en_q) acc[(gm*N + gn)*ACC_W +: ACC_W] <= acc_next;
        end
      end
    end
  endgenerate

  // ------------------------------------------------ group dequantizer (MixPE)
  // At a group end the group totals, mantissas and zero points are copied into
  // holding registers (load only: no per-bit load/shift multiplexer); in step t lane
  // l handles column t*DQ_L + l, picked by an N/DQ_L : 1 tree (lut_sel) per lane --
  // M*DQ_L*ACC_W + DQ_L*(MANT_W+ZP_W) multiplexer bits instead of a 2:1 select in
  // front of every one of the M*N*ACC_W + N*(MANT_W+ZP_W) holding bits.
  // The step then runs through a pipeline of DQ_PIPE = 4 register stages (select;
  // z' X; zero correction + halving; A * mant + P) before P is written back: each
  // multiply is a DSP48E2 with its operand and product registers, and P's add is the
  // second one's post-adder (plait_dsp48e2.sv, lut_dq_mac.sv; behavioural twins below).
  logic [M*N*ACC_W-1:0] dq_acc;
  logic [N*MANT_W-1:0]  dq_mant;
  logic [N*ZP_W-1:0]    dq_zp;
  logic                 dq_offset;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      dq_busy  <= 1'b0;
      out_hold <= 1'b0;
    end else begin
      if (dq_start) begin
        dq_busy <= 1'b1;
        dq_step <= '0;
      end else if (dq_done) begin
        dq_busy <= 1'b0;
      end else if (dq_busy) begin
        dq_step <= dq_step + 1'b1;
      end
      if (dq_start && group_last)  out_hold <= 1'b1;
      else if (o_valid && o_ready && o_last) out_hold <= 1'b0;
    end
  end

  always_ff @(posedge clk) begin
    if (dq_start) begin
      dq_first  <= (group == '0);
      dq_last   <= group_last;
      dq_offset <= cfg_offset;
    end
  end

  // The group totals load into their holding registers one cycle after dq_start, with
  // the datapath (a copy of the load decision per column).  The mantissas and zero
  // points load straight from the s port (a registered input with no logic in front of
  // it: no N*(MANT_W+ZP_W)-bit input copy), at every clock in which the holding
  // registers are free -- the dequantizer idle, or in the last step of a group, whose
  // column was read in that same clock -- so the last load before a group starts is
  // the s beat taken with it (dq_start, when dq_free).  hold_open is that condition; a
  // copy per column is registered from its next-state form (op_q == hold_open).
  logic hold_open, hold_open_next;
  assign hold_open      = !dq_busy || dq_done;
  assign hold_open_next = dq_start ? (DQ_STEPS == 1)
                                   : (hold_open || (dq_step == DQS_W'(DQ_STEPS - 2)));
  generate
    for (gn = 0; gn < N; gn++) begin : g_hold
      logic ld_q, op_q;
      (* keep *) always_ff @(posedge clk) ld_q <= dq_start;
      (* keep *) always_ff @(posedge clk) begin
        if (!rst_n) op_q <= 1'b1;
        else        op_q <= hold_open_next;
      end
      always_ff @(posedge clk) begin
        if (op_q) begin
          dq_mant[gn*MANT_W +: MANT_W] <= s_mant[gn*MANT_W +: MANT_W];
          dq_zp[gn*ZP_W +: ZP_W]       <= s_zp[gn*ZP_W +: ZP_W];
        end
        if (ld_q)
          for (int r = 0; r < M; r++)
            dq_acc[(r*N + gn)*ACC_W +: ACC_W] <= acc_grp[(r*N + gn)*ACC_W +: ACC_W];
      end
    end
  endgenerate

  // per lane: the mantissa and zero point of its column in this step (shared by rows),
  // picked in the step's own clock (st_e: a copy of dq_step, registered from its
  // next-state form) and registered (mant_l / zp_l), so they meet the group totals,
  // picked one clock later, in stage 1
  logic [DQS_W-1:0] dq_step_next;
  assign dq_step_next = !rst_n ? dq_step                 // (held in reset)
                      : dq_start ? '0 : (dq_busy && !dq_done) ? dq_step + 1'b1 : dq_step;
  logic [DQ_L*MANT_W-1:0] mant_l;
  logic [DQ_L*ZP_W-1:0]   zp_l;
  generate
    for (gl = 0; gl < DQ_L; gl++) begin : g_dqc
      logic [DQS_W-1:0] st_e;                 // this lane's copy of the step (== dq_step)
      (* keep *) always_ff @(posedge clk) st_e <= dq_step_next;
      logic [DQ_STEPS*MANT_W-1:0] mc;
      logic [DQ_STEPS*ZP_W-1:0]   zc;
      logic [MANT_W-1:0] m_sel;
      logic [ZP_W-1:0]   z_sel;
      for (genvar gt = 0; gt < DQ_STEPS; gt++) begin : g_t
        assign mc[gt*MANT_W +: MANT_W] = dq_mant[(gt*DQ_L + gl)*MANT_W +: MANT_W];
        assign zc[gt*ZP_W +: ZP_W]     = dq_zp[(gt*DQ_L + gl)*ZP_W +: ZP_W];
      end
      lut_sel #(.W(MANT_W), .N(DQ_STEPS), .SW(DQS_W)) u_m (.d(mc), .s(st_e), .y(m_sel));
      lut_sel #(.W(ZP_W), .N(DQ_STEPS), .SW(DQS_W)) u_z (.d(zc), .s(st_e), .y(z_sel));
      always_ff @(posedge clk) begin
        mant_l[gl*MANT_W +: MANT_W] <= m_sel;
        zp_l[gl*ZP_W +: ZP_W]       <= z_sel;
      end
    end
  endgenerate

  // pipeline tags: valid, first group of the tile, last step of the tile
  localparam int DQ_PIPE = 4;
  logic [DQ_PIPE:1]   pv, pe;
  logic [DQ_PIPE-1:1] pf;
  always_ff @(posedge clk) begin
    if (!rst_n) pv <= '0;
    else        pv <= {pv[DQ_PIPE-1:1], dq_busy_r};
    pf <= {pf[DQ_PIPE-2:1], dq_first_r};
    pe <= {pe[DQ_PIPE-1:1], dq_end_r};
  end

  // DQ_L x M lanes; lane l of step t handles column n = t*DQ_L + l
  localparam int ZX_W = ZP_W + XS_W;
  generate
    for (gm = 0; gm < M; gm++) begin : g_dqr
      for (gl = 0; gl < DQ_L; gl++) begin : g_dql
        logic [DQS_W-1:0] st_q;               // this lane's copy of the step
        (* keep *) always_ff @(posedge clk) st_q <= dq_step;
        logic signed [ACC_W-1:0]  a_sel, a1, a2;
        logic signed [MANT_W:0]   m1, m2;
        /* verilator lint_off UNUSEDSIGNAL */
        logic signed [ZX_W-1:0]   zx, zx2;  // z' X; top bits unused when |z'| is small
        /* verilator lint_on UNUSEDSIGNAL */
        logic signed [CORR_W-1:0] corr;
        logic signed [GRP_W-1:0]  grp;
        logic [DQ_STEPS*ACC_W-1:0] ac;
        for (genvar gt = 0; gt < DQ_STEPS; gt++) begin : g_t
          assign ac[gt*ACC_W +: ACC_W] = dq_acc[(gm*N + gt*DQ_L + gl)*ACC_W +: ACC_W];
        end
        lut_sel #(.W(ACC_W), .N(DQ_STEPS), .SW(DQS_W)) u_a (.d(ac), .s(st_q), .y(a_sel));
        // zero correction on the odd grid, then the exact halving
        assign corr = CORR_W'(a2) - CORR_W'(zx2);
        assign grp  = off_q ? GRP_W'(corr >>> 1) : GRP_W'(corr);
        always_ff @(posedge clk) begin
          // stage 1: the lane's operands
          a1  <= a_sel;
          a2  <= a1;
        end
        // stage 2: z' X, the row's X times the column's z', each registered in stage 1
`ifdef PLAIT_DSP_PRIMITIVE
        // in the DSP48E2's A/B registers (stage 1) and P register (stage 2)
        logic [P_W-1:0] zx_p;
        /* verilator lint_off PINCONNECTEMPTY */
        plait_dsp48e2 #(.P_W(P_W), .AREG(1), .BREG(1), .MREG(0), .PREG(1)) u_zx (
          .clk, .a(30'(signed'(zp_l[gl*ZP_W +: ZP_W]))),
          .b(18'(signed'(dq_xs[gm*XS_W +: XS_W]))), .c('0), .d('0), .pcin('0),
          .inmode(5'b00000), .opmode(9'b00_000_01_01), .p(zx_p), .pcout());
        /* verilator lint_on PINCONNECTEMPTY */
        assign zx2 = ZX_W'(signed'(zx_p));
`else
        // the behavioural twin: the same registers ((* keep *): one copy of X and z' per
        // row and lane, else yosys merges them and a sign bit drives the ports of
        // several z' X multipliers)
        logic signed [ZP_W-1:0] z1;
        logic signed [XS_W-1:0] xs1;
        (* keep *) always_ff @(posedge clk) begin
          xs1 <= dq_xs[gm*XS_W +: XS_W];
          z1  <= zp_l[gl*ZP_W +: ZP_W];
        end
        assign zx = z1 * xs1;
        always_ff @(posedge clk) zx2 <= zx;
`endif
        // the mantissa waits two stages in flip-flops ((* keep *): not an SRL16E, whose
        // clock-to-out would start the A * mant path) and the third in the DSP's B
        // register; a copy of the halving select
        logic off_q;
        (* keep *) always_ff @(posedge clk) begin
          m1    <= {1'b0, mant_l[gl*MANT_W +: MANT_W]};
          m2    <= m1;
          off_q <= dq_offset;
        end

        // ---- stages 3 and 4, and P.  P lives in distributed RAM, one memory per row
        // and lane: word t holds P of column t*DQ_L + l (DQ_STEPS words of P_W bits:
        // LUTRAM, not N*P_W flip-flops per row).  Stage 3 is the corrected group integer
        // and the mantissa in the DSP48E2's A/B registers; stage 4 its P register,
        // A * mant + Z (lut_dq_mac): Z = 0 for the tile's first group (it overwrites),
        // else the step's word, read in stage 3 at rd_t (the steps of a group leave in
        // order, DQ_STEPS of them; the counter wraps); with one word (DQ_STEPS = 1) the
        // previous step's sum, still in P.  Stage 4 is written back at wr_t, the step's
        // number one clock later.  When a tile's last step has been written, the output
        // stream reads the same port at o_t: beat t carries word t of every row and lane
        // (nothing is written then: the next tile's first group waits for its last beat).
        // This lane's copies of stage 3's valid and first-group tags (== pv/pf[3]) and
        // of the write enable (== pv[4]):
        logic v3_q, f3_q, sh_q;
        logic [DQS_W-1:0] rd_t, wr_t;
        (* keep *) always_ff @(posedge clk) begin
          if (!rst_n) v3_q <= 1'b0;
          else        v3_q <= pv[DQ_PIPE-2];
        end
        (* keep *) always_ff @(posedge clk) f3_q <= pf[DQ_PIPE-2];
        (* keep *) always_ff @(posedge clk) begin
          if (!rst_n) sh_q <= 1'b0;
          else        sh_q <= v3_q;
        end
        (* keep *) always_ff @(posedge clk) begin
          if (!rst_n)    rd_t <= '0;
          else if (v3_q) rd_t <= (rd_t == DQS_W'(DQ_STEPS - 1)) ? '0 : rd_t + 1'b1;
        end
        always_ff @(posedge clk) wr_t <= rd_t;
        logic [P_W-1:0] pm [DQ_STEPS];
        logic [DQS_W-1:0] ra;
        logic signed [P_W-1:0] pold, pr4;
        assign ra    = o_valid ? o_t : rd_t;
        assign pold  = signed'(pm[ra]);
`ifdef PLAIT_DSP_PRIMITIVE
        lut_dq_mac #(.A_W(GRP_W), .B_W(MANT_W + 1), .P_W(P_W), .FWD(DQ_STEPS == 1)) u_mac (
          .clk, .a(grp), .b(m2), .c(pold), .first(f3_q), .held(sh_q), .p(pr4));
`else
        // the behavioural twin of lut_dq_mac.sv: the same registers and arithmetic
        logic signed [GRP_W-1:0]      grp3;
        logic signed [MANT_W:0]       m3;
        logic signed [GRP_W+MANT_W:0] pr;
        logic signed [P_W-1:0]        z;
        assign pr = grp3 * m3;
        if (DQ_STEPS == 1) begin : g_one
          assign z = f3_q ? '0 : sh_q ? pr4 : pold;
        end else begin : g_many
          assign z = f3_q ? '0 : pold;
        end
        always_ff @(posedge clk) begin
          grp3 <= grp;                                              // stage 3
          m3   <= m2;
          pr4  <= {{(P_W-GRP_W-MANT_W-1){pr[GRP_W+MANT_W]}}, pr} + z;  // stage 4
        end
`endif
        always_ff @(posedge clk)
          if (sh_q) pm[wr_t] <= pr4;
        assign o_p[(gm*DQ_L + gl)*P_W +: P_W] = pold;
      end
    end
  endgenerate

  // the tile's P is complete when its last step has been written; then DQ_STEPS beats
  always_ff @(posedge clk) begin
    if (!rst_n) begin
      o_valid <= 1'b0;
      o_t     <= '0;
    end else if (pv[DQ_PIPE] && pe[DQ_PIPE]) begin
      o_valid <= 1'b1;
    end else if (o_valid && o_ready) begin
      o_t <= o_last ? '0 : o_t + 1'b1;
      if (o_last) o_valid <= 1'b0;
    end
  end
  assign o_last = (o_t == DQS_W'(DQ_STEPS - 1));
`ifndef SYNTHESIS
  // ------------------------------------------------- assertions (simulation only)
  // run_cocotb builds with --assert: a failing assertion prints its message and stops
  // the simulation, which fails the running cocotb test (tests/test_rtl_lut_core.py::
  // test_assertions_fire shows that each one fires: protocol violations driven by the
  // bench, and one RTL mutant per internal invariant).
  //
  // Stream protocol, sources (AXI4-Stream): a beat offered and not taken stays
  // offered, unchanged, until it is taken.
  a_a_hold: assert property (@(posedge clk) disable iff (!rst_n)
      a_valid && !a_ready |=> a_valid && $stable(a_data))
    else $error("lut_core: a_a_hold: a_valid dropped or a_data changed while a_ready was low");
  a_w_hold: assert property (@(posedge clk) disable iff (!rst_n)
      w_valid && !w_ready |=> w_valid && $stable(w_data))
    else $error("lut_core: a_w_hold: w_valid dropped or w_data changed while w_ready was low");
  a_s_hold: assert property (@(posedge clk) disable iff (!rst_n)
      s_valid && !s_ready |=> s_valid && $stable({s_mant, s_zp}))
    else $error("lut_core: a_s_hold: s_valid dropped or s_mant/s_zp changed while s_ready was low");
  // The run-time configuration holds while a tile is in flight: from its first
  // activation beat to its last weight beat (the dequantizer keeps its own copy).
  logic in_flight;
  assign in_flight = tbl_valid || (chunk != '0) || (group != '0);
  a_cfg_stable: assert property (@(posedge clk) disable iff (!rst_n)
      in_flight |-> $stable({cfg_bits, cfg_offset, cfg_group_chunks, cfg_groups}))
    else $error("lut_core: a_cfg_stable: the configuration changed while a tile was in flight");
  // Output (the core is the source): P is held, unchanged, until it is taken.
  a_o_hold: assert property (@(posedge clk) disable iff (!rst_n)
      o_valid && !o_ready |=> o_valid && $stable(o_p))
    else $error("lut_core: a_o_hold: o_valid dropped or o_p changed while o_ready was low");

  // Counters: each *_p1 register is its counter plus one, and within the
  // configuration's bounds (plane < cfg_bits, chunk < cfg_group_chunks, group < cfg_groups).
  a_counters: assert property (@(posedge clk) disable iff (!rst_n)
      plane_p1 == plane + 3'd1 && chunk_p1 == chunk + GC_W'(1) && group_p1 == group + CNT_W'(1))
    else $error("lut_core: a_counters: plane/chunk/group %0d/%0d/%0d but +1 copies %0d/%0d/%0d",
                plane, chunk, group, plane_p1, chunk_p1, group_p1);
  a_counter_bounds: assert property (@(posedge clk) disable iff (!rst_n)
      !cfg_err |-> plane_p1 != 3'd0 && plane_p1 <= cfg_bits && chunk_p1 != '0 &&
                   chunk_p1 <= cfg_group_chunks && group_p1 != '0 && group_p1 <= cfg_groups)
    else $error("lut_core: a_counter_bounds: plane/chunk/group+1 = %0d/%0d/%0d beyond cfg %0d/%0d/%0d",
                plane_p1, chunk_p1, group_p1, cfg_bits, cfg_group_chunks, cfg_groups);
  // The table: a weight plane is consumed only against a loaded table, and a new
  // table is loaded only into an empty register or as its last plane is consumed
  // (never loaded and shifted in the same cycle).
  a_tbl_used: assert property (@(posedge clk) disable iff (!rst_n) w_fire |-> tbl_valid)
    else $error("lut_core: a_tbl_used: a weight plane was accepted without a table");
  a_tbl_load: assert property (@(posedge clk) disable iff (!rst_n)
      a_fire && tbl_valid |-> w_fire && plane_last)
    else $error("lut_core: a_tbl_load: a table was replaced before its last plane was used");
  // A group's parameters move exactly with the group's last weight beat.
  a_s_with_last: assert property (@(posedge clk) disable iff (!rst_n)
      (s_valid && s_ready) == (w_fire && grp_end))
    else $error("lut_core: a_s_with_last: s transfer %0d but last weight beat of a group %0d",
                s_valid && s_ready, w_fire && grp_end);
  // The dequantizer takes a group only when idle or in the last step of the previous one.
  a_dq_overrun: assert property (@(posedge clk) disable iff (!rst_n)
      dq_start |-> !dq_busy || dq_step == DQS_W'(DQ_STEPS - 1))
    else $error("lut_core: a_dq_overrun: a group entered the dequantizer at step %0d", dq_step);
  // Tiles whose last group entered the dequantizer and whose P was not yet taken.
  // The first group of a tile overwrites P: it may enter only when no such tile is
  // left; an output is presented only for exactly one such tile.
  int tiles;
  always_ff @(posedge clk) begin
    if (!rst_n) tiles <= 0;
    else        tiles <= tiles + int'(dq_start && group_last) - int'(o_valid && o_ready && o_last);
  end
  a_p_overwrite: assert property (@(posedge clk) disable iff (!rst_n)
      dq_start && group == '0 |-> tiles == 0)
    else $error("lut_core: a_p_overwrite: a tile's first group entered the dequantizer while %0d tile(s) wait in P", tiles);
  a_no_spurious_out: assert property (@(posedge clk) disable iff (!rst_n) o_valid |-> tiles == 1)
    else $error("lut_core: a_no_spurious_out: o_valid with %0d finished tile(s)", tiles);

  // Replicated control registers equal their master copy (the decision one clock
  // earlier): yosys must not merge them, and nothing may make one differ.
  logic c_a_fire, c_tbl_shift, c_xs_en, c_xs_first, c_dq_start, c_w_fire, c_clr, c_off,
        c_first, c_v3, c_sh;
  logic [DQS_W-1:0] c_step;
  always_ff @(posedge clk) begin
    c_a_fire   <= a_fire;
    c_tbl_shift <= tbl_shift;
    c_xs_en    <= w_fire && plane_last;
    c_xs_first <= (chunk == '0);
    c_dq_start <= dq_start;
    c_w_fire   <= w_fire;
    c_clr      <= !rst_n || (w_fire && grp_end);
    c_step     <= dq_step;
    c_off      <= dq_offset;
    c_first    <= pf[DQ_PIPE-2];
    c_v3       <= rst_n && pv[DQ_PIPE-2];
    c_sh       <= rst_n && pv[DQ_PIPE-1];
  end
  logic [M-1:0]             r_a_fire, r_tbl_shift, r_xs_en, r_xs_first, r_xs_dq;
  logic [M*N-1:0]           r_en, r_clr;
  logic [M*DQ_L-1:0]        r_sh, r_v3;
  logic [N-1:0]             r_ld, r_op;
  logic [DQ_L*DQS_W-1:0]    r_step_c;
  logic [M*DQ_L*DQS_W-1:0]  r_step_l;
  logic [M*DQ_L-1:0]        r_off, r_first;
  for (genvar r = 0; r < M; r++) begin : g_chk_row
    assign r_a_fire[r]    = g_pre[r].a_fire_q;
    assign r_tbl_shift[r] = g_pre[r].tbl_shift_q;
    assign r_xs_en[r]     = g_row[r].xs_en_q;
    assign r_xs_first[r]  = g_row[r].xs_first_q;
    assign r_xs_dq[r]     = g_row[r].xs_dq_q;
    for (genvar c = 0; c < N; c++) begin : g_chk_col
      assign r_en[r*N + c]  = g_row[r].g_col[c].en_q;
      assign r_clr[r*N + c] = g_row[r].g_col[c].clr_q;
    end
    for (genvar l = 0; l < DQ_L; l++) begin : g_chk_lane
      assign r_step_l[(r*DQ_L + l)*DQS_W +: DQS_W] = g_dqr[r].g_dql[l].st_q;
      assign r_off[r*DQ_L + l]   = g_dqr[r].g_dql[l].off_q;
      assign r_first[r*DQ_L + l] = g_dqr[r].g_dql[l].f3_q;
      assign r_v3[r*DQ_L + l]    = g_dqr[r].g_dql[l].v3_q;
      assign r_sh[r*DQ_L + l]    = g_dqr[r].g_dql[l].sh_q;
    end
  end
  for (genvar c = 0; c < N; c++) begin : g_chk_hold
    assign r_ld[c] = g_hold[c].ld_q;
    assign r_op[c] = g_hold[c].op_q;
  end
  for (genvar l = 0; l < DQ_L; l++) begin : g_chk_sel
    assign r_step_c[l*DQS_W +: DQS_W] = g_dqc[l].st_e;
  end
  a_rep_table: assert property (@(posedge clk) disable iff (!rst_n)
      r_a_fire == {M{c_a_fire}} && r_tbl_shift == {M{c_tbl_shift}})
    else $error("lut_core: a_rep_table: table load/shift copies %b/%b, decisions %b/%b",
                r_a_fire, r_tbl_shift, c_a_fire, c_tbl_shift);
  a_rep_xsum: assert property (@(posedge clk) disable iff (!rst_n)
      r_xs_en == {M{c_xs_en}} && r_xs_first == {M{c_xs_first}} && r_xs_dq == {M{c_dq_start}})
    else $error("lut_core: a_rep_xsum: activation-sum control copies %b/%b/%b, decisions %b/%b/%b",
                r_xs_en, r_xs_first, r_xs_dq, c_xs_en, c_xs_first, c_dq_start);
  a_rep_acc: assert property (@(posedge clk) disable iff (!rst_n)
      r_en == {(M*N){c_w_fire}} && r_clr == {(M*N){c_clr}})
    else $error("lut_core: a_rep_acc: accumulator enable/clear copies %b/%b, decisions %b/%b",
                r_en, r_clr, c_w_fire, c_clr);
  // (op_q and st_e are registered from next-state forms: they equal hold_open and
  // dq_step in the same clock)
  a_rep_hold: assert property (@(posedge clk) disable iff (!rst_n)
      r_ld == {N{c_dq_start}} && r_op == {N{hold_open}})
    else $error("lut_core: a_rep_hold: holding-register load copies %b/%b, decisions %b/%b",
                r_ld, r_op, c_dq_start, hold_open);
  a_rep_dq: assert property (@(posedge clk) disable iff (!rst_n)
      r_step_c == {DQ_L{dq_step}} && r_step_l == {(M*DQ_L){c_step}} &&
      r_off == {(M*DQ_L){c_off}} && r_first == {(M*DQ_L){c_first}})
    else $error("lut_core: a_rep_dq: dequantizer step/offset/first copies %h/%h/%b/%b differ from %0d/%0d/%b/%b",
                r_step_c, r_step_l, r_off, r_first, dq_step, c_step, c_off, c_first);
  a_rep_ring: assert property (@(posedge clk) disable iff (!rst_n)
      r_sh == {(M*DQ_L){c_sh}} && r_v3 == {(M*DQ_L){c_v3}})
    else $error("lut_core: a_rep_ring: P write-enable / stage-3 valid copies %b/%b, decisions %b/%b",
                r_sh, r_v3, c_sh, c_v3);
`endif
endmodule : lut_core
