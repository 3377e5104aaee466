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
    Q_start = project_simplex_rows(Q_encoder)
    Q, _, _ = quasi_newton(calls, Q_start, P, tol=tol, max_iter=max_iter, update_p=False)
    loglik = calls.loglik(Q, P)
    Q = Q.cpu().numpy()
    empty = calls.n_observed.cpu().numpy() == 0
    if empty.any():  # no call to estimate from: their Q would be the encoder's guess on nothing
        Q[empty] = np.nan
        names = ", ".join(map(str, genotypes.samples.iid[empty][:5])) + (" ..." if empty.sum() > 5 else "")
        warnings.warn(InputWarning(f"{int(empty.sum())} individual(s) have no observed call at the model's variants "
                                   f"({names}): their Q is written as nan"), stacklevel=2)
    return Q, loglik, Q_encoder.cpu().numpy()


