"""The comparison of several runs on one set of genotypes: :func:`compare_runs` and its text report."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from genoae.compare.align import align_runs
from genoae.compare.metrics import fst_matrix, mean_q_by_population, p_metrics, q_metrics
from genoae.compare.orientation import check_orientation, run_logliks
from genoae.compare.runs import Run
from genoae.errors import InputError, UsageError
from genoae.io.jsonfile import json_ready

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
        return json_ready({"genotypes": self.genotypes_source, "n_samples": self.n_samples,
                           "n_variants": self.n_variants, "log_base": "natural (ADMIXTURE's scale)",
                           "p_allele": "all P converted to A2 (.bim column 6) frequencies",
                           "alignment": "Hungarian matching on Q within K; chain K -> K+1 across K",
                           "fst": "ADMIXTURE's: per-SNP Reynolds et al. 1983 theta weighted by pbar(1-pbar); "
                                  "fst_hudson: Hudson ratio of averages (Bhatia et al. 2013)",
                           "runs": runs, "pairs": self.pairs})


def _common_variants(a: Run, b: Run, n_variants: int) -> tuple[np.ndarray, np.ndarray]:
    """Both runs' aligned P on the variants both cover (a run may cover a subset, e.g. ADAMIXTURE's autosomes)."""
    rows_a = np.arange(n_variants) if a.variant_rows is None else a.variant_rows
    rows_b = np.arange(n_variants) if b.variant_rows is None else b.variant_rows
    common, in_a, in_b = np.intersect1d(rows_a, rows_b, return_indices=True)
    return a.P_aligned[in_a], b.P_aligned[in_b]


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
                entry["p"] = p_metrics(*_common_variants(a, b, a.P.shape[0] if genotypes is None
                                                         else genotypes.n_variants))
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


