"""The `plait` command line.

    plait compile MODEL [--recipe R] -o OUT [--shape-only] [--dump-dir D] [--force] [--calibration-text F]
    plait run OUT --prompt "..." [--max-new-tokens N] [--exact] [--truncate]
    plait eval OUT [--text FILE] [--max-tokens N] [--window W] [--exact]
    plait inspect OUT [--json] [--target T] [--layers]
    plait hw report UNIT [--config KEY=VALUE ...]
    plait hw sweep UNIT --grid KEY=V1,V2 [--grid ...] [--target-gmacs X] [--plot FILE.png]
    plait hls csim UNIT [--config KEY=VALUE ...]
    plait bench kernels [--shapes 4096x4096,...] | plait bench model OUT [OUT ...]
    plait sweep MODEL --recipes a,b,c [--text FILE ...] [-o DIR] [--workers N] [--address ADDR]

Errors that come from bad input (unknown model, bad recipe, corrupt artifact,
bad option, missing tool, a request beyond the context or the memory) print one
clear line ``plait: error: ...`` naming the option or file and exit with status 2;
options and files are checked before any model is loaded.  Anything else is a bug:
it keeps its traceback, says so, and exits with status 1.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path


class UsageError(ValueError):
    """A bad command line: the message names the option and the problem."""


def _compile(args) -> int:
    from plait.frontend import estimate_compile_memory, load_model, load_tokenizer, resolve_source
    from plait.ir.limits import check_memory
    from plait.passes import load_recipe, run_recipe
    from plait.runtime.artifact import check_output_dir, output_state, write_artifact

    t0 = time.perf_counter()
    # everything that can be checked without the model is checked first
    resolve_source(args.model)
    recipe = load_recipe(args.recipe)
    cal_text = _read_text(args.calibration_text, "--calibration-text") if args.calibration_text else None
    if cal_text is not None and not recipe.needs_calibration:
        raise UsageError(f"--calibration-text: recipe {recipe.name!r} has no pass that calibrates")
    output_state(Path(args.output), force=args.force)
    if args.dump_dir:
        check_output_dir(args.dump_dir, f"--dump-dir {args.dump_dir}")
    check_memory(estimate_compile_memory(args.model, shape_only=args.shape_only), f"compiling {args.model}")
    graph, weights = load_model(args.model, shape_only=args.shape_only)
    t_load = time.perf_counter() - t0
    tok = None if args.shape_only else load_tokenizer(args.model)
    t1 = time.perf_counter()
    graph, weights, report = run_recipe(graph, weights, recipe, dump_dir=args.dump_dir,
                                        calibration=_calibration(recipe, tok, cal_text))
    t_pass = time.perf_counter() - t1
    write_artifact(Path(args.output), graph, weights, model=args.model, recipe=recipe.to_dict(),
                   recipe_text=recipe.text, tokenizer=tok, force=args.force,
                   build_info={"compile_seconds": {"load": round(t_load, 2), "passes": round(t_pass, 2)}})
    total = time.perf_counter() - t0
    print(f"compiled {args.model} with recipe {recipe.name!r} -> {args.output} "
          f"(load {t_load:.1f}s, passes {t_pass:.1f}s, total {total:.1f}s)")
    for line in report.lines() if hasattr(report, "lines") else []:
        print("  " + line)
    from plait.ir.stats import format_plan, summarize
    plan = summarize(graph)["precision_plan"]
    for line in format_plan(plan, layers=True) if plan else []:
        print("  " + line)
    return 0


def _calibration(recipe, tok, text=None):
    """The calibrating passes' input (the one rule: :func:`plait.passes.textdata.calibration_input`)."""
    from plait.passes.textdata import calibration_input
    return calibration_input(recipe, tok, text)


def _compile_smollm2(recipe_name: str):
    """``(graph, weights)`` of SmolLM2 compiled with a recipe, in memory (for `hls csim layer`)."""
    from plait.frontend import load_model, load_tokenizer
    from plait.passes import load_recipe, run_recipe
    recipe = load_recipe(recipe_name)
    graph, weights = load_model("smollm2")
    graph, weights, _ = run_recipe(graph, weights, recipe, calibration=_calibration(recipe, load_tokenizer("smollm2")))
    return graph, weights


def _read_text(path: str, option: str) -> str:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{option} {path}: no such file")
    if p.is_dir():
        raise UsageError(f"{option} {path}: is a directory, expected a text file")
    try:
        text = p.read_bytes().decode("utf-8")
    except PermissionError:
        raise UsageError(f"{option} {path}: not readable (permission denied)") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"{option} {path}: not UTF-8 text (byte {e.start}: {e.reason}); "
                         f"is it a binary file?") from None
    if not text.strip():
        raise UsageError(f"{option} {path}: the file is empty")
    return text


def _run(args) -> int:
    from plait.runtime import Session
    if not args.prompt.strip():
        raise UsageError("--prompt is empty; give the text to answer")
    if args.act_bits is not None and args.exact:
        raise UsageError("--act-bits is the fast float decoder's option; --exact runs the numerics' integers")
    with Session(args.artifact, device=args.device, exact=args.exact, act_bits=args.act_bits) as sess:
        pieces = sess.generate(args.prompt, args.max_new_tokens, chat=not args.no_chat, truncate=args.truncate,
                               temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                               seed=args.seed, stop=args.stop or ())     # the prompt is checked here
        if args.device == "auto":
            print(f"plait: {sess.device_note}", file=sys.stderr)
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def _eval(args) -> int:
    from plait.runtime import Session
    from plait.runtime.artifact import read_manifest
    from plait.runtime.evaluate import default_text, eval_window, session_perplexity
    from plait.runtime.session import context_length
    text = _read_text(args.text, "--text") if args.text else default_text()
    args.window = eval_window(args.window, context_length(read_manifest(args.artifact)))
    sess = Session(args.artifact, device="cpu", exact=args.exact)
    ids = sess.tokenizer.encode(text)
    if len(ids) < 2:
        raise UsageError(f"--text {args.text}: only {len(ids)} token; perplexity needs at least 2")
    ppl, n = session_perplexity(sess, ids, max_tokens=args.max_tokens, window=args.window, progress=not args.json)
    src = args.text or "pydoc_data.topics"
    mode = "exact" if args.exact else "float"
    if args.json:
        print(json.dumps({"perplexity": ppl, "tokens": n, "text": src, "window": args.window, "mode": mode}))
    else:
        print(f"perplexity {ppl:.4f} on {n} tokens of {src} (windows of {args.window}, {mode} mode)")
    return 0


def _sweep(args) -> int:
    from plait.frontend.load import graph_name
    from plait.runtime.sweep import SWEEP_ENTRIES, format_table, plan_sweep, run_sweep
    texts = [(t, _read_text(t, "--text")) for t in args.text or ()]
    out = args.output or os.path.join("out", f"sweep-{graph_name(args.model)}")
    plan = plan_sweep(args.model, args.recipes, texts=texts, out=out, max_tokens=args.max_tokens,
                      window=args.window, workers=args.workers, address=args.address,
                      cpus_per_task=args.cpus_per_task)
    doc = run_sweep(plan)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(format_table(doc))
        print(f"wrote {', '.join(os.path.join(out, n) for n in SWEEP_ENTRIES[:3])}")
    failed = [r for r in doc["rows"] if not r["ok"]]
    if failed:
        return _fail(f"{len(failed)} of {len(doc['rows'])} sweep cells failed (the others are in the table); "
                     f"{failed[0]['recipe']}: {failed[0]['error']}")
    return 0


def _remap(art, target: str):
    """A copy of the artifact's graph mapped onto ``target`` (nothing is recompiled);
    the forced-engine globs of the recipe's ``map_engines`` pass, if any, still apply."""
    from plait.passes.mapping import map_engines
    spec = next((p for p in art.manifest.get("recipe", {}).get("passes", [])
                 if p.get("pass") == "map_engines"), {})
    g = art.graph.copy()
    map_engines(g, target, weights=None if art.shape_only else art.weights,
                dsp_chain=spec.get("dsp_chain", ()), lut_core=spec.get("lut_core", ()),
                prefill_tokens=spec.get("prefill_tokens", 512))
    return g


def _inspect(args) -> int:
    from plait.ir.stats import format_summary, summarize
    from plait.runtime.artifact import load_artifact
    art = load_artifact(args.artifact, check=not args.no_check)
    graph = _remap(art, args.target) if args.target else art.graph
    s = summarize(graph, context=args.context)
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    m = art.manifest
    print(f"artifact         {art.path}  (schema v{m['schema_version']}, model {m['model']}, "
          f"recipe {m['recipe'].get('name', '?')}{', shape-only' if art.shape_only else ''})")
    print(format_summary(s, layers=args.layers))
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with plait's error format: one line, ``plait: error: ...``, exit 2."""

    def error(self, message: str):
        cmd = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        print(f"plait: error: {cmd}{message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {v}")
        return v
    parse.__name__ = f"integer >= {low}"
    return parse


def _float_in(low: float, high: float, *, low_open: bool = False):
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (low < v if low_open else low <= v) or not v <= high:
            raise argparse.ArgumentTypeError(f"must be in {'(' if low_open else '['}{low:g}, {high:g}], got {v:g}")
        return v
    parse.__name__ = f"number in [{low:g}, {high:g}]"
    return parse


def build_parser() -> argparse.ArgumentParser:
    from plait import __version__
    from plait.runtime.devices import DEVICES
    p = _Parser(prog="plait", description="LLM -> FPGA co-design compiler")
    p.add_argument("--version", action="version", version=f"plait {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser("compile", help="compile a model into an artifact")
    c.add_argument("model", help="smollm2 | a local HF directory | a named config (see plait.frontend.MODEL_CONFIGS)")
    c.add_argument("--recipe", default="default", help="recipe name (bundled) or path to a TOML file")
    c.add_argument("-o", "--output", required=True, help="artifact directory to write")
    c.add_argument("--shape-only", action="store_true", help="plan without weights (meta device)")
    c.add_argument("--dump-dir", help="save the graph after every pass here")
    c.add_argument("--calibration-text", metavar="FILE",
                   help="calibrate on this UTF-8 text instead of the default one (pydoc_data.topics); "
                        "the passes' tokens/take options pick the tokens")
    c.add_argument("--force", action="store_true",
                   help="write into an existing directory that holds other files (they are kept)")
    c.set_defaults(fn=_compile)

    r = sub.add_parser("run", help="generate text from an artifact")
    r.add_argument("artifact", help="artifact directory written by `plait compile`")
    r.add_argument("--prompt", required=True, help="the text to answer")
    r.add_argument("--max-new-tokens", type=_int_at_least(1), default=64, help="most tokens to generate")
    r.add_argument("--no-chat", action="store_true", help="do not apply the chat template")
    r.add_argument("--device", default="auto", choices=("auto",) + DEVICES,
                   help="where to run (auto: fpga, then cuda, then cpu)")
    r.add_argument("--temperature", type=_float_in(0.0, 100.0), default=0.0, help="sampling temperature (0: greedy)")
    r.add_argument("--top-k", type=_int_at_least(0), default=0, help="sample among the K most likely (0: all)")
    r.add_argument("--top-p", type=_float_in(0.0, 1.0, low_open=True), default=1.0,
                   help="nucleus sampling: smallest set reaching P")
    r.add_argument("--seed", type=int, default=None, help="random seed of the sampling")
    r.add_argument("--stop", action="append", metavar="TEXT", help="stop before this text (repeatable)")
    r.add_argument("--truncate", action="store_true",
                   help="keep the last tokens of a prompt too long for the model's context "
                        "(default: refuse it)")
    r.add_argument("--exact", action="store_true",
                   help="run in the engines' integers (plait.ir.numerics) instead of float")
    r.add_argument("--act-bits", type=int, choices=(16, 8), default=None,
                   help="float mode on the cpu: quantize the fast decoder's activations per weight group "
                        "to 16 bits (default) or 8 (faster; as llama.cpp's Q8 activation blocks)")
    r.set_defaults(fn=_run)

    e = sub.add_parser("eval", help="perplexity of an artifact on a text")
    e.add_argument("artifact", help="artifact directory written by `plait compile`")
    e.add_argument("--text", help="text file (default: CPython's pydoc_data.topics)")
    e.add_argument("--max-tokens", type=_int_at_least(2), default=4096,
                   help="score the first N tokens of the text")
    e.add_argument("--window", type=_int_at_least(2), default=None,
                   help="tokens per evaluation window (default: 512, or the model's context if shorter)")
    e.add_argument("--json", action="store_true", help="print only a JSON object")
    e.add_argument("--exact", action="store_true",
                   help="evaluate in the engines' integers (plait.ir.numerics) instead of float")
    e.set_defaults(fn=_eval)

    w = sub.add_parser("sweep", help="compile and evaluate many recipes on one model, each a Ray task")
    w.add_argument("model", help="smollm2 | a local HF directory | a GGUF file | a named config (as for compile)")
    w.add_argument("--recipes", required=True,
                   help="recipe names (bundled) or TOML paths, comma-separated; fp32 is always added as the baseline")
    w.add_argument("--text", action="append", metavar="FILE",
                   help="evaluate on this text file too (repeatable; CPython's pydoc_data.topics always comes first)")
    w.add_argument("-o", "--output", help="sweep directory: table, JSON, plot and the cache of finished cells "
                   "(default: out/sweep-<model>)")
    w.add_argument("--workers", type=_int_at_least(1), default=None,
                   help="cells at a time on the local Ray (default: the CPUs / --cpus-per-task)")
    w.add_argument("--address", help="join this Ray cluster instead of starting a local one ('auto' on one of its nodes)")
    w.add_argument("--cpus-per-task", type=_int_at_least(1), default=1, help="CPUs (torch threads) of each cell")
    w.add_argument("--max-tokens", type=_int_at_least(2), default=4096, help="score the first N tokens of each text")
    w.add_argument("--window", type=_int_at_least(2), default=None,
                   help="tokens per evaluation window (default: 512, or the model's context if shorter)")
    w.add_argument("--json", action="store_true", help="print only the sweep's JSON document")
    w.set_defaults(fn=_sweep)

    i = sub.add_parser("inspect", help="summarise an artifact's graph")
    i.add_argument("artifact", help="artifact directory written by `plait compile`")
    i.add_argument("--context", type=_int_at_least(1), default=512, help="context length for attention MACs")
    i.add_argument("--json", action="store_true", help="print only a JSON object")
    i.add_argument("--no-check", action="store_true", help="skip hash checks (large artifacts)")
    i.add_argument("--target", help="re-map the linear layers onto this hardware target "
                   "(plait.ir.target: u280, sim16) before summarising; nothing is recompiled")
    i.add_argument("--layers", action="store_true", help="list every mapped linear layer")
    i.set_defaults(fn=_inspect)

    hw = sub.add_parser("hw", help="hardware: resource reports and design-space sweeps")
    hw_sub = hw.add_subparsers(dest="hw_command", required=True, parser_class=_Parser)
    from plait.rtl.report import register_cli
    register_cli(hw_sub)
    from plait.rtl.sweep import register_cli as register_hw_sweep
    register_hw_sweep(hw_sub)

    bench = sub.add_parser("bench", help="speed: integer kernels and whole models against baselines")
    from plait.runtime.bench import register_cli as register_bench
    register_bench(bench.add_subparsers(dest="bench_command", required=True, parser_class=_Parser),
                   _int_at_least)

    hls = sub.add_parser("hls", help="HLS C++: C simulation of the engines against the numerics")
    from plait.hls.cli import register_cli as register_hls
    register_hls(hls.add_subparsers(dest="hls_command", required=True, parser_class=_Parser),
                 compile_model=_compile_smollm2)
    return p


def _fail(msg: str) -> int:
    print(f"plait: error: {msg}", file=sys.stderr)
    return 2


# Errors from bad input: one line, exit 2. Anything else is a bug and keeps its traceback.
# Evaluated only when an exception is raised, so the heavy layers load lazily.
def _user_errors() -> tuple:
    from plait.frontend import FrontendError
    from plait.hls.gen import HlsError
    from plait.ir import GraphError, IRTypeError, OpError, ParseError, VerifyError, WeightError
    from plait.ir.numerics import NumericsError
    from plait.ir.target import TargetError
    from plait.passes import PassError
    from plait.ir.limits import LimitError
    from plait.rtl.synth import ToolMissing
    from plait.runtime.artifact import ArtifactError
    from plait.runtime.bench import BenchError
    from plait.runtime.devices import DeviceUnavailable
    from plait.runtime.sweep import SweepError
    return (FileNotFoundError, FrontendError, GraphError, IRTypeError, OpError, ParseError, VerifyError,
            WeightError, NumericsError, TargetError, PassError, ToolMissing, ArtifactError, DeviceUnavailable,
            LimitError, UsageError, HlsError, BenchError, SweepError)


class _Terminated(BaseException):
    """SIGTERM, raised like Ctrl-C so that every ``finally`` (scratch directories) runs."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return args.fn(args)
    except _user_errors() as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        print("plait: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print("plait: terminated", file=sys.stderr)
        return 143
    except BrokenPipeError:       # `plait inspect ... | head`: the reader left; not an error
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except OSError as e:          # a full disk, a permission changed under us: the file is named
        return _fail(f"{e.filename or ''}{': ' if e.filename else ''}{e.strerror or e}")
    except Exception:
        import traceback
        traceback.print_exc()
        from plait import __version__
        print(f"plait: internal error (a bug in plait {__version__}, not in your input); please report it "
              f"with the command line and the traceback above", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
