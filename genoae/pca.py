"""Principal components of genotypes by randomized SVD (Halko, Martinsson & Tropp 2011).

:func:`randomized_svd` is the one power-iteration core; callers supply the products with their matrix, so the
matrix is never formed whole (:func:`pca` streams Genotypes in variant blocks, the admixture initialisation walks a
CallMatrix).
"""
from __future__ import annotations

import sys
from typing import Callable

import numpy as np

from genoae.errors import UsageError


def randomized_svd(times: Callable, transposed_times: Callable, omega, n_iter: int,
                   on_pass: Callable[[int], object] | None = None):
    """Leading singular vectors and values of a matrix X known only through products.

    Parameters
    ----------
    times : callable, right (n_cols, w) -> X @ right (n_rows, w)
    transposed_times : callable, left (n_rows, w) -> Xᵀ @ left (n_cols, w)
    omega : torch.Tensor, (n_cols, width)   random test matrix (its seed fixes the result)
    n_iter : int   power iterations, two passes over X each
    on_pass : callable, optional   called with the number of passes just made (for a progress bar)

    Returns
    -------
    U : torch.Tensor, (n_rows, width)   left singular vectors, leading first
    singular : torch.Tensor, (width,)   singular values, descending
    """
    import torch

    def passes(n):
        if on_pass is not None:
            on_pass(n)

    basis, _ = torch.linalg.qr(times(omega))
    passes(1)
    for _ in range(n_iter):
        # power iterations sharpen the spectrum; re-orthonormalise each half step for stability
        other, _ = torch.linalg.qr(transposed_times(basis))
        basis, _ = torch.linalg.qr(times(other))
        passes(2)
    small = transposed_times(basis).T  # (width, n_cols) = basisᵀ X
    passes(1)
    u_small, singular, _ = torch.linalg.svd(small, full_matrices=False)
    return basis @ u_small, singular


def pca(genotypes, n_components: int = 10, seed: int = 0, device="cpu", oversample: int = 20, n_iter: int = 7,
        chunk: int = 4096, cache_bytes: int = 1 << 30):
    """Principal components of standardized genotypes by randomized SVD (Halko, Martinsson & Tropp 2011).

    Each variant is centred at 2f and scaled by sqrt(2f(1 − f)) (f = observed A2 frequency; monomorphic variants
    dropped); missing calls become 0 after centring, i.e. mean imputation, for the PCA only.  The matrix is
    only touched through blocks of ``chunk`` variants (decoded again on each pass unless the whole standardized
    matrix fits in ``cache_bytes``), so memory is O((n_samples + n_variants) × (n_components + oversample)).

    Parameters
    ----------
    genotypes : genoae.Genotypes
    n_components : int
    seed : int        the random test matrix is drawn from this seed, so scores are reproducible
    n_iter : int      power iterations (each is two passes over the genotypes)

    Returns
    -------
    scores : ndarray, float64, shape (n_samples, n_components)   U Σ (principal-component scores)
    explained : ndarray, float64, shape (n_components,)           fraction of total variance per component
    """
    import torch
    from tqdm import tqdm

    freqs = genotypes.allele_freqs()
    keep = np.flatnonzero(np.isfinite(freqs) & (freqs > 0) & (freqs < 1))
    n = genotypes.n_samples
    if keep.size == 0 or n < 2:
        raise UsageError(f"{genotypes.source or 'genotypes'}: need at least 2 individuals and one polymorphic "
                         "variant for a PCA")
    device = torch.device(device)
    k = int(min(n_components, n - 1, keep.size))
    width = int(min(k + oversample, n, keep.size))
    starts = list(range(0, keep.size, chunk))
    cache = {} if n * keep.size * 4 <= cache_bytes else None

    def block(start):
        if cache is not None and start in cache:
            return cache[start]
        cols = keep[start:start + chunk]
        g = torch.from_numpy(genotypes.counts(variants=cols)).to(device)
        f = torch.from_numpy(freqs[cols]).to(device=device, dtype=torch.float32)
        z = (g.float() - 2 * f) / torch.sqrt(2 * f * (1 - f))
        z = torch.where(g < 0, torch.zeros((), device=device), z)
        if cache is not None:
            cache[start] = z
        return z

    def times(right):  # X @ right, right (n_kept_variants, width)
        out = torch.zeros((n, right.shape[1]), dtype=torch.float64, device=device)
        for start in starts:
            x = block(start)
            out += (x @ right[start:start + x.shape[1]].float()).double()
        return out

    def transposed_times(left):  # Xᵀ @ left, left (n, width)
        return torch.cat([(block(start).T @ left.float()).double() for start in starts])

    # each pass decodes the genotypes once; show progress only where that takes a while
    progress = tqdm(total=2 * n_iter + 2, desc="PCA passes", unit="pass", file=sys.stderr, leave=False,
                    disable=n * keep.size < 200_000_000)
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    omega = torch.randn((keep.size, width), generator=generator, dtype=torch.float64).to(device)
    U, singular = randomized_svd(times, transposed_times, omega, n_iter, on_pass=progress.update)
    progress.close()
    U = U[:, :k].cpu().numpy()
    S = singular[:k].cpu().numpy()
    total = float(sum(float((block(start).double() ** 2).sum()) for start in starts))
    scores = U * S
    # fix the sign of each component (SVD leaves it free): the largest |score| is positive
    signs = np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(k)])
    scores *= np.where(signs == 0, 1.0, signs)
    return scores, S ** 2 / total
