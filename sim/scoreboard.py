"""Scoreboards (exact integer comparison) and performance counters for testbenches.

Needs only numpy (no cocotb), so golden-model tests can use it too.

:class:`Scoreboard`::

    sb = Scoreboard("dsp_chain")
    sb.expect("acc", golden[i])          # queue expected integers (any int array)
    sb.observe("acc", dut_values)        # compare with the oldest expected of "acc"
    sb.assert_clean()                    # AssertionError listing the first mismatches

Comparison is *equality* on int64 arrays (``np.array_equal`` after checking the
shape); never a tolerance.  A mismatch records the tag, the transaction number,
the first differing flat indices with expected/actual values.  Observing a tag
with nothing expected, or leaving expected items unobserved, also counts as an
error in :meth:`Scoreboard.assert_clean`.

:class:`Perf`::

    perf = Perf("dsp_chain dense", units=n_dsp)   # units = DSPs (or LUT units)
    perf.add(cycles=c, macs=useful_macs, tiles=1)
    perf.log(dut._log)                            # one line: cycles/tile, utilisation
    perf.write_json()                             # $PLAIT_SIM_OUT/perf-<name>.json

``utilisation = useful_MACs / (units * cycles)``.  :func:`plait.sim.runner.read_perf`
(or ``SimRun.perf()``) reads the JSON back in pytest.
"""
from __future__ import annotations

import json
import os
import re
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Scoreboard", "Mismatch", "Perf"]


@dataclass
class Mismatch:
    tag: str
    item: int                     # transaction number within the tag (0-based)
    index: tuple | None           # first differing index (None: shape/unexpected)
    expected: Any
    actual: Any
    detail: str = ""

    def __str__(self) -> str:
        where = f"[{', '.join(map(str, self.index))}]" if self.index is not None else ""
        return (f"{self.tag}#{self.item}{where}: expected {self.expected}, got {self.actual}"
                + (f" ({self.detail})" if self.detail else ""))


def _as_int64(x: Any, what: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == object:
        a = np.array([int(v) for v in a.ravel()], dtype=np.int64).reshape(a.shape)
    if a.dtype.kind not in "iub":
        raise TypeError(f"scoreboard {what}: integers required, got dtype {a.dtype}")
    return a.astype(np.int64)


class Scoreboard:
    """Queues of expected integer arrays per tag, compared in order with equality."""

    def __init__(self, name: str, max_report: int = 10):
        self.name = name
        self.max_report = max_report
        self._expected: dict[str, deque] = defaultdict(deque)
        self._count: dict[str, int] = defaultdict(int)
        self.mismatches: list[Mismatch] = []
        self.compared = 0               # items observed and compared
        self.values_compared = 0        # individual integers compared

    def expect(self, tag: str, ints: Any) -> None:
        self._expected[tag].append(_as_int64(ints, f"{self.name}.expect({tag!r})"))

    def pending(self, tag: str | None = None) -> int:
        if tag is not None:
            return len(self._expected.get(tag, ()))
        return sum(len(q) for q in self._expected.values())

    def observe(self, tag: str, ints: Any) -> bool:
        """Compare with the oldest expected item of ``tag``; True if equal."""
        act = _as_int64(ints, f"{self.name}.observe({tag!r})")
        item = self._count[tag]
        self._count[tag] += 1
        q = self._expected.get(tag)
        if not q:
            self.mismatches.append(Mismatch(tag, item, None, None, act.tolist(),
                                            "observed with nothing expected"))
            return False
        exp = q.popleft()
        self.compared += 1
        if exp.shape != act.shape:
            self.mismatches.append(Mismatch(tag, item, None, f"shape {exp.shape}",
                                            f"shape {act.shape}", "shape mismatch"))
            return False
        self.values_compared += exp.size
        if np.array_equal(exp, act):
            return True
        diff = np.argwhere(exp != act)
        n_bad = len(diff)
        for idx in diff[:self.max_report]:
            t = tuple(int(i) for i in idx)
            self.mismatches.append(Mismatch(tag, item, t, int(exp[t]), int(act[t]),
                                            f"{n_bad} of {exp.size} values differ"))
        return False

    def stats(self) -> dict[str, int]:
        bad_items = len({(m.tag, m.item) for m in self.mismatches})
        return {"compared": self.compared, "values_compared": self.values_compared,
                "mismatches": len(self.mismatches), "mismatched_items": bad_items,
                "pending": self.pending()}

    def assert_clean(self, allow_pending: bool = False) -> None:
        """Raise AssertionError if anything mismatched, nothing was compared, or
        (unless ``allow_pending``) expected items were never observed."""
        st = self.stats()
        problems = []
        if self.mismatches:
            shown = "\n".join(f"  {m}" for m in self.mismatches[:self.max_report])
            more = len(self.mismatches) - self.max_report
            problems.append(f"{st['mismatched_items']} of {st['compared']} item(s) "
                            f"mismatched:\n{shown}" + (f"\n  ... {more} more" if more > 0 else ""))
        if st["pending"] and not allow_pending:
            per = {t: len(q) for t, q in self._expected.items() if q}
            problems.append(f"{st['pending']} expected item(s) never observed: {per}")
        if st["compared"] == 0:
            problems.append("nothing was compared")
        if problems:
            raise AssertionError(f"scoreboard {self.name}: " + "\n".join(problems))

    def summary(self) -> str:
        st = self.stats()
        return (f"scoreboard {self.name}: {st['compared']} items / {st['values_compared']} "
                f"values compared, {st['mismatches']} mismatches, {st['pending']} pending")


@dataclass
class Perf:
    """Cycle / useful-MAC counter of one test (see module docstring)."""

    name: str
    units: int                                   # DSP slices or LUT units doing MACs
    cycles: int = 0
    macs: int = 0
    tiles: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.units <= 0:
            raise ValueError(f"Perf({self.name!r}): units must be positive, got {self.units}")

    def add(self, cycles: int = 0, macs: int = 0, tiles: int = 0) -> None:
        if cycles < 0 or macs < 0 or tiles < 0:
            raise ValueError("Perf.add: counts must be non-negative")
        self.cycles += int(cycles)
        self.macs += int(macs)
        self.tiles += int(tiles)

    @property
    def utilisation(self) -> float:
        return self.macs / (self.units * self.cycles) if self.cycles else 0.0

    @property
    def cycles_per_tile(self) -> float:
        return self.cycles / self.tiles if self.tiles else float("nan")

    def as_dict(self) -> dict:
        return {"name": self.name, "units": self.units, "cycles": self.cycles,
                "macs": self.macs, "tiles": self.tiles,
                "cycles_per_tile": self.cycles_per_tile if self.tiles else None,
                "utilisation": self.utilisation, **self.extra}

    def report(self) -> str:
        cpt = f"{self.cycles_per_tile:.2f}" if self.tiles else "n/a"
        return (f"PERF {self.name}: cycles={self.cycles} tiles={self.tiles} "
                f"cycles/tile={cpt} useful_MACs={self.macs} units={self.units} "
                f"utilisation={100 * self.utilisation:.2f}%")

    def log(self, logger=None) -> str:
        line = self.report()
        if logger is not None:
            logger.info(line)
        return line

    def write_json(self, path: str | Path | None = None) -> Path:
        """Write :meth:`as_dict` to ``path`` or ``$PLAIT_SIM_OUT/perf-<name>.json``
        (the current directory when PLAIT_SIM_OUT is unset)."""
        if path is None:
            base = Path(os.environ.get("PLAIT_SIM_OUT", "."))
            path = base / f"perf-{re.sub(r'[^A-Za-z0-9_.-]+', '_', self.name)}.json"
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=1))
        return path
