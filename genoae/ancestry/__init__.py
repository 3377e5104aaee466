"""Ancestry estimation: ADMIXTURE's model (Q, P, binomial likelihood) fitted by accelerated block relaxation, with
an encoder network (genotypes → softmax Q) whose decoder is P, set afterwards from P for projecting new individuals.

Q and P, and so every PREFIX.K.Q / .P that ``genoae admix`` writes, come from the start and the refinement (steps
1-2); the encoder (step 3) changes none of them: it only gives :func:`project` its starting Q, which the same
refinement with P fixed then improves.

Modules: :mod:`~genoae.ancestry.start` (SVD + ALS, or PCA + k-means start), :mod:`~genoae.ancestry.estimator`
(:class:`Admixture`: fit, cross-validation, supervised runs), :mod:`~genoae.ancestry.encoder` (the network and its
closed-form fit), :mod:`~genoae.ancestry.projection` (Q of new individuals under a fitted model).

The pipeline of :meth:`Admixture.fit`, top to bottom:

1. **Start**: a randomized SVD of the centred calls (K − 1 components, passes over the packed calls block by block)
   factorised by alternating least squares into Q on the simplex and P in [0, 1], as fastmixture and ADAMIXTURE
   start (``init="kmeans"``: k-means on principal components instead).  All randomness comes from ``seed``.
2. **Refinement to the maximum likelihood**: block relaxation, a Newton step per row of Q (on the simplex) and of P
   (in a box), each row falling back to its EM step where Newton would lower its ℓ, accelerated by the quasi-Newton
   extrapolation of Zhou, Alexander & Lange (:func:`genoae.likelihood.quasi_newton`), as ADMIXTURE does, until an
   iteration raises ℓ by less than ``tol`` × (observed calls).  Every pass reads the packed 2-bit calls through
   the numba kernels of :mod:`genoae.kernels` (on CUDA, EM steps on blocks decoded by torch).
3. **Network**: the decoder holds the refined P; the encoder is set from it in closed form
   (:func:`~genoae.ancestry.encoder.fit_encoder`: one linear layer holding the weighted least-squares estimate of
   Q under P, rescaled for each individual's missing calls, then a softmax of its logarithm), so that
   :func:`project` starts new individuals near their answer (then the row-wise refinement with P fixed,
   :func:`genoae.likelihood.refine_rows`).  The fit also measures the encoder on synthetic individuals drawn
   from the fitted model, for the log.

With ``reference_fraction``, step 1 is replaced by steps 1-3 on a random subset of the individuals plus the
projection of the others onto that fit.

Why the network comes after the EM and not before it: starting the EM from a trained network's Q (decoder trained
too, or frozen at the k-means P) reached a *higher* starting ℓ than the k-means start but then needed 147 SQUAREM
iterations instead of 60 on a 300 × 10,000 simulated set (K = 3; measured with the EM engine of the time), and
ended slightly lower: the softmax encoder
spreads Q away from the simplex boundary, and multiplicative EM updates are slow to bring entries back to ~0.

Calls are A2 allele counts (PLINK ``.bim`` column 6, VCF ALT); P is the A2 frequency, as ADMIXTURE's.
"""
from genoae.ancestry.encoder import NeuralAdmixture
from genoae.ancestry.estimator import Admixture, FitReport, check_k
from genoae.ancestry.projection import project, project_onto_p

__all__ = ["Admixture", "FitReport", "NeuralAdmixture", "check_k", "project", "project_onto_p"]
