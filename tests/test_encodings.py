"""One source for every hardware encoding.

Mode codes, weight-width codes, the activation block, index widths and the P width
are defined once in :mod:`plait.ir.numerics`, emitted by the unit configs into the
generated SV packages, and the hand-written SV compares against the package names.
:func:`encoding_literals` scans ``rtl/sv/*.sv`` for encodings spelled as literals:

* ``mode``     -- a mode signal (``mode``, ``in_mode``, ``cur_mode``, ...) compared
  with, assigned or case-matched against a number;
* ``mode-bit`` -- the mode-enable vector (``MODE_MASK`` / ``MODE_EN``) indexed by a
  number (its bit positions are mode codes);
* ``wbits``    -- a weight-width signal (``wbits``, ``in_wbits``) compared with,
  assigned or case-matched against a number;
* ``p-width``  -- the number 48 (or a ``[47:`` range), i.e. the P width.

Comments and string literals are ignored; numbers inside based literals (``8'h48``),
identifiers (``DSP48E2``), bit slices and comparisons of other signals are not
encodings.  ``dsp_model_dsp48e2.sv`` is exempt: it models the vendor primitive,
whose 48-bit P/C/PCIN ports and OPMODE/INMODE codes are fixed by Xilinx UG579.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from plait.ir.numerics import P_BITS
from plait.ir.numerics.dsp import (CODE_BITS, DSP_P_BITS, IDX_BITS, M_MAX, MODE_BITS, MODES,
                                   WBITS_BITS, WBITS_CODE)
from plait.ir.numerics.lut import LUT_G, ZP_BITS
from plait.ir.numerics.common import SCALE_BITS
from plait.rtl import dsp_chain
from plait.rtl.dsp_chain import DspChainConfig, mode_param
from plait.rtl.lut_core import LutCoreConfig
from plait.rtl.units import SV_DIR

#: files modelling a vendor primitive (their widths/codes are the vendor's)
VENDOR_MODELS = {"dsp_model_dsp48e2.sv"}

_LIT = (r"(?:\d+\s*)?'[sS]?[bBoOdDhH]\s*[0-9a-fA-F_xXzZ?]+"   # sized / based: 3'd1, 'h3
        r"|'[01xXzZ]\b"                                       # fill: '0, '1
        r"|(?<![\w'$.])\d+(?![\w'.])")                         # plain decimal: 3
_CMP = r"(?:===|!==|==|!=)"
_SIGNALS = {
    "mode": r"\b(?:\w+_)?mode\b",      # lower case: the primitive's OPMODE/INMODE are not ours
    "wbits": r"\b(?:\w+_)?wbits\b",
}
_RULES: list[tuple[str, re.Pattern]] = []
for _rule, _sig in _SIGNALS.items():
    _RULES.append((_rule, re.compile(rf"{_sig}\s*{_CMP}\s*(?:{_LIT})")))
    _RULES.append((_rule, re.compile(rf"(?:{_LIT})\s*{_CMP}\s*{_sig}")))
    _RULES.append((_rule, re.compile(rf"{_sig}\s*(?:<=|=)(?!=)\s*(?:{_LIT})\s*;")))
_RULES += [
    ("mode-bit", re.compile(rf"\b\w*MODE_(?:MASK|EN)\w*\s*\[\s*(?:{_LIT})")),
    ("p-width", re.compile(r"(?<![\w'$.])48(?![\w.])")),
    ("p-width", re.compile(r"\[\s*47\s*:")),
]
_CASE = re.compile(r"\bcase[zx]?\s*\(\s*(?P<sig>[^)]*)\)(?P<body>.*?)\bendcase\b", re.S)
_LABEL = re.compile(rf"(?:^|;|\bend\b|\bbegin\b)\s*(?P<lab>(?:{_LIT})(?:\s*,\s*(?:{_LIT}))*)\s*:(?!:)",
                    re.M)


def strip_comments(text: str) -> str:
    """Blank out comments and string literals, keeping every newline (line numbers)."""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    return re.sub(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"', blank, text, flags=re.S)


def encoding_literals(text: str, name: str = "<text>") -> list[tuple[str, int, str, str]]:
    """``(file, line, rule, source line)`` for every hand-written encoding literal."""
    code = strip_comments(text)
    lines = text.splitlines()
    found: set[tuple[int, str]] = set()

    def line_of(pos: int) -> int:
        return code.count("\n", 0, pos) + 1

    for rule, pat in _RULES:
        for m in pat.finditer(code):
            found.add((line_of(m.start()), rule))
    for m in _CASE.finditer(code):
        for rule, sig in _SIGNALS.items():
            if re.fullmatch(rf"\s*{sig}\s*", m["sig"]):
                for lab in _LABEL.finditer(m["body"]):
                    found.add((line_of(m.start("body") + lab.start("lab")), rule))
    return [(name, ln, rule, lines[ln - 1].strip()) for ln, rule in sorted(found)]


def _sv_files() -> list[Path]:
    return sorted(p for p in SV_DIR.glob("*.sv") if p.name not in VENDOR_MODELS)


def test_rtl_sources_spell_no_encoding():
    files = _sv_files()
    assert {"dsp_chain.sv", "dsp_operand_decode.sv", "lut_core.sv"} <= {p.name for p in files}
    bad = [f for p in files for f in encoding_literals(p.read_text(), p.name)]
    assert bad == [], "hand-written encodings (use the package parameters):\n" + \
        "\n".join(f"  {f}:{ln} [{rule}] {src}" for f, ln, rule, src in bad)


#: (file, site in the real source, injected literal form, rule)
INJECTIONS = [
    ("dsp_operand_decode.sv", "mode == M_DENSE", "mode == 3'd0", "mode"),
    ("dsp_operand_decode.sv", "mode == M_2_4", "3'd1 == mode", "mode"),
    ("dsp_operand_decode.sv", "WB_2:    w = ", "2'd0:    w = ", "wbits"),
    ("dsp_operand_decode.sv", "WB_4:    w", "2:    w", "wbits"),
    ("dsp_operand_decode.sv", "MODE_EN[M_2_16]", "MODE_EN[2]", "mode-bit"),
    ("dsp_chain.sv", "cur_mode <= M_DENSE;", "cur_mode <= 3'd0;", "mode"),
    ("dsp_chain.sv", "cur_mode == M_4_16", "cur_mode == 3", "mode"),
    ("dsp_chain.sv", "MODE_EN[M_4_16] ? LEV_4", "MODE_EN[3] ? LEV_4", "mode-bit"),
    ("dsp_chain.sv", ".P_W(P_W)", ".P_W(48)", "p-width"),
    ("dsp_slice.sv", "logic [P_W-1:0] p_port", "logic [47:0] p_port", "p-width"),
    ("dsp_slice.sv", "assign pcin_port = pcin;", "assign pcin_port = 48'(pcin);", "p-width"),
    ("lut_core.sv", "parameter int P_W      = lut_core_pkg::P_W,",
     "parameter int P_W      = 48,", "p-width"),
]


@pytest.mark.parametrize("fname, site, literal, rule", INJECTIONS,
                         ids=[f"{i[0]}:{i[2]}" for i in INJECTIONS])
def test_injected_literal_is_caught(fname, site, literal, rule):
    text = (SV_DIR / fname).read_text()
    assert text.count(site) == 1, f"site {site!r} moved in {fname}"
    line = text[:text.index(site)].count("\n") + 1
    found = encoding_literals(text.replace(site, literal), fname)
    assert [(f, ln, r) for f, ln, r, _ in found] == [(fname, line, rule)], found


def test_genuine_constants_are_not_flagged():
    text = """
      // mode == 3'd1 and 48 in a comment, /* cur_mode <= 3'd2; */
      /* a block comment
         with wbits == 2'd0 */
      initial $display("mode == 3'd1, P is 48 bits");
      localparam logic [8:0] OPMODE = CASCADE_IN ? 9'b00_001_01_01 : 9'b00_000_01_01;
      DSP48E2 #(.USE_SIMD("ONE48")) u_dsp (.INMODE(5'b00100), .ALUMODE(4'b0000));
      assign w   = {{7{~code[1]}}, code[0]};
      assign sel = {2'b00, idx[1:0]};
      assign cfg_err = (cfg_bits == 3'd0) || (plane == 3'd0);
      assign x   = 8'h48 + 12'd480 + 1.48;
      assign mode_ok = MODE_EN[in_mode];
      assign y   = mode == M_DENSE && wbits != WB_8 && cur_mode == in_mode;
      always_comb case (state) 2'd0: n = 1; default: n = 0; endcase
      always_comb case (wbits) WB_2: w = 0; default: w = 1; endcase
      initial if (M_MAX != 16) $fatal(1, "x");
      assign s_row7 = s_row[7*TBL_W +: TBL_W];
      assign t = dsp_chain_pkg::P_W + lut_core_pkg::P_W;
    """
    assert encoding_literals(text) == []


def test_strip_comments_keeps_lines():
    text = "a // x\n/* y\n z */ b\n\"s\" c\n"
    out = strip_comments(text)
    assert out.count("\n") == text.count("\n")
    assert [ln.split() for ln in out.splitlines()] == [["a"], [], ["b"], ["c"]]


def test_packages_carry_the_numerics_encodings():
    p = DspChainConfig().sv_params()
    for name, (_, _, code) in MODES.items():
        assert p[mode_param(name)] == code
    assert {k: v for k, v in p.items() if k.startswith("WBITS_") and k != "WBITS_W"} == \
        {f"WBITS_{b}": c for b, c in WBITS_CODE.items()}
    assert (p["MODE_W"], p["WBITS_W"], p["M_MAX"], p["IDX_W"], p["CODE_W"], p["P_W"]) == \
        (MODE_BITS, WBITS_BITS, M_MAX, IDX_BITS, CODE_BITS, P_BITS)
    assert (MODE_BITS, WBITS_BITS, M_MAX, IDX_BITS, CODE_BITS) == (3, 2, 16, 4, 8)
    assert 1 << MODE_BITS > max(c for _, _, c in MODES.values())
    assert DSP_P_BITS == P_BITS == dsp_chain.P_W == 48
    # the mode mask is built from the same codes
    assert DspChainConfig(modes="dense,8:16").sv_params()["MODE_MASK"] == \
        (1 << MODES["dense"][2]) | (1 << MODES["8:16"][2])
    lp = LutCoreConfig().sv_params()
    assert (lp["P_W"], lp["IDX_W"], lp["MANT_W"], lp["ZP_W"]) == (P_BITS, LUT_G, SCALE_BITS, ZP_BITS)
    # the generated package text has them as localparams
    pkg = DspChainConfig().sv_package()
    for name in ("MODE_DENSE", "MODE_2_4", "MODE_8_16", "WBITS_2", "WBITS_8", "P_W", "IDX_W", "M_MAX"):
        assert re.search(rf"localparam int {name}\s+= {p[name]};", pkg), name


def test_dsp_chain_takes_module_parameters():
    """dsp_chain's geometry are module parameters defaulting to its package (like lut_core)."""
    text = (SV_DIR / "dsp_chain.sv").read_text()
    start = text.index("module dsp_chain")
    header = text[start:text.index(");", start)]
    for name in ("N_DSP", "CASCADE", "LANE_SHIFT", "ACC_W", "MODE_MASK", "P_W", "M_MAX", "IDX_W"):
        assert re.search(rf"parameter int {name}\s+= dsp_chain_pkg::{name},", header + ","), name
    # the body reads the package only for the fixed encodings
    body = text[text.index(");", start):]
    used = set(re.findall(r"dsp_chain_pkg::(\w+)", body))
    assert used == {"MODE_DENSE", "MODE_2_4", "MODE_2_16", "MODE_4_16", "MODE_8_16", "MODE_PAIR",
                    "WBITS_8"}, used
