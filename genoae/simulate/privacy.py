"""Differentially private training of the synthetic-genome VAE (DP-SGD), with the person as the privacy unit.

DP-SGD (Abadi et al. 2016) at each step draws every training person with probability q (Poisson sampling),
computes each drawn person's gradient, clips it to L2 norm C, sums the clipped gradients, adds Gaussian noise of
standard deviation σ·C to every coordinate and divides by the expected batch size q·n.  A person's gradient is
that of all their rows together (both haplotypes in haplotype mode), so the guarantee is for a person, not for a
haplotype.  Opacus's RDP accountant calibrates σ to the (ε, δ) asked for the number of steps, and gives the ε
spent (:func:`noise_multiplier`, :func:`epsilon_spent`).

The per-person gradients come from ``torch.func.vmap`` over people: Opacus's own per-sample gradients take one
row of the batch as the unit and do not know the network's block-local layers.  The noise and the draws of people
come from a generator seeded with 63 bits of the operating system's entropy (:func:`secret_generator`), never from
``--seed``: the guarantee holds only against someone who cannot reproduce the noise, and the seed is written in
the model file.  A private training is therefore not reproducible (its starting weights and split still follow
``--seed``).  The generator is torch's, not a cryptographic one (Opacus's ``secure_mode`` would be).

What the guarantee covers: every parameter of the network.  What it does not: the model file also holds the
variants (positions and alleles), the population labels and the number of training people in each (the default
sampling plan; a population of one person names that person), all kept as they are; the training loss history is
left out of a private model's file.
"""
from __future__ import annotations

import warnings
import secrets
from dataclasses import asdict, dataclass

import torch

from genoae.errors import UsageError

ACCOUNTANT = "rdp"
# Rényi orders the accountant tries: Opacus's own (up to 63) and larger ones, which give the tighter bound for
# short trainings at a small ε (a bound from any order is valid; the best one is kept)
RDP_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + [80, 96, 128, 192, 256, 384, 512, 1024]
# δ by default: 1 / (10 n) people, and never above 1e-5
DEFAULT_DELTA = 1e-5


@dataclass
class PrivacyAccount:
    """The (ε, δ) guarantee of a DP-SGD training and how it was reached (stored in the model's metadata)."""

    epsilon: float            # the ε asked for
    delta: float
    clip_norm: float          # C: the bound on one person's gradient (L2)
    noise_multiplier: float   # σ: the noise's standard deviation is σ·C
    sample_rate: float        # q: the chance that a person is in a step's batch
    steps: int
    epsilon_spent: float      # the accountant's ε after ``steps`` steps (≤ epsilon)
    people: int               # training people (the unit of the guarantee)
    unit: str = "person"
    accountant: str = ACCOUNTANT
    library: str = ""

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (f"DP-SGD, (ε = {self.epsilon_spent:.3g}, δ = {self.delta:.2g}) per person: noise multiplier "
                f"{self.noise_multiplier:.3g}, clip norm {self.clip_norm:g}, sample rate {self.sample_rate:.3g}, "
                f"{self.steps} steps")


def default_delta(n_people: int) -> float:
    """δ = min(1e-5, 1 / (10 n)): well below the 1 / n at which releasing one person's data outright would pass."""
    return min(DEFAULT_DELTA, 0.1 / max(int(n_people), 1))


def check_budget(epsilon: float, delta: float, clip_norm: float, n_people: int) -> None:
    """Refuse a budget that means nothing: ε ≤ 0, δ outside (0, 1 / n), a clip norm ≤ 0."""
    if not epsilon > 0:
        raise UsageError(f"privacy ε {epsilon}: expected a number > 0")
    if not 0 < delta < 1.0 / max(n_people, 1):
        raise UsageError(f"privacy δ {delta:g}: expected 0 < δ < 1 / (training people) = {1.0 / max(n_people, 1):.3g}"
                         f" (a larger δ allows releasing a person's data outright)")
    if not clip_norm > 0:
        raise UsageError(f"clip norm {clip_norm}: expected a number > 0")


def noise_multiplier(epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """σ for which ``steps`` Poisson-sampled steps at rate ``sample_rate`` spend at most ``epsilon`` (Opacus)."""
    from opacus.accountants.utils import get_noise_multiplier

    with warnings.catch_warnings():  # "optimal order is the largest alpha": the bound holds, only looser
        warnings.simplefilter("ignore", UserWarning)
        try:
            return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate,
                                              steps=steps, accountant=ACCOUNTANT, alphas=RDP_ORDERS))
        except ValueError as error:  # Opacus: "The privacy budget is too low." (σ past 1e6)
            raise UsageError(f"privacy ε {epsilon:g} at δ {delta:g} over {steps} steps: no noise level reaches it "
                             f"({error}); give a larger ε, or fewer --epochs") from None


def epsilon_spent(noise: float, sample_rate: float, steps: int, delta: float) -> float:
    """ε of ``steps`` steps with noise multiplier ``noise`` at rate ``sample_rate`` (Opacus's RDP accountant)."""
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    for _ in range(int(steps)):  # the accountant merges repeated steps: one entry, however many
        accountant.step(noise_multiplier=float(noise), sample_rate=float(sample_rate))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return float(accountant.get_epsilon(delta, alphas=RDP_ORDERS))


def opacus_version() -> str:
    import opacus

    return f"opacus {opacus.__version__}"


def secret_generator(device="cpu") -> torch.Generator:
    """A torch generator seeded from the operating system's entropy (63 bits), for the noise and the draws of
    people: unknown to anyone, the model's owner included, and not recorded anywhere."""
    return torch.Generator(device=device).manual_seed(secrets.randbits(63))


def draw_people(n_people: int, sample_rate: float, generator: torch.Generator) -> torch.Tensor:
    """Poisson sampling: the indices of the people in one step's batch, each drawn with chance ``sample_rate``
    (the batch size varies, and may be 0)."""
    return torch.nonzero(torch.rand(n_people, generator=generator) < sample_rate).flatten()


def private_gradients(model: torch.nn.Module, person_loss, people: tuple, clip_norm: float, noise_std: float,
                      expected_batch: float, generator: torch.Generator, chunk: int = 32) -> dict:
    """Set every trainable parameter's ``.grad`` to the DP-SGD gradient of one step's people.

    Parameters
    ----------
    person_loss : callable(params, buffers, *person) -> (loss, aux)
        One person's loss (a scalar) through ``torch.func.functional_call``, and anything to report (``aux``).
    people : tuple of torch.Tensor
        The people drawn, each tensor with one person per row of its first axis (e.g. the person's rows
        ``(b, rows_per_person, n_variants)`` and their population one-hot).
    clip_norm : float   C
    noise_std : float   σ·C
    expected_batch : float   q·n: the divisor (fixed, so that the noise is the same in every step)
    chunk : int   people whose gradients are held at once (each is a copy of the parameters)

    Returns
    -------
    dict: ``aux`` summed over the people (each entry of the person's ``aux``), ``clipped`` people whose gradient
    was clipped, ``people``.
    """
    params = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    buffers = dict(model.named_buffers())
    in_dims = (None, None) + (0,) * len(people)
    per_person = torch.func.vmap(torch.func.grad(person_loss, has_aux=True), in_dims=in_dims,
                                 randomness="different")
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    n = len(people[0]) if people else 0
    sums, clipped = None, 0
    for start in range(0, n, chunk):
        grads, aux = per_person(params, buffers, *(part[start:start + chunk] for part in people))
        norms = torch.sqrt(sum(g.reshape(len(g), -1).pow(2).sum(dim=1) for g in grads.values()))
        factors = (clip_norm / (norms + 1e-6)).clamp(max=1.0)
        clipped += int((norms > clip_norm).sum())
        for name, g in grads.items():
            total[name] += torch.tensordot(factors, g, dims=1)
        aux_sums = [a.sum().item() for a in aux]
        sums = aux_sums if sums is None else [s + a for s, a in zip(sums, aux_sums)]
    for name, p in model.named_parameters():
        if name in total:
            noise = torch.randn(p.shape, generator=generator, device=generator.device).to(p.device) * noise_std
            p.grad = (total[name] + noise) / expected_batch
    return {"aux": sums, "clipped": clipped, "people": n}
