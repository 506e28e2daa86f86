// dsp_model_dsp48e2 -- SIMULATION-ONLY functional model of the Xilinx DSP48E2
// primitive (module name DSP48E2), for running the primitive path of the sparse DSP
// chain (`define PLAIT_DSP_PRIMITIVE, see dsp_slice.sv) in Verilator.
//
// Why this file exists: yosys 0.23 (and yosys 0.70, checked) ship no simulation model
// of DSP48E2 -- xilinx/cells_sim.v says "TODO: DSP48E2 (Ultrascale)" and
// cells_xtra.v has only a black box -- and the vendor's unisim model is not
// available here.  This model is written from the architecture description in
// Xilinx UG579 (UltraScale Architecture DSP Slice), independently of the
// behavioural slice in dsp_slice.sv: it decodes the attributes and the dynamic
// control ports (INMODE, OPMODE, ALUMODE, CARRYINSEL) generically, so a wrong
// configuration in dsp_slice.sv gives wrong numbers in the cocotb testbench.
//
// Modelled (UG579 names):
//   A/B input: A_INPUT/B_INPUT = DIRECT | CASCADE (ACIN/BCIN); AREG/BREG 0/1/2
//     (1: only A2/B2 registered, A1/B1 transparent), ACOUT/BCOUT per ACASCREG/BCASCREG;
//   D register DREG 0/1; pre-adder AD = (INMODE[2] ? D : 0) +/- A' (INMODE[3]: -),
//     A' = INMODE[1] ? 0 : (INMODE[0] ? A1 : A2)[26:0], PREADDINSEL = "A" only;
//     ADREG 0/1; B' = INMODE[4] ? B1 : B2;
//   multiplier: AMULTSEL "A" | "AD", BMULTSEL "B" (USE_MULT "MULTIPLY"), signed
//     27 x 18, MREG 0/1; the product M is sign-extended to 48 bits and used once
//     when X = Y = M (the two partial products of the real slice add up to it);
//   X (OPMODE[1:0]): 0, M, P, A:B;  Y (OPMODE[3:2]): 0, M, all ones, C;
//   Z (OPMODE[6:4]): 0, PCIN, P, C, P, PCIN>>>17, P>>>17;  W (OPMODE[8:7]): 0, P, RND, C;
//   ALUMODE 0000: Z + (W+X+Y+CIN), 0011: Z - (W+X+Y+CIN), 0001: -Z + (W+X+Y+CIN) - 1,
//     0010: -Z - (W+X+Y+CIN) - 1 (USE_SIMD "ONE48");
//   CARRYINSEL 000 (CARRYIN) only; C register CREG; INMODEREG/OPMODEREG/ALUMODEREG/
//   CARRYINREG 0/1; PREG 0/1; PCOUT = P; synchronous resets RST*, clock enables CE*.
// Not modelled (an attribute value that needs them stops the simulation with
// $fatal): SIMD modes, logic-unit ALUMODEs, pattern detect, wide XOR, carry outputs,
// PREADDINSEL = "B", BMULTSEL = "AD", inverted-pin attributes.
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
/* verilator lint_off DECLFILENAME */
module DSP48E2 #(
  parameter integer ACASCREG = 1,
  parameter integer ADREG = 1,
  parameter integer ALUMODEREG = 1,
  parameter string AMULTSEL = "A",
  parameter integer AREG = 1,
  parameter string AUTORESET_PATDET = "NO_RESET",
  parameter string AUTORESET_PRIORITY = "RESET",
  parameter string A_INPUT = "DIRECT",
  parameter integer BCASCREG = 1,
  parameter string BMULTSEL = "B",
  parameter integer BREG = 1,
  parameter string B_INPUT = "DIRECT",
  parameter integer CARRYINREG = 1,
  parameter integer CARRYINSELREG = 1,
  parameter integer CREG = 1,
  parameter integer DREG = 1,
  parameter integer INMODEREG = 1,
  parameter [3:0] IS_ALUMODE_INVERTED = 4'b0000,
  parameter [0:0] IS_CARRYIN_INVERTED = 1'b0,
  parameter [0:0] IS_CLK_INVERTED = 1'b0,
  parameter [4:0] IS_INMODE_INVERTED = 5'b00000,
  parameter [8:0] IS_OPMODE_INVERTED = 9'b000000000,
  parameter [47:0] MASK = 48'h3FFFFFFFFFFF,
  parameter integer MREG = 1,
  parameter integer OPMODEREG = 1,
  parameter [47:0] PATTERN = 48'h000000000000,
  parameter string PREADDINSEL = "A",
  parameter integer PREG = 1,
  parameter [47:0] RND = 48'h000000000000,
  parameter string SEL_MASK = "MASK",
  parameter string SEL_PATTERN = "PATTERN",
  parameter string USE_MULT = "MULTIPLY",
  parameter string USE_PATTERN_DETECT = "NO_PATDET",
  parameter string USE_SIMD = "ONE48",
  parameter string USE_WIDEXOR = "FALSE",
  parameter string XORSIMD = "XOR24_48_96"
) (
  output logic [29:0] ACOUT,
  output logic [17:0] BCOUT,
  output logic        CARRYCASCOUT,
  output logic [3:0]  CARRYOUT,
  output logic        MULTSIGNOUT,
  output logic        OVERFLOW,
  output logic [47:0] P,
  output logic        PATTERNBDETECT,
  output logic        PATTERNDETECT,
  output logic [47:0] PCOUT,
  output logic        UNDERFLOW,
  output logic [7:0]  XOROUT,
  input  logic [29:0] A,
  input  logic [29:0] ACIN,
  input  logic [3:0]  ALUMODE,
  input  logic [17:0] B,
  input  logic [17:0] BCIN,
  input  logic [47:0] C,
  input  logic        CARRYCASCIN,
  input  logic        CARRYIN,
  input  logic [2:0]  CARRYINSEL,
  input  logic        CEA1, CEA2, CEAD, CEALUMODE, CEB1, CEB2, CEC, CECARRYIN, CECTRL,
  input  logic        CED, CEINMODE, CEM, CEP,
  input  logic        CLK,
  input  logic [26:0] D,
  input  logic [4:0]  INMODE,
  input  logic        MULTSIGNIN,
  input  logic [8:0]  OPMODE,
  input  logic [47:0] PCIN,
  input  logic        RSTA, RSTALLCARRYIN, RSTALUMODE, RSTB, RSTC, RSTCTRL, RSTD,
  input  logic        RSTINMODE, RSTM, RSTP
);
  // ---------------------------------------------------------- attribute checks
  initial begin
    if (AREG < 0 || AREG > 2 || BREG < 0 || BREG > 2)
      $fatal(1, "DSP48E2 model: AREG/BREG must be 0, 1 or 2 (AREG=%0d BREG=%0d)", AREG, BREG);
    if (ACASCREG > AREG || BCASCREG > BREG || (AREG == 2 && ACASCREG == 0) ||
        (BREG == 2 && BCASCREG == 0))
      $fatal(1, "DSP48E2 model: ACASCREG/BCASCREG inconsistent with AREG/BREG");
    if (DREG > 1 || ADREG > 1 || MREG > 1 || PREG > 1 || CREG > 1 || INMODEREG > 1 ||
        OPMODEREG > 1 || ALUMODEREG > 1 || CARRYINREG > 1 || CARRYINSELREG > 1)
      $fatal(1, "DSP48E2 model: DREG/ADREG/MREG/PREG/CREG/*MODEREG must be 0 or 1");
    if (AMULTSEL != "A" && AMULTSEL != "AD")
      $fatal(1, "DSP48E2 model: AMULTSEL must be \"A\" or \"AD\"");
    if (BMULTSEL != "B") $fatal(1, "DSP48E2 model: only BMULTSEL = \"B\" is modelled");
    if (PREADDINSEL != "A") $fatal(1, "DSP48E2 model: only PREADDINSEL = \"A\" is modelled");
    if (USE_MULT == "DYNAMIC") $fatal(1, "DSP48E2 model: USE_MULT = \"DYNAMIC\" not modelled");
    if (USE_SIMD != "ONE48") $fatal(1, "DSP48E2 model: only USE_SIMD = \"ONE48\" is modelled");
    if (A_INPUT != "DIRECT" && A_INPUT != "CASCADE") $fatal(1, "DSP48E2 model: bad A_INPUT");
    if (B_INPUT != "DIRECT" && B_INPUT != "CASCADE") $fatal(1, "DSP48E2 model: bad B_INPUT");
    if (IS_ALUMODE_INVERTED != 0 || IS_CARRYIN_INVERTED != 0 || IS_CLK_INVERTED != 0 ||
        IS_INMODE_INVERTED != 0 || IS_OPMODE_INVERTED != 0)
      $fatal(1, "DSP48E2 model: inverted-pin attributes are not modelled");
  end

  // ---------------------------------------------------------- A / B / C / D inputs
  logic [29:0] a_in, a1_r, a2_r, a1, a2;
  logic [17:0] b_in, b1_r, b2_r, b1, b2;
  logic [26:0] d_r, d_v, ad_r, ad, a_pre, ad_sum;
  logic [47:0] c_r, c_v;

  assign a_in = (A_INPUT == "CASCADE") ? ACIN : A;
  assign b_in = (B_INPUT == "CASCADE") ? BCIN : B;

  always_ff @(posedge CLK) begin
    if (RSTA) begin
      a1_r <= '0;
      a2_r <= '0;
    end else begin
      if (CEA1) a1_r <= a_in;
      if (CEA2) a2_r <= (AREG == 2) ? a1_r : a_in;
    end
    if (RSTB) begin
      b1_r <= '0;
      b2_r <= '0;
    end else begin
      if (CEB1) b1_r <= b_in;
      if (CEB2) b2_r <= (BREG == 2) ? b1_r : b_in;
    end
    if (RSTD)     d_r <= '0;
    else if (CED) d_r <= D;
    if (RSTC)     c_r <= '0;
    else if (CEC) c_r <= C;
  end

  assign a1 = (AREG == 2) ? a1_r : a_in;
  assign a2 = (AREG == 0) ? a_in : a2_r;
  assign b1 = (BREG == 2) ? b1_r : b_in;
  assign b2 = (BREG == 0) ? b_in : b2_r;
  assign d_v = (DREG == 1) ? d_r : D;
  assign c_v = (CREG == 1) ? c_r : C;
  assign ACOUT = (ACASCREG == AREG) ? a2 : a1;
  assign BCOUT = (BCASCREG == BREG) ? b2 : b1;

  // ---------------------------------------------------------- control registers
  logic [4:0] inmode_r, inmode;
  logic [8:0] opmode_r, opmode;
  logic [3:0] alumode_r, alumode;
  logic       cin_r, cin;
  logic [2:0] cinsel_r, cinsel;
  always_ff @(posedge CLK) begin
    if (RSTINMODE)      inmode_r <= '0;
    else if (CEINMODE)  inmode_r <= INMODE;
    if (RSTCTRL)        opmode_r <= '0;
    else if (CECTRL)    opmode_r <= OPMODE;
    if (RSTCTRL)        cinsel_r <= '0;
    else if (CECTRL)    cinsel_r <= CARRYINSEL;
    if (RSTALUMODE)     alumode_r <= '0;
    else if (CEALUMODE) alumode_r <= ALUMODE;
    if (RSTALLCARRYIN)  cin_r <= 1'b0;
    else if (CECARRYIN) cin_r <= CARRYIN;
  end
  assign inmode  = (INMODEREG == 1) ? inmode_r : INMODE;
  assign opmode  = (OPMODEREG == 1) ? opmode_r : OPMODE;
  assign cinsel  = (CARRYINSELREG == 1) ? cinsel_r : CARRYINSEL;
  assign alumode = (ALUMODEREG == 1) ? alumode_r : ALUMODE;
  assign cin     = (CARRYINREG == 1) ? cin_r : CARRYIN;

  // ---------------------------------------------------------- pre-adder
  assign a_pre  = inmode[1] ? 27'd0 : (inmode[0] ? a1[26:0] : a2[26:0]);
  assign ad_sum = inmode[3] ? (inmode[2] ? d_v : 27'd0) - a_pre
                            : (inmode[2] ? d_v : 27'd0) + a_pre;
  always_ff @(posedge CLK) begin
    if (RSTD)      ad_r <= '0;
    else if (CEAD) ad_r <= ad_sum;
  end
  assign ad = (ADREG == 1) ? ad_r : ad_sum;

  // ---------------------------------------------------------- multiplier
  logic signed [26:0] mul_a;
  logic signed [17:0] mul_b;
  logic signed [47:0] m_v, m_r, m;
  assign mul_a = (AMULTSEL == "AD") ? ad : (inmode[1] ? 27'd0 : (inmode[0] ? a1[26:0] : a2[26:0]));
  assign mul_b = inmode[4] ? b1 : b2;
  assign m_v   = 48'(mul_a * mul_b);
  always_ff @(posedge CLK) begin
    if (RSTM)     m_r <= '0;
    else if (CEM) m_r <= m_v;
  end
  assign m = (MREG == 1) ? m_r : m_v;

  // ---------------------------------------------------------- X/Y/Z/W, ALU
  logic [47:0] p_r, x, y, z, w, xyw, alu;
  always_comb begin
    case (opmode[1:0])
      2'b00:   x = '0;
      2'b01:   x = m;
      2'b10:   x = P;
      default: x = {a2, b2};          // A:B (the A2/B2 registers when used)
    endcase
    case (opmode[3:2])
      2'b00:   y = '0;
      2'b01:   y = '0;                // M enters once through X (X = Y = M selects it)
      2'b10:   y = '1;
      default: y = c_v;
    endcase
    case (opmode[6:4])
      3'b000:  z = '0;
      3'b001:  z = PCIN;
      3'b010:  z = P;
      3'b011:  z = c_v;
      3'b100:  z = P;
      3'b101:  z = 48'($signed(PCIN) >>> 17);
      3'b110:  z = 48'($signed(P) >>> 17);
      default: z = 'x;
    endcase
    case (opmode[8:7])
      2'b00:   w = '0;
      2'b01:   w = P;
      2'b10:   w = RND;
      default: w = c_v;
    endcase
    xyw = w + x + y + 48'(cin);
    case (alumode)
      4'b0000: alu = z + xyw;
      4'b0011: alu = z - xyw;
      4'b0001: alu = ~z + xyw;        // -Z + (W+X+Y+CIN) - 1
      4'b0010: alu = ~(z + xyw);      // -Z - (W+X+Y+CIN) - 1
      default: alu = 'x;
    endcase
  end

  always_ff @(posedge CLK) begin
    if (RSTP)     p_r <= '0;
    else if (CEP) p_r <= alu;
  end
  assign P     = (PREG == 1) ? p_r : alu;
  assign PCOUT = P;

  // run-time checks of what the model does not cover
  always_ff @(posedge CLK) begin
    if (cinsel != 3'b000)
      $fatal(1, "DSP48E2 model: CARRYINSEL=%b not modelled", cinsel);
    if (alumode[3:2] != 2'b00)
      $fatal(1, "DSP48E2 model: logic-unit ALUMODE=%b not modelled", alumode);
    if ((opmode[1:0] == 2'b01) != (opmode[3:2] == 2'b01))
      $fatal(1, "DSP48E2 model: OPMODE=%b: X and Y must select M together", opmode);
    if (opmode[6:4] == 3'b111)
      $fatal(1, "DSP48E2 model: OPMODE=%b: Z = 111 is reserved", opmode);
  end

  assign CARRYCASCOUT   = 1'b0;
  assign CARRYOUT       = '0;
  assign MULTSIGNOUT    = m[47];
  assign OVERFLOW       = 1'b0;
  assign UNDERFLOW      = 1'b0;
  assign PATTERNDETECT  = 1'b0;
  assign PATTERNBDETECT = 1'b0;
  assign XOROUT         = '0;
endmodule
/* verilator lint_on DECLFILENAME */
/* verilator lint_on UNUSEDPARAM */
/* verilator lint_on UNUSEDSIGNAL */
