"""Compile a C-simulation testbench with g++ once, cached by the hash of its inputs.

The binary lives under ``plait.rtl.config.cache_dir() / "hls"``, named by a hash of
the compiler's version, the flags, the source and every header in the include
directories, so a changed header (e.g. a regenerated ``plait_tables.h``) rebuilds and
an unchanged one never does.  One compile at a time (a file lock): the machines are
small.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from plait.rtl.config import cache_dir

SRC_DIR = Path(__file__).resolve().parent / "src"
DEFAULT_FLAGS = ("-O2", "-std=c++17", "-Wall", "-Wno-unknown-pragmas", "-Wno-unused-label")  # loop labels: Vitis idiom


class GxxError(RuntimeError):
    """g++ is missing, or the compile failed (the message carries its output)."""


@lru_cache(maxsize=None)
def _gxx_version(gxx: str) -> str:
    try:
        return subprocess.run([gxx, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise GxxError(f"g++ not usable ({gxx}): {e}; install it (apt-get install g++)") from e


def hls_cache() -> Path:
    return cache_dir() / "hls"


def build(source: Path, include_dirs: Sequence[Path], name: str, flags: Sequence[str] = DEFAULT_FLAGS,
          defines: Sequence[str] = ()) -> Path:
    """The compiled ``source`` (cached); ``defines`` as ``NAME=VALUE`` strings."""
    gxx = os.environ.get("CXX") or shutil.which("g++") or "g++"
    h = hashlib.sha256()
    h.update(_gxx_version(gxx).encode())
    h.update("\0".join([*flags, *(f"-D{d}" for d in defines)]).encode())
    h.update(Path(source).read_bytes())
    for d in include_dirs:
        for f in sorted(Path(d).glob("*.h")):
            h.update(f.name.encode() + b"\0" + f.read_bytes())
    out_dir = hls_cache() / "bin"
    out_dir.mkdir(parents=True, exist_ok=True)
    exe = out_dir / f"{name}-{h.hexdigest()[:16]}"
    if exe.exists():
        return exe
    with open(out_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if exe.exists():                      # built while we waited
            return exe
        tmp = exe.with_name(exe.name + f".tmp{os.getpid()}")
        cmd = [gxx, *flags, *(f"-D{d}" for d in defines), *(f"-I{d}" for d in include_dirs),
               str(source), "-o", str(tmp)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise GxxError(f"g++ failed on {Path(source).name}:\n{' '.join(cmd)}\n{r.stdout}{r.stderr}")
        tmp.replace(exe)
    return exe


__all__ = ["build", "hls_cache", "GxxError", "SRC_DIR", "DEFAULT_FLAGS"]
