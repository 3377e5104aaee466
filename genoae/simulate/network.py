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

With ``codebook_size > 0`` the local latent is **discrete** (a VQ-VAE, van den Oord et al. 2017): each block's
encoder output is replaced by the nearest of ``codebook_size`` code vectors of that block (its own codebook, updated
as exponential moving averages of the encoder outputs assigned to each code, unused codes restarted on encoder
outputs), gradients pass straight through to the encoder, and the prior is a categorical distribution over the next
block's code given the codes of the ``prior_window`` blocks before it (and the global latent and population).  The
latent cost in the loss is then the prior's cross-entropy of the codes (the KL of a one-hot posterior) plus a
commitment term that keeps encoder outputs near their codes.

Decoder likelihood: Bernoulli per SNP for phased haplotypes (``mode="haplotype"``), categorical over 0/1/2 for
unphased genotypes (``mode="genotype"``).  Missing calls are masked out of the reconstruction loss.  Synthetic
data are drawn from the decoder's probabilities (never thresholded), which is what keeps them from being copies.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# weight of ||encoder output - its code||^2 in the latent cost of a discrete model (van den Oord et al. use 0.25)
COMMITMENT_WEIGHT = 0.25


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
    codebook_size : int
        0: continuous local latents (Gaussian posterior, mixture-of-Gaussians prior).  Otherwise discrete local
        latents: this many code vectors per block, with a categorical autoregressive prior (``prior_components``
        is then unused; ``prior_window`` must be at least 1).
    """

    def __init__(self, n_variants: int, mode: str = "haplotype", n_pops: int = 0, block_size: int = 32,
                 hidden: int = 32, latent_channels: int = 4, global_dim: int = 16, n_layers: int = 2,
                 kernel_size: int = 5, readout_blocks: int = 1, prior_window: int = 8, prior_components: int = 1,
                 prior_hidden: int | None = None, codebook_size: int = 0):
        super().__init__()
        if mode not in ("haplotype", "genotype"):
            raise ValueError(f"mode must be 'haplotype' or 'genotype', not {mode!r}")
        if codebook_size and not prior_window:
            raise ValueError("discrete local latents (codebook_size > 0) need an autoregressive prior "
                             "(prior_window >= 1)")
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
        self.codebook_size = codebook_size
        self.prior_components = prior_components if prior_window and not codebook_size else 1
        L, S, H = self.n_blocks, block_size, hidden

        self.encoder_in = BlockLinear(L, S * self.n_states, H)
        self.encoder_pop = nn.Linear(n_pops, H, bias=False) if n_pops else None
        self.encoder_trunk = nn.Sequential(*[ResidualConv(H, kernel_size) for _ in range(n_layers)])
        # continuous: mean and log-variance per channel; discrete: the vector that is matched to a code
        self.encoder_local = nn.Conv1d(H, (1 if codebook_size else 2) * latent_channels, 1)
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
            if codebook_size:
                # the codes of different blocks mean different things: each block reads the prior's features
                # through its own map to its code logits (starts uniform)
                self.prior_out = nn.Sequential(nn.GELU(), nn.Conv1d(HP, HP, 1), nn.GELU())
                self.prior_tokens = BlockLinear(L, HP, codebook_size, init_scale=0.0)
                # per-block codebooks as moving averages (buffers, so they are saved with the weights); counts 0:
                # the first training batch seeds every code it does not assign on one of its rows
                self.vq_decay = 0.99
                self.register_buffer("codebook", F.normalize(torch.randn(L, codebook_size, C), dim=2))
                self.register_buffer("code_counts", torch.zeros(L, codebook_size))
                self.register_buffer("code_sums", torch.zeros(L, codebook_size, C))
            else:
                # K > 1: a mixture of K Gaussians per block (channels: K*C means, K*C log-variances, K mixture
                # logits).  Haplotype groups are discrete: a single Gaussian conditional puts mass between the
                # groups' codes, which decode to blurred in-between haplotypes
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
        # a comparison, not F.one_hot: it needs no check of the values (so it runs under torch.func.vmap, the
        # per-person gradients of DP-SGD), and a missing or padded state (-1) matches no column
        states_range = torch.arange(self.n_states, device=states.device)
        one_hot = (padded.unsqueeze(-1) == states_range).float()
        return one_hot.reshape(B, self.n_blocks, self.block_size * self.n_states)

    def encode(self, states, pop_one_hot=None):
        """Posterior parameters.

        Returns
        -------
        mu_local, logvar_local : Tensor, shape (B, latent_channels, n_blocks)
            (discrete local latents: the encoder output to be matched to a code, and None)
        mu_global, logvar_global : Tensor, shape (B, global_dim) (None when global_dim is 0)
        """
        h = self.encoder_in(self._one_hot_blocks(states))  # (B, L, H)
        if self.encoder_pop is not None:
            h = h + self.encoder_pop(pop_one_hot).unsqueeze(1)
        h = self.encoder_trunk(h.transpose(1, 2))  # (B, H, L)
        if self.codebook_size:
            mu_local, logvar_local = self.encoder_local(h), None
        else:
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
        out = self._prior_features(z_local, z_global, pop_one_hot)
        if self.prior_components == 1:
            return out.chunk(2, dim=1)
        B, K, C = out.shape[0], self.prior_components, self.latent_channels
        mu = out[:, :K * C].reshape(B, K, C, L)
        logvar = out[:, K * C:2 * K * C].reshape(B, K, C, L)
        return mu, logvar, out[:, 2 * K * C:]  # mixture logits (B, K, L)

    # ------------------------------------------------------------------ discrete local latents (codebook_size > 0)
    def quantize(self, z_encoded):
        """The nearest code of each block.

        z_encoded : Tensor, shape (B, latent_channels, n_blocks), the encoder output (scaled to unit length per
        block here, as the codes are: matching is then by angle, and the encoder cannot shrink its outputs to make
        the commitment term vanish)

        Returns
        -------
        codes : LongTensor, shape (B, n_blocks)
        z_unit : Tensor, shape (B, latent_channels, n_blocks)   the encoder output scaled to unit length
        z_code : Tensor, shape (B, latent_channels, n_blocks)   the chosen code vectors
        """
        z_unit = F.normalize(z_encoded, dim=1)
        # (L, B, C) x (L, C, Kc) -> (L, B, Kc): for unit vectors the nearest code has the largest dot product
        similarity = torch.bmm(z_unit.permute(2, 0, 1), self.codebook.transpose(1, 2))
        codes = similarity.argmax(dim=2).T.contiguous()  # (B, L)
        return codes, z_unit, self.code_vectors(codes)

    def code_vectors(self, codes):
        """(B, n_blocks) code indices -> (B, latent_channels, n_blocks) code vectors."""
        blocks = torch.arange(self.n_blocks, device=codes.device)
        return self.codebook[blocks, codes].transpose(1, 2)

    @torch.no_grad()
    def update_codebook(self, z_unit, codes, dead_below: float = 0.01):
        """One moving-average step of every block's codes toward the mean of the encoder outputs assigned to them;
        a code whose average use fell below ``dead_below`` rows per batch restarts on a random encoder output of
        this batch (distinct rows for the codes of one block, so restarted codes do not tie)."""
        B, C, L = z_unit.shape
        decay = self.vq_decay
        assigned = F.one_hot(codes, self.codebook_size).to(z_unit.dtype)  # (B, L, Kc)
        self.code_counts.mul_(decay).add_(assigned.sum(dim=0), alpha=1 - decay)
        sums = torch.einsum("blk,bcl->lkc", assigned, z_unit)
        self.code_sums.mul_(decay).add_(sums, alpha=1 - decay)
        dead = self.code_counts < dead_below
        if dead.any():
            blocks, slots = dead.nonzero(as_tuple=True)
            # the j-th dead code of a block takes the j-th row of a random order of the batch for that block
            order = torch.rand(L, B, device=z_unit.device).argsort(dim=1)
            rank = (dead.cumsum(dim=1) - 1)[blocks, slots] % B
            rows = order[blocks, rank]
            self.code_sums[blocks, slots] = z_unit[rows, :, blocks]
            self.code_counts[blocks, slots] = 1.0
        self.codebook.copy_(F.normalize(self.code_sums / self.code_counts.unsqueeze(-1), dim=2))

    def _prior_features(self, z_local, z_global=None, pop_one_hot=None):
        """(B, channels, n_blocks) output of the autoregressive prior network, block k from blocks k-W .. k-1."""
        L = z_local.shape[2]
        # output k of a width-W convolution over W left-padded zeros + z sees z_{k-W} .. z_{k-1}: causal
        h = self.prior_conv(F.pad(z_local, (self.prior_window, 0)))[:, :, :L]
        return self.prior_out(h + self.prior_position + self._prior_context(z_global, pop_one_hot))

    def code_logits(self, z_code, z_global=None, pop_one_hot=None):
        """Logits of p(code_k | codes of blocks k-W .. k-1, global, population), shape (B, n_blocks, codebook_size)
        (teacher forcing: ``z_code`` holds the code vectors of every block)."""
        return self.prior_tokens(self._prior_features(z_code, z_global, pop_one_hot).transpose(1, 2))

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
        noise = None if self.codebook_size else torch.randn(n, C, L, generator=generator, device=device) * temperature
        if not W:
            return noise
        # the same computation as prior_parameters, one block at a time, written as plain matrix products on a
        # (n, L + W, C) buffer: a slice of W blocks is then one contiguous (n, W*C) row block (small conv1d calls
        # on strided slices were the bottleneck of sampling)
        z = torch.zeros(n, L + W, C, device=device)
        conv_weight = self.prior_conv.weight.permute(2, 1, 0).reshape(W * C, -1)  # (W*C, H), window-major
        context = self._prior_context(z_global, pop_one_hot)
        context = context.squeeze(-1) if torch.is_tensor(context) else 0.0
        bias = self.prior_conv.bias + self.prior_position[0].T  # (L, H)
        hidden_weight, hidden_bias = self.prior_out[1].weight[:, :, 0], self.prior_out[1].bias
        K = self.prior_components
        if self.codebook_size:
            # discrete: each block's code from the categorical prior, its logits divided by the temperature
            token_weight, token_bias = self.prior_tokens.weight, self.prior_tokens.bias[:, 0]
            inverse_temperature = 1.0 / max(float(temperature), 1e-6)
        else:
            out_weight = self.prior_out[3].weight[:, :, 0]
            noise = noise.transpose(1, 2)  # (n, L, C)
        if K > 1 or self.codebook_size:
            # the mixture component (or the code) of every block by inverse CDF: one uniform per row and block, drawn
            # up front like the noise (a Gumbel-max draw needs K uniforms and two logs each: 1.4 s more at K = 16,
            # 10k x 10k SNPs)
            uniform = torch.rand(n, L, 1, generator=generator, device=device)
            rows = torch.arange(n, device=device)
        for k in range(L):
            start = bias[k] + context if torch.is_tensor(context) else bias[k]
            h = torch.addmm(start, z[:, k:k + W].reshape(n, W * C), conv_weight)
            h = F.linear(F.gelu(h), hidden_weight, hidden_bias)
            if self.codebook_size:
                logits = torch.addmm(token_bias[k], F.gelu(h), token_weight[k])  # (n, codebook_size)
                z[:, W + k] = self.codebook[k, _inverse_cdf_draw(logits * inverse_temperature, uniform[:, k])]
                continue
            out = F.linear(F.gelu(h), out_weight, self.prior_out[3].bias)
            if K == 1:
                mu, logvar = out.chunk(2, dim=1)
            else:
                choice = _inverse_cdf_draw(out[:, 2 * K * C:], uniform[:, k])  # (n,)
                mu = out[:, :K * C].view(n, K, C)[rows, choice]
                logvar = out[:, K * C:2 * K * C].view(n, K, C)[rows, choice]
            z[:, W + k] = mu + torch.exp(0.5 * logvar) * noise[:, k]
        return z[:, W:].transpose(1, 2).contiguous()

    def forward(self, states, pop_one_hot=None):
        """Logits of the reconstruction and the latent cost per row (shape (B,)): KL(q(z|x) || p(z)), or with
        discrete local latents the prior's cross-entropy of the codes + the commitment term + the global KL.  In
        training mode a discrete model also moves its codebooks (:meth:`update_codebook`)."""
        mu_l, logvar_l, mu_g, logvar_g = self.encode(states, pop_one_hot)
        if not self.codebook_size:  # the local noise is drawn first, then the global (the order seeds depend on)
            z_l = mu_l + torch.randn_like(mu_l) * torch.exp(0.5 * logvar_l)
        z_g = None if mu_g is None else mu_g + torch.randn_like(mu_g) * torch.exp(0.5 * logvar_g)
        if self.codebook_size:
            codes, z_unit, z_code = self.quantize(mu_l)
            if self.training:
                self.update_codebook(z_unit.detach(), codes)
                z_code = self.code_vectors(codes)
            # straight-through: the decoder sees the code, the encoder gets the decoder's gradient as if it had
            # sent it
            logits = self.decode(z_unit + (z_code - z_unit).detach(), z_g, pop_one_hot)
            prior_logits = self.code_logits(z_code.detach(), z_g, pop_one_hot)
            kl = F.cross_entropy(prior_logits.transpose(1, 2), codes, reduction="none").sum(dim=1)
            kl = kl + COMMITMENT_WEIGHT * (z_unit - z_code.detach()).pow(2).sum(dim=(1, 2))
        else:
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


def _inverse_cdf_draw(logits, uniform):
    """Index drawn from softmax(logits) per row, by inverse CDF with one uniform per row: (n, K), (n, 1) -> (n,)."""
    cdf = torch.softmax(logits, dim=1).cumsum_(dim=1)
    return (cdf < uniform).sum(dim=1).clamp_(max=logits.shape[1] - 1)


def _normal_log_density(x, mu, logvar):
    """log N(x; mu, exp(logvar)), elementwise."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (x - mu).pow(2) * torch.exp(-logvar))


def _kl_standard_normal(mu, logvar):
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def _kl_gaussians(mu_q, logvar_q, mu_p, logvar_p):
    """KL(N(mu_q, var_q) || N(mu_p, var_p)), elementwise."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) / logvar_p.exp() - 1.0)


