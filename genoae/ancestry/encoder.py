"""The encoder network (genotypes → softmax Q, decoder P) and its closed-form fit to a solution of the refinement.

The encoder gives ``genoae project`` its starting Q: the closer that is to where the refinement with P fixed ends,
the fewer passes the refinement needs.  It is set to what places *new* individuals best, measured on held-out
halves of three real and simulated sets: one linear layer holding the weighted least-squares estimate of Q under
the decoder's P, clamped to the simplex by a softmax of its logarithm.  Its held-out Q RMSE to the converged
projection was 0.0031 (hapmap3_hm3_957, K = 6), 0.0047 (simulated, K = 4) and 0.011 (hapmap3, K = 3).  The
encoders it replaced did worse on new individuals although closer on the reference: a hidden GELU layer with a
softmax regression fitted to the reference's Q (0.047, 0.019, –: P was estimated from those very individuals,
so their features are sharper than a newcomer's), and the same regression trained on synthetic individuals drawn
from the fitted model (0.016, 0.010, 0.014).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from genoae.device import to_numpy
from genoae.genotypes import pack_calls
from genoae.likelihood import FREQ_MAX, FREQ_MIN, Q_MIN, PackedCalls, refine_rows
from genoae.shard import LOCAL, Shard

# The least-squares weights 1/(f(1 − f)) (a standardised call), bounded for rare variants
MIN_VARIANCE = 0.01
# The refinement's stopping tolerance in projection (per observed call), `project`'s default
PROJECTION_TOL = 5e-9
# Synthetic individuals drawn from the fitted model to measure the encoder for the log: about this many calls,
# within [CHECK_MIN, CHECK_MAX] individuals (the measurement is a fixed cost of every admix run: 10 million calls
# took 0.7-0.8 s on hapmap3, most of a small run's network step)
CHECK_CALLS = 2_000_000
CHECK_MIN, CHECK_MAX = 100, 500
# The refinement starts from the encoder's Q with every entry raised to at least this (and renormalised): from an
# entry at the boundary, a Newton step only doubles it where the individual's ℓ is log-like in that ancestry, and
# the refinement took 8-9 iterations from the encoder's clamped Q against 3-5 from this floor (held-out halves of
# hapmap3, hapmap3_hm3_957 and a simulated set)
START_FLOOR = 0.01


class NeuralAdmixture:
    """Encoder: centred genotypes → one linear layer (the weighted least-squares estimate q̂ of Q under P) →
    softmax(log clamp(q̂)) = Q.  Decoder: P = sigmoid(logits), (M, K).

    The layer's product is rescaled by ``n_variants / observed calls`` of each individual, so that a missing call
    (entered as 0, the mean) does not pull an individual's Q toward the average; the softmax of the logarithm of
    q̂ clamped to [Q_MIN, 1] is q̂ clamped and renormalised: a point of the simplex.

    The weights are float32 NumPy arrays set in closed form (:func:`fit_encoder`), never by gradient descent, so
    the network needs no autograd and no torch: its state dict (``encoder.weight`` (K, M), ``encoder.bias`` (K,),
    ``p_logits`` (M, K), ``input_freq`` (M,)) is what the model file holds, in torch's format
    (:mod:`genoae.io.model`).

    Parameters
    ----------
    n_variants : int
    K : int

    Attributes
    ----------
    input_freq : ndarray, float32, shape (n_variants,)
        A2 frequency of the training data; the encoder sees ``g / 2 − freq`` and missing calls as 0 (mean-filled at
        the input only: the likelihood never sees them).
    """

    STATE = ("encoder.weight", "encoder.bias", "p_logits", "input_freq")

    def __init__(self, n_variants: int, K: int):
        self.n_variants, self.K = int(n_variants), int(K)
        self.weight = np.zeros((self.K, self.n_variants), np.float32)
        self.bias = np.zeros(self.K, np.float32)
        self.p_logits = np.zeros((self.n_variants, self.K), np.float32)
        self.input_freq = np.full(self.n_variants, 0.5, np.float32)

    def state_dict(self) -> dict:
        return dict(zip(self.STATE, (self.weight, self.bias, self.p_logits, self.input_freq)))

    def load_state_dict(self, state: dict) -> None:
        """Set the weights from a state dict (NumPy arrays or tensors); KeyError / ValueError when its names or
        shapes are not this network's."""
        missing, unexpected = set(self.STATE) - set(state), set(state) - set(self.STATE)
        if missing or unexpected:
            raise KeyError(f"missing {sorted(missing)}, unexpected {sorted(unexpected)}")
        arrays = {name: np.asarray(to_numpy(state[name]), np.float32) for name in self.STATE}
        for name, current in self.state_dict().items():
            if arrays[name].shape != current.shape:
                raise ValueError(f"{name} has shape {arrays[name].shape}, this model's is {current.shape}")
        self.weight, self.bias, self.p_logits, self.input_freq = (arrays[name] for name in self.STATE)

    def encode(self, counts: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """Q for a batch of sample-major calls.

        Parameters
        ----------
        counts : ndarray, float, shape (b, n_variants)   A2 counts (any value where missing)
        observed : ndarray, bool, shape (b, n_variants)

        Returns
        -------
        ndarray, float64, shape (b, K), rows on the simplex
        """
        x = np.where(observed, np.asarray(counts, np.float64) / 2.0 - self.input_freq, 0.0)
        return self.head(x @ self.weight.T.astype(np.float64), np.asarray(observed).sum(1))

    def head(self, linear: np.ndarray, n_observed: np.ndarray, n_variants: int | None = None) -> np.ndarray:
        """Q from the layer's product ``x Wᵀ`` (b, K) and each individual's observed calls (b,), out of
        ``n_variants`` (default: the layer's; a SNP-sharded layer holds one rank's part of them).  float64."""
        coverage = (n_variants or self.n_variants) / np.maximum(np.asarray(n_observed, np.float64), 1.0)
        estimate = np.clip(linear * coverage[:, None] + self.bias, Q_MIN, 1.0)
        return estimate / estimate.sum(axis=1, keepdims=True)  # = softmax(log(estimate))

    @property
    def P(self) -> np.ndarray:
        """Decoder allele frequencies, float64 (n_variants, K), in ADMIXTURE's bounds [1e-5, 1 − 1e-5]."""
        return (1.0 / (1.0 + np.exp(-self.p_logits.astype(np.float64)))).clip(FREQ_MIN, FREQ_MAX)

    def set_P(self, P) -> None:
        P = np.asarray(to_numpy(P), np.float64).clip(FREQ_MIN, FREQ_MAX)
        self.p_logits = (np.log(P) - np.log1p(-P)).astype(np.float32)


def encode_packed(model: NeuralAdmixture, calls: PackedCalls) -> np.ndarray:
    """The encoder's Q of every individual of SNP-major packed calls, float64 (n, K): one pass that decodes a SNP
    at a time (memory: n × K, no sample-major copy and no decoded block of the calls).  SNP-sharded calls: the
    model holds the rank's part of the layer, and the partial products are summed over the ranks."""
    freq = model.input_freq.astype(np.float64)
    # x = g/2 − freq = (g − 2 freq) · ½, 0 where missing
    linear = calls.centred_product(model.weight.astype(np.float64), 2.0 * freq, np.full(len(freq), 0.5))
    return model.head(linear.T, to_numpy(calls.n_observed), calls.shard.total(calls.n_variants))


@dataclass
class EncoderFit:
    """How well the encoder places new individuals, measured on synthetic ones drawn from the fitted model."""

    n_synthetic: int = 0
    heldout_rmse: float = float("nan")      # encoder Q vs converged projection
    iterations: int = 0                     # refinement iterations of that projection, from the encoder's Q
    seconds: float = 0.0


def fit_encoder(model: NeuralAdmixture, Q_reference: np.ndarray, missing_rates: np.ndarray,
                rng: np.random.Generator, shard: Shard = LOCAL, device: str = "cpu") -> EncoderFit:
    """Set the encoder of ``model`` (whose decoder already holds the refined P and ``input_freq`` the reference's
    A2 frequencies) in closed form, then measure it on synthetic individuals.

    With C = P − freq (n_variants, K) and weights w = 1/(f(1 − f)), an individual's input x = g/2 − freq has
    expectation C q (q sums to 1); the layer computes the weighted least-squares estimate
    q̂ = (Cᵀ W C + λ 11ᵀ)⁻¹ (Cᵀ W x + λ 1) (the λ row imposes Σq = 1, where C alone is rank-deficient).

    The measurement (for the log): individuals with the reference's Q rows and mixtures of two of them,
    genotypes ~ Binomial(2, q Pᵀ), missing at the rate of a random reference individual, projected as
    ``genoae project`` does (:func:`genoae.ancestry.projection.floored` start, :func:`genoae.likelihood.refine_rows`).

    Parameters
    ----------
    Q_reference : ndarray, float, (n_reference, K)  the refined Q of the reference individuals
    missing_rates : ndarray, float, (n_reference,)       their missing-call rates
    shard : Shard
        SNP-sharded fits: ``model`` holds the rank's variants; the Gram matrix and the measurement's sums over
        variants are summed over the ranks, and the synthetic calls are the one-process run's rows.
    device : str
        Where the measurement's synthetic calls are refined.

    Returns
    -------
    EncoderFit  (empty for K = 1, where the encoder's Q is 1)
    """
    tick = time.perf_counter()
    K, m = model.K, model.n_variants
    P = model.P
    freq = model.input_freq.astype(np.float64)
    C = P - freq[:, None]                                     # (m, K)
    weights = 1.0 / np.maximum(freq * (1.0 - freq), MIN_VARIANCE)
    gram = shard.sum(C.T @ (weights[:, None] * C))
    lam = float(np.trace(gram)) / K + 1e-12
    solve = np.linalg.inv(gram + lam * np.ones((K, K)))
    model.weight = (solve @ (weights[:, None] * C).T).astype(np.float32)
    model.bias = (solve @ np.full(K, lam)).astype(np.float32)
    if K == 1:
        return EncoderFit()

    # sized by all variants: a SNP-sharded rank holds only its share, and every rank must draw the same cohort
    n_synthetic = int(np.clip(CHECK_CALLS // max(shard.total(m), 1), CHECK_MIN, CHECK_MAX))
    Q_synthetic = synthetic_q(np.asarray(Q_reference, np.float64), n_synthetic, rng)
    calls = PackedCalls(synthetic_calls(P, Q_synthetic, missing_rates, rng, shard=shard), n_synthetic, device,
                        shard=shard)
    Q_encoder = encode_packed(model, calls)
    target, trace = refine_rows(calls, floored(Q_encoder), P, tol=PROJECTION_TOL)
    rmse = float(np.sqrt(((Q_encoder - target) ** 2).mean()))
    return EncoderFit(n_synthetic, rmse, len(trace) - 1, time.perf_counter() - tick)


def floored(Q: np.ndarray, floor: float = START_FLOOR) -> np.ndarray:
    """Q with every entry at least ``floor``, rows renormalised: the refinement's start from an encoder's Q."""
    Q = np.maximum(Q, floor)
    return Q / Q.sum(axis=1, keepdims=True)


def synthetic_q(Q_reference: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` ancestry rows: half resampled reference rows, half mixtures t·q_a + (1 − t)·q_b of two (t uniform),
    so that admixed cohorts between the reference's clusters are covered too.  float64 (n, K)."""
    picks = Q_reference[rng.integers(len(Q_reference), size=(n, 2))]
    t = rng.random(n)[:, None]
    t[: n // 2] = 1.0
    Q = t * picks[:, 0] + (1.0 - t) * picks[:, 1]
    return Q[rng.permutation(n)]


def synthetic_calls(P: np.ndarray, Q: np.ndarray, missing_rates: np.ndarray, rng: np.random.Generator,
                    block: int = 1024, shard: Shard = LOCAL) -> np.ndarray:
    """SNP-major packed calls, uint8 (n_variants, ceil(n / 4)), of individuals with ancestry ``Q`` under ``P``:
    g ~ Binomial(2, (Q Pᵀ)_ij) as two Bernoulli draws, each call missing with the rate of a random reference
    individual (drawn per synthetic individual), generated one block of SNPs at a time.  Each block of ``block``
    SNPs (counted over all variants) draws from its own stream, so a SNP-sharded run (``P`` the rank's rows of
    ``shard``) draws the same calls as one process."""
    n = Q.shape[0]
    rates = np.asarray(missing_rates, np.float64)[rng.integers(len(missing_rates), size=n)]
    seed = int(rng.integers(1 << 62))
    first = shard.start if shard.sharded else 0
    last, total = first + P.shape[0], shard.total(P.shape[0])
    packed = np.empty((P.shape[0], (n + 3) // 4), np.uint8)
    for index in range(first // block, -(-last // block)):
        start, stop = max(index * block, first), min((index + 1) * block, last)
        rows = min(block, total - index * block)
        uniform = np.random.default_rng([seed, index]).random((3, rows, n))[:, start - index * block:
                                                                             stop - index * block]
        h = P[start - first:stop - first] @ Q.T                               # (b, n)
        g = (uniform[0] < h).astype(np.int8) + (uniform[1] < h)
        g[uniform[2] < rates] = -1
        packed[start - first:stop - first] = pack_calls(g, axis=1)
    return packed
