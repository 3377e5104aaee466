"""DP-SGD training of the VAE (genoae.simulate.privacy): per-person clipping, the noise, the accounting, the fit."""
import json

import numpy as np
import pytest
import torch

from genoae.errors import UsageError
from genoae.genotypes import Genotypes, Samples
from genoae.simulate import GenomeVAE, SyntheticGenomes
from genoae.simulate import privacy

from tests.test_evaluate import mosaic_haplotypes
from tests.test_vae import TINY, run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_model(n_variants=24, n_pops=2):
    torch.manual_seed(3)
    return GenomeVAE(n_variants, n_pops=n_pops, block_size=8, latent_channels=2, global_dim=3, hidden=8,
                     prior_window=2)


class MeansOnly(torch.nn.Module):
    """A person's reconstruction NLL per row at the posterior means: no sampling, so plain backward repeats it."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, x, pop):
        mu_l, _, mu_g, _ = self.vae.encode(x, pop)
        return self.vae.reconstruction_nll(self.vae.decode(mu_l, mu_g, pop), x)


def means_loss(model):
    def person_loss(params, buffers, x, pop):
        recon = torch.func.functional_call(model, (params, buffers), (x, pop))
        return recon.mean(), (recon.sum(),)

    return person_loss


def test_private_gradients_are_the_clipped_per_person_sum_over_the_expected_batch():
    model = MeansOnly(small_model())
    person_loss = means_loss(model)
    people = 6
    x = torch.randint(0, 2, (people, 2, 24), dtype=torch.int8)  # two haplotypes a person
    pop = torch.nn.functional.one_hot(torch.tensor([0, 1, 0, 1, 1, 0]), 2).float()[:, None, :].expand(people, 2, 2)
    # each person's gradient by plain backward over both of their rows
    grads, norms = [], []
    for i in range(people):
        model.zero_grad()
        model(x[i], pop[i]).mean().backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
        norms.append(float(torch.sqrt(sum((g ** 2).sum() for g in grads[-1].values()))))
    clip = float(np.median(norms))  # some people are clipped and some are not
    expected = {name: sum(g[name] * min(1.0, clip / (norm + 1e-6)) for g, norm in zip(grads, norms)) / 10.0
                for name in grads[0]}
    generator = torch.Generator().manual_seed(0)
    step = privacy.private_gradients(model, person_loss, (x, pop), clip, 0.0, 10.0, generator, chunk=4)
    assert step["people"] == people and step["clipped"] == sum(norm > clip for norm in norms)
    for name, p in model.named_parameters():
        if name in expected:
            assert torch.allclose(p.grad, expected[name], atol=1e-6, rtol=1e-4), name
        else:  # a parameter the loss does not reach (the prior here) gets only the noise, here 0
            assert not p.grad.any(), name


def test_private_gradients_add_noise_of_the_stated_scale():
    model = small_model()

    def zero_loss(params, buffers, x):
        total = sum((p * 0.0).sum() for p in params.values())
        return total, (total,)

    generator = torch.Generator().manual_seed(1)
    x = torch.zeros((5, 2, 24), dtype=torch.int8)
    privacy.private_gradients(model, zero_loss, (x,), 1.0, 3.0, 6.0, generator)
    noise = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert noise.numel() > 2000
    assert abs(float(noise.std()) - 0.5) < 0.03 and abs(float(noise.mean())) < 0.03
    # an empty batch still takes its noisy step (Poisson sampling may draw nobody)
    step = privacy.private_gradients(model, zero_loss, (x[:0],), 1.0, 3.0, 6.0, generator)
    assert step["people"] == 0 and all(p.grad.abs().sum() > 0 for p in model.parameters())


def test_noise_is_calibrated_to_the_budget():
    sigma = {eps: privacy.noise_multiplier(eps, 1e-5, 0.05, 600) for eps in (1.0, 4.0)}
    assert sigma[1.0] > sigma[4.0] > 0
    for eps, noise in sigma.items():
        spent = privacy.epsilon_spent(noise, 0.05, 600, 1e-5)
        assert 0.9 * eps <= spent <= eps
    assert privacy.epsilon_spent(sigma[4.0], 0.05, 1200, 1e-5) > 4.0  # twice the steps spend more


def test_budget_checks():
    with pytest.raises(UsageError, match="no noise level reaches it"):  # Opacus gives up past σ = 1e6
        privacy.noise_multiplier(1e-4, 1e-5, 0.5, 10_000)
    privacy.check_budget(1.0, 1e-5, 1.0, 1000)
    for epsilon, delta, clip in ((0.0, 1e-5, 1.0), (1.0, 1e-3, 1.0), (1.0, 0.0, 1.0), (1.0, 1e-5, 0.0)):
        with pytest.raises(UsageError):
            privacy.check_budget(epsilon, delta, clip, 1000)
    assert privacy.default_delta(100) == 1e-5 and privacy.default_delta(1_000_000) == pytest.approx(1e-7)


def test_poisson_sampling_draws_each_person_at_the_rate():
    generator = torch.Generator().manual_seed(2)
    counts = np.zeros(50)
    for _ in range(400):
        counts[privacy.draw_people(50, 0.2, generator).numpy()] += 1
    assert abs(counts.mean() / 400 - 0.2) < 0.01 and counts.min() > 40


@pytest.fixture(scope="module")
def phased():
    rows = mosaic_haplotypes(160, n_variants=40, seed=5)  # 80 individuals
    pops = np.repeat(["AAA", "BBB"], 40)
    return Genotypes.from_haplotypes(rows.reshape(-1, 2, 40), Samples([f"ind{i}" for i in range(80)])), pops


def test_private_fit_runs_every_epoch_records_its_guarantee_and_keeps_no_losses(phased, tmp_path, monkeypatch):
    genotypes, pops = phased
    # patience 1 and held-out people: a plain training would stop early; a private one runs every epoch
    settings = {**TINY, "epochs": 6, "batch_size": 15, "patience": 1, "validation_fraction": 0.25}
    steps = []
    real_step = privacy.private_gradients

    def recording_step(model, person_loss, people, clip_norm, noise_std, expected_batch, generator, **options):
        steps.append((people[0].clone(), expected_batch, noise_std))
        return real_step(model, person_loss, people, clip_norm, noise_std, expected_batch, generator, **options)

    monkeypatch.setattr(privacy, "private_gradients", recording_step)
    estimator = SyntheticGenomes(seed=1, privacy_epsilon=2.0, **settings).fit(genotypes, pops)
    account = estimator.privacy_
    assert account.people == 60 and account.steps == 6 * 4 and account.sample_rate == pytest.approx(0.25)
    assert account.delta == 1e-5 and account.unit == "person" and account.library.startswith("opacus")
    assert 1.8 <= account.epsilon_spent <= 2.0
    assert account.noise_multiplier == pytest.approx(privacy.noise_multiplier(2.0, 1e-5, 0.25, 24))
    history = estimator.history_
    assert len(history.beta) == 6 and history.best_epoch == 0 and len(history.validation) == 6  # only monitored
    # every step: a fixed divisor q n and noise σ C; each item drawn is one training person's two haplotypes
    assert len(steps) == account.steps
    assert all(divisor == pytest.approx(15.0) and noise == pytest.approx(account.noise_multiplier)
               for _, divisor, noise in steps)
    haplotypes = genotypes.haplotypes()
    people = {haplotypes[i].tobytes(): i for i in range(genotypes.n_samples)}
    drawn = [people.get(item.numpy().tobytes()) for rows, _, _ in steps for item in rows]
    # the draws are secret, so which people a run draws is not reproducible: a person is missed by all 24 Poisson
    # draws at q = 0.25 with chance 0.75**24 = 0.001 (one of 60 missed in 6 % of runs); drawing from the 20 held-out
    # people as well would show about 80 distinct people
    assert None not in drawn and 55 <= len(set(drawn)) <= 60
    assert 0.15 * 24 * 60 < len(drawn) < 0.35 * 24 * 60

    estimator.save(tmp_path / "m.pt")
    loaded = SyntheticGenomes.load(tmp_path / "m.pt")
    assert loaded.privacy_ == account
    assert loaded.history_.reconstruction == [] and loaded.history_.validation == []
    assert loaded.sample(n=6, seed=0).n_samples == 6


def test_private_noise_is_secret(phased):
    """The same seed gives the same start but not the same private model: the noise is not drawn from the seed
    (recorded in the model file, it would let anyone replay the noise)."""
    genotypes, pops = phased
    settings = {**TINY, "epochs": 1}
    first = SyntheticGenomes(seed=1, privacy_epsilon=2.0, **settings).fit(genotypes, pops).model_.state_dict()
    second = SyntheticGenomes(seed=1, privacy_epsilon=2.0, **settings).fit(genotypes, pops).model_.state_dict()
    assert not all(torch.equal(first[name], second[name]) for name in first)


def test_private_genotype_mode(phased):
    genotypes, _ = phased
    unphased = Genotypes.from_counts(genotypes.counts(), genotypes.samples, genotypes.variants)
    estimator = SyntheticGenomes(seed=2, privacy_epsilon=3.0, mode="genotype", **{**TINY, "epochs": 2}).fit(unphased)
    assert estimator.mode_ == "genotype" and estimator.privacy_.people == 80
    assert estimator.sample(n=5, seed=0).n_samples == 5


def test_model_files_without_a_privacy_record_still_load(phased, tmp_path):
    from genoae.io.vae_model import load_vae, save_vae

    genotypes, pops = phased
    estimator = SyntheticGenomes(seed=1, **{**TINY, "epochs": 1}).fit(genotypes, pops)
    state, metadata = estimator.model_.state_dict(), estimator.metadata()
    del metadata["privacy"]
    for name in ("privacy_epsilon", "privacy_delta", "clip_norm"):
        del metadata["params"][name]
    metadata["params"].update(epochs=1, batch_size=16, learning_rate=1e-2)  # as files written before
    save_vae(tmp_path / "old.pt", state, metadata)
    loaded = SyntheticGenomes.load(tmp_path / "old.pt")
    assert loaded.privacy_ is None and loaded.privacy_epsilon is None and load_vae(tmp_path / "old.pt")


def test_private_fit_starts_from_no_data(phased):
    """A private model's starting weights use no frequency of the training data (it would be released
    unprotected); a plain one starts its output layer at the training frequencies."""
    genotypes, pops = phased
    settings = {**TINY, "epochs": 1, "learning_rate": 1e-12, "weight_decay": 0.0}
    private = SyntheticGenomes(seed=1, privacy_epsilon=5.0, **settings).fit(genotypes, pops).model_
    plain = SyntheticGenomes(seed=1, **settings).fit(genotypes, pops).model_
    assert private.decoder_out.bias.abs().max() < 1e-6 and private.decoder_pop_bias.abs().max() < 1e-6
    assert plain.decoder_out.bias.abs().max() > 0.1 and plain.decoder_pop_bias.abs().max() > 0.1


def test_private_fit_refuses_a_delta_that_protects_nobody(phased):
    genotypes, pops = phased
    with pytest.raises(UsageError, match="δ"):
        SyntheticGenomes(seed=1, privacy_epsilon=1.0, privacy_delta=0.05, **TINY).fit(genotypes, pops)


def test_cli_private_training(tmp_path, capsys):
    from genoae.io import write_genotypes

    rows = mosaic_haplotypes(200, n_variants=32, seed=6)
    everyone = Genotypes.from_haplotypes(rows.reshape(-1, 2, 32), Samples([f"p{i}" for i in range(100)]))
    write_genotypes(everyone.subset(samples=np.arange(60)), tmp_path / "train.vcf.gz")
    write_genotypes(everyone.subset(samples=np.arange(60, 100)), tmp_path / "holdout.vcf.gz")
    common = ("--epochs", 2, "--hidden", 8, "--block-size", 8, "--latent-dim", 2, "--global-dim", 3, "--quiet",
              "--threads", 1)
    code, out, err = run_cli(capsys, "vae", "train", tmp_path / "train.vcf.gz", "-o", tmp_path / "m.pt",
                             "--privacy", 4, "--clip-norm", 2, *common)
    assert code == 0, err
    assert "DP-SGD" in out and "no early stopping" in out and "clip norm 2" in out and ": 2 epochs," in out
    loaded = SyntheticGenomes.load(tmp_path / "m.pt")
    assert loaded.privacy_.clip_norm == 2.0 and loaded.privacy_.epsilon == 4.0
    write_genotypes(loaded.sample(n=30, seed=1), tmp_path / "synth.vcf.gz")
    code, out, err = run_cli(capsys, "vae", "evaluate", tmp_path / "train.vcf.gz", tmp_path / "synth.vcf.gz",
                             "--holdout", tmp_path / "holdout.vcf.gz", "-o", tmp_path / "report", "--frontier",
                             tmp_path / "m.pt", "--temperatures", "1", "--reference-repeats", 2, "--ld-window", 10,
                             "--quiet")
    assert code == 0, err
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["frontier"]["model_privacy"] == [loaded.privacy_.as_dict()]
    assert f"model: DP-SGD, (ε = {loaded.privacy_.epsilon_spent:.3g}, δ = 1e-05) per person" in out
    code, out, err = run_cli(capsys, "vae", "train", tmp_path / "train.vcf.gz", "-o", tmp_path / "n.pt",
                             "--delta", 1e-6, *common)
    assert code == 2 and "--privacy EPSILON" in err and not (tmp_path / "n.pt").exists()
    code, out, err = run_cli(capsys, "vae", "train", tmp_path / "train.vcf.gz", "-o", tmp_path / "n.pt",
                             "--privacy", 1, "--patience", 3, *common)
    assert code == 2 and "--patience" in err and not (tmp_path / "n.pt").exists()
    code, out, err = run_cli(capsys, "vae", "train", tmp_path / "train.vcf.gz", "-o", tmp_path / "n.pt",
                             "--privacy", 1, "--delta", 0.1, *common)
    assert code == 2 and "δ" in err and not (tmp_path / "n.pt").exists()
