"""SNP-sharded runs on torch.distributed (Gloo, 2 processes on this machine, spawned from the tests) against the
one-process run: the steps, the start, the fit, CV, the encoder, the outputs and the faults."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from genoae.device import to_numpy
import pytest
import torch

from genoae.ancestry import Admixture
from genoae.ancestry.distributed import launch_environment
from genoae.ancestry.start import svd_als
from genoae.errors import InputError, UsageError
from genoae.genotypes import Genotypes
from genoae.io import read_genotype_part, read_genotypes
from genoae.io.plink import write_plink
from genoae.likelihood import PackedCalls
from genoae.shard import LOCAL, split

sys.path.insert(0, str(Path(__file__).parent))
from sharded import run_ranks  # noqa: E402  (the spawned ranks import the same module)
from tests.test_engine import simulate  # noqa: E402


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    """301 individuals (not a multiple of 4) × 1,001 variants with 3 % missing calls: the two ranks split at
    variant 500, inside the first block of the one-process run and of the encoder check's synthetic calls."""
    g, _, _ = simulate(301, 1001, 3, seed=11, fst=0.15, missing=0.03)
    folder = tmp_path_factory.mktemp("sharded")
    path = folder / "data.bed"
    write_plink(Genotypes.from_counts(g), path)
    return path


def torchrun_genoae(ranks: int = 2) -> list:
    """The README's launch line, ``torchrun --standalone --nproc-per-node 2 --no-python genoae``, where both
    commands are on PATH; else the same launcher and command through this Python (``-m``)."""
    if shutil.which("torchrun") and shutil.which("genoae"):
        return ["torchrun", "--standalone", "--nproc-per-node", str(ranks), "--no-python", "genoae"]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks), "-m",
            "genoae"]


def test_split_is_contiguous_and_balanced():
    assert split(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert split(5, 5) == [(i, i + 1) for i in range(5)]
    ranges = split(1001, 2)
    assert ranges[0][1] == ranges[1][0] and ranges[1][1] == 1001


def test_launch_environment_reads_torchrun_variables():
    assert launch_environment({}) is None
    assert launch_environment({"WORLD_SIZE": "1", "RANK": "0"}) is None
    launch = launch_environment({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2"})
    assert (launch.rank, launch.size, launch.local_rank, launch.local_size) == (2, 4, 0, 2)
    assert launch.threads() == max(1, (os.cpu_count() or 1) // 2)
    with pytest.raises(UsageError, match="outside"):
        launch_environment({"WORLD_SIZE": "2", "RANK": "5"})


def test_one_process_shard_is_the_identity():
    values = (np.arange(3.0), torch.ones(2), 4.5, 7)
    assert LOCAL.sum(*values) == values
    assert LOCAL.gather_rows(values[0]) is values[0]


def test_a_part_reads_only_its_rows(bed):
    whole = read_genotypes(bed)
    part = read_genotype_part(bed, 1, 2)
    assert (part.start, part.stop) == (500, 1001) and len(part.variants) == 1001
    np.testing.assert_array_equal(np.asarray(part.genotypes.packed), np.asarray(whole.packed[500:]))
    np.testing.assert_array_equal(part.genotypes.variants.id, whole.variants.id[500:])
    # a memory map over this rank's rows alone: its bytes are its share of the file
    assert isinstance(part.genotypes.packed, np.memmap)
    assert part.genotypes.packed.nbytes == 501 * ((301 + 3) // 4)
    assert part.genotypes.packed.offset == 3 + 500 * ((301 + 3) // 4)


def test_a_part_of_a_text_format_is_refused_with_the_way_out(tmp_path):
    path = tmp_path / "x.vcf"
    path.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ts1\n"
                    "1\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\n")
    with pytest.raises(InputError, match="convert it first"):
        read_genotype_part(path, 0, 2)


@pytest.mark.parametrize("suffix, layout", [(".h5", "allel"), (".h5", "packed"), (".vcz", None), (".npy", None)])
def test_parts_of_hdf5_zarr_and_npy_are_their_ranges(tmp_path, suffix, layout):
    """Each rank reads its range through the format's own slicing; the parts put together are the whole."""
    from genoae.io import write_genotypes
    from genoae.io.hdf5 import write_hdf5

    g, _, _ = simulate(23, 41, 2, seed=3, fst=0.15, missing=0.05)
    genotypes = Genotypes.from_counts(g)
    path = tmp_path / f"x{suffix}"
    if layout:
        write_hdf5(genotypes, path, layout=layout)
    else:
        write_genotypes(genotypes, path)
    whole = read_genotypes(path)
    parts = [read_genotype_part(path, rank, 3, quiet=True) for rank in range(3)]
    assert [(p.start, p.stop) for p in parts] == split(41, 3)
    for part in parts:
        np.testing.assert_array_equal(part.genotypes.counts(), whole.counts()[:, part.start:part.stop])
        np.testing.assert_array_equal(part.genotypes.variants.id, whole.variants.id[part.start:part.stop])
        np.testing.assert_array_equal(part.variants.id, whole.variants.id)


def test_an_hdf5_part_counts_the_variants_read_not_the_records(tmp_path):
    """Skipped records (multi-allelic) do not count: the ranks split the biallelic SNPs."""
    import h5py

    gt = np.array([[[0, 1], [1, 1]], [[0, 2], [1, 1]], [[1, 1], [0, 0]], [[0, 0], [0, 1]]], np.int8)
    with h5py.File(tmp_path / "m.h5", "w") as h5:
        h5["calldata/GT"] = gt
        h5["variants/POS"] = np.arange(1, 5)
        h5["variants/REF"] = np.array([b"A"] * 4)
        h5["variants/ALT"] = np.array([[b"G", b""], [b"G", b"T"], [b"G", b""], [b"G", b""]])
    whole = read_genotypes(tmp_path / "m.h5", quiet=True)
    parts = [read_genotype_part(tmp_path / "m.h5", rank, 2, quiet=True) for rank in range(2)]
    assert [(p.start, p.stop) for p in parts] == [(0, 1), (1, 3)]
    np.testing.assert_array_equal(np.concatenate([p.genotypes.counts() for p in parts], axis=1), whole.counts())


def test_more_ranks_than_variants_is_refused(tmp_path):
    g, _, _ = simulate(20, 3, 2, seed=1, fst=0.15)
    write_plink(Genotypes.from_counts(g), tmp_path / "tiny.bed")
    with pytest.raises(InputError, match="3 variants for 4 ranks"):
        read_genotype_part(tmp_path / "tiny.bed", 0, 4)


@pytest.mark.skipif(shutil.which("plink2") is None, reason="needs plink2 to make a .pgen (apt-get install plink2)")
def test_a_pgen_part_is_its_range_of_biallelic_variants(bed, tmp_path):
    subprocess.run(["plink2", "--bfile", str(bed)[:-4], "--make-pgen", "--out", str(tmp_path / "x")], check=True,
                   capture_output=True)
    whole = read_genotypes(tmp_path / "x.pgen")
    part = read_genotype_part(tmp_path / "x.pgen", 1, 2)
    np.testing.assert_array_equal(part.genotypes.counts(), whole.counts()[:, 500:])


def test_tall_qr_across_ranks_equals_one_qr(tmp_path):
    rng = np.random.default_rng(0)
    for rows in (40, 7):  # 7 rows over 2 ranks: fewer rows than columns on each, the gathered case
        matrix = rng.standard_normal((rows, 5))
        result = run_ranks("qr", 2, tmp_path / str(rows), matrix=matrix)[0]
        basis, upper = np.linalg.qr(matrix)
        signs = np.sign(np.diag(upper))
        np.testing.assert_allclose(result["basis"], basis * signs, atol=1e-12)
        np.testing.assert_allclose(result["upper"], upper * signs[:, None], atol=1e-12)


def test_sharded_steps_equal_the_one_process_steps(bed, tmp_path):
    """ℓ, the EM and block-relaxation steps, the observed counts, a CV fold's training ℓ and held-out deviance:
    the same numbers from 2 ranks as from one process (ℓ within 1e-9 relative)."""
    genotypes = read_genotypes(bed)
    rng = np.random.default_rng(3)
    Q = rng.dirichlet(np.ones(3), genotypes.n_samples)
    P = rng.uniform(0.05, 0.95, (genotypes.n_variants, 3))
    ranks = run_ranks("steps", 2, tmp_path, path=bed, Q=Q, P=P, folds=5, fold=2, seed=77, threads=2)
    calls = PackedCalls.from_genotypes(genotypes)
    Qt, Pt = torch.from_numpy(Q), torch.from_numpy(P)
    em_Q, em_P, em_loglik = calls.em_step(Qt, Pt, with_loglik=True)
    newton_Q, newton_P, newton_loglik = calls.newton_step(Qt, Pt, with_loglik=True)
    deviance, held = calls.deviance(Qt, Pt, 5, 2, 77)
    training = calls.training(5, 2, 77)
    for rank in ranks:
        np.testing.assert_allclose(rank["loglik"], calls.loglik(Qt, Pt), rtol=1e-9)
        np.testing.assert_allclose(rank["unchanged_loglik"], calls.loglik(Qt, Pt), rtol=1e-9)  # summed once
        np.testing.assert_array_equal(rank["n_observed"], to_numpy(calls.n_observed))
        np.testing.assert_allclose(rank["em_loglik"], em_loglik, rtol=1e-9)
        np.testing.assert_allclose(rank["em_Q"], to_numpy(em_Q), atol=1e-12)
        np.testing.assert_allclose(rank["em_P"], to_numpy(em_P), atol=1e-12)
        np.testing.assert_allclose(rank["newton_loglik"], newton_loglik, rtol=1e-9)
        np.testing.assert_allclose(rank["newton_Q"], to_numpy(newton_Q), atol=1e-10)
        np.testing.assert_allclose(rank["newton_P"], to_numpy(newton_P), atol=1e-10)
        assert int(rank["held"]) == held  # the same calls are held out: folds hash the SNP's index among all
        np.testing.assert_allclose(rank["deviance"], deviance, rtol=1e-9)
        np.testing.assert_allclose(rank["training_loglik"], training.loglik(Qt, Pt), rtol=1e-9)
        np.testing.assert_array_equal(rank["training_observed"], to_numpy(training.n_observed))
    np.testing.assert_array_equal(ranks[0]["newton_Q"], ranks[1]["newton_Q"])  # every rank holds the same Q


def test_sharded_fit_equals_the_one_process_fit(bed, tmp_path, monkeypatch):
    """Start, refinement, encoder and CV from 2 ranks: the one-process values up to float rounding (final Q
    RMSE ≤ 1e-5), and bit for bit the same Q on both ranks.  The encoder check's budget makes its cohort size
    depend on the number of variants (149 individuals here; 300 and 299 if each rank counted its own share)."""
    from genoae.ancestry import encoder

    monkeypatch.setattr(encoder, "CHECK_CALLS", 150_000)
    genotypes = read_genotypes(bed)
    ranks = run_ranks("fit", 2, tmp_path, path=bed, K=3, seed=5, cv=3, check_calls=150_000)
    calls = PackedCalls.from_genotypes(genotypes)
    Q0, P0 = svd_als(calls, genotypes.allele_freqs(), 3, np.random.default_rng(5))
    one = Admixture(3, seed=5, progress=False, threads=1).fit(genotypes, calls=calls)
    cv_error = one.cross_validate(genotypes, 3, calls=calls)
    first, second = ranks
    np.testing.assert_allclose(first["Q0"], to_numpy(Q0), atol=1e-9)
    np.testing.assert_allclose(first["P0"], to_numpy(P0), atol=1e-9)
    assert np.sqrt(np.mean((first["Q"] - one.Q_) ** 2)) <= 1e-5
    assert np.sqrt(np.mean((first["P"] - one.P_) ** 2)) <= 1e-5
    np.testing.assert_allclose(first["loglik"], one.loglik_, rtol=1e-9)
    np.testing.assert_allclose(first["cv_error"], cv_error, rtol=1e-6)
    np.testing.assert_array_equal(first["Q"], second["Q"])
    np.testing.assert_array_equal(first["P"], second["P"])
    state = one.model_.state_dict()
    np.testing.assert_allclose(first["encoder_weight"], to_numpy(state["encoder.weight"]), atol=1e-4)
    np.testing.assert_allclose(first["encoder_bias"], to_numpy(state["encoder.bias"]), atol=1e-4)
    assert first["encoder_weight"].shape == (3, genotypes.n_variants)
    # the encoder check draws the same synthetic individuals on 2 ranks as in one process
    np.testing.assert_allclose(first["heldout_rmse"], one.report_.encoder.heldout_rmse, rtol=1e-3)
    # each rank held its share of the packed calls
    assert int(first["rss_packed"]) + int(second["rss_packed"]) == genotypes.packed.nbytes


def test_sharded_supervised_and_bootstrap_equal_one_process(bed, tmp_path):
    genotypes = read_genotypes(bed)
    populations = np.array([["A", "B", "C"][i % 3] if i < 60 else "" for i in range(genotypes.n_samples)])
    ranks = run_ranks("fit", 2, tmp_path, path=bed, K=3, seed=2, cv=0, populations=populations, bootstrap=3)
    one = Admixture(3, seed=2, progress=False, threads=1).fit(genotypes, populations=populations)
    se, _ = one.bootstrap(genotypes, 3, populations=populations)
    assert np.sqrt(np.mean((ranks[0]["Q"] - one.Q_) ** 2)) <= 1e-5
    np.testing.assert_allclose(ranks[0]["Q"][:60], one.Q_[:60])  # labelled individuals keep their population
    assert np.sqrt(np.mean((ranks[0]["Q_se"] - se) ** 2)) <= 1e-4  # the same replicates: SNP blocks drawn alike


def test_sharded_admix_writes_what_one_process_writes(bed, tmp_path):
    """run_admix on 2 ranks: rank 0 writes ADMIXTURE's files, the model and PREFIX.h5 for every variant, the log
    names the ranks; rank 1 writes nothing; the model projects as the one-process model does."""
    from genoae.commands.admix import run_admix
    from genoae.io.model import load_model
    from genoae.io.results import read_results_h5
    from genoae.ancestry import NeuralAdmixture

    ranks = run_ranks("admix", 2, tmp_path / "ranks", input_path=str(bed), prefix=str(tmp_path / "two"), ks="2-3")
    assert len(ranks[0]["files"]) == 2 * 4 + 2 and len(ranks[1]["files"]) == 0
    one = run_admix(bed, "2-3", prefix=tmp_path / "one", progress=False, echo=lambda line: None, threads=1)
    for K in (2, 3):
        Q_two, Q_one = np.loadtxt(tmp_path / f"two.{K}.Q"), np.loadtxt(tmp_path / f"one.{K}.Q")
        assert np.sqrt(np.mean((Q_two - Q_one) ** 2)) <= 1e-5
        assert np.loadtxt(tmp_path / f"two.{K}.P").shape == (1001, K)
        model, metadata = load_model(tmp_path / f"two.{K}.model.pt", NeuralAdmixture)
        assert model.n_variants == 1001 and metadata["settings"]["ranks"] == 2
    log = (tmp_path / "two.log").read_text()
    assert "# ranks: 2" in log and "rank 0 0-500, rank 1 500-1001" in log
    results, _, variants = read_results_h5(tmp_path / "two.h5")
    assert len(variants.id) == 1001 and results[3].settings["rank_variants"] == [[0, 500], [500, 1001]]
    assert not list(tmp_path.glob(".two.*"))  # no staging left behind
    del one


def test_a_rank_that_dies_stops_the_others_without_outputs(bed, tmp_path):
    codes, results, errors = run_ranks("admix", 2, tmp_path / "ranks", expect_failure=True, timeout=300,
                                       input_path=str(bed), prefix=str(tmp_path / "out"), ks="3", die_on_rank=1)
    assert codes[1] == 9
    assert results[0] is not None, errors[0]
    assert "lost contact with another rank" in str(results[0]["error"])
    assert not results[0]["quiet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ranks"]  # no output, no staging folder, no lock


def test_a_shard_that_cannot_be_read_stops_every_rank_with_one_line(bed, tmp_path):
    """Rank 1's part of the .bed carries calls in its padding bits: rank 1 says so, rank 0 stops quietly."""
    shutil.copy(bed, tmp_path / "bad.bed")
    for suffix in (".bim", ".fam"):
        shutil.copy(str(bed)[:-4] + suffix, tmp_path / f"bad{suffix}")
    data = bytearray((tmp_path / "bad.bed").read_bytes())
    row = (301 + 3) // 4
    data[3 + 900 * row + row - 1] |= 0b11000000  # a call for a 302nd individual at variant 901
    (tmp_path / "bad.bed").write_bytes(bytes(data))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    run = subprocess.run(torchrun_genoae() + ["admix", str(tmp_path / "bad.bed"), "-k", "2", "-o",
                                              str(tmp_path / "out"), "--quiet"],
                         capture_output=True, text=True, env=env, timeout=300)
    ours = [line for line in run.stderr.splitlines() if line.startswith("genoae:")]
    assert len(ours) == 1, run.stderr
    assert ours[0].startswith("genoae: error: rank 1: ") and "variant 901" in ours[0]
    assert run.returncode != 0
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob(".out*"))


def test_torchrun_launches_a_sharded_admix(bed, tmp_path):
    """As the README prints it: torchrun starts 2 processes of the genoae command."""
    run = subprocess.run(torchrun_genoae() + ["admix", str(bed), "-k", "2", "--cv", "2", "-o",
                                              str(tmp_path / "out"), "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("K=2\tloglik=") == 1 and "CV error (K=2)" in run.stdout  # rank 0 alone reports
    assert "wrote" in run.stdout and (tmp_path / "out.2.Q").exists()
    assert "# ranks: 2" in (tmp_path / "out.log").read_text()


def test_other_commands_refuse_to_run_under_torchrun(bed, tmp_path):
    from genoae.cli import main

    os.environ.update(WORLD_SIZE="2", RANK="1")
    try:
        with pytest.raises(SystemExit) as stop:
            main(["info", str(bed)])
        assert stop.value.code == 2
    finally:
        del os.environ["WORLD_SIZE"], os.environ["RANK"]


def test_rendezvous_that_times_out_is_one_line(tmp_path):
    from genoae.ancestry.distributed import Launch, start
    from genoae.errors import RankError
    from sharded import free_port

    saved = {key: os.environ.get(key) for key in ("MASTER_ADDR", "MASTER_PORT")}
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    try:
        with pytest.raises(RankError, match="could not join the other 1 rank"):
            start(Launch(0, 2, 0), torch.device("cpu"), timeout_s=2)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_sharded_accelerator_takes_the_one_process_steps(bed, tmp_path):
    """Three quasi-Newton iterations (their secant products sum the P part over the ranks) from the ALS start:
    the same ℓ at each step, within 1e-9 relative."""
    from genoae.likelihood import quasi_newton

    genotypes = read_genotypes(bed)
    calls = PackedCalls.from_genotypes(genotypes)
    Q0, P0 = svd_als(calls, genotypes.allele_freqs(), 3, np.random.default_rng(4))
    _, _, trace = quasi_newton(calls, Q0, P0, tol=0.0, max_iter=3)
    ranks = run_ranks("qn", 2, tmp_path, path=bed, Q=to_numpy(Q0), P=to_numpy(P0), iterations=3)
    np.testing.assert_allclose(ranks[0]["trace"], trace, rtol=1e-9)
    np.testing.assert_allclose(ranks[1]["trace"], trace, rtol=1e-9)


def test_sharded_reference_fraction_equals_one_process(bed, tmp_path):
    """--reference-fraction sharded: the reference fit, the projection of the others (the encoder's products
    and each chunk's refinement summed over the ranks) and the refinement on all."""
    from genoae.commands.admix import run_admix

    run_ranks("admix", 2, tmp_path / "ranks", input_path=str(bed), prefix=str(tmp_path / "two"), ks="3",
              reference_fraction=0.4)
    run_admix(bed, "3", prefix=tmp_path / "one", progress=False, echo=lambda line: None, threads=1,
              reference_fraction=0.4)
    Q_two, Q_one = np.loadtxt(tmp_path / "two.3.Q"), np.loadtxt(tmp_path / "one.3.Q")
    assert np.sqrt(np.mean((Q_two - Q_one) ** 2)) <= 1e-5
    assert "a fit on 120 individuals" in (tmp_path / "two.log").read_text()


def test_sigterm_from_the_launcher_removes_what_rank_0_staged(tmp_path, monkeypatch):
    """torchrun sends SIGTERM to the other ranks when one fails: inside a session it raises, so the staged outputs
    and the lock of rank 0's prefix are removed."""
    import signal

    from genoae.ancestry.distributed import Launch, session
    from genoae.errors import RankError
    from genoae.io.atomic import OutputSet
    from sharded import free_port

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RankError) as stopped:
        with session(Launch(0, 1, 0), torch.device("cpu")), OutputSet(tmp_path / "out") as output:
            output.path(tmp_path / "out.3.Q").write_text("half")
            os.kill(os.getpid(), signal.SIGTERM)
    assert stopped.value.quiet
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is before


def test_sharded_torch_path_equals_one_process(bed, tmp_path):
    """The torch path (CUDA's, here on the CPU: EM steps on decoded blocks, its own ℓ, counts, deviance and the
    encoder's product) sharded over 2 Gloo ranks against one process on the same path."""
    genotypes = read_genotypes(bed)
    rng = np.random.default_rng(8)
    Q = rng.dirichlet(np.ones(3), genotypes.n_samples)
    P = rng.uniform(0.05, 0.95, (genotypes.n_variants, 3))
    ranks = run_ranks("steps", 2, tmp_path / "steps", path=bed, Q=Q, P=P, folds=4, fold=0, seed=5, threads=1,
                      backend="torch")
    calls = PackedCalls.from_genotypes(genotypes, backend="torch")
    Qt, Pt = torch.from_numpy(Q), torch.from_numpy(P)
    em_Q, em_P, em_loglik = calls.em_step(Qt, Pt, with_loglik=True)
    deviance, held = calls.deviance(Qt, Pt, 4, 0, 5)
    np.testing.assert_allclose(ranks[0]["loglik"], calls.loglik(Qt, Pt), rtol=1e-9)
    np.testing.assert_array_equal(ranks[0]["n_observed"], to_numpy(calls.n_observed))
    np.testing.assert_allclose(ranks[0]["em_Q"], to_numpy(em_Q), atol=1e-12)
    np.testing.assert_allclose(ranks[1]["em_P"], to_numpy(em_P), atol=1e-12)
    np.testing.assert_allclose(ranks[0]["em_loglik"], em_loglik, rtol=1e-9)
    assert int(ranks[1]["held"]) == held
    np.testing.assert_allclose(ranks[1]["deviance"], deviance, rtol=1e-9)
    np.testing.assert_array_equal(ranks[1]["training_observed"], to_numpy(calls.training(4, 0, 5).n_observed))
    fit = run_ranks("fit", 2, tmp_path / "fit", path=bed, K=2, seed=3, cv=0, backend="torch")[0]
    one = Admixture(2, seed=3, progress=False, threads=1).fit(genotypes, calls=calls)
    assert np.sqrt(np.mean((fit["Q"] - one.Q_) ** 2)) <= 1e-5


def test_sharded_admix_on_a_vcf_zarr_store(bed, tmp_path):
    """The other chunked formats run sharded too: a VCF Zarr store, each rank slicing its variants."""
    from genoae.commands.admix import run_admix
    from genoae.io import write_genotypes

    store = tmp_path / "data.vcz"
    write_genotypes(read_genotypes(bed), store)
    run_ranks("admix", 2, tmp_path / "ranks", input_path=str(store), prefix=str(tmp_path / "two"), ks="2")
    run_admix(store, "2", prefix=tmp_path / "one", progress=False, echo=lambda line: None, threads=1)
    Q_two, Q_one = np.loadtxt(tmp_path / "two.2.Q"), np.loadtxt(tmp_path / "one.2.Q")
    assert np.sqrt(np.mean((Q_two - Q_one) ** 2)) <= 1e-5
