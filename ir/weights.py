"""The weight store: named arrays kept outside the graph.

Passes replace entries (``store[name] = new_array``) and never copy the rest;
copying a store copies the name->array mapping only.  A store may be
*shape-only* (arrays unknown, only their :class:`WeightInfo`) for planning large
models without their weights, and a store loaded from a safetensors file reads
each array lazily (memory-mapped) on first use.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np


class WeightError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0])


@dataclass(frozen=True)
class WeightInfo:
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


class WeightStore:
    def __init__(self):
        self._arrays: dict[str, np.ndarray] = {}
        self._info: dict[str, WeightInfo] = {}
        self._lazy: dict[str, str] = {}  # name -> safetensors file it can be read from
        self._handles: dict[str, object] = {}   # file -> its open safetensors handle

    def _handle(self, path: str):
        """One open handle per file (opening one per tensor cost ~3 ms each: seconds for
        an artifact's thousand arrays)."""
        h = self._handles.get(path)
        if h is None:
            from safetensors import safe_open
            h = self._handles[path] = safe_open(path, framework="numpy")
        return h

    # ------------------------------------------------------------ access
    def __contains__(self, name: str) -> bool:
        return name in self._info

    def __len__(self) -> int:
        return len(self._info)

    def names(self) -> Iterator[str]:
        return iter(self._info)

    def info(self, name: str) -> WeightInfo:
        try:
            return self._info[name]
        except KeyError:
            raise WeightError(f"weight {name!r} is not in the weight store") from None

    def has_data(self, name: str) -> bool:
        return name in self._arrays or name in self._lazy

    @property
    def shape_only(self) -> bool:
        return bool(self._info) and not any(self.has_data(n) for n in self._info)

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self._arrays:
            return self._arrays[name]
        if name in self._lazy:
            arr = self._handle(self._lazy[name]).get_tensor(name)
            self._arrays[name] = arr
            return arr
        if name in self._info:
            raise WeightError(f"weight {name!r} has no data (shape-only store)")
        raise WeightError(f"weight {name!r} is not in the weight store")

    def __setitem__(self, name: str, arr: np.ndarray) -> None:
        arr = np.asarray(arr)
        self._arrays[name] = arr
        self._lazy.pop(name, None)
        self._info[name] = WeightInfo(tuple(int(d) for d in arr.shape), str(arr.dtype))

    def declare(self, name: str, shape, dtype: str = "float32") -> None:
        """Record a weight's shape and dtype without data (shape-only planning)."""
        self._info[name] = WeightInfo(tuple(int(d) for d in shape), str(np.dtype(dtype)))

    def pop(self, name: str) -> None:
        self._arrays.pop(name, None)
        self._lazy.pop(name, None)
        self._info.pop(name, None)

    def copy(self) -> "WeightStore":
        """A new mapping sharing the same arrays (no array is copied)."""
        s = WeightStore()
        s._arrays = dict(self._arrays)
        s._info = dict(self._info)
        s._lazy = dict(self._lazy)
        return s

    def nbytes(self) -> int:
        return sum(i.nbytes for i in self._info.values())

    # ------------------------------------------------------------ files
    def save(self, path: os.PathLike, names: Optional[Iterator[str]] = None) -> None:
        from safetensors.numpy import save_file
        names = list(self._info) if names is None else list(names)
        missing = [n for n in names if not self.has_data(n)]
        if missing:
            raise WeightError(f"cannot save a shape-only store: {len(missing)} weights have no data "
                              f"(first: {missing[0]!r})")
        arrays = {n: np.ascontiguousarray(self[n]) for n in names}
        self._handles.pop(str(Path(path)), None)        # the file is about to be rewritten
        save_file(arrays, str(path))

    @classmethod
    def load(cls, path: os.PathLike, lazy: bool = True) -> "WeightStore":
        from safetensors import safe_open
        s = cls()
        path = str(Path(path))
        with safe_open(path, framework="numpy") as f:
            for name in f.keys():
                if lazy:
                    sl = f.get_slice(name)
                    dtype = {"F32": "float32", "F16": "float16", "F64": "float64", "I64": "int64",
                             "I32": "int32", "I16": "int16", "I8": "int8", "U64": "uint64",
                             "U32": "uint32", "U16": "uint16", "U8": "uint8",
                             "BOOL": "bool"}[sl.get_dtype()]
                    s._info[name] = WeightInfo(tuple(sl.get_shape()), dtype)
                    s._lazy[name] = path
                else:
                    s[name] = f.get_tensor(name)
        return s
