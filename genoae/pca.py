"""Principal components of genotypes by randomized SVD (Halko, Martinsson & Tropp 2011): the one PCA.

:func:`randomized_svd` is the power-iteration core; :func:`standardized_pca` runs it on standardized allele counts
that arrive in blocks of variants, so the matrix is never formed whole.  Its callers differ only in where the
blocks come from: the admixture start walks a :class:`~genoae.likelihood.PackedCalls`, :func:`pca` (the plots and
``compare``) decodes :class:`~genoae.genotypes.Genotypes` block by block, and the synthetic-genome evaluation hands
over a dense matrix of haplotypes.

The linear algebra is NumPy's (float64, on the CPU: the test matrices are only (n, width) and (m, width)); the
blocks may be NumPy arrays or torch tensors on a device, and each product of a block is taken where the block
lives.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from genoae.device import dtype_name
from genoae.errors import UsageError
from genoae.progress import progress_bar
from genoae.shard import LOCAL, Shard

def randomized_svd(times: Callable, transposed_times: Callable, omega, n_iter: int,
                   on_pass: Callable[[int], object] | None = None, shard: Shard = LOCAL,
                   converged: tuple[int, float] | None = None):
    """Leading singular vectors and values of a matrix X known only through products.

    Parameters
    ----------
    times : callable, right (n_cols, w) -> X @ right (n_rows, w)
    transposed_times : callable, left (n_rows, w) -> Xᵀ @ left (n_cols, w)
    omega : ndarray, float64, (n_cols, width)   random test matrix (its seed fixes the result)
    n_iter : int   power iterations, two passes over X each (the most, with ``converged``)
    on_pass : callable, optional   called with the number of passes just made (for a progress bar)
    shard : Shard
        SNP-sharded runs: the columns of X (rows of ``omega`` and of ``transposed_times``' result) are this
        rank's; ``times`` must return the product summed over the ranks.  The decompositions of the column side
        are then tall-skinny QRs across the ranks (:meth:`genoae.shard.Shard.tall_qr`).
    converged : (k, tol), optional
        Stop the power iterations once the leading ``k`` singular values of X·(orthonormal basis) moved by less
        than ``tol`` (relative) in one iteration: a component whose singular value sits in the noise bulk
        converges slowly (gap ratio ~0.99 on hapmap3's third), a clear one in 2–4 iterations.  The values come
        from the R of the QR already taken, so the check costs no pass; every rank sees the same R.

    Returns
    -------
    U : ndarray, (n_rows, width)   left singular vectors, leading first
    singular : ndarray, (width,)   singular values, descending
    V : ndarray, (n_cols, width)   right singular vectors (sharded: this rank's rows), Xᵀ U S⁻¹ exactly, since
        the last pass forms basisᵀ X itself
    """
    def passes(n):
        if on_pass is not None:
            on_pass(n)

    basis, _ = np.linalg.qr(times(omega))
    passes(1)
    previous = None
    for _ in range(n_iter):
        # power iterations sharpen the spectrum; re-orthonormalise each half step for stability
        other, _ = shard.tall_qr(transposed_times(basis))
        basis, upper = np.linalg.qr(times(other))
        passes(2)
        if converged is not None:
            k, tol = converged
            values = np.linalg.svd(upper, compute_uv=False)[:k]  # σ(X · other), other orthonormal
            if previous is not None and np.all(np.abs(values - previous) <= tol * values):
                break
            previous = values
    if shard.sharded:  # basisᵀ X = Rᵀ Qᵀ from the QR of its transpose: the SVD of the small R
        columns, upper = shard.tall_qr(transposed_times(basis))
        small = upper.T
    else:
        columns, small = None, transposed_times(basis).T  # (width, n_cols) = basisᵀ X
    passes(1)
    u_small, singular, vt_small = np.linalg.svd(small, full_matrices=False)
    right = vt_small.T if columns is None else columns @ vt_small.T
    return basis @ u_small, singular, right


@dataclass
class PCAResult:
    """What :func:`standardized_pca` found.

    Attributes
    ----------
    scores : ndarray, float64, shape (n_samples, k)        U S, each component's sign fixed (largest |score| > 0)
    mean : ndarray, float64, shape (n_variants,)            ploidy × f, the centre of each variant
    scale : ndarray, float64, shape (n_variants,)           sqrt(ploidy f (1 − f)); 0 where a variant does not vary
    explained : ndarray, float64, shape (k,) or None        fraction of the total variance per component
    components : ndarray, float64, shape (k, n_variants) or None   loadings Vᵀ, to project other rows
    """

    scores: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    explained: np.ndarray | None = None
    components: np.ndarray | None = None


BlockSource = Callable[[object], Iterator[tuple]]


def standardized_pca(blocks: BlockSource, freqs, n_samples: int, n_components: int, ploidy: int = 2, rng=0,
                     n_oversamples: int = 10, n_iter: int = 3, device="cpu", dtype="float64",
                     cache_bytes: int = 0, with_components: bool = False, with_explained: bool = False,
                     progress: bool = False, what: str = "genotypes", centre_only: bool = False,
                     standardized_source: Callable | None = None, centred_products: Callable | None = None,
                     project_scores: bool = True, shard: Shard = LOCAL,
                     converge_tol: float | None = None) -> PCAResult:
    """PCA of standardized allele counts, (g − ploidy f) / sqrt(ploidy f (1 − f)), missing calls 0 (mean-filled,
    for the PCA only); variants that do not vary (or have no observed call) contribute nothing.

    Parameters
    ----------
    blocks : callable(dtype) -> iterator of (cols, g, observed), or None with ``standardized_source``
        One pass over the data: ``cols`` a slice or index array of variants, ``g`` a torch tensor
        (len(cols), n_samples) of allele counts in ``dtype`` on ``device`` (any value where missing), ``observed``
        a bool tensor of the same shape.  Called once per pass (2 ``n_iter`` + 2 passes) unless the standardized
        blocks fit in ``cache_bytes``.
    freqs : array_like, float, shape (n_variants,)
        Allele frequency f per variant over observed calls (NaN where none is observed).
    n_components : int
        Components wanted; at most n_samples − 1 and the number of varying variants are returned.
    rng : int or numpy.random.Generator
        Source of the random test matrix (a seed makes the result reproducible).
    n_oversamples, n_iter : int
        Extra columns of the test matrix, and power iterations (two passes each; the most, with
        ``converge_tol``).
    converge_tol : float, optional
        Stop the power iterations once the ``n_components`` leading singular values move by less than this
        (relative) in one iteration (:func:`randomized_svd`'s ``converged``).
    dtype : str or torch.dtype
        Arithmetic of the blocks (products are accumulated in float64).
    with_components, with_explained : bool
        Also give the loadings (the SVD's right singular vectors, no pass of their own; see ``project_scores``)
        and the explained variance (one more pass).
    centre_only : bool
        Centre the counts (g − ploidy f) without scaling them (the SVD that the ALS start factorises).
    standardized_source : callable(mean, inv_scale, dtype) -> iterator of (cols, x), optional
        A faster source of the blocks already centred and scaled (``x`` = (g − mean) · inv_scale, 0 where
        missing; a NumPy array or a torch tensor), used instead of ``blocks``
        (:meth:`genoae.likelihood.PackedCalls.centred_blocks`).
    centred_products : callable(mean, inv_scale) -> (times, transposed_times) or None, optional
        Faster still: the products with the standardized matrix X (n_samples, n_variants) themselves, each in one
        fused pass (:meth:`genoae.likelihood.PackedCalls.centred_products`): ``times(right)`` = X right summed over
        the ranks, ``transposed_times(left)`` = Xᵀ left (this rank's variants).  Where it returns None, the
        products of the blocks are taken.  Not with ``with_explained``.
    project_scores : bool
        With ``with_components``: the scores are the data projected on the loadings (one more pass), so that
        other rows projected on them compare with these; False keeps U S (the truncated SVD itself).
    shard : Shard
        SNP-sharded runs: ``freqs`` and the blocks are this rank's variants; the sums over variants are summed
        over the ranks too, the test matrix is the rows of the one-process run's, and the result's ``scores``
        are those of all variants (``components``, ``mean`` and ``scale`` this rank's).

    Returns
    -------
    PCAResult
    """
    freqs = np.nan_to_num(np.asarray(freqs, np.float64), nan=0.0)
    n_variants = len(freqs)
    mean = ploidy * freqs
    scale = np.sqrt(ploidy * freqs * (1 - freqs))
    varying = scale > 1e-6
    n_varying = shard.sum(int(varying.sum()))
    n_all = shard.total(n_variants)
    if not n_varying or n_samples < 2:
        raise UsageError(f"{what}: need at least 2 individuals and one polymorphic variant for a PCA")
    inv_scale_np = np.where(varying, 1.0 if centre_only else 1.0 / np.where(varying, scale, 1.0), 0.0)
    k = int(min(n_components, n_samples - 1, n_varying))
    width = int(min(k + n_oversamples, n_samples, n_all))
    cache = [] if n_samples * n_variants * np.dtype(dtype_name(dtype)).itemsize <= cache_bytes else None

    def standardized():
        if cache:
            yield from cache
            return
        source = (standardized_source(mean, inv_scale_np, dtype) if standardized_source is not None
                  else _standardized_tensors(blocks, mean, inv_scale_np, device, dtype))
        for cols, x in source:
            if cache is not None:
                cache.append((cols, x))
            yield cols, x

    def block_times(right):  # X right, X = the (n_samples, n_variants) standardized matrix
        out = np.zeros((n_samples, right.shape[1]))
        for cols, x in standardized():
            out += _product(x, right[cols], transpose=True)
        return shard.sum(out)

    def block_transposed_times(left):  # Xᵀ left
        out = np.empty((n_variants, left.shape[1]))
        for cols, x in standardized():
            out[cols] = _product(x, left)
        return out

    products = None if centred_products is None else centred_products(mean, inv_scale_np)
    if products is None:
        times, transposed_times = block_times, block_transposed_times
    elif with_explained:
        raise ValueError("with_explained needs the blocks themselves, not centred_products")
    else:
        times, transposed_times = products

    if isinstance(rng, (int, np.integer)):
        rng = np.random.default_rng(int(rng))
    # sharded: this rank's rows of the one-process test matrix (O(M · width) numbers drawn on every rank)
    omega = shard.local_rows(rng.standard_normal((n_all, width)))
    passes = 2 * n_iter + 2 + (with_components and project_scores) + with_explained
    bar = progress_bar(passes, "PCA passes", unit="pass", enabled=progress)
    U, singular, right = randomized_svd(times, transposed_times, omega, n_iter, on_pass=bar.update, shard=shard,
                                        converged=None if converge_tol is None else (k, converge_tol))
    bar.total = bar.n + (with_components and project_scores) + with_explained  # an early stop made fewer passes
    U, singular, right = U[:, :k], singular[:k], right[:, :k]
    scores = U * singular
    # fix the sign of each component (the SVD leaves it free): the largest |score| is positive
    signs = np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(k)])
    signs = np.where(signs == 0, 1.0, signs)
    result = PCAResult(scores=scores * signs, mean=mean, scale=scale)
    if with_components:
        loadings = np.where(varying[:, None], right * signs, 0.0)  # Xᵀ U S⁻¹; exactly 0 where X's row is 0
        result.components = loadings.T
        if project_scores:
            # scores as the projection of the data on these loadings, so that projecting the same rows again (as
            # other sets are projected) gives the same numbers, not U S, which differs by the SVD's residual
            result.scores = times(loadings)
            bar.update(1)
    if with_explained:
        total = shard.sum(sum(_squares(x) for _, x in standardized()))
        result.explained = singular ** 2 / total
        bar.update(1)
    bar.close()
    return result


def _standardized_tensors(blocks: BlockSource, mean: np.ndarray, inv_scale: np.ndarray, device, dtype):
    """The standardized blocks, as torch tensors on ``device``, from a source of (cols, g, observed) tensors."""
    import torch

    torch_dtype = getattr(torch, dtype_name(dtype))
    mean_t = torch.from_numpy(mean).to(device, torch_dtype)
    inv_scale_t = torch.from_numpy(inv_scale).to(device, torch_dtype)
    for cols, g, observed in blocks(torch_dtype):
        x = torch.where(observed, g - mean_t[cols, None], torch.zeros((), dtype=torch_dtype, device=g.device))
        yield cols, x * inv_scale_t[cols, None]  # (block, n_samples)


def _product(x, other: np.ndarray, transpose: bool = False) -> np.ndarray:
    """x @ other (or xᵀ @ other) in float64 NumPy, for a block ``x`` that is a NumPy array or a torch tensor on
    any device (the product is taken there, in the block's dtype, then brought back)."""
    if isinstance(x, np.ndarray):
        x = x.T if transpose else x
        return (x @ other.astype(x.dtype, copy=False)).astype(np.float64, copy=False)
    import torch

    x = x.T if transpose else x
    return (x @ torch.from_numpy(np.ascontiguousarray(other)).to(x.device, x.dtype)).double().cpu().numpy()


def _squares(x) -> float:
    """Σ x² of a block (NumPy or torch), in float64."""
    if isinstance(x, np.ndarray):
        return float(np.square(x, dtype=np.float64).sum())
    return float((x.double() ** 2).sum())


def pca(genotypes, n_components: int = 10, seed: int = 0, device="cpu", oversample: int = 20, n_iter: int = 7,
        chunk: int | None = None, cache_bytes: int = 1 << 30):
    """Principal components of a :class:`~genoae.genotypes.Genotypes` (see :func:`standardized_pca`), decoded one
    block of ``chunk`` variants at a time (and kept standardized in float32 when that fits in ``cache_bytes``).

    Returns
    -------
    scores : ndarray, float64, shape (n_samples, n_components)   U Σ (principal-component scores)
    explained : ndarray, float64, shape (n_components,)           fraction of total variance per component
    """
    result = standardized_pca(lambda dtype: genotypes.blocks(chunk, device, dtype), genotypes.allele_freqs(),
                              genotypes.n_samples, n_components, rng=seed, n_oversamples=oversample,
                              n_iter=n_iter, device=device, dtype="float32", cache_bytes=cache_bytes,
                              with_explained=True, progress=genotypes.n_samples * genotypes.n_variants >= 200_000_000,
                              what=genotypes.source or "genotypes")
    return result.scores, result.explained
