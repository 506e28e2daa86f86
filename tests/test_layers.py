"""The layer rule of DESIGN.md ("Layers of the code") as a test: imports point down.

    ir  <-  frontend, passes, rtl  <-  hls, sim  <-  runtime  <-  cli

``ir`` is at the bottom; ``frontend``, ``passes`` and ``rtl`` use only ``ir``; ``hls``
and ``sim`` use ``ir`` and ``rtl``; ``runtime`` may use all of these; the CLI sits on
top.  Every ``import`` in a package's modules counts, at module level or inside a
function (a lazy import is still a dependency).  Tests, benchmarks and scripts may
import anything.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ALLOWED: dict[str, set[str]] = {
    "ir": set(),
    "frontend": {"ir"},
    "passes": {"ir"},
    "rtl": {"ir"},
    "hls": {"ir", "rtl"},
    "sim": {"ir", "rtl"},
    "runtime": {"ir", "frontend", "passes", "rtl", "hls", "sim"},
    "cli": {"ir", "frontend", "passes", "rtl", "hls", "sim", "runtime"},
}
FREE = {"tests", "benchmarks", "scripts"}


def _layer_of(rel: Path) -> str | None:
    top = rel.parts[0]
    if top in ("cli.py", "__main__.py"):
        return "cli"
    if top == "__init__.py":
        return None                                 # the package root: version only
    return top if top in ALLOWED else None


def _imports(path: Path, rel: Path | None = None) -> list[tuple[int, str]]:
    """``(line, imported plait layer)`` of every import in ``path`` (at ``rel`` in the package)."""
    rel = rel or path.relative_to(ROOT)
    pkg = ["plait", *rel.parts[:-1]]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[:len(pkg) - node.level + 1]
                names = [".".join(base + ([node.module] if node.module else []))]
            elif node.module:
                names = [node.module]
        for n in names:
            parts = n.split(".")
            if parts[0] == "plait" and len(parts) > 1:
                layer = "cli" if parts[1] in ("cli", "__main__") else parts[1]
                out.append((node.lineno, layer))
    return out


def _sources() -> list[Path]:
    skip = {".venv", ".git", ".plait_cache", "out", "build"} | FREE
    return sorted(p for p in ROOT.rglob("*.py")
                  if not (set(p.relative_to(ROOT).parts) & skip) and _layer_of(p.relative_to(ROOT)))


def test_imports_point_down():
    bad = []
    for path in _sources():
        rel = path.relative_to(ROOT)
        me = _layer_of(rel)
        for line, layer in _imports(path):
            if layer != me and layer in ALLOWED and layer not in ALLOWED[me]:
                bad.append(f"{rel}:{line}: {me} imports plait.{layer}")
    assert not bad, "upward imports (DESIGN.md, Layers of the code):\n" + "\n".join(bad)


def test_the_rule_sees_every_layer():
    """The walk finds modules of every layer (a typo in the table would pass vacuously)."""
    seen = {_layer_of(p.relative_to(ROOT)) for p in _sources()}
    assert seen == set(ALLOWED)


def test_an_upward_import_is_caught(tmp_path):
    """The checker itself: an ``ir`` module importing ``plait.runtime`` (lazily) and
    ``..passes`` (relatively) is reported."""
    fake = tmp_path / "probe.py"
    fake.write_text("def f():\n    from plait.runtime import Session\n    from ..passes import x\n")
    assert [layer for _, layer in _imports(fake, Path("ir/probe.py"))] == ["runtime", "passes"]


def test_graph_does_not_import_ops():
    """``ir.graph`` is below ``ir.ops`` (the op registry plugs its type rule into Graph)."""
    path = ROOT / "ir" / "graph.py"
    mods = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mods.add(("." * node.level) + (node.module or ""))
    assert ".ops" not in mods and "plait.ir.ops" not in mods
