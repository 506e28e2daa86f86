"""Configuration objects of hardware units: one object drives every view of a unit.

A hardware unit (the sparse DSP chain, the LUT tensor core, ...) is described by
a small dataclass deriving from :class:`UnitConfig`.  The same object

* renders the SystemVerilog package of parameters that the hand-written RTL in
  ``rtl/sv/`` reads (:meth:`UnitConfig.sv_package`, :meth:`UnitConfig.write_package`),
* gives the same parameters as ``-D`` defines / ``chparam`` values for tools whose
  SystemVerilog front end is limited (:meth:`UnitConfig.sv_params`),
* renders the HLS C++ config header (:meth:`UnitConfig.cpp_header`,
  :meth:`UnitConfig.write_cpp_header`) that the HLS library in ``hls/src/`` reads,
* configures the unit's numpy golden model (engines' own code), and later the ISA
  encoder,
* is hashed (:meth:`UnitConfig.key`) to key simulation and synthesis caches.

Writing a config::

    @dataclass
    class DspChainConfig(UnitConfig):
        pkg_name: ClassVar[str] = "dsp_chain_pkg"
        n_dsp: int = 16
        lanes: int = 2
        overflow_adjust: bool = True

        def validate(self):
            if self.n_dsp % 2:
                raise ValueError(f"n_dsp must be even, got {self.n_dsp}")

        def derived(self):                      # extra localparams
            return {"acc_w": 18 + clog2(self.n_dsp)}

        def macs_per_cycle(self): ...           # used by plait.rtl.report
        def estimate_resources(self): ...       # analytical LUT/FF/DSP/... counts

Field types allowed: ``int``, ``bool``, ``str`` (and ``float`` for model-only
knobs).  ``int`` and ``bool`` fields (and every ``derived()`` entry) become
``localparam int UPPER_NAME = value;`` in the package (bools as 0/1); ``str`` and
``float`` fields are listed in the header comment only.  Values are checked when
the object is built: a wrong type or a failing :meth:`validate` raises
``ValueError`` naming the field.

The SystemVerilog subset that works in Verilator 5 *and* yosys 0.23 (the package
must be referenced as ``pkg_name::NAME``; yosys 0.23 cannot parse ``import``) is
written down in ``rtl/sv/README.md``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

__all__ = ["UnitConfig", "clog2", "parse_overrides", "SV_INT_MIN", "SV_INT_MAX"]

SV_INT_MIN, SV_INT_MAX = -(2 ** 31), 2 ** 31 - 1


def _write_if_changed(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (parents created) unless it already holds it: generated
    headers keep their mtimes, so builds keyed on them are not redone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path
_ALLOWED_TYPES = (bool, int, str, float)


def clog2(n: int) -> int:
    """SystemVerilog ``$clog2``: ceil(log2(n)), with clog2(0) == clog2(1) == 0."""
    if n < 0:
        raise ValueError(f"clog2 of a negative number: {n}")
    return max(0, (int(n) - 1).bit_length())


@dataclass
class UnitConfig:
    """Base class of every hardware unit's configuration (see module docstring).

    Subclasses are ``@dataclass`` classes with a ``pkg_name`` class attribute
    (the SystemVerilog package name, e.g. ``"dsp_chain_pkg"``) and typed fields
    with defaults.  Hooks to override: :meth:`validate`, :meth:`derived`,
    :meth:`macs_per_cycle`, :meth:`estimate_resources`.
    """

    pkg_name: ClassVar[str] = ""
    #: the C++ optimisation Verilator builds of this unit use (None: the simulation
    #: runner's default, ``plait.sim.runner.DEFAULT_OPT``)
    sim_opt: ClassVar[str | None] = None

    # ------------------------------------------------------------------ checks
    def __post_init__(self) -> None:
        self._check_types()
        self.validate()

    @classmethod
    def _field_types(cls) -> dict[str, type]:
        hints = typing.get_type_hints(cls)
        out: dict[str, type] = {}
        for f in dataclasses.fields(cls):
            t = hints.get(f.name, f.type)
            if t not in _ALLOWED_TYPES:
                raise TypeError(
                    f"{cls.__name__}.{f.name}: field type {t!r} is not supported "
                    f"(use int, bool, str or float)")
            out[f.name] = t
        return out

    def _check_types(self) -> None:
        cls = type(self)
        if not cls.pkg_name or not cls.pkg_name.isidentifier():
            raise TypeError(f"{cls.__name__}.pkg_name must be a SystemVerilog identifier, "
                            f"got {cls.pkg_name!r}")
        for name, t in self._field_types().items():
            v = getattr(self, name)
            if t is bool:
                ok = isinstance(v, bool)
            elif t is int:
                ok = isinstance(v, int) and not isinstance(v, bool)
            elif t is float:
                ok = isinstance(v, (int, float)) and not isinstance(v, bool)
            else:
                ok = isinstance(v, str)
            if not ok:
                raise ValueError(f"{cls.__name__}.{name}: expected {t.__name__}, "
                                 f"got {type(v).__name__} {v!r}")
            if t is int and not SV_INT_MIN <= v <= SV_INT_MAX:
                raise ValueError(f"{cls.__name__}.{name}={v} does not fit a 32-bit "
                                 f"SystemVerilog int")

    def validate(self) -> None:
        """Hook: raise ``ValueError`` naming the offending field if the values are
        inconsistent.  The base class accepts everything."""

    def derived(self) -> dict[str, int]:
        """Hook: extra integer parameters computed from the fields (e.g. widths).
        They are emitted into the package after the fields."""
        return {}

    # ---------------------------------------------------------- model hooks
    def macs_per_cycle(self) -> int:
        """Useful multiply-accumulates per clock at full utilisation (0 for units
        that do no MACs).  Engines override it; :mod:`plait.rtl.report` uses it."""
        return 0

    def estimate_resources(self) -> dict[str, int]:
        """Analytical resource estimate ``{"LUT", "FF", "CARRY", "DSP48E2", "BRAM",
        "LUTRAM"}``; used when yosys is unavailable.  Engines override it."""
        raise NotImplementedError(
            f"{type(self).__name__} does not provide estimate_resources()")

    # ------------------------------------------------------------- rendering
    def sv_params(self) -> dict[str, int]:
        """All package parameters as ``{UPPER_NAME: int}`` (fields, then derived)."""
        out: dict[str, int] = {}
        for name, t in self._field_types().items():
            if t in (int, bool):
                out[name.upper()] = int(getattr(self, name))
        for name, v in self.derived().items():
            if isinstance(v, bool):
                v = int(v)
            if not isinstance(v, int):
                raise ValueError(f"{type(self).__name__}.derived()[{name!r}] must be an int, "
                                 f"got {type(v).__name__} {v!r}")
            if not SV_INT_MIN <= v <= SV_INT_MAX:
                raise ValueError(f"{type(self).__name__}.derived()[{name!r}]={v} does not "
                                 f"fit a 32-bit SystemVerilog int")
            up = name.upper()
            if up in out:
                raise ValueError(f"{type(self).__name__}.derived() redefines field {up}")
            out[up] = v
        return out

    def sv_package(self) -> str:
        """The SystemVerilog package text (``package <pkg_name>; ... endpackage``)."""
        cls = type(self)
        lines = [
            f"// {cls.pkg_name}.sv -- GENERATED by plait.rtl.config from "
            f"{cls.__module__}.{cls.__qualname__}; do not edit.",
            f"// config key {self.key()}: {json.dumps(self.to_dict(), sort_keys=True)}",
            "// Reference as pkg::NAME (yosys 0.23 cannot parse `import`).",
            f"package {cls.pkg_name};",
        ]
        params = self.sv_params()
        width = max((len(k) for k in params), default=0)
        for k, v in params.items():
            lines.append(f"  localparam int {k.ljust(width)} = {v};")
        lines.append(f"endpackage : {cls.pkg_name}")
        return "\n".join(lines) + "\n"

    def write_package(self, directory: str | Path) -> Path:
        """Write ``<pkg_name>.sv`` into ``directory`` (created if needed); the file
        is rewritten only if its content changed (keeps mtimes stable)."""
        return _write_if_changed(Path(directory) / f"{type(self).pkg_name}.sv", self.sv_package())

    def cpp_arrays(self) -> dict[str, list[int]]:
        """Hook: constant integer tables for the C++ header only (e.g. per-code
        lookup tables of an encoding); ``{NAME: [int, ...]}``."""
        return {}

    def cpp_header(self) -> str:
        """The HLS C++ view of the same parameters: a header defining
        ``struct <pkg_name>`` with one ``static constexpr`` member per package
        parameter (so ``<pkg_name>::NAME`` reads as in SystemVerilog, and the struct
        can be a template argument of the header-only HLS library), plus the tables
        of :meth:`cpp_arrays` as ``static constexpr int NAME(int i)`` (0 outside the
        table).  ``str``/``float`` fields appear in the comment."""
        cls = type(self)
        guard = f"PLAIT_{cls.pkg_name.upper()}_H"
        lines = [
            f"// {cls.pkg_name}.h -- GENERATED by plait.rtl.config from "
            f"{cls.__module__}.{cls.__qualname__}; do not edit.",
            f"// config key {self.key()}: {json.dumps(self.to_dict(), sort_keys=True)}",
            f"#ifndef {guard}",
            f"#define {guard}",
            f"struct {cls.pkg_name} {{",
        ]
        params = self.sv_params()
        width = max((len(k) for k in params), default=0)
        for k, v in params.items():
            lines.append(f"  static constexpr int {k.ljust(width)} = {v};")
        for k, vals in self.cpp_arrays().items():
            # a table as a constexpr function (no out-of-class definition needed in C++14)
            expr = " : ".join(f"i == {j} ? {int(v)}" for j, v in enumerate(vals))
            lines.append(f"  static constexpr int {k}(int i) {{ return {expr} : 0; }}")
        lines.append("};")
        lines.append(f"#endif  // {guard}")
        return "\n".join(lines) + "\n"

    def write_cpp_header(self, directory: str | Path) -> Path:
        """Write ``<pkg_name>.h`` into ``directory`` (rewritten only if changed)."""
        return _write_if_changed(Path(directory) / f"{type(self).pkg_name}.h", self.cpp_header())

    # ------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        """Build from a dict; unknown keys raise ``ValueError`` naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}; "
                             f"known fields: {sorted(names)}")
        return cls(**d)

    def replace(self, **changes):
        """A copy with some fields changed (validated)."""
        return self.from_dict({**self.to_dict(), **changes})

    def to_json(self) -> str:
        return json.dumps({"class": f"{type(self).__module__}.{type(self).__qualname__}",
                           "fields": self.to_dict()}, sort_keys=True)

    def key(self) -> str:
        """Stable 16-hex-digit hash of the class name and field values."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any] | list[str] | None = None):
        """Build from ``{"field": value}`` or ``["FIELD=VALUE", ...]`` (CLI form;
        field names are case-insensitive, values are parsed to the field type)."""
        return cls.from_dict(parse_overrides(cls, overrides or {}))


def parse_overrides(cls: type[UnitConfig], overrides: dict[str, Any] | list[str]) -> dict:
    """Turn CLI-style ``KEY=VALUE`` strings (or a dict) into typed field values of
    ``cls``.  Unknown keys and unparsable values raise ``ValueError`` naming them."""
    types = cls._field_types()
    lower = {n.lower(): n for n in types}
    items: list[tuple[str, Any]] = []
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        for s in overrides:
            if "=" not in s:
                raise ValueError(f"config override {s!r} is not KEY=VALUE")
            k, v = s.split("=", 1)
            items.append((k.strip(), v.strip()))
    out: dict[str, Any] = {}
    for k, v in items:
        name = lower.get(k.lower())
        if name is None:
            raise ValueError(f"{cls.__name__}: unknown field {k!r}; known fields: "
                             f"{sorted(types)}")
        t = types[name]
        if isinstance(v, str) and t is not str:
            try:
                if t is bool:
                    lv = v.lower()
                    if lv not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                        raise ValueError(v)
                    v = lv in ("1", "true", "yes", "on")
                elif t is int:
                    v = int(v, 0)
                else:
                    v = float(v)
            except ValueError:
                raise ValueError(f"{cls.__name__}.{name}: cannot parse {v!r} as "
                                 f"{t.__name__}") from None
        out[name] = v
    return out
