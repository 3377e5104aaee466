"""Q of new individuals with P fixed: under a fitted model (the encoder's Q, then the row-wise refinement) or under
any program's P (from a uniform start), streamed over the cohort in chunks of individuals read straight from the
packed calls."""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from genoae.ancestry.encoder import PROJECTION_TOL, NeuralAdmixture, encode_packed, floored
from genoae.device import choose_device, to_numpy
from genoae.errors import InputWarning
from genoae.genotypes import Genotypes
from genoae.io.model import VariantMatch, aligned_block
from genoae.likelihood import PackedCalls, refine_rows
from genoae.progress import progress_bar
from genoae.shard import LOCAL, Shard

# Individuals per chunk: about this many calls (32 MB packed), a multiple of 4 individuals (whole bytes)
CHUNK_CALLS = 1 << 27


@dataclass
class Projection:
    """The result of :func:`project` / :func:`project_onto_p`."""

    Q: np.ndarray                      # float64 (n_samples, K); nan for individuals without an observed call
    loglik: float                      # ℓ of the observed calls at (Q, P)
    Q_encoder: np.ndarray | None       # the encoder's Q before any refinement (None without a model)
    iterations: list = field(default_factory=list)  # refinement iterations per chunk
    seconds: float = 0.0


def project(model: NeuralAdmixture, genotypes: Genotypes, match: VariantMatch | None = None,
            tol: float = PROJECTION_TOL, max_iter: int = 1000, device: str = "auto", progress: bool = False,
            chunk: int | None = None, shard: Shard = LOCAL) -> Projection:
    """Q of new individuals under a trained model: the encoder's Q, then the refinement of each row with the
    model's P fixed (:func:`genoae.likelihood.refine_rows`) until an iteration raises ℓ by less than ``tol`` ×
    observed calls.

    Parameters
    ----------
    genotypes : Genotypes
        The cohort, as read (a memory-mapped ``.bed`` stays mapped): each chunk of individuals is put on the
        model's variants from the packed bytes (:func:`genoae.io.model.aligned_block`).
    match : VariantMatch, optional
        Where the model's variants are in ``genotypes`` (default: ``genotypes`` already holds exactly them).
    chunk : int, optional
        Individuals per chunk (default: about ``CHUNK_CALLS`` calls).
    shard : Shard
        SNP-sharded runs: ``model`` and ``genotypes`` hold this rank's variants (the encoder's products and the
        refinement's sums are summed over the ranks).

    Memory: the packed calls of one chunk plus O(n_samples · K + n_variants · K).
    """
    P = model.P

    def start(calls):
        Q_encoder = encode_packed(model, calls)
        return Q_encoder, floored(Q_encoder)

    return _project_chunks(genotypes, match, P, start, tol, max_iter, device, progress, chunk, shard)


def project_onto_p(genotypes: Genotypes, P: np.ndarray, match: VariantMatch | None = None,
                   tol: float = PROJECTION_TOL, max_iter: int = 1000, device: str = "auto", progress: bool = False,
                   chunk: int | None = None) -> Projection:
    """Q of individuals under allele frequencies from any program (no network): the same refinement as
    :func:`project`, from a uniform start.  ``P`` holds the A2 frequencies of the matched variants, (n, K)."""
    P = np.clip(np.asarray(P, np.float64), 0.0, 1.0)
    K = P.shape[1]

    def start(calls):
        return None, np.full((calls.n_samples, K), 1.0 / K)

    return _project_chunks(genotypes, match, P, start, tol, max_iter, device, progress, chunk)


def _project_chunks(genotypes: Genotypes, match, P: np.ndarray, start, tol, max_iter, device, progress,
                    chunk, shard: Shard = LOCAL) -> Projection:
    tick = time.perf_counter()
    device = choose_device(device)
    if match is None:
        match = VariantMatch.identity(genotypes.variants)
    n, K = genotypes.n_samples, P.shape[1]
    n_model = len(match.rows)
    if chunk is None:
        chunk = CHUNK_CALLS // max(shard.total(n_model), 1)  # the same chunks on every rank
    chunk = max(4, chunk - chunk % 4)
    Q = np.empty((n, K))
    Q_encoder = None
    n_observed = np.empty(n, np.int64)
    loglik, iterations = 0.0, []
    bar = progress_bar(n, "projecting", unit="ind", enabled=progress)
    for first in range(0, n, chunk):
        last = min(first + chunk, n)
        calls = PackedCalls(aligned_block(genotypes, match, first, last), last - first, device, shard=shard)
        encoder_q, Q_start = start(calls)
        Q_chunk, trace = refine_rows(calls, Q_start, P, tol=tol, max_iter=max_iter)
        Q[first:last] = Q_chunk
        if encoder_q is not None:
            if Q_encoder is None:
                Q_encoder = np.empty((n, K))
            Q_encoder[first:last] = encoder_q
        n_observed[first:last] = to_numpy(calls.n_observed)
        loglik += trace[-1]
        iterations.append(len(trace) - 1)
        bar.update(last - first)
    bar.close()
    _mark_unobserved(Q, n_observed, genotypes)
    return Projection(Q, loglik, Q_encoder, iterations, time.perf_counter() - tick)


def _mark_unobserved(Q: np.ndarray, n_observed: np.ndarray, genotypes: Genotypes) -> None:
    """Individuals without an observed call get ``nan`` (warned): their Q would be the start's, not an estimate."""
    empty = n_observed == 0
    if empty.any():
        names = ", ".join(map(str, genotypes.samples.iid[empty][:5])) + (" ..." if empty.sum() > 5 else "")
        warnings.warn(InputWarning(f"{int(empty.sum())} individual(s) have no observed call at the reference's "
                                   f"variants ({names}): their Q is written as nan"), stacklevel=3)
        Q[empty] = np.nan
