"""GenomeVAE / SyntheticGenomes: training, sampling, persistence, CLI."""
import json

import numpy as np
import pytest
import torch

from genoae.genotypes import Genotypes, Samples
from genoae.commands.vae import parse_population_counts
from genoae.simulate import GenomeVAE, SyntheticGenomes
from genoae.errors import UsageError

from tests.test_evaluate import mosaic_haplotypes

# a single-Gaussian prior: with 2 latent channels and 15 epochs the mixture prior's one-sample KL estimate left the
# tiny model collapsed for the first ~9 epochs (the mixture is exercised by the 805-panel round trip and its own test)
TINY = dict(latent_channels=2, global_dim=4, hidden=16, block_size=8, n_layers=1, prior_window=3, prior_components=1,
            epochs=15, batch_size=16, progress=False, device="cpu", warmup_epochs=2, learning_rate=1e-2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def phased():
    rows = mosaic_haplotypes(240, n_variants=70, seed=4)  # 120 individuals
    pops = np.repeat(["AAA", "BBB"], 60)
    return Genotypes.from_haplotypes(rows.reshape(-1, 2, 70), Samples([f"ind{i}" for i in range(120)])), pops


@pytest.fixture(scope="module")
def fitted(phased):
    genotypes, pops = phased
    return SyntheticGenomes(seed=1, **TINY).fit(genotypes, pops)


def test_shapes_and_causal_prior():
    model = GenomeVAE(50, n_pops=3, block_size=8, latent_channels=2, global_dim=4, hidden=8, prior_window=2)
    x = torch.randint(0, 2, (5, 50), dtype=torch.int8)
    x[0, :3] = -1
    pop = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 0, 1]), 3).float()
    logits, kl = model(x, pop)
    assert logits.shape == (5, 50) and kl.shape == (5,) and torch.all(kl >= 0)
    # changing block k of z must not change the prior of blocks <= k
    torch.nn.init.normal_(model.prior_out[-1].weight)
    z = torch.randn(2, 2, model.n_blocks)
    mu, _ = model.prior_parameters(z, torch.zeros(2, 4), pop[:2])
    z2 = z.clone()
    z2[:, :, 3] += 5
    mu2, _ = model.prior_parameters(z2, torch.zeros(2, 4), pop[:2])
    assert torch.allclose(mu[:, :, :4], mu2[:, :, :4]) and not torch.allclose(mu[:, :, 4:6], mu2[:, :, 4:6])
    genotype_model = GenomeVAE(50, mode="genotype", block_size=8, hidden=8)
    logits, _ = genotype_model(torch.randint(0, 3, (4, 50)))
    assert logits.shape == (4, 50, 3)


def test_forward_draws_the_local_noise_then_the_global():
    """The order of the two reparameterisation draws is what a seed reproduces (a model trained with --seed N
    before must train the same now)."""
    model = GenomeVAE(40, n_pops=2, block_size=8, latent_channels=2, global_dim=4, hidden=8, prior_window=2)
    x = torch.randint(0, 2, (3, 40), dtype=torch.int8)
    pop = torch.nn.functional.one_hot(torch.tensor([0, 1, 0]), 2).float()
    torch.manual_seed(7)
    logits, kl = model(x, pop)
    torch.manual_seed(7)
    mu_l, logvar_l, mu_g, logvar_g = model.encode(x, pop)
    z_l = mu_l + torch.randn_like(mu_l) * torch.exp(0.5 * logvar_l)
    z_g = mu_g + torch.randn_like(mu_g) * torch.exp(0.5 * logvar_g)
    torch.testing.assert_close(logits, model.decode(z_l, z_g, pop))


def test_missing_calls_do_not_count_in_reconstruction():
    model = GenomeVAE(20, block_size=8, hidden=8)
    x = torch.randint(0, 2, (3, 20))
    logits = torch.randn(3, 20)
    full = model.reconstruction_nll(logits, x)
    masked = x.clone()
    masked[:, 5] = -1
    dropped = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 5], x[:, 5].float(), reduction="none")
    torch.testing.assert_close(model.reconstruction_nll(logits, masked), full - dropped)


def test_training_reduces_loss(fitted):
    history = fitted.history_
    assert history.reconstruction[-1] < 0.7 * history.reconstruction[0]
    assert history.validation[-1] < history.validation[0]
    assert len(history.validation) == TINY["epochs"] and history.best_epoch >= TINY["warmup_epochs"]


def test_split_is_by_person(phased, monkeypatch):
    genotypes, _ = phased
    seen = {}
    original = SyntheticGenomes._mean_loss

    def spy(self, states, pop_codes, rows, chunk=512):
        seen["rows"] = np.asarray(rows)
        return original(self, states, pop_codes, rows, chunk)

    monkeypatch.setattr(SyntheticGenomes, "_mean_loss", spy)
    SyntheticGenomes(seed=0, **{**TINY, "epochs": 1}).fit(genotypes)
    people = seen["rows"] // 2
    assert len(seen["rows"]) == 2 * 12 and np.all(np.bincount(people)[np.unique(people)] == 2)


def test_sample_names_counts_and_variants(fitted, phased):
    genotypes, _ = phased
    synth = fitted.sample(counts={"BBB": 7, "AAA": 3}, seed=3)
    assert synth.n_samples == 10 and synth.phased
    assert synth.samples.iid.tolist() == [f"synth_BBB_{i}" for i in range(1, 8)] + [f"synth_AAA_{i}" for i in
                                                                                       range(1, 4)]
    assert np.array_equal(synth.variants.pos, genotypes.variants.pos)
    haps = synth.haplotypes()
    assert set(np.unique(haps)) <= {0, 1}
    plan = fitted.population_plan(n=11)
    assert sum(k for _, k in plan) == 11 and {p for p, _ in plan} == {"AAA", "BBB"}
    with pytest.raises(UsageError):
        fitted.sample(counts={"ZZZ": 3})


def test_same_seed_same_samples(fitted):
    a = fitted.sample(n=20, seed=7).haplotypes()
    b = fitted.sample(n=20, seed=7).haplotypes()
    c = fitted.sample(n=20, seed=8).haplotypes()
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_same_seed_same_training(phased):
    genotypes, pops = phased
    a = SyntheticGenomes(seed=5, **{**TINY, "epochs": 3}).fit(genotypes, pops)
    b = SyntheticGenomes(seed=5, **{**TINY, "epochs": 3}).fit(genotypes, pops)
    assert a.history_.validation == b.history_.validation


def test_save_load_round_trip(fitted, tmp_path):
    path = tmp_path / "model.pt"
    fitted.save(path)
    blob = torch.load(path, weights_only=True)  # no pickled code needed
    assert set(blob) == {"state_dict", "metadata"}
    metadata = json.loads(blob["metadata"])
    assert metadata["format"] == "genoae-vae-1" and metadata["allele_convention"].startswith("A2")
    loaded = SyntheticGenomes.load(path)
    assert loaded.populations_ == fitted.populations_ and loaded.mode_ == "haplotype"
    for key, value in fitted.model_.state_dict().items():
        assert torch.equal(value.cpu(), loaded.model_.state_dict()[key])
    assert np.array_equal(fitted.sample(n=6, seed=2).haplotypes(), loaded.sample(n=6, seed=2).haplotypes())
    assert loaded.variants_.id.tolist() == fitted.variants_.id.tolist()


def test_genotype_mode_unconditional(phased):
    genotypes, _ = phased
    unphased = Genotypes.from_counts(genotypes.counts(), genotypes.samples, genotypes.variants)
    est = SyntheticGenomes(seed=0, **{**TINY, "epochs": 3}).fit(unphased)
    assert est.mode_ == "genotype" and est.populations_ == []
    synth = est.sample(n=9, seed=0)
    assert synth.samples.iid[0] == "synth_1" and not synth.phased
    counts = synth.counts()
    assert counts.shape == (9, 70) and set(np.unique(counts)) <= {0, 1, 2}
    with pytest.raises(UsageError):
        SyntheticGenomes(mode="haplotype", **TINY).fit(unphased)


def test_parse_population_counts():
    assert parse_population_counts("YRI=500,CEU=20") == {"YRI": 500, "CEU": 20}
    assert parse_population_counts(None) is None
    with pytest.raises(UsageError):
        parse_population_counts("YRI500")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_training_and_sampling(phased):
    genotypes, pops = phased
    est = SyntheticGenomes(seed=0, **{**TINY, "device": "cuda"}).fit(genotypes, pops)
    assert next(est.model_.parameters()).is_cuda
    assert est.sample(n=4, seed=0).n_samples == 4


def run_cli(capsys, *args):
    from genoae.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_cli_train_sample_evaluate(tmp_path, capsys):
    import json

    from genoae.io import read_genotypes, write_genotypes

    rows = mosaic_haplotypes(400, n_variants=60, seed=9)  # 200 individuals: 100 train, 100 holdout
    people = Samples([f"p{i}" for i in range(200)])
    every = Genotypes.from_haplotypes(rows.reshape(-1, 2, 60), people)
    write_genotypes(every.subset(samples=np.arange(100)), tmp_path / "train.vcf.gz")
    write_genotypes(every.subset(samples=np.arange(100, 200)), tmp_path / "holdout.vcf.gz")
    (tmp_path / "labels.tsv").write_text("sample\tpop\n" + "".join(
        f"p{i}\t{'AAA' if i % 2 else 'BBB'}\n" for i in range(200)))

    code, out, err = run_cli(capsys, "vae", "train", tmp_path / "train.vcf.gz", "--pop", tmp_path / "labels.tsv",
                             "-o", tmp_path / "m.pt", "--epochs", 3, "--latent-dim", 2, "--global-dim", 4,
                             "--hidden", 8, "--block-size", 8, "--warmup", 1, "--quiet", "--threads", 1)
    assert code == 0, err
    assert "2 populations" in out and (tmp_path / "m.pt").exists() and "best held-out loss" in out
    code, out, err = run_cli(capsys, "vae", "train", tmp_path / "train.vcf.gz", "-o", tmp_path / "short.pt",
                             "--epochs", 1, "--warmup", 3, "--hidden", 8, "--block-size", 8, "--quiet")
    assert code == 0, err
    assert "all within the KL warm-up, so the last epoch is kept" in out and "unconditional" in out

    code, out, err = run_cli(capsys, "vae", "sample", tmp_path / "m.pt", "--pop", "AAA=30,BBB=20",
                             "-o", tmp_path / "synth.vcf.gz", "--seed", 4, "--device", "cpu")
    assert code == 0, err
    synth = read_genotypes(tmp_path / "synth.vcf.gz", quiet=True)
    assert synth.n_samples == 50 and synth.phased and synth.samples.iid[0] == "synth_AAA_1"
    assert np.array_equal(synth.variants.pos, every.variants.pos)

    code, out, err = run_cli(capsys, "vae", "evaluate", tmp_path / "train.vcf.gz", tmp_path / "synth.vcf.gz",
                             "--holdout", tmp_path / "holdout.vcf.gz", "--pop", tmp_path / "labels.tsv",
                             "-o", tmp_path / "report", "--ld-window", 20)
    assert code == 0, err
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["aats"]) == {"synthetic", "holdout"}
    assert "privacy_loss" in report and report["population_classification"]["n_classes"] == 2
    assert (tmp_path / "report_pca.png").exists() and "AATS" in out
    assert len(report["privacy_loss"]["fresh_real_reference"]["values"]) == 5 and "fresh real genomes" in out

    code, out, err = run_cli(capsys, "vae", "sample", tmp_path / "m.pt", "--pop", "ZZZ=3", "-o",
                             tmp_path / "x.vcf.gz")
    assert code == 2 and "ZZZ" in err and not (tmp_path / "x.vcf.gz").exists()
    code, out, err = run_cli(capsys, "vae", "sample", tmp_path / "labels.tsv", "-n", 3, "-o", tmp_path / "x.bed")
    assert code == 2 and "not a genoae VAE model" in err


def test_sampled_genomes_are_packed_as_drawn(fitted):
    """The rows the sampler draws are what the returned Genotypes hold (haplotypes, and their sums as counts)."""
    n = 7
    sampled = fitted.sample(counts={"AAA": n}, seed=5)
    # sample() draws each population's rows with a seed spawned from its own
    row_seed = int(np.random.SeedSequence(5).spawn(1)[0].generate_state(1)[0] % 2**31)
    rows = fitted.sample_rows(2 * n, "AAA", seed=row_seed)
    assert np.array_equal(sampled.haplotypes().reshape(2 * n, -1), rows)
    assert np.array_equal(sampled.counts(), rows[0::2] + rows[1::2])
    assert list(sampled.samples.iid) == [f"synth_AAA_{i + 1}" for i in range(n)]


@pytest.mark.parametrize("prior_hidden", [None, 12])
def test_sequential_prior_sampling_matches_teacher_forced_prior(prior_hidden):
    """The fast block-by-block sampler must draw from exactly the prior used in training."""
    torch.manual_seed(0)
    model = GenomeVAE(100, n_pops=2, block_size=8, latent_channels=3, global_dim=4, hidden=8, prior_window=3,
                      prior_hidden=prior_hidden)
    assert model.prior_conv.out_channels == (prior_hidden or 8)
    for module in model.prior_out:
        if isinstance(module, torch.nn.Conv1d):
            torch.nn.init.normal_(module.weight, std=0.3)
    torch.nn.init.normal_(model.prior_position, std=0.3)
    pop = torch.nn.functional.one_hot(torch.tensor([0, 1, 1]), 2).float()
    z_global = torch.randn(3, 4)
    generator = torch.Generator().manual_seed(5)
    z = model.sample_local_prior(3, z_global, pop, temperature=1.0, generator=generator)
    noise = torch.randn(3, 3, model.n_blocks, generator=torch.Generator().manual_seed(5))
    mu, logvar = model.prior_parameters(z, z_global, pop)
    torch.testing.assert_close(z, mu + torch.exp(0.5 * logvar) * noise, atol=1e-5, rtol=1e-5)


def test_805_panel_conditional_round_trip(tmp_path):
    """Real 1000 Genomes haplotypes through the readers: a short conditional fit, per-population sampling."""
    from tests.conftest import shared_path
    from genoae.io import read_genotypes
    from genoae.io.labels import read_labels
    from genoae.simulate import evaluate as ev

    folder = shared_path("1kg_805snp_haplotypes")
    everyone = read_genotypes(folder / "805_SNP_1000G_real.hapt.gz")
    pops = read_labels(folder / "labels.tsv", everyone.samples)
    keep = np.flatnonzero(np.isin(pops, ["YRI", "CHB", "GBR"]))
    train, holdout = keep[::2], keep[1::2]
    est = SyntheticGenomes(seed=0, epochs=8, batch_size=32, progress=False, device="cpu", warmup_epochs=2,
                           learning_rate=5e-3).fit(everyone.subset(samples=train), pops[train])
    assert est.populations_ == ["CHB", "GBR", "YRI"]
    synth = est.sample(counts={"YRI": 60, "CHB": 60, "GBR": 60}, seed=1)
    assert np.array_equal(synth.variants.pos, everyone.variants.pos)
    result = ev.tstr_accuracy(synth.counts(), synth.info["populations"], everyone.counts()[train], pops[train],
                              everyone.counts()[holdout], pops[holdout])
    # three continents are easy: a model that kept the labels apart classifies the real holdout well
    assert result["train_synthetic_test_real"] > 0.9


def test_sequential_mixture_prior_sampling_matches_teacher_forced_prior():
    """With a mixture prior, every sampled block is mean + sd * noise of the component its uniform draw picks."""
    torch.manual_seed(0)
    K, C = 4, 3
    model = GenomeVAE(100, n_pops=2, block_size=8, latent_channels=C, global_dim=4, hidden=8, prior_window=3,
                      prior_components=K)
    for module in model.prior_out:
        if isinstance(module, torch.nn.Conv1d):
            torch.nn.init.normal_(module.weight, std=0.3)
    torch.nn.init.normal_(model.prior_position, std=0.3)
    pop = torch.nn.functional.one_hot(torch.tensor([0, 1, 1, 0, 1]), 2).float()
    z_global = torch.randn(5, 4)
    z = model.sample_local_prior(5, z_global, pop, temperature=1.0, generator=torch.Generator().manual_seed(5))
    replay = torch.Generator().manual_seed(5)
    noise = torch.randn(5, C, model.n_blocks, generator=replay)
    uniform = torch.rand(5, model.n_blocks, generator=replay)
    mu, logvar, logits = model.prior_parameters(z, z_global, pop)  # (B, K, C, L), (B, K, C, L), (B, K, L)
    cdf = torch.softmax(logits, dim=1).cumsum(dim=1)  # (B, K, L)
    choice = (cdf < uniform[:, None, :]).sum(dim=1).clamp(max=K - 1)  # (B, L): inverse-CDF draw
    assert len(set(choice.flatten().tolist())) > 1  # the test exercises more than one component
    index = choice[:, None, None, :].expand(-1, 1, C, -1)
    expected = mu.gather(1, index)[:, 0] + torch.exp(0.5 * logvar.gather(1, index)[:, 0]) * noise
    torch.testing.assert_close(z, expected, atol=1e-5, rtol=1e-5)
    # the log-density used in training is a proper mixture: finite, and one value per row and block
    log_p = model.prior_log_density(z, z_global, pop)
    assert log_p.shape == (5, model.n_blocks) and torch.isfinite(log_p).all()



def test_load_refuses_metadata_that_does_not_fit_the_weights(fitted, tmp_path):
    from genoae.errors import InputError
    from genoae.io.vae_model import load_vae, save_vae

    path = tmp_path / "model.pt"
    fitted.save(path)
    state, metadata = load_vae(path)
    metadata["architecture"]["hidden"] += 4  # weights of another shape than the metadata says
    save_vae(path, state, metadata)
    with pytest.raises(InputError, match="do not fit together"):
        SyntheticGenomes.load(path)


def test_shrink_blends_the_population_input(fitted, tmp_path, capsys):
    """shrink λ conditions on (1 − λ) one-hot + λ group weights: λ = 0 is the plain sample, λ = 1 toward all
    populations draws both populations alike, and a group map keeps a population to its group."""
    from genoae.cli import main

    plain = fitted.sample(counts={"AAA": 30}, seed=3)
    np.testing.assert_array_equal(fitted.sample(counts={"AAA": 30}, seed=3, shrink=0.0).counts(), plain.counts())
    a = fitted.sample_rows(400, "AAA", seed=1, shrink=1.0)
    b = fitted.sample_rows(400, "BBB", seed=1, shrink=1.0)
    np.testing.assert_array_equal(a, b)          # the same input for both: the same draws
    alone = fitted.sample_rows(400, "AAA", seed=1, shrink=1.0, toward={"AAA": 1.0})
    np.testing.assert_array_equal(alone, fitted.sample_rows(400, "AAA", seed=1))
    with pytest.raises(UsageError, match="no weight"):
        fitted.sample_rows(4, "AAA", shrink=0.5, toward={"ZZZ": 1.0})
    with pytest.raises(UsageError, match="no group"):
        fitted.sample(counts={"AAA": 2}, shrink=0.5, groups={"BBB": "X"})
    model = tmp_path / "m.pt"
    fitted.save(model)
    table = tmp_path / "groups.tsv"
    table.write_text("sample\tpop\tsuper_pop\nx\tAAA\tG1\ny\tBBB\tG2\n")
    with pytest.raises(SystemExit) as done:
        main(["vae", "sample", str(model), "--pop", "AAA=5", "--shrink", "0.5", "--shrink-groups", str(table), "-o",
              str(tmp_path / "s.vcf.gz")])
    assert done.value.code == 0
    with pytest.raises(SystemExit) as refused:
        main(["vae", "sample", str(model), "-n", "4", "--shrink-groups", str(table), "-o", str(tmp_path / "t.vcf.gz")])
    assert refused.value.code == 2 and "--shrink S" in capsys.readouterr().err
