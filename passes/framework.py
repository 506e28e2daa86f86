"""The pass framework: errors, options, the registry and the ``Pass`` base class.

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

Running a pipeline is :mod:`.runner`'s job, dumps and resume :mod:`.dump`'s,
choosing the linear weights a pass works on :mod:`.select`'s.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

from plait.ir import Graph, WeightStore, verify


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


# --------------------------------------------------------------------------- built-in

@register_pass
class Verify(Pass):
    """Verify the graph and its weight references (never changes anything)."""
    name = "verify"

    def run(self, graph, weights, ctx):
        verify(graph, weights)
        return False
