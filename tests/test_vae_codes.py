"""GenomeVAE with discrete local latents (codebook_size > 0, a VQ-VAE): matching, codebook updates, the categorical
autoregressive prior and its sampler, training, persistence, and the DP-SGD refusal."""
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from genoae.errors import UsageError
from genoae.genotypes import Genotypes, Samples
from genoae.simulate import GenomeVAE, SyntheticGenomes

from tests.test_evaluate import mosaic_haplotypes
from tests.test_vae import run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = dict(latent_channels=3, global_dim=4, hidden=8, block_size=8, prior_window=3, codebook_size=6)


def spread_prior(model, std=0.5):
    """Random prior weights (a new model's prior starts uniform, which tests nothing)."""
    torch.manual_seed(1)
    for module in model.prior_out:
        if isinstance(module, torch.nn.Conv1d):
            torch.nn.init.normal_(module.weight, std=std)
    torch.nn.init.normal_(model.prior_conv.weight, std=std)
    torch.nn.init.normal_(model.prior_position, std=std)
    torch.nn.init.normal_(model.prior_tokens.weight, std=std)
    torch.nn.init.normal_(model.prior_tokens.bias, std=std)
    model.codebook.copy_(F.normalize(torch.randn_like(model.codebook), dim=2))


def test_each_block_takes_its_nearest_code():
    model = GenomeVAE(60, **SMALL)
    model.codebook.copy_(F.normalize(torch.randn_like(model.codebook), dim=2))
    z = torch.randn(7, 3, model.n_blocks)
    codes, z_unit, z_code = model.quantize(z)
    unit = z / z.norm(dim=1, keepdim=True)
    torch.testing.assert_close(z_unit, unit)
    for b in range(7):
        for block in range(model.n_blocks):
            distances = ((model.codebook[block] - unit[b, :, block]) ** 2).sum(dim=1)
            assert codes[b, block] == distances.argmin()
            torch.testing.assert_close(z_code[b, :, block], model.codebook[block, codes[b, block]])


def test_codebook_moves_toward_its_rows_and_restarts_unused_codes():
    model = GenomeVAE(16, **SMALL)  # 2 blocks, 6 codes each
    torch.manual_seed(0)
    z = F.normalize(torch.randn(40, 3, 2), dim=1)

    def is_a_row(code, rows):
        return bool(torch.isclose(rows @ code, torch.tensor(1.0), atol=1e-5).any())

    # counts start at 0: the first batch puts code 0 at its rows' mean direction and seeds the unused codes on rows
    model.update_codebook(z, torch.zeros(40, 2, dtype=torch.long))
    for block in range(2):
        torch.testing.assert_close(model.codebook[block, 0], F.normalize(z[:, :, block].mean(dim=0), dim=0))
        assert all(is_a_row(code, z[:, :, block]) for code in model.codebook[block, 1:])
    assert torch.allclose(model.code_counts[:, 0], torch.tensor(0.4)) and (model.code_counts[:, 1:] == 1).all()
    # new rows all assigned to code 1: it moves toward their mean; code 0 (unused, still alive) and 2-5 stay
    before = model.codebook.clone()
    other = F.normalize(torch.randn(40, 3, 2) + torch.tensor([3.0, 0.0, 0.0])[None, :, None], dim=1)
    model.update_codebook(other, torch.ones(40, 2, dtype=torch.long))
    target = F.normalize(other.mean(dim=0).T, dim=1)  # (2 blocks, 3)
    for block in range(2):
        assert model.codebook[block, 1] @ target[block] > before[block, 1] @ target[block] + 0.01
    torch.testing.assert_close(model.codebook[:, [0, 2, 3, 4, 5]], before[:, [0, 2, 3, 4, 5]])
    # a code unused long enough restarts on a row of the batch
    model.code_counts[1, 4] = 0.001
    model.update_codebook(other, torch.ones(40, 2, dtype=torch.long))
    assert is_a_row(model.codebook[1, 4], other[:, :, 1]) and model.code_counts[1, 4] == 1.0
    # codes restarted together take distinct rows (identical codes would tie in the matching forever)
    fresh = GenomeVAE(16, **{**SMALL, "codebook_size": 30})
    fresh.update_codebook(z, torch.zeros(40, 2, dtype=torch.long))
    for block in range(2):
        assert len(torch.unique(fresh.codebook[block, 1:], dim=0)) == 29


def test_only_training_moves_the_codebook():
    model = GenomeVAE(40, **SMALL)
    x = torch.randint(0, 2, (20, 40), dtype=torch.int8)
    model.train()
    model(x)
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    model.eval()
    model(x)
    assert all(torch.equal(b, buffers[name]) for name, b in model.named_buffers())
    model.train()
    model(x)
    assert not torch.equal(model.code_counts, buffers["code_counts"])


def test_code_prior_is_causal():
    model = GenomeVAE(60, n_pops=2, **SMALL)
    spread_prior(model)
    pop = F.one_hot(torch.tensor([0, 1]), 2).float()
    codes = torch.randint(0, 6, (2, model.n_blocks))
    z_global = torch.randn(2, 4)
    logits = model.code_logits(model.code_vectors(codes), z_global, pop)
    assert logits.shape == (2, model.n_blocks, 6)
    changed = codes.clone()
    changed[:, 3] = (changed[:, 3] + 1) % 6
    logits2 = model.code_logits(model.code_vectors(changed), z_global, pop)
    torch.testing.assert_close(logits[:, :4], logits2[:, :4])  # block 3 informs only the blocks after it
    assert not torch.allclose(logits[:, 4:7], logits2[:, 4:7])


def test_sequential_code_sampling_matches_teacher_forced_prior():
    """The block-by-block sampler draws each code by inverse CDF from exactly the prior used in training."""
    model = GenomeVAE(100, n_pops=2, **SMALL)
    spread_prior(model)
    n = 6
    pop = F.one_hot(torch.tensor([0, 1, 1, 0, 1, 0]), 2).float()
    z_global = torch.randn(n, 4)
    for temperature in (1.0, 0.5):
        z = model.sample_local_prior(n, z_global, pop, temperature, generator=torch.Generator().manual_seed(3))
        codes, _, z_code = model.quantize(z)  # the draws are code vectors: matching finds them back
        torch.testing.assert_close(z, z_code)
        uniform = torch.rand(n, model.n_blocks, generator=torch.Generator().manual_seed(3))
        logits = model.code_logits(z, z_global, pop)
        cdf = torch.softmax(logits / temperature, dim=2).cumsum(dim=2)
        expected = (cdf < uniform[:, :, None]).sum(dim=2).clamp(max=5)
        assert torch.equal(codes, expected)
        assert len(set(codes.flatten().tolist())) > 2


def test_code_draws_follow_the_prior_probabilities():
    model = GenomeVAE(24, **SMALL)
    spread_prior(model, std=1.0)
    z_global = torch.full((20000, 4), 0.3)
    z = model.sample_local_prior(20000, z_global, generator=torch.Generator().manual_seed(0))
    codes, _, _ = model.quantize(z)
    first = model.code_logits(z[:1], z_global[:1])[0, 0].softmax(dim=0)  # block 0 has no code before it
    observed = torch.bincount(codes[:, 0], minlength=6) / 20000.0
    assert torch.allclose(observed, first, atol=0.015)


@pytest.fixture(scope="module")
def structured():
    rows = mosaic_haplotypes(240, n_variants=64, seed=4)  # 120 individuals
    return Genotypes.from_haplotypes(rows.reshape(-1, 2, 64), Samples([f"ind{i}" for i in range(120)]))


def test_discrete_model_trains_samples_and_round_trips(structured, tmp_path):
    settings = dict(latent_channels=4, global_dim=4, hidden=16, block_size=8, n_layers=1, prior_window=3,
                    codebook_size=8, epochs=25, batch_size=16, progress=False, device="cpu", warmup_epochs=2,
                    learning_rate=1e-2)
    estimator = SyntheticGenomes(seed=1, **settings).fit(structured)
    history = estimator.history_
    assert history.validation[-1] < 0.8 * history.validation[0]
    model = estimator.model_
    codes, _, _ = model.quantize(model.encode(torch.as_tensor(structured.haplotypes().reshape(-1, 64)))[0])
    distinct = [len(torch.unique(codes[:, block])) for block in range(model.n_blocks)]
    assert model.codebook_size == 8 and np.mean(distinct) >= 3  # the training haplotypes use several codes a block
    synthetic = estimator.sample(n=400, seed=2)
    real = structured.haplotypes().reshape(-1, 64).astype(float)
    assert np.abs(synthetic.haplotypes().reshape(-1, 64).mean(axis=0) - real.mean(axis=0)).max() < 0.12
    estimator.save(tmp_path / "codes.pt")
    loaded = SyntheticGenomes.load(tmp_path / "codes.pt")
    assert loaded.codebook_size == 8 and torch.equal(loaded.model_.codebook, model.codebook)
    assert np.array_equal(loaded.sample(n=5, seed=3).haplotypes(), estimator.sample(n=5, seed=3).haplotypes())
    # the same seed trains the same codebooks
    again = SyntheticGenomes(seed=1, **{**settings, "epochs": 3}).fit(structured)
    twice = SyntheticGenomes(seed=1, **{**settings, "epochs": 3}).fit(structured)
    assert torch.equal(again.model_.codebook, twice.model_.codebook)


def test_discrete_genotype_model(structured):
    settings = dict(latent_channels=3, global_dim=4, hidden=8, block_size=8, n_layers=1, prior_window=2,
                    codebook_size=4, epochs=2, batch_size=16, progress=False, device="cpu", warmup_epochs=1)
    estimator = SyntheticGenomes(mode="genotype", seed=1, **settings).fit(structured)
    counts = estimator.sample(n=30, seed=0).counts()
    assert estimator.mode_ == "genotype" and counts.shape == (30, 64) and set(np.unique(counts)) <= {0, 1, 2}


def test_discrete_latents_are_refused_under_dp_sgd(structured):
    with pytest.raises(UsageError, match="DP-SGD"):
        SyntheticGenomes(codebook_size=8, privacy_epsilon=2.0, epochs=1, progress=False).fit(structured)
    with pytest.raises(ValueError, match="prior_window"):
        GenomeVAE(40, codebook_size=4, prior_window=0)
    for bad in ({"codebook_size": -1}, {"codebook_size": 4, "prior_window": 0}):
        with pytest.raises(UsageError, match="codebook size"):
            SyntheticGenomes(epochs=1, progress=False, **bad).fit(structured)


def test_cli_trains_and_samples_a_discrete_model(structured, tmp_path, capsys):
    from genoae.io import read_genotypes, write_genotypes

    write_genotypes(structured, tmp_path / "train.vcf.gz")
    code, out, err = run_cli(capsys, "vae", "train", tmp_path / "train.vcf.gz", "-o", tmp_path / "m.pt",
                             "--codebook-size", 5, "--weight-decay", 0.05, "--epochs", 3, "--latent-dim", 3,
                             "--hidden", 8, "--block-size", 8, "--warmup", 1, "--quiet", "--threads", 1)
    assert code == 0, err
    loaded = SyntheticGenomes.load(tmp_path / "m.pt")
    assert loaded.model_.codebook_size == 5 and loaded.weight_decay == 0.05
    assert loaded.model_.codebook.shape == (8, 5, 3)
    code, out, err = run_cli(capsys, "vae", "sample", tmp_path / "m.pt", "-n", 12, "--temperature", 0.9,
                             "-o", tmp_path / "synth.vcf.gz", "--seed", 4, "--device", "cpu")
    assert code == 0, err
    synth = read_genotypes(tmp_path / "synth.vcf.gz", quiet=True)
    assert synth.n_samples == 12 and synth.phased and synth.n_variants == 64
    # the privacy / realism frontier over temperatures works on a discrete model as on a continuous one
    write_genotypes(structured.subset(samples=np.arange(60)), tmp_path / "holdout.vcf.gz")
    code, out, err = run_cli(capsys, "vae", "evaluate", tmp_path / "train.vcf.gz", tmp_path / "synth.vcf.gz",
                             "--holdout", tmp_path / "holdout.vcf.gz", "--frontier", tmp_path / "m.pt",
                             "--temperatures", "0.8,1", "--ld-window", 10, "-o", tmp_path / "report")
    assert code == 0, err
    rows = (tmp_path / "report.frontier.tsv").read_text().splitlines()
    assert [row.split("\t")[0] for row in rows[2:4]] == ["temperature 0.8", "temperature 1"]
    code, out, err = run_cli(capsys, "vae", "train", tmp_path / "train.vcf.gz", "-o", tmp_path / "p.pt",
                             "--codebook-size", 5, "--privacy", 2, "--epochs", 1, "--quiet")
    assert code == 2 and "DP-SGD" in err and not (tmp_path / "p.pt").exists()
