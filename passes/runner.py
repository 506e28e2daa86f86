"""Running a pipeline: :class:`PassManager` and its :class:`PipelineReport`.

:class:`PassManager` runs a pipeline (a list of pass instances):

* timing per pass, a tqdm progress bar (``progress=None``: only on a terminal);
* ``debug=True`` (or ``PLAIT_DEBUG=1``) verifies the graph and its weights after
  every pass and names the pass that broke it, and checks each pass's
  ``changed`` answer against the printed graph and the weight store;
* ``dump_dir``: every intermediate graph with its weight deltas, and
  ``resume_from``: rebuild a dumped step and run only the remaining passes
  (both :mod:`.dump`).
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

from plait.ir import Graph, WeightStore, print_graph, verify
from plait.ir.limits import PeakMeter
from plait.ir.verify import VerifyError

from .dump import dump_start, dump_step, resume, store_diff, store_state
from .framework import Pass, PassContext, PassError, make_pass


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
    peak_rss_mb: Optional[float] = None           # the process's peak resident memory during the pass


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
            peak = f"  peak {p.peak_rss_mb:7.0f} MB" if p.peak_rss_mb is not None else ""
            out.append(f"{p.index:2d} {p.name:<18} {'changed' if p.changed else 'no change':<9} "
                       f"{p.seconds:8.3f} s  {nw:4d} weight entries{peak}{tag}")
        out.append(f"   {'total':<18} {'':<9} {self.seconds:8.3f} s")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def to_dict(self) -> dict:
        return {"recipe": self.recipe, "seconds": self.seconds,
                "passes": [{"index": p.index, "pass": p.name, "spec": p.spec, "changed": p.changed,
                            "seconds": p.seconds, "peak_rss_mb": p.peak_rss_mb,
                            "details": p.details, "weights": p.weights,
                            "resumed": p.resumed} for p in self.passes]}



# --------------------------------------------------------------------------- manager

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
            root, graph, weights, start, done = resume(self.resume_from, graph, weights, self.specs())
            self._resume_root = root
            report.passes.extend(PassResult(ch["index"], ch["pass"]["pass"], ch["pass"], ch["changed"],
                                            ch["seconds"], ch.get("details", {}), ch["weights"], resumed=True)
                                 for ch in done)
        if self.debug:
            self._verify(graph, weights, "of the input graph" if start == 0 else f"of the dump at step {start}")
        if self.dump_dir is not None:
            dump_start(self.dump_dir, graph, start, recipe=self.recipe_name, specs=self.specs(),
                       dump_weights=self.dump_weights, resumed_from=self._resume_root)

        todo = list(enumerate(self.pipeline, start=1))[start:]
        bar = self._bar(len(todo))
        try:
            for index, p in todo:
                if bar is not None:
                    bar.set_description(p.name)
                ctx = PassContext(self.debug, self.log, self.calibration)
                before = store_state(weights)
                text_before = print_graph(graph) if self.debug else None
                meter = PeakMeter()
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
                delta = store_diff(before, store_state(weights))
                del before
                res = PassResult(index, p.name, p.spec(), changed, seconds, _json_safe(ctx.details), delta,
                                 peak_rss_mb=meter.peak() / 2**20)
                report.passes.append(res)
                if self.debug:
                    self._verify(graph, weights, f"after pass {index} ({p.name})")
                    really = print_graph(graph) != text_before or any(delta.values())
                    if really != changed:
                        raise PassError(f"pass {index} ({p.name}) returned changed={changed} but it "
                                        f"{'did' if really else 'did not'} change the graph or its weights")
                if self.dump_dir is not None:
                    dump_step(self.dump_dir, graph, weights, res, self.dump_weights)
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
