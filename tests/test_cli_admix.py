"""`genoae admix`, `genoae project` and `genoae demo` end to end through the command line."""
import numpy as np
import pytest

from genoae.cli import main
from genoae.genotypes import Genotypes, Samples, Variants
from genoae.io.plink import write_plink


def run_cli(args):
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return exit_info.value.code


def simulated_plink(folder, n=80, m=600, K=3, seed=0, missing=0.02, name="sim"):
    rng = np.random.default_rng(seed)
    P = rng.uniform(0.05, 0.95, size=(m, K))
    # mostly unadmixed individuals so that supervised labels make sense
    labels = rng.integers(0, K, size=n)
    Q = np.full((n, K), 0.02 / (K - 1))
    Q[np.arange(n), labels] = 0.98
    g = rng.binomial(2, Q @ P.T).astype(np.int8)
    g[rng.random(g.shape) < missing] = -1
    variants = Variants(chrom=np.full(m, "1"), pos=np.arange(1, m + 1) * 100,
                        id=np.array([f"rs{j}" for j in range(m)]), a1=np.full(m, "A"), a2=np.full(m, "G"))
    geno = Genotypes.from_counts(g, Samples(np.array([f"i{i}" for i in range(n)])), variants)
    prefix = folder / name
    write_plink(geno, prefix)
    return prefix, geno, Q, labels


def naive_loglik(g, Q, P):
    """ℓ = Σ over observed calls (g ≥ 0) of g log h + (2 − g) log(1 − h), h = Q Pᵀ clamped to [1e-5, 1-1e-5]."""
    h = np.clip(Q @ P.T, 1e-5, 1 - 1e-5)
    return float(np.where(g >= 0, g * np.log(h) + (2 - g) * np.log1p(-h), 0.0).sum())


def logged_logliks(log_path):
    """{K: ℓ} from the ``K=..\tloglik=...`` lines of PREFIX.log."""
    found = {}
    for line in open(log_path):
        if line.startswith("K="):
            fields = dict(field.split("=", 1) for field in line.rstrip("\n").split("\t")[:2])
            found[int(fields["K"])] = float(fields["loglik"])
    return found


def test_admix_writes_every_output(tmp_path, capsys):
    """PREFIX.K.Q/.P hold the fit (simplex rows, one row per SNP), PREFIX.log its ℓ, PREFIX.h5 the same Q and P."""
    from genoae.ancestry import NeuralAdmixture
    from genoae.io.model import load_model
    from genoae.io.qp import read_p, read_q
    from genoae.io.results import read_results_h5

    prefix, geno, _, _ = simulated_plink(tmp_path)
    out = tmp_path / "out" / "run"
    assert run_cli(["admix", f"{prefix}.bed", "-k", "2-3", "-o", out, "--seed", 3, "--quiet",
                    "--threads", 1]) == 0
    printed = capsys.readouterr().out
    assert "K=2\tloglik=" in printed and "K=3\tloglik=" in printed
    results, samples, variants = read_results_h5(f"{out}.h5")
    assert sorted(results) == [2, 3]
    assert list(samples.iid) == list(geno.samples.iid) and list(variants.id) == list(geno.variants.id)
    log = open(f"{out}.log").read()
    assert "A2 (PLINK .bim column 6)" in log
    logged = logged_logliks(f"{out}.log")
    assert sorted(logged) == [2, 3]
    g = geno.counts().astype(np.float64)
    for K in (2, 3):
        rows = [line.split() for line in open(f"{out}.{K}.Q")]
        assert len(rows) == geno.n_samples and all(len(row) == K for row in rows)
        assert all(len(x.split(".")[1]) == 6 for x in rows[0])
        Q, P = read_q(f"{out}.{K}.Q"), read_p(f"{out}.{K}.P")
        assert P.shape == (geno.n_variants, K)
        # rows on the simplex up to the files' rounding (K values rounded to 6 decimals each)
        np.testing.assert_allclose(Q.sum(axis=1), 1.0, rtol=0, atol=K * 5e-7 + 1e-12)
        # the logged ℓ is the ℓ of the written Q and P on these genotypes
        assert logged[K] == pytest.approx(naive_loglik(g, Q, P), rel=1e-6)
        assert logged[K] == pytest.approx(results[K].loglik, abs=5e-7)
        np.testing.assert_allclose(results[K].Q, Q, rtol=0, atol=5e-7 + 1e-12)
        np.testing.assert_allclose(results[K].P, P, rtol=0, atol=5e-7 + 1e-12)
        assert results[K].p_allele == "A2"
        model, metadata = load_model(f"{out}.{K}.model.pt", NeuralAdmixture)
        assert metadata["K"] == K and list(metadata["variants"].id) == list(geno.variants.id)
        # the decoder holds the refined P
        np.testing.assert_allclose(model.P, results[K].P, atol=1e-5)
    # more clusters fit at least as well
    assert results[3].loglik >= results[2].loglik


@pytest.mark.parametrize("ks", ["2..3", "2,3"])
def test_admix_k_range_and_list_syntax(tmp_path, ks):
    """-k 2..3 and -k 2,3 fit exactly K = 2 and K = 3, the same fits as -k 2-3 (same seed)."""
    prefix, geno, _, _ = simulated_plink(tmp_path, n=30, m=150, seed=5)
    assert run_cli(["admix", f"{prefix}.bed", "-k", "2-3", "-o", tmp_path / "dash", "--quiet",
                    "--threads", 1]) == 0
    assert run_cli(["admix", f"{prefix}.bed", "-k", ks, "-o", tmp_path / "run", "--quiet",
                    "--threads", 1]) == 0
    assert sorted(path.name for path in tmp_path.glob("run.*.Q")) == ["run.2.Q", "run.3.Q"]
    assert sorted(path.name for path in tmp_path.glob("run.*.P")) == ["run.2.P", "run.3.P"]
    assert sorted(logged_logliks(tmp_path / "run.log")) == [2, 3]
    for K in (2, 3):
        rows = [line.split() for line in open(tmp_path / f"run.{K}.Q")]
        assert len(rows) == geno.n_samples and all(len(row) == K for row in rows)
        assert (tmp_path / f"run.{K}.Q").read_text() == (tmp_path / f"dash.{K}.Q").read_text()


def test_admix_refuses_k_not_below_n(tmp_path, capsys):
    prefix, _, _, _ = simulated_plink(tmp_path, n=6, m=50)
    assert run_cli(["admix", f"{prefix}.bed", "-k", "6", "-o", tmp_path / "x", "--quiet"]) == 2
    assert "not smaller than the number of individuals" in capsys.readouterr().err
    assert not (tmp_path / "x.6.Q").exists()


def test_cross_validation_prints_cv_error(tmp_path, capsys):
    prefix, _, _, _ = simulated_plink(tmp_path, n=60, m=400)
    assert run_cli(["admix", f"{prefix}.bed", "-k", "2-3", "--cv", 3, "-o", tmp_path / "cv",
                    "--quiet", "--threads", 1]) == 0
    printed = capsys.readouterr().out
    errors = {K: float(printed.split(f"CV error (K={K}): ")[1].split()[0]) for K in (2, 3)}
    # the data have three populations: K=3 predicts held-out calls better
    assert 0.2 < errors[3] < errors[2] < 1.5


def test_supervised_keeps_labelled_individuals(tmp_path):
    from genoae.io.qp import read_q

    prefix, geno, Q_true, labels = simulated_plink(tmp_path, n=60, m=500, seed=2)
    names = np.array(["alpha", "beta", "gamma"])[labels]
    known = np.arange(60) % 2 == 0
    pop = tmp_path / "sim.pop"
    pop.write_text("".join(f"{names[i] if known[i] else '-'}\n" for i in range(60)))
    out = tmp_path / "sup"
    assert run_cli(["admix", f"{prefix}.bed", "-k", 3, "--supervised", pop, "-o", out, "--quiet",
                    "--threads", 1]) == 0
    Q = read_q(f"{out}.3.Q")
    # labelled rows are exactly their population (columns in sorted label order)
    np.testing.assert_allclose(Q[known, labels[known]], 1.0, atol=1e-4)
    # unlabelled rows are assigned to the right population, in the same column order
    assert (Q[~known].argmax(axis=1) == labels[~known]).mean() > 0.95
    assert "supervised: Q columns = alpha beta gamma" in open(f"{out}.log").read()
    # K must match the number of labels, for every K asked for, before any K runs
    assert run_cli(["admix", f"{prefix}.bed", "-k", 2, "--supervised", pop, "-o", out, "--quiet"]) == 2
    fresh = tmp_path / "fresh"
    assert run_cli(["admix", f"{prefix}.bed", "-k", "3,4", "--supervised", pop, "-o", fresh, "--quiet"]) == 2
    assert not list(tmp_path.glob("fresh*"))  # K = 3 would fit the labels, but nothing ran


def test_project_new_individuals_with_reordered_and_flipped_variants(tmp_path, capsys):
    from genoae.io.qp import read_q

    prefix, geno, Q_true, labels = simulated_plink(tmp_path, n=100, m=600, seed=4)
    train = geno.subset(samples=np.arange(80))
    write_plink(train, tmp_path / "train")
    out = tmp_path / "model_run"
    assert run_cli(["admix", tmp_path / "train.bed", "-k", 3, "-o", out, "--quiet",
                    "--threads", 1]) == 0
    Q_train = read_q(f"{out}.3.Q")
    # the new individuals: variants reversed, the first 50 dropped, alleles swapped for every third variant
    new = geno.subset(samples=np.arange(80, 100), variants=np.arange(599, 49, -1))
    counts = new.counts()
    flip = np.arange(new.n_variants) % 3 == 0
    counts[:, flip] = np.where(counts[:, flip] < 0, -1, 2 - counts[:, flip])
    v = new.variants
    a1, a2 = v.a1.copy(), v.a2.copy()
    a1[flip], a2[flip] = v.a2[flip], v.a1[flip]
    new = Genotypes.from_counts(counts, new.samples, Variants(v.chrom, v.pos, v.id, a1, a2))
    write_plink(new, tmp_path / "new")
    capsys.readouterr()
    assert run_cli(["project", tmp_path / "new.bed", "--model", f"{out}.3.model.pt", "-o", tmp_path / "proj",
                    "--threads", 1]) == 0
    printed = capsys.readouterr().out
    assert "550 of the model's 600 variants matched by ID (184 with A1/A2 swapped and flipped)" in printed
    assert "50 absent" in printed
    Q_new = read_q(tmp_path / "proj.3.Q")
    # each new individual lands in the training cluster of its true population
    train_cluster = {lab: np.bincount(Q_train[labels[:80] == lab].argmax(1)).argmax() for lab in range(3)}
    predicted = Q_new.argmax(axis=1)
    assert np.mean([predicted[i] == train_cluster[labels[80 + i]] for i in range(20)]) >= 0.95
    # PREFIX.h5: the same Q, the model's P on the model's variants, the logged ℓ, and the new individuals' IDs
    from genoae.io.qp import read_p
    from genoae.io.results import read_results_h5

    results, samples, variants = read_results_h5(tmp_path / "proj.h5")
    np.testing.assert_allclose(results[3].Q, Q_new, atol=1e-6)
    np.testing.assert_allclose(results[3].P, read_p(f"{out}.3.P"), atol=1e-5)
    assert results[3].loglik == pytest.approx(logged_logliks(tmp_path / "proj.log")[3], abs=1e-3)
    assert list(samples.iid) == list(new.samples.iid) and len(variants.id) == 600
    assert results[3].settings["projection"] is True


def test_demo_runs_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_cli(["demo", "-k", 3, "--quiet", "--threads", 1]) == 0
    printed = capsys.readouterr().out
    assert "K=3\tloglik=" in printed and "AFR: mean Q" in printed
    for name in ("demo.3.Q", "demo.3.P", "demo.h5", "demo.log", "demo.3.model.pt", "demo.3.model.json"):
        assert (tmp_path / "genoae_demo" / name).exists()


def test_reference_fraction_reaches_the_plain_fit(tmp_path, capsys):
    """--reference-fraction: a fit on a random subset, the rest projected onto it, then the refinement on all:
    the same optimum as a plain run (ℓ within 1e-6 relative, same Q up to cluster order); refused with
    --supervised and outside (0, 1)."""
    from genoae.compare import aligned_rmse
    from genoae.io.qp import read_q

    prefix, _, _, labels = simulated_plink(tmp_path, n=240, m=1500, missing=0.02)
    common = ["-k", 3, "--seed", 5, "--quiet", "--threads", 1]
    assert run_cli(["admix", f"{prefix}.bed", "-o", tmp_path / "plain", *common]) == 0
    assert run_cli(["admix", f"{prefix}.bed", "-o", tmp_path / "sub", "--reference-fraction", 0.25, *common]) == 0
    plain, sub = logged_logliks(tmp_path / "plain.log")[3], logged_logliks(tmp_path / "sub.log")[3]
    assert sub == pytest.approx(plain, rel=1e-6)
    assert aligned_rmse(read_q(tmp_path / "sub.3.Q"), read_q(tmp_path / "plain.3.Q")) < 1e-3
    assert "start (a fit on 60 individuals drawn at random" in (tmp_path / "sub.log").read_text()
    pop = tmp_path / "sim.pop"
    pop.write_text("".join(f"{'ABC'[label]}\n" for label in labels))
    capsys.readouterr()
    assert run_cli(["admix", f"{prefix}.bed", "-o", tmp_path / "sup", "--supervised", pop,
                    "--reference-fraction", 0.5, *common]) == 2
    assert "unsupervised runs" in capsys.readouterr().err
    for bad in (0, 1, "nan"):
        assert run_cli(["admix", f"{prefix}.bed", "-o", tmp_path / "bad", "--reference-fraction", bad, *common]) == 2
    assert not list(tmp_path.glob("sup*")) and not list(tmp_path.glob("bad*"))


def test_admix_starts_logs_every_start_and_writes_the_highest(tmp_path):
    """--starts 3 through the command line: the log lists three refined starts and the kept one, whose ℓ is the
    K line's and the written Q and P's; --starts with --supervised is refused before any work."""
    from genoae.io.qp import read_p, read_q

    prefix, geno, _, labels = simulated_plink(tmp_path, n=60, m=300)
    out = tmp_path / "run"
    assert run_cli(["admix", f"{prefix}.bed", "-k", "3", "-o", out, "--starts", "3", "--quiet"]) == 0
    log = (tmp_path / "run.log").read_text()
    line = next(text for text in log.splitlines() if "starts, each drawn afresh" in text)
    refined = [float(part.split(" (")[0]) for part in line.split("iterations): ")[1].split("; kept")[0].split("; ")]
    assert len(refined) == 3
    assert logged_logliks(tmp_path / "run.log")[3] == pytest.approx(max(refined), abs=1e-3)
    kept = int(line.split("kept start ")[1].split(",")[0])
    assert refined[kept - 1] == pytest.approx(max(refined), abs=1e-3)
    written = naive_loglik(geno.counts(), read_q(f"{out}.3.Q"), read_p(f"{out}.3.P"))
    assert written == pytest.approx(max(refined), rel=1e-6)  # Q and P are written with 6 decimals
    pop = tmp_path / "sim.pop"
    pop.write_text("\n".join(f"pop{label}" for label in labels) + "\n")
    assert run_cli(["admix", f"{prefix}.bed", "-k", "3", "-o", tmp_path / "sup", "--starts", "2",
                    "--supervised", pop, "--quiet"]) == 2
    assert not (tmp_path / "sup.3.Q").exists()
