"""Compare ancestry runs: read them whatever program wrote them, align their clusters, score them on one scale.

Runs come from ADMIXTURE (``PREFIX.K.Q``/``.P``), fastmixture (``PREFIX.K{K}.s{seed}.Q``/``.P``), Neural ADMIXTURE
(``PREFIX.K.Q``/``.P`` written with full precision) or genoae (``.Q``/``.P`` or ``PREFIX.h5``).  Their P files count
different alleles:

===================  ==============  =========================================================================
source               P counts        why
===================  ==============  =========================================================================
admixture            A2 (.bim col 6) ADMIXTURE's own convention; reproduces its logged likelihood exactly
genoae               A2              genoae follows ADMIXTURE (``genoae.genotypes.ALLELE_CONVENTION``)
fastmixture          A1 (.bim col 5) its .bed decoder maps code 00 (homozygous A1) to 2 copies
neural-admixture     A1              documented in ../shared/data/README.md and its own likelihood code
===================  ==============  =========================================================================

Every P is converted to A2 frequencies on reading, and the orientation is checked against the genotypes: the
likelihood with P and with 1 − P are both computed, and when the other one fits far better the run carries a
warning (a wrong ``--p-convention`` or a mislabelled source).

Cluster labels are arbitrary in every program, so runs are aligned before they are compared: Hungarian matching
(``scipy.optimize.linear_sum_assignment``) of Q columns within a K, and across K the chain K → K+1 used by pong
and CLUMPP, so one ancestry keeps one column (one colour) in every K.

All likelihoods go through :func:`genoae.likelihood.loglik`, on ADMIXTURE's scale (natural log, summed over
observed calls), so a number here can be set beside the ``Loglikelihood:`` line of an ADMIXTURE log.
"""
from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from genoae.errors import InputError, UsageError
from genoae.io.atomic import atomic_open
from genoae.io.labels import read_labels

SOURCES = ("admixture", "fastmixture", "neural-admixture", "genoae")
P_CONVENTIONS = ("A1", "A2")
DEFAULT_P_ALLELE = {"admixture": "A2", "genoae": "A2", "fastmixture": "A1", "neural-admixture": "A1"}

# P orientation is called wrong when the flipped P is better by more than this fraction of |ℓ|.  On real data
# the two differ by tens of percent (hapmap3 K=3: 3.8e6 vs 7.5e6); a correct P never loses by 0.1 %.
ORIENTATION_REL_MARGIN = 1e-3

_FASTMIXTURE_NAME = re.compile(r"^(?P<prefix>.+)\.K(?P<K>\d+)(?:\.s(?P<seed>\d+))?\.Q$")
_ADMIXTURE_NAME = re.compile(r"^(?P<prefix>.+)\.(?P<K>\d+)\.Q$")


class OrientationWarning(UserWarning):
    """The P file fits the genotypes far better read the other way round (A1 vs A2)."""


# ====================================================================== runs
@dataclass
class Run:
    """One ancestry estimate for one K, in genoae's conventions.

    Attributes
    ----------
    name : str                   label used in tables and plots (``hapmap3.3``, ``run.h5:K3``)
    source : str                 one of :data:`SOURCES`
    Q : ndarray, float64, shape (n_samples, K)
        As read, columns in the file's order.
    P : ndarray, float64, shape (n_variants, K) or None
        **A2** allele frequencies (converted if the file held A1), columns in the file's order.
    p_allele : str               allele the P *file* counted ("A1" or "A2"), as assumed when reading
    q_path, p_path : str
    order : ndarray, int, shape (K,)
        Column permutation from alignment: aligned column ``c`` is file column ``order[c]``.
    samples : ndarray of str or None    individual IDs, when the source stores them (.h5)
    """

    name: str
    source: str
    Q: np.ndarray
    P: np.ndarray | None = None
    p_allele: str = "A2"
    q_path: str = ""
    p_path: str = ""
    samples: np.ndarray | None = None
    order: np.ndarray | None = None
    auto_orientation: bool = False
    notes: list = field(default_factory=list)

    @property
    def K(self) -> int:
        return int(self.Q.shape[1])

    @property
    def Q_aligned(self) -> np.ndarray:
        return self.Q if self.order is None else self.Q[:, self.order]

    @property
    def P_aligned(self) -> np.ndarray | None:
        if self.P is None:
            return None
        return self.P if self.order is None else self.P[:, self.order]


def detect_source(path) -> str:
    """Guess which program wrote a run from its file name (and, for ``PREFIX.K.Q``, its number format).

    ``.h5`` → genoae; ``PREFIX.K{K}[.s{seed}].Q`` → fastmixture; ``PREFIX.K.Q`` written in scientific notation
    (NumPy's default ``savetxt``) → neural-admixture; other ``PREFIX.K.Q`` → admixture (genoae's text files share
    ADMIXTURE's format and convention, so the distinction does not matter).
    """
    path = Path(path)
    name = path.name
    if name.lower().endswith((".h5", ".hdf5")):
        return "genoae"
    if _FASTMIXTURE_NAME.match(name):
        return "fastmixture"
    if path.exists():
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
        if re.search(r"\d[eE][+-]\d", first):
            return "neural-admixture"
    return "admixture"


def _check_source(source: str | None) -> str | None:
    if source is None:
        return None
    source = source.lower().replace("_", "-")
    if source == "neural":
        source = "neural-admixture"
    if source not in SOURCES:
        raise UsageError(f"unknown source {source!r}: expected one of {', '.join(SOURCES)}")
    return source


def _check_convention(p_convention: str | None) -> str | None:
    if p_convention is None:
        return None
    value = p_convention.upper()
    if value not in P_CONVENTIONS + ("AUTO",):
        raise UsageError(f"unknown P convention {p_convention!r}: expected A1, A2 or auto")
    return value


def _p_beside(q_path: Path) -> Path | None:
    candidate = q_path.with_name(q_path.name[:-2] + ".P") if q_path.name.endswith(".Q") else None
    return candidate if candidate is not None and candidate.exists() else None


def _orient_p(P: np.ndarray, p_allele: str) -> np.ndarray:
    """P as A2 frequencies."""
    return 1.0 - P if p_allele == "A1" else P


def _read_text_run(q_path: Path, source: str | None, p_convention: str | None) -> Run:
    from genoae.io.qp import read_p, read_q

    source = _check_source(source) or detect_source(q_path)
    Q = read_q(q_path)
    p_path = _p_beside(q_path)
    P = None
    p_allele = DEFAULT_P_ALLELE[source] if p_convention in (None, "AUTO") else p_convention
    notes = []
    if p_path is not None:
        P = read_p(p_path)
        if P.shape[1] != Q.shape[1] and P.shape[0] == Q.shape[1]:
            # some tools save P as K × M
            P = P.T.copy()
            notes.append(f"{p_path.name} is K x M; transposed")
        if P.shape[1] != Q.shape[1]:
            raise InputError(p_path, f"P has {P.shape[1]} columns but {q_path.name} has K = {Q.shape[1]}")
        P = _orient_p(P, p_allele)
    else:
        notes.append("no P file beside the Q file: likelihood and F_ST not computed")
    # "auto" is resolved against the genotypes in check_orientation
    return Run(name=q_path.name[:-2] if q_path.name.endswith(".Q") else q_path.name, source=source, Q=Q, P=P,
               p_allele=p_allele, q_path=str(q_path), p_path="" if p_path is None else str(p_path),
               auto_orientation=p_convention == "AUTO", notes=notes)


def _read_h5_runs(path: Path, ks, p_convention: str | None) -> list[Run]:
    from genoae.io.results import read_results_h5

    results, samples, _ = read_results_h5(path)
    runs = []
    for K in sorted(results):
        if ks and K not in ks:
            continue
        result = results[K]
        file_allele = result.p_allele if p_convention in (None, "AUTO") else p_convention
        run = Run(name=f"{path.stem}.{K}", source="genoae", Q=np.asarray(result.Q, np.float64),
                  P=_orient_p(np.asarray(result.P, np.float64), file_allele), p_allele=file_allele,
                  q_path=f"{path}:K{K}", p_path=f"{path}:K{K}", samples=np.asarray(samples.iid),
                  auto_orientation=p_convention == "AUTO")
        runs.append(run)
    if not runs:
        wanted = f" for K in {sorted(ks)}" if ks else ""
        raise InputError(path, f"no results{wanted} in this file (it has K = {sorted(results)})")
    return runs


def load_runs(spec, source: str | None = None, p_convention: str | None = None, ks=None) -> list[Run]:
    """Read the run(s) that ``spec`` names.

    Parameters
    ----------
    spec : str or Path
        A ``.Q`` file (its ``.P`` is looked for beside it), a genoae ``.h5`` (every K inside), or a prefix: every
        ``PREFIX.K.Q`` / ``PREFIX.K{K}[.s{seed}].Q`` file.
    source : str, optional
        ``admixture``, ``fastmixture``, ``neural-admixture`` or ``genoae``; guessed from the file names when absent.
    p_convention : {"A1", "A2", "auto"}, optional
        Which allele the P file counts; the source's default when absent; ``auto`` picks the orientation that fits
        the genotypes better (resolved in :func:`check_orientation`).
    ks : iterable of int, optional
        Keep only these K.

    Returns
    -------
    list of Run, ordered by K.
    """
    source = _check_source(source)
    p_convention = _check_convention(p_convention)
    ks = set(int(k) for k in ks) if ks else None
    path = Path(spec)
    if path.suffix.lower() in (".h5", ".hdf5"):
        if source not in (None, "genoae"):
            raise UsageError(f"{path}: .h5 results are genoae's; --source {source} does not apply")
        return _read_h5_runs(path, ks, p_convention)
    if path.is_file():
        if path.name.endswith(".P"):
            q_path = path.with_name(path.name[:-2] + ".Q")
            if not q_path.exists():
                raise InputError(path, "a P file was given but no Q file lies beside it")
            path = q_path
        run = _read_text_run(path, source, p_convention)
        if ks and run.K not in ks:
            raise InputError(path, f"this run has K = {run.K}, not one of the K asked for ({sorted(ks)})")
        return [run]
    # a prefix: collect its Q files
    folder = path.parent if str(path.parent) else Path(".")
    stem = path.name
    found = []
    if folder.is_dir():
        for candidate in sorted(folder.iterdir()):
            if not candidate.name.startswith(stem + ".") or not candidate.name.endswith(".Q"):
                continue
            match = _FASTMIXTURE_NAME.match(candidate.name) or _ADMIXTURE_NAME.match(candidate.name)
            if match is None or match.group("prefix") != stem:
                continue
            found.append((int(match.group("K")), candidate))
    if not found:
        raise InputError(path, "no such run: expected a .Q file, a genoae .h5, or a prefix of PREFIX.K.Q files")
    runs = []
    for K, q_path in sorted(found, key=lambda item: (item[0], item[1].name)):
        if ks and K not in ks:
            continue
        runs.append(_read_text_run(q_path, source, p_convention))
    if not runs:
        raise InputError(path, f"no run for K in {sorted(ks)} (found K = {sorted({k for k, _ in found})})")
    return runs


# ====================================================================== likelihood and orientation
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
    import sys

    import torch
    from tqdm import tqdm

    from genoae.likelihood import loglik

    device = torch.device(device)
    for run in runs:
        _check_shapes(run, genotypes)
    scored = [i for i, run in enumerate(runs) if run.P is not None]
    given = {i: 0.0 for i in scored}
    flipped = {i: 0.0 for i in scored}
    if scored:
        tensors = {i: (torch.from_numpy(runs[i].Q).to(device), torch.from_numpy(runs[i].P).to(device))
                   for i in scored}
        if batch_size is None:
            batch_size = int(max(1, min(genotypes.n_samples, max_elements // max(genotypes.n_variants, 1))))
        n_batches = -(-genotypes.n_samples // batch_size)
        batches = genotypes.batches(batch_size=batch_size, device=device, dtype=torch.float64)
        for index, counts, observed in tqdm(batches, total=n_batches, desc="likelihood", unit="batch",
                                            file=sys.stderr, disable=n_batches < 4, leave=False):
            rows = torch.as_tensor(index, device=device)
            for i in scored:
                Q, P = tensors[i]
                given[i] += loglik(counts, observed, Q[rows], P)
                flipped[i] += loglik(counts, observed, Q[rows], 1.0 - P)
    return [Orientation(given[i], flipped[i]) if i in given else None for i in range(len(runs))]


def _check_shapes(run: Run, genotypes) -> None:
    if run.Q.shape[0] != genotypes.n_samples:
        raise InputError(run.q_path, f"Q has {run.Q.shape[0]} rows but the genotypes have {genotypes.n_samples} "
                                     "individuals")
    if run.P is not None and run.P.shape[0] != genotypes.n_variants:
        raise InputError(run.p_path, f"P has {run.P.shape[0]} rows but the genotypes have {genotypes.n_variants} "
                                     "variants")


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


# ====================================================================== alignment
def _column_cost(Q_ref: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Mean squared difference between every column of ``Q_ref`` (rows of the result) and of ``Q``."""
    diff = Q_ref[:, :, None] - Q[:, None, :]
    return (diff ** 2).mean(axis=0)


def align_columns(Q_ref: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Permutation of ``Q``'s columns that best matches ``Q_ref`` (Hungarian matching on squared error).

    Works for ``Q`` with as many or more columns than ``Q_ref`` (the K → K+1 step): the matched columns come
    first, in ``Q_ref``'s order, and the unmatched ones follow, in their own order.

    Parameters
    ----------
    Q_ref : ndarray, float, shape (n_samples, K_ref)
    Q : ndarray, float, shape (n_samples, K), K >= K_ref

    Returns
    -------
    order : ndarray, int64, shape (K,)   ``Q[:, order]`` is aligned to ``Q_ref``.
    """
    Q_ref = np.asarray(Q_ref, np.float64)
    Q = np.asarray(Q, np.float64)
    if Q_ref.shape[0] != Q.shape[0]:
        raise ValueError(f"Q matrices have {Q_ref.shape[0]} and {Q.shape[0]} rows")
    if Q.shape[1] < Q_ref.shape[1]:
        raise ValueError("the reference has more clusters than the run being aligned")
    rows, cols = linear_sum_assignment(_column_cost(Q_ref, Q))
    matched = cols[np.argsort(rows)]
    rest = [c for c in range(Q.shape[1]) if c not in set(matched.tolist())]
    return np.concatenate([matched, np.array(rest, dtype=np.int64)]).astype(np.int64)


def aligned_rmse(Q: np.ndarray, Q_ref: np.ndarray) -> float:
    """RMSE between ``Q`` and ``Q_ref`` (same K) after Hungarian matching of ``Q``'s columns to ``Q_ref``'s."""
    Q = np.asarray(Q, np.float64)
    Q_ref = np.asarray(Q_ref, np.float64)
    return float(np.sqrt(((Q[:, align_columns(Q_ref, Q)] - Q_ref) ** 2).mean()))


def align_runs(runs: list[Run]) -> list[Run]:
    """Give every run a column order so that one ancestry has one column across runs and K.

    Within each K the first run given is the reference and the others are matched to it; across K, the
    reference of each K is matched to the (aligned) reference of the next smaller K present (chain K → K+1,
    as pong and CLUMPP do), so new clusters take the last columns.  Runs are modified in place (``order``).
    """
    by_k: dict[int, list[Run]] = {}
    for run in runs:
        by_k.setdefault(run.K, []).append(run)
    previous = None
    for K in sorted(by_k):
        reference = by_k[K][0]
        if previous is None:
            reference.order = np.arange(K)
        else:
            reference.order = align_columns(previous.Q_aligned, reference.Q)
        for run in by_k[K][1:]:
            run.order = align_columns(reference.Q_aligned, run.Q)
        previous = reference
    return runs


def align_q_series(Qs: list[np.ndarray]) -> list[np.ndarray]:
    """Align a list of Q matrices (any K, e.g. K = 2..5 of one program) by the K → K+1 chain; returns copies."""
    runs = [Run(name=str(i), source="genoae", Q=np.asarray(Q, np.float64)) for i, Q in enumerate(Qs)]
    align_runs(runs)
    return [run.Q_aligned for run in runs]


# ====================================================================== metrics
def jensen_shannon(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Jensen–Shannon divergence (base 2, so in [0, 1]) between matching rows of two row-stochastic matrices.

    Returns
    -------
    ndarray, float64, shape (n_rows,)
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    m = 0.5 * (a + b)

    def kl(x, y):
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(x > 0, x * np.log2(x / np.where(y > 0, y, 1.0)), 0.0)
        return terms.sum(axis=1)

    return np.clip(0.5 * kl(a, m) + 0.5 * kl(b, m), 0.0, 1.0)


def q_metrics(Q_a: np.ndarray, Q_b: np.ndarray) -> dict:
    """How far apart two aligned Q matrices of the same K are.

    Returns
    -------
    dict
        ``rmse`` (over all entries), ``mean_abs_diff``, ``jsd_mean`` (mean over individuals of the row-wise
        Jensen–Shannon divergence, base 2), ``jsd_max``, ``pearson_r`` (list, per cluster; NaN for a constant
        column).
    """
    Q_a = np.asarray(Q_a, np.float64)
    Q_b = np.asarray(Q_b, np.float64)
    if Q_a.shape != Q_b.shape:
        raise ValueError(f"Q shapes differ: {Q_a.shape} vs {Q_b.shape}")
    diff = Q_a - Q_b
    jsd = jensen_shannon(Q_a, Q_b)
    r = []
    for k in range(Q_a.shape[1]):
        x, y = Q_a[:, k], Q_b[:, k]
        if x.std() == 0 or y.std() == 0:
            r.append(float("nan"))
        else:
            r.append(float(np.corrcoef(x, y)[0, 1]))
    return {"rmse": float(np.sqrt((diff ** 2).mean())), "mean_abs_diff": float(np.abs(diff).mean()),
            "jsd_mean": float(jsd.mean()), "jsd_max": float(jsd.max()), "pearson_r": r}


def p_metrics(P_a: np.ndarray, P_b: np.ndarray) -> dict:
    """RMSE and mean Pearson r between two aligned P matrices (A2 frequencies) of the same K."""
    diff = P_a - P_b
    r = [float(np.corrcoef(P_a[:, k], P_b[:, k])[0, 1]) for k in range(P_a.shape[1])]
    return {"rmse": float(np.sqrt((diff ** 2).mean())), "pearson_r": r}


def fst_hudson(p1: np.ndarray, p2: np.ndarray) -> float:
    """Hudson's F_ST between two allele-frequency vectors, as a ratio of averages (Bhatia et al. 2013).

        F_ST = Σ_j (p1_j − p2_j)² / Σ_j [p1_j (1 − p2_j) + p2_j (1 − p1_j)]

    The estimator Neural ADMIXTURE prints.  Frequencies are P columns (model parameters, so no sample-size term).
    """
    p1 = np.asarray(p1, np.float64)
    p2 = np.asarray(p2, np.float64)
    num = ((p1 - p2) ** 2).sum()
    den = (p1 * (1 - p2) + p2 * (1 - p1)).sum()
    return float(num / den) if den > 0 else float("nan")


def fst_admixture(p1: np.ndarray, p2: np.ndarray) -> float:
    """F_ST as ADMIXTURE prints it ("Fst divergences between estimated populations").

    The per-SNP coancestry coefficient of Reynolds, Weir & Cockerham (1983) without sample-size terms,

        θ_j = (p1_j − p2_j)² / [p1_j (1 − p2_j) + p2_j (1 − p1_j)],

    averaged over SNPs with weights p̄_j (1 − p̄_j), p̄_j = (p1_j + p2_j) / 2.  ADMIXTURE's source is not public;
    this definition was found by checking candidates against its logs (ADMIXTURE 1.22's release notes name
    Reynolds et al. 1983): for hapmap3 K = 2..5 it reproduces all 20 printed values to their 3 decimals, where
    Hudson's ratio of averages (:func:`fst_hudson`) is up to 0.031 higher.
    """
    p1 = np.asarray(p1, np.float64)
    p2 = np.asarray(p2, np.float64)
    mean = 0.5 * (p1 + p2)
    weight = mean * (1 - mean)
    den = p1 * (1 - p2) + p2 * (1 - p1)
    ok = (weight > 0) & (den > 0)
    if not ok.any():
        return float("nan")
    theta = (p1[ok] - p2[ok]) ** 2 / den[ok]
    return float((weight[ok] * theta).sum() / weight[ok].sum())


FST_ESTIMATORS = {"admixture": fst_admixture, "hudson": fst_hudson}


def fst_matrix(P: np.ndarray, method: str = "admixture") -> np.ndarray:
    """Pairwise F_ST between the clusters of one run.

    Parameters
    ----------
    P : ndarray, float, shape (n_variants, K)
    method : {"admixture", "hudson"}   see :func:`fst_admixture`, :func:`fst_hudson`

    Returns
    -------
    ndarray, float64, shape (K, K), symmetric, zero diagonal.
    """
    estimator = FST_ESTIMATORS[method]
    K = P.shape[1]
    out = np.zeros((K, K))
    for a in range(K):
        for b in range(a):
            out[a, b] = out[b, a] = estimator(P[:, a], P[:, b])
    return out


def mean_q_by_population(Q: np.ndarray, labels: np.ndarray) -> dict:
    """Mean ancestry proportions per population label (unlabelled ``""`` individuals skipped).

    Returns
    -------
    dict label -> list of K floats, in order of first appearance.
    """
    out = {}
    labels = np.asarray(labels, dtype=str)
    for pop in dict.fromkeys(labels.tolist()):
        if pop == "":
            continue
        out[pop] = Q[labels == pop].mean(axis=0).tolist()
    return out


# ====================================================================== the comparison
@dataclass
class Comparison:
    """Everything ``genoae compare`` reports.  ``to_dict`` gives the JSON layout."""

    runs: list
    logliks: list
    orientations: list
    fst: list
    pairs: list
    fst_hudson: list = field(default_factory=list)
    labels: np.ndarray | None = None
    mean_q: list = field(default_factory=list)
    genotypes_source: str = ""
    n_samples: int = 0
    n_variants: int = 0
    genotypes: object = field(default=None, repr=False)  # kept for the report's PCA; not written to JSON

    def to_dict(self) -> dict:
        def clean(x):
            if isinstance(x, float) and not math.isfinite(x):
                return None
            if isinstance(x, (list, tuple)):
                return [clean(v) for v in x]
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, np.ndarray):
                return clean(x.tolist())
            if isinstance(x, (np.floating, np.integer)):
                return clean(x.item())
            return x

        runs = []
        for i, run in enumerate(self.runs):
            orient = self.orientations[i]
            runs.append({
                "name": run.name, "source": run.source, "K": run.K, "q_path": run.q_path, "p_path": run.p_path,
                "p_allele_in_file": run.p_allele if run.P is not None else None,
                "column_order": run.order.tolist() if run.order is not None else list(range(run.K)),
                "loglik": self.logliks[i],
                "loglik_with_flipped_p": None if orient is None else orient.loglik_flipped,
                "orientation_ok": None if orient is None else (not orient.flipped_fits_better
                                                               or run.auto_orientation),
                "fst": self.fst[i], "fst_hudson": self.fst_hudson[i] if self.fst_hudson else None,
                "mean_q_by_population": self.mean_q[i] if self.mean_q else None,
                "notes": list(run.notes),
            })
        return clean({"genotypes": self.genotypes_source, "n_samples": self.n_samples,
                      "n_variants": self.n_variants, "log_base": "natural (ADMIXTURE's scale)",
                      "p_allele": "all P converted to A2 (.bim column 6) frequencies",
                      "alignment": "Hungarian matching on Q within K; chain K -> K+1 across K",
                      "fst": "ADMIXTURE's: per-SNP Reynolds et al. 1983 theta weighted by pbar(1-pbar); "
                             "fst_hudson: Hudson ratio of averages (Bhatia et al. 2013)",
                      "runs": runs, "pairs": self.pairs})


def compare_runs(genotypes, runs: list[Run], labels=None, device="cpu") -> Comparison:
    """Align runs, score each on the genotypes and each same-K pair against the other.

    Parameters
    ----------
    genotypes : genoae.Genotypes or None
        Needed for the likelihood (skipped, NaN, when None).
    runs : list of Run
    labels : ndarray of str, shape (n_samples,), optional
        Population of each individual, for mean Q per population.

    Returns
    -------
    Comparison
    """
    if not runs:
        raise UsageError("no runs to compare")
    n = runs[0].Q.shape[0]
    for run in runs:
        if run.Q.shape[0] != n:
            raise InputError(run.q_path, f"Q has {run.Q.shape[0]} rows; {runs[0].q_path} has {n}")
    if genotypes is not None:
        for run in runs:
            _match_samples(run, genotypes)
        orientations = run_logliks(genotypes, runs, device=device)
        logliks = [check_orientation(run, o) for run, o in zip(runs, orientations)]
    else:
        orientations = [None] * len(runs)
        logliks = [float("nan")] * len(runs)
    align_runs(runs)
    fst = [None if run.P is None else fst_matrix(run.P_aligned, "admixture").tolist() for run in runs]
    fst_h = [None if run.P is None else fst_matrix(run.P_aligned, "hudson").tolist() for run in runs]
    pairs = []
    for i in range(len(runs)):
        for j in range(i + 1, len(runs)):
            a, b = runs[i], runs[j]
            if a.K != b.K:
                continue
            entry = {"a": a.name, "b": b.name, "K": a.K, **q_metrics(a.Q_aligned, b.Q_aligned),
                     # b's file column order[c] corresponds to a's file column a.order[c]
                     "b_columns_matching_a": _matching(a, b)}
            if a.P is not None and b.P is not None:
                entry["p"] = p_metrics(a.P_aligned, b.P_aligned)
            pairs.append(entry)
    mean_q = []
    if labels is not None:
        labels = np.asarray(labels, dtype=str)
        if len(labels) != n:
            raise UsageError(f"{len(labels)} population labels for {n} individuals")
        mean_q = [mean_q_by_population(run.Q_aligned, labels) for run in runs]
    return Comparison(runs=runs, logliks=logliks, orientations=orientations, fst=fst, fst_hudson=fst_h, pairs=pairs,
                      labels=labels, mean_q=mean_q,
                      genotypes_source="" if genotypes is None else str(genotypes.source),
                      n_samples=n, n_variants=0 if genotypes is None else genotypes.n_variants, genotypes=genotypes)


def _match_samples(run: Run, genotypes) -> None:
    """Put the rows of a run that names its individuals (.h5) into the genotypes' order, or refuse."""
    if run.samples is None or len(run.samples) != genotypes.n_samples:
        return
    iids = np.asarray(genotypes.samples.iid, dtype=str)
    if np.array_equal(run.samples, iids):
        return
    position = {iid: i for i, iid in enumerate(run.samples)}
    if len(position) != len(run.samples) or set(position) != set(iids.tolist()):
        missing = next((iid for iid in iids if iid not in position), run.samples[0])
        raise InputError(run.q_path, f"individuals differ from the genotypes' (e.g. {missing!r})")
    rows = np.array([position[iid] for iid in iids])
    run.Q = run.Q[rows]
    run.samples = iids
    run.notes.append("rows reordered to the genotypes' individual order (matched by IID)")


def _matching(a: Run, b: Run) -> list:
    """For each file column of ``a``, the file column of ``b`` matched to it."""
    out = [0] * a.K
    for c in range(a.K):
        out[int(a.order[c])] = int(b.order[c])
    return out


# ====================================================================== report
def format_report(comparison: Comparison) -> str:
    """A plain-text report for the terminal: runs, pairs, F_ST and (with labels) mean Q per population."""
    lines = []
    runs = comparison.runs
    width = max(12, max(len(r.name) for r in runs))
    lines.append(f"{comparison.n_samples} individuals, {comparison.n_variants} variants"
                 + (f" ({comparison.genotypes_source})" if comparison.genotypes_source else ""))
    lines.append("")
    lines.append("runs (loglik on ADMIXTURE's scale; P as A2 frequencies; columns aligned K -> K+1)")
    lines.append(f"  {'run':<{width}}  {'source':<16} {'K':>2}  {'loglik':>18}  {'P':>3}  column order")
    for run, ll in zip(runs, comparison.logliks):
        order = " ".join(str(c) for c in run.order) if run.order is not None else ""
        allele = run.p_allele if run.P is not None else "-"
        ll_text = f"{ll:,.3f}" if math.isfinite(ll) else "n/a"
        lines.append(f"  {run.name:<{width}}  {run.source:<16} {run.K:>2}  {ll_text:>18}  {allele:>3}  {order}")
    warned = [note for run in runs for note in run.notes]
    if warned:
        lines.append("")
        lines.extend(f"  note: {note}" for note in warned)
    if comparison.pairs:
        lines.append("")
        lines.append("pairs (same K, after alignment)")
        lines.append(f"  {'a':<{width}}  {'b':<{width}}  {'K':>2}  {'RMSE':>8}  {'mean|d|':>8}  {'JSD':>8}  "
                     f"r per cluster")
        for pair in comparison.pairs:
            r = " ".join("  nan" if not math.isfinite(x) else f"{x:.3f}" for x in pair["pearson_r"])
            lines.append(f"  {pair['a']:<{width}}  {pair['b']:<{width}}  {pair['K']:>2}  {pair['rmse']:8.5f}  "
                         f"{pair['mean_abs_diff']:8.5f}  {pair['jsd_mean']:8.5f}  {r}")
    for run, fst in zip(runs, comparison.fst):
        if fst is None or run.K < 2:
            continue
        lines.append("")
        lines.append(f"F_ST between clusters of {run.name} (ADMIXTURE's estimator; aligned columns)")
        lines.append("        " + "".join(f"{'c' + str(k):>8}" for k in range(run.K - 1)))
        for a in range(1, run.K):
            lines.append(f"  {'c' + str(a):<6}" + "".join(f"{fst[a][b]:8.3f}" for b in range(a)))
    if comparison.mean_q:
        for run, table in zip(runs, comparison.mean_q):
            lines.append("")
            lines.append(f"mean Q per population, {run.name} (aligned columns)")
            pop_width = max(6, max(len(p) for p in table))
            lines.append(f"  {'pop':<{pop_width}}  " + " ".join(f"{'c' + str(k):>6}" for k in range(run.K)))
            for pop, values in table.items():
                lines.append(f"  {pop:<{pop_width}}  " + " ".join(f"{v:6.3f}" for v in values))
    return "\n".join(lines)


def write_report(comparison: Comparison, prefix, plots: bool = True, seed: int = 0, device="cpu") -> list[Path]:
    """Write ``PREFIX.json`` and (with ``plots``) ``PREFIX_structure.png`` and ``PREFIX_pca.png``, atomically.

    The PCA (of the compared genotypes) is coloured by population with labels, else by the dominant cluster of
    the first run with the largest K, in the structure plot's colours.

    Returns
    -------
    list of Path written.
    """
    prefix = Path(prefix)
    if prefix.suffix.lower() == ".json":
        prefix = prefix.with_suffix("")
    json_path = prefix.with_name(prefix.name + ".json")
    with atomic_open(json_path, "w") as handle:
        json.dump(comparison.to_dict(), handle, indent=2)
        handle.write("\n")
    written = [json_path]
    if plots:
        from genoae.plot import structure_plot

        panels = [(run.Q_aligned, f"{run.name}") for run in comparison.runs]
        png = prefix.with_name(prefix.name + "_structure.png")
        structure_plot(panels, png, labels=comparison.labels)
        written.append(png)
        if comparison.genotypes is not None:
            from genoae.pca import pca
            from genoae.plot import pca_plot

            scores, explained = pca(comparison.genotypes, n_components=4, seed=seed, device=device)
            largest = max(comparison.runs, key=lambda run: run.K)
            png = prefix.with_name(prefix.name + "_pca.png")
            pca_plot(scores, explained, png, labels=comparison.labels,
                     Q=None if comparison.labels is not None else largest.Q_aligned)
            written.append(png)
    return written


# ====================================================================== entry points for the CLI
def parse_ks(values) -> list[int] | None:
    """``-k`` values: ``3``, ``2-5``, ``2..5`` or ``2,3,5`` (repeatable) → sorted list of K, or None if empty."""
    ks = set()
    for value in values or ():
        for part in str(value).replace(" ", "").split(","):
            if not part:
                continue
            bounds = re.split(r"\.\.|-|:", part)
            try:
                if len(bounds) == 2:
                    low, high = int(bounds[0]), int(bounds[1])
                    ks.update(range(min(low, high), max(low, high) + 1))
                elif len(bounds) == 1:
                    ks.add(int(bounds[0]))
                else:
                    raise ValueError
            except ValueError:
                raise UsageError(f"-k {value!r}: expected K, a range like 2-5, or a list like 2,3,5") from None
    bad = [k for k in ks if k < 1]
    if bad:
        raise UsageError(f"-k: K must be at least 1 (got {bad[0]})")
    return sorted(ks) or None


def _per_run(values, n_specs: int, what: str) -> list:
    """One value for every run spec: none given → None each; one → all; else exactly one per spec."""
    values = list(values or ())
    if not values:
        return [None] * n_specs
    if len(values) == 1:
        return values * n_specs
    if len(values) != n_specs:
        raise UsageError(f"{len(values)} --{what} values for {n_specs} runs: give one for all, or one per run")
    return values


def load_run_specs(specs, sources=(), p_conventions=(), ks=None) -> list[Run]:
    """Read every run named on the command line (see :func:`load_runs`), ``--source``/``--p-convention`` given
    once for all or once per spec."""
    runs = []
    for spec, source, convention in zip(specs, _per_run(sources, len(specs), "source"),
                                        _per_run(p_conventions, len(specs), "p-convention")):
        runs.extend(load_runs(spec, source=source, p_convention=convention, ks=ks))
    # the same file given twice would compare a run with itself under one name; keep names unique
    seen = {}
    for run in runs:
        if run.name in seen:
            seen[run.name] += 1
            run.name = f"{run.name}#{seen[run.name]}"
        else:
            seen[run.name] = 1
    return runs


def compare_files(genotypes_path, run_specs, pop_path=None, sources=(), p_conventions=(), ks=None,
                  device="cpu") -> Comparison:
    """``genoae compare``: read genotypes, runs and labels, and compare (see :func:`compare_runs`)."""
    from genoae.io import read_genotypes

    genotypes = read_genotypes(genotypes_path)
    runs = load_run_specs(run_specs, sources, p_conventions, parse_ks(ks))
    labels = None if pop_path is None else read_labels(pop_path, genotypes.samples, missing_ok=True)
    return compare_runs(genotypes, runs, labels=labels, device=device)
