"""Verilator code coverage of a simulation: read ``coverage.dat`` and summarise it.

A unit built with :data:`COVERAGE_BUILD_ARGS` (``--coverage-line --coverage-toggle``)
writes ``coverage.dat`` into its run directory when the simulation ends (cocotb's
Verilator main calls ``VerilatedCov::write``).  Each record is one coverage point:
``C '<key\\x02value\\x01...>' <count>``; the ``page`` key says its kind
(``v_line/<module>``, ``v_branch/...``, ``v_toggle/...``), ``f`` and ``l`` its source
file and line.  :func:`summarise` gives, per kind, the points hit at least once out of
all points, counting a point once however many instances share it (Verilator emits
one record per instance).  Golden numbers are not hard-coded: the RTL tests compare
the measured share against a floor (``tests/test_rtl_dsp_chain.py``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["COVERAGE_BUILD_ARGS", "CoverageSummary", "read_points", "summarise"]

#: Verilator flags of a coverage build (line + branch blocks, and toggles)
COVERAGE_BUILD_ARGS: tuple[str, ...] = ("--coverage-line", "--coverage-toggle")

_RECORD = re.compile(r"^C '(.*)' (\d+)\s*$")


def read_points(path: Path) -> list[tuple[dict[str, str], int]]:
    """The coverage points of a ``coverage.dat``: ``(fields, count)`` per record."""
    out = []
    for line in Path(path).read_text(errors="replace").splitlines():
        m = _RECORD.match(line)
        if not m:
            continue
        fields = {}
        for kv in m.group(1).split("\x01"):
            if "\x02" in kv:
                k, v = kv.split("\x02", 1)
                fields[k] = v
        out.append((fields, int(m.group(2))))
    if not out:
        raise ValueError(f"{path}: no coverage points (was the unit built with "
                         f"{' '.join(COVERAGE_BUILD_ARGS)}?)")
    return out


@dataclass
class CoverageSummary:
    """Per kind (``line``, ``branch``, ``toggle``): points hit and points in all; and
    the source lines of the line/branch points never hit."""

    hit: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    missed: list[tuple[str, int, str]] = field(default_factory=list)   # (file, line, kind)

    def share(self, kind: str) -> float:
        return self.hit.get(kind, 0) / self.total[kind] if self.total.get(kind) else 0.0

    def table(self) -> str:
        rows = [f"  {k:7s} {self.hit[k]:7d} / {self.total[k]:7d}  {100 * self.share(k):6.2f} %"
                for k in sorted(self.total)]
        return "\n".join(["  kind        hit /   points   share", *rows])


def summarise(path: Path, files: tuple[str, ...] | None = None) -> CoverageSummary:
    """Summarise ``coverage.dat`` at ``path``, optionally only points of source files
    whose name is in ``files``.  A point is identified by (kind, file, line, column,
    name) and counts as hit when any instance of it was hit."""
    points: dict[tuple, int] = {}
    for f, count in read_points(path):
        kind = f.get("page", "?").split("/", 1)[0].removeprefix("v_")
        src = Path(f.get("f", "?")).name
        if files is not None and src not in files:
            continue
        key = (kind, src, int(f.get("l", 0) or 0), f.get("n", ""), f.get("o", ""))
        points[key] = max(points.get(key, 0), count)
    s = CoverageSummary()
    for (kind, src, line, _n, _o), count in points.items():
        s.total[kind] = s.total.get(kind, 0) + 1
        s.hit[kind] = s.hit.get(kind, 0) + (count > 0)
        if count == 0 and kind != "toggle":
            s.missed.append((src, line, kind))
    s.missed.sort()
    return s
