"""The compiled artifact: a versioned directory that a Session (or `plait run`) loads.

Layout::

    OUT/
      manifest.json          schema version, model, recipe, tool versions, file hashes
      graph.plait            the IR graph (text, see plait.ir.text)
      weights.safetensors    every array the graph names (absent for shape-only plans)
      tokenizer/             the model's tokenizer (tokenizer.json, chat template ...)
      build-info.json        when it was built and how long it took (not hashed: the same
                             inputs give a byte-identical manifest)

Every file listed in the manifest carries a SHA-256; :func:`load_artifact`
refuses an artifact whose schema version is unknown, whose manifest is damaged,
whose files are missing or whose contents do not match their hashes, and whose
weight codes do not match the quantization the graph declares, and says which
file and why.

Writing is atomic (:func:`write_artifact`): the new artifact is built in a scratch
directory beside the target and renamed into place in one step, so a failure,
Ctrl-C or kill leaves the previous artifact intact; a directory holding files that
are not an artifact's is refused unless ``force`` is given, and even then those
files are kept and not listed.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from plait.ir import Graph, ParseError, WeightStore, verify
from plait.ir.serialize import GRAPH_FILE, WEIGHTS_FILE, load as load_graph, save as save_graph

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
TOKENIZER_DIR = "tokenizer"
BUILD_INFO = "build-info.json"     # run-dependent facts, outside the hashed identity
RESERVED = (MANIFEST, BUILD_INFO, GRAPH_FILE, WEIGHTS_FILE, TOKENIZER_DIR)
TMP_TAG, OLD_TAG = ".plait-tmp-", ".plait-old-"


class ArtifactError(RuntimeError):
    """A missing, corrupt or mismatched artifact; the message says which file and why."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def tool_versions() -> dict[str, str]:
    import numpy
    import plait
    out = {"plait": plait.__version__, "python": platform.python_version(), "numpy": numpy.__version__}
    for mod in ("torch", "transformers", "networkx", "safetensors"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return out


@dataclass
class Artifact:
    path: Path
    manifest: dict[str, Any]
    graph: Graph
    weights: WeightStore
    shape_only: bool = False
    _tokenizer: Any = field(default=None, repr=False)

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            tdir = self.path / TOKENIZER_DIR
            if not tdir.is_dir():
                raise ArtifactError(f"{self.path}: artifact has no tokenizer/ directory")
            from transformers import AutoTokenizer
            self._tokenizer = AutoTokenizer.from_pretrained(str(tdir), local_files_only=True)
        return self._tokenizer


# ---------------------------------------------------------------- writing

def _fsync_tree(root: Path) -> None:
    """Flush every file and directory under ``root`` to disk (then the rename is durable)."""
    for p in sorted(root.rglob("*"), reverse=True) + [root]:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _scratch_name(out: Path, tag: str) -> str:
    return f".{out.name}{tag}{os.getpid()}-"


def remove_stale_scratch(out: Path) -> list[Path]:
    """Remove the scratch directories that killed writers of ``out`` left beside it
    (``.<name>.plait-tmp-<pid>-*``, ``.<name>.plait-old-<pid>-*`` whose process is gone).
    They are never read, only removed; returns what was removed."""
    removed = []
    parent = out.parent
    if not parent.is_dir():
        return removed
    pat = re.compile(re.escape(f".{out.name}") + r"\.plait-(?:tmp|old)-(\d+)-")
    for p in parent.iterdir():
        m = pat.match(p.name)
        if m and p.is_dir() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def _entries(manifest: dict) -> set[str]:
    """Top-level names inside an artifact directory that belong to the artifact."""
    return {MANIFEST, BUILD_INFO} | {rel.split("/", 1)[0] for rel in manifest.get("files", {})}


def check_output_dir(path, what: str, *, beside: bool = False) -> Path:
    """Check, before any work, that the directory ``path`` can be written (created with
    its parents if missing); returns the directory where files will be made: the nearest
    existing ancestor, or with ``beside`` the parent of an existing ``path`` (where the
    scratch directory goes).  Writing is probed by making a directory there, because
    ``os.access`` answers yes to root everywhere.  Raises :class:`ArtifactError` naming
    ``what``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ArtifactError(f"{what} exists and is not a directory; choose a directory")
    anc = path
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise ArtifactError(f"{what}: {anc} is a file, not a directory")
    where = path.parent if (beside and anc == path) else anc
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".plait-probe-", dir=where))
    except OSError as e:
        raise ArtifactError(f"{what}: cannot write in {where} ({e.strerror})") from None
    return where


def output_state(out, *, force: bool = False) -> str:
    """What writing an artifact to ``out`` would do, checked before any work starts.

    ``"new"`` (absent or empty: created), ``"artifact"`` (a plait artifact and nothing
    else: replaced in one step), ``"beside"`` (``force``: a directory with other files;
    the artifact's own entries are written among them and the other files are kept).
    Raises :class:`ArtifactError` for a path that is a file, a directory that cannot be
    written, or a directory with other files without ``force``.
    """
    out = Path(out)
    check_output_dir(out, f"output {out}", beside=True)
    if not out.exists():
        return "new"
    present = sorted(p.name for p in out.iterdir())
    if not present:
        return "new"
    try:
        foreign = [n for n in present if n not in _entries(read_manifest(out))]
        damaged = ""
    except ArtifactError as e:
        foreign, damaged = [n for n in present if n not in RESERVED], f" ({e})"
    if not foreign and not damaged:
        return "artifact"
    if force:
        return "beside"
    what = (f"holds files that are not part of a plait artifact: {', '.join(foreign[:5])}"
            f"{' ...' if len(foreign) > 5 else ''}") if foreign else f"is a damaged plait artifact{damaged}"
    raise ArtifactError(f"output {out} {what}; write to a new or empty directory, or pass --force "
                        f"to write the artifact's own files there (other files are kept)")


def _rename_exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _install(tmp: Path, out: Path, state: str) -> None:
    """Put the finished directory ``tmp`` at ``out`` (see :func:`output_state`)."""
    if state == "new":
        if out.is_dir():
            out.rmdir()                         # empty (checked): nothing to lose
        os.rename(tmp, out)
    elif state == "artifact":
        if _rename_exchange(tmp, out):          # one step: out is the new artifact, tmp the old
            shutil.rmtree(tmp)
        else:                                   # two renames: the old one is restored on failure
            old = Path(tempfile.mkdtemp(prefix=_scratch_name(out, OLD_TAG), dir=out.parent))
            os.rename(out, old / "a")
            try:
                os.rename(tmp, out)
            except BaseException:
                os.rename(old / "a", out)
                raise
            shutil.rmtree(old)
    else:                                       # beside other files: never an artifact half-written
        (out / MANIFEST).unlink(missing_ok=True)
        for p in sorted(tmp.iterdir(), key=lambda p: p.name == MANIFEST):
            dest = out / p.name
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            elif dest.exists() or dest.is_symlink():
                dest.unlink()
            os.rename(p, dest)
        tmp.rmdir()
    fd = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_artifact(out: Path, graph: Graph, weights: WeightStore, *, model: str, recipe: dict,
                   recipe_text: str = "", tokenizer=None, build_info: Optional[dict] = None,
                   force: bool = False) -> Path:
    """Write an artifact to ``out`` atomically.

    Everything is written into a scratch directory beside ``out`` and flushed, then
    moved into place in one step: a failure, Ctrl-C or a kill at any point leaves the
    previous artifact as it was.  The manifest lists exactly the files written here.
    Run-dependent facts (time of the build, timings) go to ``build-info.json``, which is
    not part of the hashed identity: the same inputs give byte-identical manifests.
    """
    out = Path(out)
    state = output_state(out, force=force)
    remove_stale_scratch(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _sigterm_raises():
        _write(out, state, graph, weights, model=model, recipe=recipe, recipe_text=recipe_text,
               tokenizer=tokenizer, build_info=build_info)
    return out


@contextlib.contextmanager
def _sigterm_raises():
    """While writing, SIGTERM exits through Python (``SystemExit(143)``) so the scratch
    directory is removed; a handler installed by the caller (the CLI's) is left alone."""
    mine = (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
    if mine:
        def handler(signum, frame):
            raise SystemExit(128 + signum)
        signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        if mine:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _write(out: Path, state: str, graph: Graph, weights: WeightStore, *, model, recipe, recipe_text,
           tokenizer, build_info) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=_scratch_name(out, TMP_TAG), dir=out.parent))
    try:
        save_graph(graph, weights, tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp / TOKENIZER_DIR))
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "model": model,
            "recipe": recipe,
            "recipe_text": recipe_text,
            "shape_only": weights.shape_only or len(weights) == 0,
            "tools": tool_versions(),
            "graph": {"name": graph.name, "nodes": len(graph), "meta": graph.meta},
            "files": {p.relative_to(tmp).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
                      for p in files},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        info = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(build_info or {})}
        (tmp / BUILD_INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        _fsync_tree(tmp)
        _install(tmp, out, state)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------- reading

# the manifest's required fields and their JSON types
_MANIFEST_FIELDS = {"schema_version": int, "model": str, "recipe": dict, "shape_only": bool,
                    "graph": dict, "files": dict}


def read_manifest(path: Path) -> dict:
    """The manifest of the artifact at ``path``, checked for shape (not yet for hashes)."""
    path = Path(path)
    mf = path / MANIFEST
    if not path.is_dir():
        raise ArtifactError(f"{path}: not an artifact directory (run `plait compile` first)")
    if not mf.is_file():
        raise ArtifactError(f"{path}: no {MANIFEST}; not a plait artifact or an interrupted compile")
    try:
        manifest = json.loads(mf.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{mf}: corrupt manifest ({e})") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{mf}: corrupt manifest (a JSON {type(manifest).__name__}, not an object)")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ArtifactError(f"{mf}: schema version {version!r} is not supported "
                            f"(this plait reads version {SCHEMA_VERSION}); recompile the model")
    for key, typ in _MANIFEST_FIELDS.items():
        if not isinstance(manifest.get(key), typ):
            raise ArtifactError(f"{mf}: corrupt manifest: field {key!r} is "
                                f"{'missing' if key not in manifest else type(manifest[key]).__name__}, "
                                f"expected a JSON {typ.__name__}")
    for rel, info in manifest["files"].items():
        parts = rel.split("/")
        if rel.startswith("/") or ".." in parts or not rel or not (
                isinstance(info, dict) and isinstance(info.get("sha256"), str) and isinstance(info.get("bytes"), int)):
            raise ArtifactError(f"{mf}: corrupt manifest: bad entry for file {rel!r}")
    if GRAPH_FILE not in manifest["files"]:
        raise ArtifactError(f"{mf}: manifest lists no {GRAPH_FILE}")
    return manifest


def check_files(path: Path, manifest: dict) -> None:
    """Every listed file exists with its size and SHA-256."""
    for rel, info in manifest["files"].items():
        p = Path(path) / rel
        if not p.is_file():
            raise ArtifactError(f"{path}: file {rel} listed in the manifest is missing")
        if p.stat().st_size != info["bytes"] or sha256_file(p) != info["sha256"]:
            raise ArtifactError(f"{path}: file {rel} does not match its hash in the manifest "
                                f"(corrupt or modified after compile)")


def check_quantization(graph: Graph, weights: WeightStore) -> None:
    """The codes of every quantized weight are what its type declares: unsigned integer
    codes below ``2**bits`` (ternary: 0, 1, 2), one scale per group (``verify``)."""
    for node in graph.params():
        q = node.type.quant
        name = node.attrs["weight"]
        if q is None or name not in weights:
            continue
        codes = weights[name]
        top = 2 if q.scheme == "ternary" else (1 << q.bits) - 1
        if codes.dtype.kind != "u":
            raise ArtifactError(f"weight {name!r} is declared {q.bits}-bit {q.scheme} but is stored as "
                                f"{codes.dtype} values, not unsigned codes")
        if codes.size and int(codes.max()) > top:
            raise ArtifactError(f"weight {name!r} is declared {q.bits}-bit {q.scheme} (codes 0..{top}) "
                                f"but holds the code {int(codes.max())}")


def load_artifact(path, *, check: bool = True) -> Artifact:
    """Load an artifact; with ``check`` (the default) every file's hash, the graph against
    its weights, and the declared quantization against the weight codes are checked."""
    path = Path(path)
    manifest = read_manifest(path)
    if check:
        check_files(path, manifest)
    try:
        graph, weights = load_graph(path)
    except ParseError as e:
        raise ArtifactError(f"{path}: {GRAPH_FILE} cannot be parsed: {e}") from None
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types on a damaged file
        if type(e).__name__ not in ("SafetensorError", "OSError", "FileNotFoundError"):
            raise
        raise ArtifactError(f"{path}: {WEIGHTS_FILE} cannot be read: {e}") from None
    shape_only = bool(manifest["shape_only"])
    if not shape_only:
        try:
            verify(graph, weights)
            if check:
                check_quantization(graph, weights)
        except (ValueError, ArtifactError) as e:
            raise ArtifactError(f"{path}: graph and weights do not match: {e}") from None
    return Artifact(path, manifest, graph, weights, shape_only)
