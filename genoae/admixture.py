"""Neural ADMIXTURE: an autoencoder whose encoder gives ancestry proportions Q and whose decoder is the allele
frequency matrix P, trained on ADMIXTURE's binomial likelihood, then refined by accelerated EM to its maximum.

The pipeline of :meth:`Admixture.fit`, top to bottom:

1. **Initialisation that does not depend on luck**: PCA of the standardised genotypes (randomised SVD), k-means on
   the leading K − 1 principal components (k-means++ seeding, several restarts, all drawn from ``seed``); the
   clusters' allele frequencies and softened memberships give the starting P and Q.
2. **Refinement to the maximum likelihood**: EM accelerated by SQUAREM (:func:`genoae.likelihood.squarem`) until ℓ
   rises by less than ``tol`` × (observed calls) over 5 iterations.  This makes the answer as good as the classics'.
3. **Network**: the decoder holds the refined P; the encoder is set in closed form from the refined P and Q
   (:func:`initialise_encoder`: a least-squares layer, then softmax regression onto the refined Q), and only if that
   misses the refined Q by RMSE ≥ ``ENCODER_STOP_RMSE`` do mini-batch Adam epochs on −ℓ
   (:func:`genoae.likelihood.loglik_terms`) plus the KL divergence from the refined Q train it further, so that
   :func:`project` places new individuals with one forward pass (then a short EM on Q with P fixed).

Why the network comes after the EM and not before it: starting the EM from a trained network's Q (decoder trained
too, or frozen at the k-means P) reached a *higher* starting ℓ than the k-means start but then needed 147 SQUAREM
iterations instead of 60 on a 300 × 10,000 simulated set (K = 3), and ended slightly lower: the softmax encoder
spreads Q away from the simplex boundary, and multiplicative EM updates are slow to bring entries back to ~0.

Calls are A2 allele counts (PLINK ``.bim`` column 6, VCF ALT); P is the A2 frequency, as ADMIXTURE's.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from genoae.device import choose_device, seed_everything, set_threads
from genoae.errors import InputError, UsageError
from genoae.genotypes import ALLELE_CONVENTION, DeviceUnpacker, Genotypes
from genoae.likelihood import (FREQ_MAX, FREQ_MIN, MISSING_CODE, CallMatrix, loglik_terms, project_simplex_rows,
                               squarem)
from genoae.pca import randomized_svd

# ============================================================================================== the network
LOSS_SNPS = 4096  # SNPs drawn per batch for the likelihood term of the encoder's training loss
# Encoder training stops early once its Q (as seen during an epoch) is within this RMSE of the refined Q: the encoder
# only gives `project` its starting Q, which the EM with P fixed then refines, so more epochs buy nothing there
ENCODER_STOP_RMSE = 0.02


class NeuralAdmixture(nn.Module):
    """Encoder: centred genotypes → hidden layer → K logits → softmax = Q.  Decoder: P = sigmoid(logits), (M, K).

    Parameters
    ----------
    n_variants : int
    K : int
    hidden : int
        Width of the encoder's hidden layer.

    Buffers
    -------
    input_freq : float32, shape (n_variants,)
        A2 frequency of the training data; the encoder sees ``g / 2 − freq`` and missing calls as 0 (mean-filled at
        the input only: the likelihood never sees them).
    """

    def __init__(self, n_variants: int, K: int, hidden: int = 64):
        super().__init__()
        self.n_variants, self.K, self.hidden = int(n_variants), int(K), int(hidden)
        self.encoder = nn.Sequential(nn.Linear(n_variants, hidden), nn.GELU(), nn.Linear(hidden, K))
        self.p_logits = nn.Parameter(torch.zeros(n_variants, K))
        self.register_buffer("input_freq", torch.full((n_variants,), 0.5))

    def encode(self, counts: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """Q for a batch.

        Parameters
        ----------
        counts : torch.Tensor, float, shape (b, n_variants)   A2 counts (any value where missing)
        observed : torch.Tensor, bool, shape (b, n_variants)

        Returns
        -------
        torch.Tensor, float32, shape (b, K), rows on the simplex
        """
        x = torch.where(observed, counts.float() / 2.0 - self.input_freq, torch.zeros((), device=counts.device))
        return torch.softmax(self.encoder(x), dim=1)

    @property
    def P(self) -> torch.Tensor:
        """Decoder allele frequencies, float32 (n_variants, K), in ADMIXTURE's bounds [1e-5, 1 − 1e-5]."""
        return torch.sigmoid(self.p_logits).clamp(FREQ_MIN, FREQ_MAX)

    def set_P(self, P) -> None:
        P = torch.as_tensor(P, dtype=torch.float32, device=self.p_logits.device).clamp(FREQ_MIN, FREQ_MAX)
        with torch.no_grad():
            self.p_logits.copy_(torch.log(P) - torch.log1p(-P))

    def forward(self, counts, observed):
        """Q for the batch and its reconstruction h = Q Pᵀ (expected A2 frequency per call)."""
        Q = self.encode(counts, observed)
        return Q, Q @ self.P.T


# ============================================================================================== initialisation


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


# ============================================================================================== the estimator


@dataclass
class FitReport:
    """What happened during a fit, for the log file."""

    init_loglik: float = float("nan")
    network_loglik: float = float("nan")
    encoder_start_rmse: float = float("nan")  # encoder Q vs refined Q after its closed-form start
    encoder_rmse: float = float("nan")        # ... and after training
    epoch_logliks: list = field(default_factory=list)
    em_trace: list = field(default_factory=list)
    em_iterations: int = 0
    seconds: dict = field(default_factory=dict)


class Admixture:
    """Neural ADMIXTURE estimator (scikit-learn style: hyper-parameters in the constructor, ``fit`` returns self).

    Parameters
    ----------
    K : int
        Number of ancestral populations (1 ≤ K < number of individuals).
    hidden : int
        Encoder hidden width.
    epochs : int
        Most Adam epochs of encoder training after the EM refinement; none run when the encoder's closed-form start
        is already within Q RMSE ``ENCODER_STOP_RMSE`` of the refined Q (0: never train beyond that start).
    batch_size : int
    lr : float
        Adam learning rate of the encoder.
    tol : float
        Refinement stops when ℓ rises by less than ``tol`` × (number of observed calls) between two likelihood
        checks (every 5 SQUAREM iterations); 1e-6 is ≈ 4.5 on hapmap3 (4.5 million calls), where the result is
        then within ~5.5 of ADMIXTURE's ℓ (0.00014 %; Q RMSE 0.003 from its Q).
    max_iter : int
        Most SQUAREM iterations.
    seed : int
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    threads : int, optional
        CPU threads for torch.
    precision : str
        ``float64`` or ``float32`` for the refinement's arithmetic (ℓ is always summed in float64); ``auto`` picks
        float64 when the data are small (≤ 2·10⁷ calls) and float32 otherwise, where it is faster and its rounding
        is far below ``tol``.
    progress : bool
        tqdm bars on stderr.

    Attributes
    ----------
    Q_ : ndarray, float64, (n_samples, K)
    P_ : ndarray, float64, (n_variants, K)  A2 frequencies
    loglik_ : float                           final ℓ on ADMIXTURE's scale
    loglik_trace_ : ndarray                   ℓ per epoch (network), then per SQUAREM iteration
    model_ : NeuralAdmixture                  with the refined P in its decoder
    populations_ : list of str                supervised runs: the label of each column of Q
    report_ : FitReport
    """

    def __init__(self, K: int, hidden: int = 64, epochs: int = 5, batch_size: int = 256, lr: float = 3e-3,
                 tol: float = 1e-6, max_iter: int = 1000, seed: int = 42, device: str = "auto",
                 threads: int | None = None, precision: str = "auto", progress: bool = True):
        self.K = int(K)
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.tol = tol
        self.max_iter = max_iter
        self.seed = seed
        self.device = device
        self.threads = threads
        self.precision = precision
        self.progress = progress

    def get_params(self) -> dict:
        return {name: getattr(self, name) for name in ("K", "hidden", "epochs", "batch_size", "lr", "tol",
                                                       "max_iter", "seed", "device", "threads", "precision")}

    # ---------------------------------------------------------------------------------------------- fit
    def fit(self, genotypes: Genotypes, populations: np.ndarray | None = None,
            calls: CallMatrix | None = None) -> "Admixture":
        """Estimate Q and P for ``genotypes``.

        Parameters
        ----------
        populations : ndarray, str, shape (n_samples,), optional
            Supervised mode (ADMIXTURE's ``.pop``): a label per individual, ``""`` when unknown.  Labelled
            individuals keep Q = their population; K must equal the number of distinct labels, and the columns of
            Q follow the labels in sorted order (``populations_``).
        calls : CallMatrix, optional
            The calls already decoded on the device (lets several K share one decoding).
        """
        n, m = genotypes.n_samples, genotypes.n_variants
        check_k(self.K, n)
        set_threads(self.threads)
        device = choose_device(self.device)
        rng = seed_everything(self.seed)
        report = FitReport()
        tick = time.perf_counter()
        if calls is None:
            calls = CallMatrix.from_genotypes(genotypes, device)
        dtype = _refinement_dtype(self.precision, n * m)

        labels, fixed_rows, self.populations_ = None, None, []
        if populations is not None:
            labels, self.populations_ = _population_labels(populations, self.K, n)
            fixed_rows = torch.from_numpy(labels >= 0).to(device)

        # 1. initialisation
        Q0, P0, init_labels = initial_estimates(calls, self.K, rng, labels)
        report.init_loglik = calls.loglik(Q0, P0)
        report.seconds["init"] = time.perf_counter() - tick

        # 2. refinement to the maximum likelihood, from the PCA/k-means start
        tick = time.perf_counter()
        bar = _progress(self.progress, self.max_iter, f"K={self.K} EM")
        last_iteration = [0]
        show = _bar_callback(bar)

        def on_check(iteration, loglik):
            last_iteration[0] = iteration
            if show is not None:
                show(iteration, loglik)

        Q, P, trace = squarem(calls, Q0.to(dtype), P0.to(dtype), tol=self.tol, max_iter=self.max_iter,
                              q_fixed_rows=fixed_rows, callback=on_check)
        if bar is not None:
            bar.close()
        Q, P = Q.to(torch.float64), P.to(torch.float64)
        report.em_trace, report.em_iterations = trace, last_iteration[0]
        report.seconds["refinement"] = time.perf_counter() - tick

        # 3. network training: the decoder holds the refined P; the encoder learns to give each individual its Q
        tick = time.perf_counter()
        model = NeuralAdmixture(m, self.K, self.hidden).to(device)
        freq = torch.from_numpy(np.nan_to_num(genotypes.allele_freqs(), nan=0.5)).float().to(device)
        model.input_freq.copy_(freq)
        model.set_P(P)
        Q_net = None
        if self.K > 1:
            report.encoder_start_rmse, Q_net = initialise_encoder(model, calls, Q.float())
        if self.epochs > 0 and self.K > 1 and not report.encoder_start_rmse < ENCODER_STOP_RMSE:
            Q_fixed = Q.float() if fixed_rows is not None else None
            unpacker = _unpacker(genotypes, device)
            report.epoch_logliks = self._train(model, unpacker, n, rng, Q_fixed, fixed_rows, Q.float())
            Q_net = encode_all(model, unpacker, n, self.batch_size)
        elif Q_net is None:
            Q_net = encode_all(model, _unpacker(genotypes, device), n, self.batch_size)
        Q_net = project_simplex_rows(Q_net.to(torch.float64))
        report.encoder_rmse = float(torch.sqrt(((Q_net - Q) ** 2).mean()))
        report.network_loglik = calls.loglik(Q_net, P)
        report.seconds["network"] = time.perf_counter() - tick

        self.model_ = model
        self.Q_ = Q.cpu().numpy()
        self.P_ = P.cpu().numpy()
        self.loglik_ = calls.loglik(Q, P)
        self.loglik_trace_ = np.array(list(trace) + [self.loglik_])
        self.report_ = report
        self.init_labels_ = init_labels
        self.n_samples_, self.n_variants_ = n, m
        self.device_ = device
        return self

    def _train(self, model: NeuralAdmixture, unpacker: DeviceUnpacker, n: int, rng: np.random.Generator,
               Q_fixed, fixed_rows, Q_refined) -> list[float]:
        """Mini-batch Adam epochs on −ℓ (estimated on LOSS_SNPS random SNPs per batch) + KL(refined Q ‖ encoder Q).

        Returns the estimated ℓ summed over each epoch's batches (the parameters move within an epoch).
        """
        model.p_logits.requires_grad_(False)  # P is the refined maximum-likelihood P: the encoder learns Q for it
        optimiser = torch.optim.Adam(model.encoder.parameters(), lr=self.lr)
        epoch_logliks = []
        m = model.n_variants
        bar = _progress(self.progress, self.epochs, f"K={self.K} training")
        for epoch in range(self.epochs):
            total, squared_error = 0.0, 0.0
            order = rng.permutation(n)
            for start in range(0, n, self.batch_size):
                index = order[start:start + self.batch_size]
                counts, observed = unpacker.unpack(index)
                Q = model.encode(counts, observed)
                loss_extra = 0.0
                if fixed_rows is not None:
                    rows = fixed_rows[torch.from_numpy(index).to(fixed_rows.device)]
                    target = Q_fixed[torch.from_numpy(index).to(Q_fixed.device)]
                    # labelled individuals: Q is their population, and the encoder learns to say so
                    loss_extra = -(target * torch.log(Q.clamp_min(1e-8))).sum(1)[rows].sum()
                    Q = torch.where(rows[:, None], target, Q)
                # ℓ on a random subset of SNPs per batch: an unbiased estimate of the per-call ℓ at a fraction of
                # the cost (the full h = Q Pᵀ of every batch cost 5x the EM refinement's time at 1,500 × 100,000)
                snps = torch.from_numpy(np.sort(rng.choice(m, min(m, LOSS_SNPS), replace=False))).to(counts.device)
                terms = loglik_terms(counts[:, snps], observed[:, snps], Q, model.P[snps])
                batch_loglik = terms.sum() * (m / len(snps))
                # −ℓ per call, plus KL(refined Q ‖ encoder Q) per individual: ℓ alone has a flat valley around
                # the maximum and needs many more epochs to bring the encoder there
                target = Q_refined[torch.from_numpy(index).to(Q_refined.device)]
                kl = (target * (torch.log(target.clamp_min(1e-8)) - torch.log(Q.clamp_min(1e-8)))).sum(1).mean()
                squared_error += float(((Q.detach() - target) ** 2).sum())
                loss = -(terms.sum() + loss_extra * len(snps) / m) / observed[:, snps].sum().clamp_min(1) + kl
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += float(batch_loglik.detach())
            epoch_logliks.append(total)
            rmse = (squared_error / (n * self.K)) ** 0.5
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"ℓ≈{total:,.1f} Q RMSE≈{rmse:.3f}")
            if rmse < ENCODER_STOP_RMSE:
                break
        if bar is not None:
            bar.close()
        model.p_logits.requires_grad_(True)
        return epoch_logliks

    # ---------------------------------------------------------------------------------------------- results
    def result(self, settings: dict | None = None):
        """The fit as an :class:`genoae.io.results.AdmixtureResult` (for PREFIX.h5)."""
        from genoae.io.results import AdmixtureResult

        merged = {**self.get_params(), "populations": self.populations_, "em_iterations": self.report_.em_iterations,
                  "encoder_loglik": self.report_.network_loglik, **(settings or {})}
        return AdmixtureResult(Q=self.Q_, P=self.P_, loglik=self.loglik_, loglik_trace=self.loglik_trace_,
                               cv_error=getattr(self, "cv_error_", float("nan")), settings=merged)

    # ---------------------------------------------------------------------------------------------- CV
    def cross_validate(self, genotypes: Genotypes, folds: int = 5, calls: CallMatrix | None = None,
                       populations: np.ndarray | None = None) -> float:
        """ADMIXTURE's cross-validation error (Alexander & Lange 2011), after :meth:`fit`.

        The observed calls are split at random into ``folds`` parts; for each, those calls are masked, Q and P are
        re-estimated from the full-data fit by accelerated EM, and the held-out calls are scored by the binomial
        deviance d = g log(g / μ) + (2 − g) log((2 − g) / (2 − μ)), μ = 2 (Q Pᵀ)_ij.  The CV error is the
        mean deviance over all held-out calls.  Sets and returns ``cv_error_``.
        """
        device = self.device_
        if calls is None:
            calls = CallMatrix.from_genotypes(genotypes, device)
        rng = np.random.default_rng([self.seed, 7919])
        observed = (calls.codes != MISSING_CODE).cpu().numpy()
        fold_of = np.full(observed.shape, -1, np.int8)
        fold_of[observed] = rng.integers(0, folds, size=int(observed.sum()))
        fixed_rows = None
        if populations is not None:
            labels, _ = _population_labels(populations, self.K, calls.n_samples)
            fixed_rows = torch.from_numpy(labels >= 0).to(device)
        dtype = _refinement_dtype(self.precision, calls.n_samples * calls.n_variants)
        total_deviance, total_n = 0.0, 0
        bar = _progress(self.progress, folds, f"K={self.K} CV")
        for fold in range(folds):
            held = torch.from_numpy(fold_of == fold).to(device)
            training = calls.with_missing(held)
            held_calls = calls.with_missing(~held)
            Q, P, _ = squarem(training, torch.from_numpy(self.Q_).to(device, dtype),
                              torch.from_numpy(self.P_).to(device, dtype), tol=self.tol, max_iter=self.max_iter,
                              q_fixed_rows=fixed_rows)
            deviance, n_held = calls.deviance(held_calls, Q, P)
            total_deviance += deviance
            total_n += n_held
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        self.cv_error_ = total_deviance / max(total_n, 1)
        return self.cv_error_


# ============================================================================================== projection


def project(model: NeuralAdmixture, genotypes: Genotypes, tol: float = 5e-9, max_iter: int = 1000,
            device: str = "auto", batch_size: int = 256, progress: bool = False):
    """Q of new individuals under a trained model: encoder forward pass, then EM on Q with P fixed.

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
    calls = CallMatrix.from_genotypes(genotypes, device)
    unpacker = _unpacker(genotypes, device)
    with torch.no_grad():
        Q_encoder = encode_all(model, unpacker, genotypes.n_samples, batch_size).to(torch.float64)
        P = model.P.to(torch.float64)
    Q_start = project_simplex_rows(Q_encoder)
    Q, _, _ = squarem(calls, Q_start, P, tol=tol, max_iter=max_iter, update_p=False)
    return Q.cpu().numpy(), calls.loglik(Q, P), Q_encoder.cpu().numpy()


# ============================================================================================== helpers


def check_k(K: int, n_samples: int) -> None:
    """Refuse K < 1 or K ≥ the number of individuals (each cluster needs individuals to be estimated)."""
    if K < 1:
        raise UsageError(f"K must be at least 1 (got {K})")
    if K >= n_samples:
        raise UsageError(f"K={K} is not smaller than the number of individuals ({n_samples}): "
                         "ancestry proportions cannot be estimated")


def initialise_encoder(model: NeuralAdmixture, calls: CallMatrix, Q_refined: torch.Tensor):
    """Set the encoder from the refined P and Q in closed form (one pass over the data), instead of Adam epochs.

    With h = Q Pᵀ, an individual's input x = g/2 − freq has expectation C q with C = P − freq (n_variants, K),
    because q sums to 1.  The first layer computes the least-squares q̂ = (CᵀC + λ 11ᵀ)⁻¹ (Cᵀ x + λ 1) (the
    λ row imposes Σq = 1, where C alone is rank-deficient), repeated over several hidden units per component with
    staggered thresholds, so that the GELUs form a piecewise-linear basis in each q̂_k; the output layer is then
    fitted to the refined Q by full-batch softmax regression on those n × hidden features.  Mini-batch Adam
    epochs from the default random start needed ~30 s and still missed Q by RMSE 0.25 at 1,500 × 100,000.

    Parameters
    ----------
    Q_refined : torch.Tensor, float32, (n, K)  the target Q, on the model's device

    Returns
    -------
    rmse : float  RMSE between the encoder's Q and ``Q_refined`` (nan when hidden < K: the encoder is left as is)
    Q : torch.Tensor, float32, (n, K)  the encoder's Q of every individual (None when hidden < K)
    """
    K, hidden, n = model.K, model.hidden, calls.n_samples
    units = hidden // K
    if units < 1:
        return float("nan"), None
    first, output = model.encoder[0], model.encoder[2]
    device = first.weight.device
    C = (model.P.detach().double() - model.input_freq.double()[:, None])  # (m, K)
    gram = C.T @ C
    lam = float(torch.trace(gram)) / K + 1e-12
    ones = torch.ones(K, dtype=torch.float64, device=device)
    solve = torch.linalg.inv(gram + lam * torch.outer(ones, ones))
    weight_q = (solve @ C.T).float()            # (K, m): q̂ = weight_q x + bias_q
    bias_q = (solve @ (lam * ones)).float()     # (K,)
    thresholds = torch.linspace(-0.1, 1.1, units, device=device) if units > 1 else torch.zeros(1, device=device)
    spacing = 1.2 / max(units - 1, 1)
    slope = 2.0 / spacing                       # a GELU's bend spans ~±2 of its argument: one knot interval
    with torch.no_grad():
        first.weight.zero_()
        first.bias.zero_()
        for k in range(K):
            rows = slice(k * units, (k + 1) * units)
            first.weight[rows] = slope * weight_q[k]
            first.bias[rows] = slope * (bias_q[k] - thresholds)
        # hidden features of every individual: one pass over the SNP-major calls the EM used (the same x as
        # encode() builds from the unpacked genotypes, without building the sample-major unpacker)
        pre = first.bias.expand(n, hidden).clone()
        for cols, g, r in calls.blocks(torch.float32):
            x = torch.where((g + r) > 0, g / 2.0 - model.input_freq[cols, None], torch.zeros((), device=device))
            pre += x.T @ first.weight[:, cols].T
        features = model.encoder[1](pre)
    # softmax regression of the refined Q on the features (tiny: n × hidden), standardised for conditioning
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    z = (features - mean) / std
    target = Q_refined.float().to(device)
    log_target = torch.log(target.clamp_min(1e-8))
    W = torch.zeros((K, hidden), device=device, requires_grad=True)
    b = torch.zeros(K, device=device, requires_grad=True)
    optimiser = torch.optim.LBFGS([W, b], lr=1.0, max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-12,
                                  history_size=20, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        log_q = torch.log_softmax(z @ W.T + b, dim=1)
        loss = (target * (log_target - log_q)).sum(1).mean() + 1e-6 * (W ** 2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        output.weight.copy_(W / std)
        output.bias.copy_(b - (W / std) @ mean)
        Q = torch.softmax(features @ output.weight.T + output.bias, dim=1)
    return float(torch.sqrt(((Q - target) ** 2).mean())), Q


def encode_all(model: NeuralAdmixture, unpacker: DeviceUnpacker, n: int, batch_size: int) -> torch.Tensor:
    """The encoder's Q for every individual, in order, float32 (n, K)."""
    rows = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            counts, observed = unpacker.unpack(np.arange(start, min(start + batch_size, n)))
            rows.append(model.encode(counts, observed))
    return torch.cat(rows)


def _unpacker(genotypes: Genotypes, device) -> DeviceUnpacker:
    """A DeviceUnpacker built a few hundred individuals at a time: its repacking makes an 8-byte index per call of
    each chunk, so its default chunk (8,192 individuals) peaked at 1.2 GB extra at 1,500 × 100,000."""
    chunk = max(64, (1 << 25) // max(genotypes.n_variants, 1))
    return DeviceUnpacker(genotypes, device, chunk=chunk)


def _population_labels(populations, K: int, n: int):
    populations = np.asarray(populations, dtype=str)
    if len(populations) != n:
        raise UsageError(f"{len(populations)} population labels for {n} individuals")
    names = sorted(set(populations[populations != ""]))
    if len(names) != K:
        raise UsageError(f"supervised mode needs K equal to the number of populations in the .pop file "
                         f"({len(names)}: {', '.join(names)}), got K={K}")
    lookup = {name: k for k, name in enumerate(names)}
    labels = np.array([lookup.get(p, -1) for p in populations], np.int64)
    return labels, names


def _refinement_dtype(precision: str, n_calls: int) -> torch.dtype:
    if precision == "auto":
        return torch.float64 if n_calls <= 20_000_000 else torch.float32
    if precision not in ("float32", "float64"):
        raise UsageError(f"precision must be auto, float32 or float64 (got {precision!r})")
    return getattr(torch, precision)


def _progress(enabled: bool, total: int, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, unit="it")


def _bar_callback(bar):
    if bar is None:
        return None

    def callback(iteration, loglik):
        bar.update(iteration - bar.n)
        bar.set_postfix_str(f"ℓ={loglik:,.2f}")

    return callback


# ============================================================================================== commands
# One library function per CLI command: they read, fit, write every output file and return what they wrote.


def parse_k(text) -> list[int]:
    """``"3"`` → [3];  ``"2-8"`` → [2, …, 8];  ``"2,4,6"`` → [2, 4, 6]."""
    values = []
    try:
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                if high < low:
                    raise ValueError
                values.extend(range(low, high + 1))
            else:
                values.append(int(part))
    except ValueError:
        raise UsageError(f"-k {text!r}: expected a number (3), a range (2-8) or a list (2,4,6)") from None
    return sorted(set(values))


@dataclass
class AdmixRun:
    """What :func:`run_admix` produced."""

    results: dict
    files: list
    log_path: object
    estimators: dict


def run_admix(input_path, ks, prefix=None, seed: int = 42, device: str = "auto", threads: int | None = None,
              epochs: int = 5, batch_size: int = 256, tol: float = 1e-6, max_iter: int = 1000, hidden: int = 64,
              cv: int = 0, supervised=None, precision: str = "auto", progress: bool = True, echo=print) -> AdmixRun:
    """``genoae admix``: fit every K, write PREFIX.K.Q / PREFIX.K.P / PREFIX.K.model.pt+json, PREFIX.h5, PREFIX.log.

    Parameters
    ----------
    input_path : str or Path
        Any genotype file :func:`genoae.io.read_genotypes` reads.
    ks : int, str or list of int
        K, or ``"2-8"``.
    prefix : str or Path, optional
        Output prefix; default: the input's name without extension, in the current folder.
    supervised : str or Path, optional
        ADMIXTURE ``.pop`` file (supervised mode).
    echo : callable(str)
        Where the per-K summary lines go (the CLI passes click.echo).
    """
    from pathlib import Path

    from genoae.io import read_genotypes
    from genoae.io.model import save_model
    from genoae.io.qp import read_pop, write_p, write_q
    from genoae.io.results import write_results_h5

    ks = parse_k(ks) if not isinstance(ks, (list, tuple)) else sorted(set(int(k) for k in ks))
    genotypes = read_genotypes(input_path)
    if prefix is None:
        name = Path(input_path).name
        for suffix in (".bed", ".bim", ".fam", ".vcf.gz", ".vcf", ".h5", ".npy"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        prefix = name
    prefix = str(prefix)
    for K in ks:
        check_k(K, genotypes.n_samples)
    populations = None
    if supervised is not None:
        populations = read_pop(supervised, genotypes.n_samples)
    set_threads(threads)
    torch_device = choose_device(device)
    calls = CallMatrix.from_genotypes(genotypes, torch_device)

    results, estimators, files = {}, {}, []
    log_lines = [f"# genoae admix {genotypes.source}",
                 f"# {genotypes.n_samples} individuals x {genotypes.n_variants} variants, device {torch_device}",
                 f"# allele convention: {ALLELE_CONVENTION}; P = A2 frequency",
                 f"# loglik: sum over observed calls of g log h + (2-g) log(1-h), natural log (ADMIXTURE's scale)"]
    for K in ks:
        tick = time.perf_counter()
        estimator = Admixture(K, hidden=hidden, epochs=epochs, batch_size=batch_size, tol=tol, max_iter=max_iter,
                              seed=seed, device=str(torch_device), threads=threads, precision=precision,
                              progress=progress)
        estimator.fit(genotypes, populations=populations, calls=calls)
        if cv:
            estimator.cross_validate(genotypes, cv, calls=calls, populations=populations)
        seconds = time.perf_counter() - tick
        result = estimator.result({"input": str(input_path), "supervised": str(supervised or ""),
                                   "seconds": seconds})
        results[K], estimators[K] = result, estimator
        files.append(write_q(estimator.Q_, f"{prefix}.{K}.Q"))
        files.append(write_p(estimator.P_, f"{prefix}.{K}.P"))
        files.extend(save_model(f"{prefix}.{K}.model.pt", estimator.model_, genotypes.variants,
                                estimator.populations_, result.settings, estimator.loglik_))
        report = estimator.report_
        line = (f"K={K}\tloglik={estimator.loglik_:.6f}\tem_iterations={report.em_iterations}\t"
                f"seconds={seconds:.1f}")
        if cv:
            line += f"\tCV error (K={K}): {estimator.cv_error_:.5f}"
        echo(line)
        log_lines += [line,
                      f"#   PCA/k-means start: loglik {report.init_loglik:.3f}; EM refinement: {report.em_iterations} "
                      f"SQUAREM iterations; encoder (closed-form start: Q RMSE {report.encoder_start_rmse:.4f} from the "
                      f"refined Q; then {len(report.epoch_logliks)} epochs: RMSE {report.encoder_rmse:.4f}): loglik "
                      f"{report.network_loglik:.3f} (its Q alone, before any EM)",
                      f"#   seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in report.seconds.items())]
        if estimator.populations_:
            log_lines.append("#   supervised: Q columns = " + " ".join(estimator.populations_))
    files.append(write_results_h5(f"{prefix}.h5", list(results.values()), genotypes.samples, genotypes.variants,
                                  source=genotypes.source))
    from genoae.io.atomic import atomic_open

    log_path = Path(f"{prefix}.log")
    with atomic_open(log_path, "w") as handle:
        handle.write("\n".join(log_lines) + "\n")
    files.append(log_path)
    return AdmixRun(results, files, log_path, estimators)


def run_project(input_path, model_path, prefix, device: str = "auto", threads: int | None = None,
                tol: float = 5e-9, echo=print):
    """``genoae project``: Q for new individuals under a trained model; writes PREFIX.K.Q and PREFIX.log.

    Returns
    -------
    Q : ndarray (n_samples, K);  loglik : float;  report : genoae.io.model.AlignmentReport
    """
    from pathlib import Path

    from genoae.io import read_genotypes
    from genoae.io.atomic import atomic_open
    from genoae.io.model import align_to_model, load_model
    from genoae.io.qp import write_q

    set_threads(threads)
    model, metadata = load_model(model_path)
    genotypes = read_genotypes(input_path)
    aligned, report = align_to_model(genotypes, metadata["variants"])
    echo(str(report))
    if report.matched == 0:
        raise InputError(input_path, "no variant of the data matches the model's variants")
    Q, loglik, _ = project(model, aligned, tol=tol, device=device)
    K = metadata["K"]
    q_path = write_q(Q, f"{prefix}.{K}.Q")
    with atomic_open(Path(f"{prefix}.log"), "w") as handle:
        handle.write(f"# genoae project {input_path} --model {model_path}\n# {report}\n"
                     f"# allele convention: {ALLELE_CONVENTION}\n"
                     f"K={K}\tloglik={loglik:.6f}\t(new individuals' observed calls, model P fixed)\n")
    echo(f"K={K}\tloglik={loglik:.6f}\twrote {q_path}")
    return Q, loglik, report


def demo_data_path():
    """The demo data shipped inside the package: 500 individuals × 805 SNPs of 1000 Genomes (PLINK prefix)."""
    from importlib import resources

    return resources.files("genoae") / "data" / "demo_1kg805.bed"


def run_demo(out_dir="genoae_demo", K: int = 5, seed: int = 42, device: str = "auto", threads: int | None = None,
             progress: bool = True, echo=print):
    """``genoae demo``: the main job on the shipped 1000 Genomes subset; a structure plot if ``genoae.plot`` exists."""
    from pathlib import Path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = Path(str(demo_data_path()))
    echo(f"demo data: {data.with_suffix('')} (1000 Genomes phase 3, 500 individuals from 5 super-populations, "
         f"805 ancestry-informative SNPs)")
    run = run_admix(data, [K], prefix=out_dir / "demo", seed=seed, device=device, threads=threads, epochs=20,
                    progress=progress, echo=echo)
    from genoae.io.labels import read_labels

    labels = read_labels(data.with_suffix(".labels.tsv"), column="super_pop")  # rows in .fam order
    Q = run.estimators[K].Q_
    # mean Q per super-population: the demo's one-screen summary
    for name in sorted(set(labels)):
        rows = Q[np.array(labels) == name]
        echo(f"  {name}: mean Q " + " ".join(f"{x:.3f}" for x in rows.mean(axis=0)))
    from genoae.plot import structure_plot

    plot_path = out_dir / f"demo.{K}.structure.png"
    structure_plot([(Q, f"K={K}")], plot_path, labels=np.asarray(labels))
    run.files.append(plot_path)
    echo(f"wrote {len(run.files)} files to {out_dir}/")
    return run
