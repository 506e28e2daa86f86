"""Mutation testing of RTL: a copy of the sources with one deliberate change.

A verification environment is only as good as the bugs it catches.  Tests copy a
unit's sources, change one bit of the arithmetic at a named site, run the same
testbench and assert that its scoreboard fails::

    srcs = mutated_sources(unit_sources("lut_core"), tmp_path, "lut_lookup.sv",
                           "assign neg = !idx[3];", "assign neg = idx[3];")

:func:`switched_mutants` puts several mutants into one copy, each switched on at run
time by a testbench-written select (one Verilator build for all of them; used to show
that each of an RTL's assertions can fail).
"""
from __future__ import annotations

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
