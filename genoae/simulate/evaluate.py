"""Realism and privacy metrics for synthetic genomes (pure NumPy/SciPy, array-first).

Every function takes *allele matrices*: ``X : ndarray, int8, shape (n_rows, n_variants)`` whose rows are phased
haplotypes (values 0/1, ``ploidy=1``) or individuals (A2 counts 0/1/2, ``ploidy=2``); negative values are missing
and are masked out of every metric.  The report (:func:`evaluate_synthetic`) computes each metric for the synthetic
set and, as the ceiling to read it against, for a real holdout set.

Definitions
-----------
* Allele frequency: A2 frequency per SNP over observed calls; Pearson r and mean absolute error against the
  training (reference) set.
* LD: r² (squared Pearson correlation of the allele columns) for every pair of SNPs at most ``ld_window`` SNPs apart;
  Pearson r between the synthetic and reference r² values of the same pairs; LD decay = mean r² per distance bin.
* PCA: fitted on the reference (columns centred, scaled by sqrt(p(1-p))), other sets projected; 1-D Wasserstein
  distance between reference and projected scores on PC1 and PC2.
* AATS, nearest-neighbour adversarial accuracy (Yale et al. 2020) with Hamming distance (Manhattan for 0/1/2):
  ``AA_truth`` = share of real rows whose nearest synthetic row is farther than their nearest other real row,
  ``AA_syn`` = share of synthetic rows whose nearest real row is farther than their nearest other synthetic row,
  ``AATS = (AA_truth + AA_syn) / 2``; 0.5 = indistinguishable, 0 = copies, 1 = far apart.
* Privacy loss = AATS(synthetic vs holdout) - AATS(synthetic vs training): near 0 when the generator does not sit
  closer to its training data than to unseen data of the same population.
* Exact copies: synthetic rows identical to a training row.  DCR: distance to the closest training row.
* TSTR: population classifier (multinomial logistic regression) trained on synthetic individuals, tested on the real
  holdout, next to the same classifier trained on the real training set.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from genoae.errors import InputError
from genoae.genotypes import allele_frequencies
from genoae.io.jsonfile import json_ready
from genoae.pca import standardized_pca
from genoae.progress import progress_bar


# ====================================================================== allele frequencies
def allele_frequency_metrics(reference: np.ndarray, other: np.ndarray, ploidy: int = 1) -> dict:
    """Pearson r and mean absolute error between the allele frequencies of two sets (variants seen in both)."""
    p, q = allele_frequencies(reference, ploidy), allele_frequencies(other, ploidy)
    ok = np.isfinite(p) & np.isfinite(q)
    return {"r": _pearson(p[ok], q[ok]), "mae": float(np.mean(np.abs(p[ok] - q[ok]))) if ok.any() else float("nan")}


# ====================================================================== linkage disequilibrium
def ld_r2_band(X: np.ndarray, window: int = 100, chunk: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """r² for every pair of variants ``0 < j - i <= window`` apart (in variant index), missing calls masked.

    Correlations use the calls observed in both columns.  Pairs where a column is constant get r² = 0.

    Returns
    -------
    i, j : ndarray, int64, shape (n_pairs,)   variant indices, i < j
    r2 : ndarray, float64, shape (n_pairs,)
    """
    X = np.asarray(X)
    n_variants = X.shape[1]
    observed = (X >= 0).astype(np.float64)
    values = np.where(X >= 0, X, 0).astype(np.float64)
    all_i, all_j, all_r2 = [], [], []
    for start in range(0, n_variants, chunk):
        stop = min(start + chunk, n_variants)
        right = min(stop + window, n_variants)
        a_x, a_o = values[:, start:stop], observed[:, start:stop]
        b_x, b_o = values[:, start:right], observed[:, start:right]
        n = a_o.T @ b_o
        sa, sb = a_x.T @ b_o, a_o.T @ b_x
        saa, sbb = (a_x * a_x).T @ b_o, a_o.T @ (b_x * b_x)
        sab = a_x.T @ b_x
        with np.errstate(invalid="ignore", divide="ignore"):
            cov = sab / n - (sa / n) * (sb / n)
            var_a = saa / n - (sa / n) ** 2
            var_b = sbb / n - (sb / n) ** 2
            r2 = cov * cov / (var_a * var_b)
        r2 = np.where((var_a > 1e-12) & (var_b > 1e-12) & np.isfinite(r2), np.clip(r2, 0.0, 1.0), 0.0)
        ii, jj = np.meshgrid(np.arange(start, stop), np.arange(start, right), indexing="ij")
        keep = (jj > ii) & (jj - ii <= window)
        all_i.append(ii[keep])
        all_j.append(jj[keep])
        all_r2.append(r2[keep])
    return np.concatenate(all_i), np.concatenate(all_j), np.concatenate(all_r2)


def ld_metrics(reference: np.ndarray, other: np.ndarray, window: int = 100, positions=None, n_bins: int = 20) -> dict:
    """Pearson r between the r² of the same SNP pairs in two sets, and the two LD-decay curves.

    Parameters
    ----------
    positions : ndarray, int, shape (n_variants,), optional
        Base-pair positions for the decay curve's x axis (variant-index distance when absent).
    """
    i, j, r2_ref = ld_r2_band(reference, window)
    _, _, r2_other = ld_r2_band(other, window)
    distance = (j - i) if positions is None else np.abs(np.asarray(positions)[j] - np.asarray(positions)[i])
    edges = np.unique(np.quantile(distance, np.linspace(0, 1, n_bins + 1))) if len(distance) else np.array([0, 1])
    which = np.clip(np.searchsorted(edges, distance, side="right") - 1, 0, len(edges) - 2)
    centres = [float(distance[which == b].mean()) if (which == b).any() else float("nan")
               for b in range(len(edges) - 1)]
    decay_ref = [float(r2_ref[which == b].mean()) if (which == b).any() else float("nan")
                 for b in range(len(edges) - 1)]
    decay_other = [float(r2_other[which == b].mean()) if (which == b).any() else float("nan")
                   for b in range(len(edges) - 1)]
    return {"r": _pearson(r2_ref, r2_other), "mae": float(np.mean(np.abs(r2_ref - r2_other))) if len(i) else None,
            "n_pairs": int(len(i)), "window_snps": int(window),
            "decay": {"distance": centres, "distance_unit": "bp" if positions is not None else "snps",
                      "reference": decay_ref, "other": decay_other}}


# ====================================================================== PCA
def pca_fit(X: np.ndarray, n_components: int = 2, ploidy: int = 1, seed: int = 0) -> dict:
    """PCA of standardised allele columns (missing -> column mean, i.e. 0 after centring), by the one randomized
    SVD (:func:`genoae.pca.standardized_pca`, 7 power iterations: converged to rounding for the leading components).

    Returns
    -------
    dict with ``mean`` (n_variants,), ``scale`` (n_variants,; 1 where a column does not vary), ``components``
    (n_components, n_variants), ``scores`` (n_rows, n_components)
    """
    X = np.asarray(X)

    def blocks(dtype, chunk=4096):
        for start in range(0, X.shape[1], chunk):
            cols = slice(start, min(start + chunk, X.shape[1]))
            block = torch.from_numpy(np.ascontiguousarray(X[:, cols].T))
            yield cols, block.clamp_min(0).to(dtype), block >= 0

    result = standardized_pca(blocks, allele_frequencies(X, ploidy), X.shape[0], n_components, ploidy=ploidy,
                              rng=seed, n_oversamples=20, n_iter=7, with_components=True, what="PCA of the rows")
    scale = np.where(result.scale > 1e-6, result.scale, 1.0)  # loadings are 0 there: any finite scale projects
    return {"mean": result.mean, "scale": scale, "components": result.components, "scores": result.scores}


def pca_project(model: dict, X: np.ndarray) -> np.ndarray:
    """Project rows on a :func:`pca_fit` model.  Returns ndarray, float64, shape (n_rows, n_components)."""
    return _standardise(X, model["mean"], model["scale"]) @ model["components"].T


def pca_wasserstein(reference_scores: np.ndarray, other_scores: np.ndarray) -> list[float]:
    """1-D Wasserstein distance per principal component."""
    return [float(stats.wasserstein_distance(reference_scores[:, k], other_scores[:, k]))
            for k in range(reference_scores.shape[1])]


def _standardise(X, mean, scale):
    X = np.asarray(X)
    return np.where(X >= 0, (X - mean) / scale, 0.0)


# ====================================================================== distances, AATS, copies
def _threshold_indicators(X: np.ndarray, ploidy: int):
    """For k = 1..ploidy: (X >= k) and (0 <= X < k) as float32, so Manhattan distance becomes matrix products."""
    X = np.asarray(X)
    return [((X >= k).astype(np.float32), ((X >= 0) & (X < k)).astype(np.float32)) for k in range(1, ploidy + 1)]


def distance_matrix(X: np.ndarray, Y: np.ndarray, ploidy: int = 1) -> np.ndarray:
    """Hamming (ploidy 1) or Manhattan (0/1/2) distance between every row of X and every row of Y.

    Sites missing in either row do not count.

    Returns
    -------
    ndarray, float64, shape (n_rows_x, n_rows_y)
    """
    total = np.zeros((len(X), len(Y)), np.float64)
    for (ax, bx), (ay, by) in zip(_threshold_indicators(X, ploidy), _threshold_indicators(Y, ploidy)):
        total += ax @ by.T
        total += bx @ ay.T
    return total


def nearest_distances(X: np.ndarray, Y: np.ndarray | None = None, ploidy: int = 1, chunk: int = 2048) -> np.ndarray:
    """Distance from each row of X to its nearest row of Y (to its nearest *other* row of X when Y is None).

    Returns
    -------
    ndarray, float64, shape (n_rows_x,)
    """
    same = Y is None
    Y = X if same else Y
    out = np.empty(len(X))
    for start in range(0, len(X), chunk):
        d = distance_matrix(X[start:start + chunk], Y, ploidy)
        if same:
            d[np.arange(d.shape[0]), np.arange(start, start + d.shape[0])] = np.inf
        out[start:start + chunk] = d.min(axis=1)
    return out


def adversarial_accuracy(real: np.ndarray, synthetic: np.ndarray, ploidy: int = 1, max_rows: int | None = None,
                         seed: int = 0) -> dict:
    """Nearest-neighbour adversarial accuracy AATS with its two components.

    Both sets are cut to the same number of rows (at most ``max_rows``) by a seeded random draw, as the
    statistic assumes equal sizes.

    Returns
    -------
    dict: ``aats``, ``aa_truth``, ``aa_syn``, ``n``
    """
    rng = np.random.default_rng(seed)
    n = min(len(real), len(synthetic))
    if max_rows:
        n = min(n, max_rows)
    real = real[np.sort(rng.choice(len(real), n, replace=False))]
    synthetic = synthetic[np.sort(rng.choice(len(synthetic), n, replace=False))]
    d_tt = nearest_distances(real, None, ploidy)
    d_ss = nearest_distances(synthetic, None, ploidy)
    d_ts = nearest_distances(real, synthetic, ploidy)
    d_st = nearest_distances(synthetic, real, ploidy)
    aa_truth = float(np.mean(d_ts > d_tt))
    aa_syn = float(np.mean(d_st > d_ss))
    return {"aats": (aa_truth + aa_syn) / 2, "aa_truth": aa_truth, "aa_syn": aa_syn, "n": int(n)}


def privacy_loss(synthetic: np.ndarray, training: np.ndarray, holdout: np.ndarray, ploidy: int = 1,
                 max_rows: int | None = None, seed: int = 0) -> dict:
    """AATS(synthetic vs holdout) - AATS(synthetic vs training), with both AATS results."""
    test = adversarial_accuracy(holdout, synthetic, ploidy, max_rows, seed)
    train = adversarial_accuracy(training, synthetic, ploidy, max_rows, seed)
    return {"privacy_loss": test["aats"] - train["aats"], "aats_holdout": test, "aats_training": train}


def person_rows(people: np.ndarray, rows_per_person: int) -> np.ndarray:
    """Sorted row indices of ``people`` when each person's rows are consecutive (2 haplotypes, or 1 row)."""
    return np.sort((np.asarray(people)[:, None] * rows_per_person + np.arange(rows_per_person)).ravel())


def split_people(n_people: int, rows_per_person: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of two random halves of ``n_people`` people (a person never splits)."""
    people = rng.permutation(n_people)
    half = n_people // 2
    return person_rows(people[:half], rows_per_person), person_rows(people[half:], rows_per_person)


def fresh_real_reference(training: np.ndarray, holdout: np.ndarray, ploidy: int = 1, rows_per_person: int = 1,
                         repeats: int = 5, max_rows: int | None = None, seed: int = 0) -> dict | None:
    """Privacy loss of real genomes the generator never saw: how far from 0 sampling noise alone puts it.

    The holdout is split in two random halves by person; one half plays the synthetic set, and its privacy loss is
    AATS(half vs other half) - AATS(half vs training).  A perfect generator would score like this, so a
    synthetic privacy loss within the spread of these values is not evidence of memorisation.  The halves are
    half the holdout's size, so the spread is somewhat wider than the synthetic value's own sampling noise.

    Returns
    -------
    dict with ``mean``, ``sd``, ``values`` (privacy loss, one per repeat), ``aats_vs_training`` (mean AATS of
    the fresh half against as many training people), ``n_rows`` (rows per half); None when the holdout has fewer
    than 4 people or ``repeats`` is 0.
    """
    n_people = len(holdout) // rows_per_person
    if n_people < 4 or repeats <= 0:
        return None
    rng = np.random.default_rng(seed)
    n_training_people = len(training) // rows_per_person
    values, aats = [], []
    for repeat in range(repeats):
        fresh, other = split_people(n_people, rows_per_person, rng)
        other = other[:len(fresh)]
        # whole people in all three sets, as many as in each half, so no set is thinned by row (which would
        # split people and change nearest-neighbour distances)
        training_rows = person_rows(rng.permutation(n_training_people)[:len(fresh) // rows_per_person],
                                    rows_per_person)
        loss = privacy_loss(holdout[fresh], training[training_rows], holdout[other], ploidy, max_rows,
                            seed + repeat)
        values.append(loss["privacy_loss"])
        aats.append(loss["aats_training"]["aats"])
    values = np.array(values)
    return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else None,
            "values": values.tolist(), "aats_vs_training": float(np.mean(aats)), "n_rows": int(len(fresh))}


def exact_copies(synthetic: np.ndarray, training: np.ndarray) -> int:
    """Number of synthetic rows identical (all columns) to some training row."""
    def keys(M):
        M = np.ascontiguousarray(M, dtype=np.int8)
        return {row.tobytes() for row in M}

    seen = keys(training)
    return int(sum(np.ascontiguousarray(row, dtype=np.int8).tobytes() in seen for row in np.asarray(synthetic)))


def distance_to_closest_record(synthetic: np.ndarray, training: np.ndarray, holdout: np.ndarray | None = None,
                               ploidy: int = 1) -> dict:
    """DCR of synthetic rows to the training set, and of holdout rows to the training set (the baseline)."""
    out = {"synthetic": nearest_distances(synthetic, training, ploidy)}
    if holdout is not None:
        out["holdout"] = nearest_distances(holdout, training, ploidy)
    return out


def _quantiles(values: np.ndarray) -> dict:
    q = np.quantile(values, [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    return dict(zip(["min", "q05", "q25", "median", "q75", "q95", "max"], map(float, q)))


# ====================================================================== population classification
def train_population_classifier(X: np.ndarray, labels, classes=None, ploidy: int = 2, weight_decay: float = 1e-2,
                                epochs: int = 300, seed: int = 0) -> dict:
    """Multinomial logistic regression (full-batch L-BFGS in torch) on standardised allele counts.

    Parameters
    ----------
    X : ndarray, shape (n_individuals, n_variants)   A2 counts (missing -> training mean)
    labels : array_like of str, shape (n_individuals,)

    Returns
    -------
    dict: ``classes``, ``mean``, ``scale``, ``weight`` (n_variants, n_classes), ``bias`` (n_classes,)
    """
    labels = np.asarray(labels, dtype=str)
    classes = sorted(set(labels.tolist())) if classes is None else list(classes)
    freq = np.nan_to_num(allele_frequencies(X, ploidy), nan=0.0)
    mean, scale = ploidy * freq, np.sqrt(np.maximum(ploidy * freq * (1 - freq), 1e-4))
    Z = torch.as_tensor(_standardise(X, mean, scale), dtype=torch.float64)
    y = torch.as_tensor(np.searchsorted(classes, labels), dtype=torch.long)
    torch.manual_seed(seed)
    weight = torch.zeros(Z.shape[1], len(classes), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(len(classes), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=epochs, history_size=20,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(Z @ weight + bias, y) + weight_decay * weight.pow(2).sum() / 2
        loss.backward()
        return loss

    optimiser.step(closure)
    return {"classes": classes, "mean": mean, "scale": scale, "weight": weight.detach().numpy(),
            "bias": bias.detach().numpy()}


def classifier_accuracy(model: dict, X: np.ndarray, labels) -> float:
    """Share of individuals whose predicted population equals ``labels``."""
    scores = _standardise(X, model["mean"], model["scale"]) @ model["weight"] + model["bias"]
    predicted = np.asarray(model["classes"])[scores.argmax(axis=1)]
    return float(np.mean(predicted == np.asarray(labels, dtype=str)))


def tstr_accuracy(synthetic, synthetic_labels, training, training_labels, holdout, holdout_labels,
                  weight_decay: float = 1e-2) -> dict:
    """Train-on-synthetic / test-on-real next to train-on-real / test-on-real (individual A2 counts, 0/1/2)."""
    classes = sorted(set(np.asarray(training_labels, dtype=str).tolist()))
    keep = np.isin(np.asarray(holdout_labels, dtype=str), classes)
    on_synthetic = train_population_classifier(synthetic, synthetic_labels, classes, weight_decay=weight_decay)
    on_real = train_population_classifier(training, training_labels, classes, weight_decay=weight_decay)
    return {"train_synthetic_test_real": classifier_accuracy(on_synthetic, holdout[keep],
                                                             np.asarray(holdout_labels)[keep]),
            "train_real_test_real": classifier_accuracy(on_real, holdout[keep], np.asarray(holdout_labels)[keep]),
            "n_classes": len(classes), "n_test": int(keep.sum())}


# ====================================================================== helpers
def _pearson(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def independent_snp_sample(X: np.ndarray, n_rows: int, ploidy: int = 1, seed: int = 0) -> np.ndarray:
    """Baseline generator: every SNP drawn independently from its allele frequency (no LD at all).

    Returns
    -------
    ndarray, int8, shape (n_rows, n_variants)
    """
    rng = np.random.default_rng(seed)
    freq = np.nan_to_num(allele_frequencies(X, ploidy), nan=0.0)
    return rng.binomial(ploidy, freq, size=(n_rows, len(freq))).astype(np.int8)


# ====================================================================== the report
def allele_rows(genotypes, haplotypic: bool) -> np.ndarray:
    """Rows for the metrics: haplotypes (2 per individual, 0/1) or individuals (0/1/2).  int8, -1 missing."""
    if haplotypic:
        return genotypes.haplotypes().reshape(-1, genotypes.n_variants)
    return genotypes.counts()


def _variant_keys(genotypes):
    v = genotypes.variants
    return [f"{c}:{p}:{a}:{b}" for c, p, a, b in zip(v.chrom, v.pos, v.a1, v.a2)]


def _shared_variants(reference, *others):
    """Indices into each set of the variants that all sets hold (matched on chrom, pos, a1, a2; order of reference).

    Sets whose variant tables cannot be matched (e.g. placeholders) but have the same length are taken in order.
    """
    ref_keys = _variant_keys(reference)
    indices = [np.arange(reference.n_variants)]
    for other in others:
        keys = {k: i for i, k in enumerate(_variant_keys(other))}
        if len(keys) == len(ref_keys) and all(k in keys for k in ref_keys):
            indices.append(np.array([keys[k] for k in ref_keys]))
        else:
            indices.append(None)
    if all(i is not None for i in indices):
        return indices
    common = set(ref_keys)
    for other in others:
        common &= set(_variant_keys(other))
    if not common:
        raise InputError(others[0].source, "no variant (chrom, pos, a1, a2) in common with the real data")
    ref_index = np.array([i for i, k in enumerate(ref_keys) if k in common])
    out = [ref_index]
    for other in others:
        keys = {k: i for i, k in enumerate(_variant_keys(other))}
        out.append(np.array([keys[ref_keys[i]] for i in ref_index]))
    return out


def synthetic_populations(sample_ids) -> np.ndarray:
    """Population of each synthetic individual from its name ``synth_<pop>_<i>`` ('' when there is none)."""
    import re

    pattern = re.compile(r"^synth_(.+)_\d+$")
    return np.array([(m.group(1) if (m := pattern.match(str(s))) else "") for s in sample_ids])


def evaluate_synthetic(real, synthetic, holdout=None, real_populations=None, synthetic_populations_=None,
                       holdout_populations=None, ld_window: int = 100, max_rows: int | None = 5000,
                       seed: int = 0, reference_repeats: int = 5, progress: bool = False) -> tuple[dict, dict]:
    """All realism and privacy metrics of ``synthetic`` against the ``real`` training genomes.

    Each metric is also computed for ``holdout`` (real genomes the generator never saw), the ceiling to read the
    synthetic numbers against.

    Parameters
    ----------
    real, synthetic, holdout : Genotypes
        Haplotypes are compared when every set is phased, otherwise individuals' A2 counts.
    real_populations, synthetic_populations_, holdout_populations : array_like of str, optional
        Labels per individual, for the train-on-synthetic / test-on-real population classifier.
    ld_window : int
        LD pairs are all pairs of variants at most this many variants apart.
    max_rows : int, optional
        Cap on the rows per set in the nearest-neighbour metrics (seeded subsample).
    reference_repeats : int
        Random person-level halvings of the holdout for the fresh-real-genome privacy-loss reference
        (:func:`fresh_real_reference`); 0 skips it.
    progress : bool
        A bar on stderr over the metrics (one step per metric and set).

    Returns
    -------
    report : dict   JSON-ready numbers
    arrays : dict   what the plots need (frequencies, LD decay, PCA scores, DCR distributions)
    """
    sets = [real, synthetic] + ([holdout] if holdout is not None else [])
    index = _shared_variants(*sets)
    haplotypic = all(g.phased for g in sets)
    ploidy = 1 if haplotypic else 2
    rows = [allele_rows(g, haplotypic)[:, i] for g, i in zip(sets, index)]
    real_rows, synth_rows = rows[0], rows[1]
    holdout_rows = rows[2] if holdout is not None else None
    others = {"synthetic": synth_rows}
    if holdout_rows is not None:
        others["holdout"] = holdout_rows
    positions = real.variants.pos[index[0]]
    same_chrom = len(set(real.variants.chrom[index[0]].tolist())) == 1

    report = {"unit": "haplotype" if haplotypic else "individual (A2 counts)",
              "n_variants": int(real_rows.shape[1]),
              "n_rows": {"training": int(len(real_rows)), **{k: int(len(v)) for k, v in others.items()}},
              "allele_frequency": {}, "ld": {}, "pca": {}, "aats": {}, "exact_copies_of_training": {},
              "distance_to_closest_record": {}}
    arrays = {"frequency": {"training": allele_frequencies(real_rows, ploidy)}, "ld_decay": {}, "pca": {},
              "dcr": {}, "unit": report["unit"]}
    classify = real_populations is not None and synthetic_populations_ is not None and holdout_populations is not None
    steps = 1 + 5 * len(others) + (holdout_rows is not None) + classify
    bar = progress_bar(steps, "evaluating", unit="metric", enabled=progress)

    def done(what):
        bar.set_postfix_str(what)
        bar.update(1)

    pca = pca_fit(real_rows, 2, ploidy)
    arrays["pca"]["training"] = pca["scores"]
    done("PCA")
    for name, X in others.items():
        report["allele_frequency"][name] = allele_frequency_metrics(real_rows, X, ploidy)
        arrays["frequency"][name] = allele_frequencies(X, ploidy)
        ld = ld_metrics(real_rows, X, ld_window, positions if same_chrom else None)
        arrays["ld_decay"][name] = ld.pop("decay")
        report["ld"][name] = ld
        done(f"{name}: frequencies, LD")
        scores = pca_project(pca, X)
        arrays["pca"][name] = scores
        report["pca"][name] = {"wasserstein_pc1": pca_wasserstein(pca["scores"], scores)[0],
                               "wasserstein_pc2": pca_wasserstein(pca["scores"], scores)[1]}
        done(f"{name}: PCA")
        report["aats"][name] = adversarial_accuracy(real_rows, X, ploidy, max_rows, seed)
        done(f"{name}: AATS")
        report["exact_copies_of_training"][name] = exact_copies(X, real_rows)
        done(f"{name}: copies")
        dcr = nearest_distances(X, real_rows, ploidy)
        arrays["dcr"][name] = dcr
        report["distance_to_closest_record"][name] = _quantiles(dcr)
        done(f"{name}: closest records")
    if holdout_rows is not None:
        loss = privacy_loss(synth_rows, real_rows, holdout_rows, ploidy, max_rows, seed)
        report["privacy_loss"] = {"synthetic": loss["privacy_loss"],
                                  "aats_synthetic_vs_holdout": loss["aats_holdout"]["aats"],
                                  "aats_synthetic_vs_training": loss["aats_training"]["aats"],
                                  "fresh_real_reference": fresh_real_reference(
                                      real_rows, holdout_rows, ploidy, 2 if haplotypic else 1, reference_repeats,
                                      max_rows, seed)}
        arrays["privacy"] = report["privacy_loss"]
        done("privacy loss")
    if classify:
        real_counts = real.counts()[:, index[0]]
        synth_counts = synthetic.counts()[:, index[1]]
        hold_counts = holdout.counts()[:, index[2]]
        report["population_classification"] = tstr_accuracy(synth_counts, synthetic_populations_, real_counts,
                                                            real_populations, hold_counts, holdout_populations)
        done("classifier")
    bar.close()
    return json_ready(report), arrays


def format_summary(report: dict) -> str:
    """A few lines for the terminal: each headline metric for synthetic and holdout."""
    names = [k for k in ("synthetic", "holdout") if k in report["allele_frequency"]]
    lines = [f"{'metric':32s}" + "".join(f"{n:>12s}" for n in names)]

    def row(label, getter):
        values = []
        for n in names:
            try:
                v = getter(n)
            except (KeyError, TypeError):
                v = None
            values.append(f"{v:12.4f}" if isinstance(v, float) else f"{str(v):>12s}")
        lines.append(f"{label:32s}" + "".join(values))

    row("allele frequency r", lambda n: report["allele_frequency"][n]["r"])
    row("allele frequency MAE", lambda n: report["allele_frequency"][n]["mae"])
    row("LD r2 correlation", lambda n: report["ld"][n]["r"])
    row("PCA Wasserstein PC1", lambda n: report["pca"][n]["wasserstein_pc1"])
    row("AATS vs training", lambda n: report["aats"][n]["aats"])
    row("  AA_truth", lambda n: report["aats"][n]["aa_truth"])
    row("  AA_syn", lambda n: report["aats"][n]["aa_syn"])
    row("exact copies of training", lambda n: report["exact_copies_of_training"][n])
    row("median distance to closest", lambda n: report["distance_to_closest_record"][n]["median"])
    if "privacy_loss" in report:
        lines.append(f"{'privacy loss (synthetic)':32s}{report['privacy_loss']['synthetic']:12.4f}")
        reference = report["privacy_loss"].get("fresh_real_reference")
        if reference:
            spread = f" ± {reference['sd']:.4f} (sd)" if reference["sd"] is not None else ""
            lines.append(f"{'  fresh real genomes':32s}{reference['mean']:12.4f}{spread}, {len(reference['values'])} "
                         f"halvings of the holdout: the noise level")
    if "population_classification" in report:
        c = report["population_classification"]
        lines.append(f"population accuracy: train-on-synthetic {c['train_synthetic_test_real']:.4f}, "
                     f"train-on-real {c['train_real_test_real']:.4f} ({c['n_classes']} classes, {c['n_test']} test)")
    if "frontier" in report:
        lines.append("frontier (privacy loss / train-on-synthetic accuracy / AATS):")
        for index, account in enumerate(report["frontier"].get("model_privacy", [])):
            which = f"model {index + 1}" if len(report["frontier"]["model_privacy"]) > 1 else "model"
            lines.append(f"  {which}: " + ("trained without a differential-privacy guarantee" if account is None
                                           else f"DP-SGD, (ε = {account['epsilon_spent']:.3g}, δ = "
                                                f"{account['delta']:.2g}) per person"))
        for point in report["frontier"]["points"]:
            accuracy = "" if point["accuracy"] is None else f"{point['accuracy']:.4f}"
            lines.append(f"  {point['name']:30s}{point['privacy_loss']:10.4f}{accuracy:>10s}{point['aats']:10.4f}")
        beats = report["frontier"]["beats_frequency_generator"]
        lines.append(f"  better than per-population frequencies on both axes: {', '.join(beats) or 'none'}")
        if report["frontier"]["privacy_limit"] is not None:
            within = report["frontier"]["within_fresh_real_privacy"]
            lines.append(f"  privacy loss within fresh real genomes' (<= {report['frontier']['privacy_limit']:.4f}): "
                         f"{', '.join(within) or 'none'}")
    lines.append("files: " + ", ".join(report.get("files", [])))
    return "\n".join(lines)
