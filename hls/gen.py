"""Generate the HLS build of one engine, the special-function unit or a decoder layer.

One config object (:class:`~plait.rtl.dsp_chain.DspChainConfig`,
:class:`~plait.rtl.lut_core.LutCoreConfig`) renders the SystemVerilog package of the RTL
*and* the C++ config header of the HLS library (:meth:`UnitConfig.cpp_header`); this
module writes, into a build directory:

* ``<pkg_name>.h``        -- ``cfg.cpp_header()`` (``struct dsp_chain_pkg { ... }``),
* ``plait_hls_build.h``   -- HLS-only build constants (``PLAIT_K_MAX``, the size of the
  on-chip activation buffer),
* the library headers and the engine's top / testbench (copied from ``hls/src/``; the
  top is a real ``.cpp`` file instantiated by the generated header),
* ``run_hls.tcl``         -- the Vitis HLS project (``hls/src/run_hls.tcl`` with the
  ``@NAME@`` placeholders filled in: top, part, clock, files).

``generate("sfu", tables)`` (a :class:`~plait.hls.tables.ModelTables` or ``None``) writes
the special-function build: ``plait_tables.h`` (:mod:`plait.hls.tables`), the library and
``tb_sfu.cpp``.  ``generate("layer", LayerConfig(...))`` writes the decoder layer's:
``plait_layer_pkg.h`` (:meth:`LayerConfig.cpp_header`: shape, engine per linear,
``MAX_CTX``), both engines' config headers of the target, ``plait_tables.h`` for the
model, every library header, ``layer_top.{h,cpp}``, ``tb_layer.cpp`` and the tcl.

:func:`generate` returns an :class:`HlsBuild` describing it; :mod:`plait.hls.csim`
compiles it with g++ and runs the testbench on golden vectors.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from plait.ir.cache import cache_dir
from plait.rtl.config import UnitConfig

from .tables import TABLES_HEADER, ModelTables, tables_header

__all__ = ["HlsError", "EngineSpec", "ENGINES", "UNITS", "HlsBuild", "SRC_DIR", "LIBRARY",
           "SFU_LIBRARY", "LAYER_LIBRARY", "LINEARS", "LayerConfig", "DEFAULT_PART",
           "DEFAULT_CLOCK_NS", "DEFAULT_K_MAX", "engine_spec", "engine_config", "generate",
           "source_hash"]

SRC_DIR = Path(__file__).resolve().parent / "src"
#: library headers every build carries
LIBRARY = ("plait_types.h", "tb_common.h")
#: the special-function unit's headers (+ the generated plait_tables.h)
SFU_LIBRARY = ("plait_act.h", "plait_sfu.h")
#: a decoder layer's headers (+ the generated plait_tables.h, plait_layer_pkg.h and both
#: engines' config headers)
LAYER_LIBRARY = ("plait_dsp_chain.h", "plait_lut_core.h", *SFU_LIBRARY, "plait_layer.h")
#: the seven linears of a decoder layer, in plait_layer.h's LinearId order
LINEARS = ("q", "k", "v", "o", "gate", "up", "down")
DEFAULT_PART = "xcu280-fsvh2892-2L-e"
DEFAULT_CLOCK_NS = 3.33
DEFAULT_K_MAX = 8192


class HlsError(ValueError):
    """A user error of the HLS flow (unknown unit or field, bad option, missing g++):
    the message is one line that names what is wrong."""


@dataclass(frozen=True)
class EngineSpec:
    """An engine of the HLS library: its config class and its source files."""

    name: str
    top: str                        # the top function
    headers: tuple[str, ...]        # library headers (besides LIBRARY)
    top_sources: tuple[str, ...]    # synthesized sources (.h declaring the top, .cpp)
    tb: str                         # testbench source

    def config_cls(self) -> type[UnitConfig]:
        from plait.rtl.units import get_unit
        return get_unit(self.name).config_cls


ENGINES: dict[str, EngineSpec] = {
    "dsp_chain": EngineSpec("dsp_chain", "dsp_chain_top", ("plait_dsp_chain.h",),
                            ("dsp_chain_top.h", "dsp_chain_top.cpp"), "tb_dsp_chain.cpp"),
    "lut_core": EngineSpec("lut_core", "lut_core_top", ("plait_lut_core.h",),
                           ("lut_core_top.h", "lut_core_top.cpp"), "tb_lut_core.cpp"),
}


def engine_spec(unit: str) -> EngineSpec:
    if unit not in ENGINES:
        raise HlsError(f"unknown HLS engine {unit!r}; known: {', '.join([*ENGINES, *UNITS])}")
    return ENGINES[unit]


def engine_config(unit: str, config=None) -> UnitConfig:
    """The unit's config object from ``None`` (defaults), a config instance, a dict or a
    list of ``KEY=VALUE`` strings; a bad field raises :class:`HlsError` naming it."""
    cls = engine_spec(unit).config_cls()
    if isinstance(config, cls):
        return config
    if config is not None and isinstance(config, UnitConfig):
        raise HlsError(f"{unit} needs a {cls.__name__}, got {type(config).__name__}")
    try:
        return cls.from_overrides(config)
    except (ValueError, TypeError) as e:
        raise HlsError(f"{unit} config: {e}") from None


def source_hash(names) -> str:
    """sha256 over the named files of :data:`SRC_DIR` (name and content)."""
    h = hashlib.sha256()
    for n in sorted(names):
        h.update(n.encode() + b"\0" + (SRC_DIR / n).read_bytes() + b"\0")
    return h.hexdigest()


@dataclass
class HlsBuild:
    """A generated HLS build directory of one engine."""

    unit: str
    config: UnitConfig
    directory: Path
    top: str
    sources: list[str]              # synthesized: top .cpp (and its headers)
    headers: list[str]              # every header in the directory
    tb: str
    tcl: Path
    k_max: int
    key: str                        # hash of the sources and the config
    extra: dict = field(default_factory=dict)

    def path(self, name: str) -> Path:
        return self.directory / name


def _write(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _build_header(k_max: int) -> str:
    return ("// plait_hls_build.h -- GENERATED by plait.hls.gen; do not edit.\n"
            "// HLS-only build constants (the unit's parameters are in its <pkg>.h).\n"
            "#ifndef PLAIT_HLS_BUILD_H\n#define PLAIT_HLS_BUILD_H\n"
            "// largest reduction length K: size of the on-chip activation buffer\n"
            f"#define PLAIT_K_MAX {int(k_max)}\n"
            "#endif  // PLAIT_HLS_BUILD_H\n")


def render_tcl(spec: EngineSpec, cfg: UnitConfig, *, part: str, clock_ns: float) -> str:
    text = (SRC_DIR / "run_hls.tcl").read_text()
    subs = {
        "@TOP@": spec.top,
        "@PART@": part,
        "@CLOCK_NS@": f"{clock_ns:g}",
        "@PROJECT@": f"{spec.name}_{cfg.key()}",
        "@SOURCES@": " ".join(s for s in spec.top_sources if s.endswith(".cpp")),
        "@TB_SOURCES@": spec.tb,
    }
    for k, v in subs.items():
        text = text.replace(k, v)
    if "@" in "".join(line for line in text.splitlines() if not line.startswith("#")):
        raise HlsError("run_hls.tcl template has an unfilled @PLACEHOLDER@")
    return text


@dataclass(frozen=True)
class LayerConfig:
    """One decoder layer's build: its shape (hidden ``d``, ``h`` query heads on ``hkv``
    kv heads of ``hd``, MLP width ``f``), the engine of each linear (``engines``: 7 of
    ``"dsp_chain"`` / ``"lut_core"`` in :data:`LINEARS` order, from the ``map_engines``
    pass), both engines' configs (the target's geometry), and the model's tables
    (RMSNorm eps, RoPE, attention scale; ``tables.n_pos`` = ``MAX_CTX``, the KV cache
    capacity and the RoPE table's positions)."""

    d: int
    h: int
    hkv: int
    hd: int
    f: int
    engines: tuple
    dsp: UnitConfig
    lut: UnitConfig
    tables: ModelTables
    pkg_name = "plait_layer_pkg"

    def __post_init__(self):
        for n in ("d", "h", "hkv", "hd", "f"):
            v = getattr(self, n)
            if not isinstance(v, int) or v < 1:
                raise HlsError(f"layer config: {n} must be a positive int, got {v!r}")
        if self.h % self.hkv:
            raise HlsError(f"layer config: {self.h} heads are not a multiple of {self.hkv} kv heads")
        if self.hd % 2 or self.tables.head_dim != self.hd:
            raise HlsError(f"layer config: head_dim {self.hd} must be even and equal the RoPE "
                           f"table's {self.tables.head_dim}")
        if len(self.engines) != len(LINEARS) or set(self.engines) - set(ENGINES):
            raise HlsError(f"layer config: engines must be {len(LINEARS)} of {sorted(ENGINES)}, "
                           f"got {self.engines!r}")

    @property
    def max_ctx(self) -> int:
        return self.tables.n_pos

    @property
    def k_max(self) -> int:
        """The engines' activation buffer: the largest K, rounded up to 16."""
        k = max(self.d, self.f, self.h * self.hd)
        return -(-k // 16) * 16

    def to_json(self) -> dict:
        return {"d": self.d, "h": self.h, "hkv": self.hkv, "hd": self.hd, "f": self.f,
                "engines": list(self.engines), "dsp": self.dsp.to_json(), "lut": self.lut.to_json(),
                "tables": tables_header(self.tables)}

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:12]

    def cpp_header(self) -> str:
        """``plait_layer_pkg.h``: ``struct plait_layer_pkg`` (typedef'd ``layer_pkg``)."""
        nq, nkv = self.h * self.hd, self.hkv * self.hd
        codes = {"dsp_chain": 0, "lut_core": 1}
        eng = " : ".join(f"i == {i} ? {codes[e]}" for i, e in enumerate(self.engines)) + " : -1"
        lines = [
            "// plait_layer_pkg.h -- GENERATED by plait.hls.gen (LayerConfig); do not edit.",
            f"// layer config key {self.key()}",
            "#ifndef PLAIT_LAYER_PKG_H", "#define PLAIT_LAYER_PKG_H",
            f'#include "{self.dsp.pkg_name}.h"', f'#include "{self.lut.pkg_name}.h"', "",
            f"struct {self.pkg_name} {{",
            f"  typedef {self.dsp.pkg_name} DSP;", f"  typedef {self.lut.pkg_name} LUT;",
            f"  static constexpr int D = {self.d};", f"  static constexpr int H = {self.h};",
            f"  static constexpr int HKV = {self.hkv};", f"  static constexpr int HD = {self.hd};",
            f"  static constexpr int F = {self.f};", f"  static constexpr int NQ = {nq};",
            f"  static constexpr int NKV = {nkv};",
            f"  static constexpr int N_MAX = {max(nq, nkv, self.d, self.f)};",
            f"  static constexpr int MAX_CTX = {self.max_ctx};",
            "  // engine of each linear (q k v o gate up down): 0 DSP chain, 1 LUT core",
            f"  static constexpr int ENGINE(int i) {{ return {eng}; }}",
            "};", f"typedef {self.pkg_name} layer_pkg;", "",
            "#endif  // PLAIT_LAYER_PKG_H", ""]
        return "\n".join(lines)


#: the builds besides the engines: (top, headers, top sources, testbench)
UNITS = {
    "sfu": EngineSpec("sfu", "", SFU_LIBRARY, (), "tb_sfu.cpp"),
    "layer": EngineSpec("layer", "layer_top", LAYER_LIBRARY, ("layer_top.h", "layer_top.cpp"),
                        "tb_layer.cpp"),
}


def _build_header_extra(defines: dict) -> str:
    text = _build_header(defines.pop("PLAIT_K_MAX"))
    extra = "".join(f"#define {k} {int(v)}\n" for k, v in defines.items())
    return text.replace("#endif  // PLAIT_HLS_BUILD_H\n", extra + "#endif  // PLAIT_HLS_BUILD_H\n")


def _generate_unit(unit: str, config, out_dir, *, part: str, clock_ns: float) -> HlsBuild:
    spec = UNITS[unit]
    if unit == "sfu":
        if config is not None and not isinstance(config, ModelTables):
            raise HlsError(f"the sfu build takes ModelTables or None, got {type(config).__name__}")
        tables, cfg, defines = config, None, {"PLAIT_K_MAX": 16}
        extra_headers: dict[str, str] = {}
    else:
        if not isinstance(config, LayerConfig):
            raise HlsError(f"the layer build takes a LayerConfig, got {type(config).__name__}")
        cfg, tables = config, config.tables
        defines = {"PLAIT_K_MAX": cfg.k_max, "PLAIT_MAX_CTX": cfg.max_ctx, "PLAIT_MAX_HEAD_DIM": cfg.hd}
        extra_headers = {f"{cfg.pkg_name}.h": cfg.cpp_header(),
                         f"{cfg.dsp.pkg_name}.h": cfg.dsp.cpp_header(),
                         f"{cfg.lut.pkg_name}.h": cfg.lut.cpp_header()}
    extra_headers[TABLES_HEADER] = tables_header(tables)
    extra_headers["plait_hls_build.h"] = _build_header_extra(dict(defines))
    copied = [*LIBRARY, *spec.headers, *spec.top_sources, spec.tb, "run_hls.tcl"]
    key_src = json.dumps({"unit": unit, "gen": extra_headers, "part": part, "clock_ns": clock_ns,
                          "src": source_hash(copied)}, sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    d = Path(out_dir) if out_dir is not None else cache_dir() / "hls" / f"{unit}-{key}"
    d.mkdir(parents=True, exist_ok=True)
    for name, text in extra_headers.items():
        _write(d / name, text)
    for name in (*LIBRARY, *spec.headers, *spec.top_sources, spec.tb):
        dst, src = d / name, SRC_DIR / name
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            shutil.copyfile(src, dst)
    tcl = d / "run_hls.tcl"
    if spec.top:
        _write(tcl, render_tcl(spec, cfg, part=part, clock_ns=clock_ns))
    headers = [*extra_headers, *LIBRARY, *spec.headers, *(s for s in spec.top_sources if s.endswith(".h"))]
    return HlsBuild(unit, cfg, d, spec.top, [s for s in spec.top_sources if s.endswith(".cpp")],
                    headers, spec.tb, tcl, defines["PLAIT_K_MAX"], key, {"tables": tables})


def generate(unit: str, config=None, out_dir: Optional[str | Path] = None, *,
             k_max: int = DEFAULT_K_MAX, part: str = DEFAULT_PART,
             clock_ns: float = DEFAULT_CLOCK_NS) -> HlsBuild:
    """Write the HLS build of ``unit`` (``"dsp_chain"`` / ``"lut_core"`` for ``config``,
    see :func:`engine_config`; ``"sfu"`` for a :class:`ModelTables` or ``None``;
    ``"layer"`` for a :class:`LayerConfig`) into ``out_dir`` (default:
    ``cache_dir()/hls/<unit>-<key>``).  Files are rewritten only when their content
    changes."""
    if unit in UNITS:
        if not (isinstance(clock_ns, (int, float)) and clock_ns > 0):
            raise HlsError(f"clock period must be > 0 ns, got {clock_ns!r}")
        return _generate_unit(unit, config, out_dir, part=part, clock_ns=clock_ns)
    spec = engine_spec(unit)
    cfg = engine_config(unit, config)
    if not isinstance(k_max, int) or isinstance(k_max, bool) or not 16 <= k_max <= 65536 \
            or k_max % 16:
        raise HlsError(f"k_max must be a multiple of 16 in [16, 65536], got {k_max!r}")
    if not (isinstance(clock_ns, (int, float)) and clock_ns > 0):
        raise HlsError(f"clock period must be > 0 ns, got {clock_ns!r}")
    copied = [*LIBRARY, *spec.headers, *spec.top_sources, spec.tb, "run_hls.tcl"]
    key_src = json.dumps({"unit": unit, "config": cfg.to_json(), "k_max": k_max, "part": part,
                          "clock_ns": clock_ns, "src": source_hash(copied)}, sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    d = Path(out_dir) if out_dir is not None else cache_dir() / "hls" / f"{unit}-{key}"
    d.mkdir(parents=True, exist_ok=True)
    pkg = cfg.write_cpp_header(d)
    _write(d / "plait_hls_build.h", _build_header(k_max))
    for name in (*LIBRARY, *spec.headers, *spec.top_sources, spec.tb):
        dst = d / name
        src = SRC_DIR / name
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            shutil.copyfile(src, dst)
    tcl = d / "run_hls.tcl"
    _write(tcl, render_tcl(spec, cfg, part=part, clock_ns=clock_ns))
    headers = [pkg.name, "plait_hls_build.h", *LIBRARY, *spec.headers,
               *(s for s in spec.top_sources if s.endswith(".h"))]
    return HlsBuild(unit, cfg, d, spec.top, [s for s in spec.top_sources if s.endswith(".cpp")],
                    headers, spec.tb, tcl, k_max, key)
