"""Q of new individuals under a fitted model: the encoder's Q, then Newton steps (EM on CUDA) on Q with the model's P
fixed, accelerated as in the fit."""
from __future__ import annotations

import warnings

import numpy as np
import torch

from genoae.ancestry.encoder import NeuralAdmixture, encode_all, sample_major_unpacker
from genoae.device import choose_device
from genoae.errors import InputWarning
from genoae.genotypes import Genotypes
from genoae.likelihood import PackedCalls, project_simplex_rows, quasi_newton


def project(model: NeuralAdmixture, genotypes: Genotypes, tol: float = 5e-9, max_iter: int = 1000,
            device: str = "auto", batch_size: int = 256, progress: bool = False):
    """Q of new individuals under a trained model: encoder forward pass, then the refinement of Q with P fixed.

    ``genotypes`` must already be aligned to the model's variants (see :func:`genoae.io.model.align_to_model`):
    same variants in the same order, with calls of variants absent from the new data set missing.

    Returns
    -------
    Q : ndarray, float64, (n_samples, K)
    loglik : float      ℓ of the new individuals' observed calls at (Q, model P)
    Q_encoder : ndarray, float64, (n_samples, K)  the encoder's answer before refinement
    """
    device = choose_device(device)
    model = model.to(device).eval()
    calls = PackedCalls.from_genotypes(genotypes, device)
    unpacker = sample_major_unpacker(genotypes, device)
    with torch.no_grad():
        Q_encoder = encode_all(model, unpacker, genotypes.n_samples, batch_size).to(torch.float64)
        P = model.P.to(torch.float64)
    Q, loglik = refine_q(calls, project_simplex_rows(Q_encoder), P, genotypes, tol, max_iter)
    return Q, loglik, Q_encoder.cpu().numpy()



def refine_q(calls: PackedCalls, Q_start: torch.Tensor, P: torch.Tensor, genotypes: Genotypes, tol: float,
             max_iter: int):
    """The fit's refinement on Q alone, P fixed; individuals without an observed call get ``nan`` (warned).

    Returns
    -------
    Q : ndarray, float64, (n_samples, K);  loglik : float
    """
    Q, _, _ = quasi_newton(calls, Q_start, P, tol=tol, max_iter=max_iter, update_p=False)
    loglik = calls.loglik(Q, P)
    Q = Q.cpu().numpy()
    empty = calls.n_observed.cpu().numpy() == 0
    if empty.any():  # no call to estimate from: their Q would be the start's, not an estimate
        Q[empty] = np.nan
        names = ", ".join(map(str, genotypes.samples.iid[empty][:5])) + (" ..." if empty.sum() > 5 else "")
        warnings.warn(InputWarning(f"{int(empty.sum())} individual(s) have no observed call at the reference's "
                                   f"variants ({names}): their Q is written as nan"), stacklevel=3)
    return Q, loglik


def project_onto_p(genotypes: Genotypes, P: np.ndarray, tol: float = 5e-9, max_iter: int = 1000,
                   device: str = "auto"):
    """Q of individuals under allele frequencies from any program (no network): the refinement of Q with P fixed,
    from a uniform start.

    ``genotypes`` must be aligned to P's variants (:func:`genoae.io.model.align_to_model`), and ``P`` hold the A2
    frequencies of those variants.

    Returns
    -------
    Q : ndarray, float64, (n_samples, K);  loglik : float
    """
    device = choose_device(device)
    calls = PackedCalls.from_genotypes(genotypes, device)
    P = torch.from_numpy(np.clip(np.asarray(P, np.float64), 0.0, 1.0)).to(device)
    K = P.shape[1]
    Q_start = torch.full((genotypes.n_samples, K), 1.0 / K, dtype=torch.float64, device=device)
    return refine_q(calls, Q_start, P, genotypes, tol, max_iter)
