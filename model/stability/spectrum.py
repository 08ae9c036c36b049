"""The coupling matrix B and the continuous-time spectrum of J_t = D_t B along a trajectory.

Theorem 3 / Lemma 2 (paper Sec. 3): if A = B + γI is antisymmetric and D is diagonal with D ≥ 0,
every eigenvalue of D B has Re λ ≤ 0 (= 0 when γ = 0). This module checks the premise on B itself and
computes the spectrum cheaply and exactly:

* **Similarity.** eig(D B) = eig(D^{1/2} B D^{1/2}) for any diagonal D ≥ 0 (eig(XY) = eig(YX) with
  X = D^{1/2}, Y = D^{1/2} B; no inverse of D is needed, so saturated units with D_ii = 0 are fine).
  For AFRNN, D^{1/2} A D^{1/2} is exactly antisymmetric in floating point, so the eigensolver
  (LAPACK geev, float64) returns real parts at round-off level instead of the O(√eps) errors of a
  non-normal D A.

* **Block-triangular B** (2-ARNN: feedforward W, no feedback). The spectrum of D B is the union of
  the spectra of its diagonal blocks D_n B_nn, so the eigensolver runs on D(n)-sized blocks
  (for two 128-blocks a quarter of the cost of one 256-block), and each block is antisymmetric plus
  −γI, which is why the 2-ARNN's continuous system is stable although A is not antisymmetric.

* **Bendixson bound for every step** (O(D) per step after one ``eigvalsh`` of each block's
  symmetric part S = (B_bb + B_bbᵀ)/2): for the similar matrix M = D^{1/2} B D^{1/2},
  Re λ(M) ≤ λ_max((M + Mᵀ)/2) = max_x xᵀ D^{1/2} S D^{1/2} x / xᵀx ≤ c · λ_max(S), where
  c = max_i d_i if λ_max(S) ≥ 0 and c = min_i d_i otherwise (since ‖D^{1/2} x‖² ∈ [min d, max d]·‖x‖²).
  For AFRNN λ_max(S) = −γ, so the bound is −γ · min_i d_{t,i} ≤ 0 at every step: the theorem,
  verified along the whole trajectory at no cost. The exact spectrum (D³ per step) is computed at a
  sample of steps (see ``sample_steps``).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

# A relative antisymmetry residual ‖A + Aᵀ‖_F / ‖A‖_F at or below this counts as antisymmetric
# (float32 parameters give exactly 0 for the model's construction R − Rᵀ and (W, −Wᵀ)).
ANTISYMMETRY_TOLERANCE = 1e-6


@dataclass
class CouplingStructure:
    """What Theorem 3 needs to know about B = A − γI."""

    structure: str                       # "antisymmetric" | "block_triangular" | "general"
    blocks: list[tuple[int, int]]        # the spectral blocks [lo, hi)
    block_symmetric_max: list[float]     # λ_max of each block's symmetric part
    antisymmetry_residual: float         # ‖A + Aᵀ‖_F
    antisymmetry_residual_relative: float
    symmetric_part_max_eigenvalue: float  # λ_max((B + Bᵀ)/2)

    @property
    def theorem3_satisfied(self) -> bool:
        return self.structure == "antisymmetric"

    @property
    def stability_guaranteed(self) -> bool:
        """Re λ(D B) ≤ 0 for every diagonal D ≥ 0: every spectral block's symmetric part is ≤ 0."""
        return max(self.block_symmetric_max) <= 0.0


def _relative_antisymmetry(matrix: Tensor) -> tuple[float, float]:
    residual = float(torch.linalg.matrix_norm(matrix + matrix.T))
    scale = float(torch.linalg.matrix_norm(matrix))
    return residual, residual / scale if scale > 0 else 0.0


def _is_block_triangular(matrix: Tensor, bounds: Sequence[int]) -> bool:
    """All blocks strictly above the block diagonal are zero, or all blocks strictly below."""
    n = len(bounds) - 1
    if n < 2:
        return False
    upper = all(not matrix[bounds[i]:bounds[i + 1], bounds[j]:bounds[j + 1]].any()
                for i in range(n) for j in range(i + 1, n))
    lower = all(not matrix[bounds[j]:bounds[j + 1], bounds[i]:bounds[i + 1]].any()
                for i in range(n) for j in range(i + 1, n))
    return upper or lower


def coupling_structure(coupling: Tensor, gamma: float, layer_bounds: Sequence[int]) -> CouplingStructure:
    """Classify B = A − γI ((D, D), in the model's dtype) and find the blocks carrying eig(D B).

    A = B + γI is formed in B's own dtype, which undoes the model's B = A − γI exactly (so an
    antisymmetric A has a residual of exactly 0, not the rounding error of γ in float32).
    """
    size = coupling.shape[0]
    couplings_a = (coupling + gamma * torch.eye(size, dtype=coupling.dtype)).to(torch.float64)
    coupling = coupling.to(torch.float64)
    residual, relative = _relative_antisymmetry(couplings_a)
    sym_max = float(torch.linalg.eigvalsh((coupling + coupling.T) / 2).max())
    if relative <= ANTISYMMETRY_TOLERANCE:
        structure, blocks = "antisymmetric", [(0, size)]
    else:
        bounds = list(layer_bounds)
        diagonal_antisymmetric = all(
            _relative_antisymmetry(couplings_a[lo:hi, lo:hi])[1] <= ANTISYMMETRY_TOLERANCE
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True))
        if _is_block_triangular(couplings_a, bounds) and diagonal_antisymmetric:
            structure = "block_triangular"
            blocks = list(zip(bounds[:-1], bounds[1:], strict=True))
        else:
            structure, blocks = "general", [(0, size)]
    block_max = [sym_max] if blocks == [(0, size)] else [
        float(torch.linalg.eigvalsh((coupling[lo:hi, lo:hi] + coupling[lo:hi, lo:hi].T) / 2).max())
        for lo, hi in blocks]
    return CouplingStructure(structure, blocks, block_max, residual, relative, sym_max)


def max_real_bounds(derivatives: Tensor, structure: CouplingStructure) -> Tensor:
    """Bendixson upper bound on max Re λ(D_t B) for every step, (T,) float64 (see module docstring)."""
    per_block = []
    for (lo, hi), sym_max in zip(structure.blocks, structure.block_symmetric_max, strict=True):
        d = derivatives[:, lo:hi]
        scale = d.amax(dim=1) if sym_max >= 0 else d.amin(dim=1)
        per_block.append(sym_max * scale)
    return torch.stack(per_block).amax(dim=0)


_STEPS_PER_CALL = 8     # steps per batched eigvals call: an ``interrupt`` check between calls


def continuous_eigenvalues(coupling: Tensor, derivatives: Tensor, structure: CouplingStructure,
                           interrupt: Callable[[], None] | None = None) -> Tensor:
    """All eigenvalues of D_t B for each given d_t, (n, D) complex128, via D^{1/2} B D^{1/2}.

    Args:
        coupling: B, (D, D).
        derivatives: d_t for the n steps wanted, (n, D).
        interrupt: when given, called before each batch of steps; it stops the work by raising.
    """
    coupling = coupling.to(torch.float64)
    root = derivatives.to(torch.float64).clamp_min(0.0).sqrt()
    rows = []
    for start in range(0, root.shape[0], _STEPS_PER_CALL):
        if interrupt is not None:
            interrupt()
        chunk = root[start:start + _STEPS_PER_CALL]
        parts = []
        for lo, hi in structure.blocks:
            r = chunk[:, lo:hi]
            similar = r.unsqueeze(2) * coupling[lo:hi, lo:hi] * r.unsqueeze(1)   # (n, b, b)
            parts.append(torch.linalg.eigvals(similar))
        rows.append(torch.cat(parts, dim=1))
    if not rows:
        return torch.zeros(0, coupling.shape[0], dtype=torch.complex128)
    return torch.cat(rows, dim=0)


def sample_steps(steps: int, count: int) -> list[int]:
    """``count`` steps spread evenly over 0 … steps−1, both ends included (all steps if count ≥ steps)."""
    if count >= steps:
        return list(range(steps))
    if count == 1:
        return [steps - 1]
    return sorted({round(i * (steps - 1) / (count - 1)) for i in range(count)})


def spectrum_steps(bounds: Tensor, count: int) -> list[int]:
    """The steps for the exact spectrum: a quarter of ``count`` at the largest Bendixson bounds
    (where the spectrum comes closest to, or crosses, the imaginary axis), the rest evenly spaced."""
    steps = bounds.shape[0]
    if count >= steps:
        return list(range(steps))
    worst = max(1, count // 4)
    chosen = set(sample_steps(steps, count - worst))
    chosen.update(torch.topk(bounds, worst).indices.tolist())
    return sorted(chosen)
