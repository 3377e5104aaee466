"""Where the EM starts: k-means on the leading principal components, the clusters' frequencies as P."""
from __future__ import annotations

import numpy as np
import torch

from genoae.likelihood import FREQ_MAX, FREQ_MIN, CallMatrix, project_simplex_rows
from genoae.pca import standardized_pca


def principal_components(calls: CallMatrix, freqs: np.ndarray, n_components: int,
                         rng: np.random.Generator) -> np.ndarray:
    """Leading principal components of the standardized genotypes (:func:`genoae.pca.standardized_pca`, 3 power
    iterations: enough for k-means), walking the calls block by block.

    Parameters
    ----------
    freqs : ndarray, float64, shape (n_variants,)   A2 frequency per variant (NaN where nothing is observed)

    Returns
    -------
    ndarray, float64, shape (n_samples, n_components)  sample scores U S
    """
    def blocks(dtype):
        for cols, g, r in calls.blocks(dtype):
            yield cols, g, (g + r) > 0

    return standardized_pca(blocks, freqs, calls.n_samples, n_components, rng=rng, n_oversamples=10, n_iter=3,
                            device=calls.device, dtype=torch.float64, what="admix start").scores


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


def initial_estimates(calls: CallMatrix, freqs: np.ndarray, K: int, rng: np.random.Generator,
                      labels: np.ndarray | None = None):
    """Q and P to start from: k-means on principal components (or the given labels), softened one-hot Q.

    Parameters
    ----------
    freqs : ndarray, float64, shape (n_variants,)
        A2 frequency per variant (:meth:`genoae.genotypes.Genotypes.allele_freqs`), for the PCA.
    labels : ndarray, int64, shape (n_samples,), optional
        Known cluster per individual (−1 unknown), for supervised runs; unlabelled individuals start uniform.

    Returns
    -------
    Q : torch.Tensor, float64, (n_samples, K);  P : torch.Tensor, float64, (n_variants, K)
    """
    n = calls.n_samples
    supervised = labels is not None
    if labels is None:
        if K == 1:
            labels = np.zeros(n, np.int64)
        else:
            pcs = principal_components(calls, freqs, K - 1, rng)
            labels = kmeans(pcs, K, rng)
    P = cluster_frequencies(calls, labels, K)
    Q = np.full((n, K), 1.0 / K)
    known = labels >= 0
    if K > 1:
        # k-means clusters are a guess (softened); supervised labels are the answer (one-hot, kept fixed)
        Q[known] = 0.0 if supervised else 0.1 / (K - 1)
        Q[np.flatnonzero(known), labels[known]] = 1.0 if supervised else 0.9
    Q = project_simplex_rows(torch.from_numpy(Q))
    return Q.to(calls.device), P


