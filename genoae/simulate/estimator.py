"""The :class:`SyntheticGenomes` estimator: trains a :class:`~genoae.simulate.network.GenomeVAE`, samples from it,
saves and loads it."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from genoae.device import choose_device, seed_everything
from genoae.errors import InputError, UsageError
from genoae.genotypes import Genotypes, Samples, Variants, allele_frequencies
from genoae.io.vae_model import load_vae, save_vae
from genoae.progress import progress_bar
from genoae.simulate.network import GenomeVAE

# the training schedule by default; DP-SGD's has larger batches over fewer epochs: the noise in a step's mean
# gradient shrinks as the batch grows, while the accountant charges for every step
PLAIN_SCHEDULE = {"epochs": 150, "batch_size": 64, "learning_rate": 2e-3}
PRIVATE_SCHEDULE = {"epochs": 30, "batch_size": 256, "learning_rate": 1e-2}


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
    codebook_size : int
        0 (default): continuous local latents.  Otherwise discrete ones, a VQ-VAE: this many codes per block and a
        categorical autoregressive prior over them (:class:`GenomeVAE`); ``prior_components`` is then unused.  Not
        with ``privacy_epsilon`` (the codebooks move as averages of training people's encodings, outside DP-SGD).
    beta : float
        Weight of the KL term once warm-up is over.
    warmup_epochs : int
        KL weight rises linearly from 0 to ``beta`` over these epochs.
    epochs, batch_size, learning_rate : int, int, float, or None
        The training schedule (AdamW; the batch is rows, or people under DP-SGD).  None: 150 epochs of batches of
        64 at 2e-3, or with ``privacy_epsilon`` 30 epochs of 256 people at 1e-2 (:data:`PRIVATE_SCHEDULE`).
    validation_fraction : float or None
        Share of *individuals* held out for early stopping (both haplotypes of a person stay together); None: 0.1,
        or 0 with ``privacy_epsilon`` (a private model trains on everyone, for its fixed number of epochs).
    patience : int
        Stop when the held-out loss has not improved for this many epochs (after warm-up).
    privacy_epsilon : float or None
        Train with DP-SGD (:mod:`genoae.simulate.privacy`) to an (ε, δ) guarantee per person: every step draws
        each person with chance ``batch_size`` / people, clips each person's gradient to ``clip_norm`` and adds
        Gaussian noise calibrated by Opacus's accountant to ε after ``epochs`` epochs.  A private model runs all
        its epochs (no early stopping: the choice of epoch would look at the data), starts its output layer at
        frequency 0.5 (genotype mode: 1/3 per genotype) instead of the training frequencies, keeps no loss
        history in its file, and is not reproducible: its noise is secret, never drawn from ``seed``.
    privacy_delta : float or None
        δ of the guarantee (default: min(1e-5, 1 / (10 people))); must be below 1 / people.
    clip_norm : float
        The bound C on one person's gradient (L2 norm) under DP-SGD.
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
                 prior_components: int = 4, prior_hidden: int | None = None, codebook_size: int = 0,
                 beta: float = 1.0,
                 warmup_epochs: int = 5, epochs: int | None = None, batch_size: int | None = None,
                 learning_rate: float | None = None,
                 weight_decay: float = 0.0, validation_fraction: float | None = None, patience: int = 10,
                 seed: int | None = 0, device: str = "auto", progress: bool = True,
                 privacy_epsilon: float | None = None, privacy_delta: float | None = None, clip_norm: float = 1.0):
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
        self.codebook_size = codebook_size
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
        self.privacy_epsilon = privacy_epsilon
        self.privacy_delta = privacy_delta
        self.clip_norm = clip_norm

    # ------------------------------------------------------------------ settings
    def _architecture(self) -> dict:
        return dict(latent_channels=self.latent_channels, global_dim=self.global_dim, hidden=self.hidden,
                    block_size=self.block_size, n_layers=self.n_layers, kernel_size=self.kernel_size,
                    prior_window=self.prior_window, prior_components=self.prior_components,
                    prior_hidden=self.prior_hidden, codebook_size=self.codebook_size)

    def schedule(self) -> dict:
        """``epochs``, ``batch_size`` and ``learning_rate`` as training uses them (None resolved to the default of a
        plain or a private training)."""
        defaults = PRIVATE_SCHEDULE if self.privacy_epsilon is not None else PLAIN_SCHEDULE
        return {name: value if getattr(self, name) is None else getattr(self, name) for name, value in defaults.items()}

    def get_params(self) -> dict:
        return {name: getattr(self, name) for name in (
            "mode", "latent_channels", "global_dim", "hidden", "block_size", "n_layers", "kernel_size",
            "prior_window", "prior_components", "prior_hidden", "codebook_size", "beta",
            "warmup_epochs", "epochs", "batch_size", "learning_rate", "weight_decay", "validation_fraction",
            "patience", "seed", "device", "privacy_epsilon", "privacy_delta", "clip_norm")}

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
        if self.codebook_size < 0 or (self.codebook_size and self.prior_window < 1):
            raise UsageError(f"codebook size {self.codebook_size}: expected 0 (continuous local latents) or a "
                             f"positive number of codes with a prior window of at least 1 block")
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
        private = self.privacy_epsilon is not None
        if private and self.codebook_size:
            raise UsageError("discrete local latents (codebook size > 0) cannot be trained with DP-SGD: their "
                             "codebooks are averages of training people's encodings, which the noise does not cover")
        n_people = genotypes.n_samples
        validation_fraction = self.validation_fraction
        if validation_fraction is None:
            validation_fraction = 0.0 if private else 0.1
        n_valid = int(round(validation_fraction * n_people)) if validation_fraction > 0 else 0
        order = rng.permutation(n_people)
        valid_people = np.zeros(n_people, bool)
        valid_people[order[:n_valid]] = True
        is_valid = valid_people[row_person]
        train_rows = np.flatnonzero(~is_valid)
        if n_valid >= n_people:
            raise UsageError(f"validation share {validation_fraction:g} of {n_people} individuals leaves none to "
                             f"train on")
        schedule = self.schedule()
        epochs, batch_size = schedule["epochs"], schedule["batch_size"]
        account = self._privacy_plan(int(n_people - n_valid), epochs, batch_size) if private else None

        self.variants_ = genotypes.variants
        n_pops = len(self.populations_)
        model = GenomeVAE(genotypes.n_variants, mode=mode, n_pops=n_pops, **self._architecture()).to(device)
        if not private:  # the training frequencies would be released unprotected in the starting weights
            overall = _frequencies(rows[train_rows], mode)
            model.init_output_bias(overall)
            if n_pops:
                model.init_population_bias(np.stack([
                    _frequencies(rows[train_rows[row_pop[train_rows] == k]], mode)
                    if np.any(row_pop[train_rows] == k) else overall for k in range(n_pops)]), overall)
        self.model_ = model

        states = torch.as_tensor(rows, dtype=torch.int8, device=device)
        pop_codes = torch.as_tensor(row_pop, dtype=torch.long, device=device)
        optimiser = torch.optim.AdamW(model.parameters(), lr=schedule["learning_rate"], weight_decay=self.weight_decay)
        history = TrainingHistory()
        best_loss, best_state, stale = math.inf, None, 0
        start_time = time.time()
        generator = torch.Generator(device="cpu").manual_seed(int(rng.integers(2**31)))
        if private:  # the noise must be secret: never from --seed, which the model file records
            from genoae.simulate.privacy import secret_generator

            generator = secret_generator()
        valid_rows = np.flatnonzero(is_valid)

        bar = progress_bar(epochs, "vae train" + (" (DP-SGD)" if private else ""), unit="epoch",
                           enabled=self.progress)
        for epoch in range(epochs):
            beta = self.beta * min(1.0, (epoch + 1) / max(1, self.warmup_epochs))
            model.train()
            if private:
                recon, kl = self._private_epoch(states, pop_codes, train_rows, len(row_person) // n_people, beta,
                                                optimiser, generator, account, account.steps // epochs)
            else:
                recon, kl = self._epoch(states, pop_codes, train_rows, beta, optimiser, generator, batch_size)
            history.reconstruction.append(recon)
            history.kl.append(kl)
            history.beta.append(beta)
            postfix = {"recon": f"{recon:.1f}", "kl": f"{kl:.1f}"}
            # a private model is not selected on any loss: it is checked on held-out people only when there are
            # some (they are not trained on), never on the training people
            monitor_rows = valid_rows if len(valid_rows) or private else train_rows
            if len(monitor_rows):
                held_out = self._mean_loss(states, pop_codes, monitor_rows)
                history.validation.append(held_out)
                postfix["held_out"] = f"{held_out:.1f}"
            bar.set_postfix(**postfix)
            bar.update()
            # early stopping counts only once the KL weight is at its final value (earlier losses are not comparable)
            if not private and epoch + 1 >= self.warmup_epochs:
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
        self.privacy_ = account
        return self

    def _epoch(self, states, pop_codes, train_rows, beta, optimiser, generator, batch_size: int) -> tuple[float, float]:
        """One pass over the training rows in shuffled batches; mean reconstruction NLL and KL per row."""
        model = self.model_
        permutation = torch.as_tensor(train_rows)[torch.randperm(len(train_rows), generator=generator)]
        total_recon = total_kl = 0.0
        for batch in permutation.split(batch_size):
            batch = batch.to(states.device)
            x = states[batch]
            logits, kl = model(x, self._one_hot(pop_codes[batch]))
            recon = model.reconstruction_nll(logits, x)
            loss = (recon + beta * kl).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total_recon += recon.sum().item()
            total_kl += kl.sum().item()
        return total_recon / len(train_rows), total_kl / len(train_rows)

    def _privacy_plan(self, n_people: int, epochs: int, batch_size: int):
        """The DP-SGD settings for ``n_people`` training people: the sample rate (an expected ``batch_size``
        people a step), steps and noise that spend the asked ε in ``epochs`` epochs
        (:class:`genoae.simulate.privacy.PrivacyAccount`)."""
        from genoae.simulate.privacy import (PrivacyAccount, check_budget, default_delta, epsilon_spent,
                                             noise_multiplier, opacus_version)

        delta = default_delta(n_people) if self.privacy_delta is None else float(self.privacy_delta)
        check_budget(float(self.privacy_epsilon), delta, float(self.clip_norm), n_people)
        sample_rate = min(1.0, batch_size / n_people)
        steps = epochs * math.ceil(n_people / batch_size)
        noise = noise_multiplier(float(self.privacy_epsilon), delta, sample_rate, steps)
        return PrivacyAccount(
            epsilon=float(self.privacy_epsilon), delta=delta, clip_norm=float(self.clip_norm),
            noise_multiplier=noise, sample_rate=sample_rate, steps=steps,
            epsilon_spent=epsilon_spent(noise, sample_rate, steps, delta), people=n_people,
            library=opacus_version())

    def _private_epoch(self, states, pop_codes, train_rows, rows_per_person: int, beta, optimiser, generator,
                       account, steps: int) -> tuple[float, float]:
        """One epoch of ``steps`` DP-SGD steps; mean reconstruction NLL and KL per row of the people drawn.  A
        person is ``rows_per_person`` consecutive rows (their two haplotypes)."""
        from torch.func import functional_call

        from genoae.simulate.privacy import draw_people, private_gradients

        model = self.model_
        people_rows = torch.as_tensor(train_rows.reshape(-1, rows_per_person), device=states.device)
        n_people = len(people_rows)

        def person_loss(params, buffers, x, *pop):
            logits, kl = functional_call(model, (params, buffers), (x, pop[0] if pop else None))
            recon = model.reconstruction_nll(logits, x)
            return (recon + beta * kl).mean(), (recon.sum(), kl.sum())

        total_recon = total_kl = 0.0
        rows_seen = 0
        for _ in range(steps):
            drawn = people_rows[draw_people(n_people, account.sample_rate, generator).to(states.device)]
            people = (states[drawn],)  # (b, rows_per_person, n_variants)
            if self.populations_:
                people += (self._one_hot(pop_codes[drawn]),)
            optimiser.zero_grad(set_to_none=True)
            step = private_gradients(model, person_loss, people, account.clip_norm,
                                     account.noise_multiplier * account.clip_norm,
                                     account.sample_rate * n_people, generator)
            optimiser.step()
            if step["people"]:
                total_recon += step["aux"][0]
                total_kl += step["aux"][1]
                rows_seen += step["people"] * rows_per_person
        return total_recon / max(rows_seen, 1), total_kl / max(rows_seen, 1)

    def _one_hot(self, pop_codes):
        if not self.populations_:
            return None
        return F.one_hot(pop_codes, len(self.populations_)).float()

    @torch.no_grad()
    def _mean_loss(self, states, pop_codes, rows, chunk: int = 512) -> float:
        """Mean negative ELBO (recon + KL, beta = 1 as the final model) per row, with the model in eval mode."""
        self.model_.eval()
        total = 0.0
        # the same noise every epoch, so held-out losses are comparable; the training's random state (CPU and
        # CUDA) continues afterwards where it was
        with torch.random.fork_rng(devices=[states.device] if states.device.type == "cuda" else []):
            torch.manual_seed(12345)
            for start in range(0, len(rows), chunk):
                batch = torch.as_tensor(rows[start:start + chunk], device=states.device)
                x = states[batch]
                logits, kl = self.model_(x, self._one_hot(pop_codes[batch]))
                total += (self.model_.reconstruction_nll(logits, x) + self.beta * kl).sum().item()
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
            check_known_populations(counts, self.populations_)
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
                    batch_size: int | None = None, device: str | None = None, shrink: float = 0.0,
                    toward: dict | None = None) -> np.ndarray:
        """Draw rows (haplotypes, or genotype vectors in genotype mode) from the model.

        z_global ~ N(0, temperature^2 I), local latents from the autoregressive prior (its noise scaled by
        ``temperature``); alleles (genotypes) are then drawn from the decoder's probabilities, never thresholded.
        ``batch_size`` rows are decoded at a time (default: sized for the CPU cache, or 2048 on a GPU).
        ``shrink`` λ conditions on (1 − λ) × the population's one-hot + λ × ``toward`` (population → weight,
        normalised; default every population's training count) instead of the one-hot alone: the network takes its
        population as a linear input, so this blends the populations' parameters, pulling the population-specific
        signal toward a larger group's (a privacy knob: ``scripts/vae_privacy_frontier.py``).

        Returns
        -------
        ndarray, int8, shape (n_rows, n_variants)   0/1 alleles (1 = A2), or 0/1/2 A2 counts
        """

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
        conditioning = None
        if code is not None:
            conditioning = np.eye(len(self.populations_))[code]
            if shrink:
                if not 0.0 <= shrink <= 1.0:
                    raise UsageError(f"shrink {shrink}: expected a number between 0 and 1")
                weights = dict(zip(self.populations_, self.population_counts_)) if toward is None else toward
                target = np.array([float(weights.get(pop, 0.0)) for pop in self.populations_])
                if not target.sum() > 0:
                    raise UsageError(f"shrink: no weight on any population the model knows ({population})")
                conditioning = (1.0 - shrink) * conditioning + shrink * target / target.sum()
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
                pop_one_hot = torch.from_numpy(conditioning).float().to(device).expand(b, -1)
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
               temperature: float = 1.0, device: str | None = None, shrink: float = 0.0,
               groups: dict | None = None) -> Genotypes:
        """Synthetic individuals named ``synth_<pop>_<i>`` (``synth_<i>`` for an unconditional model).

        Haplotypic models give phased individuals (two independent haplotypes of the same population).
        Variants are the training variants (positions and alleles).  ``info["populations"]`` holds each
        individual's population.  ``shrink`` λ pulls each population's input toward its group's (``groups``:
        population → group, e.g. the super-population; default: all populations), see :meth:`sample_rows`.
        """
        return sample_individuals(self, n, counts, seed, temperature, device, shrink, groups)

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
            "history": self._history_record(),
            "privacy": None if getattr(self, "privacy_", None) is None else self.privacy_.as_dict(),
        }

    def _history_record(self) -> dict | None:
        """The training history for the model file; a private model's without its losses (computed on the
        training people, they are not covered by the guarantee)."""
        if not hasattr(self, "history_"):
            return None
        record = asdict(self.history_)
        if getattr(self, "privacy_", None) is not None:
            record.update(reconstruction=[], kl=[], validation=[])
        return record

    def save(self, path) -> None:
        """One file (``genoae.io.vae_model``): the state dict plus the JSON metadata; written atomically."""
        save_vae(path, self.model_.state_dict(), self.metadata())

    @classmethod
    def load(cls, path, device: str = "cpu") -> "SyntheticGenomes":
        """Read a model written by :meth:`save` (``torch.load(weights_only=True)``: no code is unpickled)."""
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
            estimator.privacy_ = None
            if metadata.get("privacy"):
                from genoae.simulate.privacy import PrivacyAccount

                estimator.privacy_ = PrivacyAccount(**metadata["privacy"])
            model = GenomeVAE(metadata["n_variants"], mode=metadata["mode"], n_pops=len(estimator.populations_),
                              **metadata["architecture"])
            model.load_state_dict(state_dict)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise InputError(path, f"model metadata and weights do not fit together ({type(error).__name__}: "
                                   f"{error})") from None
        estimator.model_ = model.to(choose_device(device)).eval()
        return estimator


def _frequencies(rows: np.ndarray, mode: str) -> np.ndarray:
    """Allele frequency per SNP (haplotypes) or genotype-class frequencies (n_variants, 3); missing calls ignored,
    0 where a SNP has none."""
    if mode == "haplotype":
        return np.nan_to_num(allele_frequencies(rows, ploidy=1), nan=0.0)
    n = np.maximum((rows >= 0).sum(axis=0), 1)
    return np.stack([(rows == k).sum(axis=0) / n for k in range(3)], axis=1)


def check_known_populations(wanted, known) -> None:
    """Refuse population names a model was not trained on, naming those it knows."""
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise UsageError(f"unknown population(s) {', '.join(unknown)}; the model knows {', '.join(known)}")


def sample_individuals(model, n: int | None = None, counts: dict | None = None, seed: int | None = 0,
                       temperature: float = 1.0, device: str | None = None, shrink: float = 0.0,
                       groups: dict | None = None) -> Genotypes:
    """:meth:`SyntheticGenomes.sample` for anything with its ``population_plan``, ``sample_rows``, ``mode_`` and
    ``variants_`` (a model, or :class:`RegionModels`)."""
    plan = model.population_plan(n, counts)
    rows_per_person = 2 if model.mode_ == "haplotype" else 1
    seeds = np.random.SeedSequence(0 if seed is None else seed).spawn(len(plan))
    blocks, names, labels = [], [], []
    weights = dict(zip(model.populations_, model.population_counts_)) if model.populations_ else {}
    for (pop, k), seed_seq in zip(plan, seeds):
        options = {}
        if shrink:
            if groups is not None and pop not in groups:
                raise UsageError(f"--shrink-groups names no group for population {pop}")
            options = {"shrink": shrink, "toward": None if groups is None else
                       {other: weight for other, weight in weights.items() if groups.get(other) == groups[pop]}}
        blocks.append(model.sample_rows(rows_per_person * k, pop, seed=int(seed_seq.generate_state(1)[0] % 2**31),
                                        temperature=temperature, device=device, **options))
        prefix = f"synth_{pop}_" if pop else "synth_"
        names += [f"{prefix}{i + 1}" for i in range(k)]
        labels += [pop] * k
    rows = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
    samples = Samples(np.array(names))
    if model.mode_ == "haplotype":
        genotypes = Genotypes.from_haplotypes(rows.reshape(-1, 2, rows.shape[1]), samples, model.variants_,
                                              source="genoae vae sample")
    else:
        genotypes = Genotypes.from_counts(rows, samples, model.variants_, source="genoae vae sample")
    genotypes.info["populations"] = np.array(labels)
    return genotypes


class RegionModels:
    """Models of different chromosomes or regions sampled together as one genome (train one model per chromosome,
    then sample them as one): an individual's rows are drawn from every model under the same population, one
    after the other in variant order, each model from its own random stream (regions are independent given the
    population, as unlinked chromosomes are).  Has what sampling needs of :class:`SyntheticGenomes`:
    ``mode_``, ``populations_`` (those every model knows), ``variants_`` (all, concatenated),
    :meth:`sample_rows`, :meth:`population_plan` and :meth:`sample`.
    """

    def __init__(self, models: list):
        if not models:
            raise UsageError("give at least one model")
        modes = {model.mode_ for model in models}
        if len(modes) > 1:
            raise UsageError(f"the models mix {' and '.join(sorted(modes))} modes: sample models of one kind")
        self.models = list(models)
        self.mode_ = modes.pop()
        first = models[0]
        labelled = [bool(model.populations_) for model in models]
        if any(labelled) and not all(labelled):
            raise UsageError("some models were trained with population labels and some without")
        self.populations_ = [pop for pop in first.populations_ if all(pop in m.populations_ for m in models[1:])]
        if any(labelled) and not self.populations_:
            raise UsageError("the models share no population")
        counts = dict(zip(first.populations_, first.population_counts_))
        self.population_counts_ = [counts[pop] for pop in self.populations_]
        seen = set()
        for index, model in enumerate(models):
            keys = set(zip(np.asarray(model.variants_.chrom).tolist(), np.asarray(model.variants_.pos).tolist()))
            if seen & keys:
                raise UsageError(f"model {index + 1} holds variants that an earlier model holds too: each model "
                                 f"must cover its own chromosome or region")
            seen |= keys
        fields = ("chrom", "pos", "id", "a1", "a2", "cm")
        self.variants_ = Variants(**{name: np.concatenate([np.asarray(getattr(m.variants_, name)) for m in models])
                                     for name in fields})

    def population_plan(self, n: int | None = None, counts: dict | None = None) -> list:
        return SyntheticGenomes.population_plan(self, n, counts)

    def _check_fitted(self):
        for model in self.models:
            model._check_fitted()

    def sample_rows(self, n_rows: int, population: str = "", seed: int | None = 0, temperature: float = 1.0,
                    batch_size: int | None = None, device: str | None = None, **shrinkage) -> np.ndarray:
        """Rows over every model's variants (int8, (n_rows, all variants)), see :meth:`SyntheticGenomes.sample_rows`."""
        streams = np.random.SeedSequence(0 if seed is None else int(seed)).spawn(len(self.models))
        return np.concatenate([model.sample_rows(n_rows, population, seed=int(stream.generate_state(1)[0] % 2**31),
                                                 temperature=temperature, batch_size=batch_size, device=device,
                                                 **shrinkage)
                               for model, stream in zip(self.models, streams)], axis=1)

    def sample(self, n: int | None = None, counts: dict | None = None, seed: int | None = 0,
               temperature: float = 1.0, device: str | None = None, shrink: float = 0.0,
               groups: dict | None = None) -> Genotypes:
        return sample_individuals(self, n, counts, seed, temperature, device, shrink, groups)
