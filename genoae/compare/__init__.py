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
from genoae.compare.align import align_columns, align_q_series, align_runs, aligned_rmse
from genoae.compare.metrics import (fst_admixture, fst_hudson, fst_matrix, jensen_shannon, mean_q_by_population,
                                    p_metrics, q_metrics)
from genoae.compare.orientation import Orientation, OrientationWarning, check_orientation, run_logliks
from genoae.compare.report import Comparison, compare_runs, format_report
from genoae.compare.runs import (DEFAULT_P_ALLELE, P_CONVENTIONS, SOURCES, Run, detect_source, load_run_specs,
                                 load_runs)

__all__ = ["Comparison", "DEFAULT_P_ALLELE", "Orientation", "OrientationWarning", "P_CONVENTIONS", "Run", "SOURCES",
           "align_columns", "align_q_series", "align_runs", "aligned_rmse", "check_orientation", "compare_runs",
           "detect_source", "format_report", "fst_admixture", "fst_hudson", "fst_matrix", "jensen_shannon",
           "load_run_specs", "load_runs", "mean_q_by_population", "p_metrics", "q_metrics", "run_logliks"]
