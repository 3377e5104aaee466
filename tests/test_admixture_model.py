"""Model files (state dict + JSON, weights_only loading) and the alignment of new genotypes to a model."""
import json

import numpy as np
import pytest
import torch

from genoae.ancestry import Admixture, NeuralAdmixture, project
from genoae.errors import InputError
from genoae.genotypes import Genotypes, Variants
from genoae.io.model import align_to_model, load_model, save_model


def small_variants(m, ids=True):
    return Variants(chrom=np.full(m, "2"), pos=np.arange(m) * 7 + 100,
                    id=np.array([f"rs{j}" for j in range(m)]) if ids else np.full(m, "."),
                    a1=np.full(m, "C"), a2=np.full(m, "T"))


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = NeuralAdmixture(20, 3, hidden=8)
    model.set_P(np.random.default_rng(0).uniform(0.1, 0.9, size=(20, 3)))
    weights, meta = save_model(tmp_path / "run.3.model.pt", model, small_variants(20), ["a", "b", "c"],
                               {"seed": 1}, loglik=-12.5)
    assert weights.name == "run.3.model.pt" and meta.name == "run.3.model.json"
    loaded, metadata = load_model(weights, NeuralAdmixture)
    assert metadata["K"] == 3 and metadata["populations"] == ["a", "b", "c"] and metadata["p_allele"] == "A2"
    assert list(metadata["variants"].id) == [f"rs{j}" for j in range(20)]
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    # the weights file holds only tensors: it loads with weights_only=True
    assert isinstance(torch.load(weights, weights_only=True), dict)


def test_load_model_reports_bad_files(tmp_path):
    with pytest.raises(InputError, match="missing model file"):
        load_model(tmp_path / "none.3.model.pt", NeuralAdmixture)
    (tmp_path / "bad.model.pt").write_bytes(b"not a model")
    (tmp_path / "bad.model.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(InputError, match="not a genoae model"):
        load_model(tmp_path / "bad.model.pt", NeuralAdmixture)


def test_align_by_position_when_ids_are_missing():
    model_variants = small_variants(6, ids=False)
    counts = np.array([[0, 1, 2, -1, 1], [2, 2, 0, 1, 0]], np.int8)
    # data: variants 5, 3, 1, 0, 2 of the model; variant 1 with swapped alleles, variant 2 with other alleles
    order = [5, 3, 1, 0, 2]
    v = model_variants.subset(order)
    a1, a2 = v.a1.copy(), v.a2.copy()
    a1[2], a2[2] = "T", "C"
    a1[4], a2[4] = "A", "G"
    data = Genotypes.from_counts(counts, variants=Variants(v.chrom, v.pos, v.id, a1, a2))
    aligned, report = align_to_model(data, model_variants)
    assert report.matched_by == "chromosome and position"
    assert (report.matched, report.flipped, report.allele_mismatch, report.absent) == (4, 1, 1, 1)
    expected = np.array([[-1, 0, -1, 1, -1, 0], [1, 2, -1, 2, -1, 2]], np.int8)
    np.testing.assert_array_equal(aligned.counts(), expected)


def test_project_recovers_the_fitted_q_of_the_training_individuals():
    rng = np.random.default_rng(3)
    P = rng.uniform(0.05, 0.95, size=(500, 3))
    Q = rng.dirichlet(np.full(3, 0.5), size=90)
    geno = Genotypes.from_counts(rng.binomial(2, Q @ P.T).astype(np.int8))
    est = Admixture(3, epochs=30, seed=0, threads=1, progress=False).fit(geno)
    Q_proj, loglik, Q_encoder = project(est.model_, geno, device="cpu")
    # with P fixed at the fitted P, EM on Q lands on the fitted Q
    assert np.abs(Q_proj - est.Q_).max() < 0.02
    # the encoder alone is already close: it was trained on the refined P
    assert np.sqrt(((Q_encoder - est.Q_) ** 2).mean()) < 0.1


def test_closed_form_encoder_start_matches_the_refined_q_and_the_forward_pass():
    """The encoder set from the refined P and Q (no Adam epochs) gives their Q, and its forward pass on the
    unpacked genotypes gives the same Q as the features computed from the EM's SNP-major calls."""
    from genoae.ancestry.encoder import encode_all, sample_major_unpacker

    rng = np.random.default_rng(5)
    P = rng.uniform(0.05, 0.95, size=(2000, 3))
    Q = rng.dirichlet(np.full(3, 0.5), size=120)
    g = rng.binomial(2, Q @ P.T).astype(np.int8)
    g[rng.random(g.shape) < 0.02] = -1
    geno = Genotypes.from_counts(g)
    est = Admixture(3, epochs=5, seed=0, threads=1, progress=False).fit(geno)
    assert est.report_.encoder_start_rmse < 0.02
    assert est.report_.epoch_logliks == []  # the start was good enough: no epochs ran
    Q_forward = encode_all(est.model_, sample_major_unpacker(geno, "cpu"), geno.n_samples, 50).double().numpy()
    assert np.sqrt(((Q_forward - est.Q_) ** 2).mean()) == pytest.approx(est.report_.encoder_rmse, abs=1e-4)
    assert np.sqrt(((Q_forward - est.Q_) ** 2).mean()) < 0.02
