"""Registry of hardware units: name -> (config class, top module, SV sources).

Engines register themselves in their own module::

    from plait.rtl.units import register_unit
    register_unit("dsp_chain", DspChainConfig, top="dsp_chain_top",
                  sources=["dsp_slice.sv", "dsp_chain_top.sv"])

``sources`` are file names under :data:`SV_DIR` (``rtl/sv/``), in compile order;
the generated ``<pkg_name>.sv`` package is *not* listed (the simulation runner and
the synthesis flow write it from the config object and put it first).

Lookups (:func:`get_unit`, :func:`list_units`, :func:`unit_sources`) import the
engine modules listed in :data:`UNIT_MODULES` on first use, so that registering
happens without the caller importing every engine.  A module is skipped only if
its file does not exist (yet); any error while importing an existing module
propagates.

This module also defines the library unit ``skid_buffer``
(``rtl/sv/plait_skid_buffer.sv``, config :class:`SkidBufferConfig`).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from .config import UnitConfig

__all__ = ["SV_DIR", "UNIT_MODULES", "UnitSpec", "register_unit", "get_unit", "list_units",
           "unit_sources", "SkidBufferConfig"]

RTL_DIR = Path(__file__).resolve().parent
SV_DIR = RTL_DIR / "sv"

#: engine modules imported on first lookup (module name, file under rtl/)
UNIT_MODULES: tuple[tuple[str, str], ...] = (
    ("plait.rtl.dsp_chain", "dsp_chain.py"),
    ("plait.rtl.lut_core", "lut_core.py"),
)


@dataclass(frozen=True)
class UnitSpec:
    name: str
    config_cls: type[UnitConfig]
    top: str
    sources: tuple[str, ...]

    def source_paths(self) -> list[Path]:
        return unit_sources(self.name)

    def make_config(self, overrides=None) -> UnitConfig:
        return self.config_cls.from_overrides(overrides)


_REGISTRY: dict[str, UnitSpec] = {}
_loaded = False


def register_unit(name: str, config_cls: type[UnitConfig], top: str,
                  sources: list[str] | tuple[str, ...]) -> UnitSpec:
    """Register a unit.  Registering the same name twice with a different spec is an
    error (re-registering an identical spec, e.g. on module reload, is allowed)."""
    if not (isinstance(config_cls, type) and issubclass(config_cls, UnitConfig)):
        raise TypeError(f"register_unit({name!r}): config_cls must subclass UnitConfig, "
                        f"got {config_cls!r}")
    if not sources:
        raise ValueError(f"register_unit({name!r}): empty source list")
    for s in sources:
        if Path(s).is_absolute() or "/" in str(s):
            raise ValueError(f"register_unit({name!r}): source {s!r} must be a file name "
                             f"under {SV_DIR}")
    spec = UnitSpec(name, config_cls, top, tuple(str(s) for s in sources))
    old = _REGISTRY.get(name)
    if old is not None and (old.config_cls.__qualname__, old.top, old.sources) != (
            config_cls.__qualname__, top, spec.sources):
        raise ValueError(f"unit {name!r} is already registered with a different spec: {old}")
    _REGISTRY[name] = spec
    return spec


def _load_unit_modules() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod, fname in UNIT_MODULES:
        if (RTL_DIR / fname).exists():
            importlib.import_module(mod)


def list_units() -> list[str]:
    _load_unit_modules()
    return sorted(_REGISTRY)


def get_unit(name: str) -> UnitSpec:
    _load_unit_modules()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown hardware unit {name!r}; known units: "
                       f"{', '.join(sorted(_REGISTRY)) or '(none)'}") from None


def unit_sources(name: str) -> list[Path]:
    """Absolute paths of the unit's SV sources (the generated package excluded)."""
    spec = get_unit(name)
    paths = [SV_DIR / s for s in spec.sources]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"unit {name!r}: missing SystemVerilog source(s): {missing}")
    return paths


# --------------------------------------------------------------- library units
@dataclass
class SkidBufferConfig(UnitConfig):
    """Config of ``plait_skid_buffer`` (a full-throughput valid/ready register slice).

    ``width``: payload bits.  The RTL takes ``WIDTH`` as a module parameter whose
    default comes from ``plait_skid_buffer_pkg::WIDTH``.
    """

    pkg_name: ClassVar[str] = "plait_skid_buffer_pkg"
    sim_opt: ClassVar[str | None] = "-O0"     # a few registers: the compile is the run
    width: int = 16

    def validate(self) -> None:
        if not 1 <= self.width <= 4096:
            raise ValueError(f"SkidBufferConfig.width must be in [1, 4096], got {self.width}")

    def estimate_resources(self) -> dict[str, int]:
        # main + skid register per bit, valid bits; a 2:1 mux per output bit
        return {"LUT": self.width + 2, "FF": 2 * self.width + 2, "CARRY": 0,
                "DSP48E2": 0, "BRAM": 0, "LUTRAM": 0}


register_unit("skid_buffer", SkidBufferConfig, top="plait_skid_buffer",
              sources=["plait_skid_buffer.sv"])
