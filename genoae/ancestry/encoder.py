"""The encoder network (genotypes → softmax Q, decoder P) and its closed-form fit to an EM solution."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from genoae.genotypes import DeviceUnpacker, Genotypes
from genoae.likelihood import FREQ_MAX, FREQ_MIN, PackedCalls

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




def initialise_encoder(model: NeuralAdmixture, calls: PackedCalls, Q_refined: torch.Tensor):
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
        freq = model.input_freq.double().cpu().numpy()
        # x = g/2 − freq = (g − 2 freq) · ½, 0 where missing: the centred blocks of the SVD start, decoded once
        for cols, x in calls.centred_blocks(2.0 * freq, np.full(len(freq), 0.5), torch.float32):
            pre += x.to(device).T @ first.weight[:, cols].T
        features = model.encoder[1](pre)
    # softmax regression of the refined Q on the features (tiny: n × hidden), standardised for conditioning
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    z = (features - mean) / std
    target = Q_refined.float().to(device)
    W, b = _softmax_regression(z.double().cpu().numpy(), target.double().cpu().numpy())
    W = torch.from_numpy(W).float().to(device)
    b = torch.from_numpy(b).float().to(device)
    with torch.no_grad():
        output.weight.copy_(W / std)
        output.bias.copy_(b - (W / std) @ mean)
        Q = torch.softmax(features @ output.weight.T + output.bias, dim=1)
    return float(torch.sqrt(((Q - target) ** 2).mean())), Q


def _softmax_regression(z: np.ndarray, target: np.ndarray, ridge: float = 1e-6):
    """W (K, d), b (K,) minimising mean KL(target ‖ softmax(z Wᵀ + b)) + ridge ‖W‖² by L-BFGS (scipy; torch's
    optimisers import torch._dynamo on their first step, 1.4 s here)."""
    from scipy.optimize import minimize

    n, d = z.shape
    K = target.shape[1]
    log_target = np.log(np.clip(target, 1e-8, None))

    def loss_and_gradient(theta):
        W, b = theta[:K * d].reshape(K, d), theta[K * d:]
        logits = z @ W.T + b
        logits -= logits.max(axis=1, keepdims=True)
        log_q = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        loss = float((target * (log_target - log_q)).sum(axis=1).mean() + ridge * (W ** 2).sum())
        residual = (np.exp(log_q) - target * 1.0) / n  # d loss / d logits (target rows sum to 1)
        gradient = np.concatenate([(residual.T @ z + 2 * ridge * W).ravel(), residual.sum(axis=0)])
        return loss, gradient

    result = minimize(loss_and_gradient, np.zeros(K * d + K), jac=True, method="L-BFGS-B",
                      options={"maxiter": 150, "gtol": 1e-7, "ftol": 1e-11, "maxcor": 10})
    return result.x[:K * d].reshape(K, d), result.x[K * d:]


def encode_all(model: NeuralAdmixture, unpacker: DeviceUnpacker, n: int, batch_size: int) -> torch.Tensor:
    """The encoder's Q for every individual, in order, float32 (n, K)."""
    rows = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            counts, observed = unpacker.unpack(np.arange(start, min(start + batch_size, n)))
            rows.append(model.encode(counts, observed))
    return torch.cat(rows)


def sample_major_unpacker(genotypes: Genotypes, device) -> DeviceUnpacker:
    """A DeviceUnpacker whose build decodes blocks of at most ~16 MB of calls (``chunk`` variants × individuals)."""
    return DeviceUnpacker(genotypes, device, chunk=max(4, (1 << 24) // max(genotypes.n_samples, 1)))


