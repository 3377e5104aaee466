"""genoae.simulate.frontier: the privacy-utility frontier of a model's sampling settings, and its CLI."""
import json

import numpy as np
import pytest

from genoae.errors import UsageError
from genoae.genotypes import Genotypes, Samples
from genoae.simulate import SyntheticGenomes
from genoae.simulate.frontier import (FREQUENCY_GENERATOR, FrontierPoint, frequency_generator, frontier_table,
                                      privacy_frontier, settings, summarise)

from tests.test_evaluate import mosaic_haplotypes
from tests.test_vae import TINY


@pytest.fixture(scope="module")
def halves():
    rows = mosaic_haplotypes(320, n_variants=60, seed=11)  # 160 individuals: 80 training, 80 holdout
    people = Genotypes.from_haplotypes(rows.reshape(-1, 2, 60), Samples([f"p{i}" for i in range(160)]))
    pops = np.where(np.arange(160) % 2, "AAA", "BBB")
    pops[:10] = "AAA"  # unequal population sizes: the frontier's sets must follow the training counts
    training, holdout = people.subset(samples=np.arange(80)), people.subset(samples=np.arange(80, 160))
    return training, holdout, pops[:80], pops[80:]


@pytest.fixture(scope="module")
def model(halves):
    training, _, train_pops, _ = halves
    return SyntheticGenomes(seed=2, **TINY).fit(training, train_pops)


def test_frequency_generator_draws_each_population_from_its_own_frequencies():
    """Two populations fixed for opposite alleles: a generator that pooled them would mix the alleles."""
    n, m = 30, 40
    counts = np.zeros((2 * n, m), np.int8)
    counts[n:] = 2
    counts[n, :5] = -1  # missing calls do not count as alleles (counted as 0 copies they would draw A1 in B)
    genotypes = Genotypes.from_counts(counts, Samples([f"i{k}" for k in range(2 * n)]))
    pops = np.repeat(["A", "B"], n)
    drawn = frequency_generator(genotypes, pops, seed=3)
    assert drawn.n_samples == 2 * n and drawn.phased
    names = list(drawn.samples.iid)
    assert names[0] == "synth_A_1" and names[n] == "synth_B_1"
    got = drawn.counts()
    assert np.all(got[:n] == 0) and np.all(got[n:] == 2)
    assert list(drawn.info["populations"]) == ["A"] * n + ["B"] * n
    pooled = frequency_generator(genotypes, None, seed=3).counts()
    assert 0.4 < pooled.mean() / 2 < 0.6 and list(frequency_generator(genotypes, None).samples.iid)[0] == "synth_1"


def test_frequency_generator_matches_frequencies_on_average():
    rng = np.random.default_rng(0)
    freq = rng.uniform(0.05, 0.95, 200)
    counts = rng.binomial(2, freq, size=(400, 200)).astype(np.int8)
    genotypes = Genotypes.from_counts(counts, Samples([f"i{k}" for k in range(400)]))
    drawn = frequency_generator(genotypes, seed=1).counts()
    observed = counts.mean(axis=0) / 2
    assert np.abs(drawn.mean(axis=0) / 2 - observed).max() < 0.12
    assert np.corrcoef(drawn.mean(axis=0), counts.mean(axis=0))[0, 1] > 0.95


def test_settings_and_their_checks(model):
    assert [name for name, _, _ in settings(model, (0.7, 1.0), (0.25,))] == ["temperature 0.7", "temperature 1",
                                                                             "shrink 0.25"]
    with pytest.raises(UsageError, match="shrinkages in"):
        settings(model, (1.0,), (1.5,))
    with pytest.raises(UsageError, match="temperatures must be"):
        settings(model, (0.0,), ())
    with pytest.raises(UsageError, match="at least one"):
        settings(model, (), ())
    with pytest.raises(UsageError, match="shrinkages in"):
        settings(model, (1.0,), (0.0,))  # not silently dropped
    unconditional = SyntheticGenomes()
    unconditional.populations_ = []
    assert [knob for _, knob, _ in settings(unconditional, (1.0,), (0.5,))] == ["temperature"]


def test_frontier_scores_every_setting_and_the_frequency_generator(model, halves):
    training, holdout, train_pops, hold_pops = halves
    points = privacy_frontier(model, training, holdout, train_pops, hold_pops, temperatures=(0.7, 1.3),
                              shrinks=(0.5,), seed=4, ld_window=10)
    assert [(p.knob, p.value) for p in points] == [("temperature", 0.7), ("temperature", 1.3), ("shrink", 0.5),
                                                   ("frequencies", None)]
    assert points[-1].name == FREQUENCY_GENERATOR
    for p in points:
        assert -1.0 <= p.privacy_loss <= 1.0 and 0.0 <= p.aats <= 1.0 and 0.0 <= p.accuracy <= 1.0
    # the sets differ (each setting is its own draw), so their scores are not all the same
    assert len({round(p.aats, 6) for p in points}) > 1
    # without labels: no accuracy axis, still privacy loss and AATS
    unlabelled = privacy_frontier(model, training, holdout, temperatures=(1.0,), shrinks=(), seed=4, ld_window=10)
    assert [p.knob for p in unlabelled] == ["temperature", "frequencies"]
    assert all(p.accuracy is None for p in unlabelled)
    with pytest.raises(UsageError, match="does not know"):
        privacy_frontier(model, training, holdout, np.full(80, "ZZZ"), hold_pops, temperatures=(1.0,))
    with pytest.raises(UsageError, match="no group for population"):
        privacy_frontier(model, training, holdout, train_pops, hold_pops, temperatures=(), shrinks=(0.5,),
                         groups={"AAA": "X"})


def test_unconditional_model_gets_no_accuracy_but_the_floor_does(halves):
    """A model trained without populations draws unlabelled sets: their accuracy is None, not a classifier row
    that maps every synthetic individual to one class; the frequency generator still uses the labels."""
    training, holdout, train_pops, hold_pops = halves
    unconditional = SyntheticGenomes(seed=2, **TINY).fit(training)
    points = privacy_frontier(unconditional, training, holdout, train_pops, hold_pops, temperatures=(1.0,),
                              shrinks=(0.5,), seed=4, ld_window=10)
    assert [p.knob for p in points] == ["temperature", "frequencies"]
    assert points[0].accuracy is None and points[1].accuracy is not None


def test_frontier_sets_follow_the_training_counts(model, halves, monkeypatch):
    training, holdout, train_pops, hold_pops = halves
    asked = []
    original = SyntheticGenomes.sample

    def spy(self, *args, **kwargs):
        asked.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SyntheticGenomes, "sample", spy)
    privacy_frontier(model, training, holdout, train_pops, hold_pops, temperatures=(0.8,), shrinks=(0.2,),
                     seed=4, ld_window=10)
    expected = {"AAA": int(np.sum(train_pops == "AAA")), "BBB": int(np.sum(train_pops == "BBB"))}
    assert expected["AAA"] != expected["BBB"]
    assert [call["counts"] for call in asked] == [expected, expected]
    assert asked[0]["temperature"] == 0.8 and asked[1]["shrink"] == 0.2 and "temperature" not in asked[1]


def test_summary_names_the_dominating_and_private_settings():
    def point(name, loss, accuracy, knob="temperature"):
        return FrontierPoint(name, knob, None if knob == "frequencies" else 1.0, loss, accuracy, 0.6, 0.6, 0.6)

    points = [point("a", 0.05, 0.60), point("b", 0.02, 0.50), point("c", 0.08, 0.70),
              point(FREQUENCY_GENERATOR, 0.06, 0.55, knob="frequencies")]
    summary = summarise(points, {"mean": 0.01, "sd": 0.01})
    assert summary["beats_frequency_generator"] == ["a"]
    assert summary["privacy_limit"] == pytest.approx(0.03)
    assert summary["within_fresh_real_privacy"] == ["b"]
    assert summarise(points, None)["within_fresh_real_privacy"] == []
    table = frontier_table(points).splitlines()
    assert table[0].split("\t")[:4] == ["name", "knob", "value", "privacy_loss"] and len(table) == 5
    assert table[-1].split("\t")[2] == "" and table[1].split("\t")[3] == "0.050000"


def write_inputs(folder, model, halves):
    """train.vcf.gz, holdout.vcf.gz, labels.tsv (pop and super_pop columns) and the model m.pt in ``folder``."""
    from genoae.io import write_genotypes

    training, holdout, train_pops, hold_pops = halves
    write_genotypes(training, folder / "train.vcf.gz")
    write_genotypes(holdout, folder / "holdout.vcf.gz")
    ids = list(training.samples.iid) + list(holdout.samples.iid)
    (folder / "labels.tsv").write_text("sample\tpop\tsuper_pop\n" + "".join(
        f"{i}\t{p}\tALL\n" for i, p in zip(ids, list(train_pops) + list(hold_pops))))
    model.save(folder / "m.pt")


def test_cli_evaluate_frontier(tmp_path, capsys, model, halves):
    from genoae.io import write_genotypes
    from tests.test_vae import run_cli

    write_inputs(tmp_path, model, halves)
    write_genotypes(model.sample(n=40, seed=1), tmp_path / "synth.vcf.gz")
    base = ["vae", "evaluate", tmp_path / "train.vcf.gz", tmp_path / "synth.vcf.gz", "--pop", tmp_path / "labels.tsv",
            "--ld-window", 10, "--quiet"]

    code, out, err = run_cli(capsys, *base, "-o", tmp_path / "nohold", "--frontier", tmp_path / "m.pt")
    assert code == 2 and "--frontier needs --holdout" in err and not (tmp_path / "nohold.json").exists()
    code, out, err = run_cli(capsys, *base, "--holdout", tmp_path / "holdout.vcf.gz", "-o", tmp_path / "x",
                             "--shrinks", "0.2")
    assert code == 2 and "give --frontier MODEL too" in err and not (tmp_path / "x.json").exists()
    code, out, err = run_cli(capsys, *base, "--holdout", tmp_path / "holdout.vcf.gz", "-o", tmp_path / "x",
                             "--frontier", tmp_path / "m.pt", "--shrinks", "-0.5")
    assert code == 2 and "shrinkages in (0, 1]" in err and not (tmp_path / "x.json").exists()
    code, out, err = run_cli(capsys, *base, "--holdout", tmp_path / "holdout.vcf.gz", "-o", tmp_path / "x",
                             "--frontier", tmp_path / "m.pt", "--temperatures", "0.7,abc")
    assert code == 2 and "'abc'" in err

    code, out, err = run_cli(capsys, *base, "--holdout", tmp_path / "holdout.vcf.gz", "-o", tmp_path / "report",
                             "--frontier", tmp_path / "m.pt", "--temperatures", "0.8,1", "--shrinks", "0.3",
                             "--shrink-groups", tmp_path / "labels.tsv", "--reference-repeats", 3)
    assert code == 0, err
    report = json.loads((tmp_path / "report.json").read_text())
    names = [p["name"] for p in report["frontier"]["points"]]
    assert names == ["evaluated set", "temperature 0.8", "temperature 1", "shrink 0.3", FREQUENCY_GENERATOR]
    assert report["frontier"]["points"][0]["privacy_loss"] == report["privacy_loss"]["synthetic"]
    fresh = report["privacy_loss"]["fresh_real_reference"]
    assert report["frontier"]["privacy_limit"] == pytest.approx(fresh["mean"] + 2 * fresh["sd"])
    rows = (tmp_path / "report.frontier.tsv").read_text().splitlines()
    assert len(rows) == 6 and rows[1].startswith("evaluated set\tevaluated")
    assert (tmp_path / "report_frontier.png").stat().st_size > 1000
    assert "frontier (privacy loss" in out and "report.frontier.tsv" in out
    assert report["frontier"]["model_privacy"] == [None] and "without a differential-privacy guarantee" in out


def test_cli_frontier_keeps_the_labels_for_a_set_named_otherwise(tmp_path, capsys, model, halves):
    """SYNTH from another tool (names without a population): SYNTH gets no accuracy, the frontier still does,
    and its sets follow the labels."""
    from genoae.io import write_genotypes
    from tests.test_vae import run_cli

    write_inputs(tmp_path, model, halves)
    other = model.sample(n=40, seed=1)
    other.samples.iid[:] = [f"other{i}" for i in range(40)]
    write_genotypes(other, tmp_path / "other.vcf.gz")
    code, out, err = run_cli(capsys, "vae", "evaluate", tmp_path / "train.vcf.gz", tmp_path / "other.vcf.gz",
                             "--holdout", tmp_path / "holdout.vcf.gz", "--pop", tmp_path / "labels.tsv", "-o",
                             tmp_path / "r", "--ld-window", 10, "--frontier", tmp_path / "m.pt", "--temperatures",
                             "1", "--shrinks", "none", "--quiet")
    assert code == 0, err
    points = json.loads((tmp_path / "r.json").read_text())["frontier"]["points"]
    assert [p["name"] for p in points] == ["evaluated set", "temperature 1", FREQUENCY_GENERATOR]
    assert points[0]["accuracy"] is None and points[1]["accuracy"] is not None and points[2]["accuracy"] is not None
