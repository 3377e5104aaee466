"""Each run's ℓ on ADMIXTURE's scale, with its P as read and flipped: a P read with the wrong allele is caught."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from genoae.compare.runs import Run
from genoae.errors import InputError
from genoae.likelihood import loglik
from genoae.progress import progress_bar

# P orientation is called wrong when the flipped P is better by more than this fraction of |ℓ|.  On real data
# the two differ by tens of percent (hapmap3 K=3: 3.8e6 vs 7.5e6); a correct P never loses by 0.1 %.
ORIENTATION_REL_MARGIN = 1e-3


class OrientationWarning(UserWarning):
    """The P file fits the genotypes far better read the other way round (A1 vs A2)."""



@dataclass
class Orientation:
    """ℓ of a run with P as read (A2 after conversion) and with 1 − P."""

    loglik: float
    loglik_flipped: float

    @property
    def flipped_fits_better(self) -> bool:
        return self.loglik_flipped - self.loglik > ORIENTATION_REL_MARGIN * abs(self.loglik)


def run_logliks(genotypes, runs: list[Run], device="cpu", batch_size: int | None = None,
                max_elements: int = 50_000_000) -> list[Orientation]:
    """ℓ on ADMIXTURE's scale of every run with a P, as given and flipped, in one pass over the genotypes.

    Parameters
    ----------
    genotypes : genoae.Genotypes
    runs : list of Run
        Rows of Q must be the individuals of ``genotypes`` in order, rows of P its variants.
    batch_size : int, optional
        Individuals decoded at a time; by default as many as keep ``batch × n_variants`` under ``max_elements``
        (float64 counts: 400 MB), so memory stays bounded on biobank-sized inputs.

    Returns
    -------
    list of Orientation (None for runs without P), in the order of ``runs``.
    """
    import torch  # the scoring runs on sample-major tensor batches (compare and plot import torch anyway)

    device = torch.device(device)
    for run in runs:
        _check_shapes(run, genotypes)
    scored = [i for i, run in enumerate(runs) if run.P is not None]
    columns_of = {i: torch.as_tensor(runs[i].variant_rows, device=device) for i in scored
                  if runs[i].variant_rows is not None}
    given = {i: 0.0 for i in scored}
    flipped = {i: 0.0 for i in scored}
    if scored:
        tensors = {i: (torch.from_numpy(runs[i].Q).to(device), torch.from_numpy(runs[i].P).to(device))
                   for i in scored}
        if batch_size is None:
            batch_size = int(max(1, min(genotypes.n_samples, max_elements // max(genotypes.n_variants, 1))))
        n_batches = -(-genotypes.n_samples // batch_size)
        batches = genotypes.batches(batch_size=batch_size, device=device, dtype=torch.float64)
        bar = progress_bar(n_batches, "likelihood", unit="batch", enabled=n_batches >= 4)
        for index, counts, observed in batches:
            rows = torch.as_tensor(index, device=device)
            for i in scored:
                Q, P = tensors[i]
                columns = columns_of.get(i)
                run_counts = counts if columns is None else counts[:, columns]
                run_observed = observed if columns is None else observed[:, columns]
                given[i] += loglik(run_counts, run_observed, Q[rows], P)
                flipped[i] += loglik(run_counts, run_observed, Q[rows], 1.0 - P)
            bar.update(1)
        bar.close()
    return [Orientation(given[i], flipped[i]) if i in given else None for i in range(len(runs))]


def _check_shapes(run: Run, genotypes) -> None:
    if run.Q.shape[0] != genotypes.n_samples:
        raise InputError(run.q_path, f"Q has {run.Q.shape[0]} rows but the genotypes have {genotypes.n_samples} "
                                     "individuals")
    if run.P is None or run.P.shape[0] == genotypes.n_variants:
        return
    autosomes = np.flatnonzero(np.isin(genotypes.variants.chrom.astype(str),
                                       [str(c) for c in range(1, 23)] + [f"chr{c}" for c in range(1, 23)]))
    if run.P.shape[0] == autosomes.size:  # ADAMIXTURE's default --chrom_mode autosomes
        run.variant_rows = autosomes
        run.notes.append(f"P covers the {autosomes.size} autosomal variants of the {genotypes.n_variants} (as "
                         f"ADAMIXTURE keeps by default): its likelihood is over those")
        return
    raise InputError(run.p_path, f"P has {run.P.shape[0]} rows but the genotypes have {genotypes.n_variants} "
                                 f"variants ({autosomes.size} on autosomes 1-22)")


def check_orientation(run: Run, orientation: Orientation) -> float:
    """Warn (or, for ``p_convention='auto'``, fix) a P read with the wrong allele; return the run's ℓ."""
    if orientation is None:
        return float("nan")
    if not orientation.flipped_fits_better:
        return orientation.loglik
    other = "A2" if run.p_allele == "A1" else "A1"
    if run.auto_orientation:
        run.P = 1.0 - run.P
        run.notes.append(f"P read as {other} frequencies (auto: fits the genotypes better than {run.p_allele})")
        run.p_allele = other
        return orientation.loglik_flipped
    message = (f"{run.name}: P fits the genotypes far better as {other} frequencies than as {run.p_allele} "
               f"(loglik {orientation.loglik_flipped:.6g} vs {orientation.loglik:.6g}); "
               f"source {run.source} assumes {run.p_allele}: use --p-convention {other} (or auto)")
    run.notes.append(message)
    warnings.warn(message, OrientationWarning, stacklevel=2)
    return orientation.loglik


