"""The :class:`Admixture` estimator: start, accelerated block relaxation, encoder fit, cross-validation."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from genoae.ancestry.encoder import EncoderFit, NeuralAdmixture, encode_packed, fit_encoder
from genoae.ancestry.start import initial_estimates
from genoae.device import choose_device, seed_everything, set_threads, to_numpy
from genoae.errors import InputError, UsageError
from genoae.genotypes import Genotypes
from genoae.likelihood import PackedCalls, project_simplex_rows, quasi_newton
from genoae.progress import progress_bar
from genoae.shard import LOCAL, Shard

@dataclass
class FitReport:
    """What happened during a fit, for the log file."""

    init_loglik: float = float("nan")
    network_loglik: float = float("nan")
    encoder_rmse: float = float("nan")        # encoder Q vs refined Q, on the reference individuals
    encoder: EncoderFit = field(default_factory=EncoderFit)  # its fit, measured on held-out synthetic individuals
    reference_size: int = 0                   # reference_fraction runs: the individuals of the first fit
    em_trace: list = field(default_factory=list)
    em_iterations: int = 0
    starts: list = field(default_factory=list)  # per start: (ℓ at the start, ℓ refined, iterations)
    best_start: int = 0                          # the start whose fit is kept (the highest refined ℓ)
    seconds: dict = field(default_factory=dict)


class Refined(NamedTuple):
    """One refinement's end (:meth:`Admixture._refine`)."""

    Q: np.ndarray        # float64
    P: np.ndarray        # float64
    trace: list          # ℓ at each check
    loglik: float        # ℓ at (Q, P)
    iterations: int


class Admixture:
    """ADMIXTURE's model fitted by accelerated block relaxation, plus an encoder network fitted to the result for
    projection (scikit-learn style: hyper-parameters in the constructor, ``fit`` returns self).  Q and P are the
    refinement's; the encoder changes neither.

    Parameters
    ----------
    K : int
        Number of ancestral populations (1 ≤ K < number of individuals).
    tol : float
        Refinement stops when an iteration raises ℓ by less than ``tol`` × (number of observed calls); 1e-9 is
        ≈ 0.0045 on hapmap3 (4.5 million calls) and 0.05 at 1,000 × 50,000 (ADAMIXTURE stops at 0.1; fastmixture's
        default is 1e-9 on this scale, over 5 iterations).
    max_iter : int
        Most quasi-Newton iterations (:func:`genoae.likelihood.quasi_newton`).
    seed : int
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    threads : int, optional
        CPU threads, for torch and for the CPU kernels (default: all CPUs, or NUMBA_NUM_THREADS); the kernels'
        float rounding follows this number.
    precision : str
        ``float64`` or ``float32`` for the refinement's arithmetic (ℓ is always summed in float64); ``auto`` picks
        float64 when the data are small (≤ 2·10⁷ calls) and float32 otherwise, where it is faster and its rounding
        is far below ``tol``.
    progress : bool
        tqdm bars on stderr.
    init : str
        Where the refinement starts: ``als`` (alternating least squares on the truncated SVD, as fastmixture and
        ADAMIXTURE start) or ``kmeans`` (k-means on principal components).
    starts : int
        Refine from this many starts, each drawn afresh (its own randomized SVD and factorisation, or PCA and
        k-means), and keep the fit with the highest ℓ: ADMIXTURE's likelihood has several local maxima on some
        data (hapmap3 at K = 4: ADAMIXTURE reached the highest from 2 of 5 seeds), so users run several seeds;
        this costs ``starts`` starts and refinements.  The first start is a one-start run's; the others take a
        rougher SVD (:data:`genoae.ancestry.start.ROUGH_SVD_ITERATIONS`), so that they spread over the maxima
        (on hapmap3 at K = 4 the settled SVD of the first reaches the same one from every seed).  Unsupervised
        runs with K ≥ 2 (a supervised start is its labels; K = 1 has one maximum, so it takes one start), not
        with ``reference_fraction``.
    reference_fraction : float, optional
        For large N: fit (start, refinement, encoder) on this fraction of the individuals drawn at random, project
        every other individual onto that fit (:func:`genoae.ancestry.projection.project`), and start the
        refinement on all individuals from there.  Unsupervised runs only.

    Attributes
    ----------
    Q_ : ndarray, float64, (n_samples, K)
    P_ : ndarray, float64, (n_variants, K)  A2 frequencies
    loglik_ : float                           final ℓ on ADMIXTURE's scale
    loglik_trace_ : ndarray                   ℓ of the start, then of the point kept at each iteration, then ℓ
                                              of the returned Q, P
    model_ : NeuralAdmixture                  with the refined P in its decoder
    populations_ : list of str                supervised runs: the label of each column of Q
    report_ : FitReport
    """

    def __init__(self, K: int, tol: float = 1e-9, max_iter: int = 1000, seed: int = 42, device: str = "auto",
                 threads: int | None = None, precision: str = "auto", progress: bool = True, init: str = "als",
                 minor_tol: float | None = None, reference_fraction: float | None = None, starts: int = 1):
        self.K = int(K)
        self.starts = int(starts)
        self.reference_fraction = reference_fraction
        self.minor_tol = minor_tol
        self.tol = tol
        self.max_iter = max_iter
        self.seed = seed
        self.device = device
        self.threads = threads
        self.precision = precision
        self.progress = progress
        self.init = init

    def get_params(self) -> dict:
        return {name: getattr(self, name) for name in ("K", "tol",
                                                       "minor_tol", "max_iter", "seed", "device", "threads",
                                                       "precision", "init", "reference_fraction", "starts")}

    # ---------------------------------------------------------------------------------------------- fit
    def check(self, genotypes: Genotypes, populations: np.ndarray | None = None):
        """Refuse what :meth:`fit` cannot do with these inputs (K against the individuals and the supervised
        labels, the precision) before any work; return the supervised labels as cluster codes (−1 unlabelled, or
        None) and the population of each Q column (``[]`` when unsupervised)."""
        check_k(self.K, genotypes.n_samples)
        _refinement_dtype(self.precision, 0)
        if self.starts < 1:
            raise UsageError(f"--starts {self.starts}: expected at least 1")
        if self.starts > 1 and populations is not None:
            raise UsageError(f"--starts {self.starts}: a supervised run starts from its labels, so every start would "
                             "be the same")
        if self.starts > 1 and self.reference_fraction is not None:
            raise UsageError(f"--starts {self.starts} with --reference-fraction: the refinement on all individuals "
                             "starts from the reference fit; use one of the two")
        if self.reference_fraction is not None:
            if not 0.0 < self.reference_fraction < 1.0:
                raise UsageError(f"reference fraction {self.reference_fraction}: expected a number between 0 and 1")
            if populations is not None:
                raise UsageError("--reference-fraction is for unsupervised runs: a supervised run starts from its "
                                 "labels")
            if self._reference_size(genotypes.n_samples) <= self.K:
                raise UsageError(f"reference fraction {self.reference_fraction} of {genotypes.n_samples} individuals "
                                 f"is {self._reference_size(genotypes.n_samples)}: K={self.K} needs more than K")
        if populations is None:
            return None, []
        return _population_labels(populations, self.K, genotypes.n_samples)

    def fit(self, genotypes: Genotypes, populations: np.ndarray | None = None,
            calls: PackedCalls | None = None, shard: Shard = LOCAL) -> "Admixture":
        """Estimate Q and P for ``genotypes``.

        Parameters
        ----------
        populations : ndarray, str, shape (n_samples,), optional
            Supervised mode (ADMIXTURE's ``.pop``): a label per individual, ``""`` when unknown.  Labelled
            individuals keep Q = their population; K must equal the number of distinct labels, and the columns of
            Q follow the labels in sorted order (``populations_``).
        calls : PackedCalls, optional
            The calls already decoded on the device (lets several K share one decoding); their ``shard`` is used.
        shard : Shard
            SNP-sharded runs (:mod:`genoae.ancestry.distributed`): ``genotypes`` holds this rank's variants; Q is
            then the same on every rank and equals the one-process fit up to float rounding, while ``P_`` and the
            model hold this rank's variants (:func:`genoae.ancestry.distributed.gather_fit` makes them whole).
        """
        n, m = genotypes.n_samples, genotypes.n_variants
        labels, self.populations_ = self.check(genotypes, populations)
        set_threads(self.threads)
        rng = seed_everything(self.seed)
        report = FitReport()
        tick = time.perf_counter()
        if calls is None:
            calls = PackedCalls.from_genotypes(genotypes, choose_device(self.device), shard=shard)
        self.shard_ = shard = calls.shard
        m_all = shard.total(m)
        check_observed(to_numpy(calls.n_observed), genotypes)
        device = calls.device
        dtype = _refinement_dtype(self.precision, n * m_all)
        fixed_rows = None if labels is None else calls.asarray(labels >= 0)

        # 1. and 2. each start (its own SVD or PCA and factorisation; the first is a one-start run's), refined to
        # the maximum likelihood by block relaxation (Newton steps per row, CPU; EM on CUDA) accelerated by
        # quasi-Newton extrapolation; the highest ℓ is kept, one start and the best fit in memory at a time
        freqs = genotypes.allele_freqs()
        n_starts = self.starts if self.K > 1 else 1
        best, best_index = None, 0
        for index in range(n_starts):
            if self.reference_fraction is not None:
                Q0, P0 = self._reference_start(genotypes, rng, report, device, shard)
            else:
                Q0, P0 = initial_estimates(calls, freqs, self.K, rng, labels, method=self.init, rough=index > 0)
            report.seconds["init"] = report.seconds.get("init", 0.0) + time.perf_counter() - tick
            tick = time.perf_counter()
            fit = self._refine(calls, Q0, P0, dtype, fixed_rows, index, n_starts)
            del Q0, P0
            report.seconds["refinement"] = report.seconds.get("refinement", 0.0) + time.perf_counter() - tick
            tick = time.perf_counter()
            start_loglik = fit.trace[0]  # ℓ at the start, from the refinement's first pass
            report.starts.append((start_loglik, fit.loglik, fit.iterations))
            if best is None or fit.loglik > best.loglik:  # a NaN ℓ never replaces a fit
                best, best_index, report.init_loglik = fit, index, start_loglik
            fit = None  # a fit not kept is freed before the next start is drawn
        Q, P = best.Q, best.P
        report.best_start, report.em_trace, report.em_iterations = best_index, best.trace, best.iterations

        # 3. the network: the decoder holds the refined P; the encoder, set from it in closed form, gives new
        # individuals their starting Q in genoae project; it changes neither Q nor P
        tick = time.perf_counter()
        model = NeuralAdmixture(m, self.K)
        model.input_freq = np.nan_to_num(freqs, nan=0.5).astype(np.float32)
        model.set_P(P)
        missing_rates = 1.0 - to_numpy(calls.n_observed) / max(m_all, 1)
        report.encoder = fit_encoder(model, Q, missing_rates, rng, shard, device)
        Q_net = project_simplex_rows(encode_packed(model, calls))
        report.encoder_rmse = float(np.sqrt(((Q_net - Q) ** 2).mean()))
        report.network_loglik = calls.loglik(Q_net, P)
        report.seconds["network"] = time.perf_counter() - tick

        self.model_ = model
        self.Q_ = Q
        self.P_ = P
        self.loglik_ = best.loglik
        self.loglik_trace_ = np.array(list(best.trace) + [self.loglik_])
        self.report_ = report
        self.device_ = device
        return self

    def _refine(self, calls: PackedCalls, Q0, P0, dtype, fixed_rows, index: int, n_starts: int) -> Refined:
        """One refinement from (Q0, P0), start ``index`` of ``n_starts`` (for the progress bar)."""
        what = f"K={self.K} refinement" + (f", start {index + 1} of {n_starts}" if n_starts > 1 else "")
        bar = progress_bar(self.max_iter, what, enabled=self.progress)
        last_iteration = [0]

        def on_check(iteration, loglik):
            bar.update(iteration - last_iteration[0])
            bar.set_postfix_str(f"ℓ={loglik:,.2f}")
            last_iteration[0] = iteration

        Q, P, trace = quasi_newton(calls, calls.asarray(Q0, dtype), calls.asarray(P0, dtype), tol=self.tol,
                                   max_iter=self.max_iter, q_fixed_rows=fixed_rows, callback=on_check)
        bar.close()
        Q, P = to_numpy(Q).astype(np.float64), to_numpy(P).astype(np.float64)
        return Refined(Q, P, trace, calls.loglik(Q, P), last_iteration[0])

    def _reference_size(self, n: int) -> int:
        return int(round(self.reference_fraction * n))

    def _reference_start(self, genotypes: Genotypes, rng: np.random.Generator, report: FitReport, device,
                         shard: Shard = LOCAL):
        """Q and P to start the full refinement from: a fit on a random subset of the individuals, and every
        other individual projected onto it (the subset's packed calls are copied: reference_fraction × the packed
        bytes)."""
        from genoae.ancestry.projection import project

        tick = time.perf_counter()
        n = genotypes.n_samples
        subset = np.sort(rng.choice(n, self._reference_size(n), replace=False))
        params = {**self.get_params(), "reference_fraction": None, "seed": int(rng.integers(1 << 31))}
        reference = Admixture(**params, progress=self.progress).fit(genotypes.subset(samples=subset), shard=shard)
        report.seconds["reference fit"] = time.perf_counter() - tick
        tick = time.perf_counter()
        # every individual through the reference's encoder and refinement with its P fixed, in chunks straight
        # from the packed calls (the reference individuals keep their fitted Q)
        projection = project(reference.model_, genotypes, device=str(device), progress=self.progress, shard=shard)
        Q = projection.Q
        Q[subset] = reference.Q_
        report.seconds["projection"] = time.perf_counter() - tick
        report.reference_size = len(subset)
        return project_simplex_rows(np.nan_to_num(Q, nan=1.0 / self.K)), reference.P_

    # ---------------------------------------------------------------------------------------------- CV
    def cross_validate(self, genotypes: Genotypes, folds: int = 5, calls: PackedCalls | None = None,
                       populations: np.ndarray | None = None) -> float:
        """ADMIXTURE's cross-validation error (Alexander & Lange 2011), after :meth:`fit`.

        The observed calls are split at random into ``folds`` parts; for each, those calls are masked, Q and P are
        re-estimated from the full-data fit by the same accelerated block relaxation, and the held-out calls are
        scored by the binomial deviance d = g log(g / μ) + (2 − g) log((2 − g) / (2 − μ)), μ = 2 (Q Pᵀ)_ij.  The CV
        error is the mean deviance over all held-out calls.  A call's fold is a hash of (seed, SNP, individual)
        (:func:`genoae.kernels.fold_of`): no mask of the calls is built.  Sets and returns ``cv_error_``.
        """
        device = self.device_
        if calls is None:
            calls = PackedCalls.from_genotypes(genotypes, device, shard=self.shard_)
        # each observed call's fold is a hash of (seed, SNP, individual): no N × M mask is ever built
        fold_seed = int(np.random.default_rng([self.seed, 7919]).integers(1 << 62))
        fixed_rows = None
        if populations is not None:
            labels, _ = _population_labels(populations, self.K, calls.n_samples)
            fixed_rows = calls.asarray(labels >= 0)
        dtype = _refinement_dtype(self.precision, calls.n_samples * calls.shard.total(calls.n_variants))
        total_deviance, total_n = 0.0, 0
        bar = progress_bar(folds, f"K={self.K} CV", unit="fold", enabled=self.progress)
        for fold in range(folds):
            training = calls.training(folds, fold, fold_seed)
            Q, P, _ = quasi_newton(training, calls.asarray(self.Q_, dtype), calls.asarray(self.P_, dtype),
                                   tol=self.minor_tol or self.tol,
                                   max_iter=self.max_iter, q_fixed_rows=fixed_rows)
            deviance, n_held = calls.deviance(Q, P, folds, fold, fold_seed)
            total_deviance += deviance
            total_n += n_held
            bar.update(1)
        bar.close()
        self.cv_error_ = total_deviance / max(total_n, 1)
        return self.cv_error_

    def bootstrap(self, genotypes: Genotypes, replicates: int = 200, populations: np.ndarray | None = None,
                  block_length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """ADMIXTURE's ``-B``: standard errors and bias of Q by a moving-block bootstrap over SNPs, after :meth:`fit`.

        Each replicate draws blocks of ``block_length`` consecutive SNPs (default M^(1/3), rounded) with
        replacement until it has M SNPs, and refines Q and P on them from the full-data fit (P rows follow their
        SNPs), with the CV folds' tolerance (``minor_tol``, ADMIXTURE's ``-c``): a replicate costs a few
        iterations, not a fit.  Only the replicate's packed rows are copied (N·M/4 bytes), one replicate at a time.

        Returns
        -------
        Q_se : ndarray (n_samples, K)    standard deviation of Q over the replicates (``Q_se_``)
        Q_bias : ndarray (n_samples, K)  mean replicate Q minus the fitted Q (``Q_bias_``)
        """
        if replicates < 2:
            raise UsageError(f"-B {replicates}: a standard error needs at least 2 bootstrap replicates")
        device = self.device_
        shard = self.shard_
        n_variants = shard.total(genotypes.n_variants)  # blocks are drawn over all variants, on every rank alike
        first = shard.start if shard.sharded else 0
        length = block_length or max(1, int(round(n_variants ** (1 / 3))))
        length = min(length, n_variants)
        rng = np.random.default_rng([self.seed, 104729])
        fixed_rows = None
        if populations is not None:
            labels, _ = _population_labels(populations, self.K, genotypes.n_samples)
            fixed_rows = labels >= 0
        dtype = _refinement_dtype(self.precision, genotypes.n_samples * n_variants)
        total = np.zeros_like(self.Q_)
        squares = np.zeros_like(self.Q_)
        bar = progress_bar(replicates, f"K={self.K} bootstrap", unit="replicate", enabled=self.progress)
        for _ in range(replicates):
            starts = rng.integers(0, n_variants - length + 1, -(-n_variants // length))
            rows = (starts[:, None] + np.arange(length)).ravel()[:n_variants]
            rows.sort()  # the calls' order does not change the likelihood; sorted rows read the .bed forward
            # sharded: this rank's draws (a contiguous run of the sorted rows, in rank order)
            low, high = np.searchsorted(rows, [first, first + genotypes.n_variants])
            mine = rows[low:high] - first
            sample = Genotypes(np.asarray(genotypes.packed[mine]), genotypes.samples, genotypes.variants.subset(mine))
            calls = PackedCalls.from_genotypes(sample, device, shard=replace(shard, start=int(low), stop=int(high))
                                               if shard.sharded else shard)
            Q, _, _ = quasi_newton(calls, calls.asarray(self.Q_, dtype), calls.asarray(self.P_[mine], dtype),
                                   tol=self.minor_tol or self.tol, max_iter=self.max_iter, q_fixed_rows=fixed_rows)
            Q = to_numpy(Q).astype(np.float64)
            total += Q
            squares += Q * Q
            bar.update(1)
        bar.close()
        mean = total / replicates
        variance = np.maximum(squares - replicates * mean * mean, 0.0) / (replicates - 1)
        self.Q_se_, self.Q_bias_ = np.sqrt(variance), mean - self.Q_
        return self.Q_se_, self.Q_bias_


def check_k(K: int, n_samples: int) -> None:
    """Refuse K < 1 or K ≥ the number of individuals (each cluster needs individuals to be estimated)."""
    if K < 1:
        raise UsageError(f"K must be at least 1 (got {K})")
    if K >= n_samples:
        raise UsageError(f"K={K} is not smaller than the number of individuals ({n_samples}): "
                         "ancestry proportions cannot be estimated")


def check_observed(n_observed: np.ndarray, genotypes: Genotypes) -> None:
    """Refuse individuals without a single observed call: the likelihood does not depend on their Q, so any Q
    written for them would be an artefact of the start, not an estimate."""
    empty = np.flatnonzero(np.asarray(n_observed) == 0)
    if empty.size:
        names = ", ".join(str(genotypes.samples.iid[i]) for i in empty[:5]) + (" ..." if empty.size > 5 else "")
        raise InputError(genotypes.source or None,
                         f"{empty.size} individual(s) have no observed call ({names}; first at sample "
                         f"{empty[0] + 1}): their ancestry cannot be estimated; remove them first (e.g. "
                         f"plink2 --mind 0.99 --make-bed)")


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


def _refinement_dtype(precision: str, n_calls: int) -> str:
    if precision == "auto":
        return "float64" if n_calls <= 20_000_000 else "float32"
    if precision not in ("float32", "float64"):
        raise UsageError(f"precision must be auto, float32 or float64 (got {precision!r})")
    return precision
