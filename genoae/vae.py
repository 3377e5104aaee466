"""GenomeVAE: a population-conditioned variational autoencoder that simulates haplotypes or genotypes.

Architecture (why it looks like this)
-------------------------------------
The SNP axis is cut into blocks of ``block_size`` consecutive variants.  Every block has its own small linear maps
(a *locally connected* input and output layer: SNP-specific weights, as SNPs are not exchangeable), and the blocks
talk to each other through 1-D convolutions over the block axis.  The latent code has two parts:

* a **local** latent, ``latent_channels`` numbers per block (shape ``(latent_channels, n_blocks)``), which carries
  which local haplotype a chromosome has, so linkage disequilibrium within and between neighbouring blocks is
  produced by the decoder rather than by chance;
* a **global** latent of ``global_dim`` numbers, broadcast to every block, for ancestry-like structure that spans
  the whole region (and, on panels of unlinked SNPs, the only structure there is).

The local latents have an **autoregressive prior** p(z_k | z_{k-W}, ..., z_{k-1}, global, population) (a causal
convolution over blocks, trained through the KL term), so the code of a block only pays for what its neighbours do
not already say: with an independent N(0, I) prior per block the model gave up most haplotype information and
its samples lost LD.  With ``prior_components > 1`` each conditional is a mixture of Gaussians (its KL term is
then the exact entropy of q plus a one-sample estimate of the cross-entropy): local haplotype groups are discrete,
and a single Gaussian spreads prior mass between their codes.

The population label (one-hot) enters the encoder, the decoder and the prior, as in class-conditional VAEs.  Each
output SNP reads the decoder features of its own block (``readout_blocks=1``; the convolutions already mix
neighbouring blocks).  All per-SNP work is one batched matrix product per block, which keeps sampling
10,000 genomes x 10,000 SNPs within seconds on a CPU.

Decoder likelihood: Bernoulli per SNP for phased haplotypes (``mode="haplotype"``), categorical over 0/1/2 for
unphased genotypes (``mode="genotype"``).  Missing calls are masked out of the reconstruction loss.  Synthetic
data are drawn from the decoder's probabilities (never thresholded), which is what keeps them from being copies.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from genoae.errors import InputError, UsageError
from genoae.genotypes import Genotypes, Samples, Variants


# ====================================================================== the network
class BlockLinear(nn.Module):
    """Independent linear maps, one per block: ``(B, n_blocks, in_features) -> (B, n_blocks, out_features)``."""

    def __init__(self, n_blocks: int, in_features: int, out_features: int, init_scale: float = 1.0):
        super().__init__()
        bound = init_scale / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(n_blocks, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(n_blocks, 1, out_features))

    def forward(self, x):
        # (B, L, in) -> (L, B, in) @ (L, in, out) -> (L, B, out) -> (B, L, out)
        # a contiguous (L, B, in) operand: baddbmm on a strided view was 30x slower with 2 CPU threads
        return torch.baddbmm(self.bias, x.transpose(0, 1).contiguous(), self.weight).transpose(0, 1)


class ResidualConv(nn.Module):
    """Pre-activation residual 1-D convolution over the block axis."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.norm = nn.GroupNorm(1, channels)
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x):
        return x + self.conv(F.gelu(self.norm(x)))


class GenomeVAE(nn.Module):
    """The network: block-local input/output layers, convolutions over blocks, local + global latents.

    Parameters
    ----------
    n_variants : int
    mode : {"haplotype", "genotype"}
        Bernoulli per SNP on 0/1 alleles, or categorical over 0/1/2 A2 counts.
    n_pops : int
        Number of population labels (0 = unconditional).
    block_size, hidden, latent_channels, global_dim, n_layers, kernel_size, readout_blocks : int
        See the module docstring.
    prior_window : int
        Blocks the autoregressive local prior looks back over (0 = independent N(0, I) per block).
    prior_components : int
        Gaussians in each conditional of the local prior (1 = one Gaussian, closed-form KL).
    prior_hidden : int, optional
        Width of the prior network (default: ``hidden``).  The prior decides how long a sampled chromosome stays
        on one haplotype background, so it gets its own width.
    """

    def __init__(self, n_variants: int, mode: str = "haplotype", n_pops: int = 0, block_size: int = 32,
                 hidden: int = 32, latent_channels: int = 4, global_dim: int = 16, n_layers: int = 2,
                 kernel_size: int = 5, readout_blocks: int = 1, prior_window: int = 8, prior_components: int = 1,
                 prior_hidden: int | None = None):
        super().__init__()
        if mode not in ("haplotype", "genotype"):
            raise ValueError(f"mode must be 'haplotype' or 'genotype', not {mode!r}")
        self.n_variants = n_variants
        self.mode = mode
        self.n_states = 2 if mode == "haplotype" else 3      # input one-hot width per SNP
        self.n_logits = 1 if mode == "haplotype" else 3      # decoder outputs per SNP
        self.n_pops = n_pops
        self.block_size = block_size
        self.n_blocks = max(1, math.ceil(n_variants / block_size))
        self.latent_channels = latent_channels
        self.global_dim = global_dim
        self.readout_blocks = readout_blocks
        self.prior_window = prior_window
        self.prior_components = prior_components if prior_window else 1
        L, S, H = self.n_blocks, block_size, hidden

        self.encoder_in = BlockLinear(L, S * self.n_states, H)
        self.encoder_pop = nn.Linear(n_pops, H, bias=False) if n_pops else None
        self.encoder_trunk = nn.Sequential(*[ResidualConv(H, kernel_size) for _ in range(n_layers)])
        self.encoder_local = nn.Conv1d(H, 2 * latent_channels, 1)
        self.encoder_global = nn.Linear(H, 2 * global_dim) if global_dim else None
        # class-conditional prior of the global latent, N(mu_pop, sigma_pop^2): where a population's codes sit is
        # learned, so sampling "YRI" draws from YRI's region of latent space (starts at N(0, I))
        self.prior_global = nn.Embedding(n_pops, 2 * global_dim) if (n_pops and global_dim) else None
        if self.prior_global is not None:
            nn.init.zeros_(self.prior_global.weight)

        self.decoder_in = nn.Linear(latent_channels, H)
        self.decoder_context = nn.Linear(global_dim + n_pops, H, bias=False) if global_dim + n_pops else None
        self.decoder_trunk = nn.Sequential(*[ResidualConv(H, kernel_size) for _ in range(n_layers)])
        self.decoder_norm = nn.GroupNorm(1, H)
        self.decoder_out = BlockLinear(L, H * readout_blocks, S * self.n_logits, init_scale=0.1)
        # a direct per-population, per-SNP logit offset: population frequency differences are often small and
        # SNP-specific, and without this path the decoder blurred close populations together
        self.decoder_pop_bias = nn.Parameter(torch.zeros(n_pops, n_variants * self.n_logits)) if n_pops else None

        if prior_window:
            # autoregressive prior over blocks: p(z_k | z_{k-W..k-1}, z_global, pop), a causal convolution
            HP = prior_hidden or hidden
            self.prior_conv = nn.Conv1d(latent_channels, HP, prior_window)
            self.prior_position = nn.Parameter(torch.zeros(1, HP, L))
            self.prior_context = nn.Linear(global_dim + n_pops, HP) if global_dim + n_pops else None
            K, C = self.prior_components, latent_channels
            # K > 1: a mixture of K Gaussians per block (channels: K*C means, K*C log-variances, K mixture logits).
            # Haplotype groups are discrete: a single Gaussian conditional puts mass between the groups' codes,
            # which decode to blurred in-between haplotypes
            n_out = 2 * C if K == 1 else 2 * K * C + K
            self.prior_out = nn.Sequential(nn.GELU(), nn.Conv1d(HP, HP, 1), nn.GELU(), nn.Conv1d(HP, n_out, 1))
            nn.init.zeros_(self.prior_out[-1].weight)  # start at N(0, I)
            nn.init.zeros_(self.prior_out[-1].bias)
            if K > 1:
                # distinct component means, or the components would receive identical gradients forever
                self.prior_out[-1].bias.data[:K * C].normal_(0.0, 1.0)

    # ------------------------------------------------------------------ helpers
    def _one_hot_blocks(self, states):
        """(B, M) int states (-1 missing) -> (B, L, S * n_states) float one-hot, zeros where missing or padded."""
        B, M = states.shape
        padded = F.pad(states.long(), (0, self.n_blocks * self.block_size - M), value=-1)
        one_hot = F.one_hot(padded.clamp(min=0), self.n_states).float() * (padded >= 0).unsqueeze(-1)
        return one_hot.reshape(B, self.n_blocks, self.block_size * self.n_states)

    def encode(self, states, pop_one_hot=None):
        """Posterior parameters.

        Returns
        -------
        mu_local, logvar_local : Tensor, shape (B, latent_channels, n_blocks)
        mu_global, logvar_global : Tensor, shape (B, global_dim) (None when global_dim is 0)
        """
        h = self.encoder_in(self._one_hot_blocks(states))  # (B, L, H)
        if self.encoder_pop is not None:
            h = h + self.encoder_pop(pop_one_hot).unsqueeze(1)
        h = self.encoder_trunk(h.transpose(1, 2))  # (B, H, L)
        mu_local, logvar_local = self.encoder_local(h).chunk(2, dim=1)
        if self.encoder_global is None:
            return mu_local, logvar_local, None, None
        mu_global, logvar_global = self.encoder_global(h.mean(dim=2)).chunk(2, dim=1)
        return mu_local, logvar_local, mu_global, logvar_global

    def decode(self, z_local, z_global=None, pop_one_hot=None):
        """Decoder logits.

        Returns
        -------
        logits : Tensor, float, shape (B, n_variants) for haplotypes, (B, n_variants, 3) for genotypes
        """
        B, _, L = z_local.shape
        # the global latent and the population are the same for every block: project them once per row
        h = self.decoder_in(z_local.transpose(1, 2))  # (B, L, H); a Linear is much faster than a 1x1 conv on CPU
        if self.decoder_context is not None:
            context = [t for t in (z_global, pop_one_hot if self.n_pops else None) if t is not None]
            h = h + self.decoder_context(torch.cat(context, dim=1)).unsqueeze(1)
        h = self.decoder_trunk(h.transpose(1, 2))
        h = F.gelu(self.decoder_norm(h)).transpose(1, 2)  # (B, L, H)
        if self.readout_blocks > 1:
            # each block also reads the features of readout_blocks // 2 neighbours on each side
            half = self.readout_blocks // 2
            padded = F.pad(h, (0, 0, half, half))
            h = torch.cat([padded[:, k:k + L] for k in range(self.readout_blocks)], dim=2)  # (B, L, H*R)
        logits = self.decoder_out(h)  # (B, L, S * n_logits)
        logits = logits.reshape(B, L * self.block_size, self.n_logits)[:, :self.n_variants]
        if self.decoder_pop_bias is not None:
            logits = logits + (pop_one_hot @ self.decoder_pop_bias).view(B, self.n_variants, self.n_logits)
        return logits.squeeze(-1) if self.n_logits == 1 else logits

    def global_prior_parameters(self, pop_one_hot):
        """Mean and log-variance of p(z_global | population), each (B, global_dim)."""
        return (pop_one_hot @ self.prior_global.weight).chunk(2, dim=1)

    def sample_global_prior(self, n: int, pop_one_hot=None, temperature: float = 1.0, generator=None, device=None):
        """Draw global latents, shape (n, global_dim) (None when the model has none)."""
        if not self.global_dim:
            return None
        noise = temperature * torch.randn(n, self.global_dim, generator=generator, device=device)
        if self.prior_global is None:
            return noise
        mu, logvar = self.global_prior_parameters(pop_one_hot)
        return mu + torch.exp(0.5 * logvar) * noise

    def _prior_context(self, z_global, pop_one_hot):
        """(B, H, 1) term of the prior that depends on the global latent and the population (or 0)."""
        if self.prior_context is None:
            return 0.0
        parts = [t for t in (z_global, pop_one_hot if self.n_pops else None) if t is not None]
        return self.prior_context(torch.cat(parts, dim=1)).unsqueeze(-1)

    def prior_parameters(self, z_local, z_global=None, pop_one_hot=None):
        """Mean and log-variance of p(z_k | previous blocks) for every block at once (teacher forcing).

        Returns
        -------
        mu, logvar : Tensor, shape (B, latent_channels, n_blocks)
        """
        L = z_local.shape[2]
        # output k of a width-W convolution over W left-padded zeros + z sees z_{k-W} .. z_{k-1}: causal
        h = self.prior_conv(F.pad(z_local, (self.prior_window, 0)))[:, :, :L]
        h = h + self.prior_position + self._prior_context(z_global, pop_one_hot)
        out = self.prior_out(h)
        if self.prior_components == 1:
            return out.chunk(2, dim=1)
        B, K, C = out.shape[0], self.prior_components, self.latent_channels
        mu = out[:, :K * C].reshape(B, K, C, L)
        logvar = out[:, K * C:2 * K * C].reshape(B, K, C, L)
        return mu, logvar, out[:, 2 * K * C:]  # mixture logits (B, K, L)

    def prior_log_density(self, z_local, z_global=None, pop_one_hot=None):
        """log p(z_local) under the autoregressive prior, per row and block: shape (B, n_blocks)."""
        params = self.prior_parameters(z_local, z_global, pop_one_hot)
        if self.prior_components == 1:
            mu, logvar = params
            return _normal_log_density(z_local, mu, logvar).sum(dim=1)
        mu, logvar, logits = params
        per_component = _normal_log_density(z_local.unsqueeze(1), mu, logvar).sum(dim=2)  # (B, K, L)
        return torch.logsumexp(F.log_softmax(logits, dim=1) + per_component, dim=1)

    @torch.no_grad()
    def sample_local_prior(self, n: int, z_global=None, pop_one_hot=None, temperature: float = 1.0,
                           generator=None, device=None):
        """Draw local latents block by block from the prior.  Returns Tensor, shape (n, latent_channels, n_blocks)."""
        C, L, W = self.latent_channels, self.n_blocks, self.prior_window
        noise = torch.randn(n, C, L, generator=generator, device=device) * temperature
        if not W:
            return noise
        # the same computation as prior_parameters, one block at a time, written as plain matrix products on a
        # (n, L + W, C) buffer: a slice of W blocks is then one contiguous (n, W*C) row block (small conv1d calls
        # on strided slices were the bottleneck of sampling)
        z = torch.zeros(n, L + W, C, device=device)
        conv_weight = self.prior_conv.weight.permute(2, 1, 0).reshape(W * C, -1)  # (W*C, H), window-major
        hidden_weight, out_weight = self.prior_out[1].weight[:, :, 0], self.prior_out[3].weight[:, :, 0]
        context = self._prior_context(z_global, pop_one_hot)
        context = context.squeeze(-1) if torch.is_tensor(context) else 0.0
        bias = self.prior_conv.bias + self.prior_position[0].T  # (L, H)
        noise = noise.transpose(1, 2)  # (n, L, C)
        K = self.prior_components
        if K > 1:
            # the mixture component of every block by inverse CDF: one uniform per row and block, drawn up front like
            # the noise (a Gumbel-max draw needs K uniforms and two logs each: 1.4 s more at K = 16, 10k x 10k SNPs)
            uniform = torch.rand(n, L, 1, generator=generator, device=device)
            rows = torch.arange(n, device=device)
        for k in range(L):
            h = torch.addmm(bias[k] + context, z[:, k:k + W].reshape(n, W * C), conv_weight) \
                if torch.is_tensor(context) else torch.addmm(bias[k], z[:, k:k + W].reshape(n, W * C), conv_weight)
            h = F.linear(F.gelu(h), hidden_weight, self.prior_out[1].bias)
            out = F.linear(F.gelu(h), out_weight, self.prior_out[3].bias)
            if K == 1:
                mu, logvar = out.chunk(2, dim=1)
            else:
                cdf = torch.softmax(out[:, 2 * K * C:], dim=1).cumsum_(dim=1)
                choice = (cdf < uniform[:, k]).sum(dim=1).clamp_(max=K - 1)  # (n,)
                mu = out[:, :K * C].view(n, K, C)[rows, choice]
                logvar = out[:, K * C:2 * K * C].view(n, K, C)[rows, choice]
            z[:, W + k] = mu + torch.exp(0.5 * logvar) * noise[:, k]
        return z[:, W:].transpose(1, 2).contiguous()

    def forward(self, states, pop_one_hot=None):
        """Logits of the reconstruction and KL(q(z|x) || p(z)) per row (shape (B,))."""
        mu_l, logvar_l, mu_g, logvar_g = self.encode(states, pop_one_hot)
        z_l = mu_l + torch.randn_like(mu_l) * torch.exp(0.5 * logvar_l)
        z_g = None if mu_g is None else mu_g + torch.randn_like(mu_g) * torch.exp(0.5 * logvar_g)
        logits = self.decode(z_l, z_g, pop_one_hot)
        if self.prior_window and self.prior_components > 1:
            # no closed form against a mixture: exact entropy of q, one-sample estimate of the cross-entropy
            entropy = 0.5 * (1.0 + math.log(2 * math.pi) + logvar_l).sum(dim=(1, 2))
            kl = -entropy - self.prior_log_density(z_l, z_g, pop_one_hot).sum(dim=1)
        elif self.prior_window:
            prior_mu, prior_logvar = self.prior_parameters(z_l, z_g, pop_one_hot)
            kl = _kl_gaussians(mu_l, logvar_l, prior_mu, prior_logvar).sum(dim=(1, 2))
        else:
            kl = _kl_standard_normal(mu_l, logvar_l).sum(dim=(1, 2))
        if mu_g is not None:
            if self.prior_global is not None:
                prior_mu, prior_logvar = self.global_prior_parameters(pop_one_hot)
                kl = kl + _kl_gaussians(mu_g, logvar_g, prior_mu, prior_logvar).sum(dim=1)
            else:
                kl = kl + _kl_standard_normal(mu_g, logvar_g).sum(dim=1)
        return logits, kl

    def reconstruction_nll(self, logits, states):
        """Negative log-likelihood per row, summed over observed SNPs.  Shape (B,)."""
        observed = states >= 0
        if self.n_logits == 1:
            nll = F.binary_cross_entropy_with_logits(logits, states.clamp(min=0).float(), reduction="none")
        else:
            nll = F.cross_entropy(logits.transpose(1, 2), states.clamp(min=0).long(), reduction="none")
        return (nll * observed).sum(dim=1)

    @torch.no_grad()
    def init_population_bias(self, pop_frequencies, frequencies):
        """Start the per-population offsets at logit(population frequency) - logit(overall frequency).

        pop_frequencies : ndarray, shape (n_pops, n_variants) or (n_pops, n_variants, 3); frequencies as in
        :meth:`init_output_bias`.  Frequencies are clipped to [0.01, 0.99] so tiny populations do not start extreme.
        """
        if self.decoder_pop_bias is None:
            return

        def link(f):
            f = np.clip(np.asarray(f, np.float64), 0.01, 0.99)
            return np.log(f / (1 - f)) if self.n_logits == 1 else np.log(f)

        offset = link(pop_frequencies) - link(frequencies)[None]
        self.decoder_pop_bias.copy_(torch.as_tensor(offset.reshape(len(offset), -1), dtype=torch.float32))

    @torch.no_grad()
    def init_output_bias(self, frequencies):
        """Start the decoder at the allele (genotype) frequencies, so early training learns structure, not counts.

        frequencies : ndarray, float, shape (n_variants,) for haplotypes, (n_variants, 3) for genotypes
        """
        f = np.clip(np.asarray(frequencies, dtype=np.float64), 1e-3, 1 - 1e-3)
        bias = np.log(f / (1 - f)) if self.n_logits == 1 else np.log(f)
        bias = bias.reshape(self.n_variants, self.n_logits)
        full = np.zeros((self.n_blocks * self.block_size, self.n_logits))
        full[:self.n_variants] = bias
        self.decoder_out.bias.copy_(torch.as_tensor(full.reshape(self.n_blocks, 1, -1), dtype=torch.float32))


def _normal_log_density(x, mu, logvar):
    """log N(x; mu, exp(logvar)), elementwise."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (x - mu).pow(2) * torch.exp(-logvar))


def _kl_standard_normal(mu, logvar):
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def _kl_gaussians(mu_q, logvar_q, mu_p, logvar_p):
    """KL(N(mu_q, var_q) || N(mu_p, var_p)), elementwise."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) / logvar_p.exp() - 1.0)


# ====================================================================== the estimator
@dataclass
class TrainingHistory:
    """Per-epoch means per row: reconstruction NLL, KL, beta used, held-out loss (recon + KL at full beta)."""

    reconstruction: list = field(default_factory=list)
    kl: list = field(default_factory=list)
    beta: list = field(default_factory=list)
    validation: list = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0


class SyntheticGenomes:
    """Fit a :class:`GenomeVAE` to real genomes and sample synthetic ones (scikit-learn style estimator).

    Parameters
    ----------
    mode : {"auto", "haplotype", "genotype"}
        ``auto`` = haplotypes when the input is phased, genotypes otherwise.
    latent_channels, global_dim, hidden, block_size, n_layers, kernel_size, prior_window : int
        Network size (see :class:`GenomeVAE`): local latent channels per block of ``block_size`` SNPs, global
        latent size, convolution channels / layers / kernel, and how many blocks the latent prior looks back.
    prior_components : int
        Mixture components of each conditional of the autoregressive local prior (1 = a single Gaussian).
    prior_hidden : int or None
        Width of the local prior network (None = ``hidden``).  Wider follows a chromosome's haplotype background
        further (better LD and AATS) but sits closer to the training haplotypes (privacy loss): see
        ``scripts/BENCHMARKS_VAE.md``.
    beta : float
        Weight of the KL term once warm-up is over.
    warmup_epochs : int
        KL weight rises linearly from 0 to ``beta`` over these epochs.
    epochs, batch_size, learning_rate : training schedule (AdamW).
    validation_fraction : float
        Share of *individuals* held out for early stopping (both haplotypes of a person stay together).
    patience : int
        Stop when the held-out loss has not improved for this many epochs (after warm-up).
    seed : int or None
    device : str   ``auto``, ``cpu`` or ``cuda``.

    Attributes
    ----------
    model_ : GenomeVAE
    populations_ : list of str   label order of the one-hot (empty = unconditional)
    population_counts_ : list of int   training individuals per population
    variants_ : Variants
    history_ : TrainingHistory
    """

    def __init__(self, mode: str = "auto", latent_channels: int = 8, global_dim: int = 16, hidden: int = 32,
                 block_size: int = 64, n_layers: int = 2, kernel_size: int = 5, prior_window: int = 16,
                 prior_components: int = 4, prior_hidden: int | None = None, beta: float = 1.0,
                 warmup_epochs: int = 5, epochs: int = 150, batch_size: int = 64, learning_rate: float = 2e-3,
                 weight_decay: float = 0.0, validation_fraction: float = 0.1, patience: int = 10,
                 seed: int | None = 0, device: str = "auto", progress: bool = True):
        self.mode = mode
        self.latent_channels = latent_channels
        self.global_dim = global_dim
        self.hidden = hidden
        self.block_size = block_size
        self.n_layers = n_layers
        self.kernel_size = kernel_size
        self.prior_window = prior_window
        self.prior_components = prior_components
        self.prior_hidden = prior_hidden
        self.beta = beta
        self.warmup_epochs = warmup_epochs
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.seed = seed
        self.device = device
        self.progress = progress

    # ------------------------------------------------------------------ settings
    def _architecture(self) -> dict:
        return dict(latent_channels=self.latent_channels, global_dim=self.global_dim, hidden=self.hidden,
                    block_size=self.block_size, n_layers=self.n_layers, kernel_size=self.kernel_size,
                    prior_window=self.prior_window, prior_components=self.prior_components,
                    prior_hidden=self.prior_hidden)

    def get_params(self) -> dict:
        return {name: getattr(self, name) for name in (
            "mode", "latent_channels", "global_dim", "hidden", "block_size", "n_layers", "kernel_size",
            "prior_window", "prior_components", "prior_hidden", "beta",
            "warmup_epochs", "epochs", "batch_size", "learning_rate", "weight_decay", "validation_fraction",
            "patience", "seed", "device")}

    # ------------------------------------------------------------------ fitting
    def fit(self, genotypes: Genotypes, populations=None) -> "SyntheticGenomes":
        """Train on ``genotypes``.

        Parameters
        ----------
        genotypes : Genotypes
        populations : array_like of str, shape (n_samples,), optional
            Population of each individual; the model is conditional when given (an empty label is a population
            of its own: drop unlabelled individuals first if that is not wanted).
        """
        from genoae.device import choose_device, seed_everything

        rng = seed_everything(self.seed)
        device = choose_device(self.device)
        mode = self.mode
        if mode == "auto":
            mode = "haplotype" if genotypes.phased else "genotype"
        if mode == "haplotype" and not genotypes.phased:
            raise UsageError(f"{genotypes.source or 'the input'} is not phased: train with mode='genotype'")
        if genotypes.n_samples < 4:
            raise InputError(genotypes.source, f"need at least 4 individuals to train, got {genotypes.n_samples}")
        self.mode_ = mode

        # ---- data: rows are haplotypes (2 per person) or individuals; labels per row
        if populations is not None:
            populations = np.asarray(populations, dtype=str)
            if len(populations) != genotypes.n_samples:
                raise UsageError(f"{len(populations)} population labels for {genotypes.n_samples} individuals")
            self.populations_ = sorted(set(populations.tolist()))
            person_pop = np.searchsorted(self.populations_, populations)
            self.population_counts_ = np.bincount(person_pop, minlength=len(self.populations_)).tolist()
        else:
            self.populations_, self.population_counts_ = [], []
            person_pop = np.zeros(genotypes.n_samples, np.int64)
        if mode == "haplotype":
            rows = genotypes.haplotypes().reshape(-1, genotypes.n_variants)  # (2N, M), haplotype 2i+h
            row_person = np.repeat(np.arange(genotypes.n_samples), 2)
        else:
            rows = genotypes.counts()
            row_person = np.arange(genotypes.n_samples)
        row_pop = person_pop[row_person]

        # ---- split by PERSON, so a held-out haplotype never has its partner in training
        n_people = genotypes.n_samples
        n_valid = int(round(self.validation_fraction * n_people)) if self.validation_fraction > 0 else 0
        order = rng.permutation(n_people)
        valid_people = np.zeros(n_people, bool)
        valid_people[order[:n_valid]] = True
        is_valid = valid_people[row_person]
        train_rows = np.flatnonzero(~is_valid)

        self.variants_ = genotypes.variants
        n_pops = len(self.populations_)
        model = GenomeVAE(genotypes.n_variants, mode=mode, n_pops=n_pops, **self._architecture()).to(device)
        overall = _frequencies(rows[train_rows], mode)
        model.init_output_bias(overall)
        if n_pops:
            model.init_population_bias(np.stack([
                _frequencies(rows[train_rows[row_pop[train_rows] == k]], mode) if np.any(row_pop[train_rows] == k)
                else overall for k in range(n_pops)]), overall)
        self.model_ = model

        states = torch.as_tensor(rows, dtype=torch.int8, device=device)
        pop_codes = torch.as_tensor(row_pop, dtype=torch.long, device=device)
        optimiser = torch.optim.AdamW(model.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        history = TrainingHistory()
        best_loss, best_state, stale = math.inf, None, 0
        start_time = time.time()
        generator = torch.Generator(device="cpu").manual_seed(int(rng.integers(2**31)))

        bar = _progress(self.epochs, self.progress)
        for epoch in range(self.epochs):
            beta = self.beta * min(1.0, (epoch + 1) / max(1, self.warmup_epochs))
            model.train()
            permutation = torch.as_tensor(train_rows)[torch.randperm(len(train_rows), generator=generator)]
            total_recon = total_kl = 0.0
            for batch in permutation.split(self.batch_size):
                batch = batch.to(device)
                x = states[batch]
                logits, kl = model(x, self._one_hot(pop_codes[batch]))
                recon = model.reconstruction_nll(logits, x)
                loss = (recon + beta * kl).mean()
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total_recon += recon.sum().item()
                total_kl += kl.sum().item()
            history.reconstruction.append(total_recon / len(train_rows))
            history.kl.append(total_kl / len(train_rows))
            history.beta.append(beta)

            valid_rows = np.flatnonzero(is_valid)
            monitor_rows = valid_rows if len(valid_rows) else train_rows
            held_out = self._mean_loss(states, pop_codes, monitor_rows)
            history.validation.append(held_out)
            bar.set_postfix(recon=f"{history.reconstruction[-1]:.1f}", kl=f"{history.kl[-1]:.1f}",
                            held_out=f"{held_out:.1f}")
            bar.update()
            # early stopping counts only once the KL weight is at its final value (earlier losses are not comparable)
            if epoch + 1 >= self.warmup_epochs:
                if held_out < best_loss - 1e-3:
                    best_loss, stale, history.best_epoch = held_out, 0, epoch + 1
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    stale += 1
                    if stale >= self.patience:
                        break
        bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        history.seconds = time.time() - start_time
        self.history_ = history
        return self

    def _one_hot(self, pop_codes):
        if not self.populations_:
            return None
        return F.one_hot(pop_codes, len(self.populations_)).float()

    @torch.no_grad()
    def _mean_loss(self, states, pop_codes, rows, chunk: int = 512) -> float:
        """Mean negative ELBO (recon + KL, beta = 1 as the final model) per row, with the model in eval mode."""
        self.model_.eval()
        total = 0.0
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(12345)  # the same noise every epoch, so held-out losses are comparable
        for start in range(0, len(rows), chunk):
            batch = torch.as_tensor(rows[start:start + chunk], device=states.device)
            x = states[batch]
            logits, kl = self.model_(x, self._one_hot(pop_codes[batch]))
            total += (self.model_.reconstruction_nll(logits, x) + self.beta * kl).sum().item()
        torch.random.set_rng_state(gen_state)
        return total / max(1, len(rows))

    # ------------------------------------------------------------------ sampling
    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise UsageError("the model is not trained: call fit() or load a model first")

    def population_plan(self, n: int | None = None, counts: dict | None = None) -> list[tuple[str, int]]:
        """Which populations to draw and how many individuals of each.

        ``counts`` (e.g. ``{"YRI": 500, "CEU": 500}``) wins; otherwise ``n`` individuals are split in the training
        proportions (largest remainders), or all unlabelled when the model is unconditional.
        """
        self._check_fitted()
        if counts:
            if not self.populations_:
                raise UsageError("this model was trained without population labels: use -n without --pop")
            unknown = sorted(set(counts) - set(self.populations_))
            if unknown:
                raise UsageError(f"unknown population(s) {', '.join(unknown)}; the model knows "
                                 f"{', '.join(self.populations_)}")
            return [(pop, int(k)) for pop, k in counts.items() if int(k) > 0]
        if n is None or n < 1:
            raise UsageError("give the number of individuals to sample (n >= 1) or per-population counts")
        if not self.populations_:
            return [("", int(n))]
        weights = np.asarray(self.population_counts_, float)
        exact = n * weights / weights.sum()
        take = np.floor(exact).astype(int)
        for i in np.argsort(-(exact - take), kind="stable")[: n - take.sum()]:
            take[i] += 1
        return [(pop, int(k)) for pop, k in zip(self.populations_, take) if k > 0]

    @torch.no_grad()
    def sample_rows(self, n_rows: int, population: str = "", seed: int | None = 0, temperature: float = 1.0,
                    batch_size: int | None = None, device: str | None = None) -> np.ndarray:
        """Draw rows (haplotypes, or genotype vectors in genotype mode) from the model.

        z_global ~ N(0, temperature^2 I), local latents from the autoregressive prior (its noise scaled by
        ``temperature``); alleles (genotypes) are then drawn from the decoder's probabilities, never thresholded.
        ``batch_size`` rows are decoded at a time (default: sized for the CPU cache, or 2048 on a GPU).

        Returns
        -------
        ndarray, int8, shape (n_rows, n_variants)   0/1 alleles (1 = A2), or 0/1/2 A2 counts
        """
        from genoae.device import choose_device

        self._check_fitted()
        model = self.model_
        device = choose_device(device) if device else next(model.parameters()).device
        model.to(device).eval()
        generator = torch.Generator(device=device).manual_seed(0 if seed is None else int(seed))
        code = None
        if self.populations_:
            if population not in self.populations_:
                raise UsageError(f"unknown population {population!r}")
            code = self.populations_.index(population)
        out = torch.empty((n_rows, model.n_variants), dtype=torch.int8)
        on_gpu = torch.device(device).type != "cpu"
        if batch_size is None:
            # on a CPU the decoder is memory-bound: batches whose activations and logits fit in cache decoded
            # 10,000 SNPs twice as fast (256 rows) as batches of 2,048
            batch_size = 2048 if on_gpu else int(np.clip(2_500_000 // max(1, model.n_variants), 16, 2048))
        # the block-by-block prior loop costs Python overhead per step, so it runs on larger chunks of rows (on a
        # CPU not too large: 2,048 rows were 25 % faster than 8,192, whose latent buffer left the cache)
        prior_chunk = max(batch_size, 8192 if on_gpu else 2048)
        for start in range(0, n_rows, prior_chunk):
            b = min(prior_chunk, n_rows - start)
            pop_one_hot = None
            if code is not None:
                pop_one_hot = F.one_hot(torch.full((b,), code, device=device), len(self.populations_)).float()
            z_global = model.sample_global_prior(b, pop_one_hot, temperature, generator, device)
            z_local = model.sample_local_prior(b, z_global, pop_one_hot, temperature, generator, device)
            for first in range(0, b, batch_size):
                part = slice(first, min(first + batch_size, b))
                logits = model.decode(z_local[part], None if z_global is None else z_global[part],
                                      None if pop_one_hot is None else pop_one_hot[part])
                uniform = torch.rand(logits.shape, generator=generator, device=device)
                if model.n_logits == 1:
                    # u < sigmoid(l)  <=>  logit(u) < l, which avoids a sigmoid over every SNP
                    draws = torch.logit(uniform, eps=1e-7) < logits
                else:
                    # Gumbel-max draw from the categorical 0/1/2
                    draws = (logits - torch.log(-torch.log(uniform.clamp_(1e-20, 1.0)))).argmax(dim=-1)
                out[start + part.start:start + part.stop] = draws.to(torch.int8).cpu()
        return out.numpy()

    def sample(self, n: int | None = None, counts: dict | None = None, seed: int | None = 0,
               temperature: float = 1.0, device: str | None = None) -> Genotypes:
        """Synthetic individuals named ``synth_<pop>_<i>`` (``synth_<i>`` for an unconditional model).

        Haplotypic models give phased individuals (two independent haplotypes of the same population).
        Variants are the training variants (positions and alleles).  ``info["populations"]`` holds each
        individual's population.
        """
        plan = self.population_plan(n, counts)
        rows_per_person = 2 if self.mode_ == "haplotype" else 1
        seeds = np.random.SeedSequence(0 if seed is None else seed).spawn(len(plan))
        blocks, names, labels = [], [], []
        for (pop, k), seed_seq in zip(plan, seeds):
            blocks.append(self.sample_rows(rows_per_person * k, pop, seed=int(seed_seq.generate_state(1)[0] % 2**31),
                                           temperature=temperature, device=device))
            prefix = f"synth_{pop}_" if pop else "synth_"
            names += [f"{prefix}{i + 1}" for i in range(k)]
            labels += [pop] * k
        rows = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
        genotypes = pack_rows(rows, self.mode_ == "haplotype", Samples(np.array(names)), self.variants_)
        genotypes.info["populations"] = np.array(labels)
        return genotypes

    # ------------------------------------------------------------------ persistence
    def metadata(self) -> dict:
        self._check_fitted()
        v = self.variants_
        return {
            "mode": self.mode_,
            "n_variants": int(self.model_.n_variants),
            "architecture": self._architecture(),
            "params": self.get_params(),
            "populations": list(self.populations_),
            "population_counts": [int(c) for c in self.population_counts_],
            "variants": {"chrom": v.chrom.tolist(), "pos": v.pos.tolist(), "id": v.id.tolist(),
                         "a1": v.a1.tolist(), "a2": v.a2.tolist(), "cm": v.cm.tolist()},
            "history": asdict(self.history_) if hasattr(self, "history_") else None,
        }

    def save(self, path) -> None:
        """One file (``genoae.io.vae_model``): the state dict plus the JSON metadata; written atomically."""
        from genoae.io.vae_model import save_vae

        save_vae(path, self.model_.state_dict(), self.metadata())

    @classmethod
    def load(cls, path, device: str = "cpu") -> "SyntheticGenomes":
        """Read a model written by :meth:`save` (``torch.load(weights_only=True)``: no code is unpickled)."""
        from genoae.device import choose_device
        from genoae.io.vae_model import load_vae

        state_dict, metadata = load_vae(path)
        try:
            params = dict(metadata["params"])
            estimator = cls(**params)
            estimator.mode_ = metadata["mode"]
            estimator.populations_ = metadata["populations"]
            estimator.population_counts_ = metadata["population_counts"]
            estimator.variants_ = Variants(**metadata["variants"])
            if metadata.get("history"):
                estimator.history_ = TrainingHistory(**metadata["history"])
            model = GenomeVAE(metadata["n_variants"], mode=metadata["mode"], n_pops=len(estimator.populations_),
                              **metadata["architecture"])
            model.load_state_dict(state_dict)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise InputError(path, f"model metadata and weights do not fit together ({type(error).__name__}: "
                                   f"{error})") from None
        estimator.model_ = model.to(choose_device(device)).eval()
        return estimator


def pack_rows(rows: np.ndarray, haplotypic: bool, samples: Samples, variants: Variants) -> Genotypes:
    """Pack sampled rows into a Genotypes container (torch byte arithmetic; same layout as ``from_haplotypes``).

    Parameters
    ----------
    rows : ndarray, int8, shape (2 n, n_variants) haplotypes (row 2i+h = haplotype h of person i), or (n, n_variants)
        A2 counts; no missing values.
    """
    t = torch.from_numpy(np.ascontiguousarray(rows)).to(torch.uint8)
    n_variants = t.shape[1]
    n = t.shape[0] // 2 if haplotypic else t.shape[0]
    n_pad = -n % 4
    if haplotypic:
        haps = F.pad(t.view(n, 2, n_variants), (0, 0, 0, 0, 0, n_pad)) if n_pad else t.view(n, 2, n_variants)
        counts = haps[:, 0] + haps[:, 1]
        # haplotype 2i+h lives in byte i // 4 at bit 2 (i % 4) + h (numpy packbits, bitorder="little")
        bits = haps.reshape(-1, 8, n_variants)
        hap_bytes = bits[:, 0].clone()
        for k in range(1, 8):
            hap_bytes |= bits[:, k] << k
        haplotypes_packed = hap_bytes.T.contiguous().numpy()
    else:
        counts = F.pad(t, (0, 0, 0, n_pad)) if n_pad else t
        haplotypes_packed = None
    codes = (counts + (counts > 0).to(torch.uint8)).reshape(-1, 4, n_variants)  # 0,1,2 -> 0b00, 0b10, 0b11
    packed = (codes[:, 0] | (codes[:, 1] << 2) | (codes[:, 2] << 4) | (codes[:, 3] << 6)).T.contiguous().numpy()
    return Genotypes(packed, samples, variants, haplotypes_packed, source="genoae vae sample")


def _frequencies(rows: np.ndarray, mode: str) -> np.ndarray:
    """Allele frequency per SNP (haplotypes) or genotype-class frequencies (n_variants, 3), missing ignored."""
    observed = rows >= 0
    n = np.maximum(observed.sum(axis=0), 1)
    if mode == "haplotype":
        return (rows == 1).sum(axis=0) / n
    return np.stack([(rows == k).sum(axis=0) / n for k in range(3)], axis=1)


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="vae train", unit="epoch", disable=not enabled, leave=False)


def parse_population_counts(text: str | None) -> dict | None:
    """``"YRI=500,CEU=500"`` -> {"YRI": 500, "CEU": 500}."""
    if not text:
        return None
    counts = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or not name or not value.strip().isdigit():
            raise UsageError(f"--pop expects POP=N[,POP=N...], got {item!r}")
        counts[name.strip()] = counts.get(name.strip(), 0) + int(value)
    return counts


# ====================================================================== file-level entry points (one per command)
def train_file(input_path, output, labels=None, seed: int | None = 0, threads: int | None = None,
               **params) -> SyntheticGenomes:
    """Read genotypes (any format), optionally population labels, fit, save the model.  ``genoae vae train``."""
    from genoae.device import set_threads
    from genoae.io import read_genotypes
    from genoae.io.labels import read_labels

    set_threads(threads)
    genotypes = read_genotypes(input_path)
    populations = read_labels(labels, genotypes.samples) if labels else None
    estimator = SyntheticGenomes(seed=seed, **params).fit(genotypes, populations)
    estimator.save(output)
    return estimator


def sample_file(model_path, output, n: int | None = None, populations: str | None = None, seed: int | None = 0,
                temperature: float = 1.0, device: str = "auto", threads: int | None = None) -> Genotypes:
    """Load a model, draw synthetic individuals, write them by extension.  ``genoae vae sample``."""
    from genoae.device import set_threads
    from genoae.io import output_format, write_genotypes

    set_threads(threads)
    output_format(output)  # refuse an unknown extension before the work
    estimator = SyntheticGenomes.load(model_path, device=device)
    genotypes = estimator.sample(n=n, counts=parse_population_counts(populations), seed=seed,
                                 temperature=temperature)
    write_genotypes(genotypes, output)
    return genotypes
