"""Mutation testing of RTL: a copy of the sources with one deliberate change.

A verification environment is only as good as the bugs it catches.  Tests copy a
unit's sources, change one bit of the arithmetic at a named site, run the same
testbench and assert that its scoreboard fails::

    srcs = mutated_sources(unit_sources("lut_core"), tmp_path, "lut_lookup.sv",
                           "assign neg = !idx[3];", "assign neg = idx[3];")
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterable


def mutated_sources(sources: Iterable[Path], dest: Path, file_name: str, site: str,
                    replacement: str) -> list[Path]:
    """Copy ``sources`` into ``dest`` and replace ``site`` in ``file_name``.

    ``site`` must occur exactly once in that file (a moved or duplicated site is an
    error, so a mutation test cannot silently stop mutating anything).  Returns the
    copied source list, in the original order.
    """
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
    text = target.read_text()
    n = text.count(site)
    if n != 1:
        raise ValueError(f"mutation site {site!r} occurs {n} times in {file_name} (expected exactly once)")
    target.write_text(text.replace(site, replacement))
    return out
