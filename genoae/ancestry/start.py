"""Where the EM starts: k-means on the leading principal components, the clusters' frequencies as P."""
from __future__ import annotations

import numpy as np
import torch

from genoae.likelihood import FREQ_MAX, FREQ_MIN, CallMatrix, project_simplex_rows
from genoae.pca import randomized_svd


def principal_components(calls: CallMatrix, n_components: int, rng: np.random.Generator, n_oversamples: int = 10,
                         n_power_iter: int = 3) -> np.ndarray:
    """Leading principal components of the standardised genotypes by randomised SVD (Halko et al. 2011).

    Genotypes are centred and scaled per SNP, (g − 2f) / sqrt(2f(1 − f)), missing calls set to 0 (the mean);
    monomorphic and unobserved SNPs contribute nothing.  The matrix is never formed whole: every product walks
    the calls block by block.

    Returns
    -------
    ndarray, float64, shape (n_samples, n_components)  sample scores U S
    """
    device = calls.device
    dtype = torch.float64
    freq = torch.zeros(calls.n_variants, dtype=dtype, device=device)
    for cols, g, r in calls.blocks(dtype):
        n_alleles = (g + r).sum(dim=1)
        freq[cols] = torch.where(n_alleles > 0, g.sum(dim=1) / n_alleles.clamp_min(1), torch.zeros_like(n_alleles))
    scale = torch.sqrt(2 * freq * (1 - freq))
    inv_scale = torch.where(scale > 1e-6, 1.0 / scale.clamp_min(1e-6), torch.zeros_like(scale))

    def standardised(cols, g, r):
        observed = (g + r) > 0
        x = torch.where(observed, g - 2 * freq[cols, None], torch.zeros_like(g))
        return x * inv_scale[cols, None]  # (block, n)

    n_samples = calls.n_samples
    width = min(n_components + n_oversamples, n_samples)

    def times(right):  # X Z, X = the (n_samples, n_variants) standardised matrix
        out = torch.zeros((n_samples, right.shape[1]), dtype=dtype, device=device)
        for cols, g, r in calls.blocks(dtype):
            out += standardised(cols, g, r).T @ right[cols]
        return out

    def transposed_times(left):  # Xᵀ Y
        out = torch.empty((calls.n_variants, left.shape[1]), dtype=dtype, device=device)
        for cols, g, r in calls.blocks(dtype):
            out[cols] = standardised(cols, g, r) @ left
        return out

    omega = torch.from_numpy(rng.standard_normal((calls.n_variants, width))).to(device, dtype)
    U, singular = randomized_svd(times, transposed_times, omega, n_power_iter)
    return (U[:, :n_components] * singular[:n_components]).cpu().numpy()


def kmeans(points: np.ndarray, K: int, rng: np.random.Generator, n_init: int = 10,
           max_iter: int = 100) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding, best of ``n_init`` restarts (by within-cluster sum of squares).

    Returns
    -------
    ndarray, int64, shape (n_points,)  cluster of each point, clusters ordered by first appearance
    """
    best_labels, best_inertia = None, np.inf
    n = points.shape[0]
    for _ in range(n_init):
        centres = [points[rng.integers(n)]]
        for _ in range(1, K):
            d2 = np.min(((points[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
            total = d2.sum()
            centres.append(points[rng.choice(n, p=d2 / total)] if total > 0 else points[rng.integers(n)])
        centres = np.array(centres)
        labels = np.zeros(n, np.int64)
        for _ in range(max_iter):
            d2 = ((points[:, None, :] - centres[None]) ** 2).sum(-1)
            new_labels = d2.argmin(axis=1)
            for k in range(K):
                members = points[new_labels == k]
                if len(members):
                    centres[k] = members.mean(axis=0)
            if np.array_equal(new_labels, labels):
                break
            labels = new_labels
        inertia = ((points - centres[labels]) ** 2).sum()
        if inertia < best_inertia:
            best_labels, best_inertia = labels, inertia
    # relabel by first appearance so that the column order is a function of the data, not of the restarts
    _, first = np.unique(best_labels, return_index=True)
    order = np.argsort(first)
    remap = np.empty(K, np.int64)
    remap[np.unique(best_labels)[order]] = np.arange(len(order))
    return remap[best_labels]


def cluster_frequencies(calls: CallMatrix, labels: np.ndarray, K: int, pseudo: float = 0.5) -> torch.Tensor:
    """A2 frequency of each SNP within each cluster (pseudo-counts keep it off 0 and 1), float64 (M, K)."""
    onehot = torch.zeros((calls.n_samples, K), dtype=torch.float64, device=calls.device)
    known = labels >= 0
    onehot[torch.from_numpy(np.flatnonzero(known)).to(calls.device),
           torch.from_numpy(labels[known]).to(calls.device)] = 1.0
    P = torch.empty((calls.n_variants, K), dtype=torch.float64, device=calls.device)
    for cols, g, r in calls.blocks(torch.float64):
        a2 = (onehot.T @ g.T).T
        total = (onehot.T @ (g + r).T).T
        P[cols] = (a2 + pseudo) / (total + 2 * pseudo)
    return P.clamp_(FREQ_MIN, FREQ_MAX)


def initial_estimates(calls: CallMatrix, K: int, rng: np.random.Generator, labels: np.ndarray | None = None):
    """Q and P to start from: k-means on principal components (or the given labels), softened one-hot Q.

    Parameters
    ----------
    labels : ndarray, int64, shape (n_samples,), optional
        Known cluster per individual (−1 unknown), for supervised runs; unlabelled individuals start uniform.

    Returns
    -------
    Q : torch.Tensor, float64, (n_samples, K);  P : torch.Tensor, float64, (n_variants, K);  labels : ndarray
    """
    n = calls.n_samples
    supervised = labels is not None
    if labels is None:
        if K == 1:
            labels = np.zeros(n, np.int64)
        else:
            pcs = principal_components(calls, K - 1, rng)
            labels = kmeans(pcs, K, rng)
    P = cluster_frequencies(calls, labels, K)
    Q = np.full((n, K), 1.0 / K)
    known = labels >= 0
    if K > 1:
        # k-means clusters are a guess (softened); supervised labels are the answer (one-hot, kept fixed)
        Q[known] = 0.0 if supervised else 0.1 / (K - 1)
        Q[np.flatnonzero(known), labels[known]] = 1.0 if supervised else 0.9
    Q = project_simplex_rows(torch.from_numpy(Q))
    return Q.to(calls.device), P, labels


