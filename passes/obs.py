"""Optimal Brain Surgeon updates: GPTQ quantization and SparseGPT pruning of one weight.

Both minimise the layer's output error ``||(W - W') X^T||^2`` on the calibration
inputs ``X``, whose Hessian is ``H = 2 X^T X / T``: they fix the columns of ``W``
one at a time (quantize it, or zero the pruned entries) and move the error of
that column onto the columns not yet fixed, weighted by the inverse Hessian.
With ``U`` the upper Cholesky factor of ``H^-1``, the error of column ``i`` is
``e = (w_i - w'_i) / U[i, i]`` and the update is ``W[:, j] -= e U[i, j]`` for
``j > i``.  Updates are applied lazily per block of columns (the rest of the
matrix is updated once per block with one matmul).

* GPTQ (Frantar et al., 2023, "GPTQ: Accurate Post-Training Quantization for
  Generative Pre-trained Transformers"): ``w'_i`` is ``w_i`` rounded on its
  group's grid (:func:`plait.ir.numerics.group_grid` / ``round_to_grid``: the
  same grid and rounding as RTN).  The grid of a group is computed when its
  first column is reached, from the already-updated weights.  ``act_order``
  visits columns by decreasing ``H[i, i]``; the grids are then computed up front
  from the original weights ("static groups"), so groups stay contiguous runs of
  K as the engines store them.  ``mask`` (N:M-pruned entries) keeps those entries
  at exactly 0, which with a SparseGPT-pruned input is joint SparseGPT + GPTQ.
* SparseGPT (Frantar & Alistarh, 2023): in every block of M columns the N
  entries of each row with the largest ``w^2 / U[i, i]^2`` are kept (N:M), or,
  unstructured, the smallest ``sparsity`` fraction of that score within each
  block of 128 columns is pruned; then the same column-by-column update.

Dead inputs (``H[i, i] == 0``: never active on the calibration tokens) get
``H[i, i] = 1`` and their weights are left to the rounding.  ``damp`` adds
``damp * mean(diag H)`` to the diagonal (GPTQ's percdamp).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from plait.ir.numerics import QuantizedWeight, grid_value, group_grid, prune_nm, round_to_grid

from .framework import PassError

BLOCK = 128
# range factors tried by clip_search (1.0: RTN's grid); down to 0.5 for the 2-bit sym grid,
# whose RTN scale (max / 1) rounds most weights to 0
SHRINK = tuple(round(1.0 - 0.05 * i, 2) for i in range(11))


class _one_thread:
    """torch on one thread while the column loops run: thousands of tiny ops, for which
    a thread pool only adds wake-ups (5x slower on a loaded 2-core machine)."""

    def __enter__(self):
        self.n = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.n)


def inverse_hessian_factor(h: torch.Tensor, damp: float, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(U, dead)``: the upper Cholesky factor of ``(H + damp*mean(diag H) I)^-1``
    (float32) and the mask of dead inputs."""
    h = h.clone().double()
    diag = torch.diagonal(h)
    dead = diag == 0
    h[dead, dead] = 1.0
    mean = torch.mean(torch.diagonal(h))
    for attempt in range(4):
        hd = h.clone()
        hd.diagonal().add_(damp * (10 ** attempt) * mean)
        try:
            lower = torch.linalg.cholesky(hd)
            inv = torch.cholesky_inverse(lower)
            u = torch.linalg.cholesky(inv, upper=True)
            return u.float(), dead
        except torch.linalg.LinAlgError:
            continue
    raise PassError(f"{what}: the calibration Hessian is not positive definite even with "
                    f"{damp * 1000:g} x mean(diag) damping (too few calibration tokens?)")


def gptq(*args, **kw) -> tuple[QuantizedWeight, float]:
    """GPTQ of ``w [N, K]`` (float) with Hessian ``h [K, K]``: :func:`_gptq`."""
    with _one_thread():
        return _gptq(*args, **kw)


def sparsegpt(*args, **kw) -> tuple[np.ndarray, float]:
    """SparseGPT pruning: :func:`_sparsegpt`."""
    with _one_thread():
        return _sparsegpt(*args, **kw)


def _gptq(w: np.ndarray, h: torch.Tensor, bits: int, group_size: int, scheme: str, *,
         damp: float = 0.01, act_order: bool = False, mask: Optional[np.ndarray] = None,
         clip_search: bool = False, what: str = "gptq") -> tuple[QuantizedWeight, float]:
    """GPTQ of ``w [N, K]`` (float) with Hessian ``h [K, K]``.

    Returns the quantized weight (codes on the RTN grid format of
    :class:`~plait.ir.numerics.QuantizedWeight`) and the proxy loss
    ``sum_i e_i^2`` (the output error GPTQ estimates it left).  ``mask``: bool
    ``[N, K]``, True where a weight is kept; others quantize to exactly 0.
    ``clip_search``: each row of each group takes the grid of its range shrunk by
    the factor in :data:`SHRINK` with the least ``sum_j H_jj (w_j - q_j)^2``.
    """
    n, k = w.shape
    if k % group_size:
        raise PassError(f"{what}: K={k} is not a multiple of group size {group_size}")
    if scheme == "ternary":
        bits = 2
    W = torch.from_numpy(np.array(w, np.float32, copy=True))
    W[:, torch.diagonal(h) == 0] = 0
    keep = None if mask is None else torch.from_numpy(np.asarray(mask, bool))
    n_groups = k // group_size
    scales = np.ones((n, n_groups), np.float32)
    zeros = np.zeros((n, n_groups), np.int32) if scheme == "asym" else None

    hdiag = torch.diagonal(h).float().numpy()

    def set_grid(gi: int, cols: torch.Tensor) -> None:
        c = cols.numpy()
        s, z = group_grid(c, bits, scheme)
        if clip_search:
            hd = hdiag[gi * group_size:(gi + 1) * group_size]
            best = None
            for p in SHRINK:
                sp, zp = group_grid(c * p, bits, scheme)
                zc = None if zp is None else zp[:, None]
                q = grid_value(round_to_grid(c, sp[:, None], zc, bits, scheme), sp[:, None], zc, bits, scheme)
                err = ((c - q) ** 2 * hd[None, :]).sum(axis=1)
                if best is None:
                    best = err
                    continue
                better = err < best
                best = np.where(better, err, best)
                s = np.where(better, sp, s)
                if z is not None:
                    z = np.where(better, zp, z)
        scales[:, gi] = s
        if zeros is not None:
            zeros[:, gi] = z

    if act_order:
        perm = torch.argsort(torch.diagonal(h).float(), descending=True, stable=True)
        for gi in range(n_groups):   # static groups: grids from the original weights
            set_grid(gi, W[:, gi * group_size:(gi + 1) * group_size])
        h = h[perm][:, perm]
        W = W[:, perm]
        keep = None if keep is None else keep[:, perm]
    else:
        perm = torch.arange(k)
    u_fac, _ = inverse_hessian_factor(h, damp, what)
    block = group_size * max(1, -(-BLOCK // group_size))   # a group never straddles blocks
    codes = torch.zeros((n, k), dtype=torch.float32)

    def fix(j: int, i: int, W1: torch.Tensor, U1: torch.Tensor) -> torch.Tensor:
        col = int(perm[j])
        gi = col // group_size
        if not act_order and col % group_size == 0:
            set_grid(gi, W1[:, i:i + group_size])
        s = scales[:, gi]
        z = None if zeros is None else zeros[:, gi].astype(np.float32)
        u = np.asarray(round_to_grid(W1[:, i].numpy(), s, z, bits, scheme), np.float32)
        if keep is not None:
            u = np.where(keep[:, j].numpy(), u, _zero_code(bits, scheme, z))
        codes[:, col] = torch.from_numpy(u)
        return torch.from_numpy(grid_value(u, s, z, bits, scheme))

    loss = _sweep_columns(W, u_fac, block, fix)
    qw = QuantizedWeight(codes.numpy().astype(np.uint8), scales, zeros, bits, group_size, scheme)
    return qw, loss


def _sweep_columns(W: torch.Tensor, u_fac: torch.Tensor, block: int, fix) -> float:
    """The OBS column sweep shared by GPTQ and SparseGPT, in place on ``W [N, K]``.

    For every column ``j`` (block by block) ``fix(j, i, W1, U1)`` returns its fixed
    values ``q`` (``i``: the column within the block, ``W1``: the block's columns as
    updated so far, ``U1``: the block of ``u_fac``); the error ``(w - q) / U[j, j]`` is
    moved onto the block's later columns at once and onto the rest of the matrix once
    per block.  Returns the summed squared error terms (GPTQ's loss estimate)."""
    k = W.shape[1]
    loss = 0.0
    for i1 in range(0, k, block):
        i2 = min(i1 + block, k)
        W1 = W[:, i1:i2].clone()
        E1 = torch.zeros_like(W1)
        U1 = u_fac[i1:i2, i1:i2]
        for i in range(i2 - i1):
            q = fix(i1 + i, i, W1, U1)
            err = (W1[:, i] - q) / U1[i, i]
            loss += float(torch.sum(err * err))
            W1[:, i:] -= err[:, None] * U1[i, i:][None, :]
            W1[:, i] = q
            E1[:, i] = err
        W[:, i1:i2] = W1
        W[:, i2:] -= E1 @ u_fac[i1:i2, i2:]
    return loss


def hessian_error(w: np.ndarray, w_hat: np.ndarray, h: torch.Tensor) -> float:
    """``tr((W - W') H (W - W')^T)``: the output error ``||(W - W') X^T||^2`` (times
    ``2 / T``) on the calibration inputs whose Hessian is ``h``."""
    d = torch.from_numpy(np.asarray(w, np.float32) - np.asarray(w_hat, np.float32)).double()
    return float(torch.sum((d @ h) * d))


def _zero_code(bits: int, scheme: str, z: Optional[np.ndarray]):
    """The code whose value is exactly 0 (per row for asym)."""
    if scheme == "sym":
        return np.float32(1 << (bits - 1))
    if scheme == "asym":
        return z
    if scheme == "ternary":
        return np.float32(1.0)
    raise PassError(f"scheme {scheme!r} has no zero level; sparse weights cannot keep their zeros")


def _sparsegpt(w: np.ndarray, h: torch.Tensor, *, n: int = 0, m: int = 0, sparsity: float = 0.0,
              damp: float = 0.01, what: str = "sparsegpt") -> tuple[np.ndarray, float]:
    """SparseGPT pruning of ``w [N, K]`` with Hessian ``h``: N:M (``n``, ``m``) or
    unstructured (``sparsity`` in (0, 1)).  Returns the pruned, updated float32
    weight (pruned entries exactly 0) and the proxy loss."""
    u_fac, dead = inverse_hessian_factor(h, damp, what)
    W = torch.from_numpy(np.array(w, np.float32, copy=True))
    W[:, dead] = 0
    block = BLOCK if not m else m * max(1, BLOCK // m)
    keep = torch.ones(0, dtype=torch.bool)

    def fix(j: int, i: int, W1: torch.Tensor, U1: torch.Tensor) -> torch.Tensor:
        nonlocal keep
        d = torch.diagonal(U1)
        if i == 0:           # a new block: the unstructured mask of all of it
            keep = torch.ones_like(W1, dtype=torch.bool)
            score = (W1 ** 2) / (d[None, :] ** 2)
            cut = int(score.numel() * sparsity) if not m else 0
            if cut:
                keep.view(-1)[torch.argsort(score.flatten(), stable=True)[:cut]] = False
        if m and i % m == 0:  # N:M: the mask of the next M columns, from the updated weights
            score = (W1[:, i:i + m] ** 2) / (d[None, i:i + m] ** 2)
            keep[:, i:i + m] = torch.from_numpy(prune_nm(score.numpy(), n, m))
        return torch.where(keep[:, i], W1[:, i], torch.zeros_like(W1[:, i]))

    loss = _sweep_columns(W, u_fac, block, fix)
    return W.numpy(), loss
