"""Targets, building and the kernel cache of :mod:`plait.runtime.kernels`.

A kernel is a TVM ``IRModule`` (built from a TE description, optionally scheduled or
replaced by a hand-written TIR micro-kernel for the target) compiled with
``tvm.compile``.  Built kernels are cached by ``(kernel, shape, bits/mode, target)``:

* in memory (a dict in this process), and
* on disk under ``plait.ir.cache.cache_dir() / "kernels"``: ``<key>.so`` (TVM
  ``export_library``) with a sidecar ``<key>.json`` holding the key's fields, the
  library's size and SHA-256.  A cache entry whose sidecar is missing or unreadable,
  whose size or hash does not match, or whose library fails to load is *corrupt*: it
  is removed, rebuilt and a :class:`KernelCacheWarning` names the reason.

Targets: ``"llvm"`` (this host: ``mcpu`` = LLVM's idea of the host CPU) and ``"cuda"``
(``arch`` from ``$PLAIT_CUDA_ARCH`` or ``sm_80``).  TVM 0.27 keeps the CUDA kernels of
a built module as CUDA C source and compiles them when the module is loaded on a GPU;
:func:`compile_cuda` compiles that source with ``nvcc`` (fatbin for the target arch), so
a CUDA build is checked here, without a GPU, and the fatbin is cached beside the key.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..artifact import sha256_file

#: bump when a kernel's generated code changes meaning (part of every cache key)
KERNEL_VERSION = 1


class KernelError(RuntimeError):
    """A kernel cannot be built or run (bad shape, unsupported target, missing TVM)."""


def int8_rows(x, k: int):
    """``(x as int8 [M, k], was it one row)``: the activations every GEMV/GEMM kernel takes."""
    import numpy as np
    x = np.asarray(x)
    one = x.ndim == 1
    x2 = x.reshape(1, -1) if one else x
    if x2.ndim != 2 or x2.shape[1] != k:
        raise KernelError(f"activations must be [M, {k}] (or [{k}]), got shape {x.shape}")
    if x2.dtype != np.int8:
        raise KernelError(f"activations must be int8, got {x2.dtype}")
    return x2, one


class KernelCacheWarning(UserWarning):
    """A corrupt kernel-cache entry was found and rebuilt."""


def tvm():
    """The ``tvm`` module, or :class:`KernelError` naming the missing extra."""
    try:
        import tvm as _tvm  # noqa: PLC0415
    except ImportError as e:        # pragma: no cover - exercised where TVM is absent
        raise KernelError("plait.runtime.kernels needs Apache TVM: pip install 'plait[kernels]' "
                          f"(apache-tvm); import failed: {e}") from e
    return _tvm


# --------------------------------------------------------------------------- targets

@dataclass(frozen=True)
class Target:
    """A resolved build target: ``kind`` ``"llvm"`` or ``"cuda"`` and its one attribute."""

    kind: str
    attr: str          # llvm: mcpu; cuda: arch (sm_XX)

    @property
    def key(self) -> str:
        return f"{self.kind}-{self.attr}"

    def tvm_target(self):
        t = tvm()
        if self.kind == "llvm":
            return t.target.Target({"kind": "llvm", "mcpu": self.attr})
        return t.target.Target({"kind": "cuda", "arch": self.attr},
                               host={"kind": "llvm", "mcpu": host_cpu()})

    def has_avx2(self) -> bool:
        return self.kind == "llvm" and _has_avx2(self.attr)


@functools.lru_cache(maxsize=None)
def host_cpu() -> str:
    tvm()
    from tvm.target import codegen  # noqa: PLC0415
    return str(codegen.llvm_get_system_cpu())


@functools.lru_cache(maxsize=None)
def _has_avx2(mcpu: str) -> bool:
    from tvm.target import codegen  # noqa: PLC0415
    tgt = Target("llvm", mcpu).tvm_target()
    try:
        return bool(codegen.llvm_cpu_has_features(["avx2"], tgt))
    except Exception:               # noqa: BLE001 - older spellings of the query
        return "avx2" in str(codegen.llvm_get_cpu_features(tgt))


def resolve_target(target) -> Target:
    """``"llvm"`` / ``"cpu"`` (host ``mcpu``), ``"llvm:<mcpu>"``, ``"cuda"``,
    ``"cuda:sm_XX"`` or a :class:`Target`."""
    if isinstance(target, Target):
        return target
    return _resolve(target)


@functools.lru_cache(maxsize=64)
def _resolve(target) -> Target:
    if not isinstance(target, str):
        raise KernelError(f"target must be 'llvm' or 'cuda' (optionally ':<cpu>' / ':sm_XX'), "
                          f"got {target!r}")
    kind, _, attr = target.partition(":")
    if kind in ("llvm", "cpu"):
        return Target("llvm", attr or host_cpu())
    if kind == "cuda":
        arch = attr or os.environ.get("PLAIT_CUDA_ARCH") or "sm_80"
        if not arch.startswith("sm_"):
            raise KernelError(f"CUDA arch must look like sm_80, got {arch!r}")
        tvm()
        return Target("cuda", arch)
    raise KernelError(f"unknown kernel target {target!r}; known: llvm, cuda")


def cuda_enabled() -> bool:
    """Whether this TVM was built with the CUDA code generator."""
    t = tvm()
    return str(t.support.libinfo().get("USE_CUDA", "OFF")).upper() not in ("OFF", "", "NONE")


def gpu_present() -> bool:
    try:
        return bool(tvm().cuda(0).exist)
    except Exception:               # noqa: BLE001 - no driver at all
        return False


def nvcc_path() -> str | None:
    return shutil.which("nvcc") or (
        "/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)


def cuda_source(built) -> str:
    """The CUDA C source of the kernels of a module built for ``cuda``."""
    mod = getattr(built, "mod", built)
    for im in mod.imports:
        if im.kind == "cuda":
            return im.inspect_source()
    raise KernelError("the built module holds no CUDA kernels")


def compile_cuda(source: str, arch: str) -> bytes:
    """Compile CUDA C ``source`` for ``arch`` with ``nvcc`` to a fatbin (raises
    :class:`KernelError` with nvcc's message)."""
    nvcc = nvcc_path()
    if nvcc is None:
        raise KernelError("nvcc not found (install the CUDA toolkit or put nvcc on PATH)")
    sm = arch.split("_", 1)[1]
    with tempfile.TemporaryDirectory() as d:
        src, out = Path(d) / "k.cu", Path(d) / "k.fatbin"
        src.write_text(source)
        import subprocess  # noqa: PLC0415
        r = subprocess.run([nvcc, "--fatbin", "-O3", "-gencode", f"arch=compute_{sm},code=sm_{sm}",
                            "-o", str(out), str(src)], capture_output=True, text=True)
        if r.returncode != 0:
            raise KernelError(f"nvcc failed for {arch}:\n{r.stderr[-4000:]}")
        return out.read_bytes()


# --------------------------------------------------------------------------- cache

def kernel_cache_dir() -> Path:
    from plait.ir.cache import cache_dir  # noqa: PLC0415
    return cache_dir() / "kernels"


_MEM: dict[str, object] = {}
_LOCK = threading.Lock()


_SOURCE_HASH: list[str] = []


def source_hash() -> str:
    """SHA-256 (prefix) of this package's kernel sources: part of every cache key, so an
    edited kernel never loads a library built from its old text."""
    if not _SOURCE_HASH:
        h = hashlib.sha256()
        for p in sorted(Path(__file__).parent.glob("*.py")):
            h.update(p.name.encode() + b"\0" + p.read_bytes())
        _SOURCE_HASH.append(h.hexdigest()[:16])
    return _SOURCE_HASH[0]


def _key(name: str, target: Target, params: dict) -> tuple[str, dict]:
    fields = {"kernel": name, "target": target.key, "version": KERNEL_VERSION,
              "source": source_hash(), "tvm": str(tvm().__version__),
              **{k: params[k] for k in sorted(params)}}
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]
    return f"{name}-{target.kind}-{digest}", fields




def _load_entry(so: Path, meta: Path, fields: dict):
    """The cached module, or ``(None, reason)`` when the entry is corrupt."""
    try:
        info = json.loads(meta.read_text())
    except (OSError, ValueError) as e:
        return None, f"sidecar {meta.name} unreadable ({e})"
    if info.get("fields") != fields:
        return None, f"sidecar {meta.name} describes another kernel"
    size = so.stat().st_size
    if size != info.get("size"):
        return None, f"{so.name} is {size} bytes, sidecar says {info.get('size')}"
    if sha256_file(so) != info.get("sha256"):
        return None, f"{so.name} SHA-256 does not match its sidecar"
    try:
        return tvm().runtime.load_module(str(so)), None
    except Exception as e:          # noqa: BLE001 - any loader failure means corrupt
        return None, f"{so.name} failed to load ({str(e).splitlines()[-1] if str(e) else e})"


def _store_entry(lib, so: Path, meta: Path, fields: dict) -> None:
    so.parent.mkdir(parents=True, exist_ok=True)
    tmp = so.with_name(f".{so.name}.{os.getpid()}.tmp.so")
    lib.export_library(str(tmp))
    info = {"fields": fields, "size": tmp.stat().st_size, "sha256": sha256_file(tmp)}
    os.replace(tmp, so)
    tmp_meta = meta.with_name(f".{meta.name}.{os.getpid()}.tmp")
    tmp_meta.write_text(json.dumps(info, indent=1, sort_keys=True))
    os.replace(tmp_meta, meta)


def build_cached(name: str, target: Target, params: dict, make: Callable[[], object],
                 *, disk: bool = True):
    """The built kernel for ``(name, target, params)``: from memory, else from the disk
    cache (verified), else ``tvm.compile(make(), target)`` (stored on disk).

    For ``cuda`` the returned object is the in-memory ``tvm.compile`` result (its CUDA
    source is compiled on load where a GPU is present); the disk cache then holds the
    nvcc fatbin (``<key>.fatbin``, verified the same way) as proof of a clean compile.
    """
    t = tvm()
    key, fields = _key(name, target, params)
    with _LOCK:
        hit = _MEM.get(key)
    if hit is not None:
        return hit
    root = kernel_cache_dir()
    if target.kind == "llvm":
        so, meta = root / f"{key}.so", root / f"{key}.json"
        if disk and so.exists():
            mod, why = _load_entry(so, meta, fields)
            if mod is not None:
                with _LOCK:
                    _MEM[key] = mod
                return mod
            warnings.warn(f"kernel cache entry {so} is corrupt: {why}; rebuilding",
                          KernelCacheWarning, stacklevel=3)
            for p in (so, meta):
                p.unlink(missing_ok=True)
        lib = t.compile(make(), target=target.tvm_target())
        mod = lib
        if disk:
            _store_entry(lib, so, meta, fields)
            mod, why = _load_entry(so, meta, fields)
            if mod is None:
                raise KernelError(f"kernel {key} was built but its library does not load: {why}")
        with _LOCK:
            _MEM[key] = mod
        return mod
    # cuda
    if not cuda_enabled():
        raise KernelError("this TVM build has no CUDA code generator (USE_CUDA=OFF)")
    try:                    # TVM compiles the kernels' source when loading on a GPU:
        import cuda.bindings.nvrtc  # noqa: F401,PLC0415  (NVRTC where cuda-bindings is installed,
    except ImportError:                                # nvcc otherwise)
        os.environ.setdefault("TVM_CUDA_COMPILE_MODE", "nvcc")
    lib = t.compile(make(), target=target.tvm_target())
    fat, meta = root / f"{key}.fatbin", root / f"{key}.json"
    ok = False
    if disk and fat.exists():
        try:
            info = json.loads(meta.read_text())
            ok = (info.get("fields") == fields and info.get("size") == fat.stat().st_size
                  and info.get("sha256") == sha256_file(fat))
            why = "size / SHA-256 / fields do not match the sidecar"
        except (OSError, ValueError) as e:
            why = f"sidecar unreadable ({e})"
        if not ok:
            warnings.warn(f"kernel cache entry {fat} is corrupt: {why}; rebuilding",
                          KernelCacheWarning, stacklevel=3)
    if not ok:
        binary = compile_cuda(cuda_source(lib), target.attr)
        if disk:
            root.mkdir(parents=True, exist_ok=True)
            fat.write_bytes(binary)
            meta.write_text(json.dumps({"fields": fields, "size": len(binary),
                                        "sha256": hashlib.sha256(binary).hexdigest()}))
    with _LOCK:
        _MEM[key] = lib
    return lib


def clear_memory_cache() -> None:
    """Forget the in-memory kernels (the disk cache stays)."""
    with _LOCK:
        _MEM.clear()
    for mod in ("lut", "sparse", "gemm"):
        import importlib  # noqa: PLC0415
        built = getattr(importlib.import_module(f"{__package__}.{mod}"), "_BUILT", None)
        if built is not None:
            built.clear()


def cache_path(name: str, target, params: dict) -> Path:
    """The disk path of a kernel's library (``.so``; ``.fatbin`` for cuda)."""
    tg = resolve_target(target)
    key, _ = _key(name, tg, params)
    return kernel_cache_dir() / (f"{key}.so" if tg.kind == "llvm" else f"{key}.fatbin")


__all__ = ["KERNEL_VERSION", "KernelError", "KernelCacheWarning", "Target", "resolve_target",
           "host_cpu", "cuda_enabled", "gpu_present", "nvcc_path", "cuda_source", "compile_cuda",
           "kernel_cache_dir", "build_cached", "clear_memory_cache", "cache_path"]
