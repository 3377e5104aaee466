"""Model files (state dict + JSON, weights_only loading) and the alignment of new genotypes to a model."""
import json

import numpy as np
import pytest
import torch

from genoae.ancestry import Admixture, NeuralAdmixture, project
from genoae.errors import InputError
from genoae.genotypes import Genotypes, Variants
from genoae.io.model import aligned_block, align_to_model, load_model, match_variants, save_model


def small_variants(m, ids=True):
    return Variants(chrom=np.full(m, "2"), pos=np.arange(m) * 7 + 100,
                    id=np.array([f"rs{j}" for j in range(m)]) if ids else np.full(m, "."),
                    a1=np.full(m, "C"), a2=np.full(m, "T"))


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = NeuralAdmixture(20, 3)
    model.set_P(np.random.default_rng(0).uniform(0.1, 0.9, size=(20, 3)))
    weights, meta = save_model(tmp_path / "run.3.model.pt", model, small_variants(20), ["a", "b", "c"],
                               {"seed": 1}, loglik=-12.5)
    assert weights.name == "run.3.model.pt" and meta.name == "run.3.model.json"
    loaded, metadata = load_model(weights, NeuralAdmixture)
    assert metadata["K"] == 3 and metadata["populations"] == ["a", "b", "c"] and metadata["p_allele"] == "A2"
    assert list(metadata["variants"].id) == [f"rs{j}" for j in range(20)]
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    # the weights file holds only tensors: torch loads it with weights_only=True, to the same numbers
    state = torch.load(weights, weights_only=True)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(state[name].numpy(), value, err_msg=name)
    # a file of the earlier format (a hidden layer) is refused with what to do, not misread
    old = json.loads(meta.read_text())
    old.update(version=1, hidden=64)
    meta.write_text(json.dumps(old))
    with pytest.raises(InputError, match="version 1.*re-run genoae admix"):
        load_model(weights, NeuralAdmixture)


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


def test_aligned_blocks_of_individuals_equal_the_whole_alignment():
    """Chunks of individuals cut from the packed bytes (flips through the byte table, padding cleared) are the
    columns of the whole alignment, for a cohort whose size is not a multiple of 4."""
    rng = np.random.default_rng(8)
    model_variants = small_variants(40)
    order = rng.permutation(40)[:33]  # 7 model variants absent
    v = model_variants.subset(order)
    a1, a2 = v.a1.copy(), v.a2.copy()
    swap = rng.random(33) < 0.4
    a1[swap], a2[swap] = v.a2[swap], v.a1[swap]
    counts = rng.integers(-1, 3, size=(23, 33)).astype(np.int8)
    data = Genotypes.from_counts(counts, variants=Variants(v.chrom, v.pos, v.id, a1, a2))
    match = match_variants(data.variants, model_variants)
    expected = np.full((23, 40), -1, np.int8)
    for column, j in enumerate(order):
        values = counts[:, column]
        expected[:, j] = np.where(values < 0, -1, 2 - values) if swap[column] else values
    np.testing.assert_array_equal(align_to_model(data, model_variants)[0].counts(), expected)
    for start, stop in [(0, 8), (8, 20), (20, 23), (4, 23)]:
        block = aligned_block(data, match, start, stop)
        np.testing.assert_array_equal(Genotypes(block, data.samples.subset(np.arange(start, stop)),
                                                model_variants).counts(), expected[start:stop])
        if (stop - start) % 4:  # padding after the last individual is 0, as in a .bed
            assert not (block[:, -1] >> (2 * ((stop - start) % 4))).any()


def simulated(n, m, K=3, seed=3, missing=0.0, low=0.05):
    rng = np.random.default_rng(seed)
    P = rng.uniform(low, 1 - low, size=(m, K))
    Q = rng.dirichlet(np.full(K, 0.5), size=n)
    g = rng.binomial(2, Q @ P.T).astype(np.int8)
    g[rng.random(g.shape) < missing] = -1
    return Genotypes.from_counts(g), Q


def test_project_recovers_the_fitted_q_of_the_training_individuals():
    geno, _ = simulated(90, 500)
    est = Admixture(3, seed=0, threads=1, progress=False).fit(geno)
    result = project(est.model_, geno, device="cpu")
    # with P fixed at the fitted P, the refinement of Q lands on the fitted Q
    assert np.sqrt(((result.Q - est.Q_) ** 2).mean()) < 0.002
    # the encoder alone is already close
    assert np.sqrt(((result.Q_encoder - est.Q_) ** 2).mean()) < 0.05
    # chunks of individuals give the same answer as one chunk
    chunked = project(est.model_, geno, device="cpu", chunk=8)
    assert len(chunked.iterations) == 12
    np.testing.assert_allclose(chunked.Q, result.Q, atol=1e-6)
    assert chunked.loglik == pytest.approx(result.loglik, rel=1e-9)


def test_encoder_is_the_weighted_least_squares_estimate_and_places_new_individuals():
    """The encoder's layer is the weighted least-squares Q under the decoder's P (checked against a naive NumPy
    computation, on sample-major calls and on the packed ones); on individuals it never saw, its Q is close to the
    converged projection and the refinement from it needs fewer iterations than from a uniform start."""
    from genoae.ancestry.encoder import encode_packed
    from genoae.likelihood import PackedCalls, refine_rows

    geno, _ = simulated(400, 3000, K=3, seed=5, missing=0.03, low=0.005)  # rare variants: weights bounded
    reference, new = geno.subset(samples=np.arange(200)), geno.subset(samples=np.arange(200, 400))
    est = Admixture(3, seed=0, threads=1, progress=False).fit(reference)
    model = est.model_
    P = model.P
    freq = model.input_freq.astype(np.float64)
    counts = new.counts()
    observed = counts >= 0
    x = np.where(observed, counts / 2.0 - freq, 0.0) * (3000 / observed.sum(1))[:, None]
    C = P - freq[:, None]
    w = 1.0 / np.maximum(freq * (1 - freq), 0.01)
    gram = C.T @ (w[:, None] * C)
    lam = np.trace(gram) / 3
    estimate = np.linalg.solve(gram + lam, (x @ (w[:, None] * C) + lam).T).T
    naive = np.clip(estimate, 1e-5, 1.0)
    naive /= naive.sum(1, keepdims=True)
    calls = PackedCalls.from_genotypes(new)
    packed_q = encode_packed(model, calls)
    dense_q = model.encode(np.maximum(counts, 0), observed)
    np.testing.assert_allclose(packed_q, naive, atol=2e-4)
    np.testing.assert_allclose(dense_q, naive, atol=2e-4)

    uniform = torch.full((200, 3), 1 / 3, dtype=torch.float64)
    Pt = torch.from_numpy(est.P_)
    converged, trace_uniform = refine_rows(calls, uniform, Pt)
    result = project(model, new, device="cpu")
    assert np.sqrt(((result.Q_encoder - converged.numpy()) ** 2).mean()) < 0.01
    assert np.sqrt(((result.Q - converged.numpy()) ** 2).mean()) < 1e-4
    assert result.iterations[0] < len(trace_uniform) - 1
    # the fit measured the same on synthetic new individuals, for the log
    assert est.report_.encoder.heldout_rmse < 0.01
    assert 0 < est.report_.encoder.iterations < len(trace_uniform) - 1


def test_projection_without_a_match_keeps_every_variant_in_order():
    """project(model, genotypes) on data already on the model's variants takes them as they are: two records at
    one position with unset IDs (a split multi-allelic site) stay two, where matching the table against itself
    by position would send both to the first and count the second's other alleles as missing."""
    from genoae.io.model import VariantMatch

    geno, _ = simulated(60, 400)
    v = geno.variants
    pos, ids, a2 = v.pos.copy(), np.full(400, "."), v.a2.copy()
    pos[1::2] = pos[0::2]           # every second record shares the position of the one before
    a2[1::2] = "G"
    geno = Genotypes(geno.packed, geno.samples, Variants(v.chrom, pos, ids, v.a1, a2))
    match = VariantMatch.identity(geno.variants)
    assert match.report.matched == 400 and not match.flip.any()
    np.testing.assert_array_equal(match.rows, np.arange(400))
    est = Admixture(3, seed=0, threads=1, progress=False).fit(geno)
    result = project(est.model_, geno, device="cpu")
    assert np.sqrt(((result.Q - est.Q_) ** 2).mean()) < 0.002
    assert result.loglik == pytest.approx(est.loglik_, rel=1e-6)
