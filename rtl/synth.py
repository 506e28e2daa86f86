"""Resource counts from real synthesis: yosys ``synth_xilinx`` (UltraScale+).

:func:`synthesize` runs::

    read_verilog -sv -DPLAIT_FAMILY_<FAMILY> [-D...] <pkg.sv> <sources...>
    chparam -set NAME VALUE TOP           # for each entry of params
    synth_xilinx -family xcup -top TOP -flatten -noiopad
    tee -q -o stat.json stat -json
    write_json netlist.json               # for DSP cascade counting

and returns :class:`Resources`: LUT (LUT1..LUT6), FF (FD*), CARRY (CARRY4/CARRY8),
DSP48E2, BRAM (RAMB36E2 = 1, RAMB18E2 = 0.5; both raw counts kept), LUTRAM
(RAM*M / RAM*X*), SRL (SRL16E/SRLC32E), MUXF (MUXF7/8/9), URAM, the raw cell table
and the number of DSP cascade links (``PCOUT -> PCIN``, ``ACOUT -> ACIN``,
``BCOUT -> BCIN`` between DSP48E2 cells) found in the netlist.

Inputs: the top name, SV source paths, an optional :class:`~plait.rtl.config.UnitConfig`
whose package is written next to the yosys script and read first, ``params``
(top-level parameter overrides, applied with ``chparam``) and ``defines``.
yosys 0.23's SystemVerilog front end is limited; the subset that works there and
in Verilator is listed in ``rtl/sv/README.md`` (most importantly: no ``import``,
reference the package as ``pkg::NAME``; no ``return``; multi-dimensional packed
arrays only through a typedef).

Results are cached by a hash of every input (sources' contents, package text,
params, defines, family, yosys version, flow version) in
``$PLAIT_CACHE/synth/<key>.json``.  A missing yosys raises :class:`ToolMissing`
(with the apt-get hint); a yosys error raises :class:`SynthesisFailed` with the
end of the log.

:func:`synthesize_netlist` does the same and also keeps the flattened netlist
(``<key>.netlist.json.gz`` beside the cache entry) for the timing estimate of
:mod:`plait.rtl.timing`.

This module also owns :class:`ToolMissing` and :func:`find_yosys` (the ``rtl``
layer may not import ``plait.sim``; :mod:`plait.sim.verilator` re-exports them).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import typing
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from plait.ir.cache import cache_dir

from .config import UnitConfig

__all__ = ["ToolMissing", "SynthesisFailed", "Resources", "synthesize", "synthesize_unit",
           "synthesize_netlist", "load_netlist", "netlist_path", "find_yosys", "yosys_version",
           "classify_cells", "RESOURCE_KEYS"]

YOSYS_HINT = ("install yosys: `apt-get install yosys` (Debian/Ubuntu) or set PLAIT_YOSYS "
              "to the yosys executable")
_FLOW_VERSION = 3
#: the families whose DSP slice is the DSP48E2
DSP48E2_FAMILIES = ("xcup", "xcu")
#: the define that builds the engines' DSP48E2 instances (plait_dsp48e2.sv); synthesis
#: sets it on DSP48E2_FAMILIES unless BEHAVIOURAL_DEFINE is given; a Verilator build
#: with it needs the simulation model dsp_model_dsp48e2.sv
PRIMITIVE_DEFINE = "PLAIT_DSP_PRIMITIVE"
BEHAVIOURAL_DEFINE = "PLAIT_DSP_BEHAVIOURAL"
FAMILIES = ("xcup", "xcu", "xc7", "xc7s", "xc6s")
#: resource columns, in report order
RESOURCE_KEYS = ("LUT", "FF", "CARRY", "DSP48E2", "BRAM", "LUTRAM", "SRL", "MUXF", "URAM")


class ToolMissing(RuntimeError):
    """An external tool (Verilator, yosys, make, a C++ compiler) is missing or too old."""


class SynthesisFailed(RuntimeError):
    """yosys returned an error; the message holds the end of its log."""


def find_yosys() -> Path:
    """Path of the yosys executable (``$PLAIT_YOSYS`` if set, else ``PATH``)."""
    override = os.environ.get("PLAIT_YOSYS")
    if override:
        p = Path(override)
        if not (p.is_file() and os.access(p, os.X_OK)):
            raise ToolMissing(f"yosys not found: PLAIT_YOSYS={override} is not an "
                              f"executable file; {YOSYS_HINT}")
        return p
    exe = shutil.which("yosys")
    if exe is None:
        raise ToolMissing(f"yosys not found on PATH; {YOSYS_HINT}")
    return Path(exe)


@functools.lru_cache(maxsize=4)
def _yosys_version(exe: str) -> str:
    out = subprocess.run([exe, "-V"], capture_output=True, text=True, timeout=60).stdout
    return out.strip()


def yosys_version() -> str:
    """The ``yosys -V`` string (e.g. ``Yosys 0.23 (git sha1 7ce5011c24b)``)."""
    return _yosys_version(str(find_yosys()))


# ----------------------------------------------------------------- results
_CELL_CLASSES = [
    ("LUT", re.compile(r"^(LUT[1-6](_2)?|INV)$")),
    ("FF", re.compile(r"^(FD[A-Z]*|LD[A-Z]*)$")),
    ("CARRY", re.compile(r"^CARRY(4|8)$")),
    ("DSP48E2", re.compile(r"^DSP48E2$")),
    ("DSP48E1", re.compile(r"^DSP48E1$")),
    ("DSP_OTHER", re.compile(r"^(DSP48A1?|DSP48|MULT18X18\w*)$")),
    ("BRAM36", re.compile(r"^RAMB36(E1|E2)?$")),
    ("BRAM18", re.compile(r"^RAMB18(E1|E2)?$")),
    ("URAM", re.compile(r"^URAM288(_BASE)?$")),
    ("LUTRAM", re.compile(r"^RAM(16|32|64|128|256|512)(X\d+[SDQ]?|M\d*)$")),
    ("SRL", re.compile(r"^(SRL16E?|SRLC16E|SRLC32E)$")),
    ("MUXF", re.compile(r"^MUXF[789]$")),
    ("IO", re.compile(r"^(IBUF|OBUF|IOBUF|OBUFT|BUFG|BUFGCE|IBUFG|INBUF|IBUFCTRL)$")),
]


#: LUTs (LUT6 sites of a SLICEM) each distributed-RAM and shift-register primitive
#: occupies (UltraScale+ CLB user guide UG574: RAM32M16 / RAM64M8 take all eight LUTs
#: of a SLICEM, RAM32M / RAM64M four, RAMnnX1D two per 64 bits of depth, SRLs one)
MEMORY_LUTS = {"RAM16X1S": 1, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4,
               "RAM512X1S": 8, "RAM16X1D": 2, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4,
               "RAM256X1D": 8, "RAM32X2S": 2, "RAM64X2S": 2, "RAM32M": 4, "RAM64M": 4,
               "RAM32M16": 8, "RAM64M8": 8, "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1}


def memory_luts(cells: dict[str, int]) -> int:
    """LUTs taken by the distributed RAM and shift registers of a raw cell table
    (:data:`MEMORY_LUTS`; yosys counts these cells apart from the logic LUTs)."""
    return sum(MEMORY_LUTS.get(t, 0) * int(n) for t, n in cells.items())


def classify_cells(cells: dict[str, int]) -> dict[str, int]:
    """Sum a ``{cell type: count}`` table into resource classes (``OTHER`` for the rest)."""
    out: dict[str, int] = {}
    for typ, n in cells.items():
        for cls, rx in _CELL_CLASSES:
            if rx.match(typ):
                break
        else:
            cls = "OTHER"
        out[cls] = out.get(cls, 0) + int(n)
    return out


@dataclass
class Resources:
    """Cell counts of one synthesized design (UltraScale+ primitives)."""

    top: str
    family: str
    lut: int = 0
    ff: int = 0
    carry: int = 0
    dsp: int = 0                 # DSP48E2 (xcu/xcup) or DSP48E1 (xc7) slices
    bram36: int = 0              # RAMB36E2
    bram18: int = 0              # RAMB18E2
    lutram: int = 0
    srl: int = 0
    muxf: int = 0
    uram: int = 0
    dsp_cascades: int = 0        # DSP->DSP links on PCOUT/ACOUT/BCOUT (see module doc)
    pcin_cascades: int = 0       # of which PCOUT -> PCIN (the accumulation chain)
    cells: dict = field(default_factory=dict)    # raw {cell type: count}
    params: dict = field(default_factory=dict)
    yosys: str = ""
    seconds: float = 0.0
    cached: bool = False
    key: str = ""

    @property
    def dsp_name(self) -> str:
        return "DSP48E2" if self.family in DSP48E2_FAMILIES else "DSP48E1"

    @property
    def bram(self) -> float:
        """Block RAM in RAMB36 equivalents (RAMB18 = 0.5)."""
        return self.bram36 + 0.5 * self.bram18

    @property
    def lut_with_memory(self) -> int:
        """Logic LUTs plus the LUTs the distributed RAM and SRLs occupy (:func:`memory_luts`)."""
        return self.lut + memory_luts(self.cells)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["bram"] = self.bram
        return d

    def table(self) -> dict[str, float]:
        """``{column: count}`` in :data:`RESOURCE_KEYS` order."""
        return {"LUT": self.lut, "FF": self.ff, "CARRY": self.carry, self.dsp_name: self.dsp,
                "BRAM": self.bram, "LUTRAM": self.lutram, "SRL": self.srl,
                "MUXF": self.muxf, "URAM": self.uram}

    @classmethod
    def from_cells(cls, top: str, family: str, cells: dict[str, int], **kw) -> "Resources":
        c = classify_cells(cells)
        return cls(top=top, family=family, lut=c.get("LUT", 0), ff=c.get("FF", 0),
                   carry=c.get("CARRY", 0), dsp=c.get("DSP48E2", 0) + c.get("DSP48E1", 0),
                   bram36=c.get("BRAM36", 0), bram18=c.get("BRAM18", 0),
                   lutram=c.get("LUTRAM", 0), srl=c.get("SRL", 0), muxf=c.get("MUXF", 0),
                   uram=c.get("URAM", 0), cells=dict(sorted(cells.items())), **kw)

    @classmethod
    def from_dict(cls, d: dict) -> "Resources":
        """The inverse of :meth:`as_dict`; a dict that lacks a field or holds a value of the
        wrong type raises ``ValueError`` (a damaged cache entry is synthesized again)."""
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, got {type(d).__name__}")
        hints = typing.get_type_hints(cls)
        kinds = {int: int, float: (int, float), str: str, bool: bool, dict: dict}
        kw = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                raise ValueError(f"field {f.name!r} is missing")
            v, want = d[f.name], kinds.get(hints[f.name], object)
            if not isinstance(v, want) or (hints[f.name] is int and isinstance(v, bool)):
                raise ValueError(f"field {f.name!r} is {v!r}, expected {hints[f.name].__name__}")
            kw[f.name] = v
        return cls(**kw)


def _count_cascades(netlist: dict) -> dict[str, int]:
    """DSP inputs (PCIN/ACIN/BCIN) driven by another DSP48E1/E2's cascade output:
    ``{"PCIN": n, "ACIN": n, "BCIN": n}`` (one per receiving DSP and port)."""
    pairs = {"PCIN": "PCOUT", "ACIN": "ACOUT", "BCIN": "BCOUT"}
    links = {k: 0 for k in pairs}
    for mod in netlist.get("modules", {}).values():
        cells = [c for c in mod.get("cells", {}).values()
                 if c.get("type") in ("DSP48E1", "DSP48E2")]
        drivers: dict[int, str] = {}
        for c in cells:
            for out in pairs.values():
                for bit in c.get("connections", {}).get(out, []):
                    if isinstance(bit, int):
                        drivers[bit] = out
        for c in cells:
            conns = c.get("connections", {})
            for inp, out in pairs.items():
                bits = [b for b in conns.get(inp, []) if isinstance(b, int)]
                if bits and any(drivers.get(b) == out for b in bits):
                    links[inp] += 1
    return links


# ---------------------------------------------------------------- running
def _script(top: str, files: list[Path], family: str, params: dict, defines: dict,
            flatten: bool) -> str:
    # PLAIT_FAMILY_<FAMILY> lets the RTL pick family-specific primitives; on the DSP48E2
    # families PLAIT_DSP_PRIMITIVE selects the engines' DSP48E2 instances (dsp_slice.sv,
    # lut_dq_mac.sv) unless PLAIT_DSP_BEHAVIOURAL asks for the behavioural twins
    defines = {f"PLAIT_FAMILY_{family.upper()}": None, **defines}
    if family in DSP48E2_FAMILIES and BEHAVIOURAL_DEFINE not in defines:
        defines.setdefault(PRIMITIVE_DEFINE, None)
    dflags = " ".join(f"-D{k}={v}" if v is not None else f"-D{k}"
                      for k, v in sorted(defines.items()))
    lines = [f"read_verilog -sv {dflags} " + " ".join(f'"{f}"' for f in files)]
    for k, v in params.items():
        lines.append(f"chparam -set {k} {int(v)} {top}")
    lines.append(f"synth_xilinx -family {family} -top {top} -noiopad"
                 + (" -flatten" if flatten else ""))
    lines.append("tee -q -o stat.json stat -json")
    lines.append("write_json netlist.json")
    return "\n".join(lines) + "\n"


def netlist_path(res: Resources) -> Path:
    """Where :func:`synthesize_netlist` caches the gzipped yosys JSON netlist of ``res``."""
    return cache_dir() / "synth" / f"{res.top}-{res.key}.netlist.json.gz"


def load_netlist(res: Resources) -> dict:
    """The cached netlist of a :func:`synthesize_netlist` result (``write_json`` form)."""
    import gzip
    with gzip.open(netlist_path(res), "rt") as f:
        return json.load(f)


def synthesize_netlist(top: str, sources: list[Path], **kw) -> Resources:
    """:func:`synthesize`, and make sure the flattened netlist is in the cache as well
    (:func:`netlist_path`, read it with :func:`load_netlist`; used by
    :mod:`plait.rtl.timing`).  :func:`synthesize` keeps it with every cached result;
    a cached result without it (an older entry) is synthesized again;
    ``use_cache=False`` still writes the netlist file, since that is how it is
    handed over."""
    return synthesize(top, sources, _keep_netlist=True, **kw)


def synthesize(top: str, sources: list[Path], *, config: UnitConfig | None = None,
               family: str = "xcup", params: dict | None = None,
               defines: dict | None = None, flatten: bool = True, use_cache: bool = True,
               timeout: float = 1800.0, keep_dir: Path | None = None,
               _keep_netlist: bool = False) -> Resources:
    """Synthesize ``top`` with yosys ``synth_xilinx`` and count resources (see module doc).

    ``params`` values must be integers (``chparam``).  ``keep_dir``: run there and
    keep the script, log, stat and netlist (default: a temporary directory).
    """
    if family not in FAMILIES:
        raise ValueError(f"synthesize: unsupported family {family!r}; choose one of {FAMILIES}")
    if not isinstance(top, str) or not top.isidentifier():
        raise ValueError(f"synthesize: top must be a module name, got {top!r}")
    params = dict(params or {})
    for k, v in params.items():
        if isinstance(v, bool):
            params[k] = int(v)
        elif not isinstance(v, int):
            raise ValueError(f"synthesize: parameter {k}={v!r} must be an integer")
    defines = dict(defines or {})
    srcs = [Path(s).resolve() for s in sources]
    if not srcs:
        raise ValueError("synthesize: empty source list")
    missing = [str(s) for s in srcs if not s.is_file()]
    if missing:
        raise FileNotFoundError(f"synthesize: missing source file(s): {missing}")
    exe = find_yosys()
    ver = yosys_version()
    pkg_text = config.sv_package() if config is not None else None

    h = hashlib.sha256()
    h.update(json.dumps({"flow": _FLOW_VERSION, "top": top, "family": family,
                         "params": params, "defines": {k: str(v) for k, v in defines.items()},
                         "flatten": flatten, "yosys": ver, "pkg": pkg_text}, sort_keys=True
                        ).encode())
    for s in srcs:
        h.update(s.name.encode() + b"\0" + s.read_bytes() + b"\0")
    key = h.hexdigest()
    cfile = cache_dir() / "synth" / f"{top}-{key[:24]}.json"
    if use_cache and cfile.is_file():
        try:
            res = Resources.from_dict(json.loads(cfile.read_text()))
            res.cached = True
            if not _keep_netlist or netlist_path(res).is_file():
                return res
        except (ValueError, TypeError, KeyError, AttributeError):
            pass  # corrupt cache entry (damaged JSON, wrong fields): synthesize again and overwrite it

    tmp = None
    if keep_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix=f"plait-synth-{top}-")
        work = Path(tmp.name)
    else:
        work = Path(keep_dir)
        work.mkdir(parents=True, exist_ok=True)
    try:
        files = list(srcs)
        if config is not None:
            files.insert(0, config.write_package(work))
        script = _script(top, files, family, params, defines, flatten)
        (work / "synth.ys").write_text(script)
        log = work / "yosys.log"
        t0 = time.time()
        try:
            proc = subprocess.run([str(exe), "-q", "-l", str(log), "-s", "synth.ys"],
                                  cwd=work, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SynthesisFailed(f"yosys synthesis of {top} timed out after {timeout:.0f} s") \
                from None
        secs = time.time() - t0
        if proc.returncode != 0 or not (work / "stat.json").is_file():
            text = log.read_text(errors="replace") if log.is_file() else ""
            tail = "\n".join((text or proc.stdout + proc.stderr).splitlines()[-30:])
            errs = [ln for ln in (proc.stderr + "\n" + text).splitlines() if "ERROR" in ln]
            raise SynthesisFailed(f"yosys failed on {top} (exit {proc.returncode})"
                                  + (f": {errs[0].strip()}" if errs else "")
                                  + f"\n--- log tail ---\n{tail}")
        stat = json.loads((work / "stat.json").read_text())
        design = stat.get("design") or next(iter(stat.get("modules", {}).values()), {})
        cells = {k.lstrip("\\$"): int(v) for k, v in
                 design.get("num_cells_by_type", {}).items()}
        casc = {"PCIN": 0, "ACIN": 0, "BCIN": 0}
        if (work / "netlist.json").is_file():
            casc = _count_cascades(json.loads((work / "netlist.json").read_text()))
        res = Resources.from_cells(top, family, cells, dsp_cascades=sum(casc.values()),
                                   pcin_cascades=casc["PCIN"], params=params,
                                   yosys=ver, seconds=round(secs, 2), key=key[:24])
        # a cached result keeps its netlist too, so the timing estimate of a design
        # that was first synthesized for its resources does not synthesize it again
        if _keep_netlist or use_cache:
            import gzip
            npath = netlist_path(res)
            npath.parent.mkdir(parents=True, exist_ok=True)
            tmpn = npath.with_suffix(f".{os.getpid()}.tmp")
            with open(work / "netlist.json", "rb") as src, gzip.open(tmpn, "wb", 6) as dst:
                shutil.copyfileobj(src, dst)
            tmpn.replace(npath)
    finally:
        if tmp is not None:
            tmp.cleanup()
    if use_cache:
        cfile.parent.mkdir(parents=True, exist_ok=True)
        tmpf = cfile.with_suffix(f".{os.getpid()}.tmp")
        tmpf.write_text(json.dumps(res.as_dict(), indent=1))
        tmpf.replace(cfile)
    return res


def synthesize_unit(name: str, config: UnitConfig | None = None, **kw) -> Resources:
    """Synthesize a registered unit (:mod:`plait.rtl.units`) with its config
    (default: the config class's defaults)."""
    from .units import get_unit, unit_sources

    spec = get_unit(name)
    cfg = config if config is not None else spec.config_cls()
    if not isinstance(cfg, spec.config_cls):
        raise TypeError(f"synthesize_unit({name!r}): config must be a "
                        f"{spec.config_cls.__name__}, got {type(cfg).__name__}")
    return synthesize(spec.top, unit_sources(name), config=cfg, **kw)
