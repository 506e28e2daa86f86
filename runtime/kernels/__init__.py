"""Integer kernels described once in TVM (TE / TIR), built for ``llvm`` and ``cuda``.

Every kernel's result equals the integers of :mod:`plait.ir.numerics` exactly:

* :func:`lut_gemm` / :func:`lut_gemv` -- the LUT core's mpGEMV/GEMM (T-MAC-style
  activation tables, table symmetrization, bit-serial planes, per-group integer
  accumulation and MixPE dequantization): ``P`` of
  :func:`plait.ir.numerics.lut.lut_linear` (:mod:`.lut`).
* :func:`sparse_gemm` / :func:`sparse_gemv` -- the DSP chain's N:M sparse (and dense)
  GEMV/GEMM on int8 weight codes with per-group accumulation: ``P`` of
  :func:`plait.ir.numerics.common.linear_int` (:mod:`.sparse`).
* :func:`int8_gemm` -- int8 x int8 -> int32 (batched), the attention products
  ``Q K^T`` and ``P V`` of :mod:`plait.ir.numerics.sfu` (:mod:`.gemm`).

and one float kernel, float mode's linears on a device (the cuda float path):
:func:`f32_gemm` / :class:`FloatKernelLinears` (:mod:`.fgemm`; compared with a
tolerance, never used in exact mode).

They take the artifact's packed formats (:mod:`plait.ir.numerics.pack`); each kernel is
built once per (kernel, shape, bits, target) and cached in memory and on disk
(:mod:`.build`).  TVM is an optional dependency (``pip install 'plait[kernels]'``).
"""
from .build import (KernelCacheWarning, KernelError, Target, cache_path, clear_memory_cache,
                    compile_cuda, cuda_enabled, cuda_source, gpu_present, kernel_cache_dir,
                    resolve_target)
from .fgemm import FloatKernelLinears, build_f32_gemm, f32_gemm
from .gemm import build_int8_gemm, int8_gemm
from .lut import LutKernelWeight, build_lut, lut_gemm, lut_gemv, prepare_lut
from .sparse import SparseKernelWeight, build_sparse, prepare_sparse, sparse_gemm, sparse_gemv

__all__ = ["KernelError", "KernelCacheWarning", "Target", "resolve_target", "cache_path",
           "clear_memory_cache", "compile_cuda", "cuda_enabled", "cuda_source", "gpu_present",
           "kernel_cache_dir", "LutKernelWeight", "prepare_lut", "build_lut", "lut_gemm",
           "lut_gemv", "SparseKernelWeight", "prepare_sparse", "build_sparse", "sparse_gemm",
           "sparse_gemv", "int8_gemm", "build_int8_gemm", "f32_gemm", "build_f32_gemm",
           "FloatKernelLinears"]
