"""The pass manager: named passes, a registry, pipelines with dumps and resume.

A pass is a small class registered under a name::

    @register_pass
    class DeadCode(Pass):
        name = "dce"
        def run(self, graph, weights, ctx) -> bool:   # True if it changed anything
            return graph.dead_code() > 0

Passes rewrite the graph *in place* and replace weight-store entries
(``weights[name] = new_array``); they never copy weights.  Options are declared
once per pass class in ``OPTIONS`` (name -> :class:`Option`) and validated when
the pass is built, so a recipe file and Python code get the same checks and the
same error messages (each naming the offending key).

:class:`PassManager` runs a pipeline (a list of pass instances):

* timing per pass, a tqdm progress bar (``progress=None``: only on a terminal);
* ``debug=True`` (or ``PLAIT_DEBUG=1``) verifies the graph and its weights after
  every pass and names the pass that broke it, and checks each pass's
  ``changed`` answer against the printed graph and the weight store;
* ``dump_dir``: writes ``NN-<pass>/graph.plait`` (the graph after pass NN), a
  ``changes.json`` (changed?, seconds, details, which weight-store entries were
  replaced, added or removed) and ``weights.safetensors`` holding only those
  entries (a *delta*, so an N-pass dump costs N deltas, not N models);
  ``00-input`` holds the input graph and ``pipeline.json`` the pipeline;
* ``resume_from``: a dump directory (or one of its ``NN-<pass>`` step folders):
  the manager checks that the input graph and the pipeline prefix are the ones
  that were dumped, rebuilds the graph and weights at that step from the dump
  (original weights + deltas) and runs only the remaining passes.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

from plait.ir import Graph, WeightStore, parse_graph, print_graph, verify
from plait.ir.types import FLOAT_DTYPES
from plait.ir.verify import VerifyError


class PassError(ValueError):
    """A pass cannot be built or run (bad option, unsupported input, broken invariant)."""


class PassOptionError(PassError):
    """A bad pass option; ``key`` names it (the recipe loader adds the file)."""

    def __init__(self, pass_name: str, key: Optional[str], msg: str):
        self.pass_name, self.key, self.msg = pass_name, key, msg
        where = f"pass {pass_name!r}" + (f", option {key!r}" if key else "")
        super().__init__(f"{where}: {msg}")


# --------------------------------------------------------------------------- options

_MISSING = object()


@dataclass(frozen=True)
class Option:
    """One pass option: its type, default (``REQUIRED`` if none) and a check.

    ``kind`` is one of ``int``, ``str``, ``bool``, ``float``, ``list[str]``,
    ``list[int]``; ``choices`` restricts the value; ``check(value)`` returns an
    error message or ``None``.
    """

    kind: str
    default: Any = _MISSING
    doc: str = ""
    choices: Optional[tuple] = None
    check: Optional[Callable[[Any], Optional[str]]] = None

    @property
    def required(self) -> bool:
        return self.default is _MISSING


REQUIRED = _MISSING


def _kind_ok(kind: str, v: Any) -> bool:
    if kind == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if kind == "float":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if kind == "str":
        return isinstance(v, str)
    if kind == "bool":
        return isinstance(v, bool)
    if kind == "list[str]":
        return isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v)
    if kind == "list[int]":
        return isinstance(v, (list, tuple)) and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
    raise AssertionError(f"unknown option kind {kind!r}")


# --------------------------------------------------------------------------- passes

PASSES: dict[str, type] = {}


def positive(v) -> Optional[str]:
    """Option check: the value must be > 0."""
    return None if v > 0 else f"must be positive, got {v}"


def known_target(name: str) -> Optional[str]:
    """Option check: ``name`` is a hardware target of :mod:`plait.ir.target`."""
    from plait.ir.target import TargetError, get_target
    try:
        get_target(name)
    except TargetError as e:
        return str(e)
    return None


def register_pass(cls):
    """Class decorator: make a :class:`Pass` subclass available by its ``name``."""
    if not cls.name or not re.fullmatch(r"[a-z][a-z0-9_]*", cls.name):
        raise ValueError(f"pass class {cls.__name__} needs a snake_case name, got {cls.name!r}")
    if cls.name in PASSES and PASSES[cls.name] is not cls:
        raise ValueError(f"pass name {cls.name!r} registered twice "
                         f"({PASSES[cls.name].__qualname__} and {cls.__qualname__})")
    PASSES[cls.name] = cls
    return cls


def get_pass(name: str) -> type:
    try:
        return PASSES[name]
    except KeyError:
        raise PassError(f"unknown pass {name!r}; registered passes: {', '.join(sorted(PASSES))}") from None


def make_pass(name: str, **options) -> "Pass":
    return get_pass(name)(**options)


class Pass:
    """Base class. Subclasses set ``name``, ``OPTIONS`` and implement :meth:`run`."""

    name: str = ""
    OPTIONS: dict[str, Option] = {}

    def __init__(self, **options):
        self.options = self._validate(options)

    @classmethod
    def _validate(cls, options: dict) -> dict:
        unknown = [k for k in options if k not in cls.OPTIONS]
        if unknown:
            known = ", ".join(sorted(cls.OPTIONS)) or "none"
            raise PassOptionError(cls.name, unknown[0], f"unknown option (known options: {known})")
        out = {}
        for key, opt in cls.OPTIONS.items():
            if key not in options:
                if opt.required:
                    raise PassOptionError(cls.name, key, "required option is missing")
                out[key] = list(opt.default) if isinstance(opt.default, (list, tuple)) else opt.default
                continue
            v = options[key]
            if v is None and opt.default is None:
                out[key] = None
                continue
            if not _kind_ok(opt.kind, v):
                raise PassOptionError(cls.name, key, f"expected {opt.kind}, got {type(v).__name__} {v!r}")
            if opt.choices is not None and v not in opt.choices:
                raise PassOptionError(cls.name, key, f"must be one of {', '.join(map(repr, opt.choices))}, got {v!r}")
            if opt.check is not None:
                msg = opt.check(v)
                if msg:
                    raise PassOptionError(cls.name, key, msg)
            out[key] = list(v) if isinstance(v, tuple) else v
        cls.check_options(out)
        return out

    @classmethod
    def check_options(cls, options: dict) -> None:
        """Cross-option checks; raise :class:`PassOptionError` naming a key."""

    def run(self, graph: Graph, weights: WeightStore, ctx: "PassContext") -> bool:
        raise NotImplementedError

    def spec(self) -> dict:
        """JSON form: ``{"pass": name, <options that differ from defaults>...}``."""
        d: dict[str, Any] = {"pass": self.name}
        for k, v in self.options.items():
            opt = self.OPTIONS[k]
            dflt = list(opt.default) if isinstance(opt.default, tuple) else opt.default
            if opt.required or v != dflt:
                d[k] = v
        return d

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.spec().items() if k != "pass")
        return f"{self.name}({opts})"


class PassContext:
    """What a pass may use besides the graph and weights.

    ``details`` is a fresh dict for every pass: a pass records what it did there
    (e.g. the weights it quantized and the ones it skipped, with the reason);
    the manager copies it into the report and the dump.

    ``calibration``: data for passes that run the model (``{"ids": token ids}``
    for :mod:`plait.passes.calibrate`), handed in by the caller
    (``PassManager(..., calibration=...)`` / ``run_recipe(..., calibration=...)``);
    ``None`` when there is none.
    """

    def __init__(self, debug: bool = False, log: Optional[Callable[[str], None]] = None,
                 calibration: Optional[dict] = None):
        self.debug = debug
        self.details: dict[str, Any] = {}
        self._log = log
        self.calibration = calibration

    def log(self, msg: str) -> None:
        if self._log is not None:
            self._log(msg)


# --------------------------------------------------------------------------- report

@dataclass
class PassResult:
    index: int
    name: str
    spec: dict
    changed: bool
    seconds: float
    details: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)   # {"replaced": [...], "added": [...], "removed": [...]}
    resumed: bool = False                         # taken from a dump, not run now


@dataclass
class PipelineReport:
    recipe: str = ""
    passes: list[PassResult] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.passes)

    @property
    def changed(self) -> bool:
        return any(p.changed for p in self.passes)

    def lines(self) -> list[str]:
        out = []
        for p in self.passes:
            nw = sum(len(v) for v in p.weights.values())
            tag = " (from dump)" if p.resumed else ""
            out.append(f"{p.index:2d} {p.name:<18} {'changed' if p.changed else 'no change':<9} "
                       f"{p.seconds:8.3f} s  {nw:4d} weight entries{tag}")
        out.append(f"   {'total':<18} {'':<9} {self.seconds:8.3f} s")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def to_dict(self) -> dict:
        return {"recipe": self.recipe, "seconds": self.seconds,
                "passes": [{"index": p.index, "pass": p.name, "spec": p.spec, "changed": p.changed,
                            "seconds": p.seconds, "details": p.details, "weights": p.weights,
                            "resumed": p.resumed} for p in self.passes]}


# --------------------------------------------------------------------------- weight deltas

def _store_state(weights: WeightStore) -> dict:
    """Cheap identity snapshot of a store: name -> (info, where the data lives).

    Keeps references to the arrays so identities cannot be recycled while the
    snapshot lives.  Reading a lazily-loaded entry does not count as a change.
    """
    arrays = getattr(weights, "_arrays", {})
    lazy = getattr(weights, "_lazy", {})
    state = {}
    for n in weights.names():
        if n in lazy:
            where = ("lazy", lazy[n])
        elif n in arrays:
            where = ("array", arrays[n])
        else:
            where = ("declared", None)
        state[n] = (weights.info(n), where)
    return state


def _same(a, b) -> bool:
    (ia, (ka, va)), (ib, (kb, vb)) = a, b
    return ia == ib and ka == kb and (va is vb if ka == "array" else va == vb)


def _diff(before: dict, after: dict) -> dict:
    return {
        "replaced": sorted(n for n in after if n in before and not _same(before[n], after[n])),
        "added": sorted(n for n in after if n not in before),
        "removed": sorted(n for n in before if n not in after),
    }


# --------------------------------------------------------------------------- manager

PIPELINE_FILE = "pipeline.json"
CHANGES_FILE = "changes.json"
DELTA_FILE = "weights.safetensors"
GRAPH_FILE = "graph.plait"
INPUT_STEP = "00-input"


def _step_dir(index: int, name: str) -> str:
    return f"{index:02d}-{name}"


def _json_safe(x):
    return json.loads(json.dumps(x, default=str))


def debug_enabled() -> bool:
    return os.environ.get("PLAIT_DEBUG", "") not in ("", "0", "false", "no")


class PassManager:
    """Run a pipeline of passes over a graph and its weights (in place).

    ``pipeline``: pass instances, or ``(name, options)`` pairs / ``{"pass": name, ...}``
    dicts.  ``run(graph, weights)`` mutates both and returns ``(graph, weights,
    report)`` (a :class:`PipelineReport`; on resume, the graph and weights rebuilt
    from the dump)
    (callers that must keep their inputs pass ``graph.copy()`` / ``weights.copy()``:
    both are cheap, see :func:`plait.passes.run_recipe`).
    """

    def __init__(self, pipeline: Iterable, *, dump_dir=None, resume_from=None,
                 dump_weights: bool = True, debug: Optional[bool] = None,
                 progress: Optional[bool] = None, print_ir: bool = False,
                 recipe_name: str = "", log: Optional[Callable[[str], None]] = None,
                 calibration: Optional[dict] = None):
        self.pipeline: list[Pass] = [self._as_pass(p) for p in pipeline]
        self.dump_dir = Path(dump_dir) if dump_dir is not None else None
        self.resume_from = Path(resume_from) if resume_from is not None else None
        self.dump_weights = dump_weights
        self.debug = debug_enabled() if debug is None else debug
        self.progress = progress
        self.print_ir = print_ir
        self.recipe_name = recipe_name
        self.log = log
        self.calibration = calibration
        self._resume_root: Optional[Path] = None

    @staticmethod
    def _as_pass(p) -> Pass:
        if isinstance(p, Pass):
            return p
        if isinstance(p, dict):
            d = dict(p)
            if "pass" not in d:
                raise PassError(f"pipeline entry {p!r} has no 'pass' key")
            return make_pass(d.pop("pass"), **d)
        if isinstance(p, (tuple, list)) and len(p) == 2 and isinstance(p[0], str):
            return make_pass(p[0], **dict(p[1]))
        if isinstance(p, str):
            return make_pass(p)
        raise PassError(f"cannot make a pass from {p!r}")

    def specs(self) -> list[dict]:
        return [p.spec() for p in self.pipeline]

    # ------------------------------------------------------------------ run
    def run(self, graph: Graph, weights: WeightStore) -> tuple[Graph, WeightStore, PipelineReport]:
        report = PipelineReport(self.recipe_name)
        start = 0
        if self.resume_from is not None:
            graph, weights, start, done = self._resume(graph, weights)
            report.passes.extend(done)
        if self.debug:
            self._verify(graph, weights, "of the input graph" if start == 0 else f"of the dump at step {start}")
        if self.dump_dir is not None:
            self._dump_start(graph, weights, start)

        todo = list(enumerate(self.pipeline, start=1))[start:]
        bar = self._bar(len(todo))
        try:
            for index, p in todo:
                if bar is not None:
                    bar.set_description(p.name)
                ctx = PassContext(self.debug, self.log, self.calibration)
                before = _store_state(weights)
                text_before = print_graph(graph) if self.debug else None
                t0 = time.perf_counter()
                try:
                    changed = p.run(graph, weights, ctx)
                except Exception as e:
                    if not isinstance(e, PassError):
                        e.add_note(f"(while running pass {index}: {p!r})")
                    raise
                if not isinstance(changed, bool):
                    raise PassError(f"pass {p.name!r} returned {changed!r}; a pass must return True/False "
                                    f"(did it change the graph?)")
                seconds = time.perf_counter() - t0
                delta = _diff(before, _store_state(weights))
                del before
                res = PassResult(index, p.name, p.spec(), changed, seconds, _json_safe(ctx.details), delta)
                report.passes.append(res)
                if self.debug:
                    self._verify(graph, weights, f"after pass {index} ({p.name})")
                    really = print_graph(graph) != text_before or any(delta.values())
                    if really != changed:
                        raise PassError(f"pass {index} ({p.name}) returned changed={changed} but it "
                                        f"{'did' if really else 'did not'} change the graph or its weights")
                if self.dump_dir is not None:
                    self._dump_step(graph, weights, res)
                if self.print_ir:
                    sys.stdout.write(f"// after pass {index} ({p.name}), changed={changed}\n{print_graph(graph)}")
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return graph, weights, report

    def _bar(self, total: int):
        show = self.progress if self.progress is not None else sys.stderr.isatty()
        if not show or total == 0:
            return None
        from tqdm import tqdm
        return tqdm(total=total, unit="pass", leave=False)

    @staticmethod
    def _verify(graph: Graph, weights: WeightStore, where: str) -> None:
        try:
            verify(graph, weights)
        except VerifyError as e:
            raise PassError(f"verification failed {where}: {e}") from None

    # ------------------------------------------------------------------ dump
    def _dump_start(self, graph: Graph, weights: WeightStore, start: int) -> None:
        d = self.dump_dir
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("[0-9][0-9]-*"):
            # steps this run will (re)write, and stale steps of an older, longer run
            if old.is_dir() and (start == 0 or int(old.name[:2]) > start):
                shutil.rmtree(old)
        if start == 0:
            (d / INPUT_STEP).mkdir()
            (d / INPUT_STEP / GRAPH_FILE).write_text(print_graph(graph))
        elif self._resume_root is not None and self._resume_root.resolve() != d.resolve():
            # resuming into a new dump: bring the steps we start from
            for sd in [self._resume_root / INPUT_STEP] + sorted(self._resume_root.glob("[0-9][0-9]-*")):
                if sd.is_dir() and (sd.name == INPUT_STEP or int(sd.name[:2]) <= start):
                    shutil.copytree(sd, d / sd.name, dirs_exist_ok=True)
        (d / PIPELINE_FILE).write_text(json.dumps(
            {"recipe": self.recipe_name, "passes": self.specs(), "dump_weights": self.dump_weights},
            indent=2) + "\n")

    def _dump_step(self, graph: Graph, weights: WeightStore, res: PassResult) -> None:
        sd = self.dump_dir / _step_dir(res.index, res.name)
        sd.mkdir(parents=True, exist_ok=True)
        (sd / GRAPH_FILE).write_text(print_graph(graph))
        delta = WeightStore()
        declared = {}
        for n in res.weights["replaced"] + res.weights["added"]:
            if weights.has_data(n):
                delta[n] = weights[n]
            else:
                info = weights.info(n)
                declared[n] = [list(info.shape), info.dtype]
        saved = False
        if self.dump_weights and len(delta):
            delta.save(sd / DELTA_FILE)
            saved = True
        (sd / CHANGES_FILE).write_text(json.dumps({
            "index": res.index, "pass": res.spec, "changed": res.changed, "seconds": res.seconds,
            "weights": res.weights, "declared": declared, "weights_saved": saved or not len(delta),
            "details": res.details}, indent=2, default=str) + "\n")

    # ------------------------------------------------------------------ resume
    def _resume(self, graph: Graph, weights: WeightStore):
        src = self.resume_from
        if (src / GRAPH_FILE).exists() and re.fullmatch(r"\d\d-.+", src.name):
            root, upto = src.parent, int(src.name[:2])
        else:
            root, upto = src, None
        self._resume_root = root
        pf = root / PIPELINE_FILE
        if not pf.exists():
            raise PassError(f"resume_from {src}: not a pass dump (no {PIPELINE_FILE} in {root})")
        dumped = json.loads(pf.read_text())["passes"]
        steps = sorted((int(p.name[:2]), p) for p in root.glob("[0-9][0-9]-*")
                       if p.is_dir() and p.name != INPUT_STEP and (p / CHANGES_FILE).exists())
        if upto is None:
            upto = steps[-1][0] if steps else 0
        have = [i for i, _ in steps]
        if have[:upto] != list(range(1, upto + 1)):
            raise PassError(f"resume_from {src}: the dump lacks steps {sorted(set(range(1, upto + 1)) - set(have))}")
        mine = self.specs()
        if upto > len(mine):
            raise PassError(f"resume_from {src}: the dump has {upto} passes but this pipeline only {len(mine)}")
        for i in range(upto):
            if dumped[i] != mine[i]:
                raise PassError(f"resume_from {src}: pass {i + 1} differs: dumped {dumped[i]} but the "
                                f"pipeline has {mine[i]}")
        if graph is not None:
            ref = (root / INPUT_STEP / GRAPH_FILE).read_text()
            if print_graph(graph) != ref:
                raise PassError(f"resume_from {src}: the dump was made from a different input graph "
                                f"(compare with {root / INPUT_STEP / GRAPH_FILE})")
        weights = weights.copy()
        done = []
        for i, sd in steps[:upto]:
            ch = json.loads((sd / CHANGES_FILE).read_text())
            if not ch.get("weights_saved", False):
                raise PassError(f"resume_from {src}: step {sd.name} was dumped without its weights "
                                f"(dump_weights=False); cannot rebuild the weight store")
            for n in ch["weights"]["removed"]:
                weights.pop(n)
            if (sd / DELTA_FILE).exists():
                delta = WeightStore.load(sd / DELTA_FILE, lazy=False)
                for n in delta.names():
                    weights[n] = delta[n]
            for n, (shape, dtype) in ch.get("declared", {}).items():
                weights.declare(n, shape, dtype)
            done.append(PassResult(i, ch["pass"]["pass"], ch["pass"], ch["changed"], ch["seconds"],
                                   ch.get("details", {}), ch["weights"], resumed=True))
        last = steps[upto - 1][1] if upto else root / INPUT_STEP
        graph = parse_graph((last / GRAPH_FILE).read_text())
        return graph, weights, upto, done


# --------------------------------------------------------------------------- built-in

@register_pass
class Verify(Pass):
    """Verify the graph and its weight references (never changes anything)."""
    name = "verify"

    def run(self, graph, weights, ctx):
        verify(graph, weights)
        return False


# --------------------------------------------------------------------------- selection

@dataclass
class LinearWeight:
    """A weight-store entry used as the weight of linear layer(s)."""

    weight: str                 # weight-store name
    params: list                # param nodes naming it
    linears: list               # linear nodes using it as their weight
    other_users: list           # (node, op) pairs using it in any other way

    def weight_type(self, pass_name: str):
        """The one type every param naming this weight agrees on."""
        types = {p.type for p in self.params}
        if len(types) > 1:
            raise PassError(f"{pass_name}: params naming weight {self.weight!r} disagree on its type: "
                            f"{sorted(t.text() for t in types)}")
        return next(iter(types))

    def unfit_reason(self, t) -> Optional[str]:
        """Why a compression pass must leave this weight alone (None: it may proceed)."""
        if self.other_users:
            node, op = self.other_users[0]
            return f"also used by %{node} ({op}), not only as a linear weight"
        if t.dtype not in FLOAT_DTYPES:
            return f"not a float weight ({t.dtype})"
        return None

    def matrix_shape(self, t, pass_name: str) -> tuple[int, int]:
        """``(N, K)`` of a concrete 2-D weight type, or a PassError naming the weight."""
        if t.rank != 2 or not t.concrete():
            raise PassError(f"{pass_name}: weight {self.weight!r} has type {t.text()}; expected a concrete [N, K]")
        return int(t.shape[0]), int(t.shape[1])

    def labels(self) -> list[str]:
        """What include/exclude globs are matched against: the weight name and the
        module path (origin) and name of every linear that uses it."""
        out = [self.weight]
        for n in self.linears:
            if n.origin:
                out.append(n.origin)
            out.append(n.name)
        return out


def linear_weights(graph: Graph) -> dict[str, LinearWeight]:
    """Every weight used as a linear weight, by weight name (in graph order)."""
    found: dict[str, LinearWeight] = {}
    for p in graph.params():
        w = p.attrs["weight"]
        lins, other = [], []
        for u in graph.users(p.name):
            un = graph.node(u)
            if un.op == "linear" and un.inputs[1] == p.name and p.name not in (un.inputs[:1] + un.inputs[2:]):
                lins.append(un)
            else:
                other.append((un.name, un.op))
        if not lins:
            continue
        lw = found.setdefault(w, LinearWeight(w, [], [], []))
        lw.params.append(p)
        lw.linears.extend(lins)
        lw.other_users.extend(other)
    for p in graph.params():  # a weight also read by non-linear params elsewhere (tied)
        w = p.attrs["weight"]
        if w in found and p not in found[w].params:
            found[w].params.append(p)
            found[w].other_users.extend((u, graph.node(u).op) for u in graph.users(p.name))
    return found


def select(graph: Graph, include: Sequence[str], exclude: Sequence[str], pass_name: str,
           explicit_include: bool) -> tuple[list[LinearWeight], dict[str, str]]:
    """Linear weights matched by ``include`` and by no ``exclude`` glob (fnmatch).

    Returns (selected, {weight: reason} for the excluded ones).  An explicit
    include glob that matches no linear weight at all is an error (a typo would
    otherwise silently do nothing).
    """
    from fnmatch import fnmatchcase
    lw = linear_weights(graph)
    selected, skipped = [], {}
    hits = {pat: 0 for pat in include}
    for name, item in lw.items():
        labels = item.labels()
        inc = [pat for pat in include if any(fnmatchcase(l, pat) for l in labels)]
        for pat in inc:
            hits[pat] += 1
        if not inc:
            skipped[name] = "not matched by include"
            continue
        exc = [pat for pat in exclude if any(fnmatchcase(l, pat) for l in labels)]
        if exc:
            skipped[name] = f"excluded by {exc[0]!r}"
            continue
        selected.append(item)
    if explicit_include:
        for pat, n in hits.items():
            if n == 0:
                raise PassOptionError(pass_name, "include",
                                      f"pattern {pat!r} matches no linear weight of graph {graph.name!r} "
                                      f"(globs match weight names such as "
                                      f"{next(iter(lw), '<none>')!r} and module paths)")
    return selected, skipped
