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
import torch
from torch import nn

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


class NeuralAdmixture(nn.Module):
    """Encoder: centred genotypes → one linear layer (the weighted least-squares estimate q̂ of Q under P) →
    softmax(log clamp(q̂)) = Q.  Decoder: P = sigmoid(logits), (M, K).

    The layer's product is rescaled by ``n_variants / observed calls`` of each individual, so that a missing call
    (entered as 0, the mean) does not pull an individual's Q toward the average; the softmax of the logarithm of
    q̂ clamped to [Q_MIN, 1] is q̂ clamped and renormalised: a point of the simplex.

    Parameters
    ----------
    n_variants : int
    K : int

    Buffers
    -------
    input_freq : float32, shape (n_variants,)
        A2 frequency of the training data; the encoder sees ``g / 2 − freq`` and missing calls as 0 (mean-filled at
        the input only: the likelihood never sees them).
    """

    def __init__(self, n_variants: int, K: int):
        super().__init__()
        self.n_variants, self.K = int(n_variants), int(K)
        self.encoder = nn.Linear(n_variants, K)
        self.p_logits = nn.Parameter(torch.zeros(n_variants, K))
        self.register_buffer("input_freq", torch.full((n_variants,), 0.5))

    def encode(self, counts: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """Q for a batch of sample-major calls.

        Parameters
        ----------
        counts : torch.Tensor, float, shape (b, n_variants)   A2 counts (any value where missing)
        observed : torch.Tensor, bool, shape (b, n_variants)

        Returns
        -------
        torch.Tensor, float32, shape (b, K), rows on the simplex
        """
        x = torch.where(observed, counts.float() / 2.0 - self.input_freq, torch.zeros((), device=counts.device))
        return self.head(x @ self.encoder.weight.T, observed.sum(1))

    def head(self, linear: torch.Tensor, n_observed: torch.Tensor, n_variants: int | None = None) -> torch.Tensor:
        """Q from the layer's product ``x Wᵀ`` (b, K) and each individual's observed calls (b,), out of
        ``n_variants`` (default: the layer's; a SNP-sharded layer holds one rank's part of them)."""
        coverage = (n_variants or self.n_variants) / n_observed.to(linear.dtype).clamp_min(1.0)
        estimate = linear * coverage[:, None] + self.encoder.bias
        return torch.softmax(torch.log(estimate.clamp(Q_MIN, 1.0)), dim=1)

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


def encode_packed(model: NeuralAdmixture, calls: PackedCalls) -> torch.Tensor:
    """The encoder's Q of every individual of SNP-major packed calls, float64 (n, K): one pass that decodes a SNP
    at a time (memory: n × K, no sample-major copy and no decoded block of the calls).  SNP-sharded calls: the
    model holds the rank's part of the layer, and the partial products are summed over the ranks."""
    weight = model.encoder.weight.detach()
    freq = model.input_freq.double().cpu().numpy()
    # x = g/2 − freq = (g − 2 freq) · ½, 0 where missing
    linear = calls.centred_product(weight.double().cpu().numpy(), 2.0 * freq, np.full(len(freq), 0.5))
    with torch.no_grad():
        Q = model.head(linear.T.to(weight.device, weight.dtype), calls.n_observed.to(weight.device),
                       calls.shard.total(calls.n_variants))
    return Q.to(torch.float64)


@dataclass
class EncoderFit:
    """How well the encoder places new individuals, measured on synthetic ones drawn from the fitted model."""

    n_synthetic: int = 0
    heldout_rmse: float = float("nan")      # encoder Q vs converged projection
    iterations: int = 0                     # refinement iterations of that projection, from the encoder's Q
    seconds: float = 0.0


def fit_encoder(model: NeuralAdmixture, Q_reference: torch.Tensor, missing_rates: np.ndarray,
                rng: np.random.Generator, shard: Shard = LOCAL) -> EncoderFit:
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
    Q_reference : torch.Tensor, float, (n_reference, K)  the refined Q of the reference individuals
    missing_rates : ndarray, float, (n_reference,)       their missing-call rates
    shard : Shard
        SNP-sharded fits: ``model`` holds the rank's variants; the Gram matrix and the measurement's sums over
        variants are summed over the ranks, and the synthetic calls are the one-process run's rows.

    Returns
    -------
    EncoderFit  (empty for K = 1, where the encoder's Q is 1)
    """
    tick = time.perf_counter()
    K, m = model.K, model.n_variants
    layer = model.encoder
    device = layer.weight.device
    P = model.P.detach().double()
    freq = model.input_freq.double()
    C = P - freq[:, None]                                     # (m, K)
    weights = 1.0 / (freq * (1.0 - freq)).clamp_min(MIN_VARIANCE)
    gram = shard.sum(C.T @ (weights[:, None] * C))
    lam = float(torch.trace(gram)) / K + 1e-12
    ones = torch.ones(K, dtype=torch.float64, device=device)
    solve = torch.linalg.inv(gram + lam * torch.outer(ones, ones))
    with torch.no_grad():
        layer.weight.copy_((solve @ (weights[:, None] * C).T).float())
        layer.bias.copy_((solve @ (lam * ones)).float())
    if K == 1:
        return EncoderFit()

    # sized by all variants: a SNP-sharded rank holds only its share, and every rank must draw the same cohort
    n_synthetic = int(np.clip(CHECK_CALLS // max(shard.total(m), 1), CHECK_MIN, CHECK_MAX))
    Q_synthetic = synthetic_q(Q_reference.double().cpu().numpy(), n_synthetic, rng)
    calls = PackedCalls(synthetic_calls(P.cpu().numpy(), Q_synthetic, missing_rates, rng, shard=shard), n_synthetic,
                        device, shard=shard)
    Q_encoder = encode_packed(model, calls)
    target, trace = refine_rows(calls, floored(Q_encoder), P, tol=PROJECTION_TOL)
    rmse = float(torch.sqrt(((Q_encoder - target) ** 2).mean()))
    return EncoderFit(n_synthetic, rmse, len(trace) - 1, time.perf_counter() - tick)


def floored(Q: torch.Tensor, floor: float = START_FLOOR) -> torch.Tensor:
    """Q with every entry at least ``floor``, rows renormalised: the refinement's start from an encoder's Q."""
    Q = Q.clamp_min(floor)
    return Q / Q.sum(dim=1, keepdim=True)


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
