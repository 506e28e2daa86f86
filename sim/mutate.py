"""Mutation testing of RTL: a copy of the sources with one deliberate change.

A verification environment is only as good as the bugs it catches.  Tests copy a
unit's sources, change one bit of the arithmetic at a named site, run the same
testbench and assert that its scoreboard fails::

    srcs = mutated_sources(unit_sources("lut_core"), tmp_path, "lut_lookup.sv",
                           "assign neg = !idx[3];", "assign neg = idx[3];")

:func:`switched_mutants` puts several mutants into one copy, each switched on at run
time by a testbench-written select (one Verilator build for all of them; used to show
that each of an RTL's assertions can fail).

A *campaign* (below: :func:`enumerate_mutants`, :func:`switched_build`,
:func:`run_campaign`) mutates every site of a mechanical enumeration over the RTL, builds
all mutants into one copy, runs them one after the other in one simulation and prints a
survival table; ``python -m plait.sim.mutate lut_core`` (``make mutation``) runs the LUT
core's.  One mutant alone: the ordinary tests on the campaign's build with the plusarg
``+plait_mut=K`` (``run_cocotb(..., plusargs=["+plait_mut=K"])``).
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Iterable


def _copy_sources(sources: Iterable[Path], dest: Path, file_name: str) -> tuple[list[Path], Path]:
    """Copy ``sources`` into ``dest``; returns the copies (in order) and the copy of
    ``file_name``, which must be among them."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for p in sources:
        dst = dest / Path(p).name
        shutil.copy(p, dst)
        out.append(dst)
    target = dest / file_name
    if target not in out:
        raise ValueError(f"mutation target {file_name} is not among the sources {[p.name for p in out]}")
    return out, target


def mutated_sources(sources: Iterable[Path], dest: Path, file_name: str, site: str,
                    replacement: str) -> list[Path]:
    """Copy ``sources`` into ``dest`` and replace ``site`` in ``file_name``.

    ``site`` must occur exactly once in that file (a moved or duplicated site is an
    error, so a mutation test cannot silently stop mutating anything).  Returns the
    copied source list, in the original order.
    """
    out, target = _copy_sources(sources, dest, file_name)
    text = target.read_text()
    n = text.count(site)
    if n != 1:
        raise ValueError(f"mutation site {site!r} occurs {n} times in {file_name} (expected exactly once)")
    target.write_text(text.replace(site, replacement))
    return out


def switched_mutants(sources: Iterable[Path], dest: Path, file_name: str, module: str,
                     mutants: dict[str, tuple[str, str, str]], *,
                     selector: str = "plait_mut") -> tuple[list[Path], dict[str, int]]:
    """Copy ``sources`` into ``dest`` with several mutants of ``file_name`` in one
    build, each switched on at run time.

    ``mutants`` maps a name to ``(site, old, new)``: ``site`` must occur exactly once
    in the file (after the mutants before it were applied) and the expression ``old``
    exactly once in ``site`` as a whole (not inside a longer identifier); there it
    becomes ``((selector == K) ? (new) : (old))``, ``K`` = 1, 2, ... in the order
    given.  ``selector`` is an ``int`` variable without a driver added to module
    ``module``: the testbench writes it (``dut.plait_mut.value = K``; cocotb's
    Verilator build makes every signal public), 0 is the unmutated design.  One
    build then serves every mutant (a Verilator build costs far more than a run).
    Returns the copied source list and ``{name: K}``.
    """
    copied, target = _copy_sources(sources, dest, file_name)
    text = target.read_text()
    head = f"module {module}"
    if text.count(head) != 1 or "\n);" not in text[text.index(head):]:
        raise ValueError(f"{file_name}: no single `{head}` with a port list ending in `);`")
    end = text.index("\n);", text.index(head)) + len("\n);")
    text = (text[:end] + f"\n  int {selector};   // mutant select (plait.sim.mutate."
            "switched_mutants), written by the testbench" + text[end:])
    ids = {}
    for k, (name, (site, old, new)) in enumerate(mutants.items(), start=1):
        n = text.count(site)
        if n != 1:
            raise ValueError(f"mutant {name!r}: site {site!r} occurs {n} times in {file_name} "
                             "(expected exactly once)")
        pat = re.compile(r"(?<![\w$'])" + re.escape(old) + r"(?![\w$])")
        hits = pat.findall(site)
        if len(hits) != 1:
            raise ValueError(f"mutant {name!r}: {old!r} occurs {len(hits)} times in its site "
                             f"{site!r} (expected exactly once)")
        mutated = pat.sub(lambda _m: f"(({selector} == {k}) ? ({new}) : ({old}))", site)
        text = text.replace(site, mutated)
        ids[name] = k
    target.write_text(text)
    return copied, ids


# ======================================================================= campaign
# A mutation campaign: every site of a mechanical enumeration over the RTL source,
# all mutants in one Verilator build, each run against the same short stimulus.
#
# Site enumeration (:func:`enumerate_mutants`, token based, no SV elaboration):
#
# * where: the right-hand side of every continuous ``assign`` and of every procedural
#   assignment (``<=`` / ``=`` in ``always_ff`` / ``always_comb``), and the condition of
#   every procedural ``if``.  Not mutated: comments, the simulation-only checkers
#   (```ifndef SYNTHESIS`` .. ```endif``), declarations and parameters, port
#   connections of instances, generate ``if`` / ``for`` headers and procedural ``for``
#   headers (elaboration-time constants), and every expression inside ``[...]``
#   (part-select bases and widths: which wire goes where, not arithmetic), the
#   width of a size cast (``W'(...)``, ``(W+1)'(...)``) and the count of a replication (``{N{...}}``).
#   Assignments to ``unused*`` signals (lint sinks, read by nothing) are not sites.
# * what (the site classes of the survival table):
#     ``arith``    binary ``+`` <-> ``-``, ``*`` -> ``+``
#     ``logic``    ``&`` <-> ``|``, ``^`` -> ``|``, ``&&`` <-> ``||``
#     ``compare``  ``==`` <-> ``!=``, ``<`` <-> ``<=``, ``>`` <-> ``>=``
#     ``shift``    ``<<`` <-> ``>>``, ``>>>`` -> ``>>`` (sign lost)
#     ``negation`` a unary ``!``, ``~`` or ``-`` removed
#     ``select``   the condition of a ``?:`` stuck at 1 and at 0
#     ``constant`` each literal off by one (+1 and -1, modulo its width; a 1-bit one
#                  flipped; ``'0`` <-> ``'1``)
#     ``enable``   the condition of a procedural ``if`` (register enable, load,
#                  priority) stuck at 1 and at 0
#     ``reset``    an ``if`` condition that reads ``rst_n`` stuck at 1 and at 0, and the
#                  constants / stuck-ats of assignments in a reset branch
#     ``stuck``    an assignment to a 1-bit signal (control) replaced by 1'b0 and 1'b1
#   A mutant that rewrites the site to its own text, or to the text of an earlier
#   mutant of the same site, is dropped.
# * how: every site becomes ``((SEL == k1) ? (alt1) : (SEL == k2) ? (alt2) : (orig))``
#   (:func:`switched_build`); ``SEL`` is ``plait_mut`` of the top module (an ``int``
#   that starts at ``+plait_mut=K`` or 0 and that the testbench may write) and
#   ``$root.<top>.plait_mut`` in the other modules, so one build holds every mutant
#   of every file and one simulation can visit them one after the other.

from dataclasses import dataclass, field  # noqa: E402

SITE_CLASSES = ("arith", "logic", "compare", "shift", "negation", "select", "constant",
                "enable", "reset", "stuck")

_TOKEN = re.compile(r"""
    (?P<attr>\(\*\s*\w+\s*\*\))
  | (?P<num>\d[\d_]*\s*'[sS]?[bBoOdDhH]\s*[0-9a-fA-F_xXzZ]+ | '[01xXzZ](?![\w']) | \d[\d_]*)
  | (?P<id>[A-Za-z_$][\w$]*)
  | (?P<dir>`\w+)
  | (?P<op>>>>|<<<|===|!==|==|!=|<=|>=|&&|\|\||<<|>>|\+:|-:|::|->|\+\+|--|~\^|\^~|~&|~\||[-+*/%&|^~!<>=?:;,.(){}\[\]#@'])
  | (?P<str>"(?:\\.|[^"\\])*")
""", re.X)

_BINARY = {"+": ("arith", ["-"]), "-": ("arith", ["+"]), "*": ("arith", ["+"]),
           "&": ("logic", ["|"]), "|": ("logic", ["&"]), "^": ("logic", ["|"]),
           "&&": ("logic", ["||"]), "||": ("logic", ["&&"]),
           "==": ("compare", ["!="]), "!=": ("compare", ["=="]),
           "<": ("compare", ["<="]), "<=": ("compare", ["<"]),
           ">": ("compare", [">="]), ">=": ("compare", [">"]),
           "<<": ("shift", [">>"]), ">>": ("shift", ["<<"]), ">>>": ("shift", [">>"])}
_UNARY = ("!", "~", "-")
_SKIP_ITEM = {"localparam", "parameter", "logic", "wire", "reg", "bit", "int", "integer",
              "genvar", "typedef", "import", "input", "output", "inout"}


@dataclass(frozen=True)
class Mutant:
    """One mutant: ``alt`` replaces ``orig`` (source text) at ``[start, end)`` of
    ``file``; ``key`` is stable across line moves (file, the statement's text with
    blanks squeezed, an occurrence index if that text repeats, the change)."""

    file: str
    line: int
    cls: str
    desc: str
    stmt: str
    start: int
    end: int
    orig: str
    alt: str
    key: str = ""

    @property
    def name(self) -> str:
        return f"{self.file}:{self.line} {self.desc}"


def _blank(text: str, a: int, b: int) -> str:
    return text[:a] + "".join(c if c == "\n" else " " for c in text[a:b]) + text[b:]


def _visible(text: str) -> str:
    """``text`` with comments, strings and the ```ifndef SYNTHESIS`` checkers blanked
    (same length, newlines kept, so offsets and lines stay valid)."""
    for m in list(re.finditer(r"//[^\n]*|/\*.*?\*/", text, re.S)):
        text = _blank(text, m.start(), m.end())
    while True:
        m = re.search(r"`ifndef\s+SYNTHESIS\b.*?`endif\b", text, re.S)
        if not m:
            return text
        text = _blank(text, m.start(), m.end())


@dataclass
class _Tok:
    kind: str
    text: str
    start: int
    end: int


def _tokens(text: str) -> list[_Tok]:
    out, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        m = _TOKEN.match(text, i)
        if not m:
            raise ValueError(f"mutation tokenizer: unexpected {text[i:i + 20]!r} at offset {i}")
        out.append(_Tok(m.lastgroup, m.group(), m.start(), m.end()))
        i = m.end()
    return out


class _Parser:
    """Walks one module's items and statements, collecting mutation sites."""

    def __init__(self, text: str, file: str, module: str):
        self.text, self.file = text, file
        vis = _visible(text)
        self.t = _tokens(vis)
        #: (first token, last token + 1, kind, in a reset branch, lhs name, statement's first token)
        self.sites: list[tuple[int, int, str, bool, str | None, int]] = []
        self.one_bit: set[str] = set()
        idx = [i for i, tk in enumerate(self.t[:-1])
               if tk.text == "module" and self.t[i + 1].text == module]
        if len(idx) != 1:
            raise ValueError(f"{file}: expected one `module {module}`, found {len(idx)}")
        self.i = idx[0] + 2

    # -- helpers
    def tx(self, i=None):
        i = self.i if i is None else i
        return self.t[i].text if i < len(self.t) else ""

    def match_close(self, i: int) -> int:
        """Index of the bracket closing the one at ``i``."""
        pairs = {"(": ")", "[": "]", "{": "}"}
        depth, opener = 0, self.t[i].text
        for j in range(i, len(self.t)):
            if self.t[j].text == opener:
                depth += 1
            elif self.t[j].text == pairs[opener]:
                depth -= 1
                if depth == 0:
                    return j
        raise ValueError(f"{self.file}: unbalanced {opener!r} at offset {self.t[i].start}")

    def until(self, i: int, stops: tuple[str, ...]) -> int:
        """First index >= i of a token in ``stops`` outside brackets."""
        j = i
        while j < len(self.t):
            s = self.t[j].text
            if s in ("(", "[", "{"):
                j = self.match_close(j) + 1
                continue
            if s in stops:
                return j
            j += 1
        raise ValueError(f"{self.file}: no {stops} after offset {self.t[i].start}")

    def label(self) -> None:
        if self.tx() == ":" and self.t[self.i + 1].kind == "id":
            self.i += 2

    # -- module level
    def parse(self) -> None:
        if self.tx() == "#":
            self.i = self.match_close(self.i + 1) + 1
        if self.tx() == "(":
            close = self.match_close(self.i)
            self.declared(self.i + 1, close)
            self.i = close + 1
        if self.tx() != ";":
            raise ValueError(f"{self.file}: no `;` after the port list")
        self.i += 1
        self.items(("endmodule",))

    def declared(self, a: int, b: int) -> None:
        """Record the 1-bit names declared in tokens [a, b): comma-separated entries of
        a port list (``output logic name``) or of one declaration (``logic a, b;``)."""
        entry: list[_Tok] = []
        one_bit = None                       # the type of a declaration carries over
        for j in range(a, b + 1):
            if j < b and self.t[j].text != ",":
                entry.append(self.t[j])
                continue
            words = [tk.text for tk in entry]
            if any(w in ("logic", "wire", "reg", "bit") for w in words):
                one_bit = "[" not in words
            if one_bit and entry and entry[-1].kind == "id" and "[" not in words:
                self.one_bit.add(words[-1])
            entry = []

    def items(self, ends: tuple[str, ...]) -> None:
        while self.tx() not in ends:
            if not self.tx():
                raise ValueError(f"{self.file}: unexpected end of file (expected {ends})")
            self.item()

    def item(self) -> None:
        """One module item (or generate item)."""
        s = self.tx()
        tk = self.t[self.i]
        if tk.kind == "attr" or s in ("generate", "endgenerate"):
            self.i += 1
        elif s == "assign":
            eq = self.until(self.i + 1, ("=",))
            end = self.until(eq + 1, (";",))
            lhs = self.t[self.i + 1].text if eq == self.i + 2 else None
            self.sites.append((eq + 1, end, "assign", False, lhs, self.i))
            self.i = end + 1
        elif s in ("always_ff", "always_comb", "always_latch", "always"):
            self.i += 1
            if self.tx() == "@":
                self.i = self.match_close(self.i + 1) + 1
            self.stmt(False)
        elif s in ("initial", "final"):
            n = len(self.sites)
            self.i += 1
            self.stmt(False)
            del self.sites[n:]
        elif s == "for":
            self.i = self.match_close(self.i + 1) + 1
            self.gen_body()
        elif s == "if":
            self.i = self.match_close(self.i + 1) + 1
            self.gen_body()
            if self.tx() == "else":
                self.i += 1
                if self.tx() == "if":
                    self.item()
                else:
                    self.gen_body()
        elif s == "begin":
            self.gen_body()
        elif s in ("function", "task"):
            # header up to its `;`, then the body's statements are sites
            end_kw = "end" + s
            self.i = self.until(self.i, (";",)) + 1
            while self.tx() != end_kw:
                if not self.tx():
                    raise ValueError(f"{self.file}: no `{end_kw}`")
                self.stmt(False)
            self.i += 1
            self.label()
        else:                                    # declaration, instance, ...
            end = self.until(self.i, (";",))
            if s in ("logic", "wire", "reg", "bit"):
                self.declared(self.i, end)
            self.i = end + 1

    def gen_body(self) -> None:
        if self.tx() == "begin":
            self.i += 1
            self.label()
            self.items(("end",))
            self.i += 1
            self.label()
        else:
            self.item()

    # -- procedural statements
    def stmt(self, in_reset: bool) -> None:
        s = self.tx()
        if self.t[self.i].kind == "attr":
            self.i += 1
            return self.stmt(in_reset)
        if s == "begin":
            self.i += 1
            self.label()
            while self.tx() != "end":
                self.stmt(in_reset)
            self.i += 1
            self.label()
        elif s == "if":
            close = self.match_close(self.i + 1)
            cond = (self.i + 2, close)
            reads_rst = any(self.t[j].text == "rst_n" for j in range(*cond))
            self.sites.append((cond[0], cond[1], "reset" if reads_rst else "enable", in_reset, None, self.i))
            self.i = close + 1
            neg_rst = reads_rst and self.t[cond[0]].text == "!" and cond[1] - cond[0] == 2
            self.stmt(in_reset or neg_rst)
            if self.tx() == "else":
                self.i += 1
                self.stmt(in_reset)
        elif s == "for":
            self.i = self.match_close(self.i + 1) + 1
            self.stmt(in_reset)
        elif s in ("unique", "unique0", "priority") and self.tx(self.i + 1) in ("case", "casez", "casex", "if"):
            self.i += 1                              # the qualifier changes no site
            self.stmt(in_reset)
        elif s in ("case", "casez", "casex"):
            # case (expr) labels: stmt ... [default[:] stmt] endcase -- the items'
            # statements are sites; the selector and the labels are not mutated
            self.i = self.match_close(self.i + 1) + 1
            while self.tx() != "endcase":
                if not self.tx():
                    raise ValueError(f"{self.file}: no `endcase` (offset {self.t[self.i - 1].start})")
                if self.tx() == "default":
                    self.i += 1
                    if self.tx() == ":":
                        self.i += 1
                else:
                    self.i = self.until(self.i, (":",)) + 1
                self.stmt(in_reset)
            self.i += 1
        elif s in ("while", "repeat", "forever"):
            raise ValueError(f"{self.file}: mutation enumeration does not handle `{s}` "
                             f"(offset {self.t[self.i].start})")
        elif s == ";":
            self.i += 1
        else:
            op = self.until(self.i, ("<=", "=", ";"))
            if self.tx(op) == ";":
                self.i = op + 1                      # a call ($display, ...): no site
                return
            end = self.until(op + 1, (";",))
            lhs = self.t[self.i].text if op == self.i + 1 else None
            self.sites.append((op + 1, end, "reset" if in_reset else "assign", in_reset, lhs, self.i))
            self.i = end + 1


def _literal_alts(s: str) -> list[str]:
    """Off-by-one variants of a literal (modulo its width); '0 <-> '1."""
    if s.startswith("'"):
        return {"'0": ["'1"], "'1": ["'0"]}.get(s, [])
    m = re.fullmatch(r"(\d[\d_]*)\s*'([sS]?)([bBoOdDhH])\s*([0-9a-fA-F_]+)", s)
    if m:
        w, sg, base, digits = int(m.group(1).replace("_", "")), m.group(2), m.group(3).lower(), m.group(4)
        v = int(digits.replace("_", ""), {"b": 2, "o": 8, "d": 10, "h": 16}[base])
        mask = (1 << w) - 1
        fmt = {"b": "b", "o": "o", "d": "d", "h": "x"}[base]
        out = []
        for nv in ((v + 1) & mask, (v - 1) & mask):
            t = f"{w}'{sg}{base}{format(nv, fmt)}"
            if nv != v and t not in out:
                out.append(t)
        return out
    if re.fullmatch(r"\d[\d_]*", s):
        v = int(s.replace("_", ""))
        return [str(v + 1)] + ([str(v - 1)] if v > 0 else [])
    return []                                    # x / z literals: not mutated


def _expr_edits(text: str, toks: list[_Tok], a: int, b: int) -> list[tuple[str, str, list[tuple[int, int, str]]]]:
    """Mutations of the expression in tokens [a, b): ``(class, description, edits)``
    with ``edits`` = ``[(first token, last token + 1, new text)]``."""
    out = []
    skip: set[int] = set()
    for i in range(a, b):                        # replication counts: {N{...}}, {(e){...}}
        if toks[i].text != "{" or i + 1 >= b:
            continue
        j = i + 1
        if toks[j].text == "(":
            depth = 0
            for k in range(j, b):
                depth += toks[k].text == "("
                depth -= toks[k].text == ")"
                if depth == 0:
                    break
            if k + 1 < b and toks[k + 1].text == "{":
                skip.update(range(j, k + 1))
        elif toks[j].kind in ("id", "num") and j + 1 < b and toks[j + 1].text == "{":
            skip.add(j)
    for k in range(a, b - 1):                    # parenthesized cast widths: (W+1)'(...)
        if toks[k].text != ")" or toks[k + 1].text != "'":
            continue
        depth = 0
        for j in range(k, a - 1, -1):
            depth += toks[j].text == ")"
            depth -= toks[j].text == "("
            if depth == 0:
                break
        skip.update(range(j, k + 1))
    sq = 0
    for i in range(a, b):
        tk = toks[i]
        if tk.text == "[":
            sq += 1
            continue
        if tk.text == "]":
            sq -= 1
            continue
        if sq or i in skip:
            continue
        prev = toks[i - 1] if i > a else None
        operand_before = prev is not None and (prev.kind in ("id", "num") or prev.text in (")", "]", "}"))
        if tk.kind == "op" and tk.text in _BINARY and operand_before:
            cls, alts = _BINARY[tk.text]
            for alt in alts:
                out.append((cls, f"`{tk.text}` -> `{alt}`", [(i, i + 1, alt)]))
        elif tk.kind == "op" and tk.text in _UNARY and not operand_before:
            out.append(("negation", f"unary `{tk.text}` removed", [(i, i + 1, "")]))
        elif tk.text == "?":
            # the condition: back to the enclosing bracket, a `,`, or an outer ?/:
            depth, j = 0, i - 1
            while j >= a:
                s = toks[j].text
                if s in (")", "]", "}"):
                    depth += 1
                elif s in ("(", "[", "{"):
                    if depth == 0:
                        break
                    depth -= 1
                elif depth == 0 and s in (",", "?", ":"):
                    break
                j -= 1
            cond = " ".join(text[toks[j + 1].start:toks[i - 1].end].split())
            for v in ("1'b1", "1'b0"):
                out.append(("select", f"`{cond} ?` stuck at {v[-1]}", [(j + 1, i, v)]))
        elif tk.kind == "num":
            nxt = toks[i + 1].text if i + 1 < len(toks) else ""
            if nxt == "'":                      # the width of a size cast
                continue
            for alt in _literal_alts(tk.text):
                out.append(("constant", f"`{tk.text}` -> `{alt}`", [(i, i + 1, alt)]))
    return out


def enumerate_mutants(path: Path, module: str | None = None) -> list[Mutant]:
    """Every mutant of the site enumeration (see above) in the module of ``path``
    (``module`` defaults to the file's stem)."""
    path = Path(path)
    text = path.read_text()
    module = module or path.stem
    p = _Parser(text, path.name, module)
    p.parse()
    toks = p.t
    muts: list[Mutant] = []
    seen_stmt: dict[str, int] = {}
    for a, b, kind, in_reset, lhs, stmt_a in p.sites:
        if a >= b:
            continue
        if lhs is not None and lhs.startswith("unused"):
            continue                             # a lint sink (`assign unused_x = ^x;`): no reader
        start, end = toks[a].start, toks[b - 1].end
        orig = text[start:end]
        is_cond = toks[stmt_a].text == "if"
        if is_cond:
            stmt_text = "if (" + " ".join(orig.split()) + ")"
        else:
            stmt_text = " ".join(text[toks[stmt_a].start:end].split()) + ";"
        occ = seen_stmt.get(stmt_text, 0)
        seen_stmt[stmt_text] = occ + 1
        edits = _expr_edits(text, toks, a, b)
        if is_cond:
            cls = "reset" if any(toks[j].text == "rst_n" for j in range(a, b)) else "enable"
            if cls == "reset":                   # every change of a reset condition
                edits = [(cls, d, e) for _c, d, e in edits]
            edits += [(cls, f"condition stuck at {v[-1]}", [(a, b, v)]) for v in ("1'b1", "1'b0")]
        elif lhs in p.one_bit:
            edits += [("stuck", f"`{lhs}` stuck at {v[-1]}", [(a, b, v)]) for v in ("1'b0", "1'b1")]
        alts_seen = {" ".join(orig.split())}
        descs: dict[str, int] = {}
        for cls, desc, ed in edits:
            descs[desc] = descs.get(desc, 0) + 1
            if descs[desc] > 1:
                desc = f"{desc} ({descs[desc]}.)"
            if in_reset and cls in ("constant", "stuck"):
                cls = "reset"
            pieces, pos = [], start
            for i0, i1, new in sorted(ed):
                pieces += [text[pos:toks[i0].start], new]
                pos = toks[i1 - 1].end
            pieces.append(text[pos:end])
            alt = "".join(pieces)
            norm = " ".join(alt.split())
            if norm in alts_seen:
                continue
            alts_seen.add(norm)
            key = f"{path.name}: {stmt_text}{f' @{occ}' if occ else ''} :: {desc}"
            muts.append(Mutant(path.name, text.count("\n", 0, start) + 1, cls, desc, stmt_text,
                               start, end, orig, alt, key))
    keys = [m.key for m in muts]
    dup = {k for k in keys if keys.count(k) > 1}
    if dup:
        muts = [m if m.key not in dup else
                Mutant(**{**m.__dict__, "key": f"{m.key} #{m.start}"}) for m in muts]
    return muts


def _insert_after_ports(text: str, module: str, decl: str, file_name: str) -> str:
    head = f"module {module}"
    if text.count(head) != 1 or "\n);" not in text[text.index(head):]:
        raise ValueError(f"{file_name}: no single `{head}` with a port list ending in `);`")
    end = text.index("\n);", text.index(head)) + len("\n);")
    return text[:end] + decl + text[end:]


def switched_build(sources: Iterable[Path], dest: Path, mutants: list[Mutant], top: str, *,
                   selector: str = "plait_mut") -> tuple[list[Path], dict[str, int]]:
    """Copy ``sources`` into ``dest`` with every mutant of ``mutants`` (from
    :func:`enumerate_mutants`, any of the files) switched at run time; returns the copied
    sources (original order) and ``{mutant key: K}``, K = 1, 2, ... in the order given.

    The top module ``top`` gets ``int plait_mut`` (``selector``), initialised from the
    plusarg ``+plait_mut=K`` (0 without it: the unmutated design) and writable by the
    testbench (``dut.plait_mut.value = K``); the other modules read
    ``$root.<top>.plait_mut``.  Every mutated site becomes ``((SEL == K1) ? (alt1) :
    ... : (orig))``.  The mutants are checked against the sources: a site whose text
    moved is an error."""
    sources = [Path(p) for p in sources]
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    by_file: dict[str, list[tuple[int, Mutant]]] = {}
    ids: dict[str, int] = {}
    for k, m in enumerate(mutants, start=1):
        if m.key in ids:
            raise ValueError(f"mutant key {m.key!r} given twice")
        ids[m.key] = k
        by_file.setdefault(m.file, []).append((k, m))
    names = {p.name for p in sources}
    if top + ".sv" not in names:
        raise ValueError(f"switched_build: no {top}.sv among the sources {sorted(names)}")
    missing = set(by_file) - names
    if missing:
        raise ValueError(f"switched_build: mutants of {sorted(missing)}, not among the sources")
    out = []
    for p in sources:
        text = p.read_text()
        module = p.stem
        sel = selector if module == top else f"$root.{top}.{selector}"
        sites: dict[tuple[int, int], list[tuple[int, Mutant]]] = {}
        for k, m in by_file.get(p.name, []):
            if text[m.start:m.end] != m.orig:
                raise ValueError(f"mutant {m.key!r}: the source no longer has {m.orig!r} "
                                 f"at offset {m.start} of {p.name} (enumerate again)")
            sites.setdefault((m.start, m.end), []).append((k, m))
        for (a, b), ms in sorted(sites.items(), reverse=True):
            if any(a < b2 and a2 < b for (a2, b2) in sites if (a2, b2) != (a, b)):
                raise ValueError(f"{p.name}: overlapping mutation sites at offset {a}")
            arms = "".join(f"({sel} == {k}) ? ({m.alt}) : " for k, m in ms)
            text = text[:a] + f"({arms}({text[a:b]}))" + text[b:]
        if module == top:
            text = _insert_after_ports(
                text, top, f"\n  int {selector};   // mutant select (plait.sim.mutate.switched_build)"
                f"\n  initial if (!$value$plusargs(\"{selector}=%d\", {selector})) {selector} = 0;",
                p.name)
        if sites:
            # an operator swap changes an expression's width (z' * X -> z' + X): a
            # width warning, not an error, in a mutant copy (a pragma, not a build flag:
            # the build shares its run-time objects with the unit's ordinary builds)
            text = "/* verilator lint_off WIDTH */\n" + text
        dst = dest / p.name
        dst.write_text(text)
        out.append(dst)
    return out, ids


# ------------------------------------------------------------------ running a campaign
@dataclass
class CampaignSpec:
    """What a campaign mutates and how its bench runs the mutants.

    ``files``: the unit's sources to mutate (each holds the module of its stem);
    ``config``: the unit config of the build (``more_configs``: builds the mutants that
    live on the first one run on again) (its ``to_json`` goes to
    ``$PLAIT_TB_CONFIG``); ``testcase``: the cocotb test that visits the mutant selects
    listed (JSON) in ``$<ids_env>`` and writes ``mutants.json`` (``[{"mut", "t0", "t1",
    "verdict"}]``, verdict ``""`` = every output right); ``equivalent``: ``{(file,
    statement text or a unique part of it, change description): why}`` -- the mutants
    judged equivalent (no stimulus can tell them from the design) after looking at each."""

    name: str
    top: str
    files: tuple[str, ...]
    config: object
    test_module: str
    testcase: str
    ids_env: str
    env: dict = field(default_factory=dict)
    equivalent: dict = field(default_factory=dict)
    more_configs: tuple = ()


@dataclass
class MutantResult:
    mutant: Mutant
    status: str            # killed / survived / equivalent
    how: str = ""          # killed: mismatch, hung, cfg, assertion <label>, crash, ...
    detail: str = ""

    def row(self) -> str:
        return f"{self.mutant.name}: {self.mutant.stmt}"


@dataclass
class CampaignResult:
    spec: CampaignSpec
    results: list[MutantResult]
    seconds: float = 0.0
    built: bool = False
    sources: list[Path] = field(default_factory=list)     # the switched build's sources
    ids: dict[str, int] = field(default_factory=dict)     # mutant key -> plait_mut K

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self.results:
            c = out.setdefault(r.mutant.cls, {"killed": 0, "survived": 0, "equivalent": 0})
            c[r.status] += 1
        return out

    @property
    def survivors(self) -> list[MutantResult]:
        return [r for r in self.results if r.status == "survived"]

    def table(self) -> str:
        """The survival table: per site class, mutants killed / survived / equivalent
        and the survival rate survived / (killed + survived)."""
        counts = self.counts()
        lines = [f"mutation campaign {self.spec.name}: {len(self.results)} mutants of "
                 f"{', '.join(self.spec.files)}",
                 f"  {'class':9} {'mutants':>7} {'killed':>7} {'survived':>8} {'equiv':>6} {'survival':>9}"]
        tot = {"killed": 0, "survived": 0, "equivalent": 0}
        for cls in [c for c in SITE_CLASSES if c in counts] + sorted(set(counts) - set(SITE_CLASSES)):
            c = counts[cls]
            for k in tot:
                tot[k] += c[k]
            lines.append(self._row(cls, c))
        lines.append(self._row("total", tot))
        how: dict[str, int] = {}
        for r in self.results:
            if r.status == "killed":
                h = r.how.split(" ", 1)[0]
                how[h] = how.get(h, 0) + 1
        lines.append("  killed by: " + ", ".join(f"{k} {v}" for k, v in sorted(how.items())))
        for r in self.results:
            if r.status != "killed":
                lines.append(f"  {r.status.upper():10} {r.row()}" + (f"\n               why: {r.detail}" if r.detail else ""))
        return "\n".join(lines)

    @staticmethod
    def _row(cls: str, c: dict[str, int]) -> str:
        n = c["killed"] + c["survived"] + c["equivalent"]
        live = c["killed"] + c["survived"]
        rate = f"{100 * c['survived'] / live:8.1f}%" if live else f"{'-':>9}"
        return f"  {cls:9} {n:7d} {c['killed']:7d} {c['survived']:8d} {c['equivalent']:6d} {rate}"


_ASSERT_FAIL = re.compile(r"^\[(\d+)\] %Error: \S+ Assertion failed in (\S+): (.*)$", re.M)


def equivalence_reason(m: Mutant, equivalent: dict) -> str | None:
    """The reason ``equivalent`` gives for ``m`` (matched on file, a part of the
    statement text and the change description), or None."""
    for (f, stmt, desc), why in equivalent.items():
        if f == m.file and stmt in m.stmt and desc == m.desc:
            return why
    return None


def campaign_mutants(spec: CampaignSpec) -> list[Mutant]:
    """Every mutant of the campaign's files, in file order."""
    from plait.rtl.units import SV_DIR
    out: list[Mutant] = []
    for f in spec.files:
        out += enumerate_mutants(SV_DIR / f)
    return out


def sample_mutants(mutants: list[Mutant], per_class: int) -> list[Mutant]:
    """A deterministic sample: up to ``per_class`` mutants of each site class, spread
    evenly over the class's mutants (in source order)."""
    out = []
    for cls in dict.fromkeys(m.cls for m in mutants):
        ms = [m for m in mutants if m.cls == cls]
        if len(ms) <= per_class:
            out += ms
        else:
            out += [ms[round(i * (len(ms) - 1) / max(1, per_class - 1))] for i in range(per_class)]
    return [m for m in mutants if m in out]


def run_sample(spec: CampaignSpec, per_class: int, *, log=print) -> "CampaignResult":
    """A CI-sized campaign: :func:`sample_mutants` of the spec's mutants (every site class
    must be in the sample), run, and its survival table logged."""
    muts = sample_mutants(campaign_mutants(spec), per_class)
    missing = set(SITE_CLASSES) - {m.cls for m in muts}
    if missing:
        raise ValueError(f"campaign {spec.name}: no mutant of the site classes {sorted(missing)}")
    res = run_campaign(spec, muts, log=log)
    log("\n" + res.table())
    return res


def _crash_reason(err) -> str:
    if err is None:
        return "the simulation ended early"
    for _name, msg in err.failures:
        return " ".join(msg.split())[:300]
    return " ".join(str(err).split())[:300]


def _simulate(spec: CampaignSpec, config, srcs: list[Path], todo: list[int], log):
    """Run the campaign's testcase over the mutant selects ``todo`` (0 first) on the
    build of ``config``.  Returns ``(windows, failed assertions, crashed, built)``
    per select: a simulation that dies in a window records that select as crashed and
    starts again after it."""
    from plait.sim.runner import SimulationFailed, run_cocotb
    windows: dict[int, dict] = {}
    fails: dict[int, list[tuple[int, str, str]]] = {}
    crashed: dict[int, str] = {}
    built = False
    while todo:
        env = {"PLAIT_TB_CONFIG": config.to_json(), **spec.env, spec.ids_env: json.dumps(todo)}
        err = None
        try:
            run = run_cocotb(spec.top, srcs, spec.test_module, config=config, env=env,
                             testcase=spec.testcase,
                             plusargs=["+verilator+error+limit+1000000"])
            run_dir, built = run.run_dir, built or run.built
        except SimulationFailed as e:
            err = e
            run_dir = Path(e.results).parent if e.results else None
        if run_dir is None:
            raise err
        done = []
        if (run_dir / "mutants.json").is_file():
            done = json.loads((run_dir / "mutants.json").read_text())
        log_path = run_dir / "sim.log"
        log_text = log_path.read_text(errors="replace") if log_path.is_file() else ""
        got = [(int(t), sc.rsplit(".", 1)[-1], msg) for t, sc, msg in _ASSERT_FAIL.findall(log_text)]
        for w in done:                          # times restart in every simulation
            windows[w["mut"]] = w
            fails[w["mut"]] = [f for f in got if w["t0"] < f[0] <= w["t1"]]
        left = todo[len(done):]
        if not left:
            if err is not None:
                raise err
            break
        if left[0] == 0:
            raise AssertionError(f"campaign {spec.name}: the unmutated design failed:\n{err}")
        crashed[left[0]] = _crash_reason(err)
        log(f"  mutant {left[0]} ended the simulation ({crashed[left[0]][:120]}); resuming after it")
        todo = left[1:]
    base = windows.get(0)
    if base is None or base["verdict"] or fails.get(0):
        raise AssertionError(f"campaign {spec.name}: the unmutated design failed the stimulus: "
                             f"{base}, assertions {fails.get(0, [])[:3]}")
    return windows, fails, crashed, built


def run_campaign(spec: CampaignSpec, mutants: list[Mutant] | None = None, *,
                 dest: Path | None = None, log=print) -> CampaignResult:
    """Build every mutant into one copy of the unit (:func:`switched_build`), run the
    spec's testcase over all of them in one simulation (0 first: the unmutated design
    must pass) and classify each: *killed* when its window has a wrong / missing output,
    a hang, a bench error or a failed assertion (or the simulation died in it:
    ``crash``); mutants that live on the first build (``spec.config``) and that the
    spec's equivalence table does not explain run again on the builds of
    ``spec.more_configs`` (other parameters elaborate other generate branches), and a
    kill on any build counts; what lives is *equivalent* when the table says so (each
    entry is a judgement, made after looking at the mutant), else *survived*."""
    import time as _time

    from plait.ir.cache import cache_dir
    from plait.rtl.units import unit_sources

    t_start = _time.time()
    mutants = campaign_mutants(spec) if mutants is None else list(mutants)
    dest = Path(dest) if dest else cache_dir() / "mutants" / spec.name
    srcs, ids = switched_build(unit_sources(spec.top), dest / "rtl", mutants, spec.top)
    by_id = {ids[m.key]: m for m in mutants}
    verdicts: dict[int, tuple[str, str]] = {}       # select -> (how, detail) of a kill
    built = False
    todo = sorted(by_id)
    for n_cfg, config in enumerate((spec.config, *spec.more_configs)):
        if not todo:
            break
        windows, fails, crashed, b = _simulate(spec, config, srcs, [0, *todo], log)
        built = built or b
        tag = "" if n_cfg == 0 else f" (build {n_cfg + 1})"
        for k in todo:
            if k in crashed:
                verdicts[k] = ("crash" + tag, crashed[k])
            elif fails[k]:
                f = fails[k][0]
                verdicts[k] = (f"assertion {f[1]}{tag}", windows[k]["verdict"] or f[2][:200])
            elif windows[k]["verdict"]:
                v = windows[k]["verdict"]
                verdicts[k] = (v.split(":", 1)[0].split(" ", 1)[0] + tag, v)
        # the next builds: what lives and the equivalence table does not explain
        todo = [k for k in todo if k not in verdicts
                and equivalence_reason(by_id[k], spec.equivalent) is None]
    results = []
    for k, m in sorted(by_id.items()):
        if k in verdicts:
            results.append(MutantResult(m, "killed", *verdicts[k]))
        elif (why := equivalence_reason(m, spec.equivalent)) is not None:
            results.append(MutantResult(m, "equivalent", "", why))
        else:
            results.append(MutantResult(m, "survived"))
    if mutants == campaign_mutants(spec):
        stale = [key for key in spec.equivalent
                 if not any(equivalence_reason(m, {key: ""}) is not None for m in mutants)]
        if stale:
            raise ValueError(f"campaign {spec.name}: equivalence entries match no mutant: {stale}")
    return CampaignResult(spec, results, _time.time() - t_start, built, srcs, ids)


# ------------------------------------------------------------------ campaigns + CLI
def lut_core_campaign() -> CampaignSpec:
    """The LUT tensor core: lut_core.sv and its three submodules, on the small build of
    tests/test_rtl_lut_core.py (1x8, 2 dequantizer lanes = 4 steps, groups <= 32, all
    weight widths), the bench's ``test_mutants`` (cfg checks, random tiles of every mode
    with gaps and stalls, the directed extremes of every mode)."""
    from plait.rtl.lut_core import LutCoreConfig
    from plait.sim.tb.test_lut_core import MUTANT_EQUIVALENT
    return CampaignSpec(
        name="lut_core", top="lut_core",
        files=("lut_core.sv", "lut_lookup.sv", "lut_precompute.sv", "lut_sel.sv"),
        config=LutCoreConfig(m=1, n=8, dq_lanes=2, max_group=32),
        # the W1-only build: its table register has no plane shift (g_fix); 5 steps, so
        # the step counters' wrap-around is not the power of two's (and S - 2 differs from
        # S + 2 modulo 2^DQS_W); one dequantizer step per group (N = dq_lanes)
        more_configs=(LutCoreConfig(m=1, n=10, dq_lanes=2, max_group=32, max_bits=1),
                      LutCoreConfig(m=1, n=4, dq_lanes=4, max_group=32)),
        test_module="plait.sim.tb.test_lut_core", testcase="test_mutants",
        ids_env="PLAIT_LUT_MUTANTS", equivalent=MUTANT_EQUIVALENT)


def dsp_chain_campaign() -> CampaignSpec:
    """The sparse DSP chain: dsp_chain.sv and the submodules the behavioural build
    simulates (operand decode, sparse MUX, lane split, cascade group, delay lines; not
    dsp_slice.sv, whose preprocessor branches the enumerator does not parse), on the
    16-slice all-modes build, the bench's ``test_mutants`` (random tiles of every mode and
    width with extreme operands and one-beat groups, the waveform latency, the same
    under back-pressure with input gaps, an unsupported mode code)."""
    from plait.ir.numerics.dsp import CHAIN_MODES
    from plait.rtl.dsp_chain import DspChainConfig
    from plait.sim.tb.test_dsp_chain import MUTANT_EQUIVALENT
    return CampaignSpec(
        name="dsp_chain", top="dsp_chain",
        files=("dsp_chain.sv", "dsp_operand_decode.sv", "dsp_sparse_mux.sv", "dsp_lane_adjust.sv",
               "dsp_cascade_group.sv", "dsp_delay.sv"),
        config=DspChainConfig(modes=",".join(CHAIN_MODES)),
        # 16-bit lanes: the lower lane's window is offset (LO_OFF != 0: the row
        # correction g_lo_off) and as wide as the lane (the inverted bit, g_flip)
        more_configs=(DspChainConfig(modes=",".join(CHAIN_MODES), lane_shift=16),),
        test_module="plait.sim.tb.test_dsp_chain", testcase="test_mutants",
        ids_env="PLAIT_DSP_MUTANTS", env={"PLAIT_TB_EXPECT_SLICE": "behavioural"},
        equivalent=MUTANT_EQUIVALENT)


CAMPAIGNS = {"lut_core": lut_core_campaign, "dsp_chain": dsp_chain_campaign}


def main(argv: list[str] | None = None) -> int:
    """``python -m plait.sim.mutate [lut_core] [--per-class N] [--list]``: enumerate the
    campaign's mutants, run them, print the survival table; exit 1 if a non-equivalent
    mutant survived."""
    import argparse
    ap = argparse.ArgumentParser(prog="python -m plait.sim.mutate", description=main.__doc__)
    ap.add_argument("campaign", nargs="?", default="lut_core", choices=sorted(CAMPAIGNS))
    ap.add_argument("--per-class", type=int, default=0,
                    help="run a sample of at most N mutants per site class (0: all)")
    ap.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    ap.add_argument("--json", type=Path, help="write the results as JSON here")
    a = ap.parse_args(argv)
    spec = CAMPAIGNS[a.campaign]()
    muts = campaign_mutants(spec)
    if a.per_class:
        muts = sample_mutants(muts, a.per_class)
    if a.list:
        for m in muts:
            print(f"{m.cls:9} {m.name:50} {m.stmt}")
        print(f"{len(muts)} mutants")
        return 0
    res = run_campaign(spec, muts)
    print(res.table())
    print(f"  {len(muts)} mutants in {res.seconds:.1f} s ({'built' if res.built else 'cached builds'})")
    if a.json:
        a.json.write_text(json.dumps([{**r.mutant.__dict__, "name": r.mutant.name,
                                       "status": r.status, "how": r.how, "detail": r.detail}
                                      for r in res.results], indent=1))
    return 1 if res.survivors else 0


if __name__ == "__main__":
    raise SystemExit(main())
