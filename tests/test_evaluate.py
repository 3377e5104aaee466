"""Metrics of genoae.simulate.evaluate on cases with known answers, and the fast versions against naive ones."""
import numpy as np
import pytest

from genoae.commands.vae import write_report
from genoae.simulate import evaluate as ev
from genoae.genotypes import Genotypes, Samples


def mosaic_haplotypes(n_rows, n_variants=200, n_founders=6, block=25, noise=0.01, seed=0):
    """Haplotypes made of founder segments (strong LD inside segments), with a little per-allele noise."""
    rng = np.random.default_rng(seed)
    founders = (rng.random((n_founders, n_variants)) < rng.uniform(0.1, 0.6, n_variants)).astype(np.int8)
    choice = rng.integers(0, n_founders, size=(n_rows, n_variants // block + 1))
    haps = founders[np.repeat(choice, block, axis=1)[:, :n_variants], np.arange(n_variants)]
    flip = rng.random(haps.shape) < noise
    return np.where(flip, 1 - haps, haps).astype(np.int8)


@pytest.fixture(scope="module")
def panel():
    rows = mosaic_haplotypes(800, seed=1)
    return rows[:400], rows[400:]


def test_distance_matrix_matches_naive_with_missing():
    rng = np.random.default_rng(0)
    X = rng.integers(-1, 3, size=(7, 30)).astype(np.int8)
    Y = rng.integers(-1, 3, size=(5, 30)).astype(np.int8)
    naive = np.array([[np.sum(np.where((x >= 0) & (y >= 0), np.abs(x.astype(int) - y), 0)) for y in Y] for x in X])
    assert np.array_equal(ev.distance_matrix(X, Y, ploidy=2), naive)
    H, G = (X.clip(-1, 1)), (Y.clip(-1, 1))
    naive_h = np.array([[np.sum((x >= 0) & (y >= 0) & (x != y)) for y in G] for x in H])
    assert np.array_equal(ev.distance_matrix(H, G, ploidy=1), naive_h)


def test_ld_band_matches_corrcoef():
    X = mosaic_haplotypes(300, n_variants=60, seed=2)
    i, j, r2 = ev.ld_r2_band(X, window=10, chunk=16)
    full = np.nan_to_num(np.corrcoef(X.T.astype(float)) ** 2)
    assert len(i) == sum(min(10, 59 - a) for a in range(60))
    assert np.all((j > i) & (j - i <= 10))
    np.testing.assert_allclose(r2, full[i, j], atol=1e-9)


def test_ld_band_masks_missing():
    X = mosaic_haplotypes(300, n_variants=20, seed=3)
    Y = X.copy()
    Y[:50, 3] = -1  # the pairs involving SNP 3 use the other 250 rows only
    _, j, r2 = ev.ld_r2_band(Y, window=5)
    _, _, r2_sub = ev.ld_r2_band(X[50:], window=5)
    i_all, _, _ = ev.ld_r2_band(X, window=5)
    pick = (i_all == 3) | (j == 3)
    np.testing.assert_allclose(r2[pick], r2_sub[pick], atol=1e-9)


def test_copy_of_training_set_is_caught(panel):
    training, holdout = panel
    copy = training.copy()
    aats = ev.adversarial_accuracy(training, copy)
    assert aats["aats"] == 0.0 and aats["aa_truth"] == 0.0 and aats["aa_syn"] == 0.0
    loss = ev.privacy_loss(copy, training, holdout)
    assert loss["privacy_loss"] > 0.3
    assert ev.exact_copies(copy, training) == len(copy)
    assert np.all(ev.nearest_distances(copy, training) == 0)


def test_split_people_keeps_each_persons_rows_together():
    first, second = ev.split_people(7, 2, np.random.default_rng(0))
    assert len(first) == 6 and len(second) == 8
    assert sorted(np.concatenate([first, second]).tolist()) == list(range(14))
    for half in (first, second):
        assert np.all(half[0::2] % 2 == 0) and np.all(half[1::2] == half[0::2] + 1)


def test_fresh_real_reference_is_noise_around_zero_for_real_genomes(panel):
    training, holdout = panel
    reference = ev.fresh_real_reference(training, holdout, rows_per_person=2, repeats=5, seed=1)
    assert len(reference["values"]) == 5 and reference["n_rows"] == 200
    assert abs(reference["mean"]) < 0.05
    assert 0 < reference["sd"] < 0.1
    # the same seed gives the same halvings
    assert ev.fresh_real_reference(training, holdout, rows_per_person=2, repeats=5, seed=1) == reference


def test_fresh_real_reference_flags_a_holdout_that_copies_training(panel):
    training, _ = panel
    reference = ev.fresh_real_reference(training, training.copy(), rows_per_person=2, repeats=3)
    assert reference["mean"] > 0.2


def test_fresh_real_reference_needs_four_people(panel):
    training, holdout = panel
    assert ev.fresh_real_reference(training, holdout[:6], rows_per_person=2) is None
    assert ev.fresh_real_reference(training, holdout, rows_per_person=2, repeats=0) is None


def test_real_holdout_looks_real(panel):
    training, holdout = panel
    aats = ev.adversarial_accuracy(training, holdout)
    assert 0.35 < aats["aats"] < 0.65
    assert ev.ld_metrics(training, holdout, window=30)["r"] > 0.9
    assert ev.allele_frequency_metrics(training, holdout)["r"] > 0.95


def test_independent_snp_generator_has_frequencies_but_no_ld(panel):
    training, _ = panel
    fake = ev.independent_snp_sample(training, 4000, seed=5)
    assert ev.allele_frequency_metrics(training, fake)["r"] > 0.99
    ld = ev.ld_metrics(training, fake, window=30)
    assert abs(ld["r"]) < 0.1
    # mean r2 of independent SNPs is ~1/n at every distance, far below the real short-range LD
    assert ld["decay"]["other"][0] < 0.01 < ld["decay"]["reference"][0]


def test_pca_projection_of_training_equals_fit_scores(panel):
    training, holdout = panel
    model = ev.pca_fit(training, 2)
    np.testing.assert_allclose(ev.pca_project(model, training), model["scores"], atol=1e-9)
    w_self = ev.pca_wasserstein(model["scores"], ev.pca_project(model, training))
    assert max(w_self) < 1e-9
    fake = ev.independent_snp_sample(training, 400, seed=1)
    w_real = ev.pca_wasserstein(model["scores"], ev.pca_project(model, holdout))
    w_fake = ev.pca_wasserstein(model["scores"], ev.pca_project(model, fake))
    assert w_fake[0] > w_real[0]


def test_classifier_separates_populations():
    rng = np.random.default_rng(0)
    freqs = rng.uniform(0.05, 0.95, size=(3, 100))
    labels = np.repeat(["A", "B", "C"], 60)
    X = rng.binomial(2, freqs[np.repeat(np.arange(3), 60)]).astype(np.int8)
    Xt = rng.binomial(2, freqs[np.repeat(np.arange(3), 60)]).astype(np.int8)
    result = ev.tstr_accuracy(X, labels, X, labels, Xt, labels)
    assert result["train_real_test_real"] > 0.95
    shuffled = ev.tstr_accuracy(X, rng.permutation(labels), X, labels, Xt, labels)
    assert shuffled["train_synthetic_test_real"] < 0.6


def test_synthetic_population_names():
    pops = ev.synthetic_populations(["synth_YRI_1", "synth_CEU_12", "synth_A_B_3", "synth_7", "HG00096"])
    assert pops.tolist() == ["YRI", "CEU", "A_B", "", ""]


def test_report_and_plots(tmp_path, panel):
    training, holdout = panel
    def geno(rows, prefix):
        haps = rows.reshape(-1, 2, rows.shape[1])
        return Genotypes.from_haplotypes(haps, Samples([f"{prefix}{i}" for i in range(len(haps))]))
    synth = ev.independent_snp_sample(training, 400, seed=3)
    report, arrays = ev.evaluate_synthetic(geno(training, "t"), geno(synth, "synth_"), geno(holdout, "h"),
                                           ld_window=20)
    assert report["unit"] == "haplotype"
    assert report["allele_frequency"]["synthetic"]["r"] > 0.95
    assert report["ld"]["holdout"]["r"] > 0.9 > report["ld"]["synthetic"]["r"]
    assert report["exact_copies_of_training"]["synthetic"] == 0
    assert report["aats"]["synthetic"]["aa_truth"] > report["aats"]["holdout"]["aa_truth"]
    reference = report["privacy_loss"]["fresh_real_reference"]
    assert len(reference["values"]) == 5 and abs(reference["mean"]) < 0.1
    paths = write_report(report, arrays, tmp_path / "rep")
    assert (tmp_path / "rep.json").exists() and all(p.exists() and p.stat().st_size > 1000 for p in paths[1:])
    import json
    assert json.loads((tmp_path / "rep.json").read_text())["n_variants"] == training.shape[1]


def test_evaluation_shows_its_progress(panel, capsys):
    """vae evaluate ran 85 s silently on AGBL4: the metrics now tick a bar on stderr, and stay quiet without it."""
    training, holdout = panel
    sets = [Genotypes.from_haplotypes(rows.reshape(-1, 2, rows.shape[1]), Samples([f"i{k}" for k in range(200)]))
            for rows in (training, holdout, holdout[::-1])]
    ev.evaluate_synthetic(*sets, reference_repeats=1, progress=True)
    shown = capsys.readouterr().err
    assert "evaluating" in shown and "closest records" in shown
    ev.evaluate_synthetic(*sets, reference_repeats=1, progress=False)
    assert "evaluating" not in capsys.readouterr().err
